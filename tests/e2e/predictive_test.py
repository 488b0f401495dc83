#!/usr/bin/env python3
"""Predictive scaling in the daemon (issue 14), on libvirt's test driver.

Two adopted instances report 10 requests/s each in their heartbeats
against `app: { metric: requests_per_s, value: 10 }`: target tracking
wants 2. The group has `predictive: { buffer: 1m, window: 2m }`.

  - a first start (forecast_only) creates the schema; with no load
    history there is no forecast, and GET /v1/groups/web says why;
  - the test then writes two days of history into the store's
    load_history table, as the daemon itself would have: 2 instances
    all day, 5 for an hour from two minutes ahead on each earlier day
    (the forecaster's level ratio then compares equal levels: exactly 5);
  - restarted in forecast_only, the daemon loads it and forecasts 5 for
    the window ahead: GET /v1/groups/web, `status`, `explain`, /metrics
    and the status page's data (GET /v1/overview) show it, and the size
    stays 2 (not acting);
  - reloaded to forecast_and_scale, the floor wins over target tracking:
    the group scales to 5 ahead of the load, and `explain` names the
    forecast in the decision;
  - the daemon writes its own one-minute means into the table (load 2).

usage: predictive_test.py VIRT_AUTOSCALER
"""
import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "web"
SIZE = 2
PEAK = 5

GROUPS = """  web:
    min: 1
    max: 8
    desired: 2
    template: { image: base.qcow2, memory: 128MiB }
    health: { heartbeat_timeout: 0s, replace: false, ready_within: 1h }
    scale_in: { drain: 0s }
    scaling:
      target:
        app: { metric: requests_per_s, value: 10 }
      warmup: 0s
      scale_up_window: 0s
      scale_down_window: 10m
      predictive: { mode: %s, buffer: 1m, window: 2m }
"""


def post(port, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", path, body=body)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def prom(port, token):
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % port,
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode()


def write_config(cfg, port, state, node, mode):
    harness.testdriver_config(cfg, port, state, node, GROUPS % mode,
                              host_extra=", reserved_memory: 0")


def preload(state, now_min):
    """Two days of one-minute means: 2 instances, and PEAK for the hour
    from two minutes ahead on each earlier day (the daemon's own units:
    instances, stored in thousandths). The window 1m..3m ahead reaches
    into it while the test runs its first checks (now is this minute or
    the next), and the 15 minutes before now are 2 today as on those
    days: the level ratio is 1 and the forecast exactly PEAK. (Later, as
    today stays at 2 through the peak's start, the ratio lowers it.)"""
    rows = []
    for m in range(now_min - 2 * 1440, now_min):
        in_peak = 2 <= (m - now_min) % 1440 < 62
        rows.append((GROUP, m, (PEAK if in_peak else 2) * 1000))
    db = sqlite3.connect(state, timeout=30)
    # a minute the first run wrote itself is replaced
    db.executemany("INSERT OR REPLACE INTO load_history (group_name, minute, "
                   "load_milli) VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()
    return len(rows)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-pred-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    port = harness.free_port()
    ids = [str(uuid.uuid4()) for _ in range(SIZE)]
    sec = {i: secrets.token_urlsafe(32) for i in ids}
    harness.test_node_xml(node, GROUP, ids)
    write_config(cfg, port, state, node, "forecast_only")
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    problems = []
    feeding = threading.Event()
    stop_feed = threading.Event()

    def feed():
        # every instance serves 10 req/s: target tracking wants 2
        while not stop_feed.is_set():
            if feeding.is_set():
                for i in ids:
                    try:
                        post(port, "/v1/heartbeat/%s/%s" % (i, sec[i]),
                             '{"metrics": {"requests_per_s": 10}}')
                    except OSError:
                        pass
            stop_feed.wait(0.5)

    def predictive():
        return api.group(GROUP).get("predictive") or {}

    def reason():
        return api.group(GROUP).get("last_decision") or ""

    def cli(*args):
        p = subprocess.run([binary, "-c", cfg] + list(args), capture_output=True,
                           text=True, timeout=30)
        return p.stdout + p.stderr

    def start():
        d.start()
        api.wait_up(30, d)
        harness.wait_for("the adopted group whole", lambda g: g["current"] >= SIZE
                         and g["ready"] == SIZE, 30, api, GROUP, period=0.2)
        # adopted instances get secrets (as provisioning writes them) and
        # a ready time a minute ago, so that they serve the whole interval
        db = sqlite3.connect(state, timeout=30)
        for i in ids:
            db.execute("UPDATE instances SET secret_hash = ?, ready_ms = ? "
                       "WHERE id = ?",
                       (hashlib.sha256(sec[i].encode()).hexdigest(),
                        int(time.time() * 1000) - 60000, i))
        db.commit()
        db.close()
        harness.wait_ticks(api, 2, 30, d)
        feeding.set()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        # 1. no history: no forecast, and why
        start()
        harness.wait_ticks(api, 3, 30, d)
        p = predictive()
        log("without history: %s" % p)
        if p.get("mode") != "forecast_only" or p.get("forecast") is not None or \
                "under a day of load history" not in (p.get("why") or ""):
            problems.append("without history, GET /v1/groups/web predictive: %s" % p)
        feeding.clear()
        d.stop()

        # 2. two days of history written into the store
        t_min = int(time.time()) // 60
        n = preload(state, t_min)
        log("wrote %d minutes of history (peak %d from minute %d on each day)"
            % (n, PEAK, t_min + 2))

        # 3. forecast_only: shown everywhere, not acting
        start()
        harness.wait_ticks(api, 5, 30, d)
        p = predictive()
        log("forecast_only: %s; %s" % (p, reason()))
        if p.get("forecast") != PEAK or p.get("history_minutes", 0) < 2 * 1440:
            problems.append("forecast_only: predictive %s, want forecast %d from "
                            "two days of history" % (p, PEAK))
        g = api.group(GROUP)
        if g["desired"] != SIZE:
            problems.append("forecast_only acted: desired %d, want %d (%s)"
                            % (g["desired"], SIZE, reason()))
        if "forecast: %d needed in 1m..3m (forecast_only: not acting)" % PEAK \
                not in reason():
            problems.append("forecast_only: the decision does not show the "
                            "forecast: %s" % reason())
        out = cli("explain", GROUP)
        log("explain:\n" + out)
        if not re.search(r"forecast \(forecast_only\): %d instances needed in "
                         r"1m\.\.3m .*: not acting" % PEAK, out):
            problems.append("explain does not show the forecast: " + out)
        out = cli("status")
        if not re.search(r"^web .*forecast %d \(forecast_only\)" % PEAK, out, re.M):
            problems.append("status does not show the forecast: " + out)
        text = prom(port, token)
        if 'va_group_forecast{group="web"} %d' % PEAK not in text:
            problems.append("/metrics has no va_group_forecast %d" % PEAK)
        # the status page's data (no token): the floor beside the sizes
        with urllib.request.urlopen("http://127.0.0.1:%d/v1/overview" % port,
                                    timeout=5) as r:
            ov = json.loads(r.read().decode())
        h = next(g for g in ov["groups"] if g["name"] == GROUP)["history"]
        log("overview: desired %s forecast %s" % (h["desired"][-3:],
                                                  h.get("forecast", [])[-3:]))
        if PEAK not in h.get("forecast", []) or h["desired"][-1] != SIZE:
            problems.append("GET /v1/overview history: forecast %s, desired %s"
                            % (h.get("forecast"), h["desired"]))

        # 4. forecast_and_scale (a reload): the floor wins, ahead of load
        write_config(cfg, port, state, node, "forecast_and_scale")
        os.kill(d.proc.pid, signal.SIGHUP)
        harness.wait_for("the scale-out to the forecast",
                         lambda g: g["desired"] == PEAK, 30, api, GROUP, period=0.3)
        log("forecast_and_scale: desired %d: %s" % (api.group(GROUP)["desired"],
                                                    reason()))
        out = cli("explain", GROUP)
        log("explain:\n" + out)
        if not re.search(r"forecast: %d needed in 1m\.\.3m -> want %d" % (PEAK, PEAK),
                         out):
            problems.append("explain does not name the forecast in the "
                            "decision: " + out)
        if "forecast (forecast_and_scale): %d instances needed" % PEAK not in out:
            problems.append("explain does not show the forecast line: " + out)
        harness.wait_ticks(api, 3, 30, d)
        if api.group(GROUP)["desired"] != PEAK:
            problems.append("the size left the floor: %s" % api.group(GROUP))

        # 5. the daemon's own minutes go into the store (one a minute)
        def own_rows():
            return harness.sqlite_query(
                state, "SELECT minute, load_milli FROM load_history WHERE "
                "group_name = ? AND minute >= ?", (GROUP, t_min))
        deadline = time.time() + 75
        while not own_rows() and time.time() < deadline:
            time.sleep(1)
        rows = own_rows()
        log("rows the daemon wrote: %s" % rows)
        if not rows or any(abs(r[1] - 2000) > 1 for r in rows):
            problems.append("the daemon's own minutes: %s, want load 2 (2000)" % rows)
    except Fail as e:
        problems.append(str(e))
    finally:
        stop_feed.set()
        d.stop()
    if problems:
        for p in problems:
            log("FAIL: " + p)
        log("daemon log:\n" + d.tail(40))
        return 1
    log("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
