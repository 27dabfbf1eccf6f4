-- Asks for another reconcile pass. Mirrors ../sqlite/0007_reconcile_again.sql,
-- which explains the column.
ALTER TABLE environments ADD COLUMN reconcile_again BIGINT NOT NULL DEFAULT 0;
ALTER TABLE clusters ADD COLUMN reconcile_again BIGINT NOT NULL DEFAULT 0;
