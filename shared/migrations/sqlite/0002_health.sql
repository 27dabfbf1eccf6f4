-- Health: what the node agents report, the status history, auto-repair, and
-- named leases (the health sweep's). Mirrors ../mysql/0002_health.sql.

-- A node's address, its launch, the lifecycle action that holds it while it
-- joins, the last probe of its agent (JSON, see domain::health::Probe), and the
-- repair bookkeeping.
ALTER TABLE nodes ADD COLUMN private_ip TEXT;
ALTER TABLE nodes ADD COLUMN launched_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN action_hook TEXT;
ALTER TABLE nodes ADD COLUMN action_token TEXT;
ALTER TABLE nodes ADD COLUMN joining_since INTEGER;
ALTER TABLE nodes ADD COLUMN probe TEXT;
ALTER TABLE nodes ADD COLUMN checked_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN unhealthy_since INTEGER;
ALTER TABLE nodes ADD COLUMN repair_requested_at INTEGER;

-- Whether the sweep may replace the cluster's broken nodes.
ALTER TABLE clusters ADD COLUMN auto_repair INTEGER NOT NULL DEFAULT 1;
-- When status_code last changed (elapsedTime counts from here).
ALTER TABLE clusters ADD COLUMN status_since INTEGER NOT NULL DEFAULT 0;
-- When a health sweep last judged the cluster; an older sweep never overwrites a newer one.
ALTER TABLE clusters ADD COLUMN health_checked_at INTEGER NOT NULL DEFAULT 0;
-- Services running on every node in service (the 7 of "7/7").
ALTER TABLE clusters ADD COLUMN running_services INTEGER NOT NULL DEFAULT 0;
UPDATE clusters SET status_since = updated_at;

CREATE TABLE cluster_status_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX cluster_status_history_cluster ON cluster_status_history (cluster_id, at);

CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until_ms INTEGER NOT NULL
);
INSERT INTO leases (name, owner, until_ms) VALUES ('health-sweep', '', 0);
