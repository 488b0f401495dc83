#!/usr/bin/env python3
"""bench/tune-predictive.py [BUILD_DIR]: the tuning behind the policies of
bench/README.md ("Predictive scaling and application metrics").

Honesty rule: it reads ONLY the first 11 days (950,400 s) of
$VA_SHARED_DIR/traces/twitter-rps.txt.gz (default ../shared/traces); the
last 11 days and the synthetic traces are for reporting, never for
choosing. It simulates (virt-autoscaler simulate, 40 req/s per VM, 60 s
boot) a grid of application-metric targets (requests_per_s per ready VM)
with predictive scaling off or forecast_and_scale at several buffers and
windows, and prints VM-hours, under-provisioned seconds, scale actions
and the ratio to the oracle, with the HPA baseline and the shipped
defaults for reference. The choice rule (fixed before looking): among
the settings with under-provisioned seconds at most the HPA's, the fewest
VM-hours; and, for predictive, the fewest under-provisioned seconds with
VM-hours at most 1.2x the oracle's.
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
SHARED = os.environ.get("VA_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
CLI = os.path.join(BUILD, "src", "virt-autoscaler")
TUNE_SECONDS = 950400  # the first 11 days

YAML = """version: 1
hosts:
  - {{ name: kvm1, uri: "qemu:///system" }}
groups:
  web:
    min: 1
    max: 20
    template: {{ vcpus: 2, memory: 2GiB, image: x.qcow2, disk: 10GiB }}
    scaling:
      target: {target}
      predictive: {{ mode: {mode}, buffer: {buffer}, window: {window} }}
"""


def run(cfg, trace):
    out = subprocess.run([CLI, "simulate", "-c", cfg, "--trace", trace,
                          "--json"], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


def main():
    tmp = tempfile.mkdtemp()
    trace = os.path.join(tmp, "tune.txt")
    with gzip.open(os.path.join(SHARED, "traces", "twitter-rps.txt.gz"),
                   "rt") as f, open(trace, "w") as out:
        for i, line in enumerate(f):
            if i >= TUNE_SECONDS:
                break
            out.write(line)
    rows = []
    for name, path in (("HPA baseline", "bench/hpa-baseline.yaml"),
                       ("defaults (web.yaml)", "examples/web.yaml")):
        rows.append((name, run(os.path.join(ROOT, path), trace)))
    targets = [("cpu %d%%" % c, "{ cpu: %d%% }" % c) for c in (60, 70, 80)]
    targets += [("app %d" % v,
                 "{ app: { metric: requests_per_s, value: %d } }" % v)
                for v in (24, 28, 30, 32, 34, 36)]
    for tname, target in targets:
        grid = [("off", "5m", "10m")]
        grid += [("forecast_and_scale", b, w)
                 for b in ("1m", "2m", "5m") for w in ("2m", "5m", "15m")]
        for mode, b, w in grid:
            cfg = os.path.join(tmp, "p.yaml")
            with open(cfg, "w") as f:
                f.write(YAML.format(target=target, mode=mode, buffer=b,
                                    window=w))
            name = tname + ("" if mode == "off" else
                            ", predictive %s+%s" % (b, w))
            rows.append((name, run(cfg, trace)))
    hpa_under = rows[0][1]["under_provisioned_seconds"]
    print("| policy (first 11 days) | vm_hours | x oracle | under_s | "
          "excess_req | scale | max |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows:
        ratio = r["vm_hours"] / r["oracle_vm_hours"]
        mark = " *" if (r["under_provisioned_seconds"] <= hpa_under and
                        ratio <= 1.2) else ""
        print("| %s%s | %.1f | %.2f | %d | %d | %d | %d |" % (
            name, mark, r["vm_hours"], ratio,
            r["under_provisioned_seconds"], r["excess_requests"],
            r["scale_actions"], r["max_vms"]))
    print("(* = under-provisioned seconds <= the HPA's and <= 1.2x the "
          "oracle's VM-hours)")


if __name__ == "__main__":
    main()
