#!/usr/bin/env python3
"""Operators' commands are refused at once while the daemon's lease is not
valid, and work again once it is (issue 11: scaler_commands(d, false) in
daemon.c).

The daemon runs on libvirt's test driver with a host that stays down (its
node file does not exist: nothing is ever provisioned, only the group's
desired size and pause flag move) and SQLite, alone (no HA: its lease is
the solo one, 20 s, renewed every third of that by the lease thread).

The lease is made invalid while the store stays writable: the test adds a
trigger to the SQLite state that refuses every UPDATE of
leases.expires_ms, i.e. the renewal (the fence check that every write
starts with updates leases.epoch and is not refused). The renewal then
fails, not fenced, and is retried every second; once the last renewal is
more than 20 s old the loop logs "the lease expired" and no longer acts.
Meanwhile:
  - PUT /v1/groups/g/desired {"desired": 3}, POST .../pause and
    POST .../resume must each be answered 503 within 3 s (not the 10 s
    after which a command nobody took is withdrawn), with an error that
    names the lease;
  - none is applied: GET /v1/groups/g and the store keep desired 0, not
    paused, and no manual_scale or pause event is written.
Then the trigger is dropped: the next renewal succeeds, the loop logs
"the lease is valid again", and PUT desired 2, pause and resume succeed
(200) and are in the store.

The store stays writable on purpose: a daemon that applied commands
without a valid lease would get 200 here, and one that left them queued
answers 503 only after 10 s; both fail.

Suite 'integration', 'testdriver'; about 30 s.

usage: lease_commands_test.py VIRT_AUTOSCALER
"""
import os
import re
import shutil
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "g"
ANSWER_WITHIN_S = 3


def config(path, port, state, node):
    harness.testdriver_config(path, port, state, node, """  %s:
    min: 0
    max: 4
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
""" % GROUP, comment="a node file that does not exist: the host stays down")


def stored(state):
    rows = harness.sqlite_query(state, "SELECT desired, paused FROM instance_groups "
                                "WHERE name = ?", (GROUP,))
    return tuple(rows[0]) if rows else None


def sql(state, stmt):
    import sqlite3
    db = sqlite3.connect(state, timeout=30, isolation_level=None)
    try:
        db.execute(stmt)
    finally:
        db.close()


def wait_log(daemon, pattern, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if not daemon.running():
            raise Fail("the daemon exited (%s)" % daemon.proc.returncode)
        with open(daemon.logpath) as f:
            if re.search(pattern, f.read()):
                return time.time() - t0
        time.sleep(0.2)
    raise Fail("no log line matching %r within %d s" % (pattern, timeout))


def command(api, method, what, body=None):
    t0 = time.time()
    status, reply = api.try_call(method, "/v1/groups/%s/%s" % (GROUP, what), body,
                                 timeout=30)
    return status, reply, time.time() - t0


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-lease-cmd-")
    token = harness.write_token(work)
    state = os.path.join(work, "state.db")
    cfg = os.path.join(work, "autoscale.yaml")
    port = harness.free_port()
    config(cfg, port, state, os.path.join(work, "absent-node.xml"))
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    problems = []
    trigger = False
    ok = False
    try:
        d.start()
        api.wait_up(30, d)
        harness.wait_ticks(api, 2, 10, d)
        since_ms = int(time.time() * 1000)

        log("the store refuses the lease's renewal (and nothing else)")
        sql(state, "CREATE TRIGGER va_test_refuse_renewal BEFORE UPDATE OF expires_ms "
            "ON leases BEGIN SELECT RAISE(ABORT, 'renewal refused by the test'); END")
        trigger = True
        took = wait_log(d, r"the lease expired .* not acting until it is", 40)
        log("the lease expired %.1f s later" % took)

        for method, what, body in (("PUT", "desired", {"desired": 3}),
                                   ("POST", "pause", None), ("POST", "resume", None)):
            status, reply, took = command(api, method, what, body)
            log("%s %s while the lease is not valid: %s after %.1f s: %s"
                % (method, what, status, took, reply))
            if status != 503:
                problems.append("%s %s: %s %s, want 503" % (method, what, status, reply))
            elif "lease" not in str(reply):
                problems.append("%s %s: 503 without naming the lease: %s"
                                % (method, what, reply))
            if took > ANSWER_WITHIN_S:
                problems.append("%s %s answered after %.1f s, want within %d s"
                                % (method, what, took, ANSWER_WITHIN_S))
        g = api.group(GROUP)
        if g["desired"] != 0 or g["paused"]:
            problems.append("GET /v1/groups/%s shows desired %s, paused %s; want 0, false"
                            % (GROUP, g["desired"], g["paused"]))
        if stored(state) != (0, 0):
            problems.append("the store has (desired, paused) %s, want (0, 0)"
                            % (stored(state),))
        applied = [e for kind in ("manual_scale", "pause", "resume")
                   for e in api.events(GROUP, kind) if e["time"] >= since_ms]
        if applied:
            problems.append("commands applied without a lease: %s"
                            % [(e["kind"], e["message"]) for e in applied])

        log("the store renews the lease again")
        sql(state, "DROP TRIGGER va_test_refuse_renewal")
        trigger = False
        wait_log(d, r"the lease is valid again", 15)
        for method, what, body in (("PUT", "desired", {"desired": 2}),
                                   ("POST", "pause", None)):
            status, reply, took = command(api, method, what, body)
            log("%s %s with the lease back: %s after %.1f s" % (method, what, status, took))
            if status != 200:
                problems.append("%s %s after the lease came back: %s %s, want 200"
                                % (method, what, status, reply))
        if stored(state) != (2, 1):
            problems.append("after the lease came back the store has (desired, paused) "
                            "%s, want (2, 1)" % (stored(state),))
        status, reply, _ = command(api, "POST", "resume")
        if status != 200 or stored(state) != (2, 0):
            problems.append("resume after the lease came back: %s %s, store %s"
                            % (status, reply, stored(state)))
        if problems:
            raise Fail("commands while the lease was not valid:\n  " + "\n  ".join(problems))
        ok = True
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        if trigger:
            sql(state, "DROP TRIGGER IF EXISTS va_test_refuse_renewal")
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
