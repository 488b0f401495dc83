"""A headless Chromium driven over the DevTools protocol on a pipe, with
Python's standard library only: the status page's test (ui_test.py) and
benchmark (bench/ui/first_render.py) load the page in a real browser.

The protocol runs over two pipes (--remote-debugging-pipe: the browser
reads commands on its fd 3 and writes answers and events on its fd 4,
each message JSON ended by a NUL byte), not over a TCP port: nothing
listens, and no other local process can drive the browser. The admin
token reaches the page by typing it into the page's field through the
protocol, never on a command line (ps would show it).

Chromium runs as root here (tests, CI); as root it refuses to start with
its sandbox, which needs an unprivileged user namespace or a setuid
helper, so root gets --no-sandbox. It only ever loads the daemon's own
page from 127.0.0.1 (or the test's canned copy of it), and background
networking, component updates and sync are turned off, so it talks to
nothing else.
"""
import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time


class BrowserError(Exception):
    pass


def find():
    """The chromium binary, or None (Debian package `chromium`)."""
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    return None


class Chromium:
    def __init__(self, width=1280, height=1000, logpath=None):
        binary = find()
        if not binary:
            raise BrowserError("chromium is not installed (scripts/setup.sh installs it)")
        self.profile = tempfile.mkdtemp(prefix="va-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()

        def child_fds():
            # fds 3 and 4 of the browser; dup above 10 first so that a
            # pipe that already is 3 or 4 is not closed by the dup2
            a = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(res_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [binary, "--headless", "--remote-debugging-pipe",
                "--user-data-dir=" + self.profile, "--no-first-run",
                "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--disable-gpu", "--hide-scrollbars",
                "--mute-audio", "--window-size=%d,%d" % (width, height)]
        if os.geteuid() == 0:
            args.append("--no-sandbox")
        args.append("about:blank")
        self.log = open(logpath or os.devnull, "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, preexec_fn=child_fds,
                                     close_fds=False)
        os.close(cmd_r)
        os.close(res_w)
        self._next = 0
        self._answers = {}
        self.events = []
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session = None
        self.width, self.height = width, height

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._res_r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                m = json.loads(msg)
                with self._cond:
                    if "id" in m:
                        self._answers[m["id"]] = m
                    else:
                        self.events.append(m)
                    self._cond.notify_all()

    def send(self, method, params=None, session=True, timeout=30):
        """One command; its result (a dict), or BrowserError."""
        with self._cond:
            self._next += 1
            mid = self._next
        msg = {"id": mid, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        t0 = time.time()
        with self._cond:
            while mid not in self._answers:
                if self._closed:
                    raise BrowserError("chromium exited (%s) during %s"
                                       % (self.proc.poll(), method))
                left = timeout - (time.time() - t0)
                if left <= 0:
                    raise BrowserError("no answer to %s within %d s" % (method, timeout))
                self._cond.wait(left)
            m = self._answers.pop(mid)
        if "error" in m:
            raise BrowserError("%s: %s" % (method, m["error"]))
        return m.get("result", {})

    def open_page(self):
        """A new tab, attached; Page, Runtime and Log events on."""
        t = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        a = self.send("Target.attachToTarget", {"targetId": t["targetId"], "flatten": True},
                      session=False)
        self.session = a["sessionId"]
        for dom in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.send(dom)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1,
                   "mobile": False})
        # CSP violations, as the page sees them (the protocol's own
        # scripts are not subject to the page's policy)
        self.send("Page.addScriptToEvaluateOnNewDocument", {"source": """
            window.__cspViolations = [];
            document.addEventListener('securitypolicyviolation', function (e) {
              window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
            });"""})

    def navigate(self, url, timeout=30):
        with self._cond:
            n = len(self.events)
        r = self.send("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise BrowserError("navigate %s: %s" % (url, r["errorText"]))
        self.wait_event("Page.loadEventFired", timeout, since=n)

    def reload(self, timeout=30):
        with self._cond:
            n = len(self.events)
        self.send("Page.reload", {"ignoreCache": True})
        self.wait_event("Page.loadEventFired", timeout, since=n)

    def wait_event(self, method, timeout, since=0):
        t0 = time.time()
        with self._cond:
            while True:
                for e in self.events[since:]:
                    if e.get("method") == method:
                        return e
                left = timeout - (time.time() - t0)
                if left <= 0 or self._closed:
                    raise BrowserError("no %s within %d s" % (method, timeout))
                self._cond.wait(left)

    def eval(self, expr, timeout=30):
        """The value of a JavaScript expression (awaited if a promise)."""
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in r:
            raise BrowserError("evaluating %r: %s" % (expr[:80], r["exceptionDetails"]))
        return r.get("result", {}).get("value")

    def wait_js(self, expr, timeout, what=None):
        """Poll until expr is truthy; its value."""
        t0 = time.time()
        while True:
            v = self.eval(expr)
            if v:
                return v
            if time.time() - t0 > timeout:
                raise BrowserError("timed out after %d s waiting for %s"
                                   % (timeout, what or expr))
            time.sleep(0.1)

    def screenshot(self, path):
        r = self.send("Page.captureScreenshot", {"format": "png",
                                                 "captureBeyondViewport": True})
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))
        return path

    def problems(self):
        """JavaScript exceptions and security (CSP) messages so far."""
        out = []
        with self._cond:
            events = list(self.events)
        for e in events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: %s %s" % (d.get("text"),
                                                 d.get("exception", {}).get("description")))
            elif e.get("method") == "Log.entryAdded":
                en = p.get("entry", {})
                if en.get("source") in ("security", "violation", "javascript"):
                    out.append("%s: %s" % (en.get("source"), en.get("text")))
        return out

    def close(self):
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close", session=False, timeout=5)
                except BrowserError:
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            os.close(self._cmd_w)
            self._reader.join(timeout=5)
            os.close(self._res_r)
            self.log.close()
            shutil.rmtree(self.profile, ignore_errors=True)
