"""What the real-time WebSocket tests share.

Two kinds of client:
  - a raw socket (handshake(), read_frame(), send_frame()): to see exactly what the server
    sends (the echoed subprotocol, the close frame) and to behave in ways a library would not
    (never answer a ping, never read);
  - python3-websockets (Debian's, asyncio; connect(), recv_type(), close_of()): a client we did
    not write, for conversations.
"""
import asyncio
import base64
import json
import os
import socket
import struct
import urllib.parse

import websockets

from harness import check, eq, read_response


def handshake(port, path, headers=None, protocols=None, timeout=10):
    """Opens a WebSocket with a raw socket. Returns (sock, status, headers, leftover bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    h = {"Host": f"127.0.0.1:{port}", "Upgrade": "websocket", "Connection": "Upgrade",
         "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
         "Sec-WebSocket-Version": "13"}
    if protocols:
        h["Sec-WebSocket-Protocol"] = ", ".join(protocols)
    h.update(headers or {})
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in h.items()]
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    status, hd, _, rest = read_response(s, head_only=True)
    return s, status, hd, rest


def read_frame(sock, buf=b""):
    """One server frame: (fin, opcode, payload, leftover). ConnectionError at EOF."""
    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            buf += chunk
    need(2)
    fin, opcode = buf[0] & 0x80, buf[0] & 0x0F
    check(not buf[1] & 0x80, "a server frame must not be masked")
    n, at = buf[1] & 0x7F, 2
    if n == 126:
        need(4)
        n, at = struct.unpack(">H", buf[2:4])[0], 4
    elif n == 127:
        need(10)
        n, at = struct.unpack(">Q", buf[2:10])[0], 10
    need(at + n)
    return bool(fin), opcode, buf[at:at + n], buf[at + n:]


def send_frame(sock, opcode, payload=b"", fin=True):
    """A masked client frame."""
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def close_frame(sock, buf=b""):
    """Reads frames up to the close frame: (code, reason). Other frames are skipped."""
    while True:
        _, opcode, payload, buf = read_frame(sock, buf)
        if opcode == 8:
            code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
            return code, payload[2:].decode()


def credential_kwargs(token=None, how="protocol", cookie=None, origin=None):
    """headers / protocols / query for one way of presenting a credential."""
    headers, protocols, query = {}, None, ""
    if token is not None:
        if how == "protocol":
            protocols = ["bearer." + token]
        elif how == "header":
            headers["Authorization"] = f"Bearer {token}"
        elif how == "query":
            query = "?token=" + urllib.parse.quote(token, safe="")
        else:
            raise ValueError(how)
    if cookie:
        headers["Cookie"] = cookie
    if origin:
        headers["Origin"] = origin
    return headers, protocols, query


def refusal(port, path, **cred):
    """A handshake that the server must accept and then close: (status, echoed protocol,
    close code, close reason)."""
    headers, protocols, query = credential_kwargs(**cred)
    s, status, hd, rest = handshake(port, path + query, headers, protocols)
    with s:
        if status != 101:
            return status, hd.get("sec-websocket-protocol"), None, None
        code, reason = close_frame(s, rest)
        return status, hd.get("sec-websocket-protocol"), code, reason


# ---- python3-websockets (asyncio) ----

def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def connect(port, path, token=None, how="protocol", cookie=None, origin=None, **kw):
    headers, protocols, query = credential_kwargs(token, how, cookie, None)
    kw.setdefault("ping_interval", None)  # the server's pings are what is tested
    kw.setdefault("open_timeout", 20)
    return await websockets.connect(f"ws://127.0.0.1:{port}{path}{query}",
                                    subprotocols=protocols, extra_headers=headers, origin=origin,
                                    **kw)


async def recv_json(ws, timeout=10):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_type(ws, type_, timeout=10):
    """The next message of this type; others are skipped."""
    async def wait():
        while True:
            doc = json.loads(await ws.recv())
            if doc.get("type") == type_:
                return doc
    return await asyncio.wait_for(wait(), timeout)


async def nothing_for(ws, seconds):
    """Asserts that no message arrives for that long."""
    try:
        msg = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected message: {msg}")


async def close_of(ws, timeout=10):
    """Waits for the server's close: (code, reason). Messages before it are skipped."""
    async def drain():
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed:
            pass
    await asyncio.wait_for(drain(), timeout)
    return ws.close_code, ws.close_reason


async def ping_pong(ws, timeout=10):
    await ws.send(json.dumps({"type": "ping"}))
    eq(await recv_type(ws, "pong", timeout), {"type": "pong"}, "pong")
