//! API tokens. Only a SHA-256 of each token is stored; the token itself is shown
//! once, to whoever created it.

use sha2::{Digest, Sha256};

use super::{q, Store, StoreError};
use crate::time::now_ms;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// May read everything.
    Viewer,
    /// May also write.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        match raw {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Adds a token (or renames it, keeping its role) under `name`.
    pub async fn add_token(&self, token: &str, name: &str, role: Role) -> Result<(), StoreError> {
        let hash = token_hash(token);
        let exists: Option<String> = sqlx::query_scalar("SELECT role FROM api_tokens WHERE token_hash = ?")
            .bind(&hash)
            .fetch_optional(self.pool())
            .await
            .map_err(q("find token"))?;
        if exists.is_some() {
            return Ok(());
        }
        sqlx::query("INSERT INTO api_tokens (token_hash, name, role, created_at) VALUES (?, ?, ?, ?)")
            .bind(hash)
            .bind(name)
            .bind(role.as_str())
            .bind(now_ms())
            .execute(self.pool())
            .await
            .map(|_| ())
            .map_err(q("add token"))
    }

    /// The name and role of a token, if it is known.
    pub async fn authenticate(&self, token: &str) -> Result<Option<(String, Role)>, StoreError> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT name, role FROM api_tokens WHERE token_hash = ?")
                .bind(token_hash(token))
                .fetch_optional(self.pool())
                .await
                .map_err(q("authenticate"))?;
        Ok(row.and_then(|(name, role)| Role::parse(&role).map(|r| (name, r))))
    }
}
