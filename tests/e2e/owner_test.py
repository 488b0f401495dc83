#!/usr/bin/env python3
"""Owner test: the daemon adopts only domains of its own installation.

Two virt-autoscaler installations (separate state stores) may share a
libvirt host and a group name. Every domain carries the installation id of
the store whose daemon made it (owner= in <va:instance>, docs/state.md).
This test runs the real daemon binary on a real libvirtd (no guest boots:
the domains are only defined) and shows, with virsh:

  1. a first start creates the store; the daemon logs its installation id,
     which is the one in the database; the group (desired size 0) is
     paused;
  2. three domains of the daemon's group are then defined by hand, each with
     its two volumes in a private pool, none known to the store:
       foreign  owner= another installation's id
       ours     owner= this store's id
       legacy   no owner= (as made before installation ids)
  3. a second start (reconciling every second, VA_TEST_RECONCILE_MS) adopts
     'ours' and 'legacy' (an 'adopted' event each, a warning for legacy)
     and writes our owner id into legacy's metadata (once);
  4. resumed, the group scales in to 0: the domains and volumes of 'ours'
     and 'legacy' go;
  5. 'foreign' survives every pass untouched: its definition is byte for
     byte the same, its volumes are there, the store has no instance for it,
     no event names it, and the log reports it once (not once per pass),
     naming the domain, the host and the other owner id.

usage: owner_test.py VIRT_AUTOSCALER_BINARY [--keep]
Needs VA_TEST_LIBVIRT_URI (scripts/services/libvirt.sh start); exits 77
without it. About 15 s.
"""
import os
import re
import shutil
import sqlite3
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
  log_level: info
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
      name_prefix: o
      vcpus: 1
      memory: 64MiB
      image: %(base)s
      disk: 64MiB
    scale_in: { drain: 1s }
""" % dict(port=port, state=state, uri=uri, pool=pool, group=group, base=base))


def domain_xml(name, iid, group, pool, owner):
    owner_attr = " owner='%s'" % owner if owner else ""
    return """<domain type='qemu'>
  <name>%(name)s</name>
  <uuid>%(iid)s</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <metadata>
    <va:instance xmlns:va='%(ns)s' group='%(group)s' id='%(iid)s' generation='1'%(owner)s/>
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
""" % dict(name=name, iid=iid, ns=NS, group=group, pool=pool, owner=owner_attr)


def define(uri, work, pool, group, iid, owner):
    """A domain of the group with its two volumes, as a daemon makes them."""
    name = "o-" + iid[:8]
    virsh(uri, "vol-create-as", pool, iid + ".qcow2", "1M", "--format", "qcow2",
          check=True)
    virsh(uri, "vol-create-as", pool, iid + "-seed.iso", "1M", "--format", "raw",
          check=True)
    path = os.path.join(work, name + ".xml")
    with open(path, "w") as f:
        f.write(domain_xml(name, iid, group, pool, owner))
    virsh(uri, "define", path, check=True)
    return name


def defined(uri):
    return set(virsh(uri, "list", "--all", "--name").split())


def daemon_log(daemon):
    """This run's part of the daemon's log."""
    with open(daemon.logpath) as f:
        text = f.read()
    return text[text.rfind("==== "):]


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    keep = "--keep" in sys.argv
    env = need_env(("VA_TEST_LIBVIRT_URI",),
                   "run scripts/services/libvirt.sh start, or scripts/test.sh")
    uri = test_host_uri(env)
    work = workdir("owner-")
    tag = "%d" % (os.getpid() % 100000)
    group = "own%s" % tag
    pool = "va-owner-%s" % tag
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

        # 1. the store and its installation id; the group paused
        daemon.start()
        api.wait_up(60, daemon)
        api.call("POST", "/v1/groups/%s/pause" % group, {})
        if daemon.stop() != 0:
            raise Fail("the daemon did not stop cleanly")
        m = re.search(r"installation id (\S+)", daemon_log(daemon))
        if not m:
            raise Fail("the daemon did not log its installation id")
        ours = m.group(1)
        with sqlite3.connect(db) as c:
            rows = c.execute("SELECT id FROM installation").fetchall()
        if rows != [(ours,)]:
            raise Fail("installation ids: log %s, database %s" % (ours, rows))
        log("installation id %s" % ours)

        # 2. three domains the store does not know
        other = str(uuid.uuid4())
        ids = {k: str(uuid.uuid4()) for k in ("foreign", "ours", "legacy")}
        names = {
            "foreign": define(uri, work, pool, group, ids["foreign"], other),
            "ours": define(uri, work, pool, group, ids["ours"], ours),
            "legacy": define(uri, work, pool, group, ids["legacy"], None),
        }
        foreign_xml = virsh(uri, "dumpxml", "--inactive", names["foreign"])
        if ids["foreign"] not in foreign_xml or other not in foreign_xml:
            raise Fail("the foreign domain's definition lacks its metadata:\n"
                       + foreign_xml)

        # 3. adoption of ours and legacy (the group is paused: kept)
        daemon.start({"VA_TEST_RECONCILE_MS": str(RECONCILE_MS)})
        api.wait_up(60, daemon)
        t0 = time.time()
        while True:
            adopted = {e.get("instance") for e in api.events(group, kind="adopted")}
            if {ids["ours"], ids["legacy"]} <= adopted:
                break
            if time.time() - t0 > 30:
                raise Fail("not adopted within 30 s: %s"
                           % sorted(set(ids.values()) - adopted))
            time.sleep(0.5)
        log("adopted 'ours' and 'legacy' after %.1f s" % (time.time() - t0))
        time.sleep(3 * RECONCILE_MS / 1000.0)  # a few more passes
        with sqlite3.connect(db) as c:
            known = dict(c.execute("SELECT id, state FROM instances").fetchall())
        if known != {ids["ours"]: "unhealthy", ids["legacy"]: "unhealthy"}:
            raise Fail("after adoption the store holds %s" % known)
        for k, want in (("ours", ours), ("legacy", ours), ("foreign", other)):
            meta = virsh(uri, "metadata", names[k], NS)
            if "owner=\"%s\"" % want not in meta and "owner='%s'" % want not in meta:
                raise Fail("domain '%s' should have owner %s: %s" % (k, want, meta))
        claims = [line for line in daemon_log(daemon).splitlines()
                  if "written into its metadata" in line]
        if len(claims) != 1 or names["legacy"] not in claims[0]:
            raise Fail("expected our owner id written once, into legacy: %s" % claims)
        log("legacy now carries our owner id: %s" % claims[0].strip())

        # 4. resumed: scale-in to desired 0
        api.call("POST", "/v1/groups/%s/resume" % group, {})
        t0 = time.time()
        while True:
            left = [k for k in ("ours", "legacy") if names[k] in defined(uri)]
            vols = pool_volumes(uri, pool)
            left += [k + " volumes" for k in ("ours", "legacy") if ids[k] in vols]
            if not left:
                break
            if time.time() - t0 > 60:
                raise Fail("the adopted instances were not scaled in within "
                           "60 s: %s remain" % left)
            time.sleep(0.5)
        log("'ours' and 'legacy' scaled in (desired 0) after %.1f s" % (time.time() - t0))
        # a few more reconciliation passes
        time.sleep(4 * RECONCILE_MS / 1000.0)

        # 4. the foreign domain survived, untouched
        if names["foreign"] not in defined(uri):
            raise Fail("the foreign domain %s was removed" % names["foreign"])
        after = virsh(uri, "dumpxml", "--inactive", names["foreign"])
        if after != foreign_xml:
            raise Fail("the foreign domain's definition changed:\nbefore:\n%s\nafter:\n%s"
                       % (foreign_xml, after))
        vols = pool_volumes(uri, pool).get(ids["foreign"], [])
        if sorted(vols) != sorted([ids["foreign"] + ".qcow2",
                                   ids["foreign"] + "-seed.iso"]):
            raise Fail("the foreign domain's volumes: %s" % vols)
        if ids["foreign"] in {i["id"] for i in api.instances(group)}:
            raise Fail("the admin API lists an instance for the foreign domain")
        with sqlite3.connect(db) as c:  # gone instances too
            known = dict(c.execute("SELECT id, state FROM instances").fetchall())
        if ids["foreign"] in known:
            raise Fail("the store has an instance for the foreign domain")
        if known.get(ids["ours"]) != "gone" or known.get(ids["legacy"]) != "gone":
            raise Fail("the adopted instances in the store: %s" % known)
        for e in api.events(group):
            if e.get("instance") == ids["foreign"]:
                raise Fail("an event about the foreign domain: %s" % e)
        text = daemon_log(daemon)
        reports = [line for line in text.splitlines()
                   if "domain %s " % names["foreign"] in line
                   and "another virt-autoscaler installation" in line]
        if len(reports) != 1:
            raise Fail("expected one report of the foreign domain, got %d:\n%s"
                       % (len(reports), "\n".join(reports)))
        for want in ("host local", "owner %s" % other, " info reconcile: "):
            if want not in reports[0]:
                raise Fail("the report lacks '%s': %s" % (want, reports[0]))
        log("reported once: %s" % reports[0].strip())
        warns = [line for line in text.splitlines()
                 if "domain %s " % names["legacy"] in line and "no owner id" in line]
        if len(warns) != 1 or " warn reconcile: " not in warns[0]:
            raise Fail("expected one warning about the legacy domain, got:\n%s"
                       % "\n".join(warns))
        if any("no owner id" in line and names["ours"] in line
               for line in text.splitlines()):
            raise Fail("a warning about 'ours', which has our owner id")
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
    print("owner test: %s in %.0f s" % ("passed" if rc == 0 else "FAILED",
                                        time.time() - t_start))
    return rc


if __name__ == "__main__":
    sys.exit(main())
