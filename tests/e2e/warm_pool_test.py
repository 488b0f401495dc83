#!/usr/bin/env python3
"""The warm pool end to end, on real tiny guests on both test hosts
(issue 13).

One daemon (SQLite), two hosts (the system libvirtd and the second test
host), each with a private pool. Group `w`: min 1, max 4, desired 1,
warm_pool {size: 2, state: STATE, reuse_on_scale_in: true}, spread over
both hosts; group `c`: the same guests without a pool, at 0, for the cold
figure.

  1. Prepared: w has 1 ready instance and 2 warm ones (each provisioned,
     booted, checked in, then parked: a 'warm_parked' event each); their
     domains are saved (shut off with a managed save image), paused or
     shut off, as STATE says.
  2. Warm scale-out: w 1 -> 3 draws both warm instances ('warm_draw'
     events, the decision says "served warm"); the time from the scale to
     both ready is printed, and each instance's draw -> ready from its
     'ready' event.
  3. Cold scale-out: c 0 -> 1, the time to ready printed beside it.
  4. Refill: w's pool is back at its target (min(2, max - desired) = 1)
     with a new instance.
  5. Scale-in with reuse: w 3 -> 1 returns instances to the pool (a
     'warm_return' event; an instance that was ready is warm again) until
     the pool is at its target (2), the rest is removed.
     With --cloud (a guest with qemu-guest-agent), the guest's clock is
     within 5 s of the host's right after the draw (set through the guest
     agent: it stood still in the pool).
  6. Nothing leaked (daemon stopped): every instance the store does not
     call gone has its domain and two volumes on its host, in the state
     its store state says; no domain, volume or managed save image of a
     gone one is left.

Timings are printed, not asserted (bench/README.md quotes them): a timed
assertion flakes on a loaded machine. STATE: --state saved (default),
paused or stopped.

Suite 'guest'; about 3-4 minutes.

With --cloud the guests are the Debian cloud-init image of
scripts/images.sh (1 GiB, heartbeats from virt-autoscaler-agent): the
same steps, minutes instead of seconds (not in the default suite; the
figures are in bench/README.md).

usage: warm_pool_test.py VIRT_AUTOSCALER [--state S] [--cloud] [--keep]
Needs VA_TEST_LIBVIRT_URI, VA_TEST_LIBVIRT_URI2, VA_TEST_TINY_KERNEL and
VA_TEST_TINY_INITRD (or VA_TEST_CLOUD_* with --cloud;
scripts/services/*.sh); exits 77 without them.
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

TAG = "%d" % (os.getpid() % 100000)
POOLS = ("va-warm1-" + TAG, "va-warm2-" + TAG)
W, C = "w" + TAG, "c" + TAG   # group names: several runs may share a host


CLOUD_TEMPLATE = """    template:
      name_prefix: %(prefix)s
      vcpus: 1
      memory: 1GiB
      image: %(base)s
      disk: 4GiB
      kernel: %(kernel)s
      initrd: %(initrd)s
      cmdline: "root=LABEL=rootfs rw console=ttyS0 net.ifnames=0"
    cloud_init:
      user_data: user-data
"""


def config(path, port, state, uris, kernel, initrd, base, warm_state,
           cloud=False):
    hosts = "".join("""  - name: h%(n)d
    uri: %(uri)s
    pool: %(pool)s
    user_net: true
    domain_type: qemu
    cpu_overcommit: 64
    memory_overcommit: 16
    reserved_memory: 0
""" % {"n": n + 1, "uri": u, "pool": POOLS[n]} for n, u in enumerate(uris))
    template = """    template:
      name_prefix: %(prefix)s
      vcpus: 1
      memory: 128MiB
      image: %(base)s
      disk: 64MiB
      kernel: %(kernel)s
      initrd: %(initrd)s
      cmdline: "console=ttyS0 panic=-1"
"""
    if cloud:
        template = CLOUD_TEMPLATE
        with open(os.path.join(os.path.dirname(path), "user-data"), "w") as f:
            f.write("#cloud-config\n")
    with open(path, "w") as f:
        f.write("""version: 1
daemon:
  interval: 1s
  listen: 127.0.0.1:%(port)d
  public_url: http://10.0.2.2:%(port)d
  state: sqlite://%(state)s
  admin_token: { file: admin.token }
hosts:
%(hosts)sgroups:
  %(w)s:
    min: 1
    max: 4
%(tw)s    warm_pool: { size: 2, state: %(ws)s, reuse_on_scale_in: true }
  %(c)s:
    min: 0
    max: 2
%(tc)s""" % {"port": port, "state": state, "hosts": hosts, "ws": warm_state,
             "w": W, "c": C,
             "tw": template % {"prefix": "w", "base": base, "kernel": kernel,
                               "initrd": initrd},
             "tc": template % {"prefix": "c", "base": base, "kernel": kernel,
                               "initrd": initrd}})


def warm_of(api, group):
    return api.group(group).get("warm_pool") or {}


def wait_group(api, group, what, pred, timeout, d):
    t0 = time.time()
    last = None
    while time.time() - t0 < timeout:
        if not d.running():
            raise Fail("the daemon exited:\n" + d.tail())
        last = api.group(group)
        if pred(last):
            return time.time() - t0
        time.sleep(0.2)
    raise Fail("%s: not within %d s; group %s is %s" % (what, timeout, group, last))


def dom_state(uri, name):
    return harness.virsh(uri, "domstate", name).strip()


def managed_save(uri, name):
    return "Managed save:   yes" in harness.virsh(uri, "dominfo", name)


def pooled_state_ok(uri, name, warm_state):
    st = dom_state(uri, name)
    if warm_state == "paused":
        return st == "paused"
    if warm_state == "saved":
        return st == "shut off" and managed_save(uri, name)
    return st == "shut off"


def check_leaks(state, uris, warm_state):
    """The store's instances against both hosts (the daemon stopped)."""
    rows = harness.sqlite_query(
        state, "SELECT id, host, domain, state FROM instances "
        "WHERE group_name IN (?, ?)", (W, C))
    problems = []
    doms, vols = {}, {}
    for n, uri in enumerate(uris):
        for g in (W, C):
            for iid, (name, running) in harness.group_domains(uri, g).items():
                doms[iid] = ("h%d" % (n + 1), name)
        for iid, names in harness.pool_volumes(uri, POOLS[n]).items():
            vols[iid] = ("h%d" % (n + 1), names)
    known = {r[0] for r in rows}
    for iid, host, domain, st in rows:
        uri = uris[int(host[1:]) - 1] if host else None
        if st == "gone":
            if iid in doms:
                problems.append("gone instance %s still has domain %s" % (iid, doms[iid]))
            if iid in vols:
                problems.append("gone instance %s still has volumes %s" % (iid, vols[iid]))
            continue
        if doms.get(iid) != (host, domain):
            problems.append("%s instance %s: domain %s, store says %s on %s"
                            % (st, iid, doms.get(iid), domain, host))
            continue
        if len(vols.get(iid, (None, []))[1]) != 2:
            problems.append("%s instance %s: volumes %s" % (st, iid, vols.get(iid)))
        if st == "warm" and not pooled_state_ok(uri, domain, warm_state):
            problems.append("warm instance %s: domain %s is %s%s, want %s"
                            % (iid, domain, dom_state(uri, domain),
                               " (managed save)" if managed_save(uri, domain) else "",
                               warm_state))
        if st == "ready" and dom_state(uri, domain) != "running":
            problems.append("ready instance %s: domain %s is %s"
                            % (iid, domain, dom_state(uri, domain)))
        if st not in ("ready", "warm"):
            problems.append("instance %s is %s after the test settled" % (iid, st))
    for iid in set(doms) | set(vols):
        if iid not in known:
            problems.append("domain/volumes of an id the store does not know: %s %s"
                            % (doms.get(iid), vols.get(iid)))
    if problems:
        raise Fail("store and hosts disagree:\n  " + "\n  ".join(problems))
    return rows


def cleanup(uris, work):
    for n, uri in enumerate(uris):
        for g in (W, C):
            for name, _ in harness.group_domains(uri, g).values():
                harness.virsh(uri, "destroy", name)
                harness.virsh(uri, "undefine", "--managed-save", name)
        harness.drop_pool(uri, POOLS[n], os.path.join(work, POOLS[n]))


def main():
    args = sys.argv[1:]
    keep = "--keep" in args
    warm_state = "saved"
    if "--state" in args:
        warm_state = args[args.index("--state") + 1]
        args = [a for a in args if a not in ("--state", warm_state)]
    args = [a for a in args if a not in ("--keep", "--cloud")]
    if len(args) != 1 or warm_state not in ("saved", "paused", "stopped"):
        print(__doc__)
        return 2
    binary = os.path.abspath(args[0])
    cloud = "--cloud" in sys.argv
    env = harness.need_env(("VA_TEST_LIBVIRT_URI", "VA_TEST_LIBVIRT_URI2") +
                           (("VA_TEST_CLOUD_IMAGE", "VA_TEST_CLOUD_KERNEL",
                             "VA_TEST_CLOUD_INITRD") if cloud else
                            ("VA_TEST_TINY_KERNEL", "VA_TEST_TINY_INITRD")),
                           harness.GUEST_HINT)
    slow = 6 if cloud else 1   # the cloud-init guest boots in minutes here
    uris = (env["VA_TEST_LIBVIRT_URI"], env["VA_TEST_LIBVIRT_URI2"])
    work = harness.workdir("va-warm-")
    os.chmod(work, 0o755)
    token = harness.write_token(work)
    port = harness.free_port()
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    ok = False
    try:
        for n, uri in enumerate(uris):
            harness.make_pool(uri, POOLS[n], os.path.join(work, POOLS[n]))
        if cloud:
            config(cfg, port, state, uris, env["VA_TEST_CLOUD_KERNEL"],
                   env["VA_TEST_CLOUD_INITRD"], env["VA_TEST_CLOUD_IMAGE"],
                   warm_state, cloud=True)
        else:
            base = harness.tiny_disk(work, "base.qcow2")
            config(cfg, port, state, uris, env["VA_TEST_TINY_KERNEL"],
                   env["VA_TEST_TINY_INITRD"], base, warm_state)
        harness.check_config(binary, cfg)
        d.start()
        api.wait_up(60, d)

        log("1. prepare: 1 ready, 2 warm (%s)" % warm_state)
        took = wait_group(api, W, "1 ready and 2 warm",
                          lambda g: g["ready"] == 1 and
                          (g.get("warm_pool") or {}).get("warm") == 2, 300 * slow, d)
        log("   prepared in %.0f s: %s" % (took, warm_of(api, W)))
        parked = api.events(W, "warm_parked")
        if len(parked) < 2:
            raise Fail("warm_parked events: %s" % parked)
        for e in parked[-2:]:
            log("   " + e["message"])
        warm_ids = [i["id"] for i in api.instances(W) if i["state"] == "warm"]
        for i in api.instances(W):
            if i["state"] == "warm":
                uri = uris[int(i["host"][1:]) - 1]
                if not pooled_state_ok(uri, i["domain"], warm_state):
                    raise Fail("warm instance %s: domain %s is %s, want %s"
                               % (i["id"], i["domain"], dom_state(uri, i["domain"]),
                                  warm_state))
        hosts = sorted({i["host"] for i in api.instances(W)})
        log("   instances on hosts %s" % hosts)

        log("2. warm scale-out 1 -> 3")
        since = int(time.time() * 1000)
        t0 = time.time()
        api.set_desired(W, 3)
        wait_group(api, W, "3 ready", lambda g: g["ready"] == 3, 120 * slow, d)
        warm_s = time.time() - t0
        draws = [e for e in api.events(W, "warm_draw") if e["time"] >= since]
        ready = [e for e in api.events(W, "ready") if e["time"] >= since]
        drawn = sorted(e["instance"] for e in draws)
        if drawn != sorted(warm_ids):
            raise Fail("drawn %s, want the warm ones %s" % (drawn, warm_ids))
        dec = [e for e in api.events(W, "decision") if e["time"] >= since]
        for e in ready + [e for e in api.events(W, "warm_resumed")
                          if e["time"] >= since]:
            log("   " + e["message"])
        if cloud and warm_state != "stopped":
            # the guest's clock stood still in the pool: set through the
            # QEMU guest agent right after the resume (warm.c set_clock)
            for i in api.instances(W):
                if i["id"] not in warm_ids:
                    continue
                uri = uris[int(i["host"][1:]) - 1]
                out = harness.virsh(uri, "qemu-agent-command", i["domain"],
                                    '{"execute":"guest-get-time"}')
                m = re.search(r'"return":\s*(\d+)', out)
                if not m:
                    raise Fail("guest-get-time on %s: %r" % (i["domain"], out))
                skew = int(m.group(1)) / 1e9 - time.time()
                log("   %s: guest clock %+.1f s from the host's" % (i["domain"], skew))
                if abs(skew) > 5:
                    raise Fail("%s: the guest clock is %+.0f s off after the "
                               "resume" % (i["domain"], skew))
        if not any("served warm" in e["message"] for e in dec):
            raise Fail("no decision says 'served warm': %s" % [e["message"] for e in dec])

        log("3. cold scale-out of c 0 -> 1")
        t0 = time.time()
        api.set_desired(C, 1)
        wait_group(api, C, "1 ready", lambda g: g["ready"] == 1, 180 * slow, d)
        cold_s = time.time() - t0
        print("FIGURES %s guest, state=%s: decision -> ready, warm (2 drawn): "
              "%.1f s; cold (1 new): %.1f s" % ("cloud-init" if cloud else "tiny",
                                                 warm_state, warm_s, cold_s))
        sys.stdout.flush()

        log("4. refill to the target (1 at desired 3)")
        wait_group(api, W, "the pool refilled",
                   lambda g: (g.get("warm_pool") or {}).get("warm") == 1 and
                   (g.get("warm_pool") or {}).get("target") == 1, 180 * slow, d)
        refills = [e for e in api.events(W, "warm_refill") if e["time"] >= since]
        if not refills:
            raise Fail("the pool is at its target but no warm_refill event")

        log("5. scale-in 3 -> 1 with reuse")
        ready_ids = {i["id"] for i in api.instances(W) if i["state"] == "ready"}
        since = int(time.time() * 1000)
        api.set_desired(W, 1)
        wait_group(api, W, "1 ready and 2 warm",
                   lambda g: g["ready"] == 1 and g["current"] == 1 and
                   (g.get("warm_pool") or {}).get("warm") == 2, 180 * slow, d)
        returns = [e for e in api.events(W, "warm_return") if e["time"] >= since]
        back = {i["id"] for i in api.instances(W) if i["state"] == "warm"} & ready_ids
        log("   returned: %s" % [e["message"] for e in returns])
        if not returns or not back:
            raise Fail("no instance went back to the pool: returns %s, warm ids that "
                       "were ready %s" % (returns, back))
        api.set_desired(C, 0)
        wait_group(api, C, "c at 0", lambda g: g["current"] == 0, 120 * slow, d)
        # removals finish (a graceful shutdown takes up to scale_in.drain)
        t0 = time.time()
        while [i for g in (W, C) for i in api.instances(g)
               if i["state"] not in ("ready", "warm")]:
            if time.time() - t0 > 150 * slow:
                raise Fail("removals not finished: %s" % [
                    (i["id"][:8], i["state"]) for g in (W, C)
                    for i in api.instances(g)])
            time.sleep(1)

        log("6. nothing leaked")
        if d.stop() != 0:
            raise Fail("the daemon did not stop cleanly:\n" + d.tail())
        rows = check_leaks(state, uris, warm_state)
        log("   %d instances in the store, %d gone, all accounted for"
            % (len(rows), sum(1 for r in rows if r[3] == "gone")))
        ok = True
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        if d.running() and d.stop() != 0:
            ok = False
            log("the daemon did not stop cleanly:\n" + d.tail())
        try:
            cleanup(uris, work)
        except Exception as e:  # noqa: BLE001 - report, keep going
            log("cleanup: %s" % e)
    if ok and not keep:
        shutil.rmtree(work, ignore_errors=True)
    if ok:
        log("PASS")
        return 0
    log("work directory kept: " + work)
    return 1


if __name__ == "__main__":
    sys.exit(main())
