-- Health: what the node agents report, the status history, auto-repair, and
-- named leases (the health sweep's). Mirrors ../sqlite/0002_health.sql.

ALTER TABLE nodes
    ADD COLUMN private_ip VARCHAR(64) NULL,
    ADD COLUMN launched_at BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN action_hook VARCHAR(255) NULL,
    ADD COLUMN action_token VARCHAR(64) NULL,
    ADD COLUMN joining_since BIGINT NULL,
    ADD COLUMN probe TEXT NULL,
    ADD COLUMN checked_at BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN unhealthy_since BIGINT NULL,
    ADD COLUMN repair_requested_at BIGINT NULL;

ALTER TABLE clusters
    ADD COLUMN auto_repair BIGINT NOT NULL DEFAULT 1,
    ADD COLUMN status_since BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN health_checked_at BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN running_services BIGINT NOT NULL DEFAULT 0;
UPDATE clusters SET status_since = updated_at;

CREATE TABLE cluster_status_history (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    cluster_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    code VARCHAR(32) NOT NULL,
    message TEXT NOT NULL,
    INDEX cluster_status_history_cluster (cluster_id, at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE leases (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    owner VARCHAR(128) NOT NULL,
    until_ms BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
INSERT INTO leases (name, owner, until_ms) VALUES ('health-sweep', '', 0);
