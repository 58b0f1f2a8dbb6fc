"""What the device and heartbeat tests share: api-server and remote-proxy on one Redis database,
users who own devices, pairing through the real API, and a listener on `edgegate:events`.

Stack is test_accounts.Deployment (a fresh database with an admin, and api-server on Redis
database REDIS_DB, flushed) plus a remote-proxy on the same Redis database, so the credentials
api-server writes are the ones the proxy checks.
"""
import hashlib
import json
import os
import socket
import subprocess
import threading

from harness import (BIN, REDIS_PORT, REDIS_URL, RemoteProxy, base_env, check, eq, request,
                     wait_until)
from test_accounts import ADMIN, ADMIN_PW, REDIS_DB, Deployment, error_code, rcli

REDIS_DB_URL = REDIS_URL.rsplit("/", 1)[0] + "/" + REDIS_DB


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def cred_key(token):
    return "tunnel:cred:" + sha256(token)


class Stack(Deployment):
    """A fresh database, api-server and remote-proxy sharing one Redis database."""

    def __init__(self, env=None, proxy=True):
        super().__init__(env=env)
        self.proxy = RemoteProxy(env={"EDGEGATE_REDIS_URL": REDIS_DB_URL}) if proxy else None
        if self.proxy is not None:
            # api-server reaches the proxy through tunnel:route:*, or this when none is set.
            self.api.env["EDGEGATE_INTERNAL_URL"] = f"http://127.0.0.1:{self.proxy.internal_port}"

    def __enter__(self):
        if self.proxy is not None:
            self.proxy.start()
        try:
            super().__enter__()
        except BaseException:
            if self.proxy is not None:
                self.proxy.kill()
            raise
        return self

    def __exit__(self, *exc):
        try:
            super().__exit__(*exc)
        finally:
            if self.proxy is not None:
                self.proxy.__exit__(*exc)

    def user(self, login, password=None, mfa=False):
        """A plain (role user) account, signed in: (account id, bearer token). mfa: with TOTP
        bound and just verified, as revoking a device (a step-up route) needs."""
        password = password or login + "-password"
        self.add_plain_user(login, password)
        account = int(self.sql(f"SELECT id FROM accounts WHERE login = '{login}'"))
        if mfa:
            return account, self.mfa_token(login, password)
        return account, self.token(login, password)

    def pairing_code(self, token):
        st, doc, _ = self.call("POST", "/api/devices/pairing", token=token)
        eq(st, 201, f"pairing code: {doc}")
        return doc["code"]

    def exchange(self, code, name="camera"):
        return self.call("POST", "/api/pairing/exchange", body={"code": code, "device_name": name})

    def pair(self, token, name="camera"):
        """A device paired through the API: (device id, device token)."""
        st, doc, _ = self.exchange(self.pairing_code(token), name)
        eq(st, 200, f"exchange: {doc}")
        return doc["device_id"], doc["token"]

    def sync_credentials(self):
        env = {k: v for k, v in base_env().items() if not k.startswith("EDGEGATE_")}
        env.update({"EDGEGATE_DATABASE_URL": self.url, "EDGEGATE_REDIS_URL": REDIS_DB_URL})
        return subprocess.run([os.path.join(BIN, "api-server"), "sync-credentials"], env=env,
                              capture_output=True, text=True, timeout=60)


def cred_keys():
    out = rcli("--scan", "--pattern", "tunnel:cred:*")
    return sorted(out.split()) if out else []


def tunnel_status(proxy, token):
    """The status remote-proxy answers to a tunnel upgrade with this credential (101 or 401)."""
    st, _, _ = request("127.0.0.1", proxy.tunnel_port, "GET", "/tunnel", {
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Protocol": f"bearer.{token}"})
    return st


class Events:
    """Subscribed to edgegate:events on the test Redis (pub/sub ignores the database number)."""

    def __init__(self):
        self.sock = socket.create_connection(("127.0.0.1", int(REDIS_PORT)), timeout=None)
        self.file = self.sock.makefile("rb")
        self.messages = []
        self.lock = threading.Lock()
        self.sock.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$15\r\nedgegate:events\r\n")
        eq(self._read()[0], b"subscribe", "subscription confirmed")
        threading.Thread(target=self._loop, daemon=True).start()

    def _read(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("redis closed the subscription")
        kind, rest = line[:1], line[1:-2]
        if kind == b"*":
            return [self._read() for _ in range(int(rest))]
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2]
        if kind == b":":
            return int(rest)
        return rest

    def _loop(self):
        try:
            while True:
                msg = self._read()
                if msg[0] == b"message":
                    with self.lock:
                        self.messages.append(json.loads(msg[2]))
        except (OSError, ValueError):
            pass

    def wait(self, type_, device_id, timeout=5):
        def find():
            with self.lock:
                return next((m for m in self.messages
                             if m.get("type") == type_ and m.get("device_id") == device_id), None)
        return wait_until(find, timeout=timeout, what=f"event {type_} for {device_id}")

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

