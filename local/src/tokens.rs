//! The local runner's API tokens: one operator and one viewer token, made on the
//! first run and kept (readable only by the owner) under the data directory.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use rand::RngCore;
use shared::store::{Role, Store};

pub struct Tokens {
    pub operator: String,
    pub viewer: String,
}

fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}-{}", hex::encode(bytes))
}

/// Reads the tokens of an earlier run, or makes new ones, and registers both.
pub async fn load_or_create(data_dir: &Path, store: &Store) -> Result<Tokens> {
    let path = data_dir.join("tokens.json");
    let tokens = match std::fs::read_to_string(&path) {
        Ok(raw) => {
            let v: serde_json::Value =
                serde_json::from_str(&raw).with_context(|| format!("reading {}", path.display()))?;
            let get = |k: &str| {
                v[k].as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("{} has no {k}", path.display()))
            };
            Tokens {
                operator: get("operator")?,
                viewer: get("viewer")?,
            }
        }
        Err(_) => {
            let t = Tokens {
                operator: new_token("op"),
                viewer: new_token("view"),
            };
            write_private(
                &path,
                &serde_json::json!({ "operator": t.operator, "viewer": t.viewer }).to_string(),
            )?;
            t
        }
    };
    store
        .add_token(&tokens.operator, "local-operator", Role::Operator)
        .await?;
    store
        .add_token(&tokens.viewer, "local-viewer", Role::Viewer)
        .await?;
    Ok(tokens)
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
