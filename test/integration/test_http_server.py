"""common/http_server.c over real sockets, through bin/test/http_test_server (routes in
test/support/http_test_server.c). Limits in that server: 16 KiB head, 1 MiB body (/small: 1 KiB),
2 s head and body timeouts."""
import json
import os
import selectors
import signal
import socket
import subprocess
import time

from harness import BIN, VALGRIND, WORK, TestFailure, build_request, check, eq, free_port, read_response, wait_until


class TestServer:
    def __init__(self, grace_ms=5000, idle_ms=5000):
        self.port = free_port()
        self.log_path = os.path.join(WORK, f"http-test-server-{self.port}.log")
        self.log = open(self.log_path, "wb")
        argv = [os.path.join(BIN, "test", "http_test_server"), str(self.port), str(grace_ms),
                str(idle_ms)]
        if VALGRIND:
            argv = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
                    "--errors-for-leak-kinds=definite"] + argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode()
        check(line.startswith("listening"), f"test server did not start: {line!r}")

    def connect(self, timeout=10):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=20)
        self.log.close()
        eq(rc, 0, "test server exit status after SIGTERM")

    def __enter__(self):
        return self

    def __exit__(self, t, e, tb):
        if t is None:
            self.stop()
        else:
            self.proc.kill()
            self.proc.wait()
            self.log.close()


def exchange(sock, method, path, headers=None, body=b""):
    sock.sendall(build_request(method, path, headers, body))
    st, hd, bd, rest = read_response(sock)
    check(rest == b"", f"unexpected bytes after the response: {rest[:80]!r}")
    return st, hd, bd


def test_keep_alive_serves_many_requests_on_one_connection():
    with TestServer() as srv, srv.connect() as s:
        for _ in range(50):
            st, hd, bd = exchange(s, "GET", "/hello")
            eq(st, 200)
            eq(bd, b"hello world\n")
            check("connection" not in hd, "HTTP/1.1 keep-alive must not say Connection: close")


def test_thousand_concurrent_keep_alive_connections():
    with TestServer() as srv:
        socks = [srv.connect() for _ in range(1000)]
        try:
            for round_ in range(2):  # the second round proves the connections were kept
                for s in socks:
                    s.sendall(build_request("GET", "/hello"))
                for s in socks:
                    st, _, bd, _ = read_response(s)
                    eq(st, 200, f"round {round_}")
                    eq(bd, b"hello world\n")
            s0 = srv.connect()
            st, _, stats = exchange(s0, "GET", "/stats")
            s0.close()
            check(json.loads(stats)["connections"] >= 1001, f"server saw {stats}")
        finally:
            for s in socks:
                s.close()


def test_hundred_pipelined_requests_answered_in_order():
    with TestServer() as srv, srv.connect() as s:
        paths = [f"/params/{i}/files/f{i}" for i in range(100)]
        s.sendall(b"".join(build_request("GET", p) for p in paths))
        buf = b""
        for i in range(100):
            st, _, bd, buf = read_response(s, buf)
            eq(st, 200)
            eq(json.loads(bd), {"id": str(i), "rest": f"f{i}"}, f"response {i}")


def test_pipelined_async_responses_stay_in_order():
    # The first request is answered late by a timer; the second is instant. Order must hold.
    with TestServer() as srv, srv.connect() as s:
        s.sendall(build_request("GET", "/delay?ms=200") + build_request("GET", "/hello"))
        st, _, bd, buf = read_response(s)
        eq((st, bd), (200, b"done\n"))
        st, _, bd, _ = read_response(s, buf)
        eq((st, bd), (200, b"hello world\n"))


def test_oversize_head_is_431():
    with TestServer() as srv, srv.connect() as s:
        s.sendall(build_request("GET", "/hello", {"X-Big": "a" * 17000}))
        st, hd, _, _ = read_response(s)
        eq(st, 431)
        eq(hd.get("connection"), "close")


def test_too_many_headers_is_431():
    with TestServer() as srv, srv.connect() as s:
        s.sendall(build_request("GET", "/hello", {f"X-H{i}": "v" for i in range(100)}))
        eq(read_response(s)[0], 431)


def test_oversize_body_is_413_before_it_is_read():
    with TestServer() as srv, srv.connect() as s:
        # Only the head is sent: the answer must not wait for 2 MiB that never come.
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2097152\r\n\r\n")
        st, hd, bd, _ = read_response(s)
        eq(st, 413)
        eq(json.loads(bd)["error"]["code"], "PAYLOAD_TOO_LARGE")


def test_chunked_body_over_route_limit_is_413():
    with TestServer() as srv, srv.connect() as s:
        chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
        s.sendall(b"POST /small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2)
        eq(read_response(s)[0], 413)


def test_body_of_one_mebibyte_is_echoed_binary_safe():
    body = os.urandom(1024 * 1024)
    with TestServer() as srv, srv.connect() as s:
        st, _, bd = exchange(s, "POST", "/echo", body=body)
        eq(st, 200)
        check(bd == body, "echoed body differs")


def test_chunked_request_body():
    with TestServer() as srv, srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        st, _, bd, _ = read_response(s)
        eq((st, bd), (200, b"hello world"))


def test_expect_100_continue():
    with TestServer() as srv, srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        st, _, _, buf = read_response(s)
        eq(st, 100)
        s.sendall(b"hello")
        st, _, bd, _ = read_response(s, buf)
        eq((st, bd), (200, b"hello"))


def test_expect_100_continue_refused_when_too_large():
    with TestServer() as srv, srv.connect() as s:
        s.sendall(b"POST /small HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        eq(read_response(s)[0], 413)


def test_slowloris_head_gets_408_within_the_limit():
    with TestServer() as srv, srv.connect(timeout=10) as s:
        t0 = time.time()
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n")
        for _ in range(10):  # a header line every 0.3 s never completes the head
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
            time.sleep(0.3)
        st, _, _, _ = read_response(s)
        elapsed = time.time() - t0
        eq(st, 408)
        check(1.8 <= elapsed <= 4.0, f"408 after {elapsed:.1f}s; the head limit is 2 s")


def test_slow_body_gets_408():
    with TestServer() as srv, srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        eq(read_response(s)[0], 408)


def test_idle_keep_alive_connection_is_closed():
    with TestServer(idle_ms=500) as srv, srv.connect() as s:
        eq(exchange(s, "GET", "/hello")[0], 200)
        s.settimeout(5)
        t0 = time.time()
        eq(s.recv(1), b"", "idle connection should be closed by the server")
        check(time.time() - t0 < 2, "closed late")


def test_garbage_bytes_get_400_and_close():
    with TestServer() as srv:
        for garbage in (b"\x00\x01\x02\x03garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                        b"GET /hello HTTP/1.1\r\nBad Header\r\n\r\n",
                        b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"):
            with srv.connect() as s:
                s.sendall(garbage)
                st, hd, _, _ = read_response(s)
                check(st in (400, 505), f"{garbage!r} answered {st}")
                eq(hd.get("connection"), "close")
                eq(s.recv(100), b"", "connection must close after 400")


def test_not_found_and_method_not_allowed_with_allow():
    with TestServer() as srv, srv.connect() as s:
        st, _, bd = exchange(s, "GET", "/nope")
        eq(st, 404)
        eq(json.loads(bd)["error"]["code"], "NOT_FOUND")
        st, hd, _ = exchange(s, "DELETE", "/hello")  # still on the same connection
        eq(st, 405)
        eq(hd.get("allow"), "GET")


def test_path_parameters_and_rest():
    with TestServer() as srv, srv.connect() as s:
        st, _, bd = exchange(s, "GET", "/params/dev-1/files/a/b/c.txt?x=1")
        eq(json.loads(bd), {"id": "dev-1", "rest": "a/b/c.txt"})
        st, _, bd = exchange(s, "GET", "/params/dev-1/files")
        eq(json.loads(bd), {"id": "dev-1", "rest": ""})
        eq(exchange(s, "GET", "/params//files/x")[0], 404)


def test_streamed_response_arrives_before_it_ends():
    with TestServer() as srv, srv.connect() as s:
        s.sendall(build_request("GET", "/stream?n=3&ms=300"))
        t0 = time.time()
        data = b""
        while b"chunk 3" not in data:
            data += s.recv(4096)
        check(time.time() - t0 < 0.8, "the first event must not wait for the end of the stream")
        check(b"transfer-encoding: chunked" in data.lower(), "streamed without Content-Length: chunked")
        while not data.endswith(b"0\r\n\r\n"):
            data += s.recv(4096)
        check(b"chunk 1" in data)


def test_client_disconnecting_during_async_handler_is_safe():
    with TestServer() as srv:
        for _ in range(20):
            s = srv.connect()
            s.sendall(build_request("GET", "/delay?ms=150"))
            s.close()
        s = srv.connect()
        s.sendall(build_request("GET", "/stream?n=50&ms=10"))
        s.recv(10)
        s.close()
        time.sleep(0.8)  # let every timer fire and answer its vanished client
        with srv.connect() as s2:
            st, _, bd = exchange(s2, "GET", "/stats")
            eq(st, 200)
            check(json.loads(bd)["aborted"] >= 21, f"abort callbacks: {bd}")


def test_graceful_shutdown_finishes_in_flight_request():
    with TestServer() as srv:
        s = srv.connect()
        s.sendall(build_request("GET", "/delay?ms=700"))
        time.sleep(0.2)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        try:
            refused = socket.create_connection(("127.0.0.1", srv.port), timeout=1)
            refused.close()
            raise TestFailure("new connections must be refused while shutting down")
        except ConnectionRefusedError:
            pass
        st, hd, bd, _ = read_response(s)
        eq((st, bd), (200, b"done\n"))
        eq(hd.get("connection"), "close")
        eq(srv.proc.wait(timeout=10), 0, "exit status")
        srv.log.close()
        srv.proc.returncode = 0
        srv.stop = lambda: None


def test_graceful_shutdown_forces_close_after_grace():
    with TestServer(grace_ms=300) as srv:
        s = srv.connect()
        s.sendall(build_request("GET", "/delay?ms=5000"))
        time.sleep(0.1)
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        eq(srv.proc.wait(timeout=10), 0, "exit status")
        check(time.time() - t0 < 2, "shutdown must not wait past the grace period")
        srv.log.close()
        srv.stop = lambda: None
