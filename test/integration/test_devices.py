"""Devices: pairing, credentials, the devices API and revocation, through the real api-server and
remote-proxy (one Redis database), PostgreSQL, and bin/edge-agent connecting with the credential
the pairing exchange handed out."""
import json
import re
import threading
import time

from harness import request
from device_kit import (ADMIN, Events, Stack, check, cred_key, cred_keys, eq, error_code, rcli,
                        sha256, tunnel_status, wait_until)
from test_accounts import wait_for_audit
from test_edge_agent import EdgeAgent, http_target
from tunnel_kit import auth, forward_http, sessions, wait_connected

CODE_SHAPE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")
UUID_SHAPE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def session_of(proxy, device_id):
    return next((s for s in sessions(proxy)["sessions"] if s["device_id"] == device_id), None)


# ---- pairing ----

def test_pair_exchange_and_the_agent_connects_with_the_token():
    with Stack() as dep, Events() as events, http_target() as target:
        alice, tok = dep.user("alice")
        st, doc, _ = dep.call("POST", "/api/devices/pairing", token=tok)
        eq(st, 201, doc)
        code = doc["code"]
        check(CODE_SHAPE.match(code), f"a short code without look-alikes: {code}")
        eq(doc["expires_in"], 600)
        left = dep.sql("SELECT round(extract(epoch FROM expires_at - now())) FROM pairing_codes")
        check(595 <= float(left) <= 600, f"ten minutes: {left}")
        eq(dep.sql("SELECT count(*) FROM pairing_codes WHERE code_hash = "
                   f"'{sha256(code.replace('-', ''))}'"), "1", "stored as the hash of the code")

        # Typed the way a person would: lower case, the dash dropped, O for 0 and l for 1.
        typed = code.replace("-", " ").lower().replace("0", "o").replace("1", "l")
        st, doc, _ = dep.exchange(typed, "Front door camera")
        eq(st, 200, doc)
        device, token = doc["device_id"], doc["token"]
        check(UUID_SHAPE.match(device), device)
        eq(len(token), 43, "256 bits in base64url")
        eq(doc["name"], "Front door camera")

        # PostgreSQL keeps the hash only; Redis the record remote-proxy reads.
        eq(dep.sql("SELECT owner_id, name, token_hash, revoked_at IS NULL FROM devices"),
           f"{alice}|Front door camera|{sha256(token)}|t")
        eq(dep.sql("SELECT used_at IS NOT NULL, device_id FROM pairing_codes"), f"t|{device}")
        check(token not in dep.sql("SELECT row_to_json(d)::text FROM devices d"), "token in PG")
        record = rcli("HGETALL", cred_key(token)).splitlines()
        eq(dict(zip(record[::2], record[1::2])), {"device_id": device, "user_id": str(alice)})

        paired = events.wait("device.paired", device)
        eq(paired["user_id"], str(alice))
        rows = wait_for_audit(dep, "device_paired", "ok")
        eq(rows[0][0], str(alice))
        check(token not in dep.sql("SELECT detail::text FROM audit_log"), "token in the audit log")

        st, doc, _ = dep.call("GET", f"/api/devices/{device}", token=tok)
        eq((st, doc["online"], doc["last_seen_at"]), (200, False, None))

        with EdgeAgent(dep.proxy, token, target.addr):
            s = wait_connected(dep.proxy, device)
            eq(s["user_id"], str(alice), "the tunnel belongs to the owner")
            st, out = forward_http(dep.proxy, device, path="/hello")
            eq((st, out["status"], out["body"]), (200, 200, b"hello, world\n"))

            st, doc, _ = dep.call("GET", "/api/devices", token=tok)
            eq(st, 200, doc)
            eq(doc["total"], 1)
            d = doc["devices"][0]
            eq((d["device_id"], d["name"], d["owner_id"], d["online"]),
               (device, "Front door camera", alice, True))
            check(d["last_seen_at"] is not None and d["created_at"] is not None, d)
            # remote-proxy's device.online reaches api-server, which records it.
            wait_until(lambda: dep.sql("SELECT last_seen_at IS NOT NULL FROM devices") == "t",
                       timeout=5, what="last_seen_at from device.online")

        wait_until(lambda: not dep.call("GET", f"/api/devices/{device}", token=tok)[1]["online"],
                   timeout=10, what="offline once the agent is gone")
        st, doc, _ = dep.call("GET", f"/api/devices/{device}", token=tok)
        check(doc["last_seen_at"] is not None, "an offline device shows when it was last seen")

        st, doc, _ = dep.exchange(code)
        eq((st, error_code(doc)), (401, "INVALID_PAIRING_CODE"), "a code serves once")
        eq(dep.sql("SELECT count(*) FROM devices"), "1")
        check(token not in dep.api.log_text(), "a device token reached the log")


def test_concurrent_exchanges_of_one_code_exactly_one_wins_and_losers_leave_nothing():
    with Stack(proxy=False) as dep:
        _, tok = dep.user("alice")
        for round_ in range(4):
            rcli("DEL", "ratelimit:pairing:127.0.0.1")
            code = dep.pairing_code(tok)
            start = threading.Barrier(10)
            results = [None] * 10

            def exchange(i):
                start.wait()
                results[i] = dep.exchange(code, f"racer {i}")[:2]
            threads = [threading.Thread(target=exchange, args=(i,)) for i in range(10)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            winners = [doc for st, doc in results if st == 200]
            eq(len(winners), 1, f"round {round_}: {results}")
            eq(sorted({(st, error_code(doc)) for st, doc in results if st != 200}),
               [(401, "INVALID_PAIRING_CODE")])
            token = winners[0]["token"]
            eq(dep.sql(f"SELECT device_id FROM pairing_codes WHERE code_hash = "
                       f"'{sha256(code.replace('-', ''))}'"), winners[0]["device_id"])
            eq(dep.sql(f"SELECT count(*) FROM devices WHERE token_hash = '{sha256(token)}'"), "1")
        # Every loser's credential is gone from both stores: one device and one key per round.
        eq(dep.sql("SELECT count(*) FROM devices"), "4")
        eq(len(cred_keys()), 4, cred_keys())
        eq(sorted(cred_keys()),
           sorted("tunnel:cred:" + h for h in dep.sql("SELECT token_hash FROM devices").split()))
        # The race was real: some exchanges found the code open, wrote a credential and lost
        # at the conditional UPDATE (the rest were refused at the first look-up).
        rows = wait_until(lambda: dep.audit("device_pairing", "failed"), timeout=5,
                          what="audit rows")
        reasons = [json.loads(r[3])["reason"] for r in rows]
        check("code_taken" in reasons, f"no exchange lost at the conditional UPDATE: {reasons}")


def test_expired_unknown_and_malformed_codes_are_refused_alike():
    with Stack(proxy=False) as dep:
        _, tok = dep.user("alice")
        code = dep.pairing_code(tok)
        dep.sql("UPDATE pairing_codes SET expires_at = now() - interval '1 second'")
        bodies = set()
        for attempt in (code, "ZZZZ-ZZZZ", "ABC", "UUUU-UUUU", code + "0"):
            st, doc, _ = dep.exchange(attempt)
            eq(st, 401, f"{attempt}: {doc}")
            bodies.add(json.dumps(doc))
        eq(len(bodies), 1, f"one answer for every way of being wrong: {bodies}")
        eq(dep.sql("SELECT count(*) FROM devices"), "0")
        eq(cred_keys(), [], "no credential for a refused exchange")

        for body, want in (({"code": code}, (422, "MISSING_FIELD")),
                           ({"code": code, "device_name": ""}, (422, "INVALID_DEVICE_NAME")),
                           ({"code": code, "device_name": "bad\nname"}, (422, "INVALID_DEVICE_NAME")),
                           ({"code": 12345678, "device_name": "x"}, (422, "INVALID_PAIRING_CODE"))):
            st, doc, _ = dep.call("POST", "/api/pairing/exchange", body=body)
            eq((st, error_code(doc)), want, body)
        eq(dep.status("POST", "/api/pairing/exchange", body="not json"), 400)

        # At most ten open codes per account (the expired one does not count).
        codes = [dep.pairing_code(tok) for _ in range(10)]
        st, doc, _ = dep.call("POST", "/api/devices/pairing", token=tok)
        eq((st, error_code(doc)), (409, "TOO_MANY_OPEN_CODES"))
        # A code dies with its owner's account.
        dep.sql("UPDATE accounts SET disabled = true WHERE login = 'alice'")
        eq(dep.exchange(codes[0])[0], 401, "the owner is disabled")
        dep.sql("UPDATE accounts SET disabled = false WHERE login = 'alice'")
        eq(dep.exchange(codes[0])[0], 200, "and the same code works for an enabled owner")
        eq(dep.status("POST", "/api/devices/pairing"), 401, "codes are for signed-in users")


def test_guessing_codes_is_limited_per_address_with_retry_after():
    with Stack(proxy=False) as dep:
        _, tok = dep.user("alice")
        code = dep.pairing_code(tok)
        for i in range(10):
            eq(dep.exchange(f"{i:04d}-0000")[0], 401, f"guess {i + 1}")
        st, doc, hd = dep.exchange(code)
        eq((st, error_code(doc)), (429, "RATE_LIMITED"), "even the right code, once limited")
        check(1 <= int(hd["retry-after"]) <= 60, hd)
        eq(dep.sql("SELECT used_at IS NULL FROM pairing_codes"), "t", "the code is not spent")
        rows = wait_for_audit(dep, "device_pairing", "locked")
        eq(len(rows), 1)
        rcli("PEXPIRE", "ratelimit:pairing:127.0.0.1", "100")
        wait_until(lambda: rcli("EXISTS", "ratelimit:pairing:127.0.0.1") == "0", timeout=5,
                   what="the window to end")
        eq(dep.exchange(code)[0], 200, "a new window")


# ---- the devices API ----

def test_another_users_device_is_404_for_get_patch_and_delete_admins_see_all():
    with Stack(proxy=False) as dep:
        # Both verified by MFA: DELETE is a step-up route, and it is the 404 that is tested.
        alice, a_tok = dep.user("alice", mfa=True)
        _, b_tok = dep.user("bob", mfa=True)
        device, token = dep.pair(a_tok, "alice's camera")
        bob_device, _ = dep.pair(b_tok, "bob's camera")
        missing = "0e4c5b5e-8f5d-4b6a-9a1e-1c2d3e4f5a6b"

        nobody = {}
        for method, body in (("GET", None), ("PATCH", {"name": "mine now"}), ("DELETE", None)):
            st, doc, _ = dep.call(method, f"/api/devices/{device}", token=b_tok, body=body)
            eq((st, error_code(doc)), (404, "NOT_FOUND"), f"{method} by another user")
            nobody[method] = dep.call(method, f"/api/devices/{missing}", token=b_tok, body=body)[1]
            eq(doc, nobody[method], f"{method}: the same answer as a device that does not exist")
            for bad in ("1", "not-a-uuid", missing.upper() + "0", "%00"):
                eq(dep.status(method, f"/api/devices/{bad}", token=a_tok, body=body), 404, bad)
        eq(dep.sql(f"SELECT name, revoked_at IS NULL FROM devices WHERE id = '{device}'"),
           "alice's camera|t", "nothing changed")
        eq(rcli("EXISTS", cred_key(token)), "1")
        eq([d["device_id"] for d in dep.call("GET", "/api/devices", token=b_tok)[1]["devices"]],
           [bob_device], "a user lists their own devices only")

        # Upper-case ids are the same device.
        eq(dep.call("GET", f"/api/devices/{device.upper()}", token=a_tok)[1]["device_id"], device)
        st, doc, _ = dep.call("PATCH", f"/api/devices/{device}", token=a_tok,
                              body={"name": "Garage"})
        eq((st, doc["name"], doc["owner_id"]), (200, "Garage", alice))
        for bad in ("", "x" * 801, "tab\there", 7):
            st, doc, _ = dep.call("PATCH", f"/api/devices/{device}", token=a_tok,
                                  body={"name": bad})
            eq((st, error_code(doc)), (422, "INVALID_NAME"), repr(bad))
        wait_for_audit(dep, "device_renamed", "ok")

        admin = dep.token()
        st, doc, _ = dep.call("GET", "/api/devices", token=admin)
        eq(sorted(d["device_id"] for d in doc["devices"]), sorted([device, bob_device]))
        eq(dep.call("GET", f"/api/devices/{bob_device}", token=admin)[0], 200)


def test_revoke_closes_the_tunnel_within_a_second_and_the_token_is_refused():
    with Stack() as dep, Events() as events, http_target() as target:
        alice, tok = dep.user("alice", mfa=True)  # revoking is a step-up route
        device, token = dep.pair(tok)
        with EdgeAgent(dep.proxy, token, target.addr, extra=["--refused-retry", "1"]) as agent:
            wait_connected(dep.proxy, device)
            eq(rcli("GET", f"tunnel:route:{device}"),
               f"http://127.0.0.1:{dep.proxy.internal_port}", "the route api-server follows")
            t0 = time.monotonic()
            st, doc, _ = dep.call("DELETE", f"/api/devices/{device}", token=tok)
            eq((st, doc), (200, {"device_id": device, "revoked": True, "tunnel_closed": True}))
            wait_until(lambda: session_of(dep.proxy, device) is None, timeout=1,
                       what="the tunnel to close")
            check(time.monotonic() - t0 < 1.0, f"took {time.monotonic() - t0:.2f}s")
            eq(tunnel_status(dep.proxy, token), 401, "the old token at the tunnel")
            agent.wait_log("event=agent.credential_refused", timeout=10)
            eq(session_of(dep.proxy, device), None, "the agent cannot come back")

        eq(rcli("EXISTS", cred_key(token)), "0")
        eq(dep.sql("SELECT token_hash IS NULL, revoked_at IS NOT NULL FROM devices"), "t|t")
        eq(events.wait("device.revoked", device)["user_id"], str(alice))
        rows = wait_for_audit(dep, "device_revoked", "ok")
        eq(json.loads(rows[0][3]), {"device_id": device, "tunnel": "closed"})
        eq(dep.status("GET", f"/api/devices/{device}", token=tok), 404, "a revoked device is gone")
        eq(dep.call("GET", "/api/devices", token=tok)[1]["total"], 0)
        eq(dep.status("DELETE", f"/api/devices/{device}", token=tok), 404, "revoked once")

        # Offline devices are revoked all the same; admins may revoke anyone's.
        device2, token2 = dep.pair(tok)
        st, doc, _ = dep.call("DELETE", f"/api/devices/{device2}", token=dep.mfa_token())
        eq((st, doc["revoked"], doc["tunnel_closed"]), (200, True, False))
        eq(rcli("EXISTS", cred_key(token2)), "0")
        eq(cred_keys(), [])


def test_redis_flush_then_sync_credentials_restores_tunnel_access():
    with Stack() as dep, http_target() as target:
        _, tok = dep.user("alice", mfa=True)
        device, token = dep.pair(tok, "kept")
        revoked, revoked_token = dep.pair(tok, "revoked")
        eq(dep.status("DELETE", f"/api/devices/{revoked}", token=tok), 200)
        with EdgeAgent(dep.proxy, token, target.addr, extra=["--refused-retry", "1"]) as agent:
            wait_connected(dep.proxy, device)
            rcli("FLUSHALL")
            rcli("SET", "unrelated", "keep me")
            rcli("HSET", "tunnel:cred:" + "0" * 64, "device_id", "elsewhere", "user_id", "9")
            # Redis lost the credential: the next connection of the agent is refused.
            st, _, _ = request("127.0.0.1", dep.proxy.internal_port, "POST",
                               f"/internal/session/{device}/close", auth())
            eq(st, 200)
            agent.wait_log("event=agent.credential_refused", timeout=10)

            r = dep.sync_credentials()
            eq(r.returncode, 0, r.stderr)
            check("1 device credentials written" in r.stdout, r.stdout)
            record = rcli("HGETALL", cred_key(token)).splitlines()
            eq(dict(zip(record[::2], record[1::2]))["device_id"], device)
            eq(rcli("EXISTS", cred_key(revoked_token)), "0", "a revoked device stays revoked")
            eq(rcli("GET", "unrelated"), "keep me", "nothing else is touched")
            eq(rcli("EXISTS", "tunnel:cred:" + "0" * 64), "1", "nothing is deleted")
            wait_connected(dep.proxy, device, timeout=15)
            st, out = forward_http(dep.proxy, device, path="/hello")
            eq((st, out["status"]), (200, 200))
            eq(dep.sync_credentials().returncode, 0, "running it again is harmless")
