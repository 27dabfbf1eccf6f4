//! The fence in a DynamoDB table (in AWS: a global table with multi-region
//! strong consistency, so that a conditional write in one region is seen by the
//! next read in any other, and the table stays writable while one of its three
//! regions is down).
//!
//! Items (`pk` is the only key):
//! * `leader`: `epoch` (N), `region` (S) and `doc` (S, the [`Leader`] as JSON);
//!   claimed with `attribute_not_exists(pk) OR epoch = :seen`;
//! * `failover#<id>`: `state` (S), `at` (N, when it was requested) and `doc`
//!   (S, the [`FailoverRequest`] as JSON); created with
//!   `attribute_not_exists(pk)`, moved with `#state = :from`.
//!
//! Every call goes to this region's replica; reads are strongly consistent.
//! `ConditionalCheckFailedException` is an answer (lost, or moved on), not an
//! error; MRSC's `ReplicatedWriteConflictException` (two regions writing one
//! item at once) is transient.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, MultiRegionConsistency,
    ReplicationGroupUpdate, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::{classify, AwsSettings, PerRegion};
use crate::cloud::{Claimed, CloudError, CloudErrorKind, CloudResult, Fence};
use crate::domain::failover::{FailoverRequest, FailoverState, Leader};

const LEADER: &str = "leader";
const REQUEST_PREFIX: &str = "failover#";

/// The fence table, through this region's replica.
pub struct DynamoFence {
    clients: PerRegion<Client>,
    region: String,
    table: String,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> CloudError {
    CloudError {
        op: "DynamoDB",
        kind: CloudErrorKind::Permanent,
        code: "CorruptItem".into(),
        message: format!("the fence's {what} item does not parse: {e}"),
        source: None,
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn doc<T: serde::de::DeserializeOwned>(what: &str, item: &HashMap<String, AttributeValue>) -> CloudResult<T> {
    let raw = item
        .get("doc")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| corrupt(what, "no doc attribute"))?;
    serde_json::from_str(raw).map_err(|e| corrupt(what, e))
}

/// Whether the SDK error is a failed condition (the answer "no").
fn condition_failed<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

fn transient_conflict(mut e: CloudError) -> CloudError {
    if e.code == "ReplicatedWriteConflictException" || e.code == "TransactionConflictException" {
        e.kind = CloudErrorKind::Transient;
    }
    e
}

impl DynamoFence {
    pub fn new(settings: AwsSettings, region: &str, table: &str) -> Self {
        DynamoFence {
            clients: PerRegion::new(settings, |config, _| Client::new(config)),
            region: region.to_owned(),
            table: table.to_owned(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Makes the table (for dm-local and tests; in AWS the template does):
    /// `pk` as the key, on demand, then the other regions as replicas with
    /// strong consistency when `replicas` is not empty (MRSC needs three regions
    /// in all: two replicas and a `witness`, or three replicas). A table that
    /// exists already is left as it is.
    pub async fn ensure_table(&self, replicas: &[String], witness: Option<&str>) -> CloudResult<()> {
        let client = self.clients.get(&self.region).await;
        let created = client
            .create_table()
            .table_name(&self.table)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| corrupt("table", e))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| corrupt("table", e))?,
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceInUseException") => return Ok(()),
            Err(e) => return Err(classify("CreateTable", e)),
        }
        if replicas.is_empty() {
            return Ok(());
        }
        let mut update = client
            .update_table()
            .table_name(&self.table)
            .multi_region_consistency(MultiRegionConsistency::Strong);
        for r in replicas {
            update = update.replica_updates(
                ReplicationGroupUpdate::builder()
                    .create(
                        aws_sdk_dynamodb::types::CreateReplicationGroupMemberAction::builder()
                            .region_name(r)
                            .build()
                            .map_err(|e| corrupt("table", e))?,
                    )
                    .build(),
            );
        }
        if let Some(w) = witness {
            update = update.global_table_witness_updates(
                aws_sdk_dynamodb::types::GlobalTableWitnessGroupUpdate::builder()
                    .create(
                        aws_sdk_dynamodb::types::CreateGlobalTableWitnessGroupMemberAction::builder()
                            .region_name(w)
                            .build()
                            .map_err(|e| corrupt("table", e))?,
                    )
                    .build(),
            );
        }
        update
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("UpdateTable", e))
    }

    async fn get(&self, pk: &str) -> CloudResult<Option<HashMap<String, AttributeValue>>> {
        let client = self.clients.get(&self.region).await;
        let out = client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| transient_conflict(classify("GetItem", e)))?;
        Ok(out.item)
    }

    fn request_item(request: &FailoverRequest) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_owned(), s(format!("{REQUEST_PREFIX}{}", request.id))),
            ("state".to_owned(), s(request.state.as_str())),
            ("at".to_owned(), n(request.requested_at)),
            (
                "doc".to_owned(),
                s(serde_json::to_string(request).expect("request serialises")),
            ),
        ])
    }
}

impl Fence for DynamoFence {
    async fn leader(&self) -> CloudResult<Option<Leader>> {
        self.get(LEADER)
            .await?
            .map(|item| doc("leader", &item))
            .transpose()
    }

    async fn claim(&self, seen: Option<i64>, next: &Leader) -> CloudResult<Claimed> {
        let client = self.clients.get(&self.region).await;
        let mut put = client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(LEADER))
            .item("epoch", n(next.epoch))
            .item("region", s(&next.region))
            .item("doc", s(serde_json::to_string(next).expect("leader serialises")));
        put = match seen {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(epoch) => put
                .condition_expression("epoch = :seen")
                .expression_attribute_values(":seen", n(epoch)),
        };
        match put.send().await {
            Ok(_) => Ok(Claimed::Won),
            Err(e) if e.as_service_error().is_some_and(condition_failed) => {
                Ok(Claimed::Lost(self.leader().await.ok().flatten()))
            }
            Err(e) => Err(transient_conflict(classify("PutItem(leader)", e))),
        }
    }

    async fn create_request(&self, request: &FailoverRequest) -> CloudResult<bool> {
        let client = self.clients.get(&self.region).await;
        let put = client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::request_item(request)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(condition_failed) => Ok(false),
            Err(e) => Err(transient_conflict(classify("PutItem(request)", e))),
        }
    }

    async fn request(&self, id: &str) -> CloudResult<Option<FailoverRequest>> {
        self.get(&format!("{REQUEST_PREFIX}{id}"))
            .await?
            .map(|item| doc("failover request", &item))
            .transpose()
    }

    async fn update_request(&self, request: &FailoverRequest, from: FailoverState) -> CloudResult<bool> {
        let client = self.clients.get(&self.region).await;
        let put = client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::request_item(request)))
            .condition_expression("#state = :from")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":from", s(from.as_str()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(condition_failed) => Ok(false),
            Err(e) => Err(transient_conflict(classify("PutItem(request)", e))),
        }
    }

    async fn requests(&self) -> CloudResult<Vec<FailoverRequest>> {
        let client = self.clients.get(&self.region).await;
        let mut pages = client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .filter_expression("begins_with(pk, :prefix)")
            .expression_attribute_values(":prefix", s(REQUEST_PREFIX))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| transient_conflict(classify("Scan", e)))?;
            for item in page.items() {
                out.push(doc::<FailoverRequest>("failover request", item)?);
            }
        }
        out.sort_by(|a, b| (b.requested_at, &b.id).cmp(&(a.requested_at, &a.id)));
        Ok(out)
    }
}
