use super::FieldError;

/// The name of an environment or a cluster: 1 to 63 characters of `[a-z0-9-]`,
/// starting and ending with a letter or digit, so that it is safe in AWS resource
/// names, DNS labels and S3 keys alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

impl Name {
    pub const MAX_LEN: usize = 63;

    pub fn parse(field: &str, raw: &str) -> Result<Name, FieldError> {
        if raw.is_empty() {
            return Err(FieldError::new(field, format!("{field} must not be empty")));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(FieldError::new(
                field,
                format!(
                    "{field} must be at most {} characters, got {}",
                    Self::MAX_LEN,
                    raw.len()
                ),
            ));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(FieldError::new(
                field,
                format!("{field} may only contain a-z, 0-9 and '-', found {bad:?}"),
            ));
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return Err(FieldError::new(
                field,
                format!("{field} must start and end with a letter or digit"),
            ));
        }
        Ok(Name(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Name;

    fn check(raw: &str, ok: bool) {
        assert_eq!(Name::parse("name", raw).is_ok(), ok, "{raw:?}");
    }

    #[test]
    fn names_accept_only_lowercase_digits_and_inner_dashes() {
        check("analytics", true);
        check("a", true);
        check("prod-2", true);
        check(&"a".repeat(63), true);
        check("", false);
        check(&"a".repeat(64), false);
        check("Prod", false);
        check("prod_2", false);
        check("prod 2", false);
        check("-prod", false);
        check("prod-", false);
        check("pröd", false);
    }

    #[test]
    fn errors_name_the_field() {
        let err = Name::parse("environment.name", "Bad").unwrap_err();
        assert_eq!(err.field, "environment.name");
        assert!(err.message.contains("'B'"), "{}", err.message);
    }
}
