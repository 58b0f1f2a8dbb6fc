"""remote-proxy with an edge agent we did not write: test/go-agent is hashicorp/yamux and
gorilla/websocket, as in the field. Real Redis, real sockets."""
import base64
import hashlib
import json
import socket
import threading
import time

from harness import (INTERNAL_TOKEN, RemoteProxy, build_request, check, eq, read_response,
                     redis_cli, request, require_services, wait_until)
from tunnel_kit import (GoAgent, HttpTarget, RawTarget, auth, forward_http, new_device, open_raw,
                        pattern_sha256, revoke, rss_kib, sessions, wait_connected)


def test_go_agent_connects_with_bearer_subprotocol_and_is_listed():
    require_services()
    dev, token = new_device("owner-7")
    with RemoteProxy() as proxy, HttpTarget() as target, GoAgent(proxy, token, target.addr) as agent:
        s = wait_connected(proxy, dev)
        eq(s["user_id"], "owner-7")
        eq(s["agent_version"], "go-agent/1")
        check(token not in json.dumps(sessions(proxy)), "the token must never be listed")
        eq(s["token_prefix"], token[:8] + "...", "token prefix")
        check('subprotocol "bearer.' in agent.log_text(), "the subprotocol must be echoed")
        st, _, body = request("127.0.0.1", proxy.internal_port, "GET", f"/internal/session/{dev}",
                              auth())
        eq((st, json.loads(body)["device_id"]), (200, dev))
        eq(redis_cli("GET", f"tunnel:route:{dev}"), f"http://127.0.0.1:{proxy.internal_port}")
        check(token not in proxy.log_text(), "the token must never be logged")


def test_forward_http_get_and_binary_post():
    require_services()
    dev, token = new_device()
    with RemoteProxy() as proxy, HttpTarget() as target, GoAgent(proxy, token, target.addr):
        wait_connected(proxy, dev)
        st, out = forward_http(proxy, dev, "GET", "/hello")
        eq(st, 200)
        eq((out["status"], out["body"]), (200, b"hello, world\n"))
        eq(out["headers"]["content-type"], ["text/plain"])
        body = bytes(range(256)) * 4096  # 1 MiB, every byte value
        st, out = forward_http(proxy, dev, "POST", "/echo", {"Content-Type": "application/x-bin"}, body)
        eq((st, out["status"]), (200, 200))
        check(out["body"] == body, "1 MiB binary body must come back unchanged")
        st, out = forward_http(proxy, dev, "GET", "/multi")
        eq(out["headers"]["set-cookie"], ["a=1", "b=2"], "repeated headers are kept as a list")
        st, out = forward_http(proxy, dev, "HEAD", "/hello")
        eq((st, out["status"], out["body"]), (200, 200, b""))


def test_sixty_four_concurrent_forwards_on_one_tunnel():
    require_services()
    dev, token = new_device()
    with RemoteProxy() as proxy, HttpTarget() as target, GoAgent(proxy, token, target.addr):
        wait_connected(proxy, dev)
        results = [None] * 64

        def one(i):
            payload = f"request {i} ".encode() * (100 + i)
            st, out = forward_http(proxy, dev, "POST", f"/echo/{i}", {}, payload)
            results[i] = st == 200 and out["status"] == 200 and out["body"] == payload

        threads = [threading.Thread(target=one, args=(i,)) for i in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        eq(sum(1 for r in results if r), 64, "correct answers")


def test_forward_raw_download_of_256_mib_matches():
    require_services()
    dev, token = new_device()
    size = 256 * 1024 * 1024
    with RemoteProxy() as proxy, RawTarget("source", size) as target, \
            GoAgent(proxy, token, target.addr):
        wait_connected(proxy, dev)
        st, _, s, rest = open_raw(proxy, dev)
        eq(st, 101)
        h = hashlib.sha256(rest)
        got = len(rest)
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            h.update(d)
            got += len(d)
        s.close()
        eq(got, size, "bytes received")
        eq(h.hexdigest(), pattern_sha256(size), "sha256")


def test_forward_raw_echo_both_ways_with_half_close():
    require_services()
    dev, token = new_device()
    with RemoteProxy() as proxy, RawTarget("echo") as target, GoAgent(proxy, token, target.addr):
        wait_connected(proxy, dev)
        st, _, s, rest = open_raw(proxy, dev)
        eq(st, 101)
        data = bytes(range(256)) * 32768  # 8 MiB
        sender = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
        sender.start()
        got = bytearray(rest)
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            got += d
        sender.join()
        s.close()
        check(bytes(got) == data, f"echo differs ({len(got)} of {len(data)} bytes)")


def test_sse_first_event_arrives_before_the_stream_ends():
    require_services()
    dev, token = new_device()
    with RemoteProxy() as proxy, HttpTarget() as target, GoAgent(proxy, token, target.addr):
        wait_connected(proxy, dev)
        st, _, s, rest = open_raw(proxy, dev)
        eq(st, 101)
        t0 = time.time()
        s.sendall(b"GET /sse HTTP/1.1\r\nHost: device\r\n\r\n")
        data = rest
        while b"event 0" not in data:
            data += s.recv(4096)
        first = time.time() - t0
        while b"0\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        total = time.time() - t0
        s.close()
        check(first < 0.4 and total >= 1.0, f"first event after {first:.2f}s, end after {total:.2f}s")


def test_websocket_echo_through_forward_ws():
    require_services()
    import asyncio
    import websockets

    async def echo(ws, path=None):
        async for msg in ws:
            await ws.send(msg)

    dev, token = new_device()
    ready = threading.Event()
    holder = {}

    def serve():
        loop = asyncio.new_event_loop()

        async def main():
            server = await websockets.serve(echo, "127.0.0.1", 0)
            holder["port"] = server.sockets[0].getsockname()[1]
            holder["loop"] = loop
            holder["server"] = server
            ready.set()
            await server.wait_closed()
        loop.run_until_complete(main())

    threading.Thread(target=serve, daemon=True).start()
    ready.wait(5)
    with RemoteProxy() as proxy, GoAgent(proxy, token, f"127.0.0.1:{holder['port']}"):
        wait_connected(proxy, dev)

        async def client():
            uri = f"ws://127.0.0.1:{proxy.internal_port}/internal/forward/ws"
            hdrs = {"Authorization": f"Bearer {INTERNAL_TOKEN}", "X-Device-Id": dev,
                    "X-Forward-Path": "/echo"}
            async with websockets.connect(uri, extra_headers=hdrs) as ws:
                out = []
                for msg in ("hello", b"\x00\x01binary", "x" * 100000):
                    await ws.send(msg)
                    out.append(await ws.recv() == msg)
                return out

        eq(asyncio.run(client()), [True, True, True], "echoed messages")
    holder["loop"].call_soon_threadsafe(holder["server"].close)


def test_slow_reader_keeps_proxy_memory_bounded():
    require_services()
    import os
    dev, token = new_device()
    # Under ASan a freed block sits in quarantine (256 MB by default) and still counts in RSS;
    # a small quarantine keeps the measurement about our memory, not the sanitizer's.
    asan = os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=1"
    with RemoteProxy(env={"ASAN_OPTIONS": asan}) as proxy, RawTarget("source", 1 << 30) as target, \
            GoAgent(proxy, token, target.addr):
        wait_connected(proxy, dev)
        before = rss_kib(proxy.proc.pid)
        st, _, s, rest = open_raw(proxy, dev)
        eq(st, 101)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        got, peak = len(rest), before
        t0 = time.time()
        while time.time() - t0 < 5:  # about 4 MB/s
            d = s.recv(65536)
            if not d:
                break
            got += len(d)
            time.sleep(0.015)
            peak = max(peak, rss_kib(proxy.proc.pid))
        s.close()
        check(got < 200 << 20, f"the reader was meant to be slow ({got} bytes)")
        check(peak - before < 16 * 1024,
              f"proxy RSS grew by {peak - before} KiB while a 1 GiB source met a slow reader")


def test_bad_token_is_refused_before_upgrade():
    require_services()
    with RemoteProxy() as proxy:
        for headers in ({"Sec-WebSocket-Protocol": "bearer.not-a-real-token"},
                        {"Authorization": "Bearer not-a-real-token"}, {}):
            st, _, body = request("127.0.0.1", proxy.tunnel_port, "GET", "/tunnel", {
                "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", **headers})
            eq(st, 401, f"headers {headers}")
        st, _, _ = request("127.0.0.1", proxy.tunnel_port, "GET", "/tunnel?token=nope", {
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        eq(st, 401, "?token= with an unknown token")


def test_internal_api_requires_the_token():
    require_services()
    with RemoteProxy() as proxy:
        for method, path in (("GET", "/internal/sessions"), ("POST", "/internal/forward/http"),
                             ("POST", "/internal/forward/raw"), ("GET", "/internal/session/x"),
                             ("POST", "/internal/session/x/close"), ("GET", "/internal/forward/ws")):
            for hdrs in ({}, {"Authorization": "Bearer wrong-token"}):
                st, _, body = request("127.0.0.1", proxy.internal_port, method, path, hdrs)
                eq(st, 401, f"{method} {path} with {hdrs}")
                eq(json.loads(body)["error"]["code"], "UNAUTHORIZED")


def test_forward_errors_have_their_codes():
    require_services()
    with RemoteProxy() as proxy:
        st, out = forward_http(proxy, "no-such-device")
        eq((st, out["error"]["code"]), (502, "TUNNEL_DISCONNECTED"))
        st, _, body = request("127.0.0.1", proxy.internal_port, "POST", "/internal/forward/http",
                              auth(), b"{not json")
        eq((st, json.loads(body)["error"]["code"]), (400, "INVALID_JSON"))
        st, _, body = request("127.0.0.1", proxy.internal_port, "POST", "/internal/forward/http",
                              auth(), json.dumps({"method": "GET", "path": "/"}).encode())
        eq((st, json.loads(body)["error"]["code"]), (400, "MISSING_DEVICE"))
        st, _, body = request("127.0.0.1", proxy.internal_port, "POST", "/internal/forward/http",
                              auth(), json.dumps({"device_id": "d", "body": "!!"}).encode())
        eq((st, json.loads(body)["error"]["code"]), (400, "INVALID_BODY"))
        st, _, body = request("127.0.0.1", proxy.internal_port, "GET", "/internal/forward/http", auth())
        eq((st, json.loads(body)["error"]["code"]), (405, "METHOD_NOT_ALLOWED"))


def test_close_endpoint_drops_the_tunnel():
    require_services()
    dev, token = new_device()
    with RemoteProxy() as proxy, HttpTarget() as target, \
            GoAgent(proxy, token, target.addr, once=True) as agent:
        wait_connected(proxy, dev)
        st, _, body = request("127.0.0.1", proxy.internal_port, "POST",
                              f"/internal/session/{dev}/close", auth())
        eq((st, json.loads(body)), (200, {"closed": True}))
        wait_until(lambda: agent.proc.poll() is not None, timeout=5, what="the agent to see the close")
        st, out = forward_http(proxy, dev, "GET", "/hello")
        eq((st, out["error"]["code"]), (502, "TUNNEL_DISCONNECTED"))
        wait_until(lambda: redis_cli("EXISTS", f"tunnel:route:{dev}") == "0", timeout=5,
                   what="the route to be removed")
        st, _, _ = request("127.0.0.1", proxy.internal_port, "POST", "/internal/session/nope/close", auth())
        eq(st, 404)


def test_killed_agent_fails_forwards_within_a_second():
    require_services()
    dev, token = new_device()
    with RemoteProxy() as proxy, HttpTarget() as target:
        agent = GoAgent(proxy, token, target.addr)
        wait_connected(proxy, dev)
        eq(forward_http(proxy, dev, "GET", "/hello")[1]["status"], 200)
        agent.kill()
        t0 = time.time()
        wait_until(lambda: forward_http(proxy, dev, "GET", "/hello")[0] == 502, timeout=1.0,
                   what="502 after the agent died")
        check(time.time() - t0 < 1.0)


def test_agent_reconnects_after_proxy_restart():
    require_services()
    dev, token = new_device()
    with HttpTarget() as target:
        proxy = RemoteProxy().start()
        agent = GoAgent(proxy, token, target.addr)
        try:
            wait_connected(proxy, dev)
            proxy.stop()
            proxy.start()  # same ports
            wait_connected(proxy, dev, timeout=15)
            eq(forward_http(proxy, dev, "GET", "/hello")[1]["status"], 200)
        finally:
            agent.kill()
            proxy.stop()


def test_second_tunnel_of_a_device_replaces_the_first():
    require_services()
    dev, token = new_device()
    with RemoteProxy() as proxy, HttpTarget() as target:
        first = GoAgent(proxy, token, target.addr, once=True)
        s1 = wait_connected(proxy, dev)
        second = GoAgent(proxy, token, target.addr, once=True)
        try:
            wait_until(lambda: wait_connected(proxy, dev)["session_id"] != s1["session_id"],
                       timeout=10, what="the new tunnel")
            wait_until(lambda: first.proc.poll() is not None, timeout=5, what="the old agent to be let go")
            eq(len([s for s in sessions(proxy)["sessions"] if s["device_id"] == dev]), 1)
            eq(forward_http(proxy, dev, "GET", "/hello")[1]["status"], 200)
        finally:
            first.kill()
            second.kill()


def ws_handshake(port, token):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(build_request("GET", "/tunnel", {
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
        "Sec-WebSocket-Protocol": f"bearer.{token}"}))
    st, hd, _, rest = read_response(s)
    eq(st, 101)
    eq(hd["sec-websocket-protocol"], f"bearer.{token}")
    return s


def ws_frame(payload, opcode=2):
    mask = b"\x01\x02\x03\x04"
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_garbage_from_one_agent_closes_only_its_tunnel():
    require_services()
    good_dev, good_token = new_device()
    bad_dev, bad_token = new_device()
    with RemoteProxy() as proxy, HttpTarget() as target, GoAgent(proxy, good_token, target.addr):
        wait_connected(proxy, good_dev)
        s = ws_handshake(proxy.tunnel_port, bad_token)
        wait_connected(proxy, bad_dev)
        s.sendall(ws_frame(b"\x07\x09garbage-not-yamux"))  # version 7: a protocol error
        s.settimeout(5)
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
        check(b"\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" in data,
              "GoAway(protocol error) must be sent before closing")
        wait_until(lambda: all(x["device_id"] != bad_dev for x in sessions(proxy)["sessions"]),
                   timeout=5, what="the bad tunnel to go")
        eq(forward_http(proxy, good_dev, "GET", "/hello")[1]["status"], 200, "the other device")


def test_window_overrun_closes_only_that_tunnel():
    require_services()
    good_dev, good_token = new_device()
    bad_dev, bad_token = new_device()
    with RemoteProxy() as proxy, HttpTarget() as target, GoAgent(proxy, good_token, target.addr):
        wait_connected(proxy, good_dev)
        s = ws_handshake(proxy.tunnel_port, bad_token)
        wait_connected(proxy, bad_dev)
        # Make the proxy open a stream to us (id 1), then send more than its 256 KiB window.
        raw = socket.create_connection(("127.0.0.1", proxy.internal_port), timeout=10)
        raw.sendall(build_request("POST", "/internal/forward/raw", {
            **auth(), "X-Device-Id": bad_dev, "Connection": "Upgrade", "Upgrade": "edgegate-stream"}))
        eq(read_response(raw)[0], 101)
        # One Data frame larger than the whole 256 KiB window: an overrun whatever the timing
        # (window updates the proxy sends as the client drains cannot make room for it).
        ack = bytes([0, 1, 0, 2]) + (1).to_bytes(4, "big") + (0).to_bytes(4, "big")
        size = 300 * 1024
        s.sendall(ws_frame(ack + bytes([0, 0, 0, 0]) + (1).to_bytes(4, "big") + size.to_bytes(4, "big")
                           + b"z" * size))
        s.settimeout(5)
        data = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        except OSError:
            pass
        check(b"\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" in data, "GoAway(protocol error)")
        wait_until(lambda: all(x["device_id"] != bad_dev for x in sessions(proxy)["sessions"]),
                   timeout=5, what="the overrunning tunnel to go")
        raw.close()
        eq(forward_http(proxy, good_dev, "GET", "/hello")[1]["status"], 200, "the other device")


def test_agent_in_the_wrong_role_loses_only_its_tunnel():
    # A hashicorp yamux *client* opens odd stream ids, which are the proxy's: by the spec that
    # is a protocol error (GoAway 1), and only that tunnel ends.
    require_services()
    good_dev, good_token = new_device()
    bad_dev, bad_token = new_device()
    with RemoteProxy() as proxy, HttpTarget() as target, GoAgent(proxy, good_token, target.addr), \
            GoAgent(proxy, bad_token, target.addr, mode="client", once=True) as bad:
        wait_connected(proxy, good_dev)
        wait_until(lambda: bad.proc.poll() is not None, timeout=10, what="the wrong-role agent to be cut off")
        check("protocol error" in bad.log_text() or "stream opened by the agent ended" in bad.log_text(),
              bad.log_text()[-500:])
        check("tunnel.protocol_error" in proxy.log_text())
        eq(forward_http(proxy, good_dev, "GET", "/hello")[1]["status"], 200, "the other device")


def test_revoked_credential_is_refused_at_the_next_connect():
    require_services()
    dev, token = new_device()
    with RemoteProxy() as proxy, HttpTarget() as target:
        with GoAgent(proxy, token, target.addr, once=True):
            wait_connected(proxy, dev)
        revoke(token)
        st, _, _ = request("127.0.0.1", proxy.tunnel_port, "GET", "/tunnel", {
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": f"bearer.{token}"})
        eq(st, 401)


def test_tunnel_refused_with_503_while_redis_is_down():
    require_services()
    from harness import redis_start, redis_stop
    dev, token = new_device()
    with RemoteProxy() as proxy:
        redis_stop()
        try:
            st = wait_until(lambda: (lambda r: r if r == 503 else None)(request(
                "127.0.0.1", proxy.tunnel_port, "GET", "/tunnel", {
                    "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                    "Sec-WebSocket-Protocol": f"bearer.{token}"})[0]), timeout=10, what="503")
            eq(st, 503)
        finally:
            redis_start()


def test_silent_agent_is_closed_as_dead_by_keepalive():
    require_services()
    import signal
    dev, token = new_device()
    with RemoteProxy(env={"EDGEGATE_TUNNEL_KEEPALIVE": "1"}) as proxy, HttpTarget() as target, \
            GoAgent(proxy, token, target.addr, once=True) as agent:
        s = wait_connected(proxy, dev)
        time.sleep(1.5)  # at least one ping answered: the heartbeat moves
        check(wait_connected(proxy, dev)["last_heartbeat"] != s["last_heartbeat"], "pong recorded")
        agent.proc.send_signal(signal.SIGSTOP)  # alive but silent, as behind a dead NAT
        try:
            t0 = time.time()
            wait_until(lambda: all(x["device_id"] != dev for x in sessions(proxy)["sessions"]),
                       timeout=6, what="the silent tunnel to be closed")
            check(time.time() - t0 < 4, "closed after about two keepalive intervals")
        finally:
            agent.proc.send_signal(signal.SIGCONT)
        check("tunnel.dead" in proxy.log_text())


def test_online_offline_events_and_route_lifetime():
    require_services()
    import subprocess
    from harness import REDIS_PORT
    dev, token = new_device("owner-events")
    sub = subprocess.Popen(["redis-cli", "-p", REDIS_PORT, "--raw", "SUBSCRIBE", "edgegate:events"],
                           stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        with RemoteProxy() as proxy, HttpTarget() as target:
            with GoAgent(proxy, token, target.addr, once=True):
                wait_connected(proxy, dev)
                ttl = int(redis_cli("TTL", f"tunnel:route:{dev}"))
                check(0 < ttl <= 95, f"route TTL {ttl}")
            wait_until(lambda: redis_cli("EXISTS", f"tunnel:route:{dev}") == "0", timeout=5,
                       what="the route to go with the tunnel")
        time.sleep(0.3)
    finally:
        sub.terminate()
        out = sub.communicate(timeout=5)[0]
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    mine = [e for e in events if e.get("device_id") == dev]
    eq([e["type"] for e in mine], ["device.online", "device.offline"])
    eq(mine[0]["user_id"], "owner-events")


def test_forward_by_session_token_and_metrics():
    require_services()
    dev, token = new_device()
    with RemoteProxy() as proxy, HttpTarget() as target, GoAgent(proxy, token, target.addr):
        sid = wait_connected(proxy, dev)["session_id"]
        doc = {"session_token": sid, "method": "GET", "path": "/hello"}
        st, _, raw = request("127.0.0.1", proxy.internal_port, "POST", "/internal/forward/http",
                             auth(), json.dumps(doc).encode())
        eq((st, base64.b64decode(json.loads(raw)["body"])), (200, b"hello, world\n"))
        forward_http(proxy, "missing-device")
        st, _, body = request("127.0.0.1", proxy.internal_port, "GET", "/metrics", auth())
        text = body.decode()
        for needle in ("edgegate_tunnels 1", "edgegate_tunnel_connects_total 1",
                       "edgegate_forward_http_duration_seconds_count 1",
                       'edgegate_forward_errors_total{code="TUNNEL_DISCONNECTED"} 1'):
            check(needle in text, f"{needle!r} missing from /metrics")


def test_wss_tunnel_with_a_verified_certificate():
    require_services()
    import tempfile
    from tunnel_kit import make_ca
    dev, token = new_device()
    with tempfile.TemporaryDirectory() as d:
        ca, cert, key = make_ca(d, "localhost")
        with RemoteProxy(env={"EDGEGATE_TLS_CERT": cert, "EDGEGATE_TLS_KEY": key}) as proxy, \
                HttpTarget() as target:
            url = f"wss://localhost:{proxy.tunnel_port}/tunnel"
            with GoAgent(proxy, token, target.addr, url=url, ca=ca):
                wait_connected(proxy, dev)
                eq(forward_http(proxy, dev, "GET", "/hello")[1]["body"], b"hello, world\n")
                st, _, s, rest = open_raw(proxy, dev)
                s.close()
                eq(st, 101)
            # The same certificate for a name the agent did not dial is refused by the agent.
            with GoAgent(proxy, token, target.addr, once=True, ca=ca,
                         url=f"wss://127.0.0.1:{proxy.tunnel_port}/tunnel") as wrong:
                wait_until(lambda: wrong.proc.poll() is not None, timeout=10, what="refusal")
                check("certificate" in wrong.log_text(), wrong.log_text()[-300:])
            # Plain ws:// to a TLS port is not a tunnel either.
            st = None
            try:
                st, _, _ = request("127.0.0.1", proxy.tunnel_port, "GET", "/tunnel", timeout=3)
            except (OSError, ValueError, IndexError):
                pass
            check(st is None, f"plaintext must not be answered on the TLS port, got {st}")


def test_tls_misconfiguration_names_the_variables():
    import os
    import subprocess
    from harness import BIN, base_env
    env = base_env()
    env.update({"EDGEGATE_TLS_CERT": "/nonexistent.pem", "EDGEGATE_TLS_KEY": "/nonexistent.key",
                "EDGEGATE_TUNNEL_LISTEN": "127.0.0.1:0", "EDGEGATE_INTERNAL_LISTEN": "127.0.0.1:0"})
    r = subprocess.run([os.path.join(BIN, "remote-proxy")], env=env, capture_output=True, text=True,
                       timeout=20)
    eq(r.returncode, 1)
    check("EDGEGATE_TLS_CERT" in r.stderr and "/nonexistent.pem" in r.stderr, r.stderr[-400:])
