"""Accounts, sessions and the auth guard, through the real api-server over sockets.

Every test has its own database (fresh_database + migrate) and its own empty Redis database
(REDIS_DB, flushed at the start), so tests are independent of each other and of other modules'
tests. Admins come from `api-server create-admin` (password on stdin), agents from the admin
API, plain users and old-system hashes from SQL, as they would in a real deployment.

Admin routes and the password change are MFA step-up routes (test_mfa.py): tests that use them
bind TOTP for the account through the API first, with codes from oathtool (Deployment.mfa_token).
"""
import base64
import hashlib
import json
import os
import secrets
import statistics
import subprocess
import time

from harness import (BIN, INTERNAL_TOKEN, REDIS_PORT, REDIS_URL, ApiServer, base_env, check, eq,
                     fresh_database, migrate, pg_start, pg_stop, redis_start, redis_stop, request,
                     require_services, wait_until)
from ws_kit import refusal

# A Redis database of our own: flushing it cannot disturb state that other tests keep in db 0.
REDIS_DB = "9"
ADMIN, ADMIN_PW = "root", "root-password-1"
SESSION_IDLE = 8 * 3600
SESSION_ABSOLUTE = 7 * 24 * 3600

# Hashes as the old helpdesk system stored them: bcrypt, cost 10 (Go's bcrypt.DefaultCost),
# made with Python's crypt module. $2a$ and $2b$ are the same algorithm for short passwords.
LEGACY_PW = "legacy-secret-2019"
LEGACY_2B = "$2b$10$iDh307/xR82MzcFL46f64.vh4tCWj3a.aYdpIAXlZhKd8YOTLVetC"
LEGACY_2A = "$2a$10$7CdIEQ2Fb7dCr4PXGRkRfOk8//FNSXl2wyw4LF3XuRwewsQf9xqh2"


def rcli(*args):
    out = subprocess.run(["redis-cli", "-p", REDIS_PORT, "-n", REDIS_DB, *args], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def session_key(token):
    return "session:" + hashlib.sha256(token.encode()).hexdigest()


def totp(secret, at=None):
    """The TOTP code of a base32 secret, from oathtool (not our code), at unix time `at`."""
    argv = ["oathtool", "--totp", "--base32", secret]
    if at is not None:
        argv += ["-N", f"@{int(at)}"]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def create_admin(database_url, login, password, name=None):
    argv = [os.path.join(BIN, "api-server"), "create-admin", "--login", login]
    if name:
        argv += ["--name", name]
    # Only the database URL: the subcommand must not need the daemon's other secrets.
    env = {k: v for k, v in base_env().items() if not k.startswith("EDGEGATE_")}
    env["EDGEGATE_DATABASE_URL"] = database_url
    return subprocess.run(argv, env=env, input=password + "\n", capture_output=True, text=True,
                          timeout=30)


class Deployment:
    """A fresh database with an admin, and an api-server on it."""

    def __init__(self, env=None):
        require_services()
        rcli("FLUSHDB")
        self.url = fresh_database()
        r = migrate(self.url)
        eq(r.returncode, 0, f"migrate: {r.stderr}")
        r = create_admin(self.url, ADMIN, ADMIN_PW, "The Admin")
        eq(r.returncode, 0, f"create-admin: {r.stderr}")
        e = {"EDGEGATE_REDIS_URL": REDIS_URL.rsplit("/", 1)[0] + "/" + REDIS_DB}
        e.update(env or {})
        self.api = ApiServer(self.url, env=e)
        self.totp_secrets = {}  # login -> base32 secret, for accounts whose MFA a test bound

    def __enter__(self):
        self.api.start()
        return self

    def __exit__(self, *exc):
        return self.api.__exit__(*exc)

    @property
    def origin(self):
        return f"http://127.0.0.1:{self.api.port}"

    def sql(self, query):
        return subprocess.run(["psql", self.url, "-v", "ON_ERROR_STOP=1", "-qtAc", query],
                              check=True, capture_output=True, text=True).stdout.strip()

    def call(self, method, path, token=None, cookie=None, origin=None, body=None, headers=None):
        """One request; returns (status, parsed JSON body or None, response headers)."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        if cookie:
            h["Cookie"] = cookie
        if origin:
            h["Origin"] = origin
        raw = b""
        if body is not None:
            raw = json.dumps(body).encode() if not isinstance(body, (bytes, str)) else body
            h["Content-Type"] = "application/json"
        st, hd, bd = request("127.0.0.1", self.api.port, method, path, h, raw)
        try:
            doc = json.loads(bd) if bd else None
        except ValueError:
            doc = bd
        return st, doc, hd

    def status(self, method, path, **kw):
        return self.call(method, path, **kw)[0]

    def login(self, user, password, otp=None, **kw):
        body = {"user_id": user, "password": password}
        if otp is not None:
            body["otp_code"] = otp
        return self.call("POST", "/api/agents/login", body=body, **kw)

    def signed_in(self, user, password):
        """A sign-in as set-up, not as the thing tested: it does not count against the
        rate limit, nor against the one-use rule of TOTP codes (each has its own test)."""
        rcli("DEL", "ratelimit:login:127.0.0.1")
        secret = self.totp_secrets.get(user)
        if secret is None:
            return self.login(user, password)
        self.sql(f"UPDATE accounts SET mfa_last_step = NULL WHERE login = '{user}'")
        return self.login(user, password, otp=totp(secret))

    def bind_mfa(self, token, user):
        """Binds TOTP as a user would: bind/start, then bind/confirm with oathtool's code."""
        st, doc, _ = self.call("POST", "/api/mfa/bind/start", token=token)
        eq(st, 200, f"bind/start for {user}: {doc}")
        st, conf, _ = self.call("POST", "/api/mfa/bind/confirm", token=token,
                                body={"otp_code": totp(doc["secret"])})
        eq(st, 200, f"bind/confirm for {user}: {conf}")
        self.totp_secrets[user] = doc["secret"]
        return doc["secret"]

    def mfa_token(self, user=ADMIN, password=ADMIN_PW):
        """A session that admin and step-up routes accept: MFA bound (the first time), then a
        sign-in with a code, which counts as a verification."""
        if user not in self.totp_secrets:
            self.bind_mfa(self.token(user, password), user)
        return self.token(user, password)

    def token(self, user=ADMIN, password=ADMIN_PW):
        st, doc, _ = self.signed_in(user, password)
        eq(st, 200, f"login {user}: {doc}")
        return doc["token"]

    def cookie(self, user=ADMIN, password=ADMIN_PW):
        st, doc, hd = self.signed_in(user, password)
        eq(st, 200, f"login {user}: {doc}")
        return hd["set-cookie"].split(";")[0]

    def add_agent(self, admin_token, login, password, role="agent", name=None):
        st, doc, _ = self.call("POST", "/api/admin/agents", token=admin_token,
                               body={"user_id": login, "name": name or login.title(),
                                     "role": role, "password": password})
        eq(st, 201, f"create agent {login}: {doc}")
        return doc

    def add_plain_user(self, login, password):
        """A role-`user` account with a password: create-admin makes the hash, SQL the role."""
        r = create_admin(self.url, login, password)
        eq(r.returncode, 0, r.stderr)
        self.sql(f"UPDATE accounts SET roles = '{{user}}' WHERE login = '{login}'")

    def audit(self, event, outcome=None):
        cond = f"event = '{event}'" + (f" AND outcome = '{outcome}'" if outcome else "")
        rows = self.sql(f"SELECT coalesce(account_id, 0), coalesce(actor_id, 0), remote_addr, "
                        f"detail FROM audit_log WHERE {cond} ORDER BY id")
        return [r.split("|", 3) for r in rows.splitlines()] if rows else []


def error_code(doc):
    return doc["error"]["code"] if isinstance(doc, dict) and "error" in doc else doc


def wait_for_audit(dep, event, outcome, count=1):
    """Audit rows are written after the answer (fire-and-forget): give them a moment."""
    return wait_until(lambda: len(dep.audit(event, outcome)) >= count and dep.audit(event, outcome),
                      timeout=5, what=f"audit {event}/{outcome}")


# ---- sign-in ----

def test_create_admin_from_stdin_then_login_gives_token_agent_and_cookie():
    with Deployment() as dep:
        st, doc, hd = dep.login(ADMIN, ADMIN_PW)
        eq(st, 200, doc)
        token = doc["token"]
        eq(len(token), 43, "a 256-bit id in base64url")
        eq(doc["agent"], {"user_id": ADMIN, "name": "The Admin", "role": "admin",
                          "status": "offline", "current_load": 0, "max_load": 5,
                          "mfa_enabled": False})
        cookie = hd["set-cookie"]
        check(cookie.startswith(f"edgegate_session={token}."), cookie)
        for attr in ("HttpOnly", "SameSite=Lax", "Path=/", f"Max-Age={SESSION_ABSOLUTE}"):
            check(attr in cookie, f"{attr} missing from {cookie}")
        check("Secure" not in cookie, "EDGEGATE_DEV=1 drops Secure (and only it does)")
        eq(dep.call("GET", "/api/agents/me", token=token)[1]["user_id"], ADMIN)
        eq(dep.call("GET", "/api/auth/me", token=token)[1],
           {"id": 1, "login": ADMIN, "name": "The Admin", "email": None, "roles": ["admin"],
            "role": "admin", "mfa_enabled": False, "oidc_issuer": None})
        eq(dep.audit("create_admin")[0][3], '{"via": "command line", "created": true}')
        wait_for_audit(dep, "login", "ok")

        # Running it again resets the password, keeps the name and ends the admin's sessions.
        r = create_admin(dep.url, ADMIN, "another-password")
        eq(r.returncode, 0, r.stderr)
        check("updated admin 'root'" in r.stdout, r.stdout)
        eq(dep.status("GET", "/api/agents/me", token=token), 401, "old session after create-admin")
        eq(dep.login(ADMIN, ADMIN_PW)[0], 401)
        eq(dep.login(ADMIN, "another-password")[1]["agent"]["name"], "The Admin")

        r = create_admin(dep.url, "weak", "short")
        eq(r.returncode, 2, "a password under 8 bytes is refused")
        check("at least 8 bytes" in r.stderr, r.stderr)
        eq(dep.sql("SELECT count(*) FROM accounts WHERE login = 'weak'"), "0")
        r = create_admin(dep.url, "bad login", "long-enough-pw")
        eq(r.returncode, 2, "a login outside the pattern is refused")

        log = dep.api.log_text()
        for secret in (ADMIN_PW, "another-password", token):
            check(secret not in log, "a password or a full session token reached the log")

    # Without EDGEGATE_DEV the cookie is Secure.
    with Deployment(env={"EDGEGATE_DEV": "0"}) as dep:
        _, _, hd = dep.login(ADMIN, ADMIN_PW)
        check(hd["set-cookie"].endswith("; Secure"), hd["set-cookie"])


def test_wrong_password_and_unknown_user_get_the_same_401_in_comparable_time():
    with Deployment() as dep:
        tok = dep.mfa_token()
        dep.add_agent(tok, "gone", "gone-password")
        dep.call("DELETE", "/api/admin/agents/gone", token=tok)
        dep.add_plain_user("nopass", "whatever-pass")
        dep.sql("UPDATE accounts SET password_hash = NULL WHERE login = 'nopass'")
        rcli("DEL", "ratelimit:login:127.0.0.1")

        bodies = set()
        times = {"wrong": [], "unknown": []}
        for _ in range(5):
            for kind, user in (("wrong", ADMIN), ("unknown", "nobody-" + secrets.token_hex(3))):
                t0 = time.monotonic()
                st, doc, _ = dep.login(user, "not-the-password")
                times[kind].append(time.monotonic() - t0)
                eq(st, 401, f"{kind}: {doc}")
                bodies.add(json.dumps(doc, sort_keys=True))
        rcli("DEL", "ratelimit:login:127.0.0.1")
        for user, pw in (("gone", "gone-password"), ("nopass", "whatever-pass")):
            st, doc, _ = dep.login(user, pw)
            eq(st, 401, f"{user}: {doc}")
            bodies.add(json.dumps(doc, sort_keys=True))
        eq(len(bodies), 1, f"every refusal must look the same: {bodies}")
        eq(error_code(json.loads(bodies.pop())), "INVALID_CREDENTIALS")

        wrong, unknown = statistics.median(times["wrong"]), statistics.median(times["unknown"])
        # Both paths hash once (the unknown one against the dummy); a missing hash would make
        # the unknown path ~100x faster. 3x leaves room for a busy 2-core machine.
        check(max(wrong, unknown) < 3 * min(wrong, unknown),
              f"timing differs: wrong {wrong * 1000:.1f} ms, unknown {unknown * 1000:.1f} ms")

        rows = wait_for_audit(dep, "login", "failed", 12)
        reasons = sorted(json.loads(r[3])["reason"] for r in rows)
        eq(reasons, ["bad_password"] * 5 + ["disabled", "no_password"] + ["unknown_login"] * 5)


def test_eleventh_login_in_a_minute_is_429_with_retry_after_until_the_window_ends():
    with Deployment() as dep:
        for i in range(10):
            eq(dep.login(ADMIN, f"wrong-{i}")[0], 401, f"attempt {i + 1}")
        st, doc, hd = dep.login(ADMIN, ADMIN_PW)
        eq((st, error_code(doc)), (429, "RATE_LIMITED"), "even the right password is refused")
        check(1 <= int(hd["retry-after"]) <= 60, hd)
        eq(dep.login("nobody", "x")[0], 429)
        ttl = int(rcli("TTL", "ratelimit:login:127.0.0.1"))
        check(0 < ttl <= 60, f"the counter expires with the window: {ttl}")
        # Shorten the window instead of waiting a minute.
        rcli("PEXPIRE", "ratelimit:login:127.0.0.1", "300")
        wait_until(lambda: rcli("EXISTS", "ratelimit:login:127.0.0.1") == "0", timeout=5,
                   what="the window to end")
        eq(dep.login(ADMIN, ADMIN_PW)[0], 200, "a new window")
        rows = wait_for_audit(dep, "login", "locked")
        eq(len(rows), 1, "one audit row per locked window, not per refused attempt")


def test_bcrypt_hash_from_the_old_system_verifies_and_is_rehashed_to_yescrypt():
    with Deployment() as dep:
        for login, legacy in (("old2b", LEGACY_2B), ("old2a", LEGACY_2A)):
            dep.sql(f"INSERT INTO accounts (login, display_name, roles, password_hash) "
                    f"VALUES ('{login}', 'Old', '{{agent}}', '{legacy}')")
            eq(dep.login(login, "not-" + LEGACY_PW)[0], 401)
            eq(dep.sql(f"SELECT password_hash FROM accounts WHERE login = '{login}'"), legacy,
               "a failed login must not touch the hash")
            st, doc, _ = dep.login(login, LEGACY_PW)
            eq(st, 200, doc)
            upgraded = dep.sql(f"SELECT password_hash FROM accounts WHERE login = '{login}'")
            check(upgraded.startswith("$y$j9T$"), f"rehashed to yescrypt: {upgraded}")
            eq(dep.status("GET", "/api/agents/me", token=doc["token"]), 200)
            eq(dep.login(login, LEGACY_PW)[0], 200, "the new hash verifies")
            eq(dep.sql(f"SELECT password_hash FROM accounts WHERE login = '{login}'"), upgraded,
               "a current hash is not rehashed again")


# ---- sessions ----

def test_every_login_is_a_new_session_and_a_password_change_ends_all_others():
    with Deployment() as dep:
        a, b = dep.mfa_token(), dep.token()
        check(a != b, "a second sign-in gets a new id")
        for t in (a, b):
            eq(dep.status("GET", "/api/agents/me", token=t), 200)

        st, doc, _ = dep.call("POST", "/api/agents/password", token=a,
                              body={"new_password": "next-password-1"})
        eq((st, error_code(doc)), (422, "OLD_PASSWORD_REQUIRED"))
        st, doc, _ = dep.call("POST", "/api/agents/password", token=a,
                              body={"old_password": "wrong", "new_password": "next-password-1"})
        eq((st, error_code(doc)), (403, "INVALID_OLD_PASSWORD"))
        for short in ("1234567", "x" * 129):
            st, doc, _ = dep.call("POST", "/api/agents/password", token=a,
                                  body={"old_password": ADMIN_PW, "new_password": short})
            eq((st, error_code(doc)), (422, "INVALID_PASSWORD"), f"{len(short)} bytes")
        eq(dep.status("GET", "/api/agents/me", token=a), 200, "refused changes change nothing")

        st, doc, hd = dep.call("POST", "/api/agents/password", token=a,
                               body={"old_password": ADMIN_PW, "new_password": "next-password-1"})
        eq(st, 200, doc)
        c = doc["token"]
        check(c not in (a, b), "the session id rotates with the password")
        check(hd["set-cookie"].startswith(f"edgegate_session={c}."), hd)
        for t in (a, b):
            eq(dep.status("GET", "/api/agents/me", token=t), 401, "an old session lives on")
            eq(rcli("EXISTS", session_key(t)), "0", "its Redis record is deleted too")
        eq(dep.status("GET", "/api/agents/me", token=c), 200)
        eq(dep.login(ADMIN, ADMIN_PW)[0], 401)
        st, doc, _ = dep.signed_in(ADMIN, "next-password-1")
        check(st == 200 and doc.get("token"), f"the new password signs in: {doc}")
        wait_for_audit(dep, "password_change", "ok")
        wait_for_audit(dep, "password_change", "failed")
        wait_for_audit(dep, "session_revoked", "ok")


def test_logout_deletes_the_session():
    with Deployment() as dep:
        token = dep.token()
        key = session_key(token)
        eq(rcli("EXISTS", key), "1")
        st, doc, hd = dep.call("POST", "/api/auth/logout", token=token)
        eq((st, doc), (200, {"logged_out": True}))
        check(hd["set-cookie"].startswith("edgegate_session=; Max-Age=0"), hd["set-cookie"])
        eq(rcli("EXISTS", key), "0")
        eq(dep.status("GET", "/api/agents/me", token=token), 401)
        eq(dep.status("POST", "/api/auth/logout", token=token), 401)
        wait_for_audit(dep, "logout", "ok")

        cookie = dep.cookie()
        eq(dep.status("POST", "/api/auth/logout", cookie=cookie), 403, "cookie logout needs Origin")
        eq(dep.status("POST", "/api/auth/logout", cookie=cookie, origin=dep.origin), 200)
        eq(dep.status("GET", "/api/agents/me", cookie=cookie), 401)


def test_idle_timeout_and_absolute_lifetime_end_a_session():
    with Deployment() as dep:
        token = dep.token()
        key = session_key(token)
        ttl = int(rcli("TTL", key))
        check(SESSION_IDLE - 5 <= ttl <= SESSION_IDLE, f"idle TTL {ttl}")
        fields = dict(zip(*[iter(rcli("HGETALL", key).splitlines())] * 2))
        eq(set(fields), {"account_id", "roles", "epoch", "created", "last_seen"})
        eq((fields["account_id"], fields["roles"]), ("1", "admin"))
        check(token not in rcli("HGETALL", key), "Redis holds only the hash of the id")

        # Use restarts the idle timer.
        rcli("EXPIRE", key, "100")
        eq(dep.status("GET", "/api/agents/me", token=token), 200)
        check(int(rcli("TTL", key)) > SESSION_IDLE - 5, "idle timer restarted by use")

        # Idle: nothing for the whole idle timeout (shortened) ends it.
        rcli("PEXPIRE", key, "200")
        time.sleep(0.4)
        eq(dep.status("GET", "/api/agents/me", token=token), 401, "idle session")

        # Absolute: however busy, a session ends 7 days after it was created.
        token = dep.token()
        key = session_key(token)
        now = int(time.time())
        rcli("HSET", key, "created", str(now - SESSION_ABSOLUTE + 60))
        eq(dep.status("GET", "/api/agents/me", token=token), 200)
        check(int(rcli("TTL", key)) <= 60, "the idle timer never runs past the absolute end")
        rcli("HSET", key, "created", str(now - SESSION_ABSOLUTE - 1))
        eq(dep.status("GET", "/api/agents/me", token=token), 401, "past the absolute lifetime")
        eq(rcli("EXISTS", key), "0", "and the record is gone")


def test_csrf_cookie_writes_need_our_origin_bearer_writes_do_not():
    with Deployment() as dep:
        cookie = dep.cookie()
        body = {"status": "online"}
        for origin in (None, "http://evil.example", "null", dep.origin + "/", dep.origin + ".evil"):
            st, doc, _ = dep.call("PUT", "/api/agents/me/status", cookie=cookie, origin=origin,
                                  body=body)
            eq((st, error_code(doc)), (403, "CSRF_ORIGIN_MISMATCH"), f"Origin {origin!r}")
        eq(dep.sql("SELECT agent_status FROM accounts WHERE login = 'root'"), "offline",
           "a refused write changed nothing")
        st, doc, _ = dep.call("PUT", "/api/agents/me/status", cookie=cookie, origin=dep.origin,
                              body=body)
        eq((st, doc["status"]), (200, "online"))
        eq(dep.status("GET", "/api/agents/me", cookie=cookie), 200, "reads need no Origin")
        token = cookie.split("=", 1)[1].split(".")[0]
        eq(dep.status("PUT", "/api/agents/me/status", token=token, body={"status": "busy"}), 200,
           "a bearer token is not sent by browsers on their own: no Origin needed")
        st, doc, _ = dep.login(ADMIN, ADMIN_PW, origin="http://evil.example")
        eq((st, error_code(doc)), (403, "CSRF_ORIGIN_MISMATCH"), "login CSRF")
        eq(dep.login(ADMIN, ADMIN_PW, origin=dep.origin)[0], 200)


# ---- the route table ----

PUBLIC_ROUTES = {("GET", "/healthz"), ("GET", "/readyz"), ("POST", "/api/agents/login"),
                 ("GET", "/api/auth/login"), ("GET", "/api/auth/callback"),
                 # Device-side routes: each request carries the device's own credential.
                 ("POST", "/api/pairing/exchange"), ("POST", "/api/server/heartbeat"),
                 ("POST", "/api/server/heartbeat-v2")}
# Public routes that check a credential of their own: a session is not one of them.
OWN_CREDENTIAL_ROUTES = {("POST", "/api/server/heartbeat"), ("POST", "/api/server/heartbeat-v2")}
PARAM_VALUES = {"user_id": "someone", "id": "1", "account": "1", "agent_id": "someone",
                "employee_id": "1"}


def route_table():
    out = subprocess.run([os.path.join(BIN, "api-server"), "routes"], capture_output=True,
                         text=True, check=True, timeout=10).stdout
    routes = []
    for line in out.splitlines():
        method, pattern, rule = line.split(" ")
        path = "/".join(fill(seg) for seg in pattern.split("/"))
        routes.append((method, pattern, path, rule))
    return routes


def fill(segment):
    if segment.startswith("{") and segment.endswith("}"):
        name = segment[1:-1].rstrip(".")
        return PARAM_VALUES.get(name, "x")
    return segment


def forged_cookie():
    b64 = lambda n: base64.urlsafe_b64encode(secrets.token_bytes(n)).decode().rstrip("=")
    return f"edgegate_session={b64(32)}.{b64(32)}"


def test_every_non_public_route_refuses_missing_forged_expired_and_underprivileged_callers():
    routes = route_table()
    check(len(routes) >= 10, routes)
    rules = {r for _, _, _, r in routes}
    check(rules <= {"public", "internal", "signed-in", "agent", "admin", "admin+step-up",
                    "agent+step-up", "signed-in+step-up", "websocket"}, f"unknown rules: {rules}")
    check({p for _, p, _, r in routes if r == "websocket"} == {"/ws/{agent_id}",
                                                              "/ws/h5/{employee_id}"},
          "only the real-time routes authenticate themselves")
    public = {(m, p) for m, p, _, r in routes if r == "public"}
    eq(public, PUBLIC_ROUTES, "a new public route must be added here on purpose")

    with Deployment() as dep:
        admin = dep.mfa_token()
        dep.add_agent(admin, "agent1", "agent1-password")
        agent = dep.token("agent1", "agent1-password")
        dep.add_plain_user("plain", "plain-password")
        plain = dep.token("plain", "plain-password")
        plain_cookie = dep.cookie("plain", "plain-password")
        dead = dep.token()
        dead_cookie = dep.cookie()
        eq(dep.status("POST", "/api/auth/logout", token=dead), 200)
        eq(dep.status("POST", "/api/auth/logout", cookie=dead_cookie, origin=dep.origin), 200)
        expired = dep.token()
        rcli("DEL", session_key(expired))

        checked = 0
        for method, pattern, path, rule in routes:
            if rule == "public":
                continue
            if method == "*":  # any method: GET stands for them all
                method = "GET"
            body = {} if method in ("POST", "PUT", "PATCH") else None
            what = f"{method} {pattern}"
            callers = {
                "no credentials": {},
                "forged cookie": {"cookie": forged_cookie(), "origin": dep.origin},
                "garbage bearer": {"token": "garbage"},
                "bearer of the right shape": {"token": secrets.token_urlsafe(32)},
                "logged-out token": {"token": dead},
                "logged-out cookie": {"cookie": dead_cookie, "origin": dep.origin},
                "expired token": {"token": expired},
            }
            for who, kw in callers.items():
                if rule == "websocket":
                    # A browser's WebSocket cannot read a 401: the upgrade is accepted, then
                    # closed with 4001 (test_push.py checks each reason).
                    st, _, code, reason = refusal(dep.api.port, path, **kw)
                    eq((st, code), (101, 4001), f"{what} with {who}: {reason}")
                else:
                    st, doc, _ = dep.call(method, path, body=body, **kw)
                    eq(st, 401, f"{what} with {who}: {doc}")
                checked += 1
            access = rule.split("+")[0]
            if access == "websocket":
                # Live sessions, but not of the account the path names (fresh ones: the walk
                # has logged `plain` out on POST /api/auth/logout).
                for who, token in (("an agent", dep.token("agent1", "agent1-password")),
                                   ("a plain user", dep.token("plain", "plain-password"))):
                    eq(refusal(dep.api.port, path, token=token)[2:],
                       (4001, "Token-agent mismatch"), f"{what} with {who}'s session")
            if access == "internal":
                eq(dep.status(method, path, token=admin), 401, f"{what}: a session is not the "
                   "internal token")
            if access in ("agent", "admin"):
                st, doc, _ = dep.call(method, path, token=plain, body=body)
                eq((st, error_code(doc)), (403, "FORBIDDEN"), f"{what} as a plain user")
                st, doc, _ = dep.call(method, path, cookie=plain_cookie, origin=dep.origin,
                                      body=body)
                eq(st, 403, f"{what} as a plain user by cookie")
            if access == "admin":
                st, doc, _ = dep.call(method, path, token=agent, body=body)
                eq((st, error_code(doc)), (403, "FORBIDDEN"), f"{what} as an agent")
            if access == "signed-in" and rule.endswith("+step-up"):
                st, doc, _ = dep.call(method, path, token=plain, body=body)
                eq((st, error_code(doc)), (403, "MFA_REQUIRED"),
                   f"{what}: signed in, but no recent MFA verification")
            elif access == "signed-in":
                st, _, _ = dep.call(method, path, token=plain, body=body)
                check(st not in (401, 403), f"{what}: any signed-in account passes the guard ({st})")
                if pattern == "/api/auth/logout":  # that ended the walk's own session
                    plain = dep.token("plain", "plain-password")
        check(checked >= 7 * 9, f"only {checked} checks")
        for method, path in sorted(OWN_CREDENTIAL_ROUTES):
            body = {"identifier": "x", "agents": []}
            for who, kw in (("no credentials", {}), ("an admin session", {"token": admin}),
                            ("the internal token", {"token": INTERNAL_TOKEN})):
                st, doc, _ = dep.call(method, path, body=body, **kw)
                eq(st, 401, f"{method} {path} with {who}: {doc}")
        eq(dep.status("GET", "/api/agents/me", token=admin), 200, "the admin's session survived")


# ---- dependencies down ----

def until_refused(dep, token, what):
    """The first answer to a signed-in request that is not 200: (status, body)."""
    def attempt():
        st, doc, _ = dep.call("GET", "/api/agents/me", token=token)
        return (st, doc) if st != 200 else None
    return wait_until(attempt, timeout=10, what=what)


def test_redis_down_answers_503_on_protected_routes_then_recovers():
    with Deployment() as dep:
        token = dep.token()
        redis_stop()
        try:
            st, doc = until_refused(dep, token, "the session check to notice Redis is down")
            eq((st, error_code(doc)), (503, "SERVICE_UNAVAILABLE"), "fail closed, never 200")
            eq(dep.status("GET", "/api/agents", token=token), 503)
            eq(dep.login(ADMIN, ADMIN_PW)[0], 503, "no rate-limit counter, no sign-in")
            eq(dep.status("GET", "/api/agents/me"), 401, "no credentials needs no Redis")
        finally:
            redis_start()
        # The test Redis keeps nothing on disk: the session is gone, a new sign-in works.
        wait_until(lambda: dep.login(ADMIN, ADMIN_PW)[0] == 200, timeout=20,
                   what="sign-in after Redis is back")
        eq(dep.status("GET", "/api/agents/me", token=dep.token()), 200)


def test_postgres_down_answers_503_then_the_same_session_works_again():
    with Deployment() as dep:
        token = dep.token()
        pg_stop()
        try:
            st, doc = until_refused(dep, token, "the account check to notice PostgreSQL is down")
            eq((st, error_code(doc)), (503, "SERVICE_UNAVAILABLE"))
            eq(dep.login(ADMIN, ADMIN_PW)[0], 503)
        finally:
            pg_start()
        wait_until(lambda: dep.status("GET", "/api/agents/me", token=token) == 200, timeout=20,
                   what="recovery after PostgreSQL restart")


# ---- operators ----

def test_status_must_be_online_busy_or_offline():
    with Deployment() as dep:
        token = dep.mfa_token()
        for status in ("online", "busy", "offline", "busy"):
            st, doc, _ = dep.call("PUT", "/api/agents/me/status", token=token,
                                  body={"status": status})
            eq((st, doc["status"]), (200, status))
        for bad in ("away", "ONLINE", "", 1, ["online"]):
            st, doc, _ = dep.call("PUT", "/api/agents/me/status", token=token, body={"status": bad})
            eq((st, error_code(doc)), (422, "INVALID_STATUS"), f"status {bad!r}")
        st, doc, _ = dep.call("PUT", "/api/agents/me/status", token=token, body={})
        eq((st, error_code(doc)), (422, "MISSING_FIELD"))
        st, doc, _ = dep.call("PUT", "/api/agents/me/status", token=token, body="not json")
        eq((st, error_code(doc)), (400, "INVALID_JSON"))
        eq(dep.call("GET", "/api/agents/me", token=token)[1]["status"], "busy")

        dep.add_agent(token, "agent1", "agent1-password")
        st, doc, _ = dep.call("GET", "/api/agents?status=busy", token=token)
        eq((st, [a["user_id"] for a in doc["agents"]], doc["total"]), (200, [ADMIN], 1))
        st, doc, _ = dep.call("GET", "/api/agents", token=token)
        eq([a["user_id"] for a in doc["agents"]], ["agent1", ADMIN])
        st, doc, _ = dep.call("GET", "/api/agents?status=lunch", token=token)
        eq((st, error_code(doc)), (422, "INVALID_STATUS"))


def signed_out_soon(dep, token, what):
    """A change made in SQL reaches api-server's row cache as a notification: within
    milliseconds, not necessarily before psql returns."""
    wait_until(lambda: dep.status("GET", "/api/agents/me", token=token) == 401, timeout=1,
               interval=0.005, what=what)


def test_disabled_account_stops_at_once_and_cannot_sign_in():
    with Deployment() as dep:
        admin = dep.mfa_token()
        dep.add_agent(admin, "agent1", "agent1-password")
        agent = dep.token("agent1", "agent1-password")
        eq(dep.status("GET", "/api/agents/me", token=agent), 200)

        st, doc, _ = dep.call("DELETE", "/api/admin/agents/agent1", token=admin)
        eq((st, doc["disabled"]), (200, True))
        eq(dep.status("GET", "/api/agents/me", token=agent), 401, "its session ended at once")
        st, doc, _ = dep.login("agent1", "agent1-password")
        eq((st, error_code(doc)), (401, "INVALID_CREDENTIALS"), "same answer as a wrong password")
        eq(dep.call("GET", "/api/agents", token=admin)[1]["total"], 1,
           "disabled agents are not listed")

        eq(dep.status("PATCH", "/api/admin/agents/agent1", token=admin,
                      body={"disabled": False}), 200)
        eq(dep.status("GET", "/api/agents/me", token=agent), 401, "re-enabling does not revive it")
        agent = dep.token("agent1", "agent1-password")
        # Disabled behind the API's back (SQL): PostgreSQL's notification reaches the guard's
        # row cache (sql/005_row_cache_notify.sql) within milliseconds.
        dep.sql("UPDATE accounts SET disabled = true WHERE login = 'agent1'")
        signed_out_soon(dep, agent, "an account disabled in SQL")
        wait_for_audit(dep, "admin_disable_agent", "ok")
        rows = wait_for_audit(dep, "session_revoked", "ok")
        eq((rows[0][0], rows[0][1]), ("2", "1"), "about the agent, done by the admin")


def cache_hits(dep):
    """edgegate_row_cache_hits_total{kind="account"} of the deployment's api-server."""
    st, _, body = request("127.0.0.1", dep.api.port, "GET", "/metrics",
                          {"Authorization": f"Bearer {INTERNAL_TOKEN}"})
    eq(st, 200, "/metrics")
    for line in body.decode().splitlines():
        if line.startswith('edgegate_row_cache_hits_total{kind="account"} '):
            return float(line.split()[1])
    return 0.0


def test_the_account_cache_answers_reads_and_hears_every_change():
    # The guard reads the account from memory (api-server/row_cache.h); PostgreSQL tells every
    # replica of each change (sql/005_row_cache_notify.sql). Own writes are seen by the very next
    # request; another writer's (SQL here) as soon as its notification arrives.
    with Deployment() as dep:
        admin = dep.mfa_token()
        dep.add_agent(admin, "agent1", "agent1-password")
        agent = dep.token("agent1", "agent1-password")
        eq(dep.status("GET", "/api/agents/me", token=agent), 200)
        before = cache_hits(dep)
        for _ in range(5):
            eq(dep.status("GET", "/api/agents/me", token=agent), 200)
        check(cache_hits(dep) - before >= 5, "the account came from the cache")

        for status in ("busy", "offline", "online") * 5:
            eq(dep.call("PUT", "/api/agents/me/status", token=agent,
                        body={"status": status})[0], 200)
            eq(dep.call("GET", "/api/agents/me", token=agent)[1]["status"], status,
               "the next request sees the write")

        def name_is(want):
            return dep.call("GET", "/api/agents/me", token=agent)[1]["name"] == want
        dep.sql("UPDATE accounts SET display_name = 'Renamed In SQL' WHERE login = 'agent1'")
        t0 = time.monotonic()
        wait_until(lambda: name_is("Renamed In SQL"), timeout=1, interval=0.005,
                   what="a change made in SQL")
        check(time.monotonic() - t0 < 0.5, "heard within milliseconds")

        dep.sql("UPDATE accounts SET session_epoch = session_epoch + 1 WHERE login = 'agent1'")
        signed_out_soon(dep, agent, "sessions revoked in SQL")
        # Another session of the same account, read and cached, then the account disabled.
        agent = dep.token("agent1", "agent1-password")
        eq(dep.status("GET", "/api/agents/me", token=agent), 200)
        dep.sql("UPDATE accounts SET disabled = true WHERE login = 'agent1'")
        signed_out_soon(dep, agent, "an account disabled in SQL")


def test_admins_create_update_and_refuse_to_lock_themselves_out():
    with Deployment() as dep:
        admin = dep.mfa_token()
        doc = dep.add_agent(admin, "agent1", "agent1-password", name="Agent One")
        eq(doc, {"user_id": "agent1", "name": "Agent One", "role": "agent", "status": "offline",
                 "current_load": 0, "max_load": 5, "mfa_enabled": False, "disabled": False})
        check(dep.sql("SELECT password_hash FROM accounts WHERE login = 'agent1'")
              .startswith("$y$"), "hashed with yescrypt")

        base = {"user_id": "agent2", "name": "Two", "role": "agent", "password": "agent2-password"}
        for change, code in (({"user_id": "agent1"}, "LOGIN_TAKEN"),
                             ({"user_id": "has space"}, "INVALID_USER_ID"),
                             ({"user_id": "x" * 65}, "INVALID_USER_ID"),
                             ({"role": "root"}, "INVALID_ROLE"),
                             ({"role": "user"}, "INVALID_ROLE"),
                             ({"name": ""}, "INVALID_NAME"),
                             ({"name": "n" * 201}, "INVALID_NAME"),
                             ({"password": "short"}, "INVALID_PASSWORD")):
            st, doc, _ = dep.call("POST", "/api/admin/agents", token=admin, body={**base, **change})
            eq((st, error_code(doc)), (409 if code == "LOGIN_TAKEN" else 422, code), change)
        eq(dep.sql("SELECT count(*) FROM accounts"), "2", "nothing was created by a refusal")
        st, doc, _ = dep.call("POST", "/api/admin/agents", token=admin,
                              body={**base, "name": "é" * 200})
        eq(st, 201, "200 characters fit, however many bytes they take")

        agent = dep.token("agent1", "agent1-password")
        st, doc, _ = dep.call("PATCH", "/api/admin/agents/agent1", token=admin,
                              body={"name": "Agent 1", "max_load": 9})
        eq((st, doc["name"], doc["max_load"]), (200, "Agent 1", 9))
        eq(dep.status("GET", "/api/agents/me", token=agent), 200,
           "no privilege change: the session is kept")
        for change, code in (({"max_load": -1}, "INVALID_MAX_LOAD"),
                             ({"max_load": 1001}, "INVALID_MAX_LOAD"),
                             ({"disabled": "yes"}, "INVALID_DISABLED"),
                             ({"role": "owner"}, "INVALID_ROLE")):
            st, doc, _ = dep.call("PATCH", "/api/admin/agents/agent1", token=admin, body=change)
            eq((st, error_code(doc)), (422, code), change)

        st, doc, _ = dep.call("PATCH", "/api/admin/agents/agent1", token=admin,
                              body={"role": "admin"})
        eq((st, doc["role"]), (200, "admin"))
        eq(dep.status("GET", "/api/agents/me", token=agent), 401,
           "a privilege change ends sessions")
        promoted = dep.token("agent1", "agent1-password")
        st, doc, _ = dep.call("POST", "/api/admin/agents", token=promoted,
                              body={**base, "user_id": "agent3"})
        eq((st, error_code(doc)), (403, "MFA_ENROLMENT_REQUIRED"), "a new admin enables MFA first")
        promoted = dep.mfa_token("agent1", "agent1-password")
        eq(dep.status("POST", "/api/admin/agents", token=promoted,
                    body={**base, "user_id": "agent3"}), 201)

        for path in ("/api/admin/agents/nobody", "/api/admin/agents/bad%20login",
                     "/api/admin/agents/%zz"):
            eq(dep.status("PATCH", path, token=admin, body={"max_load": 1}), 404, path)
            eq(dep.status("DELETE", path, token=admin), 404, path)
        eq(dep.call("PATCH", "/api/admin/agents/agent%31", token=admin, body={"max_load": 2})[1]
           ["max_load"], 2, "percent-encoded logins are decoded")

        for method, body in (("PATCH", {"role": "agent"}), ("PATCH", {"disabled": True}),
                             ("DELETE", None)):
            st, doc, _ = dep.call(method, "/api/admin/agents/root", token=admin, body=body)
            eq((st, error_code(doc)), (409, "SELF_LOCKOUT"), f"{method} {body}")
        eq(dep.status("PATCH", "/api/admin/agents/root", token=admin,
                      body={"name": "Still Me"}), 200)

        rows = wait_for_audit(dep, "admin_create_agent", "ok", 3)
        eq([r[1] for r in rows], ["1", "1", "2"], "the actor is the admin who acted")
        eq(json.loads(rows[0][3]), {"login": "agent1", "role": "agent"})
        rows = wait_for_audit(dep, "admin_update_agent", "ok")
        eq(json.loads(rows[0][3]), {"changes": {"name": "Agent 1", "max_load": 9}})
