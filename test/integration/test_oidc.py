"""OIDC sign-in (the backend-for-frontend of api-server) against a real OpenID provider.

The provider is the certified `oidc-provider` npm package (test/oidc/provider.js under node),
served over HTTPS with a certificate from a CA this test makes with openssl, so every exchange
with it goes through api-server's mbedtls client with chain and host name verification. A
browser made of urllib (cookies per site, one redirect at a time, the provider's login and
consent forms submitted as a person would) drives the whole flow: our /api/auth/login, the
provider's pages, our /api/auth/callback, then /me and logout.

Happy paths use the provider as it is. Negative cases that need a spoiled ID token ask the
provider's test endpoint to spoil the next one on its way out of the real token endpoint (a
wrong claim re-signed with the provider's own key, a broken signature, alg none, a key it does
not publish), so the exchange stays real and only the one property under test is wrong.

Each test has its own database, its own empty Redis database, its own provider and api-server.
"""
import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

from harness import (BIN, REDIS_PORT, REDIS_URL, WORK, ApiServer, base_env, check, eq,
                     fresh_database, migrate, request, require_services, wait_until)
from oidc_kit import (DEMO_EMAIL, DEMO_LOGIN, DEMO_NAME, Browser, Provider, forms, npm_setup)
from tunnel_kit import make_ca

REDIS_DB = "10"
SECRET = "confidential-client-secret-" + "x" * 16
PUBLIC, BASIC, POST = "edgegate-public", "edgegate-basic", "edgegate-post"


def rcli(*args):
    out = subprocess.run(["redis-cli", "-p", REDIS_PORT, "-n", REDIS_DB, *args], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def b64json(segment):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


class Deployment:
    """A provider on https://localhost (its certificate for cert_host), an api-server using
    client `client`, a fresh database and Redis database. provider=False: no provider runs
    (the issuer's port is closed)."""

    def __init__(self, client=PUBLIC, cert_host="localhost", ca_file=True, provider=True,
                 env=None):
        require_services()
        npm_setup()
        rcli("FLUSHDB")
        self.url = fresh_database()
        r = migrate(self.url)
        eq(r.returncode, 0, f"migrate: {r.stderr}")
        self.dir = tempfile.mkdtemp(prefix="oidc-", dir=WORK)
        self.ca, cert, key = make_ca(self.dir, cert_host)
        # The api-server's port is chosen now: the provider must know the redirect URI.
        self.api = ApiServer(self.url, env={})
        self.origin = f"http://127.0.0.1:{self.api.port}"
        self.callback = self.origin + "/api/auth/callback"
        common = {"redirect_uris": [self.callback], "post_logout_redirect_uris": [self.origin + "/"],
                  "grant_types": ["authorization_code"], "response_types": ["code"]}
        clients = [
            {"client_id": PUBLIC, "token_endpoint_auth_method": "none",
             "id_token_signed_response_alg": "ES256", **common},
            {"client_id": BASIC, "client_secret": SECRET,
             "token_endpoint_auth_method": "client_secret_basic",
             "id_token_signed_response_alg": "RS256", **common},
            {"client_id": POST, "client_secret": SECRET,
             "token_endpoint_auth_method": "client_secret_post",
             "id_token_signed_response_alg": "RS256", **common},
        ]
        self.op = Provider(clients, tls=(cert, key), ca=self.ca)
        self.run_provider = provider
        self.client = client
        e = {
            "EDGEGATE_REDIS_URL": REDIS_URL.rsplit("/", 1)[0] + "/" + REDIS_DB,
            "EDGEGATE_OIDC_ISSUER": self.op.issuer,
            "EDGEGATE_OIDC_CLIENT_ID": client,
            "EDGEGATE_OIDC_POST_LOGOUT_REDIRECT_URI": self.origin + "/",
        }
        if ca_file:
            e["EDGEGATE_OIDC_CA_FILE"] = self.ca
        if client != PUBLIC:
            e["EDGEGATE_OIDC_CLIENT_SECRET"] = SECRET
        if client == POST:
            e["EDGEGATE_OIDC_AUTH_METHOD"] = "client_secret_post"
        e.update(env or {})
        self.api.env.update(e)

    def __enter__(self):
        try:
            if self.run_provider:
                self.op.start()
            self.api.start()
        except BaseException:
            self.op.stop()
            raise
        return self

    def __exit__(self, *exc):
        try:
            return self.api.__exit__(*exc)
        finally:
            self.op.stop()
            shutil.rmtree(self.dir, ignore_errors=True)

    def sql(self, query):
        return subprocess.run(["psql", self.url, "-v", "ON_ERROR_STOP=1", "-qtAc", query],
                              check=True, capture_output=True, text=True).stdout.strip()

    def browser(self):
        return Browser(ca=self.ca)

    def start_login(self, browser, return_to=None):
        """GET /api/auth/login; returns the 302 response (to the provider)."""
        q = "?" + urllib.parse.urlencode({"return_to": return_to}) if return_to else ""
        return browser.get(self.origin + "/api/auth/login" + q)

    def at_provider(self, browser, authorize_url, **kw):
        """The provider's pages, until it sends the browser back to our callback."""
        return browser.sign_in_at_provider(authorize_url, self.callback, **kw)

    def sign_in(self, browser, return_to=None):
        """The whole flow; returns our callback's response."""
        r = self.start_login(browser, return_to)
        eq(r.status, 302, f"login: {r.body[:300]}")
        back = self.at_provider(browser, r.location)
        return browser.get(back)

    def me(self, browser):
        return browser.get(self.origin + "/api/auth/me")

    def logout(self, browser):
        return browser.request("POST", self.origin + "/api/auth/logout",
                               headers={"Origin": self.origin})

    def audit(self, event, outcome):
        rows = self.sql(f"SELECT coalesce(account_id, 0), detail FROM audit_log WHERE "
                        f"event = '{event}' AND outcome = '{outcome}' ORDER BY id")
        return [r.split("|", 1) for r in rows.splitlines()] if rows else []


def error_of(r):
    try:
        return r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return r.body[:200]


def session_cookie(browser):
    return [c for c in browser.jar if c.name == "edgegate_session"]


def pending_cookies(browser):
    return [c for c in browser.jar if c.name.startswith("edgegate_oidc_")]


def signed_in_as_demo(dep, browser, r, return_to="/"):
    """The callback's answer r completed a sign-in: checks it and /me; returns /me."""
    eq(r.status, 302, f"callback: {r.status} {r.body[:400]}")
    eq(r.headers["Location"], return_to, "back where the sign-in started")
    eq(len(session_cookie(browser)), 1, "a session cookie")
    eq(pending_cookies(browser), [], "the pending-login cookie is deleted")
    me = dep.me(browser)
    eq(me.status, 200, me.body)
    doc = me.json()
    check(isinstance(doc["id"], int) and doc["id"] > 0, doc)
    eq({k: doc[k] for k in ("login", "name", "email", "roles", "role", "mfa_enabled",
                            "oidc_issuer")},
       {"login": None, "name": DEMO_NAME, "email": DEMO_EMAIL, "roles": ["user"], "role": "user",
        "mfa_enabled": False, "oidc_issuer": dep.op.issuer})
    eq(dep.sql(f"SELECT oidc_issuer, oidc_subject FROM accounts WHERE id = {doc['id']}"),
       f"{dep.op.issuer}|{DEMO_LOGIN}")
    return doc


# ---- sign-in that works ----

def test_public_pkce_client_signs_in_then_me_then_logout_at_the_provider_too():
    with Deployment(PUBLIC) as dep:
        b = dep.browser()
        r = dep.start_login(b, "/devices?tab=1")
        eq(r.status, 302, r.body)
        auth = urllib.parse.urlsplit(r.location)
        eq(f"{auth.scheme}://{auth.netloc}{auth.path}", dep.op.issuer + "/auth")
        q = dict(urllib.parse.parse_qsl(auth.query))
        eq({k: q[k] for k in ("response_type", "client_id", "redirect_uri", "scope",
                              "code_challenge_method")},
           {"response_type": "code", "client_id": PUBLIC, "redirect_uri": dep.callback,
            "scope": "openid email profile", "code_challenge_method": "S256"})
        for k in ("state", "nonce", "code_challenge"):
            eq(len(q[k]), 43, f"{k}: 256 bits in base64url")
        eq(len({q["state"], q["nonce"], q["code_challenge"]}), 3, "three different values")
        cookie = r.headers["Set-Cookie"]
        check(cookie.startswith(f"edgegate_oidc_{q['state']}="), cookie)
        for attr in ("HttpOnly", "SameSite=Lax", "Path=/api/auth/callback", "Max-Age=600"):
            check(attr in cookie, f"{attr} missing from {cookie}")

        back = dep.at_provider(b, r.location)
        bq = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))
        eq(bq["state"], q["state"])
        eq(bq["iss"], dep.op.issuer, "the provider names itself (RFC 9207)")
        cb = b.get(back)
        me = signed_in_as_demo(dep, b, cb, "/devices?tab=1")
        # A public client: client_id in the body, no secret anywhere, PKCE verifier sent.
        eq(dep.op.stats()["last_token_request"],
           {"authorization": None,
            "params": ["client_id", "code", "code_verifier", "grant_type", "redirect_uri"]})
        rows = wait_until(lambda: dep.audit("login", "ok"), timeout=5, what="audit row")
        eq(int(rows[0][0]), me["id"])
        eq(json.loads(rows[0][1]), {"method": "oidc", "issuer": dep.op.issuer, "created": True})

        # The ID token is kept with the session (for the logout hint) and is an ES256 one.
        token = session_cookie(b)[0].value.split(".")[0]
        key = "session:" + hashlib.sha256(token.encode()).hexdigest()
        id_token = rcli("HGET", key, "id_token")
        eq(b64json(id_token.split(".")[0])["alg"], "ES256")

        out = dep.logout(b)
        eq(out.status, 200, out.body)
        url = out.json()["end_session_url"]
        u = urllib.parse.urlsplit(url)
        eq(f"{u.scheme}://{u.netloc}{u.path}", dep.op.issuer + "/session/end")
        eq(dict(urllib.parse.parse_qsl(u.query)),
           {"id_token_hint": id_token, "client_id": PUBLIC,
            "post_logout_redirect_uri": dep.origin + "/"})
        eq(rcli("EXISTS", key), "0", "the session is gone from Redis")
        eq(dep.me(b).status, 401, "signed out")
        # The provider's own logout page accepts the hint and sends the browser back to us.
        page = b.follow(url)
        fs = [f for f in forms(page.text()) if f["method"].lower() == "post"]
        check(fs, f"the provider's logout page: {page.text()[:300]}")
        fields = dict(fs[0]["fields"], logout="yes")
        done = b.request("POST", urllib.parse.urljoin(page.url, fs[0]["action"]), form=fields)
        eq(done.status in (302, 303), True, f"{done.status} {done.body[:300]}")
        eq(b.follow(done.location, until=lambda x: x.startswith(dep.origin)), dep.origin + "/")

        # A second sign-in finds the same account and makes a new session.
        b2 = dep.browser()
        me2 = signed_in_as_demo(dep, b2, dep.sign_in(b2))
        eq(me2["id"], me["id"])
        check(session_cookie(b2)[0].value.split(".")[0] != token, "a new session id")
        eq(dep.sql("SELECT count(*) FROM accounts"), "1")
        log = dep.api.log_text()
        check(id_token not in log and id_token.split(".")[2] not in log, "no ID token in the log")
        check(bq["code"] not in log and "callback?code=[hidden]&state=" in log,
              "the access log shows that a code came, not the code")
        check(q["nonce"] not in log and q["code_challenge"] not in log, "nor the nonce")


def test_confidential_client_with_client_secret_basic():
    with Deployment(BASIC) as dep:
        b = dep.browser()
        signed_in_as_demo(dep, b, dep.sign_in(b))
        eq(dep.op.stats()["last_token_request"],
           {"authorization": "Basic",
            "params": ["code", "code_verifier", "grant_type", "redirect_uri"]})
        check(SECRET not in dep.api.log_text(), "the client secret reached the log")


def test_confidential_client_with_client_secret_post():
    with Deployment(POST) as dep:
        b = dep.browser()
        signed_in_as_demo(dep, b, dep.sign_in(b))
        eq(dep.op.stats()["last_token_request"],
           {"authorization": None,
            "params": ["client_id", "client_secret", "code", "code_verifier", "grant_type",
                       "redirect_uri"]})


def test_two_tabs_signing_in_at_once_both_succeed():
    with Deployment(PUBLIC) as dep:
        b = dep.browser()
        first = dep.start_login(b, "/first")
        second = dep.start_login(b, "/second")
        eq(len(pending_cookies(b)), 2, "one pending cookie per sign-in")
        back_second = dep.at_provider(b, second.location)
        # The provider remembers the browser's session: the first tab needs no new password.
        back_first = dep.at_provider(b, first.location)
        r2 = b.get(back_second)
        eq((r2.status, r2.headers["Location"]), (302, "/second"), r2.body)
        eq(len(pending_cookies(b)), 1, "the other tab's pending cookie is untouched")
        r1 = b.get(back_first)
        eq((r1.status, r1.headers["Location"]), (302, "/first"), r1.body)
        eq(dep.me(b).status, 200)


def test_return_to_must_be_a_path_on_this_site():
    with Deployment(PUBLIC) as dep:
        b = dep.browser()
        for bad in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "devices",
                    "/a b", "/" + "x" * 600):
            r = dep.start_login(b, bad)
            eq((r.status, error_of(r)), (400, "INVALID_RETURN_TO"), f"return_to={bad!r}")
        eq(pending_cookies(b), [])


def test_provider_error_is_shown_clearly():
    with Deployment(PUBLIC) as dep:
        b = dep.browser()
        r = dep.start_login(b)
        page = b.follow(r.location)
        # The provider's own "cancel" link on its login page.
        abort = urllib.parse.urljoin(page.url, page.url.split("?")[0].rstrip("/") + "/abort")
        back = b.follow(abort, until=lambda u: u.startswith(dep.callback))
        check(isinstance(back, str) and "error=access_denied" in back, back)
        cb = b.get(back)
        eq((cb.status, error_of(cb)), (400, "PROVIDER_ERROR"), cb.body)
        msg = cb.json()["error"]["message"]
        check("access_denied" in msg and "End-User aborted interaction" in msg, msg)
        eq(pending_cookies(b), [], "the pending cookie is deleted")
        eq(session_cookie(b), [])


# ---- state ----

def test_tampered_or_missing_state_is_refused():
    with Deployment(PUBLIC) as dep:
        b = dep.browser()
        back = dep.at_provider(b, dep.start_login(b).location)
        u = urllib.parse.urlsplit(back)
        q = dict(urllib.parse.parse_qsl(u.query))

        def with_query(**changes):
            qq = {k: v for k, v in {**q, **changes}.items() if v is not None}
            return f"{dep.callback}?{urllib.parse.urlencode(qq)}"
        other = q["state"][:-1] + ("A" if q["state"][-1] != "A" else "B")
        for url, code in ((with_query(state=other), "STATE_MISMATCH"),
                          (with_query(state="not-a-state"), "STATE_MISMATCH"),
                          (with_query(state=None), "STATE_MISSING")):
            r = b.get(url)
            eq((r.status, error_of(r)), (400, code), url)
            eq(session_cookie(b), [])
        # Another browser (no pending cookie) with the right state and code: login CSRF.
        stranger = dep.browser()
        r = stranger.get(back)
        eq((r.status, error_of(r)), (400, "STATE_MISMATCH"))
        # A forged pending cookie for the right state.
        r = stranger.request("GET", back, headers={
            "Cookie": f"edgegate_oidc_{q['state']}=9999999999.{'a' * 43}.{'b' * 43}.Lw.{'c' * 43}"})
        eq((r.status, error_of(r)), (400, "STATE_MISMATCH"))
        eq(session_cookie(stranger), [])
        # None of that spoiled the real sign-in in the real browser.
        signed_in_as_demo(dep, b, b.get(back))

        # An answer naming another issuer (RFC 9207 mix-up): refused, and that sign-in is over.
        b2 = dep.browser()
        back = dep.at_provider(b2, dep.start_login(b2).location)
        u = urllib.parse.urlsplit(back)
        q = dict(urllib.parse.parse_qsl(u.query))
        r = b2.get(with_query(iss="https://evil.example"))
        eq((r.status, error_of(r)), (400, "ISSUER_MISMATCH"))
        r = b2.get(back)
        eq((r.status, error_of(r)), (400, "STATE_MISMATCH"), "its pending cookie was deleted")
        eq(session_cookie(b2), [])
        fails = wait_until(lambda: len(dep.audit("login", "failed")) >= 7 and
                           dep.audit("login", "failed"), timeout=5, what="audit rows")
        # Audit rows are written after the answers, several at once: their order is not ours.
        eq(sorted(json.loads(d)["reason"] for _, d in fails),
           ["ISSUER_MISMATCH"] + ["STATE_MISMATCH"] * 5 + ["STATE_MISSING"])


def test_replayed_state_is_refused():
    with Deployment(PUBLIC) as dep:
        b = dep.browser()
        back = dep.at_provider(b, dep.start_login(b).location)
        pending = pending_cookies(b)[0]
        signed_in_as_demo(dep, b, b.get(back))
        # The same answer again, with the pending cookie an attacker captured.
        thief = dep.browser()
        r = thief.request("GET", back, headers={"Cookie": f"{pending.name}={pending.value}"})
        eq((r.status, error_of(r)), (400, "STATE_REPLAYED"), r.body)
        eq(session_cookie(thief), [])


# ---- the ID token ----

def refused_id_token(mode, message_part, client=PUBLIC):
    with Deployment(client) as dep:
        b = dep.browser()
        back = dep.at_provider(b, dep.start_login(b).location)
        dep.op.tamper(mode)
        r = b.get(back)
        eq((r.status, error_of(r)), (401, "ID_TOKEN_INVALID"), f"{mode}: {r.body[:300]}")
        msg = r.json()["error"]["message"]
        check(message_part in msg, f"{mode}: {msg}")
        check(f"tampered mode=\"{mode}\"" in dep.op.log_text(), "the provider spoiled the token")
        eq(session_cookie(b), [], "no session")
        eq(pending_cookies(b), [], "the pending cookie is deleted")
        eq(dep.sql("SELECT count(*) FROM accounts"), "0", "no account")
        eq(dep.me(b).status, 401)
        rows = wait_until(lambda: dep.audit("login", "failed"), timeout=5, what="audit row")
        eq(json.loads(rows[0][1])["reason"], "ID_TOKEN_INVALID")


def test_id_token_with_wrong_nonce_is_refused():
    refused_id_token("wrong_nonce", "nonce")


def test_expired_id_token_is_refused():
    refused_id_token("expired", "expired")


def test_id_token_for_another_audience_is_refused():
    refused_id_token("wrong_audience", "another client", client=BASIC)


def test_id_token_from_another_issuer_is_refused():
    refused_id_token("wrong_issuer", "another issuer")


def test_id_token_with_a_bad_signature_is_refused():
    refused_id_token("bad_signature", "signature is not valid", client=BASIC)


def test_unsigned_id_token_alg_none_is_refused():
    refused_id_token("alg_none", "alg none")


def test_unknown_kid_refreshes_the_key_set_and_key_rotation_just_works():
    with Deployment(BASIC) as dep:
        b = dep.browser()
        signed_in_as_demo(dep, b, dep.sign_in(b))
        jwks_fetches = dep.op.stats()["/jwks"]
        kids = dep.op.rotate()
        eq(kids[:2], ["rs-2", "es-2"])
        # The next ID token names rs-2, which api-server has not seen: it fetches the set again.
        b2 = dep.browser()
        signed_in_as_demo(dep, b2, dep.sign_in(b2))
        eq(dep.op.stats()["/jwks"], jwks_fetches + 1, "one more fetch of the key set")
        check("reason=unknown_kid" in dep.api.log_text(), "the refresh is logged")
        # A token signed by a key the provider never published: refused, and the set is not
        # fetched yet again so soon (rate limit).
        b3 = dep.browser()
        back = dep.at_provider(b3, dep.start_login(b3).location)
        dep.op.tamper("unknown_kid")
        r = b3.get(back)
        eq((r.status, error_of(r)), (401, "ID_TOKEN_INVALID"), r.body)
        check("does not publish" in r.json()["error"]["message"], r.body)
        eq(dep.op.stats()["/jwks"], jwks_fetches + 1, "no fetch within the refresh interval")


# ---- the provider unreachable or not who it says ----

def test_provider_down_is_a_clear_502_and_nothing_crashes():
    with Deployment(BASIC, provider=False) as dep:
        b = dep.browser()
        r = dep.start_login(b)
        eq((r.status, error_of(r)), (502, "PROVIDER_UNAVAILABLE"), r.body)
        eq(pending_cookies(b), [], "no pending cookie for a sign-in that cannot start")
        check("oidc.provider_unavailable" in dep.api.log_text())
        # It comes up: sign-in works without restarting api-server.
        dep.op.start()
        signed_in_as_demo(dep, b, dep.sign_in(b))
        # It goes down between the provider's pages and our callback: the code exchange fails.
        b2 = dep.browser()
        back = dep.at_provider(b2, dep.start_login(b2).location)
        dep.op.stop()
        r = b2.get(back)
        eq((r.status, error_of(r)), (502, "PROVIDER_UNAVAILABLE"), r.body)
        st, _, _ = request("127.0.0.1", dep.api.port, "GET", "/healthz")
        eq(st, 200, "api-server is alive")
        eq(dep.me(b).status, 200, "sessions made earlier still work")


class SilentServer:
    """Accepts connections on a port of localhost and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.stop = True
        self.sock.close()
        for c in self.conns:
            c.close()


def test_silent_provider_times_out_and_shutdown_answers_the_waiting_request():
    silent = SilentServer()
    try:
        with Deployment(PUBLIC, provider=False,
                        env={"EDGEGATE_OIDC_ISSUER": f"https://localhost:{silent.port}"}) as dep:
            t0 = time.time()
            r = dep.start_login(dep.browser())
            eq((r.status, error_of(r)), (502, "PROVIDER_UNAVAILABLE"), r.body)
            check(5 <= time.time() - t0 < 20, f"answered after {time.time() - t0:.1f}s: the "
                  "exchange has a deadline")
            # A sign-in waiting on the provider when the server is told to stop: it is answered,
            # and the daemon still exits 0 with nothing leaked (checked by __exit__).
            result = {}

            def waiting():
                result["r"] = dep.start_login(dep.browser())
            th = threading.Thread(target=waiting)
            th.start()
            time.sleep(0.5)
            dep.api.signal(signal.SIGTERM)
            th.join(30)
            check(not th.is_alive(), "the waiting request was never answered")
            check(result["r"].status in (502, 503), result["r"].body)
            eq(dep.api.proc.wait(timeout=30), 0, "exit status after SIGTERM")
    finally:
        silent.close()


def test_certificate_for_another_host_is_refused():
    with Deployment(PUBLIC, cert_host="not-localhost.example") as dep:
        b = dep.browser()
        r = dep.start_login(b)
        eq((r.status, error_of(r)), (502, "PROVIDER_UNAVAILABLE"), r.body)
        log = dep.api.log_text()
        check("oidc.discovery_failed" in log and "/.well-known/openid-configuration" in log, log[-2000:])
        eq(dep.op.stats().get("/.well-known/openid-configuration"), None,
           "no request reached the provider: TLS stopped at the certificate")


def test_certificate_from_an_unknown_ca_is_refused():
    with Deployment(PUBLIC, ca_file=False) as dep:
        b = dep.browser()
        r = dep.start_login(b)
        eq((r.status, error_of(r)), (502, "PROVIDER_UNAVAILABLE"), r.body)
        eq(dep.op.stats().get("/.well-known/openid-configuration"), None)


# ---- accounts and configuration ----

def test_a_disabled_account_cannot_sign_in():
    with Deployment(PUBLIC) as dep:
        b = dep.browser()
        signed_in_as_demo(dep, b, dep.sign_in(b))
        dep.sql("UPDATE accounts SET disabled = true, session_epoch = session_epoch + 1")
        eq(dep.me(b).status, 401, "the old session ends at once")
        b2 = dep.browser()
        r = dep.sign_in(b2)
        eq((r.status, error_of(r)), (403, "ACCOUNT_DISABLED"), r.body)
        eq(session_cookie(b2), [])


def test_sign_in_routes_answer_404_when_oidc_is_off():
    require_services()
    api = ApiServer(fresh_database())
    eq(migrate(api.env["EDGEGATE_DATABASE_URL"]).returncode, 0)
    with api:
        for path in ("/api/auth/login", "/api/auth/callback?code=x&state=y"):
            st, _, body = request("127.0.0.1", api.port, "GET", path)
            eq((st, json.loads(body)["error"]["code"]), (404, "OIDC_NOT_CONFIGURED"), path)


def config_error(env):
    e = base_env()
    e.update({"EDGEGATE_DATABASE_URL": "postgresql://x@127.0.0.1/x",
              "EDGEGATE_PUBLIC_ORIGIN": "https://edge.example.com",
              "EDGEGATE_SESSION_SECRET": "s" * 48,
              "EDGEGATE_MFA_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
              "EDGEGATE_API_LISTEN": "127.0.0.1:1"})
    e.update(env)
    r = subprocess.run([os.path.join(BIN, "api-server")], env=e, capture_output=True, text=True,
                       timeout=10)
    eq(r.returncode, 2, f"{env}: {r.stderr}")
    return r.stderr


def test_bad_oidc_configuration_stops_the_daemon_with_the_variable_named():
    base = {"EDGEGATE_OIDC_ISSUER": "https://op.example", "EDGEGATE_OIDC_CLIENT_ID": "c"}
    cases = [
        ({"EDGEGATE_OIDC_ISSUER": "http://op.example", "EDGEGATE_DEV": "0"},
         "EDGEGATE_OIDC_ISSUER must be an https:// URL"),
        ({"EDGEGATE_OIDC_CLIENT_ID": ""}, "EDGEGATE_OIDC_CLIENT_ID is required"),
        ({"EDGEGATE_OIDC_CLIENT_SECRET": "s", "EDGEGATE_OIDC_AUTH_METHOD": "none"},
         "EDGEGATE_OIDC_CLIENT_SECRET is set but"),
        ({"EDGEGATE_OIDC_AUTH_METHOD": "client_secret_post"}, "needs EDGEGATE_OIDC_CLIENT_SECRET"),
        ({"EDGEGATE_OIDC_AUTH_METHOD": "private_key_jwt"}, "EDGEGATE_OIDC_AUTH_METHOD"),
        ({"EDGEGATE_OIDC_REDIRECT_URI": "https://evil.example/cb"}, "EDGEGATE_OIDC_REDIRECT_URI"),
        ({"EDGEGATE_OIDC_SCOPES": "email profile"}, "must include openid"),
        ({"EDGEGATE_OIDC_CA_FILE": "/nonexistent/ca.pem"}, "EDGEGATE_OIDC_CA_FILE"),
    ]
    for env, expect in cases:
        err = config_error({**base, **env})
        check(expect in err, f"{env}: {err}")
        check("s" * 48 not in err, "a secret in the error output")
