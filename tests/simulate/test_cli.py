#!/usr/bin/env python3
"""`virt-autoscaler simulate` end to end: the real binary with
examples/web.yaml (and small configs written here) on short synthetic
traces, plain and gzip. Checks the JSON fields and hand-checked figures,
--explain, --plot (a well-formed SVG with labelled axes), a group's warm
pool with --warm-boot-delay, examples/web-warm.yaml, and the errors.

  test_cli.py BINARY SOURCE_ROOT
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

FIELDS = ["vm_hours", "under_provisioned_seconds", "excess_requests",
          "scale_actions", "min_vms", "max_vms", "oracle_vm_hours",
          "warm_vm_hours", "warm_draws"]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)


def run(binary, *args):
    p = subprocess.run([binary, "simulate"] + list(args),
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def main():
    binary, root = sys.argv[1], sys.argv[2]
    web = os.path.join(root, "examples", "web.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        const = os.path.join(tmp, "const.txt")
        with open(const, "w") as f:
            f.write("20\n" * 120)
        step = os.path.join(tmp, "step.txt.gz")
        with gzip.open(step, "wt") as f:
            f.write("20\n" * 60 + "200\n" * 600)

        # Constant 20 req/s on 1 VM of 40 req/s: 50 % CPU, nothing moves.
        rc, out, err = run(binary, "-c", web, "--trace", const, "--json")
        check(rc == 0, "constant: exit %d, stderr %r" % (rc, err))
        obj = json.loads(out)
        check(list(obj.keys()) == FIELDS, "JSON fields: %r" % list(obj))
        check(abs(obj["vm_hours"] - 120 / 3600) < 0.001, "constant vm_hours")
        check(obj["under_provisioned_seconds"] == 0, "constant under")
        check(obj["excess_requests"] == 0, "constant excess")
        check(obj["scale_actions"] == 0, "constant actions")
        check(obj["min_vms"] == 1 and obj["max_vms"] == 1, "constant vms")
        check(obj["warm_vm_hours"] == 0 and obj["warm_draws"] == 0,
              "no pool: no warm figures")

        # A step to 200 req/s (gzip): the group grows, and is short at
        # least until the first new VM boots (60 s) after the step.
        rc, out, err = run(binary, "-c", web, "--trace", step, "--json",
                           "--capacity", "40", "--boot-delay", "60s")
        check(rc == 0, "step: exit %d, stderr %r" % (rc, err))
        obj = json.loads(out)
        check(list(obj.keys()) == FIELDS, "step JSON fields")
        check(obj["under_provisioned_seconds"] >= 60, "step under >= 60")
        check(obj["max_vms"] >= 8, "step grows to >= 8 VMs (200 req/s at 62.5 %)")
        check(obj["max_vms"] <= 20, "step stays within max 20")
        check(obj["min_vms"] == 1, "step starts at 1")
        check(obj["scale_actions"] >= 1, "step scales")
        # A bigger capacity per VM needs fewer VMs.
        rc, out2, err = run(binary, "-c", web, "--trace", step, "--json",
                            "--capacity", "100")
        check(rc == 0 and json.loads(out2)["max_vms"] < obj["max_vms"],
              "capacity 100 needs fewer VMs")

        # The table and --explain: every decision with a reason.
        rc, out, err = run(binary, "-c", web, "--trace", step, "--explain")
        check(rc == 0, "explain: exit %d" % rc)
        lines = [l for l in out.splitlines() if l.startswith("[")]
        check(len(lines) == 65, "explain: 65 decisions (every 10 s), got %d"
              % len(lines))
        check(any("(scale out): cpu" in l and "saturated" in l
                  for l in lines), "explain: a saturated scale-out reason")
        check("under_provisioned_seconds" in out, "table after explain")
        # --json keeps stdout for the object, explanations go to stderr
        rc, out, err = run(binary, "-c", web, "--trace", step, "--explain",
                           "--json")
        check(rc == 0 and list(json.loads(out)) == FIELDS,
              "explain + json: stdout is the object")
        check(err.count("\n") >= 65, "explain + json: reasons on stderr")

        # --plot: a well-formed SVG with axis labels and three series
        svg = os.path.join(tmp, "out.svg")
        rc, out, err = run(binary, "-c", web, "--trace", step, "--plot", svg)
        check(rc == 0, "plot: exit %d, %r" % (rc, err))
        tree = ET.parse(svg)
        texts = [t.text or "" for t in tree.iter("{http://www.w3.org/2000/svg}text")]
        check("requests/s" in texts and "VMs" in texts, "plot: axis labels")
        check(sum(1 for _ in tree.iter("{http://www.w3.org/2000/svg}polyline")) == 5,
              "plot: five series")

        # A warm pool (the group's warm_pool) on the step: the first
        # scale-out draws warm VMs, ready 2 s later instead of 60 s.
        with open(web) as f:
            web_text = f.read()
        cold = obj
        warm_cfg = os.path.join(tmp, "warm.yaml")
        with open(warm_cfg, "w") as f:
            f.write(web_text + "    warm_pool: { size: 3, state: saved }\n")
        rc, out, err = run(binary, "-c", warm_cfg, "--trace", step, "--json",
                           "--boot-delay", "60s", "--warm-boot-delay", "2s")
        check(rc == 0, "warm: exit %d, %r" % (rc, err))
        wobj = json.loads(out)
        check(list(wobj) == FIELDS, "warm JSON fields")
        check(wobj["warm_draws"] >= 3, "warm: draws %d" % wobj["warm_draws"])
        check(wobj["warm_vm_hours"] > 0, "saved pool: warm_vm_hours > 0")
        check(wobj["under_provisioned_seconds"] <
              cold["under_provisioned_seconds"] - 40,
              "warm: under %d vs cold %d" % (wobj["under_provisioned_seconds"],
                                            cold["under_provisioned_seconds"]))
        rc, out, err = run(binary, "-c", warm_cfg, "--trace", step, "--json",
                           "--warm-boot-delay", "30s")
        check(rc == 0 and json.loads(out)["under_provisioned_seconds"] >
              wobj["under_provisioned_seconds"],
              "a slower warm boot is short longer")
        with open(warm_cfg, "w") as f:
            f.write(web_text + "    warm_pool: { size: 3, state: paused }\n")
        rc, out, err = run(binary, "-c", warm_cfg, "--trace", step, "--json")
        pobj = json.loads(out) if rc == 0 else {}
        check(rc == 0 and pobj["warm_vm_hours"] == 0 and
              abs(pobj["vm_hours"] - wobj["vm_hours"] -
                  wobj["warm_vm_hours"]) < 0.002,
              "paused pool: its hours are in vm_hours: %r %r" % (pobj, wobj))
        rc, out, err = run(binary, "-c", warm_cfg, "--trace", step)
        check(rc == 0 and "warm pool                  3 paused" in out and
              "warm_draws" in out, "warm: the table: %r" % out)
        rc, out, err = run(binary, "-c", warm_cfg, "--trace", step, "--plot",
                           svg)
        tree = ET.parse(svg)
        texts = [t.text or "" for t in tree.iter("{http://www.w3.org/2000/svg}text")]
        check(sum(1 for _ in tree.iter("{http://www.w3.org/2000/svg}polyline")) == 7
              and "prepared warm VMs (mean)" in texts,
              "warm plot: seven series, warm legend")
        example = os.path.join(root, "examples", "web-warm.yaml")
        rc, out, err = run(binary, "-c", example, "--trace", step, "--json")
        check(rc == 0 and json.loads(out)["warm_draws"] >= 1,
              "examples/web-warm.yaml draws: %d %r" % (rc, out + err))

        # Errors
        bad = os.path.join(tmp, "bad.txt")
        with open(bad, "w") as f:
            f.write("1\n2\nx3\n")
        rc, out, err = run(binary, "-c", web, "--trace", bad)
        check(rc == 1 and bad + ":3:" in err, "bad trace: %d %r" % (rc, err))
        rc, out, err = run(binary, "-c", web)
        check(rc == 2 and "--trace" in err, "missing --trace: %d" % rc)
        rc, out, err = run(binary, "-c", web, "--trace", const,
                           "--capacity", "0")
        check(rc == 2 and "--capacity" in err, "capacity 0: %d" % rc)
        rc, out, err = run(binary, "-c", web, "--trace", const,
                           "--boot-delay", "60")
        check(rc == 2 and "--boot-delay" in err, "boot delay unit: %d" % rc)
        rc, out, err = run(binary, "-c", web, "--trace", const,
                           "--warm-boot-delay", "soon")
        check(rc == 2 and "--warm-boot-delay" in err,
              "warm boot delay: %d %r" % (rc, err))
        rc, out, err = run(binary, "-c", web, "--trace", const,
                           "--group", "db")
        check(rc == 1 and "no group 'db' (groups: web)" in err,
              "unknown group: %r" % err)
        two = os.path.join(tmp, "two.yaml")
        with open(web) as f:
            text = f.read()
        with open(two, "w") as f:
            f.write(text + "  api:\n    min: 2\n    max: 4\n"
                    "    template: { vcpus: 1, memory: 1GiB, image: b.qcow2,"
                    " disk: 5GiB }\n")
        rc, out, err = run(binary, "-c", two, "--trace", const)
        check(rc == 1 and "2 groups (web, api): choose one with --group"
              in err, "several groups: %r" % err)
        rc, out, err = run(binary, "-c", two, "--trace", const, "--group",
                           "api", "--json")
        check(rc == 0 and json.loads(out)["min_vms"] == 2,
              "--group api starts at its min 2")
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
