"""The front door to device traffic, ANY /api/devices/{id}/proxy/{path...}, through everything a
request really crosses: api-server (a signed-in operator) → remote-proxy's internal API →
the device's tunnel → bin/edge-agent → a web server on the device. Real PostgreSQL and Redis."""
import asyncio
import hashlib
import json
import socket
import threading
import time

import websockets

from harness import (RemoteProxy, build_request, check, eq, read_response, request,
                     wait_until)
from test_accounts import ADMIN, Deployment, rcli
from test_edge_agent import EdgeAgent
from tunnel_kit import HttpTarget, listen_threaded, pattern_sha256


class Stack:
    """api-server and remote-proxy on one database and Redis, an admin, a plain user "alice"
    owning one device whose agent serves an HttpTarget."""

    def __init__(self, target=None):
        self.dep = Deployment()
        self.proxy = RemoteProxy(env={"EDGEGATE_REDIS_URL": self.dep.api.env["EDGEGATE_REDIS_URL"],
                                      "EDGEGATE_INTERNAL_TOKEN":
                                          self.dep.api.env["EDGEGATE_INTERNAL_TOKEN"]})
        self.dep.api.env["EDGEGATE_INTERNAL_URL"] = (
            f"http://127.0.0.1:{self.proxy.internal_port}")
        self.target = target
        self.agent = None
        # Streams the proxy's channel had carried once it was up (connect_agent); at the end the
        # test's requests must have gone over it.
        self.channel_baseline = None

    def __enter__(self):
        self.proxy.start()
        self.dep.__enter__()
        self.dep.add_plain_user("alice", "alice-password")
        self.dep.add_plain_user("mallory", "mallory-password")
        self.alice = self.dep.token("alice", "alice-password")
        self.mallory = self.dep.token("mallory", "mallory-password")
        self.admin = self.dep.token()
        self.device_id, self.device_token = self.add_device(self.alice, "camera")
        return self

    def __exit__(self, *exc):
        over_channel = None
        if exc[0] is None and self.channel_baseline is not None and self.proxy.proc.poll() is None:
            over_channel = (proxy_metric(self.proxy, "edgegate_mux_streams_total") >
                            self.channel_baseline)
        if self.agent is not None:
            self.agent.stop()
        self.dep.__exit__(*exc)
        self.proxy.__exit__(*exc)
        check(over_channel is not False,
              "the requests did not go over the api-server's channel to the proxy")

    def add_device(self, owner_token, name):
        """Paired the way a person pairs one: a code from the owner, exchanged by the device."""
        st, doc, _ = self.dep.call("POST", "/api/devices/pairing", token=owner_token)
        eq(st, 201, f"pairing code: {doc}")
        st, doc, _ = self.dep.call("POST", "/api/pairing/exchange",
                                   body={"code": doc["code"], "device_name": name})
        eq(st, 200, f"exchange: {doc}")
        return doc["device_id"], doc["token"]

    def connect_agent(self, target_addr, channel=True):
        self.agent = EdgeAgent(self.proxy, self.device_token, target_addr)
        wait_until(lambda: rcli("EXISTS", f"tunnel:route:{self.device_id}") == "1",
                   timeout=15, what="the device's tunnel")
        if channel:
            self.wait_channel()

    def wait_channel(self, proxy=None):
        """The first front-door request opens the api-server's channel to the proxy (and takes
        a connection of its own meanwhile); from then on requests are streams of it."""
        proxy = proxy or self.proxy
        self.get("hello")
        wait_until(lambda: proxy_metric(proxy, "edgegate_mux_channels") == 1, timeout=15,
                   what="the api-server's channel to the proxy")
        self.channel_baseline = proxy_metric(proxy, "edgegate_mux_streams_total")

    def path(self, rest, device_id=None):
        return f"/api/devices/{device_id or self.device_id}/proxy/{rest}"

    def get(self, rest, token=None, headers=None, method="GET", body=None, device_id=None):
        h = dict(headers or {})
        return self.dep.call(method, self.path(rest, device_id), token=token or self.alice,
                             headers=h, body=body)


def proxy_metric(proxy, name):
    """One unlabelled sample of the proxy's /metrics (0 when absent)."""
    st, _, body = request("127.0.0.1", proxy.internal_port, "GET", "/metrics",
                          {"Authorization": f"Bearer {proxy.env['EDGEGATE_INTERNAL_TOKEN']}"})
    eq(st, 200, "proxy /metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def raw_exchange(port, method, path, headers, body=b"", timeout=60):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(build_request(method, path, headers, body))
    return s


def test_hello_reaches_the_device_and_strangers_get_404():
    with HttpTarget() as target, Stack() as st:
        st.connect_agent(target.addr)
        code, doc, hd = st.get("hello")
        eq(code, 200, doc)
        eq(doc, b"hello, world\n")
        eq(hd.get("content-type"), "text/plain")

        # The admin may, another user may not: 404, exactly as for a device that does not exist.
        eq(st.get("hello", token=st.admin)[0], 200)
        code, doc, _ = st.get("hello", token=st.mallory)
        eq((code, doc["error"]["code"]), (404, "NOT_FOUND"))
        code2, doc2, _ = st.get("hello", token=st.mallory,
                                device_id="00000000-0000-4000-8000-000000000000")
        eq((code2, doc2), (code, doc), "a stranger's device and no device look the same")
        eq(st.get("hello", device_id="not-a-uuid")[0], 404)
        eq(st.dep.call("GET", st.path("hello"))[0], 401, "signed out")

        # The owner changed behind the API's back (SQL): the row cache hears of it at once.
        mallory_id = st.dep.sql("SELECT id FROM accounts WHERE login = 'mallory'")
        alice_id = st.dep.sql("SELECT id FROM accounts WHERE login = 'alice'")
        st.dep.sql(f"UPDATE devices SET owner_id = {mallory_id} WHERE id = '{st.device_id}'")
        wait_until(lambda: st.get("hello")[0] == 404, timeout=1, interval=0.005,
                   what="the old owner refused")
        eq(st.get("hello", token=st.mallory)[0], 200)
        st.dep.sql(f"UPDATE devices SET owner_id = {alice_id} WHERE id = '{st.device_id}'")
        wait_until(lambda: st.get("hello")[0] == 200, timeout=1, interval=0.005,
                   what="the owner back")

        # A revoked device is gone for its owner too.
        st.dep.sql(f"UPDATE devices SET revoked_at = now(), token_hash = NULL "
                   f"WHERE id = '{st.device_id}'")
        wait_until(lambda: st.get("hello")[0] == 404, timeout=1, interval=0.005,
                   what="a device revoked in SQL")
        eq(st.get("hello", token=st.admin)[0], 404)


def test_request_travels_whole_and_platform_credentials_stay_behind():
    with HttpTarget() as target, Stack() as st:
        st.connect_agent(target.addr)
        cookie = st.dep.cookie("alice", "alice-password")
        code, seen, _ = st.dep.call(
            "GET", st.path("headers?x=1&y=%2F"), cookie=cookie,
            headers={"X-Custom": "kept", "Proxy-Authorization": "Basic eA==",
                     "Connection": "keep-alive, X-Hop", "X-Hop": "dropped"})
        eq(code, 200, seen)
        for gone in ("cookie", "authorization", "proxy-authorization", "x-hop"):
            check(gone not in seen, f"{gone} reached the device: {seen}")
        eq(seen["x-custom"], "kept")
        eq(seen["x-forwarded-for"], "127.0.0.1")
        eq(seen["x-forwarded-prefix"], f"/api/devices/{st.device_id}/proxy")
        code, seen, _ = st.get("headers", token=st.alice)
        check("authorization" not in seen, seen)

        # Bodies both ways, and the method.
        payload = bytes(range(256)) * 4096  # 1 MiB
        code, echoed, hd = st.dep.call("PUT", st.path("echo"), token=st.alice, body=payload,
                                       headers={"Content-Type": "application/x-test"})
        eq(code, 200)
        eq(hashlib.sha256(echoed).hexdigest(), hashlib.sha256(payload).hexdigest())
        eq(hd["content-type"], "application/json", "our client labels the body; the device "
           "echoes the type it got")

        # The device's own statuses come back as they are; its cookies do not.
        eq(st.get("nothing-here")[0], 404)
        _, _, hd = st.get("multi")
        check("set-cookie" not in hd, hd)
        # HEAD: the device's length, no body.
        s = raw_exchange(st.dep.api.port, "HEAD", st.path("hello"),
                         {"Authorization": f"Bearer {st.alice}"})
        status, hd, body, _ = read_response(s, head_only=True)
        s.close()
        eq((status, hd.get("content-length")), (200, "13"))


def test_request_bodies_stream_through_chunked_or_sized_and_oversize_is_413():
    with HttpTarget() as target, Stack() as st:
        st.connect_agent(target.addr)
        auth = {"Authorization": f"Bearer {st.alice}"}
        # A browser's chunked upload arrives as a chunked upload.
        pieces = [b"a" * 10, b"b" * 70000, b"c"]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        s = socket.create_connection(("127.0.0.1", st.dep.api.port), timeout=30)
        s.sendall(f"POST {st.path('up')} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer "
                  f"{st.alice}\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + body)
        status, hd, got, _ = read_response(s)
        s.close()
        eq((status, hd.get("x-got-chunked")), (200, "yes"))
        eq(got, b"".join(pieces))

        # 32 MiB with a length, sent slowly at first: the device echoes every byte.
        payload = hashlib.sha256(b"up").digest() * (1 << 20)
        s = raw_exchange(st.dep.api.port, "POST", st.path("up"),
                         {**auth, "Content-Length": str(len(payload))}, b"", timeout=120)
        s.sendall(payload[:1000])
        time.sleep(0.3)
        s.sendall(payload[1000:])
        status, hd, _, rest = read_response(s, head_only=True)
        eq(status, 200)
        got = bytearray(rest)
        while len(got) < int(hd["content-length"]):
            chunk = s.recv(1 << 20)
            check(chunk, "the echo was cut short")
            got += chunk
        s.close()
        eq(hashlib.sha256(got).hexdigest(), hashlib.sha256(payload).hexdigest())

        # A declared length over the route's limit (1 GiB) is refused before anything moves.
        s = raw_exchange(st.dep.api.port, "POST", st.path("up"),
                         {**auth, "Content-Length": str(2 << 30)}, b"")
        status, _, _, _ = read_response(s)
        s.close()
        eq(status, 413)
        eq(st.get("hello")[0], 200)


def test_sse_events_arrive_as_they_happen():
    with HttpTarget() as target, Stack() as st:
        st.connect_agent(target.addr)
        s = raw_exchange(st.dep.api.port, "GET", st.path("sse"),
                         {"Authorization": f"Bearer {st.alice}", "Accept": "text/event-stream"})
        t0 = time.time()
        status, hd, _, rest = read_response(s, head_only=True)
        eq(status, 200)
        eq(hd.get("content-type"), "text/event-stream")
        while b"event 0" not in rest:
            rest += s.recv(4096)
        first = time.time() - t0
        # The device sleeps 0.5 s between its three events: the first must not wait for them.
        check(first < 0.9, f"the first event took {first:.2f}s: the stream was buffered")
        while b"0\r\n\r\n" not in rest:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        s.close()
        check(b"event 2" in rest, rest)
        check(time.time() - t0 >= 0.9, "all three events took their time")


def test_100_mib_download_streams_intact_with_bounded_memory():
    size = 100 * 1024 * 1024
    with HttpTarget() as target, Stack() as st:
        st.connect_agent(target.addr)
        from tunnel_kit import rss_kib
        daemons = (st.dep.api.proc.pid, st.proxy.proc.pid)
        # Growth, not size: under EDGEGATE_VALGRIND=1 a daemon's RSS holds valgrind's own ~70 MiB.
        before = [rss_kib(pid) for pid in daemons]
        s = raw_exchange(st.dep.api.port, "GET", st.path(f"bytes/{size}"),
                         {"Authorization": f"Bearer {st.alice}"}, timeout=120)
        status, hd, _, rest = read_response(s, head_only=True)
        eq(status, 200)
        eq(hd.get("content-length"), str(size))
        h = hashlib.sha256(rest)
        got = len(rest)
        # Read slowly at first: the api-server must hold back, not buffer the download.
        for _ in range(20):
            chunk = s.recv(65536)
            h.update(chunk)
            got += len(chunk)
            time.sleep(0.05)
        growth = max(rss_kib(pid) - b for pid, b in zip(daemons, before))
        while got < size:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            got += len(chunk)
        s.close()
        eq(got, size)
        eq(h.hexdigest(), pattern_sha256(size))
        check(growth < 48 * 1024, f"a daemon grew by {growth} KiB while a slow client downloaded")


def test_device_that_hangs_up_midway_gives_a_truncated_response():
    with HttpTarget() as target, Stack() as st:
        st.connect_agent(target.addr)
        s = raw_exchange(st.dep.api.port, "GET", st.path("cut"),
                         {"Authorization": f"Bearer {st.alice}"})
        status, hd, _, rest = read_response(s, head_only=True)
        eq((status, hd.get("content-length")), (200, "1000"))
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        s.close()
        eq(rest, b"0123456789", "the connection ends after what the device sent")
        # The api-server is fine afterwards.
        eq(st.get("hello")[0], 200)


def test_the_replica_holding_the_tunnel_is_found_through_its_route():
    """Two remote-proxy replicas: api-server's fallback URL names the first, the device's
    tunnel lives on the second; tunnel:route:<id> must lead the request there."""
    with HttpTarget() as target, Stack() as st:
        other = RemoteProxy(env={"EDGEGATE_REDIS_URL": st.dep.api.env["EDGEGATE_REDIS_URL"],
                                 "EDGEGATE_INTERNAL_TOKEN":
                                     st.dep.api.env["EDGEGATE_INTERNAL_TOKEN"]})
        other.start()
        try:
            st.agent = EdgeAgent(other, st.device_token, target.addr)
            wait_until(lambda: rcli("GET", f"tunnel:route:{st.device_id}") ==
                       f"http://127.0.0.1:{other.internal_port}", timeout=15,
                       what="the route to the second replica")
            code, body, _ = st.get("hello")
            eq((code, body), (200, b"hello, world\n"))
            st.agent.stop()
            st.agent = None
        finally:
            other.stop()


def test_offline_device_is_502_tunnel_disconnected():
    with Stack() as st:
        code, doc, _ = st.get("hello")
        eq((code, doc["error"]["code"]), (502, "TUNNEL_DISCONNECTED"), doc)
        # The proxy itself gone: still a clear 502, and the api-server lives on.
        st.proxy.stop()
        code, doc, _ = st.get("hello")
        eq((code, doc["error"]["code"]), (502, "TUNNEL_ERROR"), doc)
        eq(st.dep.status("GET", "/api/agents/me", token=st.admin), 200)


class WsEchoTarget:
    """A WebSocket echo server (python3-websockets) on the device; it also reports the
    subprotocol and path it saw."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def echo(ws, path):
            await ws.send(json.dumps({"path": path, "subprotocol": ws.subprotocol}))
            async for msg in ws:
                await ws.send(msg)

        async def start():
            self.server = await websockets.serve(echo, "127.0.0.1", 0,
                                                 subprotocols=["chat.v1"])
            self.addr = "127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_websocket_echo_through_the_front_door():
    target = WsEchoTarget()
    try:
        with Stack() as st:
            st.connect_agent(target.addr, channel=False)  # WebSockets keep their own connection
            url = f"ws://127.0.0.1:{st.dep.api.port}{st.path('live?feed=1')}"

            async def talk():
                async with websockets.connect(
                        url, subprotocols=["chat.v1"],
                        extra_headers={"Authorization": f"Bearer {st.alice}"}) as ws:
                    hello = json.loads(await ws.recv())
                    eq(hello, {"path": "/live?feed=1", "subprotocol": "chat.v1"})
                    eq(ws.subprotocol, "chat.v1")
                    for i in range(50):
                        msg = f"message {i} " + "x" * (i * 1000)
                        await ws.send(msg)
                        eq(await ws.recv(), msg)
                    big = bytes(range(256)) * 4096
                    await ws.send(big)
                    eq(await ws.recv(), big)

            asyncio.run(talk())

            async def stranger():
                try:
                    async with websockets.connect(
                            url, extra_headers={"Authorization": f"Bearer {st.mallory}"}):
                        return None
                except websockets.exceptions.InvalidStatusCode as e:
                    return e.status_code

            eq(asyncio.run(stranger()), 404)
    finally:
        target.close()


# ---- the api-server's channel to the proxy (GET /internal/mux) ----

def test_64_concurrent_requests_share_one_channel():
    with HttpTarget() as target, Stack() as st:
        st.connect_agent(target.addr)
        sizes = [1000 + 7919 * i for i in range(64)]
        results = [None] * 64

        def fetch(i):
            s = raw_exchange(st.dep.api.port, "GET", st.path(f"bytes/{sizes[i]}"),
                             {"Authorization": f"Bearer {st.alice}"})
            try:
                results[i] = read_response(s)[:3]
            finally:
                s.close()

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for i, r in enumerate(results):
            check(r is not None, f"request {i} did not finish")
            status, _, body = r
            eq(status, 200, f"request {i}")
            eq(len(body), sizes[i], f"request {i} length")
            eq(hashlib.sha256(body).hexdigest(), pattern_sha256(sizes[i]), f"request {i} bytes")
        eq(proxy_metric(st.proxy, "edgegate_mux_channels"), 1.0, "one channel")
        check(proxy_metric(st.proxy, "edgegate_mux_streams_total") >= st.channel_baseline + 64,
              "every request was a stream of the channel")


def test_proxy_restart_cuts_only_in_flight_requests_then_the_channel_returns():
    size = 100 * 1024 * 1024
    with HttpTarget() as target, Stack() as st:
        st.connect_agent(target.addr)
        # A download in flight over the channel when the proxy dies.
        s = raw_exchange(st.dep.api.port, "GET", st.path(f"bytes/{size}"),
                         {"Authorization": f"Bearer {st.alice}"}, timeout=30)
        status, hd, _, rest = read_response(s, head_only=True)
        eq(status, 200)
        got = len(rest) + len(s.recv(65536))
        st.proxy.kill()
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        s.close()
        check(got < size, "the in-flight download was cut, not completed")
        # The api-server lives on; the proxy comes back on the same ports.
        eq(st.dep.status("GET", "/api/agents/me", token=st.admin), 200)
        st.proxy.start()
        wait_until(lambda: rcli("EXISTS", f"tunnel:route:{st.device_id}") == "1" and
                   st.get("hello")[0] == 200, timeout=30, what="the device back through the proxy")
        # The next requests succeed: over a connection of their own until the channel is back,
        # then over the channel again.
        for _ in range(5):
            eq(st.get("hello")[:2], (200, b"hello, world\n"))
        wait_until(lambda: proxy_metric(st.proxy, "edgegate_mux_channels") == 1, timeout=15,
                   what="the channel reopened")
        before = proxy_metric(st.proxy, "edgegate_mux_streams_total")
        for _ in range(5):
            eq(st.get("hello")[:2], (200, b"hello, world\n"))
        check(proxy_metric(st.proxy, "edgegate_mux_streams_total") >= before + 5,
              "the requests went over the reopened channel")
        st.channel_baseline = None


class NoMuxFront:
    """An older proxy as far as the channel goes: in front of the real proxy's internal port,
    it answers GET /internal/mux with 404 and relays every other connection byte for byte."""

    def __init__(self, backend_port):
        self.backend_port = backend_port
        self.mux_asked = 0
        self.sock = listen_threaded(self._serve, backlog=128)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _serve(self, c):
        head = b""
        while b"\r\n\r\n" not in head:
            data = c.recv(65536)
            if not data:
                c.close()
                return
            head += data
        if head.startswith(b"GET /internal/mux "):
            self.mux_asked += 1
            body = b'{"error":{"code":"NOT_FOUND","message":"No such route."}}'
            c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            c.close()
            return
        b = socket.create_connection(("127.0.0.1", self.backend_port))
        b.sendall(head)
        threading.Thread(target=self._pump, args=(b, c), daemon=True).start()
        self._pump(c, b)

    def close(self):
        self.sock.close()


def test_proxy_without_the_channel_route_is_reached_the_old_way():
    with HttpTarget() as target:
        st = Stack()
        front = NoMuxFront(st.proxy.internal_port)
        # The proxy advertises the front in tunnel:route:*; the api-server falls back to it too.
        st.proxy.env["EDGEGATE_INTERNAL_URL"] = front.url
        st.dep.api.env["EDGEGATE_INTERNAL_URL"] = front.url
        try:
            with st:
                st.connect_agent(target.addr, channel=False)
                for _ in range(10):
                    eq(st.get("hello")[:2], (200, b"hello, world\n"))
                code, body, _ = st.get("echo", method="POST", body=b"x" * 100000)
                eq((code, len(body)), (200, 100000))
                eq(front.mux_asked, 1, "the channel was asked for once, then left alone")
                eq(proxy_metric(st.proxy, "edgegate_mux_streams_total"), 0.0)
                check("proxy_channel.refused" in st.dep.api.log_text(), "the refusal is logged")
        finally:
            front.close()
