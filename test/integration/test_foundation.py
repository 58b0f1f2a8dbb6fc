"""The daemons as processes: configuration validation, migrations against the real PostgreSQL,
probes, metrics, and recovery when PostgreSQL or Redis restarts under a running daemon."""
import os
import subprocess
import tempfile
import threading
import time

from harness import (BIN, INTERNAL_TOKEN, ApiServer, RemoteProxy, base_env, check, eq, fresh_database,
                     get_json, migrate, pg_start, pg_stop, psql, redis_start, redis_stop, request,
                     require_services, wait_until)

GOOD_API_ENV = {
    "EDGEGATE_DATABASE_URL": "postgresql://u@127.0.0.1:1/db",
    "EDGEGATE_INTERNAL_TOKEN": "t" * 40,
    "EDGEGATE_PUBLIC_ORIGIN": "https://edge.example.com",
    "EDGEGATE_SESSION_SECRET": "s" * 40,
    "EDGEGATE_MFA_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
}


def run_daemon(name, env, *args):
    e = {k: v for k, v in os.environ.items() if not k.startswith("EDGEGATE_")}
    e.update(env)
    return subprocess.run([os.path.join(BIN, name), *args], env=e, capture_output=True, text=True,
                          timeout=20)


def test_api_config_missing_variables_named():
    r = run_daemon("api-server", {})
    eq(r.returncode, 2, "exit status")
    for var in ("EDGEGATE_DATABASE_URL", "EDGEGATE_INTERNAL_TOKEN", "EDGEGATE_PUBLIC_ORIGIN",
                "EDGEGATE_SESSION_SECRET", "EDGEGATE_MFA_KEY"):
        check(f"{var} is required" in r.stderr, f"{var} not named in:\n{r.stderr}")


def test_api_config_bad_values_named_without_echoing_secrets():
    cases = {
        "EDGEGATE_API_LISTEN": "nonsense",
        "EDGEGATE_SESSION_SECRET": "short-secret-value",
        "EDGEGATE_MFA_KEY": "bm90LTMyLWJ5dGVz",
        "EDGEGATE_PUBLIC_ORIGIN": "https://edge.example.com/path/",
        "EDGEGATE_REDIS_URL": "mysql://x",
        "EDGEGATE_DEV": "yes",
        "EDGEGATE_LOG_LEVEL": "loud",
        "EDGEGATE_INTERNAL_URL": "ftp://x",
    }
    for var, bad in cases.items():
        env = dict(GOOD_API_ENV)
        env[var] = bad
        r = run_daemon("api-server", env)
        eq(r.returncode, 2, f"exit status for bad {var}")
        check(f"{var}" in r.stderr and "invalid" in r.stderr, f"{var} not named:\n{r.stderr}")
        if var in ("EDGEGATE_SESSION_SECRET", "EDGEGATE_MFA_KEY"):
            check(bad not in r.stderr, f"the secret value of {var} was echoed")


def test_proxy_config_refuses_to_start_without_internal_token():
    r = run_daemon("remote-proxy", {})
    eq(r.returncode, 2)
    check("EDGEGATE_INTERNAL_TOKEN is required" in r.stderr, r.stderr)
    r = run_daemon("remote-proxy", {"EDGEGATE_INTERNAL_TOKEN": "t" * 40, "EDGEGATE_TLS_CERT": "/x.pem"})
    eq(r.returncode, 2)
    check("EDGEGATE_TLS_KEY" in r.stderr, r.stderr)


def test_help_lists_every_variable_with_its_default():
    r = run_daemon("api-server", {}, "--help")
    eq(r.returncode, 0)
    for line in ("EDGEGATE_API_LISTEN", "0.0.0.0:3721", "EDGEGATE_REDIS_URL", "redis://127.0.0.1:6379/0",
                 "EDGEGATE_DATABASE_URL", "(required)", "migrate"):
        check(line in r.stdout, f"{line} missing from api-server --help")
    r = run_daemon("remote-proxy", {}, "--help")
    eq(r.returncode, 0)
    for line in ("EDGEGATE_TUNNEL_LISTEN", "0.0.0.0:3800", "EDGEGATE_INTERNAL_LISTEN", "0.0.0.0:3801",
                 "EDGEGATE_TLS_CERT"):
        check(line in r.stdout, f"{line} missing from remote-proxy --help")


def test_migrations_apply_once_and_rerun_is_a_no_op():
    require_services()
    url = fresh_database()
    r = migrate(url)
    eq(r.returncode, 0, f"first migrate: {r.stderr}")
    check("applied 001_init.sql" in r.stdout, r.stdout)
    eq(psql_at(url, "SELECT count(*) FROM schema_migrations WHERE version = '001_init.sql'"), "1")
    r = migrate(url)
    eq(r.returncode, 0, r.stderr)
    check("0 applied" in r.stdout, r.stdout)
    eq(psql_at(url, "SELECT to_regclass('accounts') IS NOT NULL"), "t")


def psql_at(url, sql):
    return subprocess.run(["psql", url, "-qtAc", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_failing_migration_rolls_back_whole_and_names_the_file():
    require_services()
    url = fresh_database()
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "001_first.sql"), "w") as f:
            f.write("CREATE TABLE first_t (id int);\n")
        with open(os.path.join(d, "002_broken.sql"), "w") as f:
            f.write("CREATE TABLE second_t (id int);\nINSERT INTO second_t VALUES (1);\nSELEC oops;\n")
        with open(os.path.join(d, "README.txt"), "w") as f:
            f.write("not a migration\n")
        r = migrate(url, d)
        eq(r.returncode, 1, "a failing migration exits non-zero")
        check("002_broken.sql" in r.stderr, f"the failing file is named: {r.stderr}")
        eq(psql_at(url, "SELECT to_regclass('first_t') IS NOT NULL"), "t")
        eq(psql_at(url, "SELECT to_regclass('second_t') IS NULL"), "t", "half of 002 was left behind")
        eq(psql_at(url, "SELECT string_agg(version, ',') FROM schema_migrations"), "001_first.sql")
        with open(os.path.join(d, "002_broken.sql"), "w") as f:
            f.write("CREATE TABLE second_t (id int);\n")
        r = migrate(url, d)
        eq(r.returncode, 0, r.stderr)
        eq(psql_at(url, "SELECT count(*) FROM schema_migrations"), "2")


def test_concurrent_migrations_apply_each_file_once():
    require_services()
    url = fresh_database()
    results = []
    threads = [threading.Thread(target=lambda: results.append(migrate(url))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        eq(r.returncode, 0, r.stderr)
    eq(sum(r.stdout.count("applied 001_init.sql") for r in results), 1, "applied exactly once")


def test_probes_and_metrics_on_both_daemons():
    require_services()
    with ApiServer() as api, RemoteProxy() as proxy:
        eq(get_json(api.port, "/healthz"), (200, {"status": "ok"}))
        st, doc = get_json(api.port, "/readyz")
        eq((st, doc["postgres"], doc["redis"]), (200, "ok", "ok"))
        eq(get_json(proxy.internal_port, "/readyz")[0], 200)
        for port in (api.port, proxy.internal_port):
            st, doc = get_json(port, "/metrics")
            eq(st, 401, "metrics without the internal token")
            st, doc = get_json(port, "/metrics", {"Authorization": "Bearer wrong"})
            eq(st, 401, "metrics with a wrong token")
            st, hd, body = request("127.0.0.1", port, "GET", "/metrics",
                                   {"Authorization": f"Bearer {INTERNAL_TOKEN}"})
            eq(st, 200)
            check(hd["content-type"].startswith("text/plain"), hd["content-type"])
            check(b"edgegate_http_responses_total{" in body, body[:400])
            check(b"# TYPE edgegate_http_request_duration_seconds histogram" in body)
        check("event=http.access" in api.log_text(), "access log line")
        check(INTERNAL_TOKEN not in api.log_text(), "the internal token must never be logged")


def test_api_answers_503_while_postgres_is_down_and_recovers_without_restart():
    require_services()
    with ApiServer() as api:
        eq(get_json(api.port, "/readyz")[0], 200)
        pg_stop()
        try:
            t0 = time.time()
            st, doc = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(get_json(api.port, "/readyz")),
                                 timeout=10, what="503 while PostgreSQL is down")
            check(doc["postgres"] != "ok" and doc["redis"] == "ok", doc)
            check(time.time() - t0 < 6, "503 must come quickly, not after a long hang")
            eq(get_json(api.port, "/healthz")[0], 200, "liveness is independent of PostgreSQL")
        finally:
            pg_start()
        wait_until(lambda: get_json(api.port, "/readyz")[0] == 200, timeout=20,
                   what="recovery after PostgreSQL restart")


def test_both_daemons_answer_503_while_redis_is_down_and_recover():
    require_services()
    with ApiServer() as api, RemoteProxy() as proxy:
        redis_stop()
        try:
            for port in (api.port, proxy.internal_port):
                wait_until(lambda: get_json(port, "/readyz")[0] == 503, timeout=10,
                           what="503 while Redis is down")
        finally:
            redis_start()
        for port in (api.port, proxy.internal_port):
            wait_until(lambda: get_json(port, "/readyz")[0] == 200, timeout=20,
                       what="recovery after Redis restart")
