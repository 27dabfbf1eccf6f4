-- The principal of a write is a token's name or, when the API runs with
-- OKERA_AUTH=iam, the caller's full ARN: an assumed-role session's runs to about
-- 180 characters, more than the 128 these columns held. The API refuses a
-- caller whose ARN is longer than 512 (MAX_PRINCIPAL in functions/api's
-- auth.rs). With idem_key, the key of idempotency_keys stays within InnoDB's
-- 3072 bytes: (512 + 255) * 4. SQLite's TEXT columns need no change.
ALTER TABLE operations MODIFY principal VARCHAR(512) NOT NULL;
ALTER TABLE idempotency_keys MODIFY principal VARCHAR(512) NOT NULL;
ALTER TABLE audit_log MODIFY principal VARCHAR(512) NOT NULL;
