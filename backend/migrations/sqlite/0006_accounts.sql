-- Accounts an admin can disable (a disabled user's tokens stop working), and tokens their
-- owners can list: a label and when each was made.
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN label TEXT;
ALTER TABLE tokens ADD COLUMN created_ms INTEGER;
-- API tokens made before tokens expired get the default lifetime, 90 days from now.
UPDATE tokens SET expires_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) + 7776000000
WHERE kind = 'api' AND expires_ms IS NULL;
