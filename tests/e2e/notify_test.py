#!/usr/bin/env python3
"""The daemon's sd_notify messages, as systemd receives them
(contrib/virt-autoscaler.service.in: Type=notify, WatchdogSec=).

The daemon runs on libvirt's test driver (no libvirtd) with NOTIFY_SOCKET
pointing at a datagram socket of this test, and WATCHDOG_USEC set. It must
send READY=1 once up, WATCHDOG=1 while running, and on SIGHUP
"RELOADING=1" together with MONOTONIC_USEC= (sd_notify(3): a reload
without it cannot be told from an earlier one; Type=notify-reload needs
it), a CLOCK_MONOTONIC time between the SIGHUP and the message, then
READY=1 again; on SIGTERM, STOPPING=1.

Suite 'integration', about 5 s.

usage: notify_test.py VIRT_AUTOSCALER
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

GROUP = "nfy"


def recv_until(sock, pred, timeout, seen):
    t_end = time.time() + timeout
    while time.time() < t_end:
        sock.settimeout(max(0.05, t_end - time.time()))
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            break
        now_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        fields = dict(line.split("=", 1) for line in msg.split("\n") if "=" in line)
        seen.append(msg)
        if pred(fields):
            return fields, now_us
    raise Fail("no such notification within %d s; got %r" % (timeout, seen[-8:]))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-notify-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    port = harness.free_port()
    harness.test_node_xml(node, GROUP, [str(uuid.uuid4())])
    harness.testdriver_config(cfg, port, os.path.join(work, "state.db"), node,
                              """  %s:
    min: 1
    max: 1
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
""" % GROUP)
    sockpath = os.path.join(work, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sockpath)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    seen = []
    ok = False
    try:
        d.start({"NOTIFY_SOCKET": sockpath, "WATCHDOG_USEC": "2000000"})
        recv_until(sock, lambda f: f.get("READY") == "1", 30, seen)
        log("READY=1")
        recv_until(sock, lambda f: f.get("WATCHDOG") == "1", 10, seen)
        log("WATCHDOG=1")
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        d.proc.send_signal(signal.SIGHUP)
        f, at = recv_until(sock, lambda f: "RELOADING" in f, 10, seen)
        if f.get("RELOADING") != "1" or "MONOTONIC_USEC" not in f:
            raise Fail("reload notification %r: RELOADING=1 and "
                       "MONOTONIC_USEC= wanted" % seen[-1])
        mono = int(f["MONOTONIC_USEC"])
        if not before <= mono <= at:
            raise Fail("MONOTONIC_USEC=%d is not between the SIGHUP (%d) and "
                       "the message (%d)" % (mono, before, at))
        log("RELOADING=1 MONOTONIC_USEC=%d (%d us after the SIGHUP)"
            % (mono, mono - before))
        recv_until(sock, lambda f: f.get("READY") == "1", 10, seen)
        log("READY=1 after the reload")
        d.proc.send_signal(signal.SIGTERM)
        recv_until(sock, lambda f: f.get("STOPPING") == "1", 30, seen)
        if d.wait_exit(30) != 0:
            raise Fail("the daemon did not exit 0 after SIGTERM")
        ok = True
    except Fail as e:
        print("FAIL: %s" % e)
        print(d.tail(30))
    finally:
        d.kill9()
        sock.close()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
    print("PASS" if ok else "work dir kept: %s" % work)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
