//! The local runner's API tokens: one admin, one operator and one viewer token,
//! made on the first run and kept (readable only by the owner) under the data
//! directory. A `tokens.json` of an earlier release, without an admin token, gets
//! one added and keeps the other two.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use rand::RngCore;
use shared::store::{Role, Store};

pub struct Tokens {
    pub admin: String,
    pub operator: String,
    pub viewer: String,
}

fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}-{}", hex::encode(bytes))
}

/// Reads the tokens of an earlier run, makes the ones it lacks (all of them on a
/// first run), and registers the three.
pub async fn load_or_create(data_dir: &Path, store: &Store) -> Result<Tokens> {
    let path = data_dir.join("tokens.json");
    let saved: serde_json::Value = match std::fs::read_to_string(&path) {
        Ok(raw) => serde_json::from_str(&raw).with_context(|| format!("reading {}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let (tokens, changed) = complete(&saved, &path)?;
    if changed {
        write_private(
            &path,
            &serde_json::json!({
                "admin": tokens.admin,
                "operator": tokens.operator,
                "viewer": tokens.viewer,
            })
            .to_string(),
        )?;
    }
    for (token, name, role) in [
        (&tokens.admin, "local-admin", Role::Admin),
        (&tokens.operator, "local-operator", Role::Operator),
        (&tokens.viewer, "local-viewer", Role::Viewer),
    ] {
        store.add_token(token, name, role).await?;
    }
    Ok(tokens)
}

/// The tokens of `saved` (the contents of `path`), with a new one for each role
/// it lacks, and whether any was made. A value that is there but not a string
/// is an error: the file was edited by hand, and guessing would lose a token.
fn complete(saved: &serde_json::Value, path: &Path) -> Result<(Tokens, bool)> {
    if !saved.is_object() {
        anyhow::bail!(
            "{} is not a JSON object; delete it to get new tokens",
            path.display()
        );
    }
    let mut changed = false;
    let mut get = |key: &str, prefix: &str| -> Result<String> {
        match &saved[key] {
            serde_json::Value::Null => {
                changed = true;
                Ok(new_token(prefix))
            }
            serde_json::Value::String(t) if !t.is_empty() => Ok(t.clone()),
            other => anyhow::bail!(
                "{}: {key} must be a token (a string), got {other}; fix it or delete the file to get new tokens",
                path.display()
            ),
        }
    };
    let tokens = Tokens {
        admin: get("admin", "adm")?,
        operator: get("operator", "op")?,
        viewer: get("viewer", "view")?,
    };
    Ok((tokens, changed))
}

/// Writes a file only its owner may read: it holds tokens.
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path() -> &'static Path {
        Path::new("/data/tokens.json")
    }

    #[test]
    fn a_first_run_makes_all_three_tokens() {
        let (t, changed) = complete(&json!({}), path()).unwrap();
        assert!(changed);
        assert!(
            t.admin.starts_with("adm-") && t.operator.starts_with("op-") && t.viewer.starts_with("view-")
        );
        assert_eq!(t.admin.len(), "adm-".len() + 48);
        assert!(t.admin != t.operator && t.operator != t.viewer);
    }

    #[test]
    fn a_file_of_an_earlier_release_keeps_its_tokens_and_gets_an_admin_token() {
        let old = json!({ "operator": "op-old", "viewer": "view-old" });
        let (t, changed) = complete(&old, path()).unwrap();
        assert!(changed, "the new admin token must be written back");
        assert_eq!((t.operator.as_str(), t.viewer.as_str()), ("op-old", "view-old"));
        assert!(t.admin.starts_with("adm-"), "{}", t.admin);
    }

    #[test]
    fn a_complete_file_is_read_as_it_is_and_not_rewritten() {
        let full = json!({ "admin": "adm-1", "operator": "op-1", "viewer": "view-1" });
        let (t, changed) = complete(&full, path()).unwrap();
        assert!(!changed);
        assert_eq!(
            (t.admin.as_str(), t.operator.as_str(), t.viewer.as_str()),
            ("adm-1", "op-1", "view-1")
        );
    }

    #[test]
    fn a_token_that_is_not_a_string_is_an_error_naming_the_file_and_the_key() {
        for (bad, key) in [
            (json!({ "admin": 7, "operator": "op", "viewer": "v" }), "admin"),
            (json!({ "operator": "", "viewer": "v" }), "operator"),
            (json!({ "operator": "op", "viewer": ["v"] }), "viewer"),
        ] {
            let e = complete(&bad, path()).err().expect("an error").to_string();
            assert!(e.contains("/data/tokens.json") && e.contains(key), "{e}");
        }
        let e = complete(&json!(["op"]), path())
            .err()
            .expect("an error")
            .to_string();
        assert!(e.contains("not a JSON object"), "{e}");
    }
}
