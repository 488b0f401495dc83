#!/usr/bin/env python3
"""bench/warm-pool.py tune|report|variants [BUILD_DIR]: the warm-pool figures of
bench/README.md ("Warm pools in the simulator (issue 13)").

All runs: virt-autoscaler simulate, --capacity 40 --boot-delay 60s, the
group's warm_pool from the file, --warm-boot-delay 2s (and 5s).

  tune    reads ONLY the first 11 days (950,400 s) of
          $VA_SHARED_DIR/traces/twitter-rps.txt.gz (default
          ../shared/traces) and simulates examples/web.yaml's policy with
          warm_pool { size: N, state: saved } for N = 0..10. The choice
          rule, written here before the first run: the smallest size whose
          under-provisioned seconds (warm boot 2 s) are at most 1.1x the
          fewest of all the sizes tried. Its result is frozen into
          examples/web-warm.yaml by hand.
  report  every trace (Twitter whole and its days 12-22, the synthetic
          shapes of bench/gen-traces.py): the HPA baseline, the shipped
          defaults (examples/web.yaml) and examples/web-warm.yaml at warm
          boot 2 s and 5 s, with the oracle's VM-hours (every run prints
          them: oracle_vm_hours) and a markdown table.
  variants  run after the choice, for docs/warm-pools.md's advice (the
          example is not changed on them): on the Twitter test half (days
          12-22), the pool of examples/web-warm.yaml as paused, as stopped
          (warm boot 20 s: a boot from its own disk), with
          reuse_on_scale_in, with max_prepared 20, and sizes 1-8.
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "build")
SHARED = os.environ.get("VA_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
CLI = os.path.join(BUILD, "src", "virt-autoscaler")
TWITTER = os.path.join(SHARED, "traces", "twitter-rps.txt.gz")
TUNE_SECONDS = 950400  # the first 11 days
SIZES = range(0, 11)


def run(cfg, trace, warm="2s", report_from=None):
    args = [CLI, "simulate", "-c", cfg, "--trace", trace, "--json",
            "--capacity", "40", "--boot-delay", "60s",
            "--warm-boot-delay", warm]
    if report_from:
        args += ["--report-from", report_from]
    out = subprocess.run(args, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


def with_pool(tmp, size):
    """examples/web.yaml plus a saved pool of `size` (0: none)."""
    with open(os.path.join(ROOT, "examples", "web.yaml")) as f:
        text = f.read()
    path = os.path.join(tmp, "web-%d.yaml" % size)
    with open(path, "w") as f:
        f.write(text)
        if size:
            f.write("    warm_pool: { size: %d, state: saved }\n" % size)
    return path


def row(name, r):
    return "| %s | %.1f | %.1f | %s | %s | %.2f |" % (
        name, r["vm_hours"], r["warm_vm_hours"],
        format(r["under_provisioned_seconds"], ","),
        format(r["warm_draws"], ","), r["vm_hours"] / r["oracle_vm_hours"])


def tune(tmp):
    trace = os.path.join(tmp, "tune.txt")
    with gzip.open(TWITTER, "rt") as f, open(trace, "w") as out:
        for i, line in enumerate(f):
            if i >= TUNE_SECONDS:
                break
            out.write(line)
    res = {}
    print("| size (Twitter days 1-11) | vm_hours | warm_vm_hours | under_s"
          " | warm_draws | x oracle | under_s at 5 s |")
    print("|---|---|---|---|---|---|---|")
    for n in SIZES:
        cfg = with_pool(tmp, n)
        res[n] = run(cfg, trace)
        r5 = run(cfg, trace, "5s")
        print(row(str(n), res[n]) + " %s |" %
              format(r5["under_provisioned_seconds"], ","))
    best = min(r["under_provisioned_seconds"] for r in res.values())
    chosen = min(n for n in SIZES
                 if res[n]["under_provisioned_seconds"] <= 1.1 * best)
    print("\nrule: the smallest size with under_s <= 1.1 x %d: size %d"
          % (best, chosen))


def report(tmp):
    subprocess.run([sys.executable, os.path.join(ROOT, "bench",
                                                 "gen-traces.py"), tmp],
                   check=True)
    traces = [("Twitter, 22 days", TWITTER, None),
              ("Twitter days 12-22 (TEST)", TWITTER, "950400s")]
    traces += [("synthetic " + t, os.path.join(tmp, t + ".txt"), None)
               for t in ("diurnal", "steps", "spikes", "flash", "weekly")]
    hpa = os.path.join(ROOT, "bench", "hpa-baseline.yaml")
    web = os.path.join(ROOT, "examples", "web.yaml")
    warm = os.path.join(ROOT, "examples", "web-warm.yaml")
    pred = os.path.join(ROOT, "bench", "predictive.yaml")
    pred_warm = os.path.join(ROOT, "bench", "predictive-warm.yaml")
    print("| trace | policy | vm_hours | warm_vm_hours | under_s | "
          "warm_draws | x oracle |")
    print("|---|---|---|---|---|---|---|")
    for name, path, frm in traces:
        rows = [("HPA baseline", run(hpa, path, report_from=frm)),
                ("shipped defaults", run(web, path, report_from=frm)),
                ("web-warm, warm boot 2 s", run(warm, path, "2s", frm)),
                ("web-warm, warm boot 5 s", run(warm, path, "5s", frm)),
                ("predictive + app", run(pred, path, report_from=frm)),
                ("predictive + app + warm, 2 s",
                 run(pred_warm, path, "2s", frm))]
        for i, (pname, r) in enumerate(rows):
            print(row("%s | %s" % (name if i == 0 else "", pname), r))
        print("| | oracle | %.1f | | 0 | | 1 |" % rows[0][1]["oracle_vm_hours"])
        sys.stdout.flush()


def variants(tmp):
    with open(os.path.join(ROOT, "examples", "web.yaml")) as f:
        text = f.read()
    frm = "950400s"
    cases = [("saved, size 4 (the example)", "{ size: 4, state: saved }",
              "2s"),
             ("paused, size 4", "{ size: 4, state: paused }", "2s"),
             ("stopped, size 4, warm boot 20 s",
              "{ size: 4, state: stopped }", "20s"),
             ("saved, size 4, reuse_on_scale_in",
              "{ size: 4, state: saved, reuse_on_scale_in: true }", "2s"),
             ("saved, size 4, max_prepared 20",
              "{ size: 4, state: saved, max_prepared: 20 }", "2s")]
    cases += [("saved, size %d" % n, "{ size: %d, state: saved }" % n, "2s")
              for n in (1, 2, 3, 5, 6, 8)]
    print("| Twitter days 12-22 | vm_hours | warm_vm_hours | under_s | "
          "warm_draws | x oracle |")
    print("|---|---|---|---|---|---|")
    for name, pool, warm in cases:
        cfg = os.path.join(tmp, "v.yaml")
        with open(cfg, "w") as f:
            f.write(text + "    warm_pool: %s\n" % pool)
        print(row(name, run(cfg, TWITTER, warm, frm)))
        sys.stdout.flush()


def main():
    modes = {"tune": tune, "report": report, "variants": variants}
    if len(sys.argv) < 2 or sys.argv[1] not in modes:
        sys.exit(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        modes[sys.argv[1]](tmp)


if __name__ == "__main__":
    main()
