-- The DM's state. Forward-only: later changes are new files, never edits.
-- Times are epoch milliseconds (INTEGER). JSON columns hold small documents.

CREATE TABLE environments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    -- The name while the environment is live, NULL once deleted: unique among live ones.
    live_name TEXT UNIQUE,
    region TEXT NOT NULL,
    vpc_id TEXT,
    subnet_ids TEXT NOT NULL,
    vpc_cidr TEXT,
    admin_cidr TEXT,
    create_security_group INTEGER NOT NULL,
    security_group_id TEXT,
    delete_requested INTEGER NOT NULL DEFAULT 0,
    status_code TEXT NOT NULL,
    status_message TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 1,
    observed_generation INTEGER NOT NULL DEFAULT 0,
    row_version INTEGER NOT NULL DEFAULT 1,
    lease_owner TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE clusters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id INTEGER NOT NULL REFERENCES environments (id),
    name TEXT NOT NULL,
    -- "<environment id>/<name>" until the cluster is terminated.
    live_key TEXT UNIQUE,
    description TEXT NOT NULL,
    cluster_type TEXT NOT NULL,
    num_nodes INTEGER NOT NULL,
    instance_type TEXT NOT NULL,
    storage_gb INTEGER NOT NULL,
    odas_version TEXT NOT NULL,
    owner TEXT NOT NULL,
    tags TEXT NOT NULL,
    termination_protection INTEGER NOT NULL,
    delete_requested INTEGER NOT NULL DEFAULT 0,
    config_generation INTEGER NOT NULL DEFAULT 1,
    status_code TEXT NOT NULL,
    status_message TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 1,
    observed_generation INTEGER NOT NULL DEFAULT 0,
    asg_name TEXT,
    launch_template_id TEXT,
    config_uri TEXT,
    row_version INTEGER NOT NULL DEFAULT 1,
    lease_owner TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX clusters_environment ON clusters (environment_id);

CREATE TABLE nodes (
    instance_id TEXT PRIMARY KEY,
    cluster_id INTEGER NOT NULL REFERENCES clusters (id),
    lifecycle_state TEXT NOT NULL,
    availability_zone TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX nodes_cluster ON nodes (cluster_id);

CREATE TABLE operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id INTEGER NOT NULL,
    -- The target's generation that, once observed, completes this operation.
    target_generation INTEGER NOT NULL,
    state TEXT NOT NULL,
    steps TEXT NOT NULL,
    error TEXT,
    principal TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX operations_target ON operations (target_kind, target_id, state);

CREATE TABLE idempotency_keys (
    principal TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    operation_id INTEGER NOT NULL,
    target TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (principal, idem_key)
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    principal TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE instance_types (
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    vcpus INTEGER NOT NULL,
    memory_mib INTEGER NOT NULL,
    PRIMARY KEY (region, name)
);

CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
