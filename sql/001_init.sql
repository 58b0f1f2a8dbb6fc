-- Accounts (OIDC users who own devices, and operators: "agents" and admins) and the audit log.
-- Later features add their tables in their own numbered migrations.

CREATE TABLE accounts (
    id              bigserial PRIMARY KEY,
    -- Operator login ("user_id" in the helpdesk console API); NULL for OIDC-only users.
    login           text UNIQUE CHECK (login IS NULL OR login ~ '^[A-Za-z0-9._@-]{1,64}$'),
    display_name    text NOT NULL DEFAULT '' CHECK (length(display_name) <= 200),
    email           text CHECK (email IS NULL OR length(email) <= 320),
    oidc_issuer     text,
    oidc_subject    text,
    -- libxcrypt hash: yescrypt ($y$) for new passwords; bcrypt ($2b$/$2a$) from the old system.
    password_hash   text,
    roles           text[] NOT NULL DEFAULT '{user}'
                    CHECK (roles <@ ARRAY['user', 'agent', 'admin']::text[] AND cardinality(roles) > 0),
    agent_status    text NOT NULL DEFAULT 'offline' CHECK (agent_status IN ('online', 'busy', 'offline')),
    current_load    integer NOT NULL DEFAULT 0 CHECK (current_load >= 0),
    max_load        integer NOT NULL DEFAULT 5 CHECK (max_load >= 0),
    -- TOTP: secrets are AES-256-GCM ciphertexts; the key id says which EDGEGATE_MFA_KEY made them.
    mfa_enabled          boolean NOT NULL DEFAULT false,
    mfa_secret_enc       bytea,
    mfa_pending_enc      bytea,
    mfa_key_id           text,
    mfa_last_step        bigint,   -- the last accepted time step: a code is accepted once
    mfa_last_verified_at timestamptz,
    disabled        boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (oidc_issuer, oidc_subject),
    CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL))
);

CREATE INDEX accounts_agent_status ON accounts (agent_status) WHERE 'agent' = ANY (roles) OR 'admin' = ANY (roles);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    account_id  bigint REFERENCES accounts (id) ON DELETE SET NULL,
    actor_id    bigint REFERENCES accounts (id) ON DELETE SET NULL, -- who did it, when not the account itself
    event       text NOT NULL,          -- e.g. login, login_failed, logout, password_changed
    outcome     text NOT NULL CHECK (outcome IN ('ok', 'failed', 'denied', 'locked')),
    remote_addr text,
    request_id  text,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX audit_log_account_at ON audit_log (account_id, at DESC);
CREATE INDEX audit_log_at ON audit_log (at DESC);
