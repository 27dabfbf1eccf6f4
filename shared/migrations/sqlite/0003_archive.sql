-- The history archive's journal: one row per batch of history rows (status
-- history, finished operations, audit log) archived to the staging bucket.
-- Mirrors ../mysql/0003_archive.sql.
--
-- A batch is the table's eligible rows with ids from first_id to last_id (rows
-- older than cutoff_ms; operations only once finished), written as gzip JSON
-- Lines to object_key. sha256 is the hex SHA-256 of the uncompressed lines.
-- state: PENDING (recorded, the object may not exist yet), UPLOADED (put, not
-- yet verified), DONE (verified; its rows were deleted in the same transaction
-- that set DONE), STALE (its rows changed before they were deleted: the object
-- is deleted, then the batch is forgotten). DONE rows stay: they say where each
-- archived id is.
CREATE TABLE archive_batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    cutoff_ms INTEGER NOT NULL,
    object_key TEXT NOT NULL,
    row_count INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (table_name, first_id, last_id)
);
CREATE INDEX archive_batches_state ON archive_batches (table_name, state);

-- Keeps two archive runs from overlapping.
INSERT INTO leases (name, owner, until_ms) VALUES ('history-archive', '', 0);
