#!/usr/bin/env python3
"""The HTTP server under attack (issue #12, "hold under attack"), on the real
daemon.

The daemon runs on libvirt's test driver (test:///WORK/node.xml: four
running domains carrying our metadata, adopted at start as ready instances)
with SQLite and log_level debug; no libvirtd, no guest. The test writes a
secret's hash for each instance into the store, as provisioning would, and
then attacks the daemon on loopback. Every source address is one of
127.0.0.0/8 (Linux routes all of it to lo), so one check's attacker cannot
spill into the next one's; the guests of a check share their attacker's
address, as every guest does under QEMU user networking (127.0.0.1).

Checks, each printing what it measured (and each failed on the code before
issue #12, commit 6ae7aa8):
  canonical   //v1/checkin/ID/SECRET is 404, not routed and authenticated
  framing     a check-in with two different Content-Length headers is 400
  malformed   an id that is not a lowercase UUID is 401 (was 503 "state
              store unavailable"), and 2000 of them write a handful of
              warnings, not one each
  auth-guest  12 bad check-ins of one instance from an address refuse that
              instance only: another guest's heartbeat and check-in and the
              operator's status from the same address are served
  auth-admin  12 bad admin tokens from an address refuse the admin API of
              that address only, not its guests
  events      refused check-ins are events (kind checkin_refused, with the
              instance's group), a bounded number of them
  cycling     300 addresses taking turns at bad admin tokens, 11 rounds: all
              are limited (the old 256-slot table forgot each before its turn)
  removed     the secret of an instance removed by a scale-in is refused
  slowloris   300 connections from one address sending a header line every
              2 s, at the admin API and then at the guest endpoints: the
              guests' heartbeats and check-ins and the operator's status
              from that address are still served; one slow request alone is
              closed at the request deadline (10 s) although it keeps
              sending
  tls         a TLS key readable by others is refused at start; TLS 1.0/1.1
              handshakes are refused, TLS 1.2 works
  no-secret   no secret appears anywhere in the daemon's log (debug level)
Suite 'integration', about a minute.

usage: attack_test.py VIRT_AUTOSCALER
"""
import hashlib
import http.client
import json
import os
import secrets
import select
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import uuid
import warnings

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "web"
SIZE = 4
RESULTS = []


def config(path, port, state, node, size, tls=None):
    with open(path, "w") as f:
        f.write("""version: 1
daemon:
  interval: 1s
  listen: 127.0.0.1:%d
  state: sqlite://%s
  admin_token: { file: admin.token }
  log_level: debug
%shosts:
  - { name: test, uri: "test://%s", pool: default-pool }
groups:
  %s:
    min: %d
    max: %d
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
    scale_in: { drain: 0s }
""" % (port, state, ("  tls: { cert: %s, key: %s }\n" % tls) if tls else "",
       node, GROUP, size, size))


class Client:
    """Requests from a chosen source address (127.0.0.0/8)."""

    def __init__(self, port, token, scheme="http"):
        self.port = port
        self.token = token
        self.scheme = scheme

    def req(self, method, path, src="127.0.0.1", body=None, admin=None,
            timeout=5):
        """(status or None, body text, seconds)"""
        t0 = time.time()
        if self.scheme == "https":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                            source_address=(src, 0), context=ctx)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                           source_address=(src, 0))
        headers = {}
        if admin is not None:
            headers["Authorization"] = "Bearer " + admin
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            return r.status, r.read().decode(errors="replace"), time.time() - t0
        except (OSError, http.client.HTTPException) as e:
            return None, str(e), time.time() - t0
        finally:
            c.close()

    def checkin(self, iid, secret, src="127.0.0.1", timeout=5):
        return self.req("POST", "/v1/checkin/%s/%s" % (iid, secret), src,
                        body="instance_id=%s&hostname=h" % iid, timeout=timeout)

    def heartbeat(self, iid, secret, src="127.0.0.1", timeout=5):
        return self.req("POST", "/v1/heartbeat/%s/%s" % (iid, secret), src,
                        body='{"busy": false}', timeout=timeout)

    def admin(self, path, src="127.0.0.1", token=None, timeout=5):
        return self.req("GET", path, src, admin=self.token if token is None else token,
                        timeout=timeout)


def raw(port, src, text, timeout=5):
    """Send text on a new connection; the status line's code or None."""
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(text.encode())
        data = s.recv(4096).decode(errors="replace")
        return int(data.split()[1]) if data.startswith("HTTP/") else None
    except (OSError, ValueError, IndexError):
        return None
    finally:
        s.close()


def check(name, ok, measured):
    RESULTS.append((name, ok, measured))
    log("%s %s: %s" % ("PASS" if ok else "FAIL", name, measured))


def warn_lines(logpath, since):
    with open(logpath, errors="replace") as f:
        f.seek(since)
        return sum(1 for line in f if " warn " in line)


class Slowloris:
    """n connections from src, each a request line and a header line every
    `every` seconds, never finished; a connection the server closes is
    opened again at the next round (as slowloris does)."""

    def __init__(self, port, src, first, n=300, every=2.0):
        self.port, self.src, self.first, self.n, self.every = port, src, first, n, every
        self.socks = []
        self.stop = threading.Event()
        self.opened = self.closed = 0
        self.alive_max = 0
        self.t = threading.Thread(target=self.run, daemon=True)

    def open_one(self):
        s = socket.socket()
        s.settimeout(1)
        try:
            s.bind((self.src, 0))
            s.connect(("127.0.0.1", self.port))
            s.sendall(self.first.encode())
            s.setblocking(False)
            self.opened += 1
            return s
        except OSError:
            s.close()
            return None

    @staticmethod
    def is_closed(s):
        try:
            return s.recv(4096, socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def run(self):
        while not self.stop.is_set():
            keep = []
            for s in self.socks:
                if self.is_closed(s):
                    self.closed += 1
                    s.close()
                    continue
                try:
                    s.send(b"X-Slow: %d\r\n" % len(keep))
                    keep.append(s)
                except OSError:
                    self.closed += 1
                    s.close()
            while len(keep) < self.n and not self.stop.is_set():
                s = self.open_one()
                if s is None:
                    break
                keep.append(s)
            self.socks = keep
            # the server's view: connections it has not closed yet
            time.sleep(0.05)
            self.alive_max = max(self.alive_max,
                                 sum(1 for s in self.socks if not self.is_closed(s)))
            self.stop.wait(self.every)

    def start(self):
        self.t.start()

    def finish(self):
        self.stop.set()
        self.t.join()
        for s in self.socks:
            s.close()


def lone_slow_request(port, src, first, limit, out):
    """One slow request sending a header line every 2 s: when the server
    closes it (seconds), or None within limit."""
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    t0 = time.time()
    s.sendall(first.encode())
    out["closed_after"] = None
    next_send = t0 + 2
    while time.time() - t0 < limit:
        r, _, _ = select.select([s], [], [], 0.1)
        if r:
            try:
                if s.recv(4096) == b"":
                    out["closed_after"] = time.time() - t0
                    break
            except OSError:
                out["closed_after"] = time.time() - t0
                break
        if time.time() >= next_send:
            try:
                s.send(b"X-Slow: 1\r\n")
            except OSError:
                out["closed_after"] = time.time() - t0
                break
            next_send += 2
    s.close()


def victims(cl, src, hb, ci, seconds):
    """A guest's heartbeat, another's check-in and the operator's status
    from src every 0.25 s: (served, tried, worst latency) of each."""
    stats = {k: [0, 0, 0.0] for k in ("heartbeat", "checkin", "status")}
    t0 = time.time()
    while time.time() - t0 < seconds:
        for k, (st, _, dt) in (("heartbeat", cl.heartbeat(hb[0], hb[1], src, timeout=3)),
                               ("checkin", cl.checkin(ci[0], ci[1], src, timeout=3)),
                               ("status", cl.admin("/v1/groups", src, timeout=3))):
            stats[k][1] += 1
            stats[k][0] += st == 200
            stats[k][2] = max(stats[k][2], dt)
        time.sleep(0.25)
    return stats


def slowloris(cl, port, src, hb, ci):
    """Both directions; True when each path stayed served."""
    ok = True
    lone = {}
    lt = threading.Thread(target=lone_slow_request, daemon=True,
                          args=(port, "127.0.0.21",
                                "POST /v1/heartbeat/%s/x HTTP/1.1\r\nHost: x\r\n" % hb[0],
                                13, lone))
    lt.start()
    for target, first in (
            ("admin API", "GET /v1/groups HTTP/1.1\r\nHost: x\r\n"),
            ("guest endpoints", "POST /v1/heartbeat/%s/%s HTTP/1.1\r\nHost: x\r\n"
             % (hb[0], "x" * 43))):
        a = Slowloris(port, src, first)
        a.start()
        time.sleep(1.5)
        st = victims(cl, src, hb, ci, 10)
        a.finish()
        served = all(v[0] >= 0.8 * v[1] for v in st.values())
        ok = ok and served
        check("slowloris at the %s" % target, served,
              "300 slow connections from %s (%d opened, %d closed by the daemon, "
              "at most %d open at once); from the same address %s"
              % (src, a.opened, a.closed, a.alive_max,
                 ", ".join("%s %d/%d served (worst %.2f s)" % (k, v[0], v[1], v[2])
                           for k, v in st.items())))
    lt.join()
    after = lone.get("closed_after")
    check("request deadline", after is not None and 9 <= after <= 11.5,
          "one request sending a header line every 2 s was closed after %s"
          % ("%.1f s" % after if after is not None else "more than 13 s (never)"))
    return ok


def tls_probe(port, lo, hi):
    """Whether a TLS handshake with versions lo..hi succeeds."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0 and 1.1
    ctx.minimum_version = lo
    ctx.maximum_version = hi
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s) as t:
                return t.version()
    except (OSError, ssl.SSLError):
        return None


def tls_checks(binary, work, cfg, port, state, node, token):
    subprocess.run("cd %s && printf 'cn = localhost\\nexpiration_days = 2\\ntls_www_server\\n' > tmpl"
                   " && certtool --generate-privkey --key-type=ecdsa --outfile key.pem 2>/dev/null"
                   " && certtool --generate-self-signed --load-privkey key.pem --template tmpl"
                   " --outfile cert.pem >/dev/null 2>&1" % work, shell=True, check=True)
    key = os.path.join(work, "key.pem")
    os.chmod(key, 0o644)
    config(cfg, port, state, node, SIZE - 1, tls=(os.path.join(work, "cert.pem"), key))
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon-tls.log"))
    d.start()
    rc = d.wait_exit(10)
    said = [line for line in d.tail(20).splitlines() if "0644" in line]
    check("tls key mode", rc not in (None, 0) and said,
          "a key of mode 0644: %s" % (
              "the daemon refused to start: " + said[-1].split(" ", 1)[-1] if said
              else "the daemon exited (%s)" % rc if rc is not None
              else "the daemon started"))
    if rc is None:
        d.stop()
    os.chmod(key, 0o600)
    d.start()
    try:
        harness.Api("https://127.0.0.1:%d" % port, token)
        t0 = time.time()
        v12 = None
        while time.time() - t0 < 20 and v12 is None and d.running():
            v12 = tls_probe(port, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
            time.sleep(0.2)
        v10 = tls_probe(port, ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1)
        v11 = tls_probe(port, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1)
        check("tls versions", v12 is not None and v10 is None and v11 is None,
              "TLS 1.2+ handshake: %s; TLS 1.0: %s; TLS 1.1: %s"
              % (v12 or "refused", v10 or "refused", v11 or "refused"))
    finally:
        if d.stop() not in (0, None):
            check("tls daemon stops", False, d.tail())


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-attack-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    logpath = os.path.join(work, "daemon.log")
    port = harness.free_port()
    ids = [str(uuid.uuid4()) for _ in range(SIZE)]
    sec = {i: secrets.token_urlsafe(32) for i in ids}
    harness.test_node_xml(node, GROUP, ids)
    config(cfg, port, state, node, SIZE)
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    cl = Client(port, token)
    d = harness.Daemon(binary, cfg, logpath)
    t_start = time.time()
    ok = False
    try:
        d.start()
        api.wait_up(30, d)
        harness.wait_for("the adopted group whole", lambda g: g["current"] == SIZE and
                         g["ready"] == SIZE, 30, api, GROUP, period=0.2)
        db = sqlite3.connect(state, timeout=30)
        with db:
            for i in ids:
                db.execute("UPDATE instances SET secret_hash = ? WHERE id = ?",
                           (hashlib.sha256(sec[i].encode()).hexdigest(), i))
        db.close()
        # the scaler lists the ready instances (and their hashes) each tick
        harness.wait_ticks(api, 3, 30, d)
        A, B, C, D = ids
        for i in ids:
            st = cl.heartbeat(i, sec[i])[0], cl.checkin(i, sec[i])[0]
            if st != (200, 200):
                raise Fail("instance %s: heartbeat and check-in %s before any attack" % (i, st))

        # canonical paths only
        st = cl.req("POST", "//v1/checkin/%s/%s" % (A, sec[A]), "127.0.0.2",
                    body="hostname=h")[0]
        st2 = cl.req("POST", "/v1/checkin/%s/%s/" % (A, sec[A]), "127.0.0.2",
                     body="hostname=h")[0]
        check("canonical", (st, st2) == (404, 404),
              "//v1/checkin/ID/SECRET: %s, /v1/checkin/ID/SECRET/: %s" % (st, st2))

        # framing
        body = "hostname=h"
        st = raw(port, "127.0.0.3",
                 "POST /v1/checkin/%s/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                 "Content-Length: %d\r\n\r\n%s" % (A, sec[A], len(body), len(body) + 40, body))
        check("framing", st == 400, "two Content-Length headers (%d, %d): %s"
              % (len(body), len(body) + 40, st))

        # malformed ids
        sts = [cl.checkin(x, sec[A], "127.0.0.4")[0]
               for x in ("not-a-uuid", A.upper(), A + "x", "0" * 36)]
        since = os.path.getsize(logpath)
        t0 = time.time()
        flood = {}
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5,
                                       source_address=("127.0.0.4", 0))
        for n in range(2000):
            try:
                c.request("POST", "/v1/heartbeat/bad-id-%d/%s" % (n, "y" * 43), body="{}")
                r = c.getresponse()
                r.read()
                flood[r.status] = flood.get(r.status, 0) + 1
            except (OSError, http.client.HTTPException):
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5,
                                               source_address=("127.0.0.4", 0))
                flood[None] = flood.get(None, 0) + 1
        c.close()
        dt = time.time() - t0
        time.sleep(0.5)
        warns = warn_lines(logpath, since)
        check("malformed", sts == [401] * 4 and flood.get(401) == 2000 and warns <= 30,
              "not-a-uuid, upper-case, too long, all-zero ids: %s; 2000 malformed "
              "heartbeats in %.1f s: %s, %d warning lines in the log"
              % (sts, dt, flood, warns))

        # failed authentications: a guest's
        src = "127.0.0.10"
        bad = [cl.checkin(A, "w" * 43, src)[0] for _ in range(12)]
        after = {"A right secret": cl.checkin(A, sec[A], src)[0],
                 "B heartbeat": cl.heartbeat(B, sec[B], src)[0],
                 "C check-in": cl.checkin(C, sec[C], src)[0],
                 "status": cl.admin("/v1/groups", src)[0]}
        check("auth-guest", bad[-1] == 429 and after["A right secret"] == 429 and
              all(after[k] == 200 for k in ("B heartbeat", "C check-in", "status")),
              "12 bad check-ins of A from %s: %s...%s; then from the same address %s"
              % (src, bad[0], bad[-1], after))

        # failed authentications: the admin API's
        src = "127.0.0.11"
        bad = [cl.admin("/v1/groups", src, token="wrong")[0] for _ in range(12)]
        after = {"status": cl.admin("/v1/groups", src)[0],
                 "B heartbeat": cl.heartbeat(B, sec[B], src)[0],
                 "C check-in": cl.checkin(C, sec[C], src)[0]}
        check("auth-admin", after == {"status": 429, "B heartbeat": 200, "C check-in": 200},
              "12 bad admin tokens from %s: %s...%s; then from the same address %s"
              % (src, bad[0], bad[-1], after))

        # refused check-ins are events, a bounded number
        ev = api.call("GET", "/v1/events?kind=checkin_refused&limit=1000")["events"]
        of_a = [e for e in ev if e.get("instance") == A and e.get("group") == GROUP]
        minutes = (time.time() - t_start) / 60
        check("events", len(of_a) >= 1 and len(ev) <= 10 + 2 * (minutes + 1),
              "%d checkin_refused events after %d refused requests in %.1f min, "
              "%d of them of instance A in group %s; first: %s"
              % (len(ev), 2000 + 4 + 12 + 2, minutes, len(of_a), GROUP,
                 ev[0]["message"] if ev else None))

        # cycling addresses around the admin API's table
        addrs = ["127.0.%d.%d" % (1 + n // 250, 1 + n % 250) for n in range(300)]
        t0 = time.time()
        for _ in range(11):
            for a in addrs:
                cl.admin("/v1/groups", a, token="wrong")
        limited = sum(cl.admin("/v1/groups", a)[0] == 429 for a in addrs)
        check("cycling", limited == len(addrs),
              "300 addresses, 11 bad admin tokens each, taking turns (%.1f s): "
              "%d of 300 then refused with the right token" % (time.time() - t0, limited))

        # the secret of a removed instance
        config(cfg, port, state, node, SIZE - 1)
        d.proc.send_signal(signal.SIGHUP)
        gone = None
        t0 = time.time()
        while time.time() - t0 < 30 and gone is None:
            rows = harness.sqlite_query(state, "SELECT id, state FROM instances")
            gone = next((i for i, s in rows if s in ("deleting", "gone")), None)
            time.sleep(0.2)
        if gone is None:
            raise Fail("no instance was removed within 30 s of lowering max:\n" + d.tail())
        while time.time() - t0 < 30:
            if harness.sqlite_query(state, "SELECT state FROM instances WHERE id = ?",
                                    (gone,))[0][0] == "gone":
                break
            time.sleep(0.2)
        harness.wait_ticks(api, 2, 30, d)
        st = (cl.checkin(gone, sec[gone], "127.0.0.12")[0],
              cl.heartbeat(gone, sec[gone], "127.0.0.12")[0])
        check("removed", st == (401, 401),
              "instance %s removed by a scale-in (state %s): check-in %s, heartbeat %s"
              % (gone, harness.sqlite_query(state, "SELECT state FROM instances WHERE id = ?",
                                            (gone,))[0][0], st[0], st[1]))
        live = [i for i in ids if i != gone]

        # slowloris, both ways, from the guests' own address
        slowloris(cl, port, "127.0.0.20", (live[0], sec[live[0]]), (live[1], sec[live[1]]))

        d.stop()
        tls_checks(binary, work, cfg, port, state, node, token)

        leaked = []
        for p in (logpath, os.path.join(work, "daemon-tls.log")):
            with open(p, errors="replace") as f:
                text = f.read()
            leaked += [i for i in ids if sec[i] in text]
        check("no-secret", not leaked,
              "%d of %d secrets found in the daemon's debug log" % (len(leaked), len(ids)))
        ok = all(r[1] for r in RESULTS)
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        if d.stop() not in (0, None):
            ok = False
            log("the daemon did not stop cleanly:\n" + d.tail())
    log("summary (%.0f s):" % (time.time() - t_start))
    for name, passed, measured in RESULTS:
        print("  %-4s %-34s %s" % ("ok" if passed else "FAIL", name, measured))
    if ok:
        shutil.rmtree(work, ignore_errors=True)
        log("PASS")
        return 0
    log("work directory kept: " + work)
    return 1


if __name__ == "__main__":
    sys.exit(main())
