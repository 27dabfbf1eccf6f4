-- The history archive's journal. Mirrors ../sqlite/0003_archive.sql, which
-- explains the columns and states.
CREATE TABLE archive_batches (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    table_name VARCHAR(64) NOT NULL,
    first_id BIGINT NOT NULL,
    last_id BIGINT NOT NULL,
    cutoff_ms BIGINT NOT NULL,
    object_key VARCHAR(1024) NOT NULL,
    row_count BIGINT NOT NULL,
    sha256 CHAR(64) NOT NULL,
    state VARCHAR(16) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE KEY archive_batches_range (table_name, first_id, last_id),
    INDEX archive_batches_state (table_name, state)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Keeps two archive runs from overlapping.
INSERT INTO leases (name, owner, until_ms) VALUES ('history-archive', '', 0);
