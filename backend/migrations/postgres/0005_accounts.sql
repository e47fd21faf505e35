-- Accounts an admin can disable (a disabled user's tokens stop working), and tokens their
-- owners can list: a label and when each was made.
ALTER TABLE users ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN label TEXT;
ALTER TABLE tokens ADD COLUMN created_ms BIGINT;
-- API tokens made before tokens expired get the default lifetime, 90 days from now.
UPDATE tokens SET expires_ms = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT + 7776000000
WHERE kind = 'api' AND expires_ms IS NULL;
