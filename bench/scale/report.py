#!/usr/bin/env python3
"""bench/scale/report.py RESULT.json ...: the table of bench/scale/run.sh.

Per size, from watch.py's measurements and the bare client's:
- bare call: median wall time, the client's CPU and libvirtd's CPU of one
  virConnectGetAllDomainStats with the collector's groups and flags;
- collector round: median of va_host_collect_duration_seconds samples;
- loop: median of va_tick_duration_seconds samples (one turn of the loop, not
  counting the collector's call, which runs on its own thread), and the
  share of time the loop was busy: from va_tick_seconds_sum (the sum of
  its turns' wall time) where the daemon has it, else from watch.py's
  /proc samples of the loop thread (not in its idle wait), which see a
  few ms a round in steps of their period; per round, against the loop
  thread's CPU;
- CPU per round: the daemon's CPU over the window (all threads: collector,
  loop with reconciliation, HTTP) divided by the collector's rounds, and
  its ratio to the bare call's client CPU; libvirtd's CPU per round;
  the bare client's CPU to free the records (virDomainStatsRecordListFree,
  not in the call's CPU: libvirt formats each domain's UUID twice there,
  more than the call's own client CPU on the test driver) and the daemon's
  CPU per round against the call's and the free's together;
  The CPU per round depends on the interval (the loop wakes every second
  whatever it is, reconciliation runs every 30 s): compare with the goal
  at the default interval (INTERVAL=10s);
- wall per round: collector round + the loop's busy time per round
  (reconciliation included), and its ratio to the bare call's wall time;
- the bare call beside the daemon: the same call at the daemon's interval,
  half an interval after its rounds, during watch.py's window (results
  before 2026-12-07's session 9: once the window was over; median of
  calls 2 and on), and the wall per round against it: the like-for-like
  ratio (the first bare call ran 0.5 s apart on a libvirtd just started,
  which answers faster than one asked every 10 s); libvirtd's CPU for
  these calls is not counted as the daemon's;
- reconciliation: the loop's turns during which it listed the domains
  (ConnectListAllDomains, one a pass, every 30 s): their mean wall time
  and loop CPU, and the RPCs other than stats calls per pass;
- longest stall: the longest turn of the loop in the window, at most the
  bound of va_tick_seconds' highest bucket that grew (where the daemon
  has it), else the longest busy run of the loop thread in watch.py's
  /proc samples (20 ms steps);
- RPCs per minute from libvirt's log: the stats calls and all others;
- memory: the daemon's VmRSS and RssAnon at the end, minus those of the
  bare client once connected (the figure of issue 11's goal), and minus
  those of the bare client after its calls (which then holds a bulk
  reply's memory as the daemon's collector does).
"""
import json
import statistics
import sys


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def mean(xs):
    return statistics.mean(xs) if xs else float("nan")


rows = []
for path in sys.argv[1:]:
    r = json.load(open(path))
    b = r["bare"]
    calls = b["calls"][1:] or b["calls"]  # the first call warms up
    bw = med([c["wall_ms"] for c in calls])
    bc = med([c["cpu_ms"] for c in calls])
    bs = med([c["server_cpu_ms"] for c in calls])
    # freeing the records (older results: not measured)
    bf = med([c["free_cpu_ms"] for c in calls if "free_cpu_ms" in c]) \
        if any("free_cpu_ms" in c for c in calls) else float("nan")
    # the same call beside the daemon, at its interval (newer results)
    ba = r.get("bare_along", {}).get("calls", [])
    ba = ba[1:] or ba
    aw = med([c["wall_ms"] for c in ba])
    ac = med([c["cpu_ms"] for c in ba])
    asrv = med([c["server_cpu_ms"] for c in ba])
    rounds = max(r.get("rounds", 0), 1)
    dur = r["duration_s"]
    cpu_round = r["daemon_cpu_s"] * 1e3 / rounds
    loop_round = r["loop_cpu_s"] * 1e3 / rounds
    srv_cpu_s = r.get("libvirtd_cpu_s", float("nan"))
    if r.get("along_during"):
        # libvirtd's CPU for the bare calls made during the window
        srv_cpu_s -= sum(max(c["server_cpu_ms"], 0)
                         for c in r["bare_along"]["calls"]) / 1e3
    srv_round = srv_cpu_s * 1e3 / rounds
    busy_s = (1 - r["idle_share"]) * dur
    coll = med(r.get("collect_s_samples", [])) * 1e3
    tick = med(r.get("tick_s_samples", [])) * 1e3
    if "tick_sum_s" in r:
        # the loop's own sum of its turns (va_tick_seconds_sum) over
        # the scrapes' window, in which the rounds were counted too
        busy_round = r["tick_sum_s"] * 1e3 / rounds
        busy_share = r["tick_sum_s"] / r["metrics_window_s"] * 100
    else:
        busy_round = busy_s * 1e3 / rounds
        busy_share = busy_s / dur * 100
    wall_round = coll + busy_round
    # reconciliation passes: the loop's turns during which a
    # ConnectListAllDomains was sent (one a pass; watch.py matches the
    # RPC log's time stamps); older results: that many longest turns
    passes = sum(v for k, v in r.get("rpcs_by_proc", {}).items()
                 if k.startswith("273 "))
    if "reconcile_turns" in r:
        lt = r["reconcile_turns"]
    else:
        lt = sorted(r["long_turns"], key=lambda x: -x["s"])[:passes] if passes \
            else r["long_turns"]
    rec_wall = mean([x["s"] for x in lt]) * 1e3
    rec_cpu = mean([x["loop_cpu_s"] for x in lt]) * 1e3
    rpcs = r.get("rpcs", 0)
    stats = sum(v for k, v in r.get("rpcs_by_proc", {}).items()
                if k.startswith("344 "))
    m = r["memory_kib"]
    bm = b.get("connected", {})
    ba_ = b.get("after", {})
    rows.append(dict(
        size=r["size"], n=r["n"], adopt=r["adopt_s"], stop=r["stop_s"],
        bw=bw, bc=bc, bs=bs, coll=coll, tick=tick, busy=busy_share,
        busy_round=busy_round,
        cpu_round=cpu_round, loop_round=loop_round, srv_round=srv_round,
        cpu_ratio=cpu_round / bc if bc else float("nan"), bf=bf,
        cpu_ratio_free=cpu_round / (bc + bf) if bc + bf > 0 else float("nan"),
        tot_ratio=(cpu_round + srv_round) / (bc + bs) if bc + bs > 0 else float("nan"),
        wall_round=wall_round, wall_ratio=wall_round / bw if bw else float("nan"),
        aw=aw, ac=ac, asrv=asrv, a_n=len(ba),
        wall_ratio_along=wall_round / aw if aw == aw and aw else float("nan"),
        coll_ratio_along=coll / aw if aw == aw and aw else float("nan"),
        rec_n=passes or len(lt), rec_rpcs=(rpcs - stats) / passes if passes else float("nan"), rec_wall=rec_wall, rec_cpu=rec_cpu,
        stall=r["longest_turn_s"] * 1e3,
        stall_le=r.get("tick_max_le_s", float("nan")) * 1e3,
        rpm=rpcs / dur * 60, rpm_stats=stats / dur * 60,
        rpm_other=(rpcs - stats) / dur * 60, rpc_side=r.get("rpc_side", "?"),
        calls_metric=r.get("calls_metric", 0) / dur * 60,
        rss=m["VmRSS"], anon=m["RssAnon"], brss=bm.get("VmRSS", 0),
        banon=bm.get("RssAnon", 0), rounds=rounds, dur=dur,
        arss=ba_.get("VmRSS", float("nan")), aanon=ba_.get("RssAnon", float("nan")),
        load=r.get("load_after", "?"), procs=r.get("rpcs_by_proc", {}),
        rpcs_bare=r.get("rpcs_bare"),
        idle=r["idle_syscall"]))


def fmt(x, d=0):
    if x != x:
        return "—"
    return "{:,.{d}f}".format(x, d=d)


cols = [
    ("instances", lambda r: ("%s (test driver)" % fmt(r["n"])) if r["size"].startswith("t") else "%s QEMU, paused" % fmt(r["n"])),
    ("adopted at start in", lambda r: "%s s" % fmt(r["adopt"], 1)),
    ("bare call: wall / client CPU / libvirtd CPU", lambda r: "%s / %s / %s ms" % (fmt(r["bw"], 1), fmt(r["bc"], 1), fmt(r["bs"]))),
    ("collector round, wall (median)", lambda r: "%s ms" % fmt(r["coll"], 1)),
    ("loop turn (median), busy share", lambda r: "%s ms, %s %%" % (fmt(r["tick"], 1), fmt(r["busy"], 2))),
    ("loop busy per round: wall (its CPU)", lambda r: "%s ms (%s ms)" % (fmt(r["busy_round"], 1), fmt(r["loop_round"], 1))),
    ("daemon CPU per round (loop thread)", lambda r: "%s ms (%s)" % (fmt(r["cpu_round"], 1), fmt(r["loop_round"], 1))),
    ("daemon CPU / bare client CPU", lambda r: "%sx" % fmt(r["cpu_ratio"], 1)),
    ("bare client CPU to free the records; daemon / (call + free)", lambda r: "%s ms; %sx" % (fmt(r["bf"], 1), fmt(r["cpu_ratio_free"], 2))),
    ("(daemon + libvirtd) / (bare + libvirtd) CPU", lambda r: "%sx" % fmt(r["tot_ratio"], 2)),
    ("wall per round (collector + loop busy) / bare wall", lambda r: "%s ms, %sx" % (fmt(r["wall_round"], 1), fmt(r["wall_ratio"], 2))),
    ("bare call beside the daemon, at its interval: wall / client CPU / libvirtd CPU (calls)", lambda r: "%s / %s / %s ms (%d)" % (fmt(r["aw"], 1), fmt(r["ac"], 1), fmt(r["asrv"]), r["a_n"])),
    ("**wall per round / bare call beside**; collector round alone", lambda r: "**%sx**; %sx" % (fmt(r["wall_ratio_along"], 2), fmt(r["coll_ratio_along"], 2))),
    ("reconciliation: passes, wall, loop CPU, RPCs per pass", lambda r: "%d, %s ms, %s ms, %s" % (r["rec_n"], fmt(r["rec_wall"]), fmt(r["rec_cpu"]), fmt(r["rec_rpcs"]))),
    ("longest stall of the loop", lambda r: ("≤ %s ms (va_tick_seconds)" % fmt(r["stall_le"], 1))
     if r["stall_le"] == r["stall_le"] else "%s ms (/proc samples)" % fmt(r["stall"])),
    ("libvirt RPCs per minute: all (stats calls, others)", lambda r: "%s (%s, %s) [%s]" % (fmt(r["rpm"]), fmt(r["rpm_stats"]), fmt(r["rpm_other"]), r["rpc_side"])),
    ("va_host_libvirt_calls_total per minute", lambda r: fmt(r["calls_metric"])),
    ("VmRSS: daemon - bare = own", lambda r: "%s - %s = %s KiB" % (fmt(r["rss"]), fmt(r["brss"]), fmt(r["rss"] - r["brss"]))),
    ("RssAnon: daemon - bare = own", lambda r: "%s - %s = %s KiB" % (fmt(r["anon"]), fmt(r["banon"]), fmt(r["anon"] - r["banon"]))),
    ("VmRSS (RssAnon): daemon - bare after its calls", lambda r: "%s (%s) KiB" % (fmt(r["rss"] - r["arss"]), fmt(r["anon"] - r["aanon"]))),
    ("SIGTERM to exit", lambda r: "%s s" % fmt(r["stop"], 1)),
]
print("| | " + " | ".join(r["size"] for r in rows) + " |")
print("|---" * (len(rows) + 1) + "|")
for name, f in cols:
    print("| %s | %s |" % (name, " | ".join(f(r) for r in rows)))
print()
for r in rows:
    top = ", ".join("%s: %d" % (k.strip(), v) for k, v in list(r["procs"].items())[:8])
    print("%s: %d collector rounds in %.0f s; idle wait = syscall %s; load after %s; "
          "RPCs by procedure: %s%s" % (r["size"], r["rounds"], r["dur"], r["idle"],
                                       r["load"], top,
                                       "; the bare client's, not counted: %d" % r["rpcs_bare"]
                                       if r["rpcs_bare"] is not None else ""))
