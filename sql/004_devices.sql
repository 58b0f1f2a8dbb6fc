-- Edge devices and their pairing codes; monitored servers and their heartbeats.
--
-- Secrets are never stored, only their SHA-256 (lower-case hex): the device credential (Redis
-- keeps the same hash as `tunnel:cred:<hash>`, so `api-server sync-credentials` can rebuild
-- Redis from this table), the pairing code, the server API key and the heartbeat challenge.

CREATE TABLE devices (
    -- The device id everywhere (Redis, events, the internal API) is this uuid's text form.
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id        bigint NOT NULL REFERENCES accounts (id),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- The live credential's hash; NULL once revoked (the credential is gone, the row stays for
    -- the audit trail).
    token_hash      text UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    -- When a tunnel of the device last came or went (remote-proxy's device.online/offline).
    last_seen_at    timestamptz,
    CHECK ((revoked_at IS NULL) = (token_hash IS NOT NULL))
);

CREATE INDEX devices_owner ON devices (owner_id, created_at) WHERE revoked_at IS NULL;

CREATE TABLE pairing_codes (
    id          bigserial PRIMARY KEY,
    -- Looked up by hash: comparing the code itself would leak how much of a guess was right.
    code_hash   text NOT NULL UNIQUE CHECK (code_hash ~ '^[0-9a-f]{64}$'),
    owner_id    bigint NOT NULL REFERENCES accounts (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    -- Set once, by the one conditional UPDATE that also creates the device.
    used_at     timestamptz,
    device_id   uuid REFERENCES devices (id),
    CHECK ((used_at IS NULL) = (device_id IS NULL))
);

CREATE INDEX pairing_codes_owner_open ON pairing_codes (owner_id) WHERE used_at IS NULL;
CREATE INDEX pairing_codes_expires ON pairing_codes (expires_at);

CREATE TABLE servers (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id                bigint NOT NULL REFERENCES accounts (id),
    identifier              text NOT NULL UNIQUE CHECK (identifier ~ '^[A-Za-z0-9._:@-]{1,128}$'),
    name                    text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    api_key_hash            text NOT NULL UNIQUE CHECK (api_key_hash ~ '^[0-9a-f]{64}$'),
    enabled                 boolean NOT NULL DEFAULT true,
    -- The current registration challenge (a uuid shown once), its end and its first use.
    challenge_hash          text UNIQUE CHECK (challenge_hash ~ '^[0-9a-f]{64}$'),
    challenge_expires_at    timestamptz,
    challenge_first_used_at timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    -- The last heartbeat: when, how it authenticated, and what it reported.
    last_seen_at            timestamptz,
    last_auth               text CHECK (last_auth IN ('challenge', 'api_key')),
    openclaw_version        text CHECK (length(openclaw_version) <= 64),
    agents                  jsonb,
    cpu_pct                 double precision CHECK (cpu_pct BETWEEN 0 AND 100),
    mem_pct                 double precision CHECK (mem_pct BETWEEN 0 AND 100),
    disk_pct                double precision CHECK (disk_pct BETWEEN 0 AND 100),
    swap_pct                double precision CHECK (swap_pct BETWEEN 0 AND 100)
);

CREATE INDEX servers_owner ON servers (owner_id, created_at);
