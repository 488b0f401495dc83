#!/usr/bin/env python3
"""Crash test: the daemon killed with SIGKILL at every step of provisioning
and of removal, then restarted, leaves no leaked domain or volume and no
duplicate, and its store agrees with libvirt.

The daemon honours VA_TEST_CRASH_AT=STEP (daemon_crash_point() in
src/provision.c raises SIGKILL when a job reaches STEP). One long scenario
per state backend, on a group of tiny guests (min 1) in a private storage
pool on the real libvirtd:

  step             how it is reached                       desired after
  provision_begin  first start provisions the group's min  1
  volume_created   scale 1 -> 2                            2
  remove_begin     scale 2 -> 1                            1
  seed_created     scale 1 -> 2                            2
  removed          scale 2 -> 1                            1
  domain_defined   scale 1 -> 2                            2
  started          scale 2 -> 3                            3

For each: start the daemon with the variable, cause the step, check that it
died by SIGKILL at that step; start it again without the variable, wait
until the group is steady, then check through the admin API
(/v1/instances, the store) and virsh (libvirt): exactly `desired` live
instances and domains, every domain with our metadata belongs to a live
instance and runs, every volume in the pool (<uuid>.qcow2, <uuid>-seed.iso)
belongs to a live instance. Guests are not waited for: the next crash runs
while earlier ones still boot; at the end every surviving instance must
check in.

usage: crash_test.py VIRT_AUTOSCALER_BINARY sqlite|mariadb [--keep]
(the work directory with the logs stays when the test fails or with --keep)
Needs VA_TEST_LIBVIRT_URI, VA_TEST_POOL, VA_TEST_TINY_KERNEL,
VA_TEST_TINY_INITRD (and VA_TEST_MARIADB_* for mariadb); exits 77
without them.
"""
import os
import shutil
import re
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Api, Daemon, Fail, GUEST_ENV, GUEST_HINT, check_config,  # noqa: E402
                     check_consistent, drop_pool, free_port, log, make_pool,
                     mariadb_create, need_env, remove_group_domains, test_host_uri, tiny_config,
                     tiny_disk, workdir, write_token)

STEPS = [
    # (crash point, desired size that causes it; None: the first start)
    ("provision_begin", None),
    ("volume_created", 2),
    ("remove_begin", 1),
    ("seed_created", 2),
    ("removed", 1),
    ("domain_defined", 2),
    ("started", 3),
]


def wait_consistent(api, uri, pool, group, desired, timeout):
    t0 = time.time()
    last = None
    while time.time() - t0 < timeout:
        try:
            live = check_consistent(api, uri, pool, group, desired)
            return live, time.time() - t0
        except Fail as e:
            if str(e) != last:
                log("not steady yet: %s" % str(e).replace("\n", " "))
                last = str(e)
        except OSError as e:
            last = str(e)
        time.sleep(1)
    raise Fail("not steady after %d s: %s" % (timeout, last))


def crash_at(daemon, api, group, step, desired):
    """Start the daemon with VA_TEST_CRASH_AT=step, cause the step, and
    check that it died of SIGKILL there."""
    daemon.start({"VA_TEST_CRASH_AT": step})
    t0 = time.time()
    if desired is not None:
        api.wait_up(60, daemon)
        api.set_desired(group, desired)
    rc = daemon.wait_exit(120)
    if rc is None:
        daemon.kill9()
        raise Fail("crash point %s: the daemon was still running after 120 s" % step)
    if rc != -signal.SIGKILL:
        raise Fail("crash point %s: the daemon exited with %s, not by SIGKILL" % (step, rc))
    if "VA_TEST_CRASH_AT=%s" % step not in daemon.tail(40):
        raise Fail("crash point %s: the daemon died by SIGKILL but not at that step" % step)
    # the domain the job was working on, from this run's log
    text = open(daemon.logpath).read()
    text = text[text.rfind("==== "):]
    m = re.findall(r"(?:new instance|removing) (\S+) (?:placed|from)", text)
    if not m:
        raise Fail("crash point %s: no provisioning or removal in the log" % step)
    log("crash point %s: killed by SIGKILL %.1f s after start, working on %s"
        % (step, time.time() - t0, m[-1]))
    return m[-1]


def main():
    if len(sys.argv) < 3 or sys.argv[2] not in ("sqlite", "mariadb"):
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    backend = sys.argv[2]
    keep = "--keep" in sys.argv
    env = need_env(GUEST_ENV, GUEST_HINT)
    uri = test_host_uri(env)
    drop_db = None
    password_file = None
    work = workdir("crash-%s-" % backend)
    tag = "%d" % (os.getpid() % 100000)
    group = "crash%s%s" % (backend[0], tag)
    pool = "va-crash-%s-%s" % (backend, tag)
    pool_dir = os.path.join(work, "pool")
    if backend == "mariadb":
        state, password_file, drop_db = mariadb_create("va_test_crash")
    else:
        state = "sqlite://%s/state.db" % work
    port = free_port()
    token = write_token(work)
    base = tiny_disk(work, "tiny-disk.qcow2")
    cfg = os.path.join(work, "autoscale.yaml")
    tiny_config(cfg, port=port, state=state, uri=uri, pool=pool, group=group,
                base=base, kernel=env["VA_TEST_TINY_KERNEL"],
                initrd=env["VA_TEST_TINY_INITRD"], state_password=password_file,
                min_size=1, max_size=4, user_data="#cloud-config\n#tiny: heartbeat=5\n",
                group_extra="    scale_in: { drain: 5s }\n")
    daemon = Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    api = Api("http://127.0.0.1:%d" % port, token)
    rc = 1
    t_start = time.time()
    try:
        check_config(binary, cfg)
        make_pool(uri, pool, pool_dir)
        log("%s: group %s, pool %s, work dir %s" % (backend, group, pool, work))
        desired = 1
        for step, target in STEPS:
            t0 = time.time()
            victim = crash_at(daemon, api, group, step, target)
            if target is not None:
                desired = target
            daemon.start()
            api.wait_up(60, daemon)
            live, t_steady = wait_consistent(api, uri, pool, group, desired, 120)
            kept = victim in [i["domain"] for i in live.values()]
            if kept != (step == "started"):
                raise Fail("after a crash at %s, %s was %s" % (
                    step, victim, "kept" if kept else "not kept"))
            rcd = daemon.stop()
            if rcd != 0:
                raise Fail("the daemon exited with %s after SIGTERM" % rcd)
            log("after a crash at %s: steady with %d live instances (%s) in %.1f s; "
                "step total %.1f s" % (step, len(live),
                                       ", ".join(sorted(i["state"] for i in live.values())),
                                       t_steady, time.time() - t0))
        # the history must say what recovery did
        daemon.start()
        api.wait_up(60, daemon)
        recovered = api.events(group, kind="recovered")
        for e in recovered:
            log("event: %s" % e["message"])
        if len(recovered) < len(STEPS) - 1:
            raise Fail("expected a 'recovered' event per crash, saw %d" % len(recovered))
        check_consistent(api, uri, pool, group, desired)
        # every survivor works: its guest checks in with the secret that
        # was stored before the crash (the one kept at 'started' included)
        t0 = time.time()
        while not all(i["state"] == "ready" for i in api.instances(group)):
            if time.time() - t0 > 240:
                raise Fail("not every instance checked in within 240 s: %s"
                           % [(i["domain"], i["state"]) for i in api.instances(group)])
            time.sleep(2)
        check_consistent(api, uri, pool, group, desired)
        log("all %d instances checked in (waited %.0f s)" % (desired, time.time() - t0))
        if daemon.stop() != 0:
            raise Fail("the daemon did not stop cleanly")
        rc = 0
    except Fail as e:
        print("FAIL: %s" % e)
        print("---- daemon log (last 80 lines) ----")
        print(daemon.tail(80))
    finally:
        daemon.kill9()
        if not keep:
            remove_group_domains(uri, group)
            drop_pool(uri, pool, pool_dir)
            if drop_db:
                drop_db()
            if rc == 0:
                shutil.rmtree(work, ignore_errors=True)
    print("crash test (%s): %s in %.0f s" % (backend, "passed" if rc == 0 else "FAILED",
                                             time.time() - t_start))
    return rc


if __name__ == "__main__":
    sys.exit(main())
