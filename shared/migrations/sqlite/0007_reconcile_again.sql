-- A reconcile run that finds its target leased by another run asks that run for
-- another pass: the holder read the row before the change that woke the asker.
-- The holder clears the ask and goes again instead of releasing; a new lease
-- clears it too (the new holder reads the row as it is now).
ALTER TABLE environments ADD COLUMN reconcile_again INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clusters ADD COLUMN reconcile_again INTEGER NOT NULL DEFAULT 0;
