#!/usr/bin/env python3
"""Crash test of the warm pool (issue 13): the daemon killed with SIGKILL
at every step the warm pool adds, then restarted, leaves nothing leaked
(domains, volumes, managed save images) and nothing counted twice.

A group of tiny guests (min 1, max 3, warm_pool {size: 1, state: saved,
reuse_on_scale_in: true}) in a private pool on the test host, one scenario
per state backend (VA_TEST_CRASH_AT, event_crash_point()):

  step           how it is reached                          desired after
  seed_created   the first start: the pool's refill is      1
                 provisioned (or the first instance)
  park_begin     scale 1 -> 2: the warm one is drawn, the   2
                 refill checks in and is parked
  resume_begin   scale 2 -> 3: the last warm one is drawn   3
  parked         scale 3 -> 1: one is returned to the pool  1
                 and parked, the rest removed
  resumed        scale 1 -> 2: the warm one is drawn        2

After each: the daemon died at that step; restarted without the variable,
the group settles: `desired` ready instances and the pool at its target
(min(1, max - desired)) of warm ones; every instance the store does not
call gone has its domain (running when ready; shut off with a managed
save image when warm) and its two volumes; nothing else of the group is
on the host. A drawn instance whose resume was cut short is resumed by the
next run (the jobs are idempotent: their intent is the instance's state),
never provisioned again, and a parked one is not parked twice.

usage: warm_crash_test.py VIRT_AUTOSCALER sqlite|mariadb [--keep]
Needs VA_TEST_LIBVIRT_URI, VA_TEST_POOL, VA_TEST_TINY_KERNEL,
VA_TEST_TINY_INITRD (and VA_TEST_MARIADB_* for mariadb); exits 77
without them.
"""
import os
import re
import shutil
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

MAX = 3
STEPS = [
    ("seed_created", None),
    ("park_begin", 2),
    ("resume_begin", 3),
    ("parked", 1),
    ("resumed", 2),
]


def target(desired):
    return min(1, MAX - desired)


def settled(api, uri, pool, group, desired):
    """None when the group has settled and store and host agree, else what
    is not so."""
    insts = api.instances(group)
    by = {}
    for i in insts:
        by.setdefault(i["state"], []).append(i)
    ready = by.get("ready", [])
    warm = by.get("warm", [])
    other = [(i["id"][:8], i["state"]) for i in insts
             if i["state"] not in ("ready", "warm")]
    if other:
        return "instances in transit: %s" % other
    if len(ready) != desired or len(warm) != target(desired):
        return "%d ready (want %d), %d warm (want %d)" % (
            len(ready), desired, len(warm), target(desired))
    doms = harness.group_domains(uri, group)
    vols = harness.pool_volumes(uri, pool)
    live = {i["id"]: i for i in ready + warm}
    problems = []
    for iid, (name, running) in doms.items():
        if iid not in live:
            problems.append("domain %s belongs to no instance" % name)
        elif live[iid]["state"] == "ready" and not running:
            problems.append("ready %s is not running" % name)
        elif live[iid]["state"] == "warm":
            info = harness.virsh(uri, "dominfo", name)
            if running or "Managed save:   yes" not in info:
                problems.append("warm %s: running %s, managed save %s"
                                % (name, running, "Managed save:   yes" in info))
    for iid in live:
        if iid not in doms:
            problems.append("instance %s has no domain" % iid)
    for iid, names in vols.items():
        if iid not in live:
            problems.append("volumes %s belong to no instance" % names)
        elif len(names) != 2:
            problems.append("instance %s has volumes %s" % (iid, names))
    return "; ".join(problems) or None


def wait_settled(api, uri, pool, group, desired, timeout, d):
    t0 = time.time()
    last = None
    while time.time() - t0 < timeout:
        if not d.running():
            raise Fail("the daemon exited:\n" + d.tail())
        try:
            why = settled(api, uri, pool, group, desired)
        except OSError as e:
            why = str(e)
        if why is None:
            return time.time() - t0
        if why != last:
            log("  not settled: %s" % why)
            last = why
        time.sleep(1)
    raise Fail("not settled after %d s: %s" % (timeout, last))


def crash_at(d, api, group, step, desired):
    d.start({"VA_TEST_CRASH_AT": step})
    t0 = time.time()
    if desired is not None:
        api.wait_up(60, d)
        api.set_desired(group, desired)
    rc = d.wait_exit(240)
    if rc is None:
        d.kill9()
        raise Fail("crash point %s: still running after 240 s" % step)
    if rc != -signal.SIGKILL or "VA_TEST_CRASH_AT=%s" % step not in d.tail(40):
        raise Fail("crash point %s: exited with %s, not by SIGKILL there:\n%s"
                   % (step, rc, d.tail(20)))
    log("crash point %s: killed %.1f s after the start" % (step, time.time() - t0))


def main():
    if len(sys.argv) < 3 or sys.argv[2] not in ("sqlite", "mariadb"):
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    backend = sys.argv[2]
    keep = "--keep" in sys.argv
    env = harness.need_env(harness.GUEST_ENV, harness.GUEST_HINT)
    uri = harness.test_host_uri(env)
    work = harness.workdir("warm-crash-%s-" % backend)
    tag = "%d" % (os.getpid() % 100000)
    group = "wc%s%s" % (backend[0], tag)
    pool = "va-wcrash-%s-%s" % (backend, tag)
    pool_dir = os.path.join(work, "pool")
    drop_db = password_file = None
    if backend == "mariadb":
        state, password_file, drop_db = harness.mariadb_create("va_test_wcrash")
    else:
        state = "sqlite://%s/state.db" % work
    port = harness.free_port()
    token = harness.write_token(work)
    base = harness.tiny_disk(work, "tiny-disk.qcow2")
    cfg = os.path.join(work, "autoscale.yaml")
    harness.tiny_config(cfg, port=port, state=state, uri=uri, pool=pool,
                        group=group, base=base,
                        kernel=env["VA_TEST_TINY_KERNEL"],
                        initrd=env["VA_TEST_TINY_INITRD"],
                        state_password=password_file, min_size=1, max_size=MAX,
                        name_prefix="wc",
                        group_extra="    scale_in: { drain: 5s }\n"
                        "    warm_pool: { size: 1, state: saved, "
                        "reuse_on_scale_in: true }\n")
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    rc = 1
    t_start = time.time()
    try:
        harness.check_config(binary, cfg)
        harness.make_pool(uri, pool, pool_dir)
        log("%s: group %s, pool %s, work dir %s" % (backend, group, pool, work))
        desired = 1
        for step, want in STEPS:
            t0 = time.time()
            crash_at(d, api, group, step, want)
            if want is not None:
                desired = want
            d.start()
            api.wait_up(60, d)
            took = wait_settled(api, uri, pool, group, desired, 240, d)
            if d.stop() != 0:
                raise Fail("the daemon exited uncleanly after SIGTERM")
            log("after a crash at %s: settled at %d ready + %d warm in %.0f s "
                "(step %.0f s)" % (step, desired, target(desired), took,
                                   time.time() - t0))
        d.start()
        api.wait_up(60, d)
        text = open(d.logpath).read()
        provisions = len(re.findall(r"warm_refill: new instance|provision: new instance",
                                    text))
        log("%d instances provisioned over the test (5 crashes)" % provisions)
        why = settled(api, uri, pool, group, desired)
        if why:
            raise Fail("at the end: %s" % why)
        if d.stop() != 0:
            raise Fail("the daemon did not stop cleanly")
        rc = 0
    except Fail as e:
        print("FAIL: %s" % e)
        print("---- daemon log (last 60 lines) ----")
        print(d.tail(60))
    finally:
        d.kill9()
        if not keep:
            for name, _ in harness.group_domains(uri, group).values():
                harness.virsh(uri, "destroy", name)
                harness.virsh(uri, "undefine", "--managed-save", name)
            harness.drop_pool(uri, pool, pool_dir)
            if drop_db:
                drop_db()
            if rc == 0:
                shutil.rmtree(work, ignore_errors=True)
    print("warm crash test (%s): %s in %.0f s" % (
        backend, "passed" if rc == 0 else "FAILED", time.time() - t_start))
    return rc


if __name__ == "__main__":
    sys.exit(main())
