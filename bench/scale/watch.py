#!/usr/bin/env python3
"""bench/scale/watch.py: measure a running virt-autoscaler from outside.

    watch.py --pid PID --port PORT --duration S [--server-pid PID]
             [--rpc-log FILE --rpc-side server|client] [--scrape S]
             [--sample-ms MS] [--json OUT]

Over DURATION seconds it reads only /proc, /metrics and a libvirt log:

- the loop's turns: every SAMPLE_MS (default 20) it reads the main
  thread's current system call (/proc/PID/task/PID/syscall) and its CPU
  time (/proc/PID/task/PID/schedstat). The loop waits for its next task in
  one system call; the one the thread is found in most often is taken as
  that idle wait (rt_sigtimedwait today), whatever it is. A run of samples
  outside it is one busy turn of the loop; the longest is the loop's
  longest stall (resolution: one sample period).
- CPU time of the whole process, of its main thread and of libvirtd
  (/proc/PID/stat, /proc/PID/task/PID/schedstat), from first to last sample.
- /metrics every SCRAPE seconds (default 5): va_ticks_total,
  va_tick_duration_seconds, and per host va_host_collect_rounds_total,
  va_host_collect_duration_seconds, va_host_libvirt_calls_total.
- libvirt RPCs: the lines libvirt logs for each message (its probes),
  counted between the first and last sample: on the server side
  (libvirtd's RPC_SERVER_CLIENT_MSG_RX, all clients: the daemon must be
  the only one meanwhile) or on the client side (the daemon's own
  RPC_CLIENT_MSG_TX_QUEUE, LIBVIRT_LOG_FILTERS in its environment). Calls
  of the remote program only (keepalive pings are not counted), by
  procedure number.
- memory at the end: VmRSS, RssAnon, RssFile of the daemon.

Prints a summary and writes it as JSON. Asserts nothing.
"""
import argparse
import collections
import json
import os
import re
import sys
import time
import urllib.request

REMOTE_PROG = 0x20008086
# remote_protocol.x procedure numbers (libvirt 9.0) of the calls seen;
# others are printed as numbers
PROC_NAMES = {
    14: "DomainGetXMLDesc", 83: "StoragePoolRefresh",
    102: "NodeGetFreeMemory", 84: "StoragePoolLookupByName",
    110: "ConnectGetUri", 150: "DomainIsActive", 151: "DomainIsPersistent",
    212: "DomainGetState", 227: "NodeGetCPUStats",
    228: "NodeGetMemoryStats", 264: "DomainSetMetadata",
    265: "DomainGetMetadata", 273: "ConnectListAllDomains",
    282: "StoragePoolListAllVolumes",
    344: "ConnectGetAllDomainStats", 353: "DomainInterfaceAddresses",
}


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def proc_cpu_s(pid):
    s = read("/proc/%d/stat" % pid)
    if not s:
        return None
    f = s[s.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid, tid):
    s = read("/proc/%d/task/%d/schedstat" % (pid, tid))
    return int(s.split()[0]) / 1e9 if s else None


def thread_syscall(pid, tid):
    s = read("/proc/%d/task/%d/syscall" % (pid, tid))
    if s is None:
        return None
    w = s.split()
    if not w:
        return None
    return w[0]  # a number, "running", or "-1" (blocked outside a syscall)


def mem(pid):
    out = {}
    s = read("/proc/%d/status" % pid) or ""
    for k in ("VmRSS", "RssAnon", "RssFile", "VmHWM", "Threads"):
        m = re.search(r"^%s:\s+(\d+)" % k, s, re.M)
        out[k] = int(m.group(1)) if m else None
    return out


def scrape(port):
    try:
        text = urllib.request.urlopen(
            "http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    except Exception:
        return None
    m = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        k, _, v = line.rpartition(" ")
        try:
            m[k] = float(v)
        except ValueError:
            pass
    m["_bytes"] = len(text)
    return m


def hostsum(m, name):
    return sum(v for k, v in m.items() if k.startswith(name + "{"))


def hostmax(m, name):
    vals = [v for k, v in m.items() if k.startswith(name + "{")]
    return max(vals) if vals else None


RX = re.compile(r"^(\S+ \S+): .*RPC_(SERVER_CLIENT_MSG_RX|CLIENT_MSG_TX_QUEUE): "
                r"client=(\S+) len=\d+ prog=(\d+) vers=\d+ proc=(\d+) type=(\d+)",
                re.M)
LIST_ALL_DOMAINS = 273  # one a reconciliation pass
GET_LIB_VERSION = 157  # the bare client's mark; the daemon never sends it


def log_time(stamp):
    """'2026-12-06 21:23:57.913+0000' -> seconds since the epoch"""
    import datetime
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f%z").timestamp()


def count_rpcs(path, start, end):
    """The daemon's RPCs in the log between two offsets: those of a client
    that sent ConnectGetLibVersion (the bare client's mark, scale_helper.c:
    its calls run during the window) are counted apart."""
    msgs = []
    marked = set()
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start).decode(errors="replace")
    for m in RX.finditer(data):
        if int(m.group(4)) != REMOTE_PROG or m.group(6) != "0":
            continue
        proc = int(m.group(5))
        if proc == GET_LIB_VERSION:
            marked.add(m.group(3))
        msgs.append((m.group(1), m.group(3), proc))
    procs = collections.Counter()
    clients = collections.Counter()
    others = collections.Counter()
    lists = []  # when each ConnectListAllDomains was sent
    for stamp, client, proc in msgs:
        if client in marked:
            others[proc] += 1
            continue
        procs[proc] += 1
        clients[client] += 1
        if proc == LIST_ALL_DOMAINS:
            lists.append(log_time(stamp))
    return procs, clients, lists, others


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--server-pid", type=int, default=0)
    ap.add_argument("--rpc-log")
    ap.add_argument("--rpc-side", choices=("server", "client"), default="server")
    ap.add_argument("--scrape", type=float, default=5.0)
    ap.add_argument("--sample-ms", type=float, default=20.0)
    ap.add_argument("--json")
    a = ap.parse_args()
    pid = a.pid
    period = a.sample_ms / 1000.0

    samples = []  # (t, syscall, loop cpu s)
    scrapes = []  # (t, metrics)
    rpc0 = os.path.getsize(a.rpc_log) if a.rpc_log else 0
    t0 = time.monotonic()
    wall0 = time.time()
    cpu0, srv0 = proc_cpu_s(pid), (proc_cpu_s(a.server_pid) if a.server_pid else None)
    loop0 = thread_cpu_s(pid, pid)
    m0 = scrape(a.port)
    scrapes.append((0.0, m0))
    next_scrape = a.scrape
    while True:
        t = time.monotonic() - t0
        if t >= a.duration:
            break
        sc = thread_syscall(pid, pid)
        if sc is None:
            print("watch.py: the daemon (pid %d) is gone" % pid, file=sys.stderr)
            sys.exit(1)
        samples.append((t, sc, thread_cpu_s(pid, pid)))
        if t >= next_scrape:
            m = scrape(a.port)
            if m:
                scrapes.append((time.monotonic() - t0, m))
            next_scrape += a.scrape
        time.sleep(max(0.0, period - ((time.monotonic() - t0) - t)))
    m1 = scrape(a.port)
    t1 = time.monotonic() - t0
    scrapes.append((t1, m1))
    cpu1, srv1 = proc_cpu_s(pid), (proc_cpu_s(a.server_pid) if a.server_pid else None)
    loop1 = thread_cpu_s(pid, pid)
    rpc1 = os.path.getsize(a.rpc_log) if a.rpc_log else 0
    memory = mem(pid)

    # the idle wait: the system call the loop is found in most often
    counts = collections.Counter(s[1] for s in samples)
    idle = counts.most_common(1)[0][0]
    idle_share = counts[idle] / len(samples)
    turns = []  # (start t, duration s, loop cpu s)
    i = 0
    while i < len(samples):
        if samples[i][1] == idle:
            i += 1
            continue
        j = i
        while j + 1 < len(samples) and samples[j + 1][1] != idle:
            j += 1
        start = samples[i - 1][0] if i > 0 else samples[i][0]
        end = samples[j + 1][0] if j + 1 < len(samples) else samples[j][0]
        cpu = (samples[j + 1][2] if j + 1 < len(samples) else samples[j][2]) - \
            (samples[i - 1][2] if i > 0 else samples[i][2])
        # the turn lasted between (j - i + 1) periods and end - start
        turns.append((samples[i][0], (samples[j][0] - samples[i][0]) + period, cpu))
        i = j + 1
    long_turns = sorted(turns, key=lambda x: -x[1])[:50]

    r = {"duration_s": t1, "samples": len(samples), "idle_syscall": idle,
         "idle_share": idle_share, "memory_kib": memory}
    r["daemon_cpu_s"] = cpu1 - cpu0
    r["loop_cpu_s"] = loop1 - loop0
    if a.server_pid:
        r["libvirtd_cpu_s"] = srv1 - srv0
    r["longest_turn_s"] = max((x[1] for x in turns), default=0.0)
    r["turns_seen"] = len(turns)
    r["long_turns"] = [{"t": round(x[0], 2), "s": round(x[1], 3),
                        "loop_cpu_s": round(x[2], 3)} for x in long_turns]

    good = [(t, m) for t, m in scrapes if m]
    if len(good) >= 2:
        (ta, ma), (tb, mb) = good[0], good[-1]
        r["ticks"] = mb.get("va_ticks_total", 0) - ma.get("va_ticks_total", 0)
        r["rounds"] = hostsum(mb, "va_host_collect_rounds_total") - \
            hostsum(ma, "va_host_collect_rounds_total")
        r["calls_metric"] = hostsum(mb, "va_host_libvirt_calls_total") - \
            hostsum(ma, "va_host_libvirt_calls_total")
        r["metrics_window_s"] = tb - ta
        # the loop's own histogram of its turns' wall time (newer
        # daemons): the sum is exact, where the /proc samples above see a
        # few ms a round in steps of the sampling period; the longest
        # turn in the window is at most the lowest bound whose bucket
        # grew by as many turns as the count
        if "va_tick_seconds_sum" in mb and "va_tick_seconds_sum" in ma:
            r["tick_sum_s"] = mb["va_tick_seconds_sum"] - ma["va_tick_seconds_sum"]
            n = mb["va_tick_seconds_count"] - ma["va_tick_seconds_count"]
            les = sorted(float(k.split('"')[1]) for k in mb
                         if k.startswith("va_tick_seconds_bucket{")
                         and "+Inf" not in k)
            for le in les:
                k = 'va_tick_seconds_bucket{le="%g"}' % le
                if mb.get(k, 0) - ma.get(k, 0) >= n:
                    r["tick_max_le_s"] = le
                    break
        td = [m.get("va_tick_duration_seconds") for _, m in good
              if m.get("va_tick_duration_seconds") is not None]
        cd = [hostmax(m, "va_host_collect_duration_seconds") for _, m in good]
        cd = [x for x in cd if x is not None]
        r["tick_s_samples"] = td
        r["collect_s_samples"] = cd
        r["metrics_bytes"] = mb.get("_bytes")
        r["group_current"] = {k: v for k, v in mb.items()
                              if k.startswith("va_group_current")}
    if a.rpc_log:
        procs, clients, lists, others = count_rpcs(a.rpc_log, rpc0, rpc1)
        r["rpcs_bare"] = sum(others.values())
        # the loop's turn during which each pass listed the domains
        rec = []
        for w in lists:
            t = w - wall0
            for x in turns:
                if x[0] - 2 * period <= t <= x[0] + x[1] + period:
                    rec.append(x)
                    break
        r["reconcile_turns"] = [{"t": round(x[0], 2), "s": round(x[1], 3),
                                 "loop_cpu_s": round(x[2], 3)} for x in rec]
        r["reconcile_lists"] = len(lists)
        r["rpc_side"] = a.rpc_side
        r["rpcs"] = sum(procs.values())
        r["rpcs_by_proc"] = {"%d %s" % (p, PROC_NAMES.get(p, "")): n
                             for p, n in procs.most_common()}
        r["rpc_clients"] = len(clients)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    print(json.dumps({k: v for k, v in r.items()
                      if k not in ("tick_s_samples", "collect_s_samples")}))


if __name__ == "__main__":
    main()
