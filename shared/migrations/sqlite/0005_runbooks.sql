-- Runbooks (upgrades by replacement, rollbacks, restarts; failover and drills
-- later) and stable cluster endpoints. Mirrors ../mysql/0005_runbooks.sql.

-- The cluster's DNS name in the configured Route 53 zone (NULL without a zone).
-- An upgrade's replacement carries the same name; serves_endpoint says which of
-- the two the record points at. The reconciler keeps the record of a serving
-- cluster equal to its in-service nodes' addresses.
ALTER TABLE clusters ADD COLUMN endpoint TEXT;
ALTER TABLE clusters ADD COLUMN serves_endpoint INTEGER NOT NULL DEFAULT 1;
-- Per-service version overrides ({"planner": "2.1.1"}), on top of odas_version.
ALTER TABLE clusters ADD COLUMN components TEXT NOT NULL DEFAULT '{}';
-- For an upgrade's replacement: the cluster it replaces.
ALTER TABLE clusters ADD COLUMN replaces_id INTEGER;
-- Termination protection refuses upgrades unless this is set.
ALTER TABLE clusters ADD COLUMN protection_allows_upgrade INTEGER NOT NULL DEFAULT 0;

-- One runbook per runbook operation (id = operations.id). next_seq is the seq of
-- the step to run next; a runner holds the runbook while lease_until is in the
-- future, and looks again at wake_at; version grows with every write (MySQL counts
-- changed rows only, so compare-and-set checks need a column that always changes). params are what was asked, context what
-- the steps learned (the replacement's id, when the endpoint moved).
-- state: RUNNING, SUCCEEDED, FAILED, CANCELLED. phase: MAIN, then UNDO once a
-- step failed or the runbook was cancelled and the undo steps were appended.
CREATE TABLE runbooks (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    cluster_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT 'MAIN',
    next_seq INTEGER NOT NULL DEFAULT 0,
    params TEXT NOT NULL,
    context TEXT NOT NULL DEFAULT '{}',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    lease_owner TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    wake_at INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX runbooks_due ON runbooks (state, wake_at);
CREATE INDEX runbooks_cluster ON runbooks (cluster_id, state);

-- The steps of a runbook, in order. attempts counts starts; result and error
-- are what the last attempt said.
CREATE TABLE runbook_steps (
    runbook_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    arg TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER,
    finished_at INTEGER,
    result TEXT,
    error TEXT,
    PRIMARY KEY (runbook_id, seq)
);

