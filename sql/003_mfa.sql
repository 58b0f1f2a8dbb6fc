-- TOTP MFA (api-server/mfa*.c): the invariants the code relies on, enforced where the data lives.
--
-- An account holds at most one TOTP secret, sealed with AES-256-GCM (api-server/mfa_keys.h):
-- the pending one between `bind/start` and `bind/confirm`, or the active one while MFA is on.
-- So one mfa_key_id names the key of whichever is stored, and "MFA on" means "an active secret".
ALTER TABLE accounts
    ADD CONSTRAINT accounts_mfa_enabled_iff_secret
        CHECK (mfa_enabled = (mfa_secret_enc IS NOT NULL)),
    ADD CONSTRAINT accounts_mfa_one_secret
        CHECK (mfa_secret_enc IS NULL OR mfa_pending_enc IS NULL),
    ADD CONSTRAINT accounts_mfa_key_named
        CHECK ((mfa_secret_enc IS NULL AND mfa_pending_enc IS NULL) = (mfa_key_id IS NULL)),
    ADD CONSTRAINT accounts_mfa_sealed_size
        CHECK (octet_length(mfa_secret_enc) <= 128 AND octet_length(mfa_pending_enc) <= 128);
