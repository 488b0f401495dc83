#!/usr/bin/env python3
"""The group status stays whole across a reload (issue 11, "the empty
status after a reload").

The daemon runs on libvirt's test driver with a node file of our own
(test:///WORK/node.xml: three running domains carrying our metadata,
adopted at start as ready instances) and SQLite; no libvirtd, no guest.
The group is min = max = 3 with a 5 s scaling.interval, no heartbeat
required, so nothing changes in it while the test runs.

Once GET /v1/groups shows the group whole (desired 3, current 3, ready 3),
the test changes a reloadable setting (the group's cooldown), sends SIGHUP
and polls GET /v1/groups every 100 ms for 6 s: every answer must show the
same desired, current, ready, paused and metrics as before the reload, and
the reload must have been applied (a 'reload' event). The test driver's
statistics carry no counters, so "metrics" is {} before and after here;
the closed-loop test is where metrics have values.

On the code before issue 11 it fails: the reload rebuilds the groups with
current = ready = 0 and no metrics, and they come back only at the group's
next decision (up to one scaling.interval later: 5 s here, 10 s by
default).

Suite 'integration', about 10 s.

usage: reload_status_test.py VIRT_AUTOSCALER
"""
import os
import shutil
import signal
import sys
import time
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "web"
SIZE = 3
KEYS = ("desired", "current", "ready", "paused", "metrics")


def config(path, port, state, node, cooldown):
    harness.testdriver_config(path, port, state, node, """  %s:
    min: %d
    max: %d
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
    scaling: { interval: 5s, cooldown: %s }
""" % (GROUP, SIZE, SIZE, cooldown))


def status(api):
    for g in api.call("GET", "/v1/groups", timeout=5)["groups"]:
        if g["name"] == GROUP:
            return {k: g.get(k) for k in KEYS}
    raise Fail("group %s is not in GET /v1/groups" % GROUP)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-reload-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    port = harness.free_port()
    harness.test_node_xml(node, GROUP, [str(uuid.uuid4()) for _ in range(SIZE)])
    config(cfg, port, state, node, "0s")
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    ok = False
    try:
        d.start()
        api.wait_up(30, d)
        harness.wait_for("the adopted group whole", lambda g: g["current"] == SIZE and
                         g["ready"] == SIZE, 30, api, GROUP, period=0.2)
        before = status(api)
        log("before the reload: %s" % before)

        config(cfg, port, state, node, "30s")
        reloads = len(api.events(kind="reload"))
        d.proc.send_signal(signal.SIGHUP)
        t0 = time.time()
        bad = []
        n = 0
        while time.time() - t0 < 6:
            try:
                now = status(api)
            except (OSError, ValueError) as e:
                now = {"error": str(e)}
            n += 1
            if now != before:
                bad.append("%.1f s: %s" % (time.time() - t0, now))
            time.sleep(0.1)
        if len(api.events(kind="reload")) <= reloads:
            raise Fail("the reload was not applied:\n" + d.tail())
        if bad:
            raise Fail("%d of %d answers of GET /v1/groups in the 6 s after SIGHUP "
                       "differ from %s before it; first and last:\n  %s\n  %s"
                       % (len(bad), n, before, bad[0], bad[-1]))
        log("%d answers in 6 s, all whole" % n)
        ok = True
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
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
