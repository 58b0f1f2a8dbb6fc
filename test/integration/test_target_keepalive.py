"""bin/edge-agent keeps its connections to the target alive between streams (--target-keepalive,
on by default): real remote-proxy, real Redis, a Python http.server as the device's web server
counting the connections it accepts. Each test is an HTTP exchange shape the agent must find
the end of without holding anything back (HEAD, 204/304, chunked, a body delimited by the
close, 100 Continue, uploads, a stalled download), the ways a kept connection dies (the target
closes it while idle or at the moment it is reused, the target goes away), and the streams that
must stay opaque (WebSocket after its 101, bytes that are not HTTP, a target that speaks first,
a stream that stays silent)."""
import asyncio
import contextlib
import hashlib
import os
import socket
import subprocess
import time

import websockets

from harness import (INTERNAL_TOKEN, VALGRIND, RemoteProxy, check, eq, read_response,
                     require_services, wait_until)
from test_edge_agent import AGENT, EdgeAgent, http_target
from tunnel_kit import (RawTarget, forward_http, new_device, open_raw, pattern_sha256, rss_kib,
                        wait_connected)


class Device:
    """A device on a tunnel: remote-proxy, the agent, and its target."""

    def __init__(self, proxy, dev, target, agent):
        self.proxy, self.dev, self.target, self.agent = proxy, dev, target, agent

    def forward(self, method, path, headers=None, body=b""):
        return forward_http(self.proxy, self.dev, method, path, headers, body)

    def hello(self, what="GET /hello"):
        st, out = self.forward("GET", "/hello")
        eq((st, out.get("status"), out.get("body")), (200, 200, b"hello, world\n"), what)

    def pipe(self):
        """forward/raw: a byte pipe on a new stream, and what came with the 101."""
        st, _, s, rest = open_raw(self.proxy, self.dev)
        eq(st, 101, "forward/raw")
        return s, rest


@contextlib.contextmanager
def device(target=None, extra=(), env=None):
    """remote-proxy and bin/edge-agent (default options unless extra) in front of target (an
    http.server that counts connections, unless another is given), the tunnel up."""
    require_services()
    dev, token = new_device()
    with RemoteProxy() as proxy, (target or http_target()) as t, \
            EdgeAgent(proxy, token, t.addr, extra=extra, env=env) as agent:
        wait_connected(proxy, dev)
        yield Device(proxy, dev, t, agent)


def read_to_end(s, first=b""):
    """Everything until the peer's end: (length, sha256 hex)."""
    h = hashlib.sha256(first)
    n = len(first)
    while True:
        d = s.recv(262144)
        if not d:
            return n, h.hexdigest()
        h.update(d)
        n += len(d)


def test_help_names_the_option_and_bad_values_are_refused():
    r = subprocess.run([AGENT, "--help"], capture_output=True, text=True, timeout=10)
    check("--target-keepalive" in r.stdout, r.stdout)
    r = subprocess.run([AGENT, "--url", "ws://x/tunnel", "--token", "t", "--target",
                        "127.0.0.1:1", "--target-keepalive", "-1"],
                       capture_output=True, text=True, timeout=10)
    eq(r.returncode, 2, "exit status for --target-keepalive -1")
    check("--target-keepalive" in r.stderr, r.stderr)


def test_twenty_sequential_forwards_reuse_one_target_connection():
    with device() as d:
        for i in range(20):
            d.hello(f"request {i}")
        eq(d.target.accepted, 1, "connections the target accepted for 20 forwards")


def test_with_keepalive_zero_every_forward_opens_its_own_connection():
    with device(extra=["--target-keepalive", "0"]) as d:
        for i in range(20):
            d.hello(f"request {i}")
        wait_until(lambda: d.target.accepted >= 20, timeout=5, what="20 accepted connections")
        eq(d.target.accepted, 20, "connections the target accepted for 20 forwards")
        check("target_keepalive=0" in d.agent.log_text(), "the start line names the mode")


def test_head_204_304_and_chunked_responses_end_where_they_end():
    """Each response's end is found without waiting for more: the next request travels on the
    same connection, so a miscounted end would hang or garble it."""
    with device() as d:
        st, out = d.forward("HEAD", "/hello")
        eq((st, out["status"], out["body"]), (200, 200, b""), "HEAD")
        eq(out["headers"]["content-length"], ["13"], "HEAD keeps the length of the body it lacks")
        for code in (204, 304):
            st, out = d.forward("GET", f"/status/{code}")
            eq((st, out["status"], out["body"]), (200, code, b""), f"GET /status/{code}")
        st, out = d.forward("GET", "/chunked")
        eq((st, out["status"], out["body"]), (200, 200, b"chunked body, three pieces\n"))
        # A 304 with a Content-Length has no body either (a raw pipe: the reader is ours).
        s, rest = d.pipe()
        s.sendall(b"GET /stale HTTP/1.1\r\nHost: device\r\n\r\n"
                  b"GET /hello HTTP/1.1\r\nHost: device\r\nConnection: close\r\n\r\n")
        status, _, _, rest = read_response(s, rest)
        eq(status, 304, "GET /stale")
        status, _, body, rest = read_response(s, rest)
        eq((status, body), (200, b"hello, world\n"), "the request after the 304")
        s.close()
        d.hello()
        eq(d.target.accepted, 1, "one connection for HEAD, 204, 304, chunked and GETs")


def test_response_delimited_by_the_close_is_whole_and_its_connection_not_reused():
    with device() as d:
        d.hello()
        st, out = d.forward("GET", "/eof")
        eq((st, out.get("status"), out.get("body")), (200, 200, b"until the close\n"),
           f"GET /eof: {out}")
        d.hello("after /eof")
        eq(d.target.accepted, 2, "the connection that ended /eof is not reused")


def test_connection_close_from_the_target_is_honoured():
    with device() as d:
        st, out = d.forward("GET", "/close")
        eq((st, out["status"], out["body"]), (200, 200, b"bye!\r\n"), "GET /close")
        d.hello("after /close")
        d.hello("and again")
        eq(d.target.accepted, 2, "a connection the target closes is not reused; the next one is")


def test_one_mib_bodies_sized_and_chunked_arrive_intact_on_a_kept_connection():
    body = os.urandom(1 << 20)
    digest = hashlib.sha256(body).hexdigest()
    with device() as d:
        d.hello()
        st, out = d.forward("POST", "/echo", {"Content-Type": "application/octet-stream"}, body)
        eq((st, out["status"]), (200, 200), "POST with Content-Length")
        eq(hashlib.sha256(out["body"]).hexdigest(), digest, "sha256 of the sized upload's echo")

        # Chunked, through a raw pipe (forward/http always sends a length), in uneven pieces.
        s, rest = d.pipe()
        s.sendall(b"POST /up HTTP/1.1\r\nHost: device\r\nTransfer-Encoding: chunked\r\n"
                  b"Connection: close\r\n\r\n")
        off, step = 0, 1
        while off < len(body):
            piece = body[off:off + step]
            s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            off += len(piece)
            step = step * 7 + 3 if step < 200000 else 65536
        s.sendall(b"0\r\n\r\n")
        status, hd, got, rest = read_response(s, rest)
        eq((status, hd.get("x-got-chunked")), (200, "yes"), "chunked POST")
        eq(hashlib.sha256(got).hexdigest(), digest, "sha256 of the chunked upload's echo")
        check(s.recv(1) == b"", "Connection: close ends the pipe after the response")
        s.close()
        d.hello("after the uploads")
        eq(d.target.accepted, 1, "both uploads and the GETs on one connection")


def test_slow_reader_of_a_large_response_keeps_agent_memory_bounded():
    """The response is read to find its end, never held: a client that stops reading stops the
    target within one yamux window, and the connection is reused after 32 MiB."""
    size = 32 * 1024 * 1024
    # ASan keeps freed memory in quarantine, which would look like growth: not here.
    asan = os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0"
    with device(env={"ASAN_OPTIONS": asan}) as d:
        d.hello()
        before = rss_kib(d.agent.proc.pid)
        s, rest = d.pipe()
        s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: device\r\nConnection: close\r\n\r\n" % size)
        status, hd, _, rest = read_response(s, rest, head_only=True)
        eq((status, hd.get("content-length")), (200, str(size)))
        while len(rest) < 1024 * 1024:
            chunk = s.recv(65536)
            check(chunk, "the response ended early")
            rest += chunk
        time.sleep(2)  # the client stalls; the target would go on
        grown = rss_kib(d.agent.proc.pid) - before
        check(VALGRIND or grown < 8 * 1024, f"agent RSS grew by {grown} KiB while the client stalled")
        # Connection: close: the pipe ends right after the response.
        eq(read_to_end(s, rest), (size, pattern_sha256(size)), "the download")
        s.close()
        d.hello("after the download")
        eq(d.target.accepted, 1, "the connection that carried 32 MiB is reused")


def test_expect_100_continue_is_relayed_before_the_body():
    """api-server's front door does not pass Expect on (it answers 100 itself), so a raw pipe
    carries it: the target's 100 Continue comes back first, then the answer to the body."""
    with device() as d:
        d.hello()
        s, rest = d.pipe()
        s.sendall(b"POST /up HTTP/1.1\r\nHost: device\r\nContent-Length: 11\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        status, _, _, rest = read_response(s, rest)
        eq(status, 100, "interim response before the body")
        s.sendall(b"hello there")
        status, _, got, rest = read_response(s, rest)
        eq((status, got), (200, b"hello there"), "the final response")
        s.close()
        d.hello("after 100 Continue")
        eq(d.target.accepted, 1, "the connection stays usable after an interim response")


def test_target_closing_an_idle_pooled_connection_costs_nothing():
    with device() as d:
        d.hello()
        d.target.close_connections()  # the target's keep-alive timer, while the agent holds it
        time.sleep(0.3)
        d.hello("after the target closed the idle connection")
        eq(d.target.accepted, 2, "a new connection replaced the closed one")


def test_connection_closed_as_it_is_reused_is_retried_for_a_request_without_body():
    with device() as d:
        d.hello()
        d.target.drop_next_reuse()  # the request arrives, the connection closes unanswered
        d.hello("GET on a connection the target closes at that moment")
        eq(d.target.accepted, 2, "the retry went on a fresh connection")
        d.agent.wait_log("event=agent.target_retry")
        # A request with a body has left us already: it is not sent twice.
        d.target.drop_next_reuse()
        st, out = d.forward("POST", "/echo", {}, b"only once")
        eq(st, 502, f"a POST on a dying connection fails instead of being replayed: {out}")
        d.hello("the next request")


def test_idle_pooled_connections_are_closed_after_two_seconds():
    with device() as d:
        d.hello()
        wait_until(lambda: not d.target.server.open, timeout=6, what="the agent to close the "
                   "idle connection (the target's handler thread ends with it)")
        d.hello("after the idle close")
        eq(d.target.accepted, 2, "a new connection after the idle one was closed")


def test_two_pipelined_requests_in_one_raw_pipe_are_answered_in_order():
    with device() as d:
        s, rest = d.pipe()
        s.sendall(b"GET /bytes/5000 HTTP/1.1\r\nHost: device\r\n\r\n"
                  b"GET /hello HTTP/1.1\r\nHost: device\r\n\r\n")
        status, _, first, rest = read_response(s, rest)
        eq((status, len(first)), (200, 5000), "first response")
        status, _, second, rest = read_response(s, rest)
        eq((status, second), (200, b"hello, world\n"), "second response")
        # The pipe is still a keep-alive connection: a third request, asking for the end.
        s.sendall(b"GET /chunked HTTP/1.1\r\nHost: device\r\nConnection: close\r\n\r\n")
        status, _, third, rest = read_response(s, rest)
        eq((status, third), (200, b"chunked body, three pieces\n"), "third response")
        s.settimeout(5)
        eq(rest + s.recv(100), b"", "nothing after the last response, then the end")
        s.close()
        eq(d.target.accepted, 1, "three requests of one pipe on one connection")


def test_websocket_through_forward_ws_is_spliced_after_its_101():
    with device() as d:
        d.hello()  # an idle pooled connection is at hand, and must stay out of this

        async def talk():
            uri = f"ws://127.0.0.1:{d.proxy.internal_port}/internal/forward/ws"
            hdrs = {"Authorization": f"Bearer {INTERNAL_TOKEN}", "X-Device-Id": d.dev,
                    "X-Forward-Path": "/ws"}
            async with websockets.connect(uri, extra_headers=hdrs) as ws:
                got = []
                for msg in ("hello", b"\x00\x01binary", "GET / HTTP/1.1\r\n\r\n", "x" * 70000):
                    await ws.send(msg)
                    got.append(await ws.recv() == msg)
                return got

        eq(asyncio.run(talk()), [True] * 4, "echoed messages")
        eq(d.target.accepted, 2, "the upgrade took a fresh connection")
        d.hello("the pooled connection afterwards")
        eq(d.target.accepted, 2, "and the pooled one is still reused")


def test_stream_that_is_not_http_is_relayed_opaquely():
    data = b"\x16\x03\x01\x02\x00" + os.urandom(300 * 1024)  # a TLS record's start, then noise
    with device(target=RawTarget("echo")) as d:
        s, rest = d.pipe()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        eq(read_to_end(s, rest), (len(data), hashlib.sha256(data).hexdigest()), "the echo")
        s.close()


def test_silent_stream_while_connections_are_pooled_still_reaches_the_target():
    """A stream that sends nothing at first may be a protocol where the target speaks first:
    after a moment it is spliced on a fresh connection, and a request sent later still works."""
    with device() as d:
        d.hello()
        s, rest = d.pipe()
        time.sleep(0.6)
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: device\r\nConnection: close\r\n\r\n")
        status, _, body, rest = read_response(s, rest)
        eq((status, body), (200, b"hello, world\n"), "late request on an opaque stream")
        s.close()
        eq(d.target.accepted, 2, "the silent stream got its own connection")


def test_target_that_speaks_first_is_relayed_opaquely():
    size = 2 * 1024 * 1024
    with device(target=RawTarget("source", size)) as d:
        s, rest = d.pipe()
        eq(read_to_end(s, rest), (size, pattern_sha256(size)), "what the target sent unasked")
        s.close()


def test_target_down_after_pooling_fails_the_forward_with_502():
    with device() as d:
        d.hello()
        d.target.close()              # the device's web server is gone ...
        d.target.close_connections()  # ... and with it the connection the agent keeps
        time.sleep(0.3)
        t0 = time.time()
        st, out = d.forward("GET", "/hello")
        eq((st, out["error"]["code"]), (502, "TUNNEL_ERROR"), "forward to a target that is down")
        check(time.time() - t0 < 5, "the stream is reset at once, not timed out")
        d.agent.wait_log("event=agent.target_unreachable")
