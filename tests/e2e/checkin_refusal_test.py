#!/usr/bin/env python3
"""A check-in the state store cannot record is answered 503, not 200.

The daemon runs on libvirt's test driver and SQLite with one adopted
instance, which the test then turns into a booting instance with a secret
(as a provisioned one is until it checks in). The store refuses writes:
the test holds SQLite's write lock (harness.SqliteWriteLock) past the
store's busy timeout (10 s); reads go on (WAL), so the check-in
authenticates, and only the write of its new state fails. Checked:
  - that check-in is answered 503 'state store unavailable': cloud-init's
    phone_home tries again after an error, never after a 200;
  - the instance is still booting in the store and the API;
  - with the lock released, the same check-in is answered 200 with state
    'ready', and the store says ready.

Before: the failed write was logged at debug level and the check-in
answered 200 {"state": "booting"}: the guest never checked in again, and
without heartbeats the instance was replaced after health.ready_within.
The same holds for a first heartbeat (same code path, mark_ready in
src/api.c).

Suite 'integration', 'testdriver', about 20 s.

usage: checkin_refusal_test.py VIRT_AUTOSCALER
"""
import hashlib
import os
import secrets
import shutil
import sqlite3
import sys
import time
import urllib.error
import urllib.request
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "g"


def config(path, port, state, node):
    harness.testdriver_config(path, port, state, node, """  %s:
    min: 1
    max: 2
    template: { image: base.qcow2, memory: 128MiB }
    health: { heartbeat_timeout: 0s, replace: false }
""" % GROUP, host_extra=", reserved_memory: 0")


def checkin(port, iid, secret, timeout=60):
    req = urllib.request.Request(
        "http://127.0.0.1:%d/v1/checkin/%s/%s" % (port, iid, secret),
        data=("instance_id=%s&hostname=h" % iid).encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    t0 = time.time()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(), time.time() - t0
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), time.time() - t0


def stored_state(state, iid):
    rows = harness.sqlite_query(state, "SELECT state FROM instances WHERE id = ?", (iid,))
    return rows[0][0] if rows else None


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-checkin-refusal-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    port = harness.free_port()
    iid = str(uuid.uuid4())
    secret = secrets.token_urlsafe(32)
    harness.test_node_xml(node, GROUP, [iid])
    config(cfg, port, state, node)
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    lock = harness.SqliteWriteLock(state)
    problems = []
    ok = False
    try:
        d.start()
        api.wait_up(30, d)
        harness.wait_for("the adopted instance ready", lambda g: g["ready"] == 1, 30,
                         api, GROUP, period=0.2)
        db = sqlite3.connect(state, timeout=30)
        db.execute("UPDATE instances SET state = 'booting', secret_hash = ? WHERE id = ?",
                   (hashlib.sha256(secret.encode()).hexdigest(), iid))
        db.commit()
        db.close()
        harness.wait_ticks(api, 2, 30, d)

        lock.acquire()
        st, body, took = checkin(port, iid, secret)
        log("check-in while the store refuses writes: %s %s after %.1f s"
            % (st, body.strip(), took))
        if st != 503 or "state store unavailable" not in body:
            problems.append("check-in while the store refuses writes: %s %s, want 503 "
                            "'state store unavailable'" % (st, body.strip()))
        lock.release()
        if stored_state(state, iid) != "booting":
            problems.append("after the refused check-in the store says %s, want booting"
                            % stored_state(state, iid))

        st, body, took = checkin(port, iid, secret)
        log("check-in with the store writable: %s %s after %.1f s" % (st, body.strip(), took))
        if st != 200 or '"ready"' not in body:
            problems.append("check-in with the store writable: %s %s, want 200 ready"
                            % (st, body.strip()))
        if stored_state(state, iid) != "ready":
            problems.append("after the check-in the store says %s, want ready"
                            % stored_state(state, iid))
        if problems:
            raise Fail("\n  ".join(problems))
        ok = True
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        lock.release()
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
