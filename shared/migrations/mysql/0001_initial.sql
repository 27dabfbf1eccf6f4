-- The DM's state on MySQL 5.6+ / Aurora MySQL. Mirrors ../sqlite/0001_initial.sql;
-- keep the two in step. Forward-only: later changes are new files, never edits.

CREATE TABLE environments (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(63) NOT NULL,
    live_name VARCHAR(63) NULL UNIQUE,
    region VARCHAR(32) NOT NULL,
    vpc_id VARCHAR(64) NULL,
    subnet_ids TEXT NOT NULL,
    vpc_cidr VARCHAR(32) NULL,
    admin_cidr VARCHAR(32) NULL,
    create_security_group BIGINT NOT NULL,
    security_group_id VARCHAR(64) NULL,
    delete_requested BIGINT NOT NULL DEFAULT 0,
    status_code VARCHAR(32) NOT NULL,
    status_message TEXT NOT NULL,
    generation BIGINT NOT NULL DEFAULT 1,
    observed_generation BIGINT NOT NULL DEFAULT 0,
    row_version BIGINT NOT NULL DEFAULT 1,
    lease_owner VARCHAR(128) NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE clusters (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    environment_id BIGINT NOT NULL,
    name VARCHAR(63) NOT NULL,
    live_key VARCHAR(96) NULL UNIQUE,
    description TEXT NOT NULL,
    cluster_type VARCHAR(32) NOT NULL,
    num_nodes BIGINT NOT NULL,
    instance_type VARCHAR(32) NOT NULL,
    storage_gb BIGINT NOT NULL,
    odas_version VARCHAR(32) NOT NULL,
    owner VARCHAR(128) NOT NULL,
    tags TEXT NOT NULL,
    termination_protection BIGINT NOT NULL,
    delete_requested BIGINT NOT NULL DEFAULT 0,
    config_generation BIGINT NOT NULL DEFAULT 1,
    status_code VARCHAR(32) NOT NULL,
    status_message TEXT NOT NULL,
    generation BIGINT NOT NULL DEFAULT 1,
    observed_generation BIGINT NOT NULL DEFAULT 0,
    asg_name VARCHAR(255) NULL,
    launch_template_id VARCHAR(64) NULL,
    config_uri VARCHAR(1024) NULL,
    row_version BIGINT NOT NULL DEFAULT 1,
    lease_owner VARCHAR(128) NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    INDEX clusters_environment (environment_id),
    CONSTRAINT clusters_environment_fk FOREIGN KEY (environment_id) REFERENCES environments (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE nodes (
    instance_id VARCHAR(64) NOT NULL PRIMARY KEY,
    cluster_id BIGINT NOT NULL,
    lifecycle_state VARCHAR(32) NOT NULL,
    availability_zone VARCHAR(32) NOT NULL,
    updated_at BIGINT NOT NULL,
    INDEX nodes_cluster (cluster_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE operations (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind VARCHAR(32) NOT NULL,
    target_kind VARCHAR(16) NOT NULL,
    target_id BIGINT NOT NULL,
    target_generation BIGINT NOT NULL,
    state VARCHAR(16) NOT NULL,
    steps TEXT NOT NULL,
    error TEXT NULL,
    principal VARCHAR(128) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    INDEX operations_target (target_kind, target_id, state)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE idempotency_keys (
    principal VARCHAR(128) NOT NULL,
    idem_key VARCHAR(255) NOT NULL,
    request_hash CHAR(64) NOT NULL,
    operation_id BIGINT NOT NULL,
    target VARCHAR(64) NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (principal, idem_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE audit_log (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at BIGINT NOT NULL,
    principal VARCHAR(128) NOT NULL,
    action VARCHAR(64) NOT NULL,
    target VARCHAR(128) NOT NULL,
    detail TEXT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE api_tokens (
    token_hash CHAR(64) NOT NULL PRIMARY KEY,
    name VARCHAR(128) NOT NULL,
    role VARCHAR(16) NOT NULL,
    created_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE instance_types (
    region VARCHAR(32) NOT NULL,
    name VARCHAR(64) NOT NULL,
    vcpus BIGINT NOT NULL,
    memory_mib BIGINT NOT NULL,
    PRIMARY KEY (region, name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE settings (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
