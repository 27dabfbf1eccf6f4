-- Regions and failover (docs/failover.md). Mirrors ../mysql/0006_failover.sql.

-- Environments are paired across regions: pair_id names the partner, and
-- failover_role says which side holds the PRIMARY endpoint records (the first of
-- the pair) and which the SECONDARY. warm_standby_nodes (the same on both rows)
-- is how many nodes a parked partner keeps (0: cold, made at failover time).
-- pair_serving is set on the side whose clusters take the traffic; a failover
-- moves it, in one transaction, for the plain-record fallback of the endpoint.
ALTER TABLE environments ADD COLUMN pair_id INTEGER;
ALTER TABLE environments ADD COLUMN failover_role TEXT;
ALTER TABLE environments ADD COLUMN warm_standby_nodes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE environments ADD COLUMN pair_serving INTEGER NOT NULL DEFAULT 1;

-- A cluster of a paired environment and its partner on the other side name each
-- other in partner_id. A parked cluster stands by: it keeps warm_standby_nodes
-- nodes (or none), is not swept, and takes no resize, upgrade or restart.
-- drill_id: the drill (operation) that made the cluster, which removes it.
ALTER TABLE clusters ADD COLUMN parked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clusters ADD COLUMN partner_id INTEGER;
ALTER TABLE clusters ADD COLUMN drill_id INTEGER;

-- The DM's regions as the active region keeps them: the Route 53 health check
-- that follows each region's serving alarm, and the active region's heartbeat
-- (which replicates to the standby regions, where its age is a metric).
CREATE TABLE dm_regions (
    region TEXT NOT NULL PRIMARY KEY,
    health_check_id TEXT,
    heartbeat_at INTEGER NOT NULL DEFAULT 0,
    clusters_ready INTEGER NOT NULL DEFAULT 0,
    clusters INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

-- Every epoch a region held, written by that region once its database took
-- writes. The fence (DynamoDB) is the truth; this is the replicated history.
CREATE TABLE leadership_history (
    epoch INTEGER NOT NULL PRIMARY KEY,
    region TEXT NOT NULL,
    previous TEXT,
    at INTEGER NOT NULL,
    failover_id TEXT,
    operation_id INTEGER
);
