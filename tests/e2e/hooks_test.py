#!/usr/bin/env python3
"""Lifecycle hooks (issue 16) against real HTTP receivers on loopback.

The daemon runs on libvirt's test driver and SQLite. Every group's
instances are adopted from the node file as ready; the test turns one
into a booting instance with a secret (SQL, as a provisioned one is until
it checks in) and checks it in: with a launch hook it goes to
launch_wait, and the loop POSTs the signed event. The receiver verifies
every signature in Python (hmac, the timestamp header covered) and
refuses a bad one.

  group a   launch + terminate hooks to the good receiver, timeout 60 s:
            A1 continue with the call's token: ready (meanwhile not a
               load-balancer member: /targets; `status` shows it
               launch_wait); the API's errors
               (unknown instance 404, not waiting 409, bad result 400,
               no token 403, wrong token 403, completed twice 409);
            A2 abandon with the admin token: removed (deleting/gone);
            A3 SIGKILL while one waits: after the restart it still waits,
               the hook is re-sent with a new token (the old one 403),
               completing with the new one makes it ready;
            A4 scale-in by one: terminate_wait, the terminate hook, then
               continue: the instance is removed;
  group b   launch hook to a port that refuses connections, timeout 6 s,
            default continue: hook_failed events, retried, then
            hook_timeout and ready;
  group c   launch hook to a receiver answering 500 with HTML, timeout
            6 s, default abandon: failed attempts counted
            (va_hook_calls_total{result="failed"}), retried, then
            hook_timeout and removed;
  group d   launch hook to the receiver docs/operations.md shows (its
            code taken from the file, run on loopback): it completes the
            hook and the instance is ready within seconds, though the
            group plans every 2 minutes (the check-in and the completion
            make it plan at once).
While an instance waits in launch_wait, /v1/groups counts it in current,
not in ready (checked in A1).

Suite ['integration', 'testdriver'], about 40 s.

usage: hooks_test.py VIRT_AUTOSCALER
"""
import hashlib
import hmac
import http.server
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

KEY = b"hook-key-" + secrets.token_hex(16).encode()


def node_xml(path, doms):
    body = "".join("""  <domain type='test'>
    <name>va-%(g)s-%(n)d</name>
    <uuid>%(id)s</uuid>
    <memory>131072</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
    <metadata>
      <va:instance xmlns:va="%(ns)s" group="%(g)s" id="%(id)s" generation="1"/>
    </metadata>
  </domain>
""" % {"g": g, "n": n, "id": iid, "ns": harness.NS} for n, (g, iid) in enumerate(doms))
    with open(path, "w") as f:
        f.write("""<node>
%s  <pool type='dir'>
    <name>default-pool</name>
    <uuid>%s</uuid>
    <capacity>107374182400</capacity>
    <allocation>0</allocation>
    <available>107374182400</available>
    <target><path>/default-pool</path></target>
  </pool>
</node>
""" % (body, uuid.uuid4()))


def config(path, port, state, node, good, refused, garbage, docs):
    harness.testdriver_config(path, port, state, node, """  a:
    min: 0
    max: 4
    desired: 4
    template: { image: base.qcow2, memory: 128MiB }
    health: { heartbeat_timeout: 0s, replace: false }
    scale_in: { drain: 0s }
    hooks:
      launch: { url: "%(good)s/launch", secret: { file: hook.key }, timeout: 60s }
      terminate: { url: "%(good)s/terminate", secret: { file: hook.key }, timeout: 60s }
  b:
    min: 0
    max: 1
    desired: 1
    template: { image: base.qcow2, memory: 128MiB }
    health: { heartbeat_timeout: 0s, replace: false }
    hooks:
      launch: { url: "%(refused)s", secret: { file: hook.key }, timeout: 6s,
                default_result: continue, backoff: 500ms, backoff_max: 1s }
  c:
    min: 0
    max: 1
    desired: 1
    template: { image: base.qcow2, memory: 128MiB }
    health: { heartbeat_timeout: 0s, replace: false }
    hooks:
      launch: { url: "%(garbage)s/launch", secret: { file: hook.key }, timeout: 6s,
                backoff: 500ms, backoff_max: 1s }
  d:
    min: 0
    max: 1
    desired: 1
    template: { image: base.qcow2, memory: 128MiB }
    health: { heartbeat_timeout: 0s, replace: false }
    scaling: { interval: 2m }
    hooks:
      launch: { url: "%(docs)s/launch", secret: { file: hook.key }, timeout: 90s }
""" % {"good": good, "refused": refused, "garbage": garbage, "docs": docs},
        host_extra=", reserved_memory: 0")
    # the hook calls' complete_url: this daemon on loopback
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace("daemon:\n", "daemon:\n  public_url: http://127.0.0.1:%d\n"
                             % port, 1))


def docs_receiver(work, keyfile):
    """The receiver docs/operations.md shows, on loopback with the test's
    key: (process, its URL)."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                       "docs", "operations.md")
    with open(src) as f:
        text = f.read()
    start = text.index("```python\n", text.index("### A receiver")) + len("```python\n")
    code = text[start:text.index("```\n", start)]
    port = harness.free_port()
    for old, new in (('"/etc/autoscaler/hook.key"', repr(keyfile)),
                     ('("0.0.0.0", 8081)', '("127.0.0.1", %d)' % port)):
        if old not in code:
            raise Fail("docs/operations.md's receiver no longer has %s" % old)
        code = code.replace(old, new)
    path = os.path.join(work, "receiver.py")
    with open(path, "w") as f:
        f.write(code)
    proc = subprocess.Popen([sys.executable, path], stdout=open(path + ".log", "w"),
                            stderr=subprocess.STDOUT)
    return proc, "http://127.0.0.1:%d" % port


class Receiver:
    """A loopback HTTP server: verifies each POST's signature, records
    (path, event, signature ok, time); answers 200, or 500 with HTML."""

    def __init__(self, garbage=False):
        rcv = self
        self.calls = []
        self.lock = threading.Lock()

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                ts = self.headers.get("X-VA-Timestamp", "")
                sig = self.headers.get("X-VA-Signature", "")
                want = "sha256=" + hmac.new(KEY, ts.encode() + b"." + body,
                                            hashlib.sha256).hexdigest()
                ok = (hmac.compare_digest(sig, want) and ts.isdigit()
                      and abs(time.time() - int(ts)) < 300)
                try:
                    ev = json.loads(body)
                except ValueError:
                    ev = None
                with rcv.lock:
                    rcv.calls.append((self.path, ev, ok, time.time()))
                if garbage:
                    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
                    self.send_response(500)
                    self.send_header("Content-Type", "text/html")
                elif not ok:
                    page = b"bad signature\n"
                    self.send_response(401)
                else:
                    page = b"ok\n"
                    self.send_response(200)
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def of(self, iid):
        with self.lock:
            return [c for c in self.calls if c[1] and c[1].get("instance") == iid]

    def close(self):
        self.srv.shutdown()


def checkin(port, iid, secret):
    req = urllib.request.Request(
        "http://127.0.0.1:%d/v1/checkin/%s/%s" % (port, iid, secret),
        data=("instance_id=%s&hostname=h" % iid).encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def complete(port, iid, body, token=None):
    """POST /v1/instances/ID/lifecycle; the admin token when given."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(
        "http://127.0.0.1:%d/v1/instances/%s/lifecycle" % (port, iid),
        data=json.dumps(body).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def stored(state, iid):
    rows = harness.sqlite_query(state, "SELECT state FROM instances WHERE id = ?", (iid,))
    return rows[0][0] if rows else None


def make_booting(state, iid):
    secret = secrets.token_urlsafe(32)
    db = sqlite3.connect(state, timeout=30)
    db.execute("UPDATE instances SET state = 'booting', secret_hash = ? WHERE id = ?",
               (hashlib.sha256(secret.encode()).hexdigest(), iid))
    db.commit()
    db.close()
    return secret


def wait(what, pred, timeout, period=0.2):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(period)
    raise Fail("timed out after %d s waiting for: %s" % (timeout, what))


def hook_metric(port, hook, result):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('va_hook_calls_total{hook="%s",result="%s"} '
                               % (hook, result)):
                return float(line.split()[1])
    return None


def kinds(api, group, iid):
    return [e["kind"] for e in api.events(group=group) if e.get("instance") == iid]


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-hooks-")
    token = harness.write_token(work)
    keyfile = os.path.join(work, "hook.key")
    with open(keyfile, "wb") as f:
        f.write(KEY)
    os.chmod(keyfile, 0o600)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    port = harness.free_port()
    a = [str(uuid.uuid4()) for _ in range(4)]
    b = [str(uuid.uuid4())]
    c = [str(uuid.uuid4())]
    e = [str(uuid.uuid4())]
    node_xml(node, [("a", i) for i in a] + [("b", i) for i in b] + [("c", i) for i in c]
             + [("d", i) for i in e])
    good = Receiver()
    bad = Receiver(garbage=True)
    refused = "http://127.0.0.1:%d/launch" % harness.free_port()
    recv, recv_url = docs_receiver(work, keyfile)
    config(cfg, port, state, node, good.url, refused, bad.url, recv_url)
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    problems = []
    ok = False

    def check(cond, msg):
        if not cond:
            problems.append(msg)
            log("problem: " + msg)

    try:
        d.start()
        api.wait_up(30, d)
        for g, n in (("a", 4), ("b", 1), ("c", 1)):
            harness.wait_for("group %s adopted" % g, lambda x, n=n: x["ready"] == n, 30,
                             api, g, period=0.2)
        # d plans every 2 minutes: its counts lag; the store says it
        wait("group d adopted", lambda: stored(state, e[0]) == "ready", 30)

        # --- A1: continue with the call's token ----------------------------
        x = a[0]
        st, body = checkin(port, x, make_booting(state, x))
        log("A1 check-in: %s %s" % (st, body.strip()))
        check(st == 200 and '"launch_wait"' in body,
              "A1: check-in answered %s %s, want 200 launch_wait" % (st, body.strip()))
        call = wait("A1: the launch hook", lambda: good.of(x), 20)[0]
        ev = call[1]
        log("A1 hook: %s %s" % (call[0], json.dumps(ev)))
        check(call[2], "A1: the hook's signature does not verify")
        check(call[0] == "/launch" and ev["hook"] == "launch" and ev["group"] == "a"
              and ev["transition"] == "launch_wait" and len(ev.get("token", "")) >= 40,
              "A1: unexpected event %s" % json.dumps(ev))
        g = api.group("a")
        check(g["ready"] == 3 and g["current"] == 4,
              "A1: while it waits the group says current %s ready %s, want 4 and 3"
              % (g["current"], g["ready"]))
        # not a load-balancer member while it waits (ready ones without an
        # address on the test driver: counted in "pending")
        tg = wait("A1: targets without the waiting one",
                  lambda: (lambda t: t if t["pending"] == 3 and not t["targets"] else None)(
                      api.call("GET", "/v1/groups/a/targets")), 10)
        log("A1 targets while it waits: %s" % json.dumps(tg))
        insts = {i["id"]: i for i in api.instances("a")}
        out = subprocess.run([binary, "-c", cfg, "status"], capture_output=True,
                             text=True, timeout=30).stdout
        line = [ln for ln in out.splitlines() if ln.startswith(x)]
        log("A1 status: %s" % (line[0] if line else out))
        check(line and line[0].split()[3] == "launch_wait",
              "A1: `status` shows %s, want launch_wait" % (line or out))
        check(insts[x]["state"] == "launch_wait",
              "A1: /v1/instances says %s, want launch_wait" % insts[x]["state"])
        # the API's refusals
        for what, iid, bd, tok, want in (
                ("unknown instance", str(uuid.uuid4()), {"result": "continue"}, token, 404),
                ("not waiting", a[1], {"result": "continue"}, token, 409),
                ("bad result", x, {"result": "maybe", "token": ev["token"]}, None, 400),
                ("no token", x, {"result": "continue"}, None, 403),
                ("wrong token", x, {"result": "continue", "token": "x" * 43}, None, 403),
                ("bad body", x, ["continue"], None, 400)):
            st, body = complete(port, iid, bd, tok)
            log("A1 %s: %s %s" % (what, st, body.strip()))
            check(st == want, "A1 %s: answered %s %s, want %d" % (what, st, body.strip(), want))
        st, body = complete(port, x, {"result": "continue", "token": ev["token"]})
        log("A1 complete: %s %s" % (st, body.strip()))
        check(st == 200, "A1: completion answered %s %s" % (st, body.strip()))
        st, body = complete(port, x, {"result": "abandon", "token": ev["token"]})
        check(st == 409, "A1: a second completion answered %s %s, want 409" % (st, body.strip()))
        wait("A1: ready", lambda: stored(state, x) == "ready", 20)
        wait("A1: group ready 4", lambda: api.group("a")["ready"] == 4, 10)
        wait("A1: a member again", lambda: api.call("GET", "/v1/groups/a/targets")["pending"] == 4, 10)
        k = wait("A1: hook_completed", lambda: ("hook_completed" in kinds(api, "a", x)
                                               and kinds(api, "a", x)), 10)
        check("hook_sent" in k and "hook_completed" in k,
              "A1: events %s lack hook_sent/hook_completed" % k)

        # --- A2: abandon with the admin token ------------------------------
        y = a[1]
        checkin(port, y, make_booting(state, y))
        wait("A2: the launch hook", lambda: good.of(y), 20)
        st, body = complete(port, y, {"result": "abandon"}, token)
        log("A2 abandon (admin token): %s %s" % (st, body.strip()))
        check(st == 200, "A2: abandon answered %s %s" % (st, body.strip()))
        wait("A2: removed", lambda: stored(state, y) in ("deleting", "gone"), 20)
        log("A2: %s" % stored(state, y))

        # --- A3: SIGKILL while one waits -----------------------------------
        z = a[2]
        checkin(port, z, make_booting(state, z))
        first = wait("A3: the launch hook", lambda: good.of(z), 20)[0][1]
        d.kill9()
        log("A3: daemon killed (SIGKILL) while %s waits" % z)
        check(stored(state, z) == "launch_wait",
              "A3: after the kill the store says %s" % stored(state, z))
        d.start()
        api.wait_up(30, d)
        again = wait("A3: the hook re-sent", lambda: len(good.of(z)) >= 2 and good.of(z), 30)
        second = again[-1][1]
        check(again[-1][2], "A3: the re-sent hook's signature does not verify")
        check(second["token"] != first["token"], "A3: the re-sent call has the same token")
        check(stored(state, z) == "launch_wait",
              "A3: after the restart the store says %s" % stored(state, z))
        st, body = complete(port, z, {"result": "continue", "token": first["token"]})
        check(st == 403, "A3: the old token answered %s %s, want 403" % (st, body.strip()))
        st, body = complete(port, z, {"result": "continue", "token": second["token"]})
        check(st == 200, "A3: the new token answered %s %s" % (st, body.strip()))
        wait("A3: ready after the restart", lambda: stored(state, z) == "ready", 20)
        log("A3: ready after the restart")

        # --- B: a receiver that refuses connections ------------------------
        v = b[0]
        checkin(port, v, make_booting(state, v))
        wait("B: launch_wait", lambda: stored(state, v) == "launch_wait", 10)
        t0 = time.time()
        wait("B: default continue at the timeout", lambda: stored(state, v) == "ready", 30)
        took = time.time() - t0
        k = wait("B: hook_timeout", lambda: ("hook_timeout" in kinds(api, "b", v)
                                            and kinds(api, "b", v)), 10)
        log("B: ready after %.1f s; events %s" % (took, k))
        check(took > 4, "B: ready after %.1f s, before the 6 s timeout" % took)
        check(k.count("hook_failed") >= 2 and "hook_timeout" in k,
              "B: events %s: want hook_failed (retried) and hook_timeout" % k)

        # --- C: a receiver answering garbage (500, HTML) --------------------
        w = c[0]
        failed0 = hook_metric(port, "launch", "failed") or 0
        checkin(port, w, make_booting(state, w))
        wait("C: launch_wait", lambda: stored(state, w) == "launch_wait", 10)
        wait("C: default abandon at the timeout",
             lambda: stored(state, w) in ("deleting", "gone"), 30)
        n_calls = len(bad.of(w))
        failed = (hook_metric(port, "launch", "failed") or 0) - failed0
        k = wait("C: hook_timeout", lambda: ("hook_timeout" in kinds(api, "c", w)
                                            and kinds(api, "c", w)), 10)
        log("C: removed; %d POSTs received, failed attempts counted %d, events %s"
            % (n_calls, failed, k))
        check(n_calls >= 3 and all(x[2] for x in bad.of(w)),
              "C: %d POSTs (want retries, all signed)" % n_calls)
        check(failed >= n_calls - 1, "C: va_hook_calls_total failed +%d for %d POSTs"
              % (failed, n_calls))
        check("hook_timeout" in k, "C: events %s lack hook_timeout" % k)

        # --- A4: scale-in waits for the terminate hook ---------------------
        before = len(good.calls)
        api.set_desired("a", 2)
        term = wait("A4: the terminate hook",
                    lambda: [x for x in good.calls[before:] if x[0] == "/terminate"], 20)[0]
        u = term[1]["instance"]
        log("A4: terminate hook for %s (%s)" % (u, stored(state, u)))
        check(term[2], "A4: the terminate hook's signature does not verify")
        check(stored(state, u) == "terminate_wait",
              "A4: the store says %s, want terminate_wait" % stored(state, u))
        time.sleep(2)
        check(stored(state, u) == "terminate_wait",
              "A4: %s left terminate_wait before its completion" % stored(state, u))
        st, body = complete(port, u, {"result": "continue", "token": term[1]["token"]})
        check(st == 200, "A4: completion answered %s %s" % (st, body.strip()))
        wait("A4: removed", lambda: stored(state, u) in ("deleting", "gone"), 20)
        sent = hook_metric(port, "terminate", "sent")
        cont = hook_metric(port, "terminate", "continue")
        check(sent and sent >= 1 and cont and cont >= 1,
              "A4: va_hook_calls_total terminate sent %s continue %s" % (sent, cont))

        # --- D: the receiver docs/operations.md shows ---------------------
        q = e[0]
        checkin(port, q, make_booting(state, q))
        wait("D: launch_wait", lambda: stored(state, q) in ("launch_wait", "ready"), 10)
        t0 = time.time()
        # the group plans every 2 minutes: the check-in and the completion
        # each make it plan at once
        wait("D: completed by the docs' receiver", lambda: stored(state, q) == "ready", 10)
        # the event follows the state change
        k = wait("D: hook_completed", lambda: ("hook_completed" in kinds(api, "d", q)
                                              and kinds(api, "d", q)), 10)
        log("D: the docs' receiver completed it in %.1f s; events %s" % (time.time() - t0, k))
        check("hook_completed" in k and "hook_timeout" not in k,
              "D: events %s: want hook_completed" % k)

        bad_sigs = [x for x in good.calls if not x[2]]
        check(not bad_sigs, "%d calls with a bad signature" % len(bad_sigs))
        if problems:
            raise Fail("\n  ".join(problems))
        ok = True
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        good.close()
        bad.close()
        recv.kill()
        recv.wait()
        if d.running() and d.stop() != 0:
            ok = False
            log("the daemon did not stop cleanly:\n" + d.tail())
    if ok:
        shutil.rmtree(work, ignore_errors=True)
        log("PASS")
        return 0
    log("work directory kept: " + work)
    return 1


if __name__ == "__main__":
    sys.exit(main())
