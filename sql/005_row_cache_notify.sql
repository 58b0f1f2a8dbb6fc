-- api-server keeps the rows every signed-in request reads (its account; the owner of a device
-- behind the front door) in memory (api-server/row_cache.h). These triggers are what make that
-- safe: every change of a cached column, every delete, and every truncate NOTIFYs channel
-- edgegate_cache, inside the changing transaction (delivered at commit), whoever the writer is:
-- any api-server replica, a migration, an operator in psql. The payload names the cache entry:
-- "<table>:<id>", or "*" for everything.

CREATE FUNCTION edgegate_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('edgegate_cache', TG_TABLE_NAME || ':' || OLD.id::text);
    RETURN NULL;
END
$$;

CREATE FUNCTION edgegate_table_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('edgegate_cache', '*');
    RETURN NULL;
END
$$;

-- The columns of ACCOUNT_COLUMNS (api-server/account.h): an UPDATE that sets none of them
-- (a login timestamp, the last TOTP step) leaves the cache alone.
CREATE TRIGGER accounts_row_changed
    AFTER UPDATE OF id, login, display_name, email, roles, agent_status, current_load, max_load,
                    mfa_enabled, disabled, session_epoch OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION edgegate_row_changed();
CREATE TRIGGER accounts_emptied AFTER TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION edgegate_table_emptied();

-- Who may reach a device: its owner while it is not revoked (last_seen_at changes often and is
-- not cached).
CREATE TRIGGER devices_row_changed
    AFTER UPDATE OF id, owner_id, revoked_at OR DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION edgegate_row_changed();
CREATE TRIGGER devices_emptied AFTER TRUNCATE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION edgegate_table_emptied();
