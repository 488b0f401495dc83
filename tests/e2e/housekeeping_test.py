"""Housekeeping of the state store by the real daemon: daemon.event_retention.

The daemon (libvirt test:///default as its host, SQLite state) first runs
once to create the schema; the test then writes history into the store with
Python's sqlite3, as an older daemon would have left it, and restarts it:
  - events older than the retention are deleted, newer ones kept;
  - removed (gone) instances older than the retention are deleted with their
    closed journal entries; a live instance and a gone one with a pending
    journal entry are kept, whatever their age;
  - with event_retention: 0s nothing is deleted.
Needs no libvirtd and no guest (suite 'integration', a few seconds).

usage: housekeeping_test.py VIRT_AUTOSCALER
"""
import os
import shutil
import sqlite3
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

DAY = 86400 * 1000


def config(path, port, state, retention):
    with open(path, "w") as f:
        f.write("""version: 1
daemon:
  interval: 1s
  listen: 127.0.0.1:%d
  state: sqlite://%s
  admin_token: { file: admin.token }
  event_retention: %s
hosts:
  - { name: test, uri: "test:///default", pool: default-pool }
groups:
  idle:
    min: 0
    max: 1
    template: { image: base.qcow2 }
""" % (port, state, retention))


def ticks(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("va_ticks_total "):
                return int(float(line.split()[1]))
    return 0


def run_once(binary, work, port, state, retention, until):
    """Start the daemon, wait for until(db) (or two ticks), stop it."""
    cfg = os.path.join(work, "autoscale.yaml")
    config(cfg, port, state, retention)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    d.start()
    try:
        harness.Api("http://127.0.0.1:%d" % port, "").wait_up(30, d)
        t0 = time.time()
        while time.time() - t0 < 30:
            if until is None and ticks(port) >= 2:
                break
            if until is not None and until():
                break
            time.sleep(0.2)
        else:
            raise Fail("the daemon did not do its housekeeping within 30 s:\n"
                       + d.tail())
    finally:
        if d.stop() != 0:
            raise Fail("the daemon did not stop cleanly:\n" + d.tail())
    return d


def seed(state):
    now = int(time.time() * 1000)
    old, recent = now - 2 * DAY, now - 3600 * 1000
    db = sqlite3.connect(state)
    with db:
        # a group the daemon does not manage: nothing but housekeeping
        # touches its instances
        db.execute("INSERT INTO instance_groups (name, desired, created_ms, updated_ms)"
                   " VALUES ('old', 0, ?, ?)", (old, old))
        for i, t in enumerate([old, old, old, recent, recent]):
            db.execute("INSERT INTO events (time_ms, group_name, instance_id, kind, message)"
                       " VALUES (?, 'old', NULL, 'test', ?)", (t, "seeded %d" % i))
        rows = [("gone-old", "gone", old), ("gone-recent", "gone", recent),
                ("ready-old", "ready", old), ("gone-pending", "gone", old)]
        for iid, st, t in rows:
            db.execute("INSERT INTO instances (id, group_name, state, created_ms, updated_ms)"
                       " VALUES (?, 'old', ?, ?, ?)", (iid, st, t, t))
        db.execute("INSERT INTO journal (instance_id, action, step, status, created_ms,"
                   " updated_ms) VALUES ('gone-old', 'remove', 'done', 'done', ?, ?)",
                   (old, old))
        db.execute("INSERT INTO journal (instance_id, action, step, status, created_ms,"
                   " updated_ms, pending_instance) VALUES ('gone-pending', 'remove',"
                   " 'undefine', 'pending', ?, ?, 'gone-pending')", (old, old))
    db.close()


def query(state, sql):
    db = sqlite3.connect(state)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-housekeeping-")
    harness.write_token(work)
    state = os.path.join(work, "state.db")
    port = harness.free_port()
    try:
        log("first start: schema")
        run_once(binary, work, port, state, "1d", None)
        seed(state)

        log("retention 0s: nothing is deleted")
        run_once(binary, work, port, state, "0s", None)
        n = query(state, "SELECT count(*) FROM events WHERE kind = 'test'")[0][0]
        if n != 5:
            raise Fail("event_retention 0s deleted events: %d of 5 seeded left" % n)

        log("retention 1d: old history goes")
        run_once(binary, work, port, state, "1d",
                 lambda: query(state, "SELECT count(*) FROM events WHERE kind = 'test'")[0][0] < 5)
        left = [r[0] for r in query(state, "SELECT message FROM events WHERE kind = 'test'"
                                           " ORDER BY id")]
        if left != ["seeded 3", "seeded 4"]:
            raise Fail("events left after pruning: %s (want the two recent ones)" % left)
        ids = sorted(r[0] for r in query(state, "SELECT id FROM instances"))
        if ids != ["gone-pending", "gone-recent", "ready-old"]:
            raise Fail("instances left after purging: %s" % ids)
        journal = query(state, "SELECT instance_id, status FROM journal")
        if journal != [("gone-pending", "pending")]:
            raise Fail("journal left after purging: %s" % journal)
        started = query(state, "SELECT count(*) FROM events WHERE kind = 'start'")[0][0]
        if started < 3:
            raise Fail("the daemon's own recent events were deleted (%d start events)"
                       % started)
        with open(os.path.join(work, "daemon.log")) as f:
            if "3 events, 1 removed instances" not in f.read():
                raise Fail("the daemon did not log what it deleted")
        log("PASS")
        shutil.rmtree(work, ignore_errors=True)
        return 0
    except Fail as e:
        log("FAIL: %s (work dir kept: %s)" % (e, work))
        return 1


if __name__ == "__main__":
    sys.exit(main())
