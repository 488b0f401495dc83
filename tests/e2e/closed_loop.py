#!/usr/bin/env python3
"""Closed-loop test on real guests: the daemon keeps a group at the size its
CPU load needs.

A group (min 1, max 3, CPU target 50 %) of tiny guests under QEMU on the
real libvirtd started by scripts/services/libvirt.sh. A load generator
(scripts/loadgen.py) spreads a demand of 130 % of one vCPU over the ready
guests, as a load balancer would: the group must reach 3 ready VMs. Then the
demand drops to 0 and the group must return to 1 after its scale-down
window. The event history must show every decision with its reason. At the
end the group is scaled to 0 and nothing may be left on the host: no domain,
no volume of an instance.

Prints the reaction figures (load step -> decision -> domain running ->
check-in) that bench/README.md records.

usage: closed_loop.py VIRT_AUTOSCALER_BINARY [--keep]
Needs VA_TEST_LIBVIRT_URI, VA_TEST_POOL, VA_TEST_TINY_KERNEL,
VA_TEST_TINY_INITRD (scripts/services/*.sh start); exits 77 without them.
"""
import os
import signal
import shutil
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
    work = workdir("closed-loop-")
    group = "loop%d" % (os.getpid() % 100000)
    port, load_port = free_port(), free_port()
    token = write_token(work)
    base = tiny_disk(work, "tiny-disk-%s.qcow2" % group)
    with open(os.path.join(work, "user-data"), "w") as f:
        f.write("#cloud-config\n#tiny: load_url=http://10.0.2.2:%d/load\n"
                "#tiny: heartbeat=3\n" % load_port)
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
    # the test host is shared with other tests' domains: let placement
    # limits not get in the way of what this test is about
    cpu_overcommit: 64
    memory_overcommit: 16
    reserved_memory: 0
  # a host that is down the whole time: it must not print a line per tick
  - name: ghost
    uri: qemu+unix:///system?socket=/nonexistent/libvirt-sock
    pool: %(pool)s
    user_net: true
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
      target: { cpu: 50%% }
      warmup: 10s
      scale_down_window: 45s
    health:
      ready_within: 5m
      heartbeat_timeout: 2m
    scale_in: { drain: 15s }
""" % dict(port=port, work=work, uri=uri, pool=pool, group=group, base=base,
           kernel=env["VA_TEST_TINY_KERNEL"], initrd=env["VA_TEST_TINY_INITRD"]))
    r = subprocess.run([binary, "-c", cfg, "check"], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr)
        return 1

    daemon = Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    loadgen = subprocess.Popen([sys.executable, os.path.join(TOP, "scripts", "loadgen.py"),
                                "--listen", "127.0.0.1:%d" % load_port,
                                "--daemon", "http://127.0.0.1:%d" % port,
                                "--token-file", os.path.join(work, "admin.token"),
                                "--group", group])
    api = Api("http://127.0.0.1:%d" % port, token)
    ids = set()
    rc = 1
    try:
        daemon.start()
        t_start = time.time()
        log("daemon started, group %s, work dir %s" % (group, work))
        wait_for("1 ready VM", lambda g: g["ready"] >= 1, 300, api, group)

        log("load step: demand 130 % of one vCPU, spread over the ready VMs")
        step = time.time()
        urllib.request.urlopen(urllib.request.Request(
            "http://127.0.0.1:%d/demand" % load_port, data=b"130", method="POST"), timeout=5)
        t_out = wait_for("3 ready VMs", lambda g: g["ready"] == 3 and g["current"] == 3,
                         600, api, group)
        log("scaled out to 3 ready VMs in %.0f s" % t_out)

        # the built-in store as an operator reads it, under load
        iid = next(i["id"] for i in api.instances(group) if i["state"] == "ready")
        m = api.call("GET", "/v1/instances/%s/metrics?window=1m" % iid)
        cpu = m["metrics"].get("cpu")
        log("instance metrics: %d samples, cpu %s" % (m["samples"], cpu))
        # one interval may read a little over 100 % (the stats call's own
        # timing), the window's mean may not
        if m["samples"] < 1 or not cpu or not 0 <= cpu["mean"] <= 100 or \
                not all(0 <= cpu[k] <= 110 for k in ("max", "last")):
            raise Fail("GET /v1/instances/%s/metrics: %s (want cpu in 0..100 %%)" % (iid, m))
        r = subprocess.run([binary, "-c", cfg, "metrics", "--window", "1m", iid],
                           capture_output=True, text=True)
        print(r.stdout, end="")
        if r.returncode != 0 or "\ncpu " not in r.stdout:
            raise Fail("virt-autoscaler metrics %s: exit %d\n%s" % (iid, r.returncode, r.stderr))

        # /metrics as Prometheus scrapes it, with real instances in it
        # (the test driver's domains report no figures): promtool's lint
        # passes and the instance series carry instance_id, not instance
        if shutil.which("promtool"):
            req = urllib.request.Request(api.base + "/metrics",
                                         headers={"Authorization": "Bearer " + api.token})
            with urllib.request.urlopen(req, timeout=10) as resp:
                text = resp.read().decode()
            p = subprocess.run(["promtool", "check", "metrics"], input=text,
                               capture_output=True, text=True)
            want = 'va_instance_cpu_ratio{group="%s"' % group
            if p.returncode != 0 or want not in text or ('instance_id="%s"' % iid) not in text:
                raise Fail("/metrics with %s's instances: promtool exit %d %s%s; "
                           "%s present: %s" % (group, p.returncode, p.stdout, p.stderr,
                                               want, want in text))
            log("promtool check metrics passes on /metrics with %d instances (%d lines)"
                % (len(api.instances(group)), text.count("\n")))
        elif os.environ.get("CI"):
            raise Fail("promtool is missing: run scripts/setup.sh (Debian package prometheus)")

        log("load removed")
        urllib.request.urlopen(urllib.request.Request(
            "http://127.0.0.1:%d/demand" % load_port, data=b"0", method="POST"), timeout=5)
        t_in = wait_for("back to 1 VM", lambda g: g["current"] == 1 and g["desired"] == 1,
                        420, api, group)
        log("scaled back in to 1 VM in %.0f s" % t_in)

        events = api.events(group)
        decisions = [e for e in events if e["kind"] == "decision"]
        outs = [e for e in decisions if "scale out" in e["message"]]
        ins = [e for e in decisions if "scale in" in e["message"]]
        for e in decisions:
            log("decision: %s" % e["message"])
        if not outs or not ins:
            raise Fail("expected scale-out and scale-in decisions in the history")
        if any(len(e["message"]) < 20 for e in decisions):
            raise Fail("a decision without a reason")
        ids.update(e["instance"] for e in events if e.get("instance"))

        # reaction figures: first decision after the step, its VMs' start
        # and check-in
        first = min((e for e in outs if e["time"] / 1000 >= step - 1),
                    key=lambda e: e["time"], default=None)
        if first:
            t_dec = first["time"] / 1000
            booted = sorted(e["time"] / 1000 for e in events
                            if e["kind"] == "booting" and e["time"] / 1000 >= t_dec)
            ready = sorted(e["time"] / 1000 for e in events
                           if e["kind"] == "ready" and e["time"] / 1000 >= t_dec)
            print("reaction: load step -> decision %.1f s" % (t_dec - step))
            if booted:
                print("reaction: decision -> domain running %.1f s" % (booted[0] - t_dec))
            if booted and ready:
                print("reaction: domain running -> checked in %.1f s" % (ready[0] - booted[0]))
            print("reaction: load step -> 3 ready VMs %.1f s; load removed -> 1 VM %.1f s"
                  % (t_out, t_in))

        # SIGHUP with a broken file: the old configuration stays.
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace("    max: 3\n", "    max: three\n", 1))
        daemon.proc.send_signal(signal.SIGHUP)
        time.sleep(3)
        with open(os.path.join(work, "daemon.log")) as f:
            if "keeping the old one" not in f.read():
                raise Fail("an invalid configuration on SIGHUP was not reported")
        if daemon.proc.poll() is not None:
            raise Fail("the daemon died on an invalid configuration")
        if api.group(group)["max"] != 3:
            raise Fail("the old configuration was not kept")
        log("SIGHUP with an invalid file: reported, old configuration kept")

        # Tear down through the product itself: min 0 by reload, scale to 0.
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
        log("every instance is gone")
        rc_daemon = daemon.stop()
        if rc_daemon != 0:
            raise Fail("daemon exited with %s after SIGTERM" % rc_daemon)
        with open(os.path.join(work, "daemon.log")) as f:
            text = f.read()
        if token in text:
            raise Fail("the admin token appears in the daemon's log")
        ghost = [l for l in text.splitlines() if "ghost" in l and " debug " not in l]
        if len(ghost) > 12:
            raise Fail("a host that is down logged %d lines:\n%s" % (len(ghost), "\n".join(ghost[:20])))
        log("host that stayed down: %d log lines in %.0f s" % (len(ghost), time.time() - t_start))
        doms, vols = leftovers(uri, pool, group, ids)
        if doms or vols:
            raise Fail("leaked: domains %s, volumes %s" % (doms, vols))
        log("nothing left behind: no domain of the group, no instance volume")
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
            # best effort: remove what the group left
            for name in leftovers(uri, pool, group, ids)[0]:
                virsh(uri, "destroy", name)
                virsh(uri, "undefine", name)
        if not keep:
            subprocess.run(["virsh", "-q", "-c", uri, "vol-delete", "--pool", pool,
                            os.path.basename(base)], capture_output=True)
    print("closed loop: %s" % ("passed" if rc == 0 else "FAILED"))
    return rc


if __name__ == "__main__":
    sys.exit(main())
