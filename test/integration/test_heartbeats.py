"""Monitored servers: registration, heartbeats authenticated by challenge or API key, their
refusals, and the stale flag, through the real api-server and PostgreSQL."""
import json
import re
import time

from device_kit import Stack, check, eq, error_code, sha256, wait_until
from test_accounts import wait_for_audit

UUID_SHAPE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
BEAT = {"identifier": "web-1", "openclaw_version": "1.4.2", "agents": ["main", {"name": "cron",
        "pid": 4242, "alive": True}], "cpu_pct": 12.5, "mem_pct": 40, "disk_pct": 99.9,
        "swap_pct": 0}


def register(dep, token, identifier="web-1", name=None):
    body = {"identifier": identifier} | ({"name": name} if name else {})
    st, doc, _ = dep.call("POST", "/api/servers", token=token, body=body)
    eq(st, 201, doc)
    return doc


def beat(dep, challenge=None, key=None, body=None, raw=None):
    headers = {}
    if challenge is not None:
        headers["X-Challenge-UUID"] = challenge
    if key is not None:
        headers["X-Api-Key"] = key
    path = "/api/server/heartbeat" if challenge is not None else "/api/server/heartbeat-v2"
    st, doc, _ = dep.call("POST", path, headers=headers,
                          body=raw if raw is not None else (body or BEAT))
    return st, doc


def servers(dep, token):
    st, doc, _ = dep.call("GET", "/api/servers", token=token)
    eq(st, 200, doc)
    return {s["identifier"]: s for s in doc["servers"]}


def test_register_then_heartbeats_by_challenge_and_by_api_key_store_the_state():
    with Stack(proxy=False) as dep:
        alice, tok = dep.user("alice")
        reg = register(dep, tok, name="Web one")
        eq(set(reg), {"server_id", "identifier", "name", "api_key", "challenge_uuid",
                      "challenge_expires_at"})
        eq((reg["identifier"], reg["name"]), ("web-1", "Web one"))
        check(UUID_SHAPE.match(reg["server_id"]) and UUID_SHAPE.match(reg["challenge_uuid"]), reg)
        eq(len(reg["api_key"]), 43)
        row = dep.sql("SELECT api_key_hash, challenge_hash,"
                      " round(extract(epoch FROM challenge_expires_at - now())) FROM servers")
        key_hash, challenge_hash, left = row.split("|")
        eq((key_hash, challenge_hash), (sha256(reg["api_key"]), sha256(reg["challenge_uuid"])),
           "only hashes are stored")
        check(595 <= float(left) <= 600, left)
        check(reg["api_key"] not in dep.sql("SELECT row_to_json(s)::text FROM servers s"), "key")
        wait_for_audit(dep, "server_registered", "ok")

        _, bob = dep.user("bob")
        st, doc, _ = dep.call("POST", "/api/servers", token=bob, body={"identifier": "web-1"})
        eq((st, error_code(doc)), (409, "IDENTIFIER_TAKEN"), "identifiers are global")
        for bad in ("", "has space", "x" * 129, "ünï"):
            st, doc, _ = dep.call("POST", "/api/servers", token=tok, body={"identifier": bad})
            eq((st, error_code(doc)), (422, "INVALID_IDENTIFIER"), bad)

        fresh = servers(dep, tok)["web-1"]
        eq((fresh["last_seen_at"], fresh["state"], fresh["stale"], fresh["enabled"]),
           (None, None, False, True))

        # The challenge, in upper case as some tools print uuids.
        st, doc = beat(dep, challenge=reg["challenge_uuid"].upper())
        eq(st, 200, doc)
        eq(set(doc), {"ok", "server_id", "last_seen_at", "challenge_valid_until"})
        eq((doc["ok"], doc["server_id"], doc["challenge_valid_until"]),
           (True, reg["server_id"], reg["challenge_expires_at"]))
        first_use = dep.sql("SELECT challenge_first_used_at FROM servers")
        check(first_use != "", "the first use is recorded")
        time.sleep(0.01)
        eq(beat(dep, challenge=reg["challenge_uuid"])[0], 200, "a challenge serves until it ends")
        eq(dep.sql("SELECT challenge_first_used_at FROM servers"), first_use, "first use kept")
        s = servers(dep, tok)["web-1"]
        eq((s["last_auth"], s["state"]["agents"], s["state"]["cpu_pct"]),
           ("challenge", BEAT["agents"], 12.5))

        st, doc = beat(dep, key=reg["api_key"], body={"identifier": "web-1", "agents": [],
                                                      "cpu_pct": 3})
        eq(st, 200, doc)
        eq(set(doc), {"ok", "server_id", "last_seen_at"}, "no challenge in API key mode")
        s = servers(dep, tok)["web-1"]
        eq(s["last_seen_at"], doc["last_seen_at"])
        eq(s["state"], {"openclaw_version": None, "agents": [], "cpu_pct": 3.0, "mem_pct": None,
                        "disk_pct": None, "swap_pct": None}, "each heartbeat replaces the state")
        eq((s["last_auth"], s["stale"]), ("api_key", False))


def test_heartbeat_refusals_unknown_expired_wrong_disabled_and_bad_bodies():
    with Stack(proxy=False) as dep:
        _, tok = dep.user("alice")
        reg = register(dep, tok)
        other = register(dep, tok, "db-1")
        sid = reg["server_id"]

        for headers, code in ((None, "MISSING_CREDENTIAL"),
                              ("not-a-uuid", "INVALID_CREDENTIAL"),
                              ("5f0c9f7e-3c49-4b8e-9a55-0d1f2e3a4b5c", "INVALID_CREDENTIAL")):
            st, doc, _ = dep.call("POST", "/api/server/heartbeat", body=BEAT,
                                  headers={"X-Challenge-UUID": headers} if headers else None)
            eq((st, error_code(doc)), (401, code), f"challenge {headers!r}")
        for key, code in ((None, "MISSING_CREDENTIAL"), ("", "MISSING_CREDENTIAL"),
                          ("x" * 43, "INVALID_CREDENTIAL"), (reg["api_key"][:-1], "INVALID_CREDENTIAL"),
                          ("k" * 300, "INVALID_CREDENTIAL")):
            st, doc, _ = dep.call("POST", "/api/server/heartbeat-v2", body=BEAT,
                                  headers={"X-Api-Key": key} if key is not None else None)
            eq((st, error_code(doc)), (401, code), f"key {key!r}")
        st, doc = beat(dep, challenge=reg["challenge_uuid"], key=reg["api_key"])
        eq(st, 200, "a challenge route reads only the challenge")
        st, doc, _ = dep.call("POST", "/api/server/heartbeat-v2", body=BEAT,
                              headers={"X-Challenge-UUID": reg["challenge_uuid"]})
        eq(st, 401, "the v2 route needs the API key")
        eq(beat(dep, key=other["api_key"])[1]["error"]["code"], "IDENTIFIER_MISMATCH",
           "a key speaks for its own server only")

        # Expired, without waiting ten minutes.
        dep.sql(f"UPDATE servers SET challenge_expires_at = now() - interval '1 second'"
                f" WHERE id = '{sid}'")
        st, doc = beat(dep, challenge=reg["challenge_uuid"])
        eq((st, error_code(doc)), (401, "CHALLENGE_EXPIRED"))
        eq(beat(dep, key=reg["api_key"])[0], 200, "the API key does not expire")
        st, doc, _ = dep.call("POST", f"/api/servers/{sid}/challenge", token=tok)
        eq(st, 200, doc)
        eq(set(doc), {"server_id", "challenge_uuid", "challenge_expires_at"})
        eq(beat(dep, challenge=doc["challenge_uuid"])[0], 200, "the new challenge works")
        eq(beat(dep, challenge=reg["challenge_uuid"])[0], 401, "the old one is replaced")
        wait_for_audit(dep, "server_challenge_issued", "ok")

        # Disabled: 404 whichever credential; enabled again, it reports again.
        st, doc, _ = dep.call("PATCH", f"/api/servers/{sid}", token=tok, body={"enabled": False})
        eq((st, doc["enabled"]), (200, False))
        for kw in ({"key": reg["api_key"]}, {"challenge": doc_challenge(dep, tok, sid)}):
            st, doc = beat(dep, **kw)
            eq((st, error_code(doc)), (404, "SERVER_DISABLED"), kw)
        eq(dep.call("PATCH", f"/api/servers/{sid}", token=tok, body={"enabled": True})[0], 200)
        eq(beat(dep, key=reg["api_key"])[0], 200)

        bad_bodies = [
            ({**BEAT, "cpu_pct": 100.5}, "INVALID_PERCENTAGE"),
            ({**BEAT, "mem_pct": -1}, "INVALID_PERCENTAGE"),
            ({**BEAT, "disk_pct": "50"}, "INVALID_PERCENTAGE"),
            ({**BEAT, "swap_pct": True}, "INVALID_PERCENTAGE"),
            ({**BEAT, "identifier": "db-1"}, "IDENTIFIER_MISMATCH"),
            ({**BEAT, "identifier": "bad id"}, "INVALID_IDENTIFIER"),
            ({k: v for k, v in BEAT.items() if k != "identifier"}, "MISSING_FIELD"),
            ({k: v for k, v in BEAT.items() if k != "agents"}, "MISSING_FIELD"),
            ({**BEAT, "agents": "main"}, "INVALID_AGENTS"),
            ({**BEAT, "agents": ["a"] * 257}, "INVALID_AGENTS"),
            ({**BEAT, "agents": ["x" * 257]}, "INVALID_AGENTS"),
            ({**BEAT, "agents": [{"nested": {"deep": 1}}]}, "INVALID_AGENTS"),
            ({**BEAT, "agents": [{f"k{i}": i for i in range(33)}]}, "INVALID_AGENTS"),
            ({**BEAT, "agents": [3]}, "INVALID_AGENTS"),
            ({**BEAT, "openclaw_version": "v" * 65}, "INVALID_VERSION"),
            ({**BEAT, "openclaw_version": "1.0\n"}, "INVALID_VERSION"),
        ]
        before = dep.sql(f"SELECT last_seen_at, cpu_pct FROM servers WHERE id = '{sid}'")
        for body, code in bad_bodies:
            st, doc = beat(dep, key=reg["api_key"], body=body)
            eq((st, error_code(doc)), (422, code), json.dumps(body)[:120])
        for raw in ("not json", "[1, 2]", ""):
            st, doc = beat(dep, key=reg["api_key"], raw=raw)
            eq((st, error_code(doc)), (400, "INVALID_JSON"), raw)
        eq(dep.sql(f"SELECT last_seen_at, cpu_pct FROM servers WHERE id = '{sid}'"), before,
           "a refused heartbeat stores nothing")
        # Limits are inclusive, and null is absent.
        edge = {**BEAT, "cpu_pct": 100, "mem_pct": 0.0, "swap_pct": None,
                "agents": ["x" * 256] * 256, "openclaw_version": "v" * 64}
        eq(beat(dep, key=reg["api_key"], body=edge)[0], 200)


def doc_challenge(dep, token, sid):
    st, doc, _ = dep.call("POST", f"/api/servers/{sid}/challenge", token=token)
    eq(st, 200, doc)
    return doc["challenge_uuid"]


def test_stale_after_the_configured_silence():
    with Stack(proxy=False, env={"EDGEGATE_HEARTBEAT_STALE_SECONDS": "2"}) as dep:
        _, tok = dep.user("alice")
        reg = register(dep, tok)
        never = register(dep, tok, "never-1")
        eq(beat(dep, key=reg["api_key"])[0], 200)
        eq((servers(dep, tok)["web-1"]["stale"], servers(dep, tok)["never-1"]["stale"]),
           (False, False))
        wait_until(lambda: servers(dep, tok)["web-1"]["stale"], timeout=6,
                   what="stale after two silent seconds")
        check(servers(dep, tok)["never-1"]["stale"], "a server that never reported goes stale")
        eq(beat(dep, key=reg["api_key"])[0], 200)
        eq(servers(dep, tok)["web-1"]["stale"], False, "a heartbeat makes it fresh again")
        eq(never["identifier"], "never-1")


def test_other_users_get_404_on_a_server_and_admins_see_all():
    with Stack(proxy=False) as dep:
        _, a_tok = dep.user("alice")
        _, b_tok = dep.user("bob")
        reg = register(dep, a_tok)
        register(dep, b_tok, "bob-1")
        sid = reg["server_id"]
        for method, path, body in (("POST", f"/api/servers/{sid}/challenge", None),
                                   ("PATCH", f"/api/servers/{sid}", {"enabled": False}),
                                   ("PATCH", "/api/servers/nope", {"enabled": False})):
            st, doc, _ = dep.call(method, path, token=b_tok, body=body)
            eq((st, error_code(doc)), (404, "NOT_FOUND"), f"{method} {path}")
        eq(dep.sql("SELECT enabled FROM servers WHERE identifier = 'web-1'"), "t")
        eq(list(servers(dep, b_tok)), ["bob-1"], "a user lists their own servers")
        eq(sorted(servers(dep, dep.token())), ["bob-1", "web-1"], "admins list all")
        st, doc, _ = dep.call("PATCH", f"/api/servers/{sid}", token=dep.token(),
                              body={"name": "Renamed by the admin"})
        eq((st, doc["name"], doc["enabled"]), (200, "Renamed by the admin", True))
        st, doc, _ = dep.call("PATCH", f"/api/servers/{sid}", token=a_tok, body={"enabled": "no"})
        eq((st, error_code(doc)), (422, "INVALID_ENABLED"))
