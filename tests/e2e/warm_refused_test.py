#!/usr/bin/env python3
"""A host that refuses the warm pool's state (issue 13, bad input): the
managed save is refused, the daemon says so and scales out cold.

Whether a host can save a domain (a passed-through device blocks it, for
example) only the host knows, so `check` cannot. The host is a libvirtd of
the test's own (harness.OwnLibvirtd) reached through harness.LibvirtRelay,
which answers every virDomainManagedSave (REMOTE_PROC_DOMAIN_MANAGED_SAVE,
182) with the error a QEMU host gives for a domain it cannot migrate. Group
of tiny guests: min 1, max 3, warm_pool {size: 1, state: saved}.

Checked:
  - the pool's instance boots, checks in, its park is refused: one
    'warm_park_failed' event naming libvirt's message; the instance is
    removed (gone; no domain, volume or managed save image left) and the
    log warns that the pool is not refilled for a while;
  - no new instance is made for the pool afterwards (no refill loop);
  - `scale 1 -> 2` is served cold, and the decision says why ("served 0
    warm, 1 cold: the pool is not refilled after a failed park"); the new
    instance checks in.

Suite 'guest'; about 40 s.

usage: warm_refused_test.py VIRT_AUTOSCALER [--keep]
Needs VA_TEST_TINY_KERNEL and VA_TEST_TINY_INITRD and libvirtd; exits 77
without them.
"""
import os
import shutil
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "r"
POOL = "va-warm-refused"
MANAGED_SAVE = 182
REASON = ("Requested operation is not valid: cannot migrate domain: "
          "a device blocks migration (test relay)")


def main():
    args = [a for a in sys.argv[1:] if a != "--keep"]
    keep = "--keep" in sys.argv
    if len(args) != 1:
        print(__doc__)
        return 2
    binary = os.path.abspath(args[0])
    env = harness.need_env(("VA_TEST_TINY_KERNEL", "VA_TEST_TINY_INITRD"),
                           harness.GUEST_HINT)
    if not shutil.which("libvirtd"):
        print("SKIP: libvirtd is not installed (scripts/setup.sh --virt)")
        return 77
    work = harness.workdir("va-warm-refused-")
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
        relay.refuse([MANAGED_SAVE], REASON, times=1000)
        base = harness.tiny_disk(work, "base.qcow2")
        harness.tiny_config(cfg, port=port, state="sqlite://" + state,
                            uri=relay.uri, pool=POOL, group=GROUP, base=base,
                            kernel=env["VA_TEST_TINY_KERNEL"],
                            initrd=env["VA_TEST_TINY_INITRD"], min_size=1,
                            max_size=3, name_prefix="r",
                            group_extra="    warm_pool: { size: 1, state: saved }\n")
        harness.check_config(binary, cfg)
        d.start()
        api.wait_up(60, d)

        log("the pool's instance is prepared; its park is refused")
        t0 = time.time()
        failed = []
        while not failed:
            if time.time() - t0 > 180:
                raise Fail("no warm_park_failed event within 180 s: %s"
                           % [(i["id"][:8], i["state"]) for i in api.instances(GROUP)])
            if not d.running():
                raise Fail("the daemon exited:\n" + d.tail())
            failed = api.events(GROUP, "warm_park_failed")
            time.sleep(0.5)
        log("event: %s" % failed[0]["message"])
        if not relay.refused:
            raise Fail("the relay refused no call (precondition)")
        if "cannot migrate domain" not in failed[0]["message"]:
            raise Fail("the event does not name libvirt's reason: %s"
                       % failed[0]["message"])
        victim = failed[0]["instance"]
        t0 = time.time()
        while True:
            rows = harness.sqlite_query(state, "SELECT state FROM instances WHERE id = ?",
                                        (victim,))
            doms = [i for i in harness.group_domains(host.uri, GROUP) if i == victim]
            vols = harness.pool_volumes(host.uri, POOL).get(victim, [])
            if rows == [("gone",)] and not doms and not vols:
                break
            if time.time() - t0 > 30:
                raise Fail("instance %s: store %s, domains %s, volumes %s"
                           % (victim, rows, doms, vols))
            time.sleep(1)
        with open(d.logpath) as f:
            if "the pool is not refilled for 10 minutes" not in f.read():
                raise Fail("no warning that the pool is not refilled")
        refills = len(api.events(GROUP, "warm_refill"))
        time.sleep(5)
        if len(api.events(GROUP, "warm_refill")) != refills:
            raise Fail("the pool was refilled right after the failed park")

        log("scale 1 -> 2: served cold")
        since = int(time.time() * 1000)
        api.set_desired(GROUP, 2)
        t0 = time.time()
        while api.group(GROUP)["ready"] != 2:
            if time.time() - t0 > 120:
                raise Fail("2 ready not within 120 s: %s" % api.group(GROUP))
            time.sleep(0.5)
        dec = [e["message"] for e in api.events(GROUP, "decision") if e["time"] >= since]
        log("decision: %s" % dec)
        if not any("served 0 warm, 1 cold: the pool is not refilled after a "
                   "failed park" in m for m in dec):
            raise Fail("no decision says the scale-out was served cold and why: %s"
                       % dec)
        if api.events(GROUP, "warm_draw"):
            raise Fail("something was drawn from the pool")
        ok = True
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        if d.running() and d.stop() != 0:
            ok = False
            log("the daemon did not stop cleanly:\n" + d.tail())
        try:
            for name, _ in harness.group_domains(host.uri, GROUP).values():
                harness.virsh(host.uri, "destroy", name)
                harness.virsh(host.uri, "undefine", "--managed-save", name)
            harness.drop_pool(host.uri, POOL, pool_dir)
        except Exception as e:  # noqa: BLE001 - the host may be gone
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
