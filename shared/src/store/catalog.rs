//! What AWS offers per region (instance types and their sizes), cached by the
//! reconciler so that the API can check a cluster's size without calling AWS.

use super::{q, Store, StoreError};
use crate::domain::InstanceSize;

impl Store {
    /// Whether the region's instance types are cached.
    pub async fn has_instance_types(&self, region: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instance_types WHERE region = ?")
            .bind(region)
            .fetch_one(self.pool())
            .await
            .map_err(q("count instance types"))?;
        Ok(n > 0)
    }

    /// Replaces the region's cached instance types, in batches of a few hundred
    /// rows per statement.
    pub async fn put_instance_types(
        &self,
        region: &str,
        types: &[(String, InstanceSize)],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        sqlx::query("DELETE FROM instance_types WHERE region = ?")
            .bind(region)
            .execute(&mut *tx)
            .await
            .map_err(q("clear instance types"))?;
        for chunk in types.chunks(200) {
            let values = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!("INSERT INTO instance_types (region, name, vcpus, memory_mib) VALUES {values}");
            let mut insert = sqlx::query(&sql);
            for (name, size) in chunk {
                insert = insert
                    .bind(region)
                    .bind(name.clone())
                    .bind(size.vcpus)
                    .bind(size.memory_mib);
            }
            insert
                .execute(&mut *tx)
                .await
                .map_err(q("insert instance types"))?;
        }
        tx.commit().await.map_err(q("commit instance types"))
    }

    /// The size of an instance type the region offers, or `None`.
    pub async fn instance_size(&self, region: &str, name: &str) -> Result<Option<InstanceSize>, StoreError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT vcpus, memory_mib FROM instance_types WHERE region = ? AND name = ?")
                .bind(region)
                .bind(name)
                .fetch_optional(self.pool())
                .await
                .map_err(q("instance size"))?;
        Ok(row.map(|(vcpus, memory_mib)| InstanceSize { vcpus, memory_mib }))
    }
}
