"""What the OIDC tests need besides the daemons: the real OpenID provider (the `oidc-provider`
npm package run by test/oidc/provider.js under node) and a small browser (cookies per site,
redirects one at a time, HTML forms), both from the Python standard library.
"""
import html.parser
import http.client
import http.cookiejar
import json
import os
import secrets
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from harness import ROOT, WORK, TestFailure, check, free_port, wait_until

OIDC_DIR = os.path.join(ROOT, "test", "oidc")
DEMO_LOGIN, DEMO_PASSWORD = "demo", "demo-password-1"
DEMO_NAME, DEMO_EMAIL = "Demo User", "demo@example.org"


def npm_setup():
    """test/oidc/node_modules as package-lock.json says (npm ci when it is not)."""
    r = subprocess.run(["sh", os.path.join(OIDC_DIR, "setup.sh")], capture_output=True,
                       text=True, timeout=600)
    check(r.returncode == 0, f"test/oidc/setup.sh failed:\n{r.stderr[-3000:]}")


class Provider:
    """test/oidc/provider.js on a free port of localhost, HTTPS with tls=(cert, key)."""

    def __init__(self, clients, tls=None, ca=None, port=None, host="localhost"):
        self.port = port or free_port()
        scheme = "https" if tls else "http"
        self.issuer = f"{scheme}://{host}:{self.port}"
        self.ca = ca
        self.admin_token = secrets.token_urlsafe(16)
        self.config = {
            "issuer": self.issuer,
            "clients": clients,
            "users": [{"login": DEMO_LOGIN, "password": DEMO_PASSWORD, "name": DEMO_NAME,
                       "email": DEMO_EMAIL}],
            "admin_token": self.admin_token,
        }
        if tls:
            self.config["tls"] = {"cert": tls[0], "key": tls[1]}
        tag = secrets.token_hex(4)
        self.config_path = os.path.join(WORK, f"oidc-provider-{tag}.json")
        self.log_path = os.path.join(WORK, f"oidc-provider-{tag}.log")
        self.proc = None

    def start(self):
        with open(self.config_path, "w") as f:
            json.dump(self.config, f)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["node", os.path.join(OIDC_DIR, "provider.js"),
                                      self.config_path], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise TestFailure(f"oidc provider exited:\n{self.log_text()[-3000:]}")
            return "listening" in self.log_text()
        wait_until(up, timeout=30, what=f"the OpenID provider (log {self.log_path})")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def _admin(self, method, path):
        ctx = None
        if self.issuer.startswith("https"):
            ctx = ssl.create_default_context(cafile=self.ca)
            ctx.check_hostname = False  # also when a test gave it a certificate for another name
        req = urllib.request.Request(self.issuer + path, method=method, data=b"" if method == "POST" else None,
                                     headers={"Authorization": f"Bearer {self.admin_token}"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return json.loads(r.read())

    def rotate(self):
        return self._admin("POST", "/_test/rotate")["kids"]

    def tamper(self, mode):
        self._admin("POST", "/_test/tamper?mode=" + mode)

    def stats(self):
        return self._admin("GET", "/_test/stats")


class _Forms(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get"),
                               "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")


def forms(page):
    p = _Forms()
    p.feed(page)
    return p.forms


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Response:
    def __init__(self, url, status, headers, body):
        self.url, self.status, self.headers, self.body = url, status, headers, body

    @property
    def location(self):
        loc = self.headers.get("Location")
        return urllib.parse.urljoin(self.url, loc) if loc else None

    def json(self):
        return json.loads(self.body)

    def text(self):
        return self.body.decode("utf-8", "replace")


class Browser:
    """Keeps cookies per site (Path, Secure, expiry as a browser does), follows nothing on its
    own: each redirect is a step the test can look at."""

    def __init__(self, ca=None):
        self.jar = http.cookiejar.CookieJar()
        ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar),
                                                  urllib.request.HTTPSHandler(context=ctx),
                                                  _NoRedirect())

    def request(self, method, url, form=None, headers=None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with self.opener.open(req, timeout=20) as r:
                return Response(url, r.status, r.headers, r.read())
        except urllib.error.HTTPError as e:
            return Response(url, e.code, e.headers, e.read())

    def get(self, url, **kw):
        return self.request("GET", url, **kw)

    def follow(self, url, until=None, limit=20):
        """GETs url and each redirect after it; stops before requesting a URL for which
        until(url) is true (returning that URL as a str) or at the first non-redirect."""
        for _ in range(limit):
            if until and until(url):
                return url
            r = self.get(url)
            if r.status not in (301, 302, 303, 307, 308):
                return r
            url = r.location
        raise TestFailure(f"more than {limit} redirects, last {url}")

    def cookies(self, domain=None):
        return [c for c in self.jar if domain is None or c.domain == domain]

    def sign_in_at_provider(self, start, back_to, login=DEMO_LOGIN, password=DEMO_PASSWORD,
                            consent=True):
        """From the authorization URL through the provider's login and consent pages, until
        the provider sends the browser to a URL under back_to; returns that URL (not
        requested). Pages that are not ours to expect raise TestFailure with their text."""
        url = start
        for _ in range(8):
            step = self.follow(url, until=lambda u: u.startswith(back_to))
            if isinstance(step, str):
                return step
            fs = [f for f in forms(step.text()) if f["method"].lower() == "post"]
            check(step.status == 200 and fs, f"provider page {step.url} {step.status}: "
                  f"{step.text()[:500]}")
            fields = dict(fs[0]["fields"])
            if fields.get("prompt") == "login":
                fields.update(login=login, password=password)
            elif fields.get("prompt") == "consent" and not consent:
                raise TestFailure("consent asked for")
            r = self.request("POST", urllib.parse.urljoin(step.url, fs[0]["action"]), form=fields)
            if r.status not in (302, 303):
                return r
            url = r.location
        raise TestFailure("the provider never sent the browser back")
