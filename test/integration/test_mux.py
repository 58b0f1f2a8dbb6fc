"""remote-proxy's GET /internal/mux as an api-server uses it, spoken here by a small yamux client
written from the spec (hashicorp/yamux spec.md): the upgrade's credentials, and streams that
each carry one forward/raw exchange. Real remote-proxy, real agent (Go, hashicorp/yamux)."""
import json
import socket
import struct

from harness import (INTERNAL_TOKEN, RemoteProxy, build_request, check, eq, read_response,
                     require_services)
from tunnel_kit import GoAgent, HttpTarget, new_device, wait_connected

DATA, WINDOW_UPDATE, PING, GO_AWAY = 0, 1, 2, 3
SYN, ACK, FIN, RST = 1, 2, 4, 8


class MuxClient:
    """One channel: the upgrade, then yamux frames over the socket (we open odd stream ids)."""

    def __init__(self, proxy, token=INTERNAL_TOKEN):
        self.s = socket.create_connection(("127.0.0.1", proxy.internal_port), timeout=20)
        headers = {"Connection": "Upgrade", "Upgrade": "edgegate-mux"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self.s.sendall(build_request("GET", "/internal/mux", headers))
        self.status, self.headers, self.body, self.buf = read_response(self.s, head_only=True)
        self.next_id = 1
        self.streams = {}  # id -> {"data": bytes, "fin": bool, "rst": bool}

    def frame(self, ftype, flags, sid, payload=b"", length=None):
        n = len(payload) if length is None else length
        self.s.sendall(struct.pack(">BBHII", 0, ftype, flags, sid, n) + payload)

    def open(self, first=b""):
        sid = self.next_id
        self.next_id += 2
        self.streams[sid] = {"data": b"", "fin": False, "rst": False}
        self.frame(WINDOW_UPDATE, SYN, sid, length=0)
        if first:
            self.frame(DATA, 0, sid, first)
        return sid

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("the channel closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def pump(self):
        """Reads one frame and applies it; answers pings; returns (type, flags, sid)."""
        ver, ftype, flags, sid, length = struct.unpack(">BBHII", self._read(12))
        eq(ver, 0, "yamux version")
        st = self.streams.get(sid)
        if ftype == DATA:
            payload = self._read(length)
            if st is not None:
                st["data"] += payload
                self.frame(WINDOW_UPDATE, 0, sid, length=len(payload))
        elif ftype == PING and not flags & ACK:
            self.frame(PING, ACK, 0, length=length)
        if st is not None:
            st["fin"] |= bool(flags & FIN)
            st["rst"] |= bool(flags & RST)
        return ftype, flags, sid

    def until(self, sid, pred):
        while not pred(self.streams[sid]):
            self.pump()
        return self.streams[sid]

    def close(self):
        self.s.close()


def stream_head(device_id, extra=b""):
    return (b"POST /internal/forward/raw HTTP/1.1\r\nHost: remote-proxy\r\n"
            b"X-Device-Id: " + device_id.encode() + b"\r\nX-Request-Id: t-1\r\n"
            b"Upgrade: edgegate-stream\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n" + extra)


def parse(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    hd = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return int(lines[0].split()[1]), hd, body


def test_mux_upgrade_needs_the_internal_token():
    require_services()
    with RemoteProxy() as proxy:
        for token in (None, "wrong-token"):
            m = MuxClient(proxy, token)
            eq(m.status, 401, f"/internal/mux with token {token!r}")
            m.close()
        m = MuxClient(proxy)
        eq((m.status, m.headers.get("upgrade")), (101, "edgegate-mux"))
        m.close()


def test_malformed_stream_head_is_400_and_the_channel_lives_on():
    require_services()
    dev, token = new_device()
    with RemoteProxy() as proxy, HttpTarget() as target, GoAgent(proxy, token, target.addr):
        wait_connected(proxy, dev)
        m = MuxClient(proxy)
        eq(m.status, 101)
        bad = m.open(b"POST /internal/forward/raw HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        st = m.until(bad, lambda s: s["fin"] or s["rst"])
        status, hd, body = parse(st["data"])
        eq(status, 400, "a malformed head")
        eq(int(hd["content-length"]), len(body))
        check("error" in json.loads(body), body)
        # An unknown device: forward/raw's JSON error, with its length.
        # Bytes behind a refused head are dropped, never read as another head.
        request = b"GET /hello HTTP/1.1\r\nHost: d\r\n\r\n"
        gone = m.open(stream_head("dev-nobody", request))
        m.frame(DATA, 0, gone, request)
        status, hd, body = parse(m.until(gone, lambda s: s["fin"])["data"])
        eq((status, json.loads(body)["error"]["code"]), (502, "TUNNEL_DISCONNECTED"))
        eq(int(hd["content-length"]), len(body), "one answer, nothing after it")
        # The same channel still carries exchanges: the device's request right behind the head,
        # without waiting for the 101.
        ok = m.open(stream_head(dev, b"GET /hello HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"))
        data = m.until(ok, lambda s: s["fin"])["data"]
        check(data.startswith(b"HTTP/1.1 101 "), data[:80])
        device = data.split(b"\r\n\r\n", 1)[1]
        status, _, body = parse(device)
        eq((status, body), (200, b"hello, world\n"))
        m.frame(WINDOW_UPDATE, FIN, ok)
        m.close()
