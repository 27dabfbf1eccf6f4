-- Diagnostics bundles (ocadm clusters diag). Mirrors ../sqlite/0004_diagnostics.sql,
-- which explains the columns.
ALTER TABLE operations ADD COLUMN result TEXT NULL;

CREATE TABLE diagnostics_requests (
    operation_id BIGINT NOT NULL PRIMARY KEY,
    cluster_id BIGINT NOT NULL,
    days BIGINT NOT NULL,
    bucket VARCHAR(63) NOT NULL,
    object_key VARCHAR(1024) NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NULL,
    lease_owner VARCHAR(128) NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    INDEX diagnostics_requests_lease (lease_until)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
