//! JSON that keeps the order of its objects' keys. The workspace builds
//! serde_json without `preserve_order`, so its `Value` sorts keys; a document
//! whose order is part of its contract (the status of a cluster starts with
//! `timestamp`, `message`, `elapsedTime`, `code`) is read into [`OrderedJson`]
//! to be printed as the server wrote it.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Number, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum OrderedJson {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<OrderedJson>),
    /// Keys in the order they came; a repeated key keeps its first place and
    /// its last value, as `Value` keeps its last value.
    Object(Vec<(String, OrderedJson)>),
}

impl OrderedJson {
    /// The same document as a `Value` (keys sorted), for reading fields.
    pub fn to_value(&self) -> Value {
        match self {
            OrderedJson::Null => Value::Null,
            OrderedJson::Bool(b) => Value::Bool(*b),
            OrderedJson::Number(n) => Value::Number(n.clone()),
            OrderedJson::String(s) => Value::String(s.clone()),
            OrderedJson::Array(items) => Value::Array(items.iter().map(OrderedJson::to_value).collect()),
            OrderedJson::Object(entries) => {
                Value::Object(entries.iter().map(|(k, v)| (k.clone(), v.to_value())).collect())
            }
        }
    }
}

impl Serialize for OrderedJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            OrderedJson::Null => serializer.serialize_unit(),
            OrderedJson::Bool(b) => serializer.serialize_bool(*b),
            OrderedJson::Number(n) => n.serialize(serializer),
            OrderedJson::String(s) => serializer.serialize_str(s),
            OrderedJson::Array(items) => items.serialize(serializer),
            OrderedJson::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for OrderedJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OrderedVisitor)
    }
}

struct OrderedVisitor;

impl<'de> Visitor<'de> for OrderedVisitor {
    type Value = OrderedJson;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<OrderedJson, E> {
        Ok(OrderedJson::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<OrderedJson, E> {
        Ok(OrderedJson::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<OrderedJson, E> {
        Ok(OrderedJson::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<OrderedJson, E> {
        // JSON text has no NaN or infinity; serde_json's Value maps them to null too.
        Ok(Number::from_f64(n).map_or(OrderedJson::Null, OrderedJson::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<OrderedJson, E> {
        Ok(OrderedJson::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<OrderedJson, E> {
        Ok(OrderedJson::String(s))
    }

    fn visit_unit<E>(self) -> Result<OrderedJson, E> {
        Ok(OrderedJson::Null)
    }

    fn visit_none<E>(self) -> Result<OrderedJson, E> {
        Ok(OrderedJson::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<OrderedJson, D::Error> {
        OrderedJson::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OrderedJson, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(OrderedJson::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedJson, A::Error> {
        let mut entries: Vec<(String, OrderedJson)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some((key, value)) = map.next_entry::<String, OrderedJson>()? {
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
        }
        Ok(OrderedJson::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_keep_their_order_through_a_round_trip() {
        let text = r#"{"timestamp":"2019-01-29 18:31:35.485","message":"All services running.","elapsedTime":"3h12m41s997ms","code":"READY","nodes":[{"z":null,"a":true,"n":-3,"f":1.5}],"history":[]}"#;
        let doc: OrderedJson = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&doc).unwrap(), text);
        let pretty = serde_json::to_string_pretty(&doc).unwrap();
        let firsts: Vec<&str> = pretty.lines().skip(1).take(4).map(str::trim).collect();
        assert_eq!(
            firsts,
            [
                r#""timestamp": "2019-01-29 18:31:35.485","#,
                r#""message": "All services running.","#,
                r#""elapsedTime": "3h12m41s997ms","#,
                r#""code": "READY","#,
            ]
        );
    }

    #[test]
    fn converts_to_a_value_and_keeps_the_last_of_a_repeated_key() {
        let doc: OrderedJson = serde_json::from_str(r#"{"b": [1, "x"], "a": {"k": 1, "k": 2}}"#).unwrap();
        assert_eq!(doc.to_value(), json!({"a": {"k": 2}, "b": [1, "x"]}));
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"b":[1,"x"],"a":{"k":2}}"#
        );
        let big: OrderedJson = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(big.to_value(), json!(u64::MAX));
    }
}
