-- Diagnostics bundles (ocadm clusters diag). Mirrors ../mysql/0004_diagnostics.sql.
--
-- operations.result: what a finished operation produced, when it produced
-- something (a DIAGNOSTICS operation: the s3:// URI of its bundle). NULL otherwise.
ALTER TABLE operations ADD COLUMN result TEXT;

-- One row per DIAGNOSTICS operation that has not finished: what to build and
-- where to write it, and the worker's lease. The row is deleted in the
-- transaction that finishes its operation, so the table only holds open work.
-- attempts counts the claims; last_error is the reason the last attempt gave
-- the work back. A worker holds the row while lease_until is in the future.
CREATE TABLE diagnostics_requests (
    operation_id INTEGER PRIMARY KEY,
    cluster_id INTEGER NOT NULL,
    days INTEGER NOT NULL,
    bucket TEXT NOT NULL,
    object_key TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    lease_owner TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE INDEX diagnostics_requests_lease ON diagnostics_requests (lease_until);
