#!/usr/bin/env python3
"""Reconcile test: the reconciler's actions on a real libvirtd, through the
real daemon (no guest boots: domains are only defined).

With reconciliation every second (VA_TEST_RECONCILE_MS) and the group
paused (the scaler leaves it alone; reconciliation does not):

  1. a domain of ours the store does not know is adopted (unhealthy: it
     does not run);
  2. undefined behind the daemon's back, it is marked lost once, removed
     (its volumes go) and ends gone;
  3. defined again (the same instance id, now gone in the store), it is
     removed again: "was still on ... although the instance is gone";
  4. a volume named after that gone instance is deleted as an orphan;
  5. a volume of an id the store does not know is left alone and reported
     once, however many passes see it;
  6. every pass costs a few libvirt calls, not a few per domain: the
     daemon's debug line "reconciled: ... N libvirt calls (M for
     metadata)" shows 4 calls in steady state; a pass that found what
     the last one found (which needed nothing) is not planned again.

usage: reconcile_test.py VIRT_AUTOSCALER_BINARY [--keep]
Needs VA_TEST_LIBVIRT_URI (scripts/services/libvirt.sh start); exits 77
without it. About 20 s.
"""
import os
import re
import shutil
import sys
import time
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (NS, Api, Daemon, Fail, check_config, drop_pool,  # noqa: E402
                     free_port, log, make_pool, need_env, pool_volumes,
                     remove_group_domains, test_host_uri, tiny_disk, virsh,
                     workdir, write_token)

RECONCILE_MS = 1000


def write_config(path, *, port, state, uri, pool, group, base):
    with open(path, "w") as f:
        f.write("""version: 1
daemon:
  interval: 1s
  listen: 127.0.0.1:%(port)d
  public_url: http://10.0.2.2:%(port)d
  state: %(state)s
  admin_token: { file: admin.token }
  log_level: debug
hosts:
  - name: local
    uri: %(uri)s
    pool: %(pool)s
    user_net: true
    domain_type: qemu
    cpu_overcommit: 64
    memory_overcommit: 16
    reserved_memory: 0
groups:
  %(group)s:
    min: 0
    max: 2
    template:
      name_prefix: r
      vcpus: 1
      memory: 64MiB
      image: %(base)s
      disk: 64MiB
""" % dict(port=port, state=state, uri=uri, pool=pool, group=group, base=base))


def domain_xml(name, iid, group, pool, owner):
    return """<domain type='qemu'>
  <name>%(name)s</name>
  <uuid>%(iid)s</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <metadata>
    <va:instance xmlns:va='%(ns)s' group='%(group)s' id='%(iid)s' generation='1' owner='%(owner)s'/>
  </metadata>
</domain>
""" % dict(name=name, iid=iid, ns=NS, group=group, owner=owner)


def volume(uri, pool, name):
    virsh(uri, "vol-create-as", pool, name, "1M", "--format", "raw", check=True)


def defined(uri):
    return set(virsh(uri, "list", "--all", "--name").split())


def run_log(daemon):
    with open(daemon.logpath) as f:
        text = f.read()
    return text[text.rfind("==== "):]


def wait(what, pred, timeout=30):
    t0 = time.time()
    while not pred():
        if time.time() - t0 > timeout:
            raise Fail("not within %d s: %s" % (timeout, what))
        time.sleep(0.3)
    return time.time() - t0


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    keep = "--keep" in sys.argv
    env = need_env(("VA_TEST_LIBVIRT_URI",),
                   "run scripts/services/libvirt.sh start, or scripts/test.sh")
    uri = test_host_uri(env)
    work = workdir("reconcile-")
    tag = "%d" % (os.getpid() % 100000)
    group = "rec%s" % tag
    pool = "va-rec-%s" % tag
    pool_dir = os.path.join(work, "pool")
    port = free_port()
    token = write_token(work)
    base = tiny_disk(work, "base.qcow2")
    cfg = os.path.join(work, "autoscale.yaml")
    db = os.path.join(work, "state.db")
    write_config(cfg, port=port, state="sqlite://" + db, uri=uri, pool=pool,
                 group=group, base=base)
    daemon = Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    api = Api("http://127.0.0.1:%d" % port, token)
    rc = 1
    t_start = time.time()
    try:
        check_config(binary, cfg)
        make_pool(uri, pool, pool_dir)
        log("group %s, pool %s on %s, work dir %s" % (group, pool, uri, work))
        # the store and its installation id; the group paused
        daemon.start()
        api.wait_up(60, daemon)
        api.call("POST", "/v1/groups/%s/pause" % group, {})
        if daemon.stop() != 0:
            raise Fail("the daemon did not stop cleanly")
        m = re.search(r"installation id (\S+)", run_log(daemon))
        if not m:
            raise Fail("the daemon did not log its installation id")
        ours = m.group(1)

        iid = str(uuid.uuid4())
        name = "r-" + iid[:8]
        xml = os.path.join(work, name + ".xml")
        with open(xml, "w") as f:
            f.write(domain_xml(name, iid, group, pool, ours))
        virsh(uri, "define", xml, check=True)
        for suffix in (".qcow2", "-seed.iso"):
            volume(uri, pool, iid + suffix)

        daemon.start({"VA_TEST_RECONCILE_MS": str(RECONCILE_MS)})
        api.wait_up(60, daemon)

        def events(kind):
            return [e for e in api.events(group, kind=kind)
                    if e.get("instance") == iid]

        def state():
            for i in api.instances(group):
                if i["id"] == iid:
                    return i["state"]
            return None

        # 1. adopted
        wait("adoption", lambda: events("adopted"))
        if state() != "unhealthy":
            raise Fail("adopted as %s, not unhealthy" % state())
        log("1. adopted as unhealthy")

        # 2. undefined behind our back: lost, removed, gone
        virsh(uri, "undefine", name, check=True)
        t = wait("lost", lambda: events("lost"))
        wait("gone", lambda: state() in (None, "gone"))
        wait("its volumes deleted", lambda: iid not in pool_volumes(uri, pool))
        log("2. marked lost %.1f s after the undefine; removed, volumes deleted" % t)

        # 3. back: the domain of a gone instance is removed
        virsh(uri, "define", xml, check=True)
        wait("the domain of the gone instance removed",
             lambda: name not in defined(uri))

        def removed_events():
            return [e for e in events("reconcile")
                    if "although the instance is gone" in e.get("message", "")]
        # the loop records the event after the undefine and the store's
        # end of the instance (remove_domain()): a few ms later, which
        # the domain's absence alone does not wait for
        wait("the 'although the instance is gone' event", removed_events)
        removed = removed_events()
        if len(removed) != 1:
            raise Fail("expected one 'still on ... although gone' event: %s"
                       % events("reconcile"))
        log("3. defined again: removed (%s)" % removed[0]["message"])

        # 4. an orphan volume of the gone instance
        volume(uri, pool, iid + ".qcow2")
        wait("the orphan volume deleted",
             lambda: iid not in pool_volumes(uri, pool))
        orphan = [e for e in api.events(kind="reconcile")
                  if "deleted orphaned volume %s.qcow2" % iid in e.get("message", "")]
        if len(orphan) != 1:
            raise Fail("expected one orphaned-volume event, got %d" % len(orphan))
        log("4. orphan volume deleted")

        # 5. a volume of an id the store does not know: left, said once
        unknown = str(uuid.uuid4())
        volume(uri, pool, unknown + ".qcow2")
        time.sleep(4 * RECONCILE_MS / 1000.0)
        if unknown not in pool_volumes(uri, pool):
            raise Fail("the unknown volume was deleted")
        said = [line for line in run_log(daemon).splitlines()
                if "volumes named like ours that this state store does not know" in line]
        if len(said) != 1:
            raise Fail("expected one warning about unknown volumes, got %d" % len(said))
        log("5. unknown volume left alone, reported once")

        # nothing was lost twice, every event once
        if len(events("lost")) != 1 or len(events("adopted")) != 1:
            raise Fail("events: %s" % api.events(group))

        # 6. the cost of a pass
        passes = [tuple(int(x) for x in m.groups()) for m in re.finditer(
            r"host local: reconciled: (\d+) domains, (\d+) volumes, .*?; "
            r"(\d+) libvirt calls \((\d+) for metadata\)", run_log(daemon))]
        if len(passes) < 5:
            raise Fail("only %d reconciliation passes logged" % len(passes))
        steady = [p for p in passes if p[3] == 0]
        if not steady or any(p[2] != 4 for p in steady):
            raise Fail("passes without metadata reads should cost 4 calls: %s"
                       % passes)
        # a pass that found what the last one found, which needed
        # nothing, is not planned again; steps 2-5 above show that one
        # that found something else is
        again = run_log(daemon).count("needed nothing: not planned again")
        if again < 1:
            raise Fail("no steady pass was left unplanned: %s" % passes)
        log("6. %d passes; steady ones cost %d calls over %d domains, the "
            "first %d calls (%d for metadata); %d not planned again"
            % (len(passes), steady[-1][2], steady[-1][0], passes[0][2],
               passes[0][3], again))
        if daemon.stop() != 0:
            raise Fail("the daemon did not stop cleanly")
        rc = 0
    except Fail as e:
        print("FAIL: %s" % e)
        print("---- daemon log (last 60 lines) ----")
        print(daemon.tail(60))
    finally:
        daemon.kill9()
        if not keep:
            remove_group_domains(uri, group)
            drop_pool(uri, pool, pool_dir)
            if rc == 0:
                shutil.rmtree(work, ignore_errors=True)
    print("reconcile test: %s in %.0f s" % ("passed" if rc == 0 else "FAILED",
                                            time.time() - t_start))
    return rc


if __name__ == "__main__":
    sys.exit(main())
