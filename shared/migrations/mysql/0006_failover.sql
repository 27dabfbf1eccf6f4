-- Regions and failover. Mirrors ../sqlite/0006_failover.sql, which explains the
-- columns.
ALTER TABLE environments
    ADD COLUMN pair_id BIGINT NULL,
    ADD COLUMN failover_role VARCHAR(16) NULL,
    ADD COLUMN warm_standby_nodes BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN pair_serving BIGINT NOT NULL DEFAULT 1;

ALTER TABLE clusters
    ADD COLUMN parked BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN partner_id BIGINT NULL,
    ADD COLUMN drill_id BIGINT NULL;

CREATE TABLE dm_regions (
    region VARCHAR(32) NOT NULL PRIMARY KEY,
    health_check_id VARCHAR(64) NULL,
    heartbeat_at BIGINT NOT NULL DEFAULT 0,
    clusters_ready BIGINT NOT NULL DEFAULT 0,
    clusters BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE leadership_history (
    epoch BIGINT NOT NULL PRIMARY KEY,
    region VARCHAR(32) NOT NULL,
    previous VARCHAR(32) NULL,
    at BIGINT NOT NULL,
    failover_id VARCHAR(128) NULL,
    operation_id BIGINT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
