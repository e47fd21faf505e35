-- Accounts an admin can disable (a disabled user's tokens stop working), and tokens their
-- owners can list: a label and when each was made.
ALTER TABLE users ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN label TEXT;
ALTER TABLE tokens ADD COLUMN created_ms BIGINT;
