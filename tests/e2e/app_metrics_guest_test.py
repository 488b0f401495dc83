#!/usr/bin/env python3
"""Application metrics on real guests (issue 14): the group scales on a
request rate its tiny guests report in their heartbeats.

A group (min 1, max 3, `app: { metric: requests_per_s, value: 10 }`) of
tiny guests under QEMU on the libvirtd of scripts/services/libvirt.sh. The
load generator (scripts/loadgen.py) plays the load balancer: it spreads a
request rate over the ready guests, and each guest reports its share in
every heartbeat as `requests_per_s` (docs/images.md, `rps=`).

  - 0 req/s: the group stays at 1;
  - 25 req/s (25 on the one guest against 10): the group scales out to 3
    ready guests; the decision and `explain` name requests_per_s with its
    mean and the target; GET /v1/instances/ID/metrics shows the value the
    guest reported;
  - 0 req/s again: back to 1 after the scale-down window, the decision
    naming requests_per_s;
  - then scale to 0: nothing of the group is left on the host.

usage: app_metrics_guest_test.py VIRT_AUTOSCALER [--keep]
Needs VA_TEST_LIBVIRT_URI, VA_TEST_POOL, VA_TEST_TINY_KERNEL,
VA_TEST_TINY_INITRD (scripts/services/*.sh start); exits 77 without them.
"""
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (GUEST_ENV, GUEST_HINT, TOP, Api, Daemon, Fail,  # noqa: E402
                     free_port, leftovers, log, need_env, tiny_disk, virsh,
                     wait_for, workdir, write_token)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    keep = "--keep" in sys.argv
    env = need_env(GUEST_ENV, GUEST_HINT)
    uri, pool = env["VA_TEST_LIBVIRT_URI"], env["VA_TEST_POOL"]
    work = workdir("app-guest-")
    group = "appg%d" % (os.getpid() % 100000)
    port, load_port = free_port(), free_port()
    token = write_token(work)
    base = tiny_disk(work, "tiny-disk-%s.qcow2" % group)
    with open(os.path.join(work, "user-data"), "w") as f:
        f.write("#cloud-config\n#tiny: load_url=http://10.0.2.2:%d/load\n"
                "#tiny: heartbeat=2\n" % load_port)
    cfg = os.path.join(work, "autoscale.yaml")
    with open(cfg, "w") as f:
        f.write("""version: 1
daemon:
  interval: 5s
  listen: 127.0.0.1:%(port)d
  public_url: http://10.0.2.2:%(port)d
  state: sqlite://%(work)s/state.db
  admin_token: { file: admin.token }
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
    min: 1
    max: 3
    hosts: [local]
    template:
      vcpus: 1
      memory: 160MiB
      image: %(base)s
      disk: 64MiB
      kernel: %(kernel)s
      initrd: %(initrd)s
      cmdline: "console=ttyS0 panic=-1"
    cloud_init:
      user_data: user-data
    scaling:
      target:
        app: { metric: requests_per_s, value: 10 }
      warmup: 5s
      scale_down_window: 30s
    health:
      ready_within: 5m
      heartbeat_timeout: 2m
    scale_in: { drain: 5s }
""" % dict(port=port, work=work, uri=uri, pool=pool, group=group, base=base,
           kernel=env["VA_TEST_TINY_KERNEL"], initrd=env["VA_TEST_TINY_INITRD"]))
    r = subprocess.run([binary, "-c", cfg, "check"], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr)
        return 1

    def post(path, value):
        urllib.request.urlopen(urllib.request.Request(
            "http://127.0.0.1:%d%s" % (load_port, path), data=str(value).encode(),
            method="POST"), timeout=5)

    daemon = Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    loadgen = subprocess.Popen([sys.executable, os.path.join(TOP, "scripts", "loadgen.py"),
                                "--listen", "127.0.0.1:%d" % load_port,
                                "--daemon", "http://127.0.0.1:%d" % port,
                                "--token-file", os.path.join(work, "admin.token"),
                                "--group", group, "--rps", "0"])
    api = Api("http://127.0.0.1:%d" % port, token)
    ids = set()
    rc = 1
    try:
        daemon.start()
        t_start = time.time()
        log("daemon started, group %s, work dir %s" % (group, work))
        wait_for("1 ready VM", lambda g: g["ready"] >= 1, 300, api, group)
        # the guest reports 0: known, low, at min
        wait_for("a decision on requests_per_s 0",
                 lambda g: "requests_per_s 0 " in (g.get("last_decision") or ""),
                 60, api, group)
        if api.group(group)["desired"] != 1:
            raise Fail("desired moved at 0 req/s: %s" % api.group(group))

        log("request step: 25 req/s for the group, spread over the ready VMs")
        step = time.time()
        post("/rps", 25)
        t_out = wait_for("3 ready VMs", lambda g: g["ready"] == 3 and g["current"] == 3,
                         300, api, group)
        log("scaled out to 3 ready VMs in %.0f s" % t_out)
        outs = [e["message"] for e in api.events(group, "decision")
                if "scale out" in e["message"]]
        for m in outs:
            log("decision: %s" % m)
        if not any(re.search(r"requests_per_s 25 \(mean of 1\) > target 10 .* -> want 3", m)
                   for m in outs):
            raise Fail("no scale-out decision naming requests_per_s 25 and the target: %s"
                       % outs)
        p = subprocess.run([binary, "-c", cfg, "explain", group], capture_output=True,
                           text=True, timeout=30)
        log("explain:\n" + p.stdout)
        if not re.search(r"requests_per_s 25 \(mean of 1\) > target 10", p.stdout):
            raise Fail("explain does not name the metric: %s%s" % (p.stdout, p.stderr))
        iid = next(i["id"] for i in api.instances(group) if i["state"] == "ready")
        am = {}
        t0 = time.time()
        while time.time() - t0 < 30:
            am = api.call("GET", "/v1/instances/%s/metrics" % iid).get("app_metrics", {})
            v = am.get("requests_per_s", {}).get("value")
            if v is not None and abs(v - 25 / 3) < 0.02:
                break
            time.sleep(1)
        log("instance %s app_metrics: %s" % (iid, am))
        v = am.get("requests_per_s", {}).get("value")
        if v is None or abs(v - 25 / 3) > 0.02:
            raise Fail("GET /v1/instances/%s/metrics: %s, want requests_per_s 8.33"
                       % (iid, am))

        log("requests stop")
        post("/rps", 0)
        t_in = wait_for("back to 1 VM", lambda g: g["current"] == 1 and g["desired"] == 1,
                        240, api, group)
        log("scaled back in to 1 VM in %.0f s" % t_in)
        ins = [e["message"] for e in api.events(group, "decision")
               if "scale in" in e["message"]]
        for m in ins:
            log("decision: %s" % m)
        if not any(re.search(r"requests_per_s 0 \(mean of 3\) < target 10", m) for m in ins):
            raise Fail("no scale-in decision naming requests_per_s 0: %s" % ins)
        print("reaction: request step -> 3 ready VMs %.1f s; requests stop -> 1 VM %.1f s"
              % (t_out, t_in))
        ids.update(e["instance"] for e in api.events(group) if e.get("instance"))

        # tear down through the product: min 0 by reload, scale to 0
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace("    min: 1\n", "    min: 0\n", 1))
        daemon.proc.send_signal(signal.SIGHUP)
        time.sleep(2)
        api.call("PUT", "/v1/groups/%s/desired" % group, {"desired": 0})
        wait_for("no VM", lambda g: g["current"] == 0, 180, api, group)
        t0 = time.time()
        while api.call("GET", "/v1/instances?group=" + group)["instances"]:
            if time.time() - t0 > 180:
                raise Fail("instances still being removed after 180 s")
            time.sleep(2)
        doms, vols = leftovers(uri, pool, group, ids)
        if doms or vols:
            raise Fail("leaked: domains %s, volumes %s" % (doms, vols))
        log("nothing left behind (%.0f s in all)" % (time.time() - t_start))
        rc = 0
    except Fail as e:
        print("FAIL: %s" % e)
        print("---- daemon log (last 60 lines) ----")
        with open(os.path.join(work, "daemon.log")) as f:
            print("".join(f.readlines()[-60:]))
    finally:
        daemon.stop()
        loadgen.terminate()
        if rc != 0 and not keep:
            for name in leftovers(uri, pool, group, ids)[0]:
                virsh(uri, "destroy", name)
                virsh(uri, "undefine", name)
        if not keep:
            subprocess.run(["virsh", "-q", "-c", uri, "vol-delete", "--pool", pool,
                            os.path.basename(base)], capture_output=True)
    print("app metrics on guests: %s" % ("passed" if rc == 0 else "FAILED"))
    return rc


if __name__ == "__main__":
    sys.exit(main())
