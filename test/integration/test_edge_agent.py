"""bin/edge-agent, our reference agent, against the real remote-proxy: real Redis, real sockets,
real local targets. Each test is a scenario an edge device lives through: serving forwarded
requests and raw streams, restarts on either side, a refused credential, a silent proxy, a
GoAway while a request is in flight, a swarm of tunnels, and wss:// with a CA of our own."""
import hashlib
import http.server
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from harness import (BIN, VALGRIND, WORK, RemoteProxy, check, eq, free_port, redis_cli,
                     require_services, wait_until)
from tunnel_kit import (HttpTarget, RawTarget, forward_http, go_agent_binary, make_ca, new_device,
                        open_raw, pattern_sha256, revoke, rss_kib, sessions, wait_connected)

AGENT = os.path.join(BIN, "edge-agent")


class EdgeAgent:
    """bin/edge-agent as a process with its own log. stop() is SIGTERM and wants exit 0."""

    def __init__(self, proxy=None, token=None, target="127.0.0.1:9", url=None, extra=(),
                 swarm=None, tokens=None, env=None):
        argv = [AGENT, "--url", url or f"ws://127.0.0.1:{proxy.tunnel_port}/tunnel",
                "--target", target, "--log-level", "debug"]
        if token is not None:
            argv += ["--token-file", write_file("token", token + "\n")]
        if tokens is not None:
            argv += ["--swarm", str(swarm or len(tokens)),
                     "--tokens-file", write_file("tokens", "\n".join(tokens) + "\n")]
        argv += list(extra)
        if VALGRIND:
            argv = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
                    "--errors-for-leak-kinds=definite", *argv]
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("EDGEGATE_")},
               **(env or {})}
        self.log_path = os.path.join(WORK, f"edge-agent-{secrets.token_hex(4)}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def count(self, text):
        return self.log_text().count(text)

    def wait_log(self, text, times=1, timeout=15):
        def seen():
            if self.proc.poll() is not None:
                raise AssertionError(f"edge-agent exited with {self.proc.returncode}:\n"
                                     f"{self.log_text()[-3000:]}")
            return self.count(text) >= times
        wait_until(seen, timeout=timeout * (4 if VALGRIND else 1),
                   what=f"{times} x {text!r} in {self.log_path}")

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout * (4 if VALGRIND else 1))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                raise AssertionError(f"edge-agent ignored SIGTERM:\n{self.log_text()[-3000:]}")
        self.log.close()
        eq(self.proc.returncode, 0, f"edge-agent exit status (log: {self.log_path})\n"
                                    f"{self.log_text()[-3000:]}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
        else:
            self.kill()


def write_file(kind, text):
    path = os.path.join(WORK, f"{kind}-{secrets.token_hex(4)}")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def http_target():
    """tunnel_kit's HTTP target with a listen backlog a real device's web server would have:
    socketserver listens with 5, and when 64 connects arrive at once the kernel resets some of
    the ones its accept queue had no room for (the agent then rightly resets those streams).
    listen() on a listening socket only changes its backlog."""
    t = HttpTarget()
    t.server.socket.listen(128)
    return t


def device_of(proxy, device_id):
    for s in sessions(proxy)["sessions"]:
        if s["device_id"] == device_id:
            return s
    return None


class SlowHandler(http.server.BaseHTTPRequestHandler):
    """/slow answers after a pause: a request still in flight when the proxy says GoAway."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        delay = 2.0 if self.path == "/slow" else 0.0
        time.sleep(delay)
        body = f"answered after {delay}s\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class TlsFront:
    """A TLS-terminating front (Python's ssl module) for the proxy's tunnel port: stands in for
    wss:// until the proxy terminates TLS itself. Each connection is relayed both ways."""

    def __init__(self, cert, key, backend_port):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.backend_port = backend_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        self.failures = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.failures.append(str(e))
            raw.close()
            return
        self.handshakes += 1
        try:
            back = socket.create_connection(("127.0.0.1", self.backend_port))
        except OSError:
            tls.close()
            return

        def pump(src, dst):
            try:
                while True:
                    d = src.recv(65536)
                    if not d:
                        break
                    dst.sendall(d)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        t = threading.Thread(target=pump, args=(back, tls), daemon=True)
        t.start()
        pump(tls, back)
        t.join(5)
        tls.close()
        back.close()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- the command line ----

def test_help_and_bad_arguments_fail_clearly_without_echoing_the_token():
    r = subprocess.run([AGENT, "--help"], capture_output=True, text=True, timeout=10)
    eq(r.returncode, 0, "--help exit status")
    for opt in ("--url", "--token", "--token-file", "--target", "--ca-file", "--swarm",
                "--tokens-file", "--agent-version"):
        check(opt in r.stdout, f"{opt} missing from --help")
    cases = [
        ([], "--url is required"),
        (["--url", "http://x/tunnel", "--token", "t", "--target", "127.0.0.1:1"], "ws[s]://"),
        (["--url", "ws://x/tunnel", "--token", "t", "--target", "nope"], "HOST:PORT"),
        (["--url", "ws://x/tunnel", "--target", "127.0.0.1:1"], "--token"),
        (["--url", "ws://x/tunnel", "--token", "sec ret", "--target", "127.0.0.1:1"], "token"),
        (["--url", "ws://x/tunnel", "--swarm", "3", "--target", "127.0.0.1:1"], "--tokens-file"),
        (["--url", "ws://x/tunnel", "--swarm", "3", "--tokens-file",
          write_file("tokens", "a\nb\n"), "--target", "127.0.0.1:1"], "holds 2 tokens"),
        (["--url", "wss://x/tunnel", "--token", "t", "--target", "127.0.0.1:1",
          "--ca-file", "/nonexistent.pem"], "/nonexistent.pem"),
    ]
    for args, expect in cases:
        r = subprocess.run([AGENT, *args], capture_output=True, text=True, timeout=10)
        eq(r.returncode, 2, f"exit status for {args}")
        check(expect in r.stderr, f"{expect!r} not in the complaint about {args}:\n{r.stderr}")
        check("sec ret" not in r.stderr, "a refused token must not be echoed")


# ---- serving the proxy ----

def test_connects_with_bearer_subprotocol_and_never_logs_the_token():
    require_services()
    dev, token = new_device("owner-9")
    with RemoteProxy() as proxy, http_target() as target, \
            EdgeAgent(proxy, token, target.addr, extra=["--agent-version", "edge-agent/test"]) as agent:
        s = wait_connected(proxy, dev)
        eq((s["user_id"], s["agent_version"]), ("owner-9", "edge-agent/test"))
        eq(s["token_prefix"], token[:8] + "...")
        agent.wait_log("event=agent.connected")
        check(token not in agent.log_text(), "the agent must never log its token")
        check(token not in proxy.log_text(), "the proxy must never log the token")


def test_forward_http_get_and_one_mib_binary_post():
    require_services()
    dev, token = new_device()
    with RemoteProxy() as proxy, http_target() as target, EdgeAgent(proxy, token, target.addr):
        wait_connected(proxy, dev)
        st, out = forward_http(proxy, dev, "GET", "/hello")
        eq((st, out["status"], out["body"]), (200, 200, b"hello, world\n"))
        body = os.urandom(1024 * 1024)  # binary: every byte value, no structure
        st, out = forward_http(proxy, dev, "POST", "/echo",
                               {"Content-Type": "application/octet-stream"}, body)
        eq((st, out["status"]), (200, 200))
        eq(len(out["body"]), len(body), "echoed length")
        check(out["body"] == body, "the 1 MiB binary body must come back unchanged")
        st, out = forward_http(proxy, dev, "GET", "/nowhere")
        eq((st, out["status"]), (200, 404), "the target's own status passes through")


def test_forward_raw_eight_mib_echo_both_ways_with_half_close():
    require_services()
    dev, token = new_device()
    size = 8 * 1024 * 1024
    data = os.urandom(size)
    with RemoteProxy() as proxy, RawTarget("echo") as target, EdgeAgent(proxy, token, target.addr):
        wait_connected(proxy, dev)
        st, _, s, rest = open_raw(proxy, dev)
        eq(st, 101, "forward/raw answer")
        got = hashlib.sha256(rest)
        n = len(rest)

        def send():
            # Sending while reading: the echo comes back while we still push.
            view = memoryview(data)
            for off in range(0, size, 65536):
                s.sendall(view[off:off + 65536])
            s.shutdown(socket.SHUT_WR)  # FIN travels to the target; its EOF comes back

        t = threading.Thread(target=send)
        t.start()
        while True:
            d = s.recv(262144)
            if not d:
                break
            got.update(d)
            n += len(d)
        t.join()
        s.close()
        eq(n, size, "bytes echoed")
        eq(got.hexdigest(), hashlib.sha256(data).hexdigest(), "sha256 of the echo")


def test_sixty_four_concurrent_forwards_on_one_tunnel_all_correct():
    require_services()
    dev, token = new_device()
    with RemoteProxy() as proxy, http_target() as target, EdgeAgent(proxy, token, target.addr):
        wait_connected(proxy, dev)
        results = [None] * 64

        def one(i):
            payload = (f"request {i} ".encode() * (50 + 37 * i))
            try:
                st, out = forward_http(proxy, dev, "POST", f"/echo/{i}",
                                       {"Content-Type": "text/plain"}, payload)
                ok = st == 200 and out.get("status") == 200 and out.get("body") == payload
                results[i] = True if ok else (st, out.get("status"), out.get("error"),
                                              len(out.get("body") or b""), len(payload))
            except Exception as e:  # reported below with its index
                results[i] = repr(e)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        bad = [(i, r) for i, r in enumerate(results) if r is not True]
        eq(bad, [], "forwards that failed")


def test_slow_reader_keeps_agent_memory_bounded():
    """A target that sends fast to a client that does not read: the agent holds one yamux
    window and one read, not the download."""
    require_services()
    dev, token = new_device()
    # Well past what the socket buffers on the way can hold, so an agent that read ahead of
    # the window would show it.
    size = 32 * 1024 * 1024
    # ASan keeps freed memory in quarantine, which would look like growth: not here.
    asan = os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0"
    with RemoteProxy() as proxy, RawTarget("source", size) as target, \
            EdgeAgent(proxy, token, target.addr, env={"ASAN_OPTIONS": asan}) as agent:
        wait_connected(proxy, dev)
        before = rss_kib(agent.proc.pid)
        st, _, s, rest = open_raw(proxy, dev)
        eq(st, 101)
        h = hashlib.sha256(rest)
        n = len(rest)
        while n < 1024 * 1024:
            d = s.recv(65536)
            check(d, "the stream ended early")
            h.update(d)
            n += len(d)
        time.sleep(2)  # the client stalls; the target keeps pushing
        grown = rss_kib(agent.proc.pid) - before
        # Under valgrind the RSS is valgrind's (it keeps freed blocks to catch late use).
        check(VALGRIND or grown < 8 * 1024,
              f"agent RSS grew by {grown} KiB while the client stalled")
        while True:
            d = s.recv(262144)
            if not d:
                break
            h.update(d)
            n += len(d)
        s.close()
        eq(n, size, "bytes downloaded")
        eq(h.hexdigest(), pattern_sha256(size), "sha256 of the download")


def test_unreachable_target_resets_the_stream_at_once():
    require_services()
    dev, token = new_device()
    closed_port = free_port()  # nothing listens there
    with RemoteProxy() as proxy, EdgeAgent(proxy, token, f"127.0.0.1:{closed_port}") as agent:
        wait_connected(proxy, dev)
        t0 = time.time()
        st, out = forward_http(proxy, dev, "GET", "/hello")
        eq(st, 502, "a refused target is an error, not an empty answer")
        check(time.time() - t0 < 5, "the stream must be reset at once, not time out")
        agent.wait_log("event=agent.target_unreachable")


def test_agent_serves_a_hashicorp_yamux_client_over_gorilla_websocket():
    """Our yamux in the server role against the implementation the field uses: test/go-agent
    in proxy mode is a gorilla WebSocket server running hashicorp's yamux client, which opens
    64 streams at once and wants each GET answered by our target."""
    token = secrets.token_urlsafe(32)
    port = free_port()
    log_path = os.path.join(WORK, f"go-probe-{secrets.token_hex(3)}.log")
    with open(log_path, "wb") as log, http_target() as target:
        probe = subprocess.Popen([go_agent_binary(), "-mode", "proxy", "-listen",
                                  f"127.0.0.1:{port}", "-token", token, "-streams", "64"],
                                 stdout=log, stderr=subprocess.STDOUT)
        try:
            def listening():
                if probe.poll() is not None:
                    with open(log_path, "rb") as f:
                        raise AssertionError(f"the Go probe exited: {f.read()[-1500:]!r}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return True
                except OSError:
                    return False
            wait_until(listening, timeout=30, what="the Go probe to listen")
            with EdgeAgent(token=token, target=target.addr,
                           url=f"ws://127.0.0.1:{port}/tunnel") as agent:
                rc = probe.wait(timeout=60)
                with open(log_path, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
                eq(rc, 0, f"Go probe exit status:\n{text[-2000:]}")
                check("probe ok: 64 streams" in text, text[-2000:])
                agent.wait_log("event=agent.connected")
        finally:
            if probe.poll() is None:
                probe.kill()
                probe.wait()


# ---- restarts, refusals, silence, GoAway ----

def test_agent_restarted_reconnects():
    require_services()
    dev, token = new_device()
    with RemoteProxy() as proxy, http_target() as target:
        first = EdgeAgent(proxy, token, target.addr)
        old = wait_connected(proxy, dev)
        first.stop()  # SIGTERM: GoAway to the proxy, close, exit 0
        wait_until(lambda: device_of(proxy, dev) is None, timeout=5,
                   what="the stopped agent's session to go")
        check("tunnel.agent_goaway" in proxy.log_text(), "the proxy must hear our GoAway")
        with EdgeAgent(proxy, token, target.addr):
            new = wait_connected(proxy, dev)
            check(new["session_id"] != old["session_id"], "a new session")
            st, out = forward_http(proxy, dev, "GET", "/hello")
            eq((st, out["status"]), (200, 200))


def test_proxy_restarted_agent_reconnects_by_itself():
    require_services()
    dev, token = new_device()
    with http_target() as target:
        proxy = RemoteProxy().start()
        try:
            with EdgeAgent(proxy, token, target.addr) as agent:
                old = wait_connected(proxy, dev)
                proxy.stop()  # SIGTERM: GoAway to the agent, close, exit 0
                agent.wait_log("event=agent.disconnected")
                t0 = time.time()
                proxy.start()
                new = wait_connected(proxy, dev, timeout=10)
                took = time.time() - t0
                check(took < 8, f"the agent took {took:.1f}s to come back")
                check(new["session_id"] != old["session_id"], "a new session")
                st, out = forward_http(proxy, dev, "GET", "/hello")
                eq((st, out["status"]), (200, 200))
                check("event=agent.goaway" in agent.log_text(),
                      "the proxy's GoAway must be seen before the close")
        finally:
            proxy.stop()


def test_refused_credential_is_logged_retried_slowly_and_accepted_once_issued():
    require_services()
    dev, token = new_device()
    revoke(token)  # not (yet) a valid credential
    with RemoteProxy() as proxy, http_target() as target, \
            EdgeAgent(proxy, token, target.addr, extra=["--refused-retry", "1"]) as agent:
        agent.wait_log("event=agent.credential_refused", times=2, timeout=15)
        text = agent.log_text()
        check("HTTP 401" in text, "the refusal must name the status")
        check(token not in text, "the refused token must not be logged")
        check(proxy.log_text().count("tunnel.auth_refused") >= 2, "the proxy saw the retries")
        eq(device_of(proxy, dev), None, "no session with a refused credential")
        # Retries are slow, not a hammer: two refusals a second apart, then doubling.
        check(agent.count("event=agent.credential_refused") <= 5, "retrying too fast")
        # The credential is issued (e.g. pairing finished): the next retry gets through.
        digest = hashlib.sha256(token.encode()).hexdigest()
        redis_cli("HSET", f"tunnel:cred:{digest}", "device_id", dev, "user_id", "user-1")
        wait_connected(proxy, dev, timeout=20)


def test_silent_proxy_is_detected_and_redialled():
    require_services()
    dev, token = new_device()
    with RemoteProxy() as proxy, http_target() as target, \
            EdgeAgent(proxy, token, target.addr, extra=["--idle-timeout", "2"]) as agent:
        wait_connected(proxy, dev)
        agent.wait_log("event=agent.connected")
        proxy.signal(signal.SIGSTOP)  # alive but silent: no pings, no answers
        try:
            agent.wait_log("the proxy went silent", timeout=8)
        finally:
            proxy.signal(signal.SIGCONT)
        agent.wait_log("event=agent.connected", times=2, timeout=20)
        wait_until(lambda: device_of(proxy, dev), timeout=10, what="the redialled tunnel")
        st, out = forward_http(proxy, dev, "GET", "/hello")
        eq((st, out["status"]), (200, 200))


def test_goaway_lets_the_request_in_flight_finish_then_redials():
    require_services()
    dev, token = new_device()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    target = f"127.0.0.1:{server.server_address[1]}"
    proxy = RemoteProxy().start()
    try:
        with EdgeAgent(proxy, token, target) as agent:
            wait_connected(proxy, dev)
            result = {}

            def slow():
                result["r"] = forward_http(proxy, dev, "GET", "/slow")

            t = threading.Thread(target=slow)
            t.start()
            wait_until(lambda: (device_of(proxy, dev) or {}).get("open_streams", 0) > 0,
                       timeout=5, what="the slow request's stream")
            proxy.signal(signal.SIGTERM)  # GoAway to the agent; the request is in flight
            t.join(15)
            st, out = result["r"]
            eq((st, out["status"], out["body"]), (200, 200, b"answered after 2.0s\n"),
               "the request in flight finishes after the GoAway")
            agent.wait_log("event=agent.goaway")
            agent.wait_log("streams drained", timeout=10)
            eq(proxy.proc.wait(timeout=20), 0, "proxy exit status")
            proxy.start()
            wait_connected(proxy, dev, timeout=10)
    finally:
        proxy.stop()
        server.shutdown()
        server.server_close()


# ---- many tunnels ----

def test_swarm_of_fifty_tunnels_in_one_process():
    require_services()
    devices = [new_device() for _ in range(50)]
    with RemoteProxy() as proxy, http_target() as target, \
            EdgeAgent(proxy, None, target.addr, tokens=[t for _, t in devices]) as agent:
        want = {d for d, _ in devices}

        def all_listed():
            return want <= {s["device_id"] for s in sessions(proxy)["sessions"]}
        wait_until(all_listed, timeout=30, what="50 sessions")
        eq(sessions(proxy)["total"], 50, "sessions listed")
        agent.wait_log("event=agent.swarm_open tunnels=50")
        for dev, _ in devices[::10]:
            st, out = forward_http(proxy, dev, "GET", "/hello")
            eq((st, out["status"], out["body"]), (200, 200, b"hello, world\n"))
        agent.wait_log("event=agent.summary", timeout=15)
        check(all(t not in agent.log_text() for _, t in devices), "no token in the log")


# ---- wss:// ----

def test_wss_to_the_proxy_with_a_test_ca_serves_forwards():
    require_services()
    dev, token = new_device()
    d = tempfile.mkdtemp(dir=WORK)
    ca, cert, key = make_ca(d, "localhost")
    with RemoteProxy(env={"EDGEGATE_TLS_CERT": cert, "EDGEGATE_TLS_KEY": key}) as proxy, \
            http_target() as target, \
            EdgeAgent(token=token, target=target.addr, extra=["--ca-file", ca],
                      url=f"wss://localhost:{proxy.tunnel_port}/tunnel") as agent:
        wait_connected(proxy, dev)
        check("tls=" + ca in agent.log_text(), "the agent says which CA it trusts")
        st, out = forward_http(proxy, dev, "GET", "/hello")
        eq((st, out["status"], out["body"]), (200, 200, b"hello, world\n"))
        body = os.urandom(1024 * 1024)
        st, out = forward_http(proxy, dev, "POST", "/echo", {}, body)
        check(st == 200 and out["body"] == body, "1 MiB through wss:// unchanged")


def test_wss_through_an_openssl_front_end():
    """The same agent against a TLS stack we did not write (Python's ssl is OpenSSL)."""
    require_services()
    dev, token = new_device()
    d = tempfile.mkdtemp(dir=WORK)
    ca, cert, key = make_ca(d, "localhost")
    with RemoteProxy() as proxy, http_target() as target, \
            TlsFront(cert, key, proxy.tunnel_port) as front, \
            EdgeAgent(token=token, target=target.addr,
                      url=f"wss://localhost:{front.port}/tunnel", extra=["--ca-file", ca]):
        wait_connected(proxy, dev)
        check(front.handshakes >= 1, "the tunnel went through the TLS front end")
        body = os.urandom(256 * 1024)
        st, out = forward_http(proxy, dev, "POST", "/echo", {}, body)
        check(st == 200 and out["body"] == body, "256 KiB through OpenSSL and mbedtls unchanged")


def test_wss_refuses_a_certificate_for_another_name_or_from_an_unknown_ca():
    require_services()
    dev, token = new_device()
    d = tempfile.mkdtemp(dir=WORK)
    ca, cert, key = make_ca(d, "wrong.example")
    tls = {"EDGEGATE_TLS_CERT": cert, "EDGEGATE_TLS_KEY": key}
    with RemoteProxy(env=tls) as proxy:
        url = f"wss://localhost:{proxy.tunnel_port}/tunnel"
        with EdgeAgent(token=token, url=url, extra=["--ca-file", ca]) as agent:
            agent.wait_log("Certificate verification failed", timeout=15)
            agent.wait_log("event=agent.connect_failed", times=2, timeout=15)  # and retries
            eq(device_of(proxy, dev), None, "no tunnel through a certificate for another name")
    d2 = tempfile.mkdtemp(dir=WORK)
    _, cert2, key2 = make_ca(d2, "localhost")  # the right name, from a CA nobody told us of
    with RemoteProxy(env={"EDGEGATE_TLS_CERT": cert2, "EDGEGATE_TLS_KEY": key2}) as proxy:
        url = f"wss://localhost:{proxy.tunnel_port}/tunnel"
        with EdgeAgent(token=token, url=url, extra=["--ca-file", ca]) as agent:
            agent.wait_log("Certificate verification failed", timeout=15)
            eq(device_of(proxy, dev), None, "no tunnel through an unknown CA")
        # Without --ca-file the system bundle is the trust store: a private CA is not in it.
        with EdgeAgent(token=token, url=url) as agent:
            agent.wait_log("Certificate verification failed", timeout=15)
            check("tls=system" in agent.log_text(), "the system bundle is the default")
            eq(device_of(proxy, dev), None, "no tunnel without trusting the CA")
