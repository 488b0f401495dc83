#!/usr/bin/env python3
"""Health end to end, on real tiny guests (two daemons side by side, SQLite).

A. Never checking in: group `hl` (3 guests, health.ready_within 10s,
   max_replace 2, max_replace_share 100%) whose daemon gives the guests a
   check-in URL on a port where nothing listens (daemon.public_url), so no
   phone-home or heartbeat ever arrives. Every instance must be marked
   unhealthy and replaced; at no time may more than max_replace removals
   be in flight (from the events: a 'replace' until the instance's
   'removed'; and sampled from /v1/instances), although all three go
   unhealthy together. Afterwards (group paused) store and libvirt agree.
   The same with max_replace 10 and max_replace_share 34% (group `hs`,
   side by side): at most one removal in flight.
B. Busy: group `bz` (2 guests whose heartbeat says busy: `#tiny: busy=true`,
   health.busy_max 30s, min_size 0), scaled to 2 once A is over, is
   scaled 2 -> 1 once both are ready and busy.
   Nothing may be removed while the guests are busy for less than
   busy_max; then one is removed ("busy for too long") and store and
   libvirt agree on 1.
C. Heartbeats stop: the remaining guest of `bz` is frozen (virsh suspend);
   after health.heartbeat_timeout (15s) it must be marked unhealthy and
   replaced by a new instance; store and libvirt agree on 1 again.

usage: health_test.py VIRT_AUTOSCALER_BINARY [--keep]
Needs VA_TEST_LIBVIRT_URI, VA_TEST_POOL, VA_TEST_TINY_KERNEL,
VA_TEST_TINY_INITRD; exits 77 without them.
"""
import os
import shutil
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Api, Daemon, Fail, GUEST_ENV, GUEST_HINT, check_config,  # noqa: E402
                     check_consistent, drop_pool, free_port, log, make_pool,
                     need_env, remove_group_domains, test_host_uri, tiny_config,
                     tiny_disk, virsh, workdir, write_token)

MAX_REPLACE = 2
BUSY_MAX_S = 30


def wait_consistent(api, uri, pool, group, desired, timeout):
    t0 = time.time()
    last = None
    while time.time() - t0 < timeout:
        try:
            return check_consistent(api, uri, pool, group, desired)
        except (Fail, OSError) as e:
            last = str(e)
        time.sleep(1)
    raise Fail("not steady after %d s: %s" % (timeout, last))


def in_flight_from_events(events):
    """Most removals in flight at once: from an instance's 'replace' event
    to its 'removed' event."""
    open_, most = set(), 0
    for e in sorted(events, key=lambda e: e["id"]):
        if e["kind"] == "replace":
            open_.add(e["instance"])
            most = max(most, len(open_))
        elif e["kind"] in ("removed", "provision_failed") or e["kind"] == "recovered":
            open_.discard(e["instance"])
    return most


def never_checking_in(api, uri, pool, group, limit, what):
    t0 = time.time()
    sampled = 0
    while time.time() - t0 < 150:
        insts = api.instances(group)
        removing = [i for i in insts if i["state"] in ("draining", "deleting")]
        sampled = max(sampled, len(removing))
        if sampled > limit:
            raise Fail("%d removals in flight at once (%s): %s"
                       % (len(removing), what, removing))
        if any(i["state"] == "ready" for i in insts):
            raise Fail("an instance became ready although its guest cannot check in")
        replaced = api.events(group, kind="replace")
        if len({e["instance"] for e in replaced}) >= 4:
            break
        time.sleep(0.3)
    else:
        raise Fail("fewer than 4 replacements within 150 s")
    events = api.events(group)
    unhealthy = [e for e in events if e["kind"] == "unhealthy"]
    if not all("did not check in within 10 s" in e["message"] for e in unhealthy):
        raise Fail("unexpected reasons: %s" % [e["message"] for e in unhealthy])
    most = in_flight_from_events(events)
    log("A: %s: %d instances marked unhealthy, %d replaced in %.0f s; removals in "
        "flight at most %d by the events, %d sampled (%s)"
        % (group, len(unhealthy), len([e for e in events if e["kind"] == "replace"]),
           time.time() - t0, most, sampled, what))
    if most > limit:
        raise Fail("%d removals in flight at once by the events (%s)" % (most, what))
    api.call("POST", "/v1/groups/%s/pause" % group)
    t1 = time.time()
    while time.time() - t1 < 60:
        if not any(i["state"] in ("draining", "deleting") for i in api.instances(group)):
            break
        time.sleep(0.5)
    live = wait_consistent(api, uri, pool, group, 3, 60)
    log("A: %s paused; store and libvirt agree on 3 live instances (%s)"
        % (group, ", ".join(sorted(i["state"] for i in live.values()))))


def busy_protects(api, uri, pool, group):
    api.set_desired(group, 2)
    t0 = time.time()
    while True:
        insts = [i for i in api.instances(group) if i["state"] == "ready"]
        if len(insts) == 2 and all(i["busy"] for i in insts):
            break
        if time.time() - t0 > 240:
            raise Fail("the 2 busy guests were not ready and busy within 240 s: %s"
                       % [(i["state"], i["busy"]) for i in api.instances(group)])
        time.sleep(1)
    ready_at = min(i["ready_at"] for i in insts) / 1000.0
    log("B: 2 guests ready and busy after %.0f s; scaling 2 -> 1" % (time.time() - t0))
    api.set_desired(group, 1)
    t_order = time.time()
    protected_until = ready_at + BUSY_MAX_S  # busy since their first heartbeat, after ready
    while time.time() < protected_until - 2:
        ins = api.events(group, kind="scale_in")
        if ins:
            raise Fail("a busy instance was picked for scale-in %.0f s after it became "
                       "ready (busy_max %d s): %s"
                       % (ins[0]["time"] / 1000.0 - ready_at, BUSY_MAX_S, ins[0]["message"]))
        live = [i for i in api.instances(group) if i["state"] == "ready"]
        if len(live) != 2:
            raise Fail("busy instances left the group early: %s" % live)
        time.sleep(1)
    if time.time() - t_order < 5:
        raise Fail("the guests had been busy for nearly busy_max before the scale-in "
                   "order: nothing was shown (the guests booted too early?)")
    log("B: no busy guest was removed for %.0f s after the scale-in order"
        % (time.time() - t_order))
    t1 = time.time()
    while not api.events(group, kind="scale_in"):
        if time.time() - t1 > BUSY_MAX_S + 30:
            raise Fail("no scale-in within busy_max + 30 s of the guests being busy")
        time.sleep(1)
    e = api.events(group, kind="scale_in")[0]
    if "busy for too long" not in e["message"]:
        raise Fail("scale-in without the busy_max reason: %s" % e["message"])
    log("B: %.0f s after ready: %s" % (e["time"] / 1000.0 - ready_at, e["message"]))
    wait_consistent(api, uri, pool, group, 1, 60)
    log("B: store and libvirt agree on 1 instance")


def heartbeat_lost(api, uri, pool, group):
    live = [i for i in api.instances(group) if i["state"] == "ready"]
    if len(live) != 1:
        raise Fail("expected 1 ready instance, found %s" % api.instances(group))
    victim = live[0]
    virsh(uri, "suspend", victim["domain"], check=True)
    t0 = time.time()
    log("C: %s suspended: its heartbeats stop" % victim["domain"])
    while True:
        mine = [e for e in api.events(group) if e["instance"] == victim["id"]]
        unhealthy = [e for e in mine if e["kind"] == "unhealthy"]
        if [e for e in mine if e["kind"] == "removed"]:
            break
        if time.time() - t0 > 120:
            raise Fail("the silent instance was not replaced within 120 s: %s"
                       % [(e["kind"], e["message"]) for e in mine])
        time.sleep(1)
    if not unhealthy or "no heartbeat for more than 15 s" not in unhealthy[0]["message"]:
        raise Fail("unexpected health events: %s" % [(e["kind"], e["message"]) for e in mine])
    t_unhealthy = unhealthy[0]["time"] / 1000.0 - t0
    live = wait_consistent(api, uri, pool, group, 1, 60)
    if victim["id"] in live:
        raise Fail("the silent instance is still live")
    log("C: marked unhealthy %.0f s after its heartbeats stopped (%s), removed and "
        "replaced: %s" % (t_unhealthy, unhealthy[0]["message"],
                          ", ".join(i["domain"] + " " + i["state"] for i in live.values())))


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    keep = "--keep" in sys.argv
    env = need_env(GUEST_ENV, GUEST_HINT)
    uri = test_host_uri(env)
    work = workdir("health-")
    tag = "%d" % (os.getpid() % 100000)
    token = write_token(work)
    base = tiny_disk(work, "tiny-disk.qcow2")
    runs = {}
    for name, extra in (
            ("hl", dict(min_size=3, max_size=3, public_url="http://10.0.2.2:%d" % free_port(),
                        group_extra="    health: { ready_within: 10s, max_replace: %d, "
                                    "max_replace_share: 100%% }\n" % MAX_REPLACE)),
            ("hs", dict(min_size=3, max_size=3, public_url="http://10.0.2.2:%d" % free_port(),
                        group_extra="    health: { ready_within: 10s, max_replace: 10, "
                                    "max_replace_share: 34% }\n")),
            ("bz", dict(min_size=0, max_size=2,
                        user_data="#cloud-config\n#tiny: busy=true\n#tiny: heartbeat=2\n",
                        group_extra="    health: { busy_max: %ds, ready_within: 4m, "
                                    "heartbeat_timeout: 15s }\n"
                                    "    scale_in: { drain: 5s }\n" % BUSY_MAX_S))):
        d = os.path.join(work, name)
        os.makedirs(d)
        os.chmod(d, 0o755)
        os.symlink(os.path.join(work, "admin.token"), os.path.join(d, "admin.token"))
        port = free_port()
        group = "%s%s" % (name, tag)
        pool = "va-health-%s-%s" % (name, tag)
        cfg = os.path.join(d, "autoscale.yaml")
        tiny_config(cfg, port=port, state="sqlite://%s/state.db" % d, uri=uri, pool=pool,
                    group=group, base=base, kernel=env["VA_TEST_TINY_KERNEL"],
                    initrd=env["VA_TEST_TINY_INITRD"], **extra)
        check_config(binary, cfg)
        runs[name] = dict(group=group, pool=pool, pool_dir=os.path.join(d, "pool"),
                          daemon=Daemon(binary, cfg, os.path.join(d, "daemon.log")),
                          api=Api("http://127.0.0.1:%d" % port, token))
    rc = 1
    t_start = time.time()
    try:
        for r in runs.values():
            make_pool(uri, r["pool"], r["pool_dir"])
            r["daemon"].start()
        for r in runs.values():
            r["api"].wait_up(60, r["daemon"])
        # B's guests boot only once A is over (bz has min_size 0;
        # busy_protects scales it to 2): booted while A runs, they could be
        # busy for most of busy_max before the scale-in order when A is
        # slow (a loaded machine, as in CI), and B would have nothing left
        # to show.
        a, b = runs["hl"], runs["bz"]
        never_checking_in(a["api"], uri, a["pool"], a["group"], MAX_REPLACE,
                          "max_replace %d" % MAX_REPLACE)
        if a["daemon"].stop() != 0:
            raise Fail("daemon A did not stop cleanly")
        h = runs["hs"]
        never_checking_in(h["api"], uri, h["pool"], h["group"], 1,
                          "max_replace_share 34% of 3")
        if h["daemon"].stop() != 0:
            raise Fail("daemon A' did not stop cleanly")
        busy_protects(b["api"], uri, b["pool"], b["group"])
        heartbeat_lost(b["api"], uri, b["pool"], b["group"])
        if b["daemon"].stop() != 0:
            raise Fail("daemon B did not stop cleanly")
        rc = 0
    except Fail as e:
        print("FAIL: %s" % e)
        for name, r in runs.items():
            print("---- daemon %s log (last 40 lines) ----" % name)
            print(r["daemon"].tail(40))
    finally:
        for r in runs.values():
            r["daemon"].kill9()
            if not keep:
                remove_group_domains(uri, r["group"])
                drop_pool(uri, r["pool"], r["pool_dir"])
        if rc == 0 and not keep:
            shutil.rmtree(work, ignore_errors=True)
    print("health test: %s in %.0f s" % ("passed" if rc == 0 else "FAILED",
                                         time.time() - t_start))
    return rc


if __name__ == "__main__":
    sys.exit(main())
