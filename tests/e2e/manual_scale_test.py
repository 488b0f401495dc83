#!/usr/bin/env python3
"""A manual scale issued while the scaler computes a decision is not
overwritten by that decision (issue 11, "the lost manual scale").

The daemon runs on libvirt's test driver with a host that stays down (its
node file does not exist: nothing is ever provisioned, only the group's
desired size moves) and SQLite. The group has min 0, max 4, no metrics,
a 1-minute cooldown and a schedule that is open all the time with min 1:
its first decision, one scaling.interval (5 s) after the start, raises the
desired size 0 -> 1 and writes it to the store.

The race, made deterministic: the test holds SQLite's write lock (BEGIN
IMMEDIATE from Python, harness.SqliteWriteLock) across that decision, so
the decision is computed and then waits in its store write, as it does for
a few milliseconds on every write in production (a disk flush, a MariaDB
round trip). While it waits, `PUT /v1/groups/g/desired {"desired": 2}`
arrives; 2 is within every bound (min 1 from the schedule, max 4), so no
decision may undo it before the cooldown ends. Then the lock is released.

Checked: the decision really ran while the lock was held (a 'decision'
event written after the lock was taken; otherwise the test proves nothing
and says so); the PUT succeeded; GET /v1/groups/g and the store say 2, and
keep saying 2 for 3 more intervals; after a restart, 2.

On the code before issue 11 it fails: decide() in scaler.c read the
desired size before the scale, api.c set 2 under the lock meanwhile, and
the decision then wrote its 1 over it (memory: 1; store: 1 or 2, whichever
write came last; a restart may bring back 2, or not).

Suite 'integration', about 12 s when it fails, 30 s when it passes.

usage: manual_scale_test.py VIRT_AUTOSCALER
"""
import os
import shutil
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "g"
INTERVAL_S = 5
MANUAL = 2


def config(path, port, state, node):
    harness.testdriver_config(path, port, state, node, """  %s:
    min: 0
    max: 4
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
    scaling:
      interval: %ds
      cooldown: 1m
      schedules:
        - { name: always, when: "* * * * *", min: 1 }
""" % (GROUP, INTERVAL_S),
        comment="a node file that does not exist: the host stays down")


def stored_desired(state):
    rows = harness.sqlite_query(state, "SELECT desired FROM instance_groups WHERE name = ?",
                                (GROUP,))
    return rows[0][0] if rows else None


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-manual-scale-")
    token = harness.write_token(work)
    state = os.path.join(work, "state.db")
    cfg = os.path.join(work, "autoscale.yaml")
    port = harness.free_port()
    config(cfg, port, state, os.path.join(work, "absent-node.xml"))
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    lock = harness.SqliteWriteLock(state)
    put = {}
    ok = False
    try:
        d.start()
        api.wait_up(30, d)
        due = time.time() + INTERVAL_S  # the first decision, about
        # the loop's first tick writes (start event, housekeeping): let it
        # finish, so that the lock catches the decision and nothing before
        harness.wait_ticks(api, 1, 10, d)
        g = api.group(GROUP)
        if g["desired"] != 0 or g["last_decision"] is not None:
            raise Fail("the group decided before the test was ready: %s" % g)

        # Hold the lock from 1.5 s before the decision is due to 1 s after
        # the PUT: well below the store's busy timeout (10 s), so that the
        # decision's write waits and then succeeds.
        time.sleep(max(0, due - 1.5 - time.time()))
        log("holding the store's write lock across the first decision")
        lock.acquire()
        locked_ms = int(time.time() * 1000)
        t0 = time.time()
        # The code before issue 11 publishes the decision (last_decision)
        # before its store write; a daemon that publishes later, or whose
        # status waits, is simply given until 1.5 s past the due time.
        while time.time() < due + 1.5:
            st, g = api.try_call("GET", "/v1/groups/" + GROUP, timeout=0.5)
            if st == 200 and g["last_decision"] is not None:
                break
            time.sleep(0.05)
        log("decision computed, waiting on the store: PUT desired %d" % MANUAL)

        def scale():
            put["reply"] = api.try_call("PUT", "/v1/groups/%s/desired" % GROUP,
                                        {"desired": MANUAL}, timeout=60)

        t = threading.Thread(target=scale, daemon=True)
        t.start()
        time.sleep(1)
        lock.release()
        log("lock released after %.1f s" % (time.time() - t0))
        t.join(60)
        status, body = put.get("reply", (None, "no answer within 60 s"))
        if status != 200:
            raise Fail("PUT desired %d: %s %s" % (MANUAL, status, body))

        decisions = [e for e in api.events(GROUP, "decision") if e["time"] >= locked_ms]
        if not decisions:
            raise Fail("no decision while the store was locked: the race was not "
                       "reproduced (test precondition)\n" + d.tail())
        log("events: " + "; ".join("%s %s" % (e["kind"], e["message"])
                                   for e in api.events(GROUP)))

        for i in range(3):
            harness.wait_ticks(api, 1, 10, d)
            time.sleep(INTERVAL_S)
            g = api.group(GROUP)
            if g["desired"] != MANUAL:
                raise Fail("desired %d %d s after the manual scale to %d (a decision "
                           "computed before it overwrote it); store says %s; "
                           "last decision: %s"
                           % (g["desired"], (i + 1) * INTERVAL_S, MANUAL,
                              stored_desired(state), g["last_decision"]))
        if stored_desired(state) != MANUAL:
            raise Fail("the store says desired %s, want %d" % (stored_desired(state), MANUAL))

        log("restart: the manual size stays")
        if d.stop() != 0:
            raise Fail("the daemon did not stop cleanly:\n" + d.tail())
        d.start()
        api.wait_up(30, d)
        harness.wait_ticks(api, 2, 20, d)
        g = api.group(GROUP)
        if g["desired"] != MANUAL:
            raise Fail("after a restart desired is %d, want %d" % (g["desired"], MANUAL))
        ok = True
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        lock.release()
        if d.stop() not in (0, None):
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
