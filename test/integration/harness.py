"""Shared helpers for the integration tests: real daemons, real PostgreSQL and Redis, sockets.

test/run.sh starts PostgreSQL and Redis and exports where they are (EDGEGATE_TEST_*). A test
starts the daemons it needs with `ApiServer(...)` / `RemoteProxy(...)` (free ports, a log file
each), talks to them over sockets, and stops them with SIGTERM, which must end them with status
0 — so every test also checks graceful shutdown. Set EDGEGATE_VALGRIND=1 to run the daemons
under valgrind (any error fails the stop).
"""
import json
import os
import secrets
import signal
import socket
import subprocess
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# EDGEGATE_TEST_BIN: test binaries copied elsewhere (e.g. while other builds rewrite bin/).
BIN = os.environ.get("EDGEGATE_TEST_BIN", os.path.join(ROOT, "bin"))
WORK = os.environ.get("EDGEGATE_TEST_WORK", "/tmp")
DATABASE_URL = os.environ.get("EDGEGATE_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("EDGEGATE_TEST_REDIS_URL", "")
SERVICES_DIR = os.environ.get("EDGEGATE_TEST_SERVICES_DIR", "")
PG_PORT = os.environ.get("EDGEGATE_TEST_PG_PORT", "")
REDIS_PORT = os.environ.get("EDGEGATE_TEST_REDIS_PORT", "")
INTERNAL_TOKEN = "it-" + "x" * 40
VALGRIND = os.environ.get("EDGEGATE_VALGRIND") == "1"


class TestFailure(AssertionError):
    pass


def check(cond, message="check failed"):
    if not cond:
        raise TestFailure(message)


def eq(actual, expected, what="value"):
    if actual != expected:
        raise TestFailure(f"{what}: expected {expected!r}, got {actual!r}")


def require_services():
    check(DATABASE_URL and REDIS_URL and SERVICES_DIR,
          "EDGEGATE_TEST_* not set: run through `make test` (test/run.sh)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(pred, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TestFailure(f"timed out after {timeout}s waiting for {what}")


def services(cmd, which_port):
    """Stop/start PostgreSQL or Redis of this test run (for restart tests)."""
    subprocess.run(["sh", os.path.join(ROOT, "deploy/dev-services.sh"), cmd, SERVICES_DIR,
                    which_port], check=True, stdout=subprocess.DEVNULL)


def pg_stop():
    services("stop-pg", PG_PORT)


def pg_start():
    services("start-pg", PG_PORT)


def redis_stop():
    services("stop-redis", REDIS_PORT)


def redis_start():
    services("start-redis", REDIS_PORT)


def redis_pid():
    with open(os.path.join(SERVICES_DIR, "redis.pid")) as f:
        return int(f.read().strip())


def redis_cli(*args):
    out = subprocess.run(["redis-cli", "-p", REDIS_PORT, *args], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def psql(sql):
    out = subprocess.run(["psql", DATABASE_URL, "-v", "ON_ERROR_STOP=1", "-qtAc", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def fresh_database():
    """A new empty database on the test server; returns its URL."""
    name = "t_" + secrets.token_hex(6)
    psql(f"CREATE DATABASE {name}")
    return DATABASE_URL.rsplit("/", 1)[0] + "/" + name


def base_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEGATE_")}
    env.update({
        "EDGEGATE_REDIS_URL": REDIS_URL,
        "EDGEGATE_INTERNAL_TOKEN": INTERNAL_TOKEN,
        "EDGEGATE_LOG_LEVEL": "debug",
    })
    return env


class Daemon:
    """One daemon process with its own log file."""

    name = "daemon"

    def __init__(self, argv, env, ports, health_port):
        self.argv = argv
        self.env = env
        self.ports = ports
        self.health_port = health_port
        self.log_path = os.path.join(WORK, f"{self.name}-{secrets.token_hex(4)}.log")
        self.proc = None

    def start(self, wait=True):
        cmd = list(self.argv)
        if VALGRIND:
            cmd = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
                   "--errors-for-leak-kinds=definite", *cmd]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        if wait:
            wait_until(self._healthy, timeout=60 if VALGRIND else 15,
                       what=f"{self.name} /healthz (log: {self.log_path})")
        return self

    def _healthy(self):
        if self.proc.poll() is not None:
            raise TestFailure(f"{self.name} exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
        try:
            st, _, _ = request("127.0.0.1", self.health_port, "GET", "/healthz", timeout=1)
            return st == 200
        except OSError:
            return False

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, expect_status=0, timeout=20):
        """SIGTERM, and the exit status must be expect_status (graceful shutdown)."""
        if self.proc is None or self.proc.poll() is not None:
            rc = None if self.proc is None else self.proc.returncode
            self.log.close()
            if expect_status is not None and rc != expect_status:
                raise TestFailure(f"{self.name} had already exited with {rc}:\n{self.log_text()[-3000:]}")
            return rc
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout * (4 if VALGRIND else 1))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise TestFailure(f"{self.name} did not stop within {timeout}s after SIGTERM")
        finally:
            self.log.close()
        if expect_status is not None and rc != expect_status:
            raise TestFailure(f"{self.name} exited with {rc}, expected {expect_status}:\n"
                              f"{self.log_text()[-4000:]}")
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if hasattr(self, "log"):
            self.log.close()

    def __enter__(self):
        return self if self.proc is not None else self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
        else:
            self.kill()


class ApiServer(Daemon):
    name = "api-server"

    def __init__(self, database_url=None, env=None):
        self.port = free_port()
        e = base_env()
        e.update({
            "EDGEGATE_DATABASE_URL": database_url or DATABASE_URL,
            "EDGEGATE_API_LISTEN": f"127.0.0.1:{self.port}",
            "EDGEGATE_PUBLIC_ORIGIN": f"http://127.0.0.1:{self.port}",
            "EDGEGATE_SESSION_SECRET": "s" * 48,
            "EDGEGATE_MFA_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            "EDGEGATE_DEV": "1",
        })
        e.update(env or {})
        super().__init__([os.path.join(BIN, "api-server")], e, [self.port], self.port)


class RemoteProxy(Daemon):
    name = "remote-proxy"

    def __init__(self, env=None):
        self.tunnel_port = free_port()
        self.internal_port = free_port()
        e = base_env()
        e.update({
            "EDGEGATE_TUNNEL_LISTEN": f"127.0.0.1:{self.tunnel_port}",
            "EDGEGATE_INTERNAL_LISTEN": f"127.0.0.1:{self.internal_port}",
            "EDGEGATE_INTERNAL_URL": f"http://127.0.0.1:{self.internal_port}",
        })
        e.update(env or {})
        super().__init__([os.path.join(BIN, "remote-proxy")], e,
                         [self.tunnel_port, self.internal_port], self.internal_port)


def migrate(database_url, directory=None):
    argv = [os.path.join(BIN, "api-server"), "migrate"]
    if directory:
        argv += ["--dir", directory]
    env = base_env()
    env["EDGEGATE_DATABASE_URL"] = database_url
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


# ---- a minimal HTTP/1.1 client over a raw socket (we want to see exactly what is sent) ----

def read_response(sock, buf=b"", head_only=False):
    """Reads one response from sock; returns (status, headers{lower: value}, body, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a full head: {buf[:200]!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), v.strip())
    if head_only or status in (101, 204, 304) or status < 200:
        return status, headers, b"", rest
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed in the body")
            rest += chunk
        return status, headers, rest[:n], rest[n:]
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += sock.recv(65536)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed in a chunk")
                rest += chunk
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                return status, headers, body, rest
    body = rest
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return status, headers, body, b""
        body += chunk


def request(host, port, method, path, headers=None, body=b"", timeout=10):
    """One request on a new connection; returns (status, headers, body)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(build_request(method, path, headers, body))
        st, hd, bd, _ = read_response(s)
        return st, hd, bd


def build_request(method, path, headers=None, body=b"", host="test"):
    if isinstance(body, str):
        body = body.encode()
    h = {"Host": host}
    if body or method in ("POST", "PUT", "PATCH"):
        h["Content-Length"] = str(len(body))
    h.update(headers or {})
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in h.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def get_json(port, path, headers=None, method="GET", body=b""):
    st, hd, bd = request("127.0.0.1", port, method, path, headers, body)
    try:
        doc = json.loads(bd) if bd else None
    except ValueError:
        doc = bd
    return st, doc
