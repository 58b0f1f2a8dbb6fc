"""What the tunnel tests share: device credentials in Redis, the Go agent built from Debian's
hashicorp/yamux + gorilla/websocket, local targets on the "device", and internal-API calls."""
import base64
import hashlib
import http.server
import json
import os
import secrets
import socket
import subprocess
import threading
import time

from harness import (INTERNAL_TOKEN, ROOT, WORK, check, eq, read_response, build_request,
                     redis_cli, request, wait_until)

_go_lock = threading.Lock()


def go_agent_binary():
    """Builds test/go-agent once per source version (GOPATH mode: Debian ships the libraries'
    sources); the name carries the source's hash, so an edit is never served a stale build."""
    src = os.path.join(ROOT, "test/go-agent/main.go")
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    binary = os.path.join(WORK, f"go-agent-{digest}")
    with _go_lock:
        if not os.path.exists(binary):
            env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode",
                       GOCACHE=os.path.join(WORK, "gocache"), GOFLAGS="")
            r = subprocess.run(["go", "build", "-o", binary, src],
                               env=env, capture_output=True, text=True, cwd=WORK)
            check(r.returncode == 0, f"go build failed:\n{r.stderr}")
    return binary


def new_device(user_id="user-1"):
    """A device id and a credential registered the way api-server registers them."""
    device_id = "dev-" + secrets.token_hex(6)
    token = secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    redis_cli("HSET", f"tunnel:cred:{digest}", "device_id", device_id, "user_id", user_id)
    return device_id, token


def revoke(token):
    redis_cli("DEL", "tunnel:cred:" + hashlib.sha256(token.encode()).hexdigest())


class GoAgent:
    def __init__(self, proxy, token, target, mode="server", once=False, url=None, ca=None):
        argv = [go_agent_binary(), "-url", url or f"ws://127.0.0.1:{proxy.tunnel_port}/tunnel",
                "-token", token, "-target", target, "-mode", mode]
        if ca:
            argv += ["-ca", ca]
        if once:
            argv.append("-once")
        self.log_path = os.path.join(WORK, f"go-agent-{secrets.token_hex(3)}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


# ---- internal API ----

def auth():
    return {"Authorization": f"Bearer {INTERNAL_TOKEN}"}


def sessions(proxy):
    st, _, body = request("127.0.0.1", proxy.internal_port, "GET", "/internal/sessions", auth())
    eq(st, 200, "GET /internal/sessions")
    return json.loads(body)


def wait_connected(proxy, device_id, timeout=15):
    def find():
        for s in sessions(proxy)["sessions"]:
            if s["device_id"] == device_id:
                return s
        return None
    return wait_until(find, timeout=timeout, what=f"tunnel of {device_id}")


def forward_http(proxy, device_id, method="GET", path="/", headers=None, body=b"", timeout=30):
    doc = {"device_id": device_id, "method": method, "path": path, "headers": headers or {},
           "body": base64.b64encode(body).decode()}
    st, _, raw = request("127.0.0.1", proxy.internal_port, "POST", "/internal/forward/http",
                         {**auth(), "Content-Type": "application/json"}, json.dumps(doc).encode(),
                         timeout=timeout)
    out = json.loads(raw)
    if st == 200:
        out["body"] = base64.b64decode(out["body"])
    return st, out


def open_raw(proxy, device_id, timeout=30):
    """forward/raw: returns the socket after the 101 and any bytes that came with it."""
    s = socket.create_connection(("127.0.0.1", proxy.internal_port), timeout=timeout)
    s.sendall(build_request("POST", "/internal/forward/raw",
                            {**auth(), "X-Device-Id": device_id, "Connection": "Upgrade",
                             "Upgrade": "edgegate-stream"}))
    st, hd, body, rest = read_response(s)
    if st != 101:
        s.close()
        return st, body, None, b""
    return st, body, s, rest


# ---- targets on the "device" ----

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class _Handler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, as a device's web server: a connection serves requests until
    the client or a response says close."""
    protocol_version = "HTTP/1.1"
    served = 0  # requests answered on this connection (one handler per connection)

    def log_message(self, *args):
        pass

    def handle_one_request(self):
        super().handle_one_request()
        self.served += 1

    def _dropped(self):
        """HttpTarget.drop_next_reuse: the request arrived on a reused connection, which is
        closed instead of answered, as a server whose keep-alive timer fired at that moment."""
        if not (self.server.drop_next_reuse and self.served >= 1):
            return False
        self.server.drop_next_reuse = False
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)
        return True

    def _reply(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        if self._dropped():
            return
        if self.path == "/hello":
            self._reply(200, b"hello, world\n")
        elif self.path.startswith("/status/"):
            # /status/204, /status/304: a status whose response never has a body.
            self.send_response(int(self.path.split("/")[2]))
            self.end_headers()
        elif self.path == "/stale":
            # A 304 that names the length of what the client has: no body follows all the same.
            self.send_response(304)
            self.send_header("Content-Length", "99")
            self.end_headers()
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"chunked ", b"body, ", b"three pieces\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/eof":
            # No length and no chunking: the body ends where the connection does.
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"until the close\n")
            self.close_connection = True
        elif self.path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"bye!\r\n")
        elif self.path == "/ws":
            self._websocket_echo()
        elif self.path.startswith("/headers"):
            self._reply(200, json.dumps({k.lower(): v for k, v in self.headers.items()}).encode(),
                        "application/json")
        elif self.path.startswith("/sse"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(3):
                chunk = f"data: event {i}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
                time.sleep(0.5)
            self.wfile.write(b"0\r\n\r\n")
        elif self.path.startswith("/bytes/"):
            # /bytes/N: N bytes of the pattern (pattern_sha256(N) is their digest).
            size = int(self.path.split("/")[2])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            block, left = pattern_block(), size
            while left > 0:
                n = min(left, len(block))
                self.wfile.write(block[:n])
                left -= n
        elif self.path.startswith("/cut"):
            # Promises 1000 bytes, sends 10, and hangs up.
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif self.path.startswith("/multi"):
            self.send_response(200)
            self.send_header("Set-Cookie", "a=1")
            self.send_header("Set-Cookie", "b=2")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        else:
            self._reply(404, b"not here\n")

    def do_HEAD(self):
        self.do_GET()

    def _websocket_echo(self):
        """RFC 6455 server side, just enough for an echo: the handshake, then every text or
        binary message sent back (unfragmented, unmasked), until a close."""
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        rf = self.rfile
        while True:
            hdr = rf.read(2)
            if len(hdr) < 2:
                return
            opcode, n = hdr[0] & 0x0F, hdr[1] & 0x7F
            if n == 126:
                n = int.from_bytes(rf.read(2), "big")
            elif n == 127:
                n = int.from_bytes(rf.read(8), "big")
            mask = rf.read(4) if hdr[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(rf.read(n)))
            if n < 126:
                out = bytes([0x80 | opcode, n])
            elif n < 65536:
                out = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
            else:
                out = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
            self.wfile.write(out + data)
            self.wfile.flush()
            if opcode == 8:
                return

    def do_POST(self):
        if self._dropped():
            return
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                data += self.rfile.read(size)
                self.rfile.readline()
                if size == 0:
                    break
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Got-Chunked", "yes")
            self.end_headers()
            self.wfile.write(data)
            return
        n = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(n)
        self._reply(200, data, self.headers.get("Content-Type", "application/octet-stream"))

    do_PUT = do_POST
    do_PATCH = do_POST


class _Server(http.server.ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: 64 simultaneous connects from an agent would
    # be reset by the kernel and show up as failed forwards.
    request_queue_size = 128

    def __init__(self, *args):
        super().__init__(*args)
        self.lock = threading.Lock()
        self.accepted = 0      # connections accepted, ever
        self.open = set()      # their sockets, until the handler is done with them
        self.drop_next_reuse = False

    def get_request(self):
        sock, addr = super().get_request()
        with self.lock:
            self.accepted += 1
            self.open.add(sock)
        return sock, addr

    def shutdown_request(self, request):
        with self.lock:
            self.open.discard(request)
        super().shutdown_request(request)


class HttpTarget:
    """A threaded HTTP server standing in for the device's web UI."""

    def __init__(self):
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def accepted(self):
        """Connections the target has accepted: what keep-alive on the agent saves."""
        return self.server.accepted

    def drop_next_reuse(self):
        self.server.drop_next_reuse = True

    def close_connections(self):
        """Hangs up every open connection, as a server whose keep-alive timeout ran out."""
        with self.server.lock:
            socks = list(self.server.open)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def listen_threaded(serve, backlog=64):
    """A listening socket on 127.0.0.1; each connection is served by serve(conn) on a thread of
    its own until the socket is closed."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)

    def accept():
        while True:
            try:
                c, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return sock


class RawTarget:
    """A TCP target: 'echo' sends back what it gets; 'source N' sends N deterministic bytes."""

    def __init__(self, mode="echo", size=0):
        self.mode, self.size = mode, size
        self.sock = listen_threaded(self._serve)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self, c):
        try:
            if self.mode == "echo":
                while True:
                    d = c.recv(262144)
                    if not d:
                        break
                    c.sendall(d)
                c.shutdown(socket.SHUT_WR)
            else:
                block = pattern_block()
                left = self.size
                while left > 0:
                    n = min(left, len(block))
                    c.sendall(block[:n])
                    left -= n
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_block = None


def pattern_block():
    global _block
    if _block is None:
        _block = hashlib.sha256(b"edgegate").digest() * 32768  # 1 MiB
    return _block


def pattern_sha256(size):
    h = hashlib.sha256()
    block = pattern_block()
    left = size
    while left > 0:
        n = min(left, len(block))
        h.update(block[:n])
        left -= n
    return h.hexdigest()


def make_ca(directory, hostname):
    """A CA and a server certificate for hostname, made with openssl; returns (ca, cert, key)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=edgegate test CA")
    with open(os.path.join(directory, "ext.cnf"), "w") as f:
        f.write(f"subjectAltName=DNS:{hostname}\nbasicConstraints=CA:FALSE\n")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={hostname}")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return (os.path.join(directory, "ca.pem"), os.path.join(directory, "server.pem"),
            os.path.join(directory, "server.key"))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
