#!/usr/bin/env python3
"""A `scale` the state store refused is not applied (issue 11).

The daemon runs on libvirt's test driver (a node file with a storage pool
and no base image: a provisioning attempt is recorded as a 'provision'
event and then fails at once; nothing boots) and SQLite. The group is
min 0, max 4, at 0.

The store refuses writes: the test holds SQLite's write lock (BEGIN
IMMEDIATE from Python, harness.SqliteWriteLock) longer than the store's
busy timeout (10 s), as during a database outage; reads go on (WAL). Then
`PUT /v1/groups/g/desired {"desired": 2}`; the lock is held until that
request is answered (60 s at most). Checked:
  - the client gets an error (not 200);
  - GET /v1/groups/g shows desired 0 all along, polled every 200 ms while
    the lock is held and for 5 s after it is released;
  - the daemon never scales towards 2: no 'provision' event after the
    scale; the store keeps 0;
  - after a restart: still 0, and still no 'provision' event.
Every failed check is reported, not only the first.

On the code before issue 11 it fails: api.c sets the in-memory desired
size before the store write that then fails (503 after 10 s), so the
daemon shows 2 at once and provisions towards it once the store is back,
while the store keeps 0, so that a restart scales back.

Suite 'integration', about 20 s.

usage: store_refusal_test.py VIRT_AUTOSCALER
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
REFUSED = 2


def config(path, port, state, node):
    harness.testdriver_config(path, port, state, node, """  %s:
    min: 0
    max: 4
    template: { image: base.qcow2, memory: 128MiB }
    cloud_init: { phone_home: false }
    health: { heartbeat_timeout: 0s, replace: false }
""" % GROUP, host_extra=", reserved_memory: 0")


def stored_desired(state):
    rows = harness.sqlite_query(state, "SELECT desired FROM instance_groups WHERE name = ?",
                                (GROUP,))
    return rows[0][0] if rows else None


def provisions(api, since_ms):
    return [e for e in api.events(GROUP, "provision") if e["time"] >= since_ms]


def watch_desired(api, seconds, until, problems, what):
    """Poll GET /v1/groups/g every 200 ms for `seconds` or until until()."""
    t0 = time.time()
    seen = set()
    while time.time() - t0 < seconds and not (until and until()):
        st, g = api.try_call("GET", "/v1/groups/" + GROUP, timeout=1)
        if st == 200 and g["desired"] != 0 and g["desired"] not in seen:
            seen.add(g["desired"])
            problems.append("%s, %.1f s in: GET /v1/groups/%s shows desired %d, want 0"
                            % (what, time.time() - t0, GROUP, g["desired"]))
        time.sleep(0.2)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-refusal-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    port = harness.free_port()
    harness.test_node_xml(node)
    config(cfg, port, state, node)
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    lock = harness.SqliteWriteLock(state)
    problems = []
    ok = False
    try:
        d.start()
        api.wait_up(30, d)
        harness.wait_ticks(api, 2, 10, d)
        if api.group(GROUP)["desired"] != 0:
            raise Fail("the group is not at 0 before the test: %s" % api.group(GROUP))

        log("the store refuses writes; PUT desired %d" % REFUSED)
        lock.acquire()
        since_ms = int(time.time() * 1000)
        put = {}

        def scale():
            put["reply"] = api.try_call("PUT", "/v1/groups/%s/desired" % GROUP,
                                        {"desired": REFUSED}, timeout=60)

        t = threading.Thread(target=scale, daemon=True)
        t.start()
        watch_desired(api, 60, lambda: not t.is_alive(), problems, "store locked")
        t.join(1)
        held = time.time() - lock.since
        lock.release()
        status, body = put.get("reply", (None, "no answer within 60 s"))
        log("PUT answered after %.1f s: %s %s; lock released" % (held, status, body))
        if status == 200:
            problems.append("PUT desired %d succeeded (%s) while the store refused "
                            "every write" % (REFUSED, body))
        elif status is None:
            problems.append("PUT desired %d got no answer: %s" % (REFUSED, body))

        watch_desired(api, 5, None, problems, "store back")
        p = provisions(api, since_ms)
        if p:
            problems.append("the daemon scaled towards the refused size: %d 'provision' "
                            "events after the scale, first: %s" % (len(p), p[0]["message"]))
        if stored_desired(state) != 0:
            problems.append("the store says desired %s, want 0" % stored_desired(state))

        log("restart")
        if d.stop() != 0:
            problems.append("the daemon did not stop cleanly")
        restart_ms = int(time.time() * 1000)
        d.start()
        api.wait_up(30, d)
        harness.wait_ticks(api, 3, 20, d)
        g = api.group(GROUP)
        if g["desired"] != 0:
            problems.append("after a restart desired is %d, want 0" % g["desired"])
        if provisions(api, restart_ms):
            problems.append("after a restart the daemon provisions")
        if problems:
            raise Fail("a scale the store refused was applied:\n  " + "\n  ".join(problems))
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
