//! Retention in the staging bucket: the DM's lifecycle rules expire node logs,
//! diagnostics bundles and history archives after their settable number of days
//! ([`RetentionConfig`]), and abort multipart uploads left incomplete under those
//! prefixes. The rules are merged into the bucket's lifecycle configuration:
//! rules others own (ids not starting with [`ExpiryRule::OWNED`]) are kept as
//! they are, and nothing is written when the DM's rules are already in place.

use crate::cloud::{CloudResult, ExpiryRule, LifecycleMerge, ObjectStore};
use crate::config::{RetentionConfig, S3Location};
use crate::workflows::archive::HISTORY_PREFIX;

/// The rule that expires node logs.
pub const LOGS_RULE: &str = "okera-dm-logs";
/// The rule that expires diagnostics bundles.
pub const DIAGNOSTICS_RULE: &str = "okera-dm-diagnostics";
/// The rule that expires history archives.
pub const HISTORY_RULE: &str = "okera-dm-history";

/// Node logs, under the staging prefix.
pub const LOGS_PREFIX: &str = "logs/";
/// Diagnostics bundles, under the staging prefix.
pub const DIAGNOSTICS_PREFIX: &str = "diagnostics/";

/// Multipart uploads still incomplete this many days after they began are
/// aborted (sooner when the prefix expires sooner).
pub const ABORT_INCOMPLETE_UPLOADS_DAYS: u32 = 7;

/// The DM's lifecycle rules for the staging bucket.
pub fn expiry_rules(staging: &S3Location, retention: &RetentionConfig) -> Vec<ExpiryRule> {
    [
        (LOGS_RULE, LOGS_PREFIX, retention.log_days),
        (DIAGNOSTICS_RULE, DIAGNOSTICS_PREFIX, retention.diagnostics_days),
        (HISTORY_RULE, HISTORY_PREFIX, retention.history_archive_days),
    ]
    .into_iter()
    .map(|(id, prefix, days)| ExpiryRule {
        id: id.to_owned(),
        prefix: staging.key(prefix),
        days,
        abort_incomplete_after_days: Some(ABORT_INCOMPLETE_UPLOADS_DAYS.min(days)),
    })
    .collect()
}

/// Puts the DM's rules into the staging bucket's lifecycle configuration, keeping
/// everybody else's.
pub async fn apply_retention<O: ObjectStore>(
    objects: &O,
    staging: &S3Location,
    retention: &RetentionConfig,
) -> CloudResult<LifecycleMerge> {
    let merge = objects
        .merge_lifecycle(&staging.bucket, &expiry_rules(staging, retention))
        .await?;
    if merge.changed {
        tracing::info!(
            bucket = %staging.bucket,
            kept = ?merge.foreign,
            "staging bucket lifecycle rules merged"
        );
    }
    Ok(merge)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<RetentionConfig, String> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        RetentionConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn settings_default_when_unset() {
        let c = config(&[]).unwrap();
        assert_eq!(c, RetentionConfig::default());
        assert_eq!(
            (
                c.history_days,
                c.log_days,
                c.diagnostics_days,
                c.history_archive_days
            ),
            (30, 30, 14, 365)
        );
        assert_eq!(c.history_cutoff_ms(100 * 86_400_000), 70 * 86_400_000);
    }

    #[test]
    fn each_setting_is_read() {
        let c = config(&[
            ("OKERA_HISTORY_RETENTION_DAYS", "7"),
            ("OKERA_LOG_RETENTION_DAYS", " 90 "),
            ("OKERA_DIAGNOSTICS_RETENTION_DAYS", "3"),
            ("OKERA_HISTORY_ARCHIVE_RETENTION_DAYS", "36500"),
        ])
        .unwrap();
        assert_eq!(
            (
                c.history_days,
                c.log_days,
                c.diagnostics_days,
                c.history_archive_days
            ),
            (7, 90, 3, 36_500)
        );
    }

    #[test]
    fn bad_settings_are_refused_with_the_variable_named() {
        for name in [
            "OKERA_HISTORY_RETENTION_DAYS",
            "OKERA_LOG_RETENTION_DAYS",
            "OKERA_DIAGNOSTICS_RETENTION_DAYS",
            "OKERA_HISTORY_ARCHIVE_RETENTION_DAYS",
        ] {
            for bad in ["0", "-1", "thirty", "", "1.5", "36501", "99999999999"] {
                let err = config(&[(name, bad)]).unwrap_err();
                assert!(err.starts_with(name), "{err}");
                assert!(err.contains("from 1 to 36500"), "{err}");
                assert!(err.contains(&format!("{bad:?}")), "{err}");
            }
        }
    }

    #[test]
    fn rules_cover_logs_diagnostics_and_history_under_the_staging_prefix() {
        let staging = S3Location::parse("s3://okera-staging/dm").unwrap();
        let retention = RetentionConfig {
            history_days: 30,
            log_days: 30,
            diagnostics_days: 3,
            history_archive_days: 365,
        };
        let rules = expiry_rules(&staging, &retention);
        let got: Vec<(&str, &str, u32, Option<u32>)> = rules
            .iter()
            .map(|r| {
                (
                    r.id.as_str(),
                    r.prefix.as_str(),
                    r.days,
                    r.abort_incomplete_after_days,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("okera-dm-logs", "dm/logs/", 30, Some(7)),
                ("okera-dm-diagnostics", "dm/diagnostics/", 3, Some(3)),
                ("okera-dm-history", "dm/history/", 365, Some(7)),
            ]
        );
        assert!(rules.iter().all(|r| r.id.starts_with(ExpiryRule::OWNED)));
        let bare = S3Location::parse("s3://okera-staging").unwrap();
        assert_eq!(expiry_rules(&bare, &retention)[0].prefix, "logs/");
    }
}
