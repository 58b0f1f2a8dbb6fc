"""`make bench`: every figure beside its reference measured in the same run.

Starts on loopback, in its own temp dir: PostgreSQL + Redis (deploy/dev-services.sh), nginx
(target and one-hop reverse proxy), remote-proxy, api-server and bin/edge-agent; measures with
wrk (bounded runs) and a Python socket client; stops everything it started (also on error and
Ctrl-C); prints a Markdown table and writes it to bench/results.md."""
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DURATION = int(os.environ.get("BENCH_SECONDS", "10"))   # each wrk run; must stay <= 15
CONNS = 50
BULK_RUNS = 3   # 1 GiB transfers per bulk row; the best one counts
# BENCH_CPU=1: after each wrk run, log the CPU each process spent per request (where the time
# goes, without perf). BENCH_ONLY=small: stop after the small-GET section (quick iterations).
CPU_BREAKDOWN = os.environ.get("BENCH_CPU") == "1"
ONLY = os.environ.get("BENCH_ONLY", "")
WS_STREAMS = 100

TMP = tempfile.mkdtemp(prefix="edgegate-bench-")
os.chmod(TMP, 0o755)   # PostgreSQL (as user postgres) and nginx workers must reach it
procs = []        # every Popen we started (killed in finally if still alive)
services_up = False


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


PG_PORT, REDIS_PORT = str(free_port()), str(free_port())
os.environ.update({
    "EDGEGATE_TEST_WORK": TMP,
    "EDGEGATE_TEST_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{PG_PORT}/edgegate",
    "EDGEGATE_TEST_REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
    "EDGEGATE_TEST_SERVICES_DIR": os.path.join(TMP, "svc"),
    "EDGEGATE_TEST_PG_PORT": PG_PORT,
    "EDGEGATE_TEST_REDIS_PORT": REDIS_PORT,
})
sys.path.insert(0, os.path.join(ROOT, "test/integration"))
from harness import (ApiServer, RemoteProxy, INTERNAL_TOKEN, DATABASE_URL, build_request,  # noqa: E402
                     read_response, request, wait_until, migrate)

QUIET = {"EDGEGATE_LOG_LEVEL": "warn"}
AGENT = os.path.join(ROOT, "bin/edge-agent")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def spawn(argv, name, env=None, stdout=None):
    f = open(os.path.join(TMP, f"{name}.log"), "ab")
    p = subprocess.Popen(argv, stdout=stdout or f, stderr=f if stdout else subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=env)
    f.close()
    procs.append(p)
    return p


def stop_proc(p, timeout=30):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def stop_daemon(d):
    if d is not None and d.proc is not None:
        stop_proc(d.proc)
        try:
            d.log.close()
        except Exception:
            pass


def start_daemon(d):
    d.start()
    procs.append(d.proc)
    return d


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakRss:
    """Samples VmRSS of some pids every 50 ms in a thread; .peak[pid] in KiB."""

    def __init__(self, pids):
        self.pids, self.peak = pids, {p: 0 for p in pids}
        self.done = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.done.is_set():
            for p in self.pids:
                self.peak[p] = max(self.peak[p], rss_kib(p))
            self.done.wait(0.05)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.t.join()


def cpu_by_command():
    """{command name: CPU seconds} summed over every process on the machine (utime + stime)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        out[comm] = out.get(comm, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def log_cpu_per_request(before, after, requests):
    """Logs µs of CPU per request for each command that used a noticeable share."""
    used = {c: after.get(c, 0.0) - before.get(c, 0.0) for c in after}
    total = sum(v for v in used.values() if v > 0)
    parts = [f"{c} {v * 1e6 / requests:.0f}" for c, v in sorted(used.items(), key=lambda kv: -kv[1])
             if v > 0.02 * total]
    log(f"  CPU µs/request: total {total * 1e6 / requests:.0f} = " + ", ".join(parts))


# ---- nginx ----

NGINX_CONF = """
worker_processes auto;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000;
  client_body_temp_path {tmp}/ngx-body; proxy_temp_path {tmp}/ngx-proxy;
  fastcgi_temp_path {tmp}/ngx-fcgi; uwsgi_temp_path {tmp}/ngx-uwsgi; scgi_temp_path {tmp}/ngx-scgi;
  server {{
    listen 127.0.0.1:{target};
    location = /hello {{ default_type text/plain; return 200 "hello, world\\n"; }}
    location = /big {{ root {tmp}/www; default_type application/octet-stream; }}
  }}
  upstream target {{ server 127.0.0.1:{target}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{rproxy};
    location / {{ proxy_pass http://target; proxy_http_version 1.1;
                 proxy_set_header Connection ""; proxy_buffering off; }}
  }}
}}
"""


def start_nginx():
    target, rproxy = free_port(), free_port()
    os.makedirs(os.path.join(TMP, "www"), exist_ok=True)
    big = os.path.join(TMP, "www", "big")
    with open(big, "wb") as f:
        f.truncate(1 << 30)
    os.chmod(TMP, 0o755)
    os.chmod(os.path.join(TMP, "www"), 0o755)
    os.chmod(big, 0o644)
    conf = os.path.join(TMP, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(tmp=TMP, target=target, rproxy=rproxy))
    p = spawn(["nginx", "-p", TMP, "-e", os.path.join(TMP, "nginx-error.log"), "-c", conf], "nginx")

    def up():
        if p.poll() is not None:
            raise RuntimeError("nginx exited: " + open(os.path.join(TMP, "nginx.log")).read()[-2000:])
        try:
            return request("127.0.0.1", target, "GET", "/hello", timeout=1)[2] == b"hello, world\n"
        except OSError:
            return False
    wait_until(up, timeout=15, what="nginx")
    return p, target, rproxy


# ---- wrk ----

def _dur(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    v, u = float(m.group(1)), m.group(2)
    return v * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[u]


def wrk(url, script=None, headers=()):
    argv = ["wrk", "-t2", f"-c{CONNS}", f"-d{DURATION}s", "--timeout", "5s", "--latency"]
    for h in headers:
        argv += ["-H", h]
    if script:
        argv += ["-s", script]
    argv.append(url)
    cpu_before = cpu_by_command() if CPU_BREAKDOWN else None
    r = subprocess.run(argv, capture_output=True, text=True, timeout=DURATION + 30)
    out = r.stdout
    if r.returncode != 0 or "Requests/sec" not in out:
        raise RuntimeError(f"wrk failed: {out}\n{r.stderr}")
    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
           "p50": _dur(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
           "p99": _dur(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
           "errors": 0}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["errors"] += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] += sum(int(x) for x in m.groups())
    log(f"wrk {url}: {res['rps']:.0f} req/s p50 {res['p50']:.2f} ms p99 {res['p99']:.2f} ms"
        f" errors {res['errors']}")
    if cpu_before is not None:
        log_cpu_per_request(cpu_before, cpu_by_command(), res["rps"] * DURATION)
    return res


def lua_post(device_id):
    body = json.dumps({"device_id": device_id, "method": "GET", "path": "/hello",
                       "headers": {}, "body": ""})
    path = os.path.join(TMP, "forward_http.lua")
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\n'
                f'wrk.body = {json.dumps(body)}\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["Authorization"] = "Bearer {INTERNAL_TOKEN}"\n')
    return path


# ---- bulk ----

def read_to_eof(sock, first=b""):
    buf = bytearray(4 << 20)
    view = memoryview(buf)
    total = len(first)
    while True:
        n = sock.recv_into(view)
        if n == 0:
            return total
        total += n


def split_head(data):
    i = data.find(b"\r\n\r\n")
    return data[i + 4:] if i >= 0 else b""


BIG_REQ = b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
SIZE = 1 << 30


def bulk_direct(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    t0 = time.monotonic()
    s.sendall(BIG_REQ)
    n = read_to_eof(s)
    dt = time.monotonic() - t0
    s.close()
    if n < SIZE:
        raise RuntimeError(f"direct bulk: only {n} bytes")
    return SIZE / dt / 1e6


def bulk_raw(proxy, device_id):
    s = socket.create_connection(("127.0.0.1", proxy.internal_port), timeout=60)
    t0 = time.monotonic()
    s.sendall(build_request("POST", "/internal/forward/raw",
                            {"Authorization": f"Bearer {INTERNAL_TOKEN}", "X-Device-Id": device_id,
                             "Connection": "Upgrade", "Upgrade": "edgegate-stream"}))
    st, _, body, rest = read_response(s)
    if st != 101:
        raise RuntimeError(f"forward/raw: {st} {body!r}")
    s.sendall(BIG_REQ)
    n = read_to_eof(s, rest)
    dt = time.monotonic() - t0
    s.close()
    if n < SIZE:
        raise RuntimeError(f"forward/raw bulk: only {n} bytes")
    return SIZE / dt / 1e6


def bulk_front(api, device_id, token):
    """The same 1 GiB through the front door: api-server → remote-proxy → tunnel → agent."""
    s = socket.create_connection(("127.0.0.1", api.port), timeout=60)
    t0 = time.monotonic()
    s.sendall(build_request("GET", f"/api/devices/{device_id}/proxy/big",
                            {"Authorization": f"Bearer {token}", "Connection": "close"}))
    n = read_to_eof(s)
    dt = time.monotonic() - t0
    s.close()
    if n < SIZE:
        raise RuntimeError(f"full-path bulk: only {n} bytes")
    return SIZE / dt / 1e6


def add_device(token):
    """A device owned by the bench operator, as pairing leaves it: row + credential."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    out = subprocess.run(["psql", DATABASE_URL, "-qtAc",
                          "INSERT INTO devices (owner_id, name, token_hash) SELECT id, 'bench', "
                          f"'{digest}' FROM accounts WHERE login = 'bench' RETURNING id, owner_id"],
                         check=True, capture_output=True, text=True).stdout.split()[0]
    device_id, owner = out.split("|")
    subprocess.run(["redis-cli", "-p", REDIS_PORT, "HSET", f"tunnel:cred:{digest}",
                    "device_id", device_id, "user_id", owner], check=True,
                   stdout=subprocess.DEVNULL)
    return device_id


def ws_echo(url, token):
    """WS_STREAMS connections each sending and awaiting one message at a time for the bench
    duration (test/bench/ws_echo.py); messages/s over all of them."""
    argv = [sys.executable, os.path.join(ROOT, "test/bench/ws_echo.py"), "load", url,
            str(WS_STREAMS), str(DURATION)]
    if token:
        argv.append(token)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=DURATION + 60)
    if r.returncode != 0:
        raise RuntimeError(f"ws_echo failed: {r.stdout} {r.stderr}")
    rate = float(r.stdout.split()[0])
    log(f"ws echo {url}: {rate:.0f} msg/s")
    return rate


# ---- tunnels ----

def sessions_total(proxy):
    """Live tunnels, from the edgegate_tunnels gauge: polling /internal/sessions instead would
    have the proxy render every session as JSON while it is busy accepting tunnels, and the
    connect rate would measure the poller."""
    st, _, body = request("127.0.0.1", proxy.internal_port, "GET", "/metrics",
                          {"Authorization": f"Bearer {INTERNAL_TOKEN}"}, timeout=30)
    if st != 200:
        return -1
    for line in body.decode().splitlines():
        if line.startswith("edgegate_tunnels "):
            return int(float(line.split()[1]))
    return 0


def register(tokens, prefix):
    cmds = "".join(f"HSET tunnel:cred:{hashlib.sha256(t.encode()).hexdigest()} "
                   f"device_id {prefix}{i} user_id bench\n" for i, t in enumerate(tokens))
    subprocess.run(["redis-cli", "-p", REDIS_PORT], input=cmds, text=True,
                   stdout=subprocess.DEVNULL, check=True)


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def agent_argv(proxy, target, extra):
    return [AGENT, "--url", f"ws://127.0.0.1:{proxy.tunnel_port}/tunnel", "--target", target,
            "--log-level", "warn", *extra]


def idle_tunnels(tokens, n):
    proxy = start_daemon(RemoteProxy(env=QUIET))
    agent = None
    try:
        time.sleep(0.2)
        before = rss_kib(proxy.proc.pid)
        tf = write(f"tokens-{n}", "\n".join(tokens[:n]) + "\n")
        t0 = time.monotonic()
        argv = agent_argv(proxy, "127.0.0.1:9", ["--swarm", str(n), "--tokens-file", tf])
        argv[argv.index("--log-level") + 1] = "info"  # for its agent.swarm_open line
        agent = spawn(argv, f"swarm-{n}")
        deadline = t0 + 120
        while True:
            if agent.poll() is not None:
                raise RuntimeError(f"swarm agent exited with {agent.returncode}")
            total = sessions_total(proxy)
            if total >= n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {total} of {n} tunnels after 120 s")
            time.sleep(0.01)
        dt = time.monotonic() - t0
        time.sleep(0.5)
        after = rss_kib(proxy.proc.pid)
        per = (after - before) / n
        # The rate: the agent's own clock from its first dial to its last 101 (agent.swarm_open).
        # Our wall time above also holds the agent's start-up and the gauge's polling interval,
        # a large share of the ~0.1 s that 1,000 tunnels take.
        with open(os.path.join(TMP, f"swarm-{n}.log")) as f:
            m = re.search(r"event=agent\.swarm_open .*per_s=(\d+)", f.read())
        rate = float(m.group(1)) if m else n / dt
        log(f"{n} tunnels: {rate:.0f}/s by the agent's clock ({n / dt:.0f}/s by ours, start-up"
            f" and polling included); proxy RSS {before} -> {after} KiB, {per:.1f} KiB/tunnel")
        return per, rate
    finally:
        if agent is not None:
            stop_proc(agent, timeout=60)
        stop_daemon(proxy)


# ---- the table ----

rows = []


def fmt(v, unit):
    if v is None:
        return "—"
    if unit == "req/s":
        return f"{v:,.0f} req/s"
    if unit == "ms":
        return f"{v:.2f} ms"
    if unit == "MB/s":
        return f"{v:,.0f} MB/s"
    if unit == "KiB":
        return f"{v:,.1f} KiB"
    if unit == "MiB":
        return f"{v:,.1f} MiB"
    if unit == "msg/s":
        return f"{v:,.0f} msg/s"
    if unit == "/s":
        return f"{v:,.0f} /s"
    return f"{v} {unit}"


def row(what, value, unit, ref=None, ref_name="", target=None, higher=True, note=""):
    """target: a ratio to ref (higher=True: ratio >= target) or, with ref None, an absolute."""
    ratio = (value / ref) if (ref and value is not None) else None
    verdict = ""
    if target is not None and value is not None:
        x = ratio if ref else value
        ok = x >= target if higher else x <= target
        verdict = "✓" if ok else "✗ missed"
    tgt = ""
    if target is not None:
        if ref:
            tgt = f"≥ {target:.0%} of {ref_name}" if higher else f"≤ {target:.0%} of {ref_name}"
        else:
            tgt = (f"≥ {fmt(target, unit)}" if higher else f"≤ {fmt(target, unit)}")
    rows.append([what, fmt(value, unit) + (f" ({note})" if note else ""),
                 (fmt(ref, unit) + f" ({ref_name})") if ref else "—",
                 f"{ratio:.1%}" if ratio is not None else "—", tgt or "—", verdict or "—"])


def text_row(what, text):
    rows.append([what, text, "—", "—", "—", "—"])


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def table(elapsed):
    head = (f"# edgegate benchmark\n\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · "
            f"nproc {os.cpu_count()} · CPU {cpu_model()} · wrk {CONNS} connections, "
            f"{DURATION} s per run · whole run {elapsed:.0f} s\n\n")
    lines = ["| measurement | figure | reference (same run) | ratio | target | met |",
             "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return head + "\n".join(lines) + "\n"


def main():
    global services_up
    t_start = time.monotonic()
    log(f"temp dir {TMP}")
    subprocess.run(["sh", os.path.join(ROOT, "deploy/dev-services.sh"), "start",
                    os.environ["EDGEGATE_TEST_SERVICES_DIR"], PG_PORT, REDIS_PORT],
                   check=True, stdout=subprocess.DEVNULL)
    services_up = True
    r = migrate(DATABASE_URL)
    if r.returncode != 0:
        raise RuntimeError("migrate failed: " + r.stdout + r.stderr)
    _, target, rproxy = start_nginx()

    # The operator, the api-server and the device (a devices row owned by the operator, its
    # credential in Redis: what pairing leaves behind) serve every section that needs them.
    env = dict(os.environ, EDGEGATE_DATABASE_URL=DATABASE_URL)
    pw = "bench password " + secrets.token_hex(8)
    r = subprocess.run([os.path.join(ROOT, "bin/api-server"), "create-admin", "--login", "bench"],
                       input=pw + "\n", text=True, capture_output=True, env=env, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("create-admin failed: " + r.stdout + r.stderr)
    proxy = start_daemon(RemoteProxy(env=QUIET))
    api = start_daemon(ApiServer(env=dict(QUIET, EDGEGATE_INTERNAL_URL=
                                          f"http://127.0.0.1:{proxy.internal_port}")))
    st, _, body = request("127.0.0.1", api.port, "POST", "/api/agents/login",
                          {"Content-Type": "application/json"},
                          json.dumps({"user_id": "bench", "password": pw}).encode())
    if st != 200:
        raise RuntimeError(f"login: {st} {body!r}")
    token = json.loads(body)["token"]
    bearer = f"Authorization: Bearer {token}"
    dev_tok = secrets.token_urlsafe(32)
    device = add_device(dev_tok)

    # 1. small GET
    log("small GET")
    direct = wrk(f"http://127.0.0.1:{target}/hello")
    hop = wrk(f"http://127.0.0.1:{rproxy}/hello")

    def device_agent(name, extra=()):
        """The device's edge-agent in front of nginx; it replaces any earlier one."""
        wait_until(lambda: sessions_total(proxy) == 0, timeout=15, what="no tunnel")
        p = spawn(agent_argv(proxy, f"127.0.0.1:{target}",
                             ["--token-file", write("token", dev_tok + "\n"), *extra]), name)
        wait_until(lambda: sessions_total(proxy) >= 1, timeout=15, what="agent tunnel")
        return p

    # The agent's defaults, then the opaque model (a fresh target connection per stream, as
    # before keep-alive). In this order: the opaque run leaves ~100k sockets in TIME_WAIT for a
    # minute, which makes every later connect dearer.
    agent = device_agent("edge-agent")
    fwd = wrk(f"http://127.0.0.1:{proxy.internal_port}/internal/forward/http", script=lua_post(device))
    stop_proc(agent)
    agent = device_agent("edge-agent-opaque", ["--target-keepalive", "0"])
    fwd0 = wrk(f"http://127.0.0.1:{proxy.internal_port}/internal/forward/http",
               script=lua_post(device))
    stop_proc(agent)
    agent = device_agent("edge-agent")
    full = wrk(f"http://127.0.0.1:{api.port}/api/devices/{device}/proxy/hello", headers=[bearer])
    d = "direct nginx"
    row("Small GET · direct to nginx (the limit) · req/s", direct["rps"], "req/s")
    row("Small GET · direct to nginx · p50 / p99", direct["p50"], "ms",
        note=f"p99 {direct['p99']:.2f} ms")
    row("Small GET · nginx one-hop reverse proxy · req/s", hop["rps"], "req/s", direct["rps"], d)
    row("Small GET · nginx one-hop reverse proxy · p99", hop["p99"], "ms", direct["p99"], d,
        note=f"p50 {hop['p50']:.2f} ms")
    fnote = f"{fwd['errors']} errors" if fwd["errors"] else ""
    row("Small GET · remote-proxy forward/http via edge-agent tunnel · req/s", fwd["rps"], "req/s",
        direct["rps"], d, target=0.25, note=fnote)
    row("Small GET · remote-proxy forward/http · p99", fwd["p99"], "ms", direct["p99"], d,
        note=f"p50 {fwd['p50']:.2f} ms")
    f0note = f"{fwd0['errors']} errors" if fwd0["errors"] else ""
    row("Small GET · forward/http via edge-agent with --target-keepalive 0 (a target connection "
        "per stream) · req/s", fwd0["rps"], "req/s", direct["rps"], d, note=f0note)
    row("Small GET · forward/http, --target-keepalive 0 · p99", fwd0["p99"], "ms", direct["p99"], d,
        note=f"p50 {fwd0['p50']:.2f} ms")
    full_note = f"{full['errors']} errors" if full["errors"] else ""
    row("Small GET · full path GET /api/devices/{id}/proxy/hello (bearer session) · req/s",
        full["rps"], "req/s", direct["rps"], d, target=0.20, note=full_note)
    row("Small GET · full path · p99", full["p99"], "ms", direct["p99"], d, target=3.0,
        higher=False, note=f"p50 {full['p50']:.2f} ms")

    if ONLY == "small":
        print(table(time.monotonic() - t_start))
        return

    # 2. bulk
    log("bulk 1 GiB")
    # Best of BULK_RUNS for every row alike: one transfer takes under a second, and a single
    # one swings with whatever else the two cores do (direct ranged 1.5-3.2 GB/s run to run).
    bulk_direct(target)    # warm-up: the page cache and nginx, so neither row pays for it
    bd = max(bulk_direct(target) for _ in range(BULK_RUNS))
    log(f"direct bulk {bd:.0f} MB/s")
    with PeakRss([proxy.proc.pid, agent.pid]) as peak:
        br = max(bulk_raw(proxy, device) for _ in range(BULK_RUNS))
    log(f"forward/raw bulk {br:.0f} MB/s; peak RSS proxy {peak.peak[proxy.proc.pid]} KiB,"
        f" agent {peak.peak[agent.pid]} KiB")
    with PeakRss([api.proc.pid, proxy.proc.pid, agent.pid]) as fpeak:
        bf = max(bulk_front(api, device, token) for _ in range(BULK_RUNS))
    log(f"full-path bulk {bf:.0f} MB/s; peak RSS api {fpeak.peak[api.proc.pid]} KiB")
    row("Bulk 1 GiB, one stream · direct from nginx", bd, "MB/s")
    row("Bulk 1 GiB, one stream · forward/raw via tunnel", br, "MB/s", bd, "direct nginx", target=0.30)
    row("Bulk 1 GiB, one stream · full path through api-server", bf, "MB/s", bd, "direct nginx")
    row("Bulk forward/raw · peak RSS remote-proxy", peak.peak[proxy.proc.pid] / 1024, "MiB")
    row("Bulk forward/raw · peak RSS edge-agent", peak.peak[agent.pid] / 1024, "MiB")
    row("Bulk full path · peak RSS api-server", fpeak.peak[api.proc.pid] / 1024, "MiB")
    row("Bulk full path · peak RSS remote-proxy", fpeak.peak[proxy.proc.pid] / 1024, "MiB")
    stop_proc(agent)

    # 5. WebSocket echo through the front door (before the proxy is replaced below)
    log("WebSocket echo")
    echo = spawn([sys.executable, os.path.join(ROOT, "test/bench/ws_echo.py"), "serve", "0"],
                 "ws-echo", stdout=subprocess.PIPE)
    echo_port = int(echo.stdout.readline())
    agent = spawn(agent_argv(proxy, f"127.0.0.1:{echo_port}",
                             ["--token-file", write("token", dev_tok + "\n")]), "edge-agent-ws")
    wait_until(lambda: sessions_total(proxy) >= 1, timeout=15, what="agent tunnel")
    ws_direct = ws_echo(f"ws://127.0.0.1:{echo_port}/echo", None)
    ws_front = ws_echo(f"ws://127.0.0.1:{api.port}/api/devices/{device}/proxy/echo", token)
    stop_proc(agent)
    stop_proc(echo)
    stop_daemon(proxy)

    # 3. idle tunnels
    tokens = [secrets.token_urlsafe(32) for _ in range(10000)]
    register(tokens, "swarm-")
    for n in (1000, 10000):
        log(f"idle tunnels: {n}")
        per, cps = idle_tunnels(tokens, n)
        row(f"Idle tunnels · remote-proxy RSS per tunnel at {n:,}", per, "KiB", target=16, higher=False)
        row(f"Idle tunnels · connects/s establishing {n:,}", cps, "/s", target=8000)

    # 4. authenticated API
    log("authenticated API")
    me = wrk(f"http://127.0.0.1:{api.port}/api/agents/me", headers=[bearer])
    stop_daemon(api)
    mnote = f"{me['errors']} errors" if me["errors"] else ""
    row("Authenticated API · GET /api/agents/me (bearer) · req/s", me["rps"], "req/s", direct["rps"],
        "nginx static /hello", note=mnote)
    row("Authenticated API · GET /api/agents/me · p99", me["p99"], "ms", direct["p99"],
        "nginx static /hello", note=f"p50 {me['p50']:.2f} ms")

    # 5. (measured above)
    row(f"WebSocket echo, {WS_STREAMS} streams · direct to the echo server · messages/s",
        ws_direct, "msg/s")
    row(f"WebSocket echo, {WS_STREAMS} streams through the front door · messages/s", ws_front,
        "msg/s", ws_direct, "direct echo server")

    out = table(time.monotonic() - t_start)
    print(out)
    os.makedirs(os.path.join(ROOT, "bench"), exist_ok=True)
    with open(os.path.join(ROOT, "bench/results.md"), "w") as f:
        f.write(out)
    log("written to bench/results.md")


def cleanup():
    for p in reversed(procs):
        try:
            stop_proc(p, timeout=20)
        except Exception:
            try:
                p.kill()
            except Exception:
                pass
    if services_up:
        subprocess.run(["sh", os.path.join(ROOT, "deploy/dev-services.sh"), "stop",
                        os.environ["EDGEGATE_TEST_SERVICES_DIR"]],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if os.environ.get("BENCH_KEEP") == "1":
        log(f"kept {TMP}")
    else:
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    rc = 0
    try:
        main()
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); stopping everything")
        rc = 130
    except Exception as e:
        log(f"FAILED: {e}")
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cleanup()
    sys.exit(rc)
