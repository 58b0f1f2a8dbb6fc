-- Session revocation that does not depend on Redis.
--
-- Every session (Redis `session:<hash>`) records the account's session_epoch at the time it was
-- issued; the auth guard reads the account on every request and refuses a session whose epoch
-- is not the current one. A change that must end sessions (password change, role change,
-- disable) bumps the epoch in the same UPDATE, so the change and the revocation are one atomic
-- statement: deleting the Redis keys afterwards is housekeeping, and a Redis failure at that
-- moment cannot leave an old session alive.
ALTER TABLE accounts ADD COLUMN session_epoch bigint NOT NULL DEFAULT 0 CHECK (session_epoch >= 0);
