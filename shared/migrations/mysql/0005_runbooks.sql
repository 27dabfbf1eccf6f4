-- Runbooks and stable cluster endpoints. Mirrors ../sqlite/0005_runbooks.sql,
-- which explains the columns.
ALTER TABLE clusters ADD COLUMN endpoint VARCHAR(255) NULL;
ALTER TABLE clusters ADD COLUMN serves_endpoint BIGINT NOT NULL DEFAULT 1;
-- VARCHAR, not TEXT: MySQL before 8.0.13 allows no default on TEXT.
ALTER TABLE clusters ADD COLUMN components VARCHAR(1024) NOT NULL DEFAULT '{}';
ALTER TABLE clusters ADD COLUMN replaces_id BIGINT NULL;
ALTER TABLE clusters ADD COLUMN protection_allows_upgrade BIGINT NOT NULL DEFAULT 0;
-- Room for the "#<operation>" suffix a cluster's key carries while it is not the serving one.
ALTER TABLE clusters MODIFY live_key VARCHAR(128) NULL;

CREATE TABLE runbooks (
    id BIGINT NOT NULL PRIMARY KEY,
    kind VARCHAR(32) NOT NULL,
    cluster_id BIGINT NOT NULL,
    state VARCHAR(16) NOT NULL,
    phase VARCHAR(16) NOT NULL DEFAULT 'MAIN',
    next_seq BIGINT NOT NULL DEFAULT 0,
    params TEXT NOT NULL,
    context TEXT NOT NULL,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    error TEXT NULL,
    lease_owner VARCHAR(128) NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    wake_at BIGINT NOT NULL DEFAULT 0,
    version BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    INDEX runbooks_due (state, wake_at),
    INDEX runbooks_cluster (cluster_id, state)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE runbook_steps (
    runbook_id BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    name VARCHAR(64) NOT NULL,
    arg VARCHAR(255) NOT NULL DEFAULT '',
    state VARCHAR(16) NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NULL,
    finished_at BIGINT NULL,
    result TEXT NULL,
    error TEXT NULL,
    PRIMARY KEY (runbook_id, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
