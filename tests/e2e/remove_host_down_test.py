#!/usr/bin/env python3
"""A removal submitted while the instance's host is down is not lost: when
the host returns, its domain and volumes go and the store says gone
(issue 11: remove_spec.host_down, remove_run() in remove.c journals the
removal before it gives up on the missing connection, and the journal's
recovery, run every reconciliation period, finishes it).

The host is a libvirtd of the test's own (harness.OwnLibvirtd) with a
private pool, reached through harness.LibvirtRelay: down() closes every
connection through it and refuses new ones (a host that went away), up()
lets them through again. SQLite state, reconciliation every second
(VA_TEST_RECONCILE_MS=1000).

1. The group is paused and set to 1; the test defines and starts a domain
   of the group with its two volumes (our metadata, as a daemon makes
   them; QEMU with no bootable disk idles in the firmware) while the
   relay keeps the daemon from the host, which the
   daemon adopts as a ready instance; then the group is resumed.
2. The host goes down (the daemon reports it down), then `scale 0`: the
   ready instance is chosen, moves to draining, and its removal job runs
   with the host down and gives up for now (the daemon logs "removal
   retried later"). Nothing of it may be removed meanwhile (it cannot).
3. The host comes back: within 40 s the domain and both volumes are gone
   (virsh, on libvirtd directly), the instance is 'gone' in the store,
   its journal entry done, and store and libvirt agree
   (harness.check_consistent at desired 0).

A draining instance has no other way out than its journal entry: neither
the planner nor reconciliation removes one. Journal the removal only
once the host is connected, and the instance stays draining and its
domain running for good (until the next restart): the test fails.

Suite 'guest' (a real libvirtd and QEMU); about 30 s.

usage: remove_host_down_test.py VIRT_AUTOSCALER [--keep]
Needs libvirtd and qemu; exits 77 without libvirtd.
"""
import os
import re
import shutil
import sys
import time
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log, virsh  # noqa: E402

GROUP = "r"
POOL = "va-rmdown"
HOST = "local"


def config(path, port, state, uri):
    with open(path, "w") as f:
        f.write("""version: 1
daemon:
  interval: 1s
  listen: 127.0.0.1:%d
  state: sqlite://%s
  admin_token: { file: admin.token }
hosts:
  - { name: %s, uri: "%s", pool: %s, user_net: true, domain_type: qemu,
      cpu_overcommit: 64, memory_overcommit: 16, reserved_memory: 0 }
groups:
  %s:
    min: 0
    max: 2
    template: { image: base.qcow2, name_prefix: r, memory: 64MiB }
    health: { heartbeat_timeout: 0s, replace: false }
    scale_in: { drain: 0s }
""" % (port, state, HOST, uri, POOL, GROUP))


def domain_xml(name, iid, pool):
    return """<domain type='qemu'>
  <name>%(name)s</name>
  <uuid>%(iid)s</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <metadata>
    <va:instance xmlns:va='%(ns)s' group='%(group)s' id='%(iid)s' generation='1'/>
  </metadata>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='%(pool)s' volume='%(iid)s.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/>
      <source pool='%(pool)s' volume='%(iid)s-seed.iso'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
  </devices>
</domain>
""" % dict(name=name, iid=iid, ns=harness.NS, group=GROUP, pool=pool)


def poll(what, pred, timeout, daemon, period=0.5):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if not daemon.running():
            raise Fail("the daemon exited (%s)" % daemon.proc.returncode)
        v = pred()
        if v:
            return v
        time.sleep(period)
    raise Fail("timed out after %d s waiting for: %s" % (timeout, what))


def instance_state(state, iid):
    rows = harness.sqlite_query(state, "SELECT state FROM instances WHERE id = ?", (iid,))
    return rows[0][0] if rows else None


def main():
    args = [a for a in sys.argv[1:] if a != "--keep"]
    keep = "--keep" in sys.argv
    if len(args) != 1:
        print(__doc__)
        return 2
    binary = os.path.abspath(args[0])
    if not shutil.which("libvirtd"):
        print("SKIP: libvirtd is not installed (scripts/setup.sh --virt)")
        return 77
    work = harness.workdir("va-rmdown-")
    token = harness.write_token(work)
    port = harness.free_port()
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    pool_dir = os.path.join(work, "pool")
    host = harness.OwnLibvirtd()
    relay = None
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    iid = str(uuid.uuid4())
    name = "r-" + iid[:8]
    ok = False
    try:
        host.start()
        harness.make_pool(host.uri, POOL, pool_dir)
        relay = harness.LibvirtRelay(os.path.join(host.dir, "relay.sock"), host.uri)
        config(cfg, port, state, relay.uri)
        harness.check_config(binary, cfg)
        d.start({"VA_TEST_RECONCILE_MS": "1000"})
        api.wait_up(60, d)
        harness.wait_ticks(api, 2, 30, d)
        api.call("POST", "/v1/groups/%s/pause" % GROUP)
        api.set_desired(GROUP, 1)

        log("a domain of the group, running, with its volumes: %s (%s)" % (name, iid))
        # made while the daemon cannot see the host, so that no
        # reconciliation pass finds it defined but not yet started
        relay.down()
        for vol, fmt in ((iid + ".qcow2", "qcow2"), (iid + "-seed.iso", "raw")):
            virsh(host.uri, "vol-create-as", POOL, vol, "1M", "--format", fmt, check=True)
        xml = os.path.join(work, name + ".xml")
        with open(xml, "w") as f:
            f.write(domain_xml(name, iid, POOL))
        virsh(host.uri, "define", xml, check=True)
        virsh(host.uri, "start", name, check=True)
        relay.up()
        poll("the domain adopted as a ready instance",
             lambda: instance_state(state, iid) == "ready", 30, d)
        api.call("POST", "/v1/groups/%s/resume" % GROUP)
        harness.wait_ticks(api, 3, 30, d)
        g = api.group(GROUP)
        if (g["desired"], g["current"], g["ready"]) != (1, 1, 1):
            raise Fail("the group is not settled at 1 before the test: %s" % g)

        log("the host goes down")
        relay.down()
        poll("the host reported down", lambda: [
            h for h in api.call("GET", "/v1/hosts")["hosts"]
            if h["name"] == HOST and h["state"] == "down"], 30, d)
        with open(d.logpath) as f:
            log_at = len(f.read())
        log("scale to 0 with the host down")
        api.set_desired(GROUP, 0)

        def gave_up():
            with open(d.logpath) as f:
                return re.search(r"instance %s: host %s is not connected; removal retried later"
                                 % (iid, HOST), f.read()[log_at:])
        poll("the removal job giving up for now", gave_up, 30, d)
        st = instance_state(state, iid)
        log("removal job ran with the host down; instance %s" % st)
        if st not in ("draining", "deleting"):
            raise Fail("instance %s is %s after its removal began, want draining or deleting"
                       % (iid, st))
        time.sleep(2)
        if name not in virsh(host.uri, "list", "--name").split():
            raise Fail("domain %s is not running although its host was down" % name)

        log("the host comes back")
        relay.up()
        t0 = time.time()

        def removed():
            doms = harness.group_domains(host.uri, GROUP)
            vols = harness.pool_volumes(host.uri, POOL).get(iid, [])
            return not doms and not vols and instance_state(state, iid) == "gone"
        try:
            poll("domain, volumes and instance gone", removed, 40, d, period=1)
        except Fail as e:
            raise Fail("%s: domains %s, volumes %s, instance %s\n%s"
                       % (e, harness.group_domains(host.uri, GROUP),
                          harness.pool_volumes(host.uri, POOL).get(iid, []),
                          instance_state(state, iid), d.tail(20)))
        log("removed %.1f s after the host came back" % (time.time() - t0))
        rows = harness.sqlite_query(state, "SELECT action, status FROM journal "
                                    "WHERE instance_id = ?", (iid,))
        if ("remove", "done") not in rows or any(r[1] == "pending" for r in rows):
            raise Fail("the journal of %s: %s, want its removal done" % (iid, rows))
        harness.check_consistent(api, host.uri, POOL, GROUP, desired=0)
        ok = True
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        if relay:
            relay.up()
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
