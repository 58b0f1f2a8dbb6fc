"""TOTP multi-factor authentication through the real api-server, PostgreSQL and Redis.

Codes come from oathtool (oath-toolkit's command line, not our code), for the current time or
for a chosen one (`-N @SECONDS`) to reach the steps either side of now; QR codes are read back
with zbarimg (ZBar). A code is accepted once, so a test that needs several accepted codes walks
the steps forward: now-1, now, now+1 are all inside the ±1 step window, and a later one needs the
clock to move on (wait_for_step). Each test starts where a step has enough time left
(room_in_step) so that "now" does not change under it.
"""
import base64
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time

from harness import REDIS_PORT, REDIS_URL, ApiServer, check, eq, wait_until
from test_accounts import (ADMIN, ADMIN_PW, REDIS_DB, Deployment, error_code, rcli, route_table,
                           totp, wait_for_audit)

STEP = 30
MARK_TTL = 1800
KEY_A = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # ApiServer's default EDGEGATE_MFA_KEY
KEY_B = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="


def step_now():
    return int(time.time()) // STEP


def room_in_step(seconds=10):
    """Waits, if need be, for a step with at least `seconds` left; returns that step."""
    left = STEP - time.time() % STEP
    if left < seconds:
        time.sleep(left + 0.2)
    return step_now()


def wait_for_step(step):
    """Sleeps until the clock is in `step` (or later)."""
    delay = step * STEP - time.time()
    if delay > 0:
        time.sleep(delay + 0.2)


def code_at(secret, step):
    """oathtool's code for the middle of a time step."""
    return totp(secret, at=step * STEP + STEP // 2)


def wrong_code(secret, step):
    """Six digits that are none of the codes the window accepts around `step`."""
    taken = {code_at(secret, s) for s in range(step - 2, step + 3)}
    n = 0
    while f"{n:06d}" in taken:
        n += 1
    return f"{n:06d}"


def mark(account_id):
    return rcli("GET", f"mfa:verified:{account_id}")


def mark_ttl(account_id):
    return int(rcli("TTL", f"mfa:verified:{account_id}"))


def code_call(dep, path, token, code):
    return dep.call("POST", path, token=token, body={"otp_code": code})


def enrolled(dep, user=ADMIN, password=ADMIN_PW):
    """(token, secret): MFA bound now (code of the current step), as a user would do it."""
    token = dep.token(user, password)
    secret = dep.bind_mfa(token, user)
    return token, secret


def qr_text(png_b64):
    with tempfile.NamedTemporaryFile(suffix=".png", delete=False) as f:
        f.write(base64.b64decode(png_b64, validate=True))
        path = f.name
    try:
        r = subprocess.run(["zbarimg", "--raw", "-q", path], capture_output=True, text=True,
                           timeout=30)
        eq(r.returncode, 0, f"zbarimg: {r.stderr}")
        return r.stdout.rstrip("\n")
    finally:
        os.unlink(path)


def account_id(dep, login):
    return int(dep.sql(f"SELECT id FROM accounts WHERE login = '{login}'"))


# ---- the whole journey ----

def test_bind_confirm_login_with_otp_verify_step_up_and_disable():
    with Deployment() as dep:
        token = dep.token()
        eq(dep.call("GET", "/api/mfa/status", token=token)[1],
           {"bound": False, "enabled": False, "last_verified_at": None})

        # Before MFA: admin routes want enrolment, step-up routes a verification.
        st, doc, _ = dep.call("POST", "/api/admin/agents", token=token,
                              body={"user_id": "x1", "name": "X", "role": "agent",
                                    "password": "x1-password"})
        eq((st, error_code(doc)), (403, "MFA_ENROLMENT_REQUIRED"))
        st, doc, _ = dep.call("POST", "/api/agents/password", token=token,
                              body={"old_password": ADMIN_PW, "new_password": "another-pw-1"})
        eq((st, error_code(doc)), (403, "MFA_REQUIRED"))
        st, doc, _ = code_call(dep, "/api/mfa/bind/confirm", token, "123456")
        eq((st, error_code(doc)), (400, "MFA_NOT_STARTED"), "confirm before start")
        st, doc, _ = code_call(dep, "/api/mfa/verify", token, "123456")
        eq((st, error_code(doc)), (400, "MFA_NOT_ENABLED"))

        st, doc, hd = dep.call("POST", "/api/mfa/bind/start", token=token)
        eq(st, 200, doc)
        eq(set(doc), {"secret", "otpauth_url", "qr_code_base64"})
        eq(hd.get("cache-control"), "no-store", "the secret must not be cached")
        secret = doc["secret"]
        check(re.fullmatch(r"[A-Z2-7]{32}", secret), f"160 bits in base32: {secret}")
        eq(doc["otpauth_url"], f"otpauth://totp/edgegate:{ADMIN}?secret={secret}&issuer=edgegate"
                               "&algorithm=SHA1&digits=6&period=30")
        eq(qr_text(doc["qr_code_base64"]), doc["otpauth_url"], "the QR code holds the URI")
        eq(dep.call("GET", "/api/mfa/status", token=token)[1],
           {"bound": True, "enabled": False, "last_verified_at": None})
        again = dep.call("POST", "/api/mfa/bind/start", token=token)[1]
        eq(again["secret"], secret, "an unconfirmed secret is shown again, not replaced")
        eq(qr_text(again["qr_code_base64"]), doc["otpauth_url"])
        eq(dep.status("GET", "/api/agents/me", token=token), 200, "nothing changes before confirm")
        eq(dep.login(ADMIN, ADMIN_PW)[1].keys(), {"token", "agent"}, "no OTP step yet")

        s = room_in_step(12)
        for bad in ("12345", "1234567", "12345a", " 12345"):
            st, doc, _ = code_call(dep, "/api/mfa/bind/confirm", token, bad)
            eq((st, error_code(doc)), (422, "INVALID_OTP_CODE"), f"code {bad!r}")
        st, doc, _ = dep.call("POST", "/api/mfa/bind/confirm", token=token,
                              body={"otp_code": 123456})
        eq((st, error_code(doc)), (422, "INVALID_OTP_CODE"), "a number is not a code")
        # The code of 30 s ago still counts (clocks drift, people type slowly).
        st, doc, _ = code_call(dep, "/api/mfa/bind/confirm", token, code_at(secret, s - 1))
        eq(st, 200, doc)
        eq((doc["bound"], doc["enabled"]), (True, True))
        check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["last_verified_at"]), doc)
        check(MARK_TTL - 5 <= mark_ttl(1) <= MARK_TTL, "confirming is a verification")
        st, doc, _ = dep.call("POST", "/api/mfa/bind/start", token=token)
        eq((st, error_code(doc)), (409, "MFA_ALREADY_ENABLED"))
        eq(dep.call("GET", "/api/agents/me", token=token)[1]["mfa_enabled"], True)

        # Sign-in: the password alone gives require_otp and no session.
        sessions_before = rcli("KEYS", "session:*")
        rcli("DEL", "ratelimit:login:127.0.0.1")
        st, doc, hd = dep.login(ADMIN, ADMIN_PW)
        eq((st, doc), (200, {"require_otp": True}))
        check("set-cookie" not in hd, "no cookie without the code")
        eq(rcli("KEYS", "session:*"), sessions_before, "no session without the code")
        st, doc, _ = dep.login(ADMIN, "wrong-password", otp=code_at(secret, s))
        eq((st, error_code(doc)), (401, "INVALID_CREDENTIALS"), "a code does not replace the password")
        rcli("DEL", "mfa:verified:1")  # 30 minutes later, say
        st, doc, hd = dep.login(ADMIN, ADMIN_PW, otp=code_at(secret, s))
        eq(st, 200, doc)
        token = doc["token"]
        check(hd["set-cookie"].startswith(f"edgegate_session={token}."), hd)
        check(MARK_TTL - 5 <= mark_ttl(1) <= MARK_TTL, "a sign-in with a code is a verification")

        # The mark expires (shortened): step-up routes refuse until verify.
        rcli("DEL", "mfa:verified:1")
        body = {"user_id": "agent1", "name": "Agent", "role": "agent", "password": "agent1-pw-x"}
        st, doc, _ = dep.call("POST", "/api/admin/agents", token=token, body=body)
        eq((st, error_code(doc)), (403, "MFA_REQUIRED"))
        check("verify" in doc["error"]["message"], doc)
        eq(dep.status("GET", "/api/agents/me", token=token), 200, "ordinary routes are unaffected")
        st, doc, _ = code_call(dep, "/api/mfa/verify", token, code_at(secret, s + 1))
        eq((st, doc), (200, {"verified": True, "expires_in": MARK_TTL}))
        check(MARK_TTL - 5 <= mark_ttl(1) <= MARK_TTL, f"mark TTL {mark_ttl(1)}")
        eq(dep.status("POST", "/api/admin/agents", token=token, body=body), 201)
        st, status, _ = dep.call("GET", "/api/mfa/status", token=token)
        eq((status["bound"], status["enabled"]), (True, True))

        # Disable needs a code later than the last one used: the next step.
        wait_for_step(s + 1)
        st, doc, _ = code_call(dep, "/api/mfa/disable", token, wrong_code(secret, s + 1))
        eq((st, error_code(doc)), (401, "INVALID_OTP_CODE"), "disable needs the right code")
        st, doc, _ = code_call(dep, "/api/mfa/disable", token, code_at(secret, s + 2))
        eq(st, 200, doc)
        eq((doc["bound"], doc["enabled"]), (False, False))
        eq(rcli("EXISTS", "mfa:verified:1"), "0", "the mark goes with MFA")
        eq(dep.sql("SELECT mfa_enabled, mfa_secret_enc IS NULL, mfa_key_id IS NULL "
                   "FROM accounts WHERE id = 1"), "f|t|t")
        st, doc, _ = dep.call("POST", "/api/admin/agents", token=token, body={**body, "user_id": "a2"})
        eq((st, error_code(doc)), (403, "MFA_ENROLMENT_REQUIRED"))
        rcli("DEL", "ratelimit:login:127.0.0.1")
        eq(dep.login(ADMIN, ADMIN_PW)[1].keys(), {"token", "agent"}, "the password is enough again")

        for event in ("mfa_bind_start", "mfa_enable", "mfa_verify", "mfa_disable"):
            wait_for_audit(dep, event, "ok")
        eq(len(dep.audit("mfa_bind_start", "ok")), 2)
        rows = wait_for_audit(dep, "login", "denied")
        eq(json.loads(rows[0][3])["reason"], "otp_required")
        check(any(json.loads(r[3]) == {"mfa": True} for r in dep.audit("login", "ok")),
              "the sign-in with a code is audited as such")
        log = dep.api.log_text()
        check(secret not in log, "the secret reached the log")


# ---- one use per code, the window ----

def test_a_code_is_accepted_once_and_older_steps_are_refused():
    with Deployment() as dep:
        s = room_in_step(15)
        token, secret = enrolled(dep)  # confirmed with the code of step s
        for code, what in ((code_at(secret, s), "the confirming code again"),
                           (code_at(secret, s - 1), "an older step")):
            st, doc, _ = code_call(dep, "/api/mfa/verify", token, code)
            eq((st, error_code(doc)), (401, "INVALID_OTP_CODE"), what)
        st, doc, _ = code_call(dep, "/api/mfa/verify", token, code_at(secret, s + 1))
        eq(st, 200, doc)
        st, doc, _ = code_call(dep, "/api/mfa/verify", token, code_at(secret, s + 1))
        eq((st, error_code(doc)), (401, "INVALID_OTP_CODE"), "replayed on verify")
        rcli("DEL", "ratelimit:login:127.0.0.1")
        st, doc, _ = dep.login(ADMIN, ADMIN_PW, otp=code_at(secret, s + 1))
        eq((st, error_code(doc)), (401, "INVALID_OTP_CODE"), "replayed at sign-in")
        st, doc, _ = code_call(dep, "/api/mfa/disable", token, code_at(secret, s + 1))
        eq((st, error_code(doc)), (401, "INVALID_OTP_CODE"), "replayed on disable")
        eq(dep.sql("SELECT mfa_enabled, mfa_last_step FROM accounts WHERE id = 1"),
           f"t|{s + 1}")
        rows = wait_for_audit(dep, "mfa_verify", "failed", 3)
        eq([json.loads(r[3])["reason"] for r in rows], ["replayed", "replayed", "replayed"])
        eq(json.loads(wait_for_audit(dep, "login", "failed")[0][3]), {"reason": "replayed"})


def test_codes_two_steps_away_are_refused():
    with Deployment() as dep:
        s = room_in_step(15)
        token, secret = enrolled(dep)
        for d in (2, -2, 3):
            st, doc, _ = code_call(dep, "/api/mfa/verify", token, code_at(secret, s + d))
            eq((st, error_code(doc)), (401, "INVALID_OTP_CODE"), f"step {d:+d}")
        eq(code_call(dep, "/api/mfa/verify", token, code_at(secret, s + 1))[0], 200,
           "one step ahead is inside the window")
        rows = wait_for_audit(dep, "mfa_verify", "failed", 3)
        eq({json.loads(r[3])["reason"] for r in rows}, {"bad_code"})


def test_two_requests_with_the_same_code_one_wins():
    with Deployment() as dep:
        s = room_in_step(15)
        token, secret = enrolled(dep)
        code = code_at(secret, s + 1)
        results = []
        # As many as the failure limit allows, so that every one is really checked (a sixth
        # could be refused by the limit, depending on when the winner's count is given back).
        barrier = threading.Barrier(5)

        def attempt():
            barrier.wait()
            results.append(code_call(dep, "/api/mfa/verify", token, code)[0])

        threads = [threading.Thread(target=attempt) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        eq(sorted(results), [200] + [401] * 4, "exactly one request wins with one code")
        eq(dep.sql("SELECT mfa_last_step FROM accounts WHERE id = 1"), str(s + 1))


# ---- the failure limit ----

def test_five_failed_codes_across_confirm_verify_disable_and_login_then_429():
    with Deployment() as dep:
        s = room_in_step(20)
        token = dep.token()
        secret = dep.call("POST", "/api/mfa/bind/start", token=token)[1]["secret"]
        bad = wrong_code(secret, s)
        for _ in range(2):
            eq(code_call(dep, "/api/mfa/bind/confirm", token, bad)[0], 401)
        eq(code_call(dep, "/api/mfa/bind/confirm", token, code_at(secret, s))[0], 200,
           "a success does not count")
        eq(code_call(dep, "/api/mfa/verify", token, bad)[0], 401)
        eq(code_call(dep, "/api/mfa/disable", token, bad)[0], 401)
        rcli("DEL", "ratelimit:login:127.0.0.1")
        eq(dep.login(ADMIN, ADMIN_PW, otp=bad)[0], 401)
        eq(rcli("GET", "ratelimit:otp:1"), "5", "five failures counted")

        good = code_at(secret, s + 1)
        st, doc, hd = code_call(dep, "/api/mfa/verify", token, good)
        eq((st, error_code(doc)), (429, "RATE_LIMITED"), "the right code too, once locked")
        check(1 <= int(hd["retry-after"]) <= 900, hd)
        eq(dep.login(ADMIN, ADMIN_PW, otp=good)[0], 429, "sign-in shares the limit")
        eq(code_call(dep, "/api/mfa/disable", token, good)[0], 429)
        ttl = int(rcli("TTL", "ratelimit:otp:1"))
        check(0 < ttl <= 900, f"a 15-minute window: {ttl}")
        eq(dep.sql("SELECT mfa_last_step FROM accounts WHERE id = 1"), str(s),
           "no refused code was recorded")
        rows = wait_for_audit(dep, "mfa_verify", "locked")
        eq(len(rows), 1, "one audit row per locked window")

        rcli("PEXPIRE", "ratelimit:otp:1", "200")
        wait_until(lambda: rcli("EXISTS", "ratelimit:otp:1") == "0", timeout=5, what="window end")
        eq(code_call(dep, "/api/mfa/verify", token, good)[0], 200, "a new window")
        fails = [json.loads(r[3])["reason"] for event in ("mfa_enable", "mfa_verify",
                                                          "mfa_disable", "login")
                 for r in dep.audit(event, "failed")]
        eq(sorted(fails), ["bad_code"] * 5)


# ---- secrets at rest ----

def test_secret_at_rest_is_sealed_not_plaintext_and_bound_to_its_account():
    with Deployment() as dep:
        s = room_in_step(15)
        admin, secret = enrolled(dep)
        raw = base64.b32decode(secret)
        stored = bytes.fromhex(dep.sql("SELECT encode(mfa_secret_enc, 'hex') FROM accounts "
                                       "WHERE id = 1"))
        eq(len(stored), 1 + 12 + 20 + 16, "format byte, nonce, ciphertext, tag")
        for form in (raw, secret.encode(), secret.lower().encode(), raw.hex().encode()):
            check(form not in stored, "the stored secret contains the secret")
        key_id = dep.sql("SELECT mfa_key_id FROM accounts WHERE id = 1")
        check(re.fullmatch(r"[0-9a-f]{16}", key_id), key_id)
        check(f"current_key_id={key_id}" in dep.api.log_text(), "the key id is logged at start")
        check(KEY_A not in dep.api.log_text() and secret not in dep.api.log_text())

        # The same secret bound by another account is sealed differently (own nonce, own AAD),
        # and a ciphertext copied onto another account's row does not open there.
        dep.add_agent(dep.mfa_token(), "agent1", "agent1-password")
        agent = dep.token("agent1", "agent1-password")
        dep.sql("UPDATE accounts a SET mfa_enabled = true, mfa_secret_enc = r.mfa_secret_enc, "
                "mfa_key_id = r.mfa_key_id FROM accounts r WHERE r.id = 1 AND a.login = 'agent1'")
        st, doc, _ = code_call(dep, "/api/mfa/verify", agent, code_at(secret, s + 1))
        eq((st, error_code(doc)), (500, "INTERNAL"), "a transplanted secret does not open")
        check("mfa.secret_unreadable" in dep.api.log_text(), "and the reason is logged")


def test_key_rotation_reads_secrets_under_a_retired_key_and_reseals_them():
    with Deployment() as dep:
        s = room_in_step(20)
        token, secret = enrolled(dep)
        admin_token = dep.mfa_token()
        dep.add_agent(admin_token, "agent1", "agent1-password")
        agent, agent_secret = enrolled(dep, "agent1", "agent1-password")
        old_id = dep.sql("SELECT mfa_key_id FROM accounts WHERE id = 1")
        old_blob = dep.sql("SELECT encode(mfa_secret_enc, 'hex') FROM accounts WHERE id = 1")
        dep.api.stop()
        redis = REDIS_URL.rsplit("/", 1)[0] + "/" + REDIS_DB

        # Bad key lists stop the daemon at start, naming the variable.
        for retired, words in (("not-a-key", "EDGEGATE_MFA_RETIRED_KEYS is invalid"),
                               (KEY_B, "repeats the current")):
            api = ApiServer(dep.url, env={"EDGEGATE_REDIS_URL": redis, "EDGEGATE_MFA_KEY": KEY_B,
                                          "EDGEGATE_MFA_RETIRED_KEYS": retired})
            api.start(wait=False)
            eq(api.proc.wait(timeout=20), 2, "exit status")
            api.log.close()
            check(words in api.log_text(), api.log_text())
            check(KEY_B not in api.log_text(), "a key reached the log")

        rotated = ApiServer(dep.url, env={"EDGEGATE_REDIS_URL": redis, "EDGEGATE_MFA_KEY": KEY_B,
                                          "EDGEGATE_MFA_RETIRED_KEYS": KEY_A})
        dep.api = rotated.start()
        eq(code_call(dep, "/api/mfa/verify", token, code_at(secret, s + 1))[0], 200,
           "a secret under the retired key still works")
        new_id = dep.sql("SELECT mfa_key_id FROM accounts WHERE id = 1")
        check(new_id != old_id, "re-sealed under the current key")
        check(dep.sql("SELECT encode(mfa_secret_enc, 'hex') FROM accounts WHERE id = 1")
              != old_blob, "a new ciphertext")
        eq(dep.sql("SELECT mfa_key_id FROM accounts WHERE login = 'agent1'"), old_id,
           "an account not seen since stays under the old key")
        check(f"current_key_id={new_id}" in rotated.log_text() and "retired_keys=1" in
              rotated.log_text(), "the start-up log names the keys")
        check("mfa.secret_rekeyed" in rotated.log_text())
        dep.api.stop()

        # The old key dropped: the re-sealed secret works, the untouched one cannot open.
        dep.api = ApiServer(dep.url, env={"EDGEGATE_REDIS_URL": redis,
                                          "EDGEGATE_MFA_KEY": KEY_B}).start()
        wait_for_step(s + 1)
        eq(code_call(dep, "/api/mfa/verify", token, code_at(secret, s + 2))[0], 200)
        st, doc, _ = code_call(dep, "/api/mfa/verify", agent, code_at(agent_secret, s + 2))
        eq((st, error_code(doc)), (500, "INTERNAL"))
        check(re.search(r"mfa.secret_unreadable .*key_id=" + old_id + " reason=key_not_configured",
                        dep.api.log_text()), "the unknown key is named in the log")


# ---- admin reset ----

class Subscriber:
    """A Redis SUBSCRIBE of our own over a socket (RESP2), to see what api-server publishes."""

    def __init__(self, channel):
        self.sock = socket.create_connection(("127.0.0.1", int(REDIS_PORT)), timeout=5)
        self.buf = b""
        self.sock.sendall(f"SUBSCRIBE {channel}\r\n".encode())
        eq(self._value()[0], b"subscribe", "subscription confirmed")

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            check(chunk, "Redis closed the subscription")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _value(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"*":
            return [self._value() for _ in range(int(rest))]
        if kind == b"$":
            n = int(rest)
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(4096)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b":":
            return int(rest)
        raise AssertionError(f"unexpected RESP line {line!r}")

    def message(self):
        """The next message's payload, parsed as JSON (socket timeout: 5 s)."""
        kind, _, payload = self._value()
        eq(kind, b"message")
        return json.loads(payload)

    def close(self):
        self.sock.close()


def test_admin_reset_is_admin_only_clears_mfa_ends_sessions_and_publishes_the_event():
    with Deployment() as dep:
        admin = dep.mfa_token()
        dep.add_agent(admin, "ann", "ann-password-1")
        ann_id = account_id(dep, "ann")
        ann = dep.mfa_token("ann", "ann-password-1")
        eq(mark(ann_id) != "", True, "ann signed in with a code")
        dep.add_plain_user("plain", "plain-password")
        plain = dep.token("plain", "plain-password")
        for who, tok in (("an agent", ann), ("a plain user", plain)):
            st, doc, _ = dep.call("POST", f"/api/admin/mfa/reset/{ann_id}", token=tok)
            eq((st, error_code(doc)), (403, "FORBIDDEN"), who)
        eq(dep.sql(f"SELECT mfa_enabled FROM accounts WHERE id = {ann_id}"), "t")

        # An admin without a fresh verification is asked for one first (step-up).
        rcli("DEL", "mfa:verified:1")
        st, doc, _ = dep.call("POST", f"/api/admin/mfa/reset/{ann_id}", token=admin)
        eq((st, error_code(doc)), (403, "MFA_REQUIRED"))
        admin = dep.mfa_token()

        for path in ("/api/admin/mfa/reset/999", "/api/admin/mfa/reset/ann",
                     "/api/admin/mfa/reset/0", "/api/admin/mfa/reset/-1",
                     "/api/admin/mfa/reset/99999999999999999999"):
            st, doc, _ = dep.call("POST", path, token=admin)
            eq((st, error_code(doc)), (404, "NOT_FOUND"), path)

        events = Subscriber("edgegate:events")
        try:
            st, doc, _ = dep.call("POST", f"/api/admin/mfa/reset/{ann_id}", token=admin)
            eq((st, doc), (200, {"reset": True, "account_id": ann_id}))
            eq(events.message(), {"type": "mfa.reset", "account_id": ann_id})
        finally:
            events.close()
        eq(rcli("EXISTS", f"mfa:verified:{ann_id}"), "0", "the mark is cleared")
        eq(dep.sql(f"SELECT mfa_enabled, mfa_secret_enc IS NULL, mfa_pending_enc IS NULL, "
                   f"mfa_key_id IS NULL, mfa_last_step IS NULL FROM accounts WHERE id = {ann_id}"),
           "f|t|t|t|t")
        eq(dep.status("GET", "/api/agents/me", token=ann), 401, "ann's sessions ended")
        eq(dep.status("GET", "/api/agents/me", token=admin), 200, "the admin's did not")
        rcli("DEL", "ratelimit:login:127.0.0.1")
        st, doc, _ = dep.login("ann", "ann-password-1")
        eq((st, set(doc)), (200, {"token", "agent"}), "ann signs in with the password alone")
        eq(doc["agent"]["mfa_enabled"], False)

        rows = wait_for_audit(dep, "mfa_reset", "ok")
        eq((rows[0][0], rows[0][1]), (str(ann_id), "1"), "about ann, done by the admin")
        eq(json.loads(rows[0][3]), {"had_mfa": True})
        rows = wait_for_audit(dep, "session_revoked", "ok")
        eq(json.loads(rows[-1][3]), {"reason": "mfa_reset"})

        # Nothing to reset: 200, and nobody is signed out.
        ann = dep.token("ann", "ann-password-1")
        eq(dep.status("POST", f"/api/admin/mfa/reset/{ann_id}", token=admin), 200)
        eq(dep.status("GET", "/api/agents/me", token=ann), 200)


# ---- step-up across the route table ----

def test_every_step_up_route_needs_a_fresh_mark_and_admin_routes_need_enrolment():
    step_up = [(m, p, path, r) for m, p, path, r in route_table() if r.endswith("+step-up")]
    # The reset of the admin's own MFA (account 1) ends the admin's sessions: walk it last.
    step_up.sort(key=lambda r: r[1] == "/api/admin/mfa/reset/{account}")
    check(("POST", "/api/agents/password") in {(m, p) for m, p, _, _ in step_up})
    check(("POST", "/api/admin/mfa/reset/{account}") in {(m, p) for m, p, _, _ in step_up})
    with Deployment() as dep:
        admin = dep.mfa_token()
        bare = dep.token()  # the same admin; the mark is per account
        for method, pattern, path, rule in step_up:
            body = {} if method in ("POST", "PUT", "PATCH") else None
            rcli("DEL", "mfa:verified:1")
            st, doc, _ = dep.call(method, path, token=bare, body=body)
            eq((st, error_code(doc)), (403, "MFA_REQUIRED"), f"{method} {pattern} without a mark")
            rcli("SET", "mfa:verified:1", "1", "EX", "60")
            st, doc, _ = dep.call(method, path, token=bare, body=body)
            check(st not in (401, 403), f"{method} {pattern} with a mark: {st} {doc}")

    # With EDGEGATE_MFA_REQUIRE_ADMIN=0 an admin without MFA is not asked to enrol, but step-up
    # routes (all admin routes today) still want a verification, which needs MFA.
    for setting, code in (("1", "MFA_ENROLMENT_REQUIRED"), ("0", "MFA_REQUIRED")):
        with Deployment(env={"EDGEGATE_MFA_REQUIRE_ADMIN": setting}) as dep:
            token = dep.token()
            for method, pattern, path, rule in step_up:
                if rule.startswith("admin"):
                    st, doc, _ = dep.call(method, path, token=token,
                                          body={} if method != "DELETE" else None)
                    eq((st, error_code(doc)), (403, code), f"{setting}: {method} {pattern}")
