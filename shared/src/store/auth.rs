//! API tokens and the roles callers have. Only a SHA-256 of each token is stored;
//! the token itself is shown once, to whoever created it.

use sha2::{Digest, Sha256};

use super::{q, Store, StoreError};
use crate::time::now_ms;

/// What a caller may do. Each role may do everything the roles before it may:
/// `Viewer < Operator < Admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// May read everything.
    Viewer,
    /// May also change environments and clusters.
    Operator,
    /// May also act on the whole DM: failovers, drills, the default version.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == raw)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_their_own_names_and_are_ordered_viewer_operator_admin() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for bad in ["", "Admin", "OPERATOR", "root", " viewer"] {
            assert_eq!(Role::parse(bad), None, "{bad:?}");
        }
    }
}
