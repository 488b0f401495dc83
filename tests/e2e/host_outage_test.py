#!/usr/bin/env python3
"""A libvirt host that stops while a provisioning job waits on it (issue 11):
the daemon survives the host's return, and SIGTERM stops it meanwhile.

The host is a libvirtd of the test's own (harness.OwnLibvirtd: the session
daemon of the user nobody, as scripts/services/libvirt.sh starts host 2),
with a private storage pool; the group is of tiny guests, at 0 to start
with, SQLite state. The host "stops" by SIGSTOP: it keeps its socket and
its connections, accepts and answers nothing (a hung or frozen host), and
comes back with SIGCONT.

0. SIGTERM with nothing in progress (the group at 0, the host up) stops the
   daemon within 2 s here too (stop_test.py shows it on the test driver).
1. Outage during provisioning, in 4 rounds: scale 0 -> 2, and right after
   the first 'provision' event (0 to 3 s: the jobs' first libvirt calls)
   SIGSTOP the host for 25 to 50 s (past keepalive's 5 s x 3), then
   SIGCONT (ROUNDS). The daemon
   must be alive throughout and 20 s after the host returns; then the
   group scales back to 0 and must leave no domain or volume behind.
   Before issue 11 the daemon died by SIGSEGV in about half of such runs
   (a worker in virStoragePoolLookupByName on a connection that host.c
   closes from another thread once keepalive declares it dead).
2. SIGTERM during the outage (the daemon restarted first with
   reconciliation every 10 min, so that the inventory holds an idle
   connection to the host): scale 0 -> 1, SIGSTOP the host right after
   the 'provision' event, 3 s later SIGTERM the daemon: it must exit, with
   status 0, within 5 s. In-flight jobs are not waited for: they are left
   to the intent journal, exactly as after a crash (docs/testing.md, the
   crash test); so SIGCONT the host, start the daemon again, and the group
   must settle (store and libvirt agree, harness.check_consistent), and
   after a scale to 0 nothing of it may remain on the host. Before issue
   11 the daemon waited for the job, which waited for the host: it did not
   exit within the outage.

Every failure is reported with the daemon's exit status (-11 is SIGSEGV)
and the end of its log. Cleanup (daemon, the host's domains, pool and
libvirtd) also runs when the test fails.

Suite 'guest' (a real libvirtd and QEMU; guests need not boot fully),
about 5 minutes.

usage: host_outage_test.py VIRT_AUTOSCALER [--rounds N] [--keep]
(--rounds 1: the first round only, as the default suite runs it: the
host back just after keepalive gave up; --rounds 2 adds the last, back
long after; the suite 'heavy' runs all four)
Needs VA_TEST_TINY_KERNEL and VA_TEST_TINY_INITRD (scripts/services/images.sh)
and libvirtd; exits 77 without them.
"""
import os
import shutil
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "o"
POOL = "va-outage"
# (seconds between the 'provision' event and SIGSTOP, seconds stopped):
# the jobs are caught in different calls (pool lookup, volume creation,
# define, start), and the host comes back just after keepalive gave up
# (5 s x 3) or long after it
ROUNDS = [(0, 30), (0.5, 45), (1.5, 25), (3, 50)]
SIZE = 2
STOP_WITHIN_S = 5
IDLE_STOP_WITHIN_S = 2


def wait_provision(api, since_ms, daemon, timeout=60):
    """The first 'provision' event at or after since_ms."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if not daemon.running():
            raise Fail("the daemon exited (%s)" % daemon.proc.returncode)
        ev = [e for e in api.events(GROUP, "provision", limit=50) if e["time"] >= since_ms]
        if ev:
            return ev[0]
        time.sleep(0.05)
    raise Fail("no provisioning within %d s of the scale" % timeout)


def alive_for(daemon, seconds, what):
    t0 = time.time()
    while time.time() - t0 < seconds:
        if not daemon.running():
            raise Fail("the daemon died %s, %.0f s in: exit status %s (-11: SIGSEGV)\n%s"
                       % (what, time.time() - t0, daemon.proc.returncode, daemon.tail(30)))
        time.sleep(0.5)


def scale_to_zero(api, uri, group, daemon, ids):
    api.set_desired(group, 0)
    t0 = time.time()
    while time.time() - t0 < 180:
        if not daemon.running():
            raise Fail("the daemon exited (%s)" % daemon.proc.returncode)
        live = [i for i in api.instances(group) if i["state"] in harness.LIVE or
                i["state"] in ("draining", "deleting")]
        doms, vols = harness.leftovers(uri, POOL, group, ids)
        if not live and not doms and not vols:
            return time.time() - t0
        time.sleep(1)
    raise Fail("after a scale to 0, still: instances %s, domains %s, volumes %s"
               % (live, doms, vols))


def main():
    argv = sys.argv[1:]
    rounds = ROUNDS
    if "--rounds" in argv:
        k = argv.index("--rounds")
        # the default suite runs the first and the last: the host back
        # just after keepalive gave up, and long after
        rounds = [ROUNDS[0], ROUNDS[-1]][:int(argv[k + 1])] \
            if int(argv[k + 1]) < len(ROUNDS) else ROUNDS
        del argv[k:k + 2]
    args = [a for a in argv if a != "--keep"]
    keep = "--keep" in sys.argv
    if len(args) != 1:
        print(__doc__)
        return 2
    binary = os.path.abspath(args[0])
    env = harness.need_env(("VA_TEST_TINY_KERNEL", "VA_TEST_TINY_INITRD"),
                           "run scripts/services/images.sh start, or scripts/test.sh")
    if not shutil.which("libvirtd"):
        print("SKIP: libvirtd is not installed (scripts/setup.sh --virt)")
        return 77
    work = harness.workdir("va-outage-")
    token = harness.write_token(work)
    port = harness.free_port()
    cfg = os.path.join(work, "autoscale.yaml")
    pool_dir = os.path.join(work, "pool")
    host = harness.OwnLibvirtd()
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    ids = set()
    ok = False
    try:
        host.start()
        harness.make_pool(host.uri, POOL, pool_dir)
        base = harness.tiny_disk(work, "base.qcow2")
        harness.tiny_config(cfg, port=port, state="sqlite://" + os.path.join(work, "state.db"),
                            uri=host.uri, pool=POOL, group=GROUP, base=base,
                            kernel=env["VA_TEST_TINY_KERNEL"],
                            initrd=env["VA_TEST_TINY_INITRD"], min_size=0, max_size=SIZE)
        harness.check_config(binary, cfg)
        d.start()
        api.wait_up(60, d)
        harness.wait_ticks(api, 3, 30, d)
        log("SIGTERM with nothing in progress, on a real host")
        t0 = time.time()
        d.proc.send_signal(signal.SIGTERM)
        rc = d.wait_exit(60)
        took = time.time() - t0
        if rc is None:
            d.kill9()
        log("exit %s after %.1f s" % (rc, took))
        if rc != 0 or took > IDLE_STOP_WITHIN_S:
            raise Fail("SIGTERM with nothing in progress: exit status %s after %.1f s, "
                       "want 0 within %d s\n%s" % (rc, took, IDLE_STOP_WITHIN_S, d.tail(20)))
        d.start()
        api.wait_up(60, d)

        problems = []
        for r, (delay, hold) in enumerate(rounds, 1):
            log("round %d/%d: scale to %d, SIGSTOP the host %.1f s after the 'provision' "
                "event, for %d s" % (r, len(rounds), SIZE, delay, hold))
            since = int(time.time() * 1000)
            api.set_desired(GROUP, SIZE)
            ev = wait_provision(api, since, d)
            time.sleep(delay)
            host.pause()
            ids.add(ev["instance"])
            log("host stopped (instance %s)" % ev["instance"])
            try:
                alive_for(d, hold, "while the host was stopped")
                host.resume()
                log("host resumed")
                alive_for(d, 20, "after the host resumed")
            except Fail as e:
                # go on with the other rounds: how often it happens matters
                log("round %d: %s" % (r, e))
                problems.append("round %d: %s" % (r, str(e).splitlines()[0]))
                host.resume()
                d.start()
                api.wait_up(60, d)
            ids.update(i["id"] for i in api.instances(GROUP))
            took = scale_to_zero(api, host.uri, GROUP, d, ids)
            log("round %d: group back to 0 with nothing left (%.0f s)" % (r, took))

        log("SIGTERM while the host is stopped under a provisioning job")
        # Restarted with reconciliation every 10 min: the inventory's
        # pass at the start is done and holds its connection, idle, when
        # the host stops (with passes every 30 s, whether one was running
        # then was chance). Closing that connection waited for keepalive
        # (about 17 s) before the fix: one failure in three CI runs.
        if d.stop() != 0:
            raise Fail("the daemon did not stop cleanly before the SIGTERM phase:\n"
                       + d.tail(20))
        d.start({"VA_TEST_RECONCILE_MS": "600000"})
        api.wait_up(60, d)
        harness.wait_ticks(api, 2, 30, d)
        since = int(time.time() * 1000)
        api.set_desired(GROUP, 1)
        ev = wait_provision(api, since, d)
        ids.add(ev["instance"])
        host.pause()
        time.sleep(3)
        t0 = time.time()
        d.proc.send_signal(signal.SIGTERM)
        rc = d.wait_exit(60)
        took = time.time() - t0
        host.resume()
        if rc is None:
            d.kill9()
            problems.append("SIGTERM during the outage: the daemon had not exited after "
                           "60 s (killed with SIGKILL)")
        elif rc != 0 or took > STOP_WITHIN_S:
            problems.append("SIGTERM during the outage: exit status %s after %.1f s, "
                           "want 0 within %d s" % (rc, took, STOP_WITHIN_S))
        log("SIGTERM during the outage: exit %s after %.1f s" % (rc, took))

        log("restart after SIGCONT: the journal finishes what was in flight")
        d.start()
        api.wait_up(60, d)
        t0 = time.time()
        while True:
            try:
                harness.check_consistent(api, host.uri, POOL, GROUP)
                break
            except Fail as e:
                if time.time() - t0 > 120:
                    raise Fail("120 s after the restart: %s" % e)
            time.sleep(2)
        ids.update(i["id"] for i in api.instances(GROUP))
        scale_to_zero(api, host.uri, GROUP, d, ids)
        log("settled after the restart, nothing left after a scale to 0")
        if problems:
            raise Fail("%d problems in %d outages and the SIGTERM:\n  %s"
                       % (len(problems), len(rounds), "\n  ".join(problems)))
        ok = True
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        host.resume()
        if d.running():
            if d.stop() != 0:
                ok = False
                log("the daemon did not stop cleanly:\n" + d.tail())
        try:
            harness.remove_group_domains(host.uri, GROUP)
            harness.drop_pool(host.uri, POOL, pool_dir)
        except Exception as e:  # the host may be gone
            log("cleanup on the host: %s" % e)
        host.stop()
    if ok and not keep:
        shutil.rmtree(work, ignore_errors=True)
    if ok:
        log("PASS")
        return 0
    log("work directory kept: " + work)
    return 1


if __name__ == "__main__":
    sys.exit(main())
