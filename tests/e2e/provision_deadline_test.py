#!/usr/bin/env python3
"""A provisioning whose libvirt steps outlast its deadline is stopped
between steps, rolled back, and the group provisions a new instance
(issue 11: the deadline checked by jobs_journal_step() in jobs.c).

The host is a libvirtd of the test's own (harness.OwnLibvirtd) with a
private pool, reached through harness.LibvirtRelay, which holds the first
virDomainDefineXML call (REMOTE_PROC_DOMAIN_DEFINE_XML, 11, and its
_FLAGS variant, 350) for HOLD_S seconds: a libvirt step that takes that
long (a host under load). The daemon runs with
VA_TEST_PROVISION_DEADLINE_MS=DEADLINE_MS (the deadline counts from the
moment the base image is in the pool; 10 minutes without it), SQLite
state, a group of tiny guests at 0.

Scale to 1. Checked:
  - the define call was held (else the test proves nothing and says so);
  - the first instance's provisioning fails naming the deadline (a
    'provision_failed' event "... deadline passed before step
    'domain_defined'; rolled back"), the instance ends 'gone', and
    nothing of it stays on the host (its domain, defined once the held
    call went through, and both volumes are gone: virsh);
  - the group recovers: a second instance is provisioned (after the
    provisioning backoff, 10 s) and the store and libvirt agree
    (harness.check_consistent: one live instance, its domain running,
    its two volumes, nothing else in the pool).

Without the deadline the held job simply finishes late and the first
instance boots: the test fails.

Suite 'guest' (a real libvirtd and QEMU; the guests need not boot
fully); about 35 s.

usage: provision_deadline_test.py VIRT_AUTOSCALER [--keep]
Needs VA_TEST_TINY_KERNEL and VA_TEST_TINY_INITRD (scripts/services/images.sh)
and libvirtd; exits 77 without them.
"""
import os
import shutil
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "p"
POOL = "va-deadline"
DEADLINE_MS = 3000
HOLD_S = 6
DEFINE_PROCS = (11, 350)


def main():
    args = [a for a in sys.argv[1:] if a != "--keep"]
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
    work = harness.workdir("va-deadline-")
    token = harness.write_token(work)
    port = harness.free_port()
    cfg = os.path.join(work, "autoscale.yaml")
    pool_dir = os.path.join(work, "pool")
    state = os.path.join(work, "state.db")
    host = harness.OwnLibvirtd()
    relay = None
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    ok = False
    try:
        host.start()
        harness.make_pool(host.uri, POOL, pool_dir)
        relay = harness.LibvirtRelay(os.path.join(host.dir, "relay.sock"), host.uri)
        base = harness.tiny_disk(work, "base.qcow2")
        harness.tiny_config(cfg, port=port, state="sqlite://" + state,
                            uri=relay.uri, pool=POOL, group=GROUP, base=base,
                            kernel=env["VA_TEST_TINY_KERNEL"],
                            initrd=env["VA_TEST_TINY_INITRD"], min_size=0, max_size=1)
        harness.check_config(binary, cfg)
        d.start({"VA_TEST_PROVISION_DEADLINE_MS": str(DEADLINE_MS)})
        api.wait_up(60, d)
        harness.wait_ticks(api, 2, 30, d)

        log("scale to 1; the first define call is held %d s, the deadline is %d ms"
            % (HOLD_S, DEADLINE_MS))
        relay.hold(DEFINE_PROCS, HOLD_S)
        since = int(time.time() * 1000)
        api.set_desired(GROUP, 1)
        t0 = time.time()
        failed = []
        while time.time() - t0 < 40 and not failed:
            if not d.running():
                raise Fail("the daemon exited (%s)" % d.proc.returncode)
            failed = [e for e in api.events(GROUP, "provision_failed") if e["time"] >= since]
            time.sleep(0.5)
        if not relay.held:
            raise Fail("no define call went through the relay: the test did not hold "
                       "a libvirt step (precondition)\n" + d.tail())
        if not failed:
            raise Fail("no provisioning failed within 40 s although its define call "
                       "was held %d s past a %d ms deadline: %s"
                       % (HOLD_S, DEADLINE_MS, [(i["id"], i["state"])
                                               for i in api.instances(GROUP)]))
        first = failed[0]["instance"]
        log("provisioning of %s failed: %s" % (first, failed[0]["message"]))
        if "deadline" not in failed[0]["message"] or "rolled back" not in failed[0]["message"]:
            raise Fail("the first provisioning failed, but not on its deadline with a "
                       "rollback: %s" % failed[0]["message"])

        log("the group recovers with a new instance")
        t0 = time.time()
        while True:
            try:
                live = harness.check_consistent(api, relay.uri, POOL, GROUP, desired=1)
                if first not in live:
                    break
            except Fail as e:
                if time.time() - t0 > 40:
                    raise Fail("40 s after the rollback: %s" % e)
            time.sleep(1)
        rows = harness.sqlite_query(state, "SELECT state FROM instances WHERE id = ?",
                                    (first,))
        if rows != [("gone",)]:
            raise Fail("instance %s in the store: %s, want gone" % (first, rows))
        rows = harness.sqlite_query(state, "SELECT action, step, status, error FROM journal "
                                    "WHERE instance_id = ?", (first,))
        log("journal of %s: %s" % (first, rows))
        if len(rows) != 1 or rows[0][2] != "failed" or "deadline" not in (rows[0][3] or ""):
            raise Fail("the journal of %s: %s, want one entry failed on the deadline"
                       % (first, rows))
        doms = [n for i, (n, _) in harness.group_domains(host.uri, GROUP).items() if i == first]
        vols = harness.pool_volumes(host.uri, POOL).get(first, [])
        if doms or vols:
            raise Fail("instance %s left domains %s, volumes %s" % (first, doms, vols))
        log("rolled back and replaced by %s after %.0f s" % (list(live)[0], time.time() - t0))
        ok = True
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        if d.running():
            if d.stop() != 0:
                ok = False
                log("the daemon did not stop cleanly:\n" + d.tail())
        try:
            harness.remove_group_domains(host.uri, GROUP)
            harness.drop_pool(host.uri, POOL, pool_dir)
        except Exception as e:  # the host may be gone
            log("cleanup on the host: %s" % e)
        if relay:
            relay.close()
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
