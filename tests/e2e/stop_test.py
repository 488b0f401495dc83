#!/usr/bin/env python3
"""SIGTERM with nothing in progress stops the daemon within 2 s (issue 11).

The daemon runs on libvirt's test driver with a node file of our own (two
running domains carrying our metadata, adopted as ready instances; the
group is min = max = 2, so no job ever runs) and SQLite; no libvirtd.
Three times: start it, let its loop tick twice, open an HTTP connection
that stays idle (as a client with keep-alive does) and another with half a
request, wait 0.2, 0.5 or 0.9 s into the loop's second, send SIGTERM: it
must exit with status 0 within 2 s, and record its 'stop' event.

(SIGTERM while a job waits on a stopped host is host_outage_test.py's,
in the suite 'guest'.)

Suite 'integration', about 10 s.

usage: stop_test.py VIRT_AUTOSCALER
"""
import os
import shutil
import signal
import socket
import sys
import time
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "idle"
STOP_WITHIN_S = 2


def config(path, port, state, node):
    harness.testdriver_config(path, port, state, node, """  %s:
    min: 2
    max: 2
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
""" % GROUP)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-stop-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    port = harness.free_port()
    harness.test_node_xml(node, GROUP, [str(uuid.uuid4()) for _ in range(2)])
    config(cfg, port, os.path.join(work, "state.db"), node)
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    ok = False
    times = []
    try:
        for phase in (0.2, 0.5, 0.9):
            d.start()
            api.wait_up(30, d)
            harness.wait_ticks(api, 2, 10, d)
            stops = len(api.events(kind="stop"))
            idle = socket.create_connection(("127.0.0.1", port))
            half = socket.create_connection(("127.0.0.1", port))
            half.sendall(b"GET /v1/groups HTTP/1.1\r\nHost: x\r\n")
            time.sleep(phase)
            t0 = time.time()
            d.proc.send_signal(signal.SIGTERM)
            rc = d.wait_exit(30)
            took = time.time() - t0
            idle.close()
            half.close()
            if rc is None:
                d.kill9()
                raise Fail("SIGTERM: not stopped after 30 s\n" + d.tail(20))
            times.append(took)
            log("SIGTERM %.1f s after a tick: exit %d after %.2f s" % (phase, rc, took))
            if rc != 0 or took > STOP_WITHIN_S:
                raise Fail("SIGTERM with nothing in progress: exit status %d after %.1f s, "
                           "want 0 within %d s\n%s" % (rc, took, STOP_WITHIN_S, d.tail(20)))
            # the store is read without the daemon: start it again to ask
            d.start()
            api.wait_up(30, d)
            if len(api.events(kind="stop")) <= stops:
                raise Fail("the daemon did not record its 'stop' event")
            d.stop()
        ok = True
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        if d.stop() not in (0, None):
            ok = False
            log("the daemon did not stop cleanly:\n" + d.tail())
    if ok:
        shutil.rmtree(work, ignore_errors=True)
        log("PASS (stopped in %s s)" % ", ".join("%.2f" % t for t in times))
        return 0
    log("work directory kept: " + work)
    return 1


if __name__ == "__main__":
    sys.exit(main())
