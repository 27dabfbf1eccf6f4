//! Tags on every resource the DM creates. `LaunchedBy=Okera` marks the DM's
//! resources; the `okera:` keys say whose they are, so that the reconciler finds
//! what it made by its tags and never by memory alone.

use std::collections::BTreeMap;

use super::FieldError;

pub const LAUNCHED_BY: (&str, &str) = ("LaunchedBy", "Okera");
pub const CLUSTER_ID: &str = "okera:cluster-id";
pub const CLUSTER_NAME: &str = "okera:cluster-name";
pub const ENVIRONMENT_ID: &str = "okera:environment-id";

/// AWS allows 50 tags on a resource; the DM keeps a few for itself.
pub const MAX_USER_TAGS: usize = 40;

/// The tags of a cluster's resources: ours first, then the user's.
pub fn cluster_tags(
    cluster_id: i64,
    cluster_name: &str,
    environment_id: i64,
    user: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut tags = vec![
        (LAUNCHED_BY.0.to_owned(), LAUNCHED_BY.1.to_owned()),
        (CLUSTER_ID.to_owned(), cluster_id.to_string()),
        (CLUSTER_NAME.to_owned(), cluster_name.to_owned()),
        (ENVIRONMENT_ID.to_owned(), environment_id.to_string()),
    ];
    tags.extend(user.iter().map(|(k, v)| (k.clone(), v.clone())));
    tags
}

/// The tags of an environment's resources (its security group).
pub fn environment_tags(environment_id: i64) -> Vec<(String, String)> {
    vec![
        (LAUNCHED_BY.0.to_owned(), LAUNCHED_BY.1.to_owned()),
        (ENVIRONMENT_ID.to_owned(), environment_id.to_string()),
    ]
}

/// Checks user tags against AWS limits and the keys the DM keeps for itself.
pub fn parse_user_tags(tags: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, FieldError> {
    if tags.len() > MAX_USER_TAGS {
        return Err(FieldError::new(
            "tags",
            format!("at most {MAX_USER_TAGS} tags are allowed, got {}", tags.len()),
        ));
    }
    for (k, v) in &tags {
        let field = format!("tags.{k}");
        if k.is_empty() || k.len() > 128 {
            return Err(FieldError::new(field, "tag keys must be 1 to 128 characters"));
        }
        if v.len() > 256 {
            return Err(FieldError::new(
                field,
                "tag values must be at most 256 characters",
            ));
        }
        if k == LAUNCHED_BY.0 || k.starts_with("okera:") || k.starts_with("aws:") {
            return Err(FieldError::new(
                field,
                format!("tag key {k:?} is reserved; the DM sets LaunchedBy, okera:* and AWS sets aws:*"),
            ));
        }
    }
    Ok(tags)
}
