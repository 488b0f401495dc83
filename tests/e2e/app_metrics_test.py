#!/usr/bin/env python3
"""Application metrics as scaling targets (issue 14), on libvirt's test
driver: three adopted instances get secrets (their hashes written into the
SQLite store, as provisioning does) and the test sends their heartbeats
with a "requests_per_s" metric; the group's target is
`app: { metric: requests_per_s, value: 30 }`.

  - heartbeat metrics that are NaN, negative or over 1e12 are refused with
    400 and counted in va_heartbeats_invalid_total;
  - before any report the decision holds: "no recent value of app metric
    requests_per_s" (never read as zero);
  - 40 req/s on each of 3 ready -> scale out to 4, and `explain` names the
    metric, its value and the target; GET /v1/instances/ID/metrics and
    `virt-autoscaler metrics ID` show the value and its age; /metrics has
    va_group_app_metric{stat="value"} 40 and {stat="target"} 30;
  - the guests stop reporting: after two intervals the decision holds with
    the reason, the size stays;
  - 5 req/s each -> scale in;
  - with the test InfluxDB (VA_TEST_INFLUXDB_URL, scripts/services/
    influxdb.sh; /tmp/env.sh starts it) as the daemon's sink: every
    instance's reports are va_instance_app points (tag metric, field
    value; 40 among them; the unnamed metric "other" is not written),
    and the group's figure and target are va_group_metric points under
    the metric's name. Without InfluxDB that part is skipped, and says so.

usage: app_metrics_test.py VIRT_AUTOSCALER
"""
import hashlib
import http.client
import json
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "web"
SIZE = 3

GROUPS = """  web:
    min: 1
    max: 10
    desired: 3
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
    scale_in: { drain: 0s }
    scaling:
      target:
        app: { metric: requests_per_s, value: 30 }
      warmup: 0s
      scale_up_window: 0s
      scale_down_window: 0s
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


def influxql(base, q, db=None):
    params = {"q": q}
    if db:
        params["db"] = db
    req = urllib.request.Request(base + "/query",
                                 data=urllib.parse.urlencode(params).encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read().decode())


def influx_rows(ans):
    """The rows of every series of a one-statement answer, each with its
    series' tags as a dict: [(tags, {column: value})]."""
    out = []
    for s in ans["results"][0].get("series", []):
        for v in s["values"]:
            out.append((s.get("tags", {}), dict(zip(s["columns"], v))))
    return out


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-app-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    port = harness.free_port()
    ids = [str(uuid.uuid4()) for _ in range(SIZE)]
    sec = {i: secrets.token_urlsafe(32) for i in ids}
    harness.test_node_xml(node, GROUP, ids)
    harness.testdriver_config(cfg, port, state, node, GROUPS)
    influx = os.environ.get("VA_TEST_INFLUXDB_URL", "").rstrip("/")
    influx_db = "va_app_metrics_%d" % os.getpid()
    if influx:
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(text.replace("daemon:\n", """daemon:
  metrics:
    influxdb: { url: "%s", database: %s, batch: 100 }
""" % (influx, influx_db), 1))
        influxql(influx, "CREATE DATABASE %s" % influx_db)
    else:
        log("VA_TEST_INFLUXDB_URL is not set: the InfluxDB part is skipped "
            "(scripts/services/influxdb.sh start)")
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    problems = []

    def beat(i, body):
        return post(port, "/v1/heartbeat/%s/%s" % (i, sec[i]), body)

    def beat_all(v):
        for i in ids:
            st, body = beat(i, '{"metrics": {"requests_per_s": %s, "other": 1}}' % v)
            if st != 200:
                raise Fail("heartbeat of %s with requests_per_s %s: %s %s"
                           % (i, v, st, body))

    def reason():
        return api.group(GROUP).get("last_decision") or ""

    def wait(what, pred, timeout, feed=None):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if feed:
                feed()
            if pred():
                return time.time() - t0
            if not d.running():
                raise Fail("the daemon exited")
            time.sleep(0.3)
        raise Fail("timed out after %d s waiting for %s; last decision: %s"
                   % (timeout, what, reason()))

    try:
        d.start()
        api.wait_up(30, d)
        harness.wait_for("the adopted group whole", lambda g: g["current"] == SIZE
                         and g["ready"] == SIZE, 30, api, GROUP, period=0.2)
        db = sqlite3.connect(state, timeout=30)
        # adopted instances have no ready time (ready_ms 0), which the
        # engine reads as "ready just now": give them one a minute ago so
        # that they count as serving through the last interval
        for i in ids:
            db.execute("UPDATE instances SET secret_hash = ?, ready_ms = ? WHERE id = ?",
                       (hashlib.sha256(sec[i].encode()).hexdigest(),
                        int(time.time() * 1000) - 60000, i))
        db.commit()
        db.close()
        harness.wait_ticks(api, 3, 30, d)

        # bad values: 400, counted, nothing else happens
        before = api.metric("va_heartbeats_invalid_total") or 0
        for body, why in (('{"metrics": {"requests_per_s": NaN}}', "not a number"),
                          ('{"metrics": {"requests_per_s": -5}}', "negative"),
                          ('{"metrics": {"requests_per_s": 2e12}}', "over 1e12")):
            st, text = beat(ids[0], body)
            log("heartbeat %s: %s %s" % (body, st, text.strip()))
            if st != 400 or why not in text or "requests_per_s" not in text:
                problems.append("heartbeat %s: %s %s, want 400 naming the metric "
                                "and '%s'" % (body, st, text.strip(), why))
        harness.wait_ticks(api, 2, 30, d)  # /metrics is rendered each tick
        after = api.metric("va_heartbeats_invalid_total") or 0
        if after - before != 3:
            problems.append("va_heartbeats_invalid_total went from %s to %s, want +3"
                            % (before, after))

        # nothing reported: hold, with the reason
        wait("the hold without app data",
             lambda: "no recent value of app metric requests_per_s" in reason(), 15)
        if api.group(GROUP)["desired"] != SIZE:
            problems.append("desired changed without app data: %s"
                            % api.group(GROUP)["desired"])
        log("no data: %s" % reason())

        # high: 40 per instance against a target of 30 -> ceil(3 x 40 / 30)
        # = 4 (the test driver's host has room for one more)
        took = wait("the scale-out", lambda: api.group(GROUP)["desired"] >= 4, 30,
                    feed=lambda: beat_all(40))
        log("scaled out to %d in %.1f s" % (api.group(GROUP)["desired"], took))
        p = subprocess.run([binary, "-c", cfg, "explain", GROUP], capture_output=True,
                           text=True, timeout=30)
        log("explain:\n" + p.stdout)
        if not re.search(r"requests_per_s 40 \(mean of 3\) > target 30 .* -> want 4",
                         p.stdout):
            problems.append("explain does not name the metric, its value and target: "
                            + p.stdout + p.stderr)
        m = api.call("GET", "/v1/instances/%s/metrics" % ids[0])
        am = m.get("app_metrics", {})
        log("instance metrics: %s" % am)
        if "requests_per_s" not in am or am["requests_per_s"]["value"] != 40 or \
                not 0 <= am["requests_per_s"]["age_s"] < 10 or "other" in am:
            problems.append("GET /v1/instances/ID/metrics app_metrics: %s" % am)
        p = subprocess.run([binary, "-c", cfg, "metrics", ids[0]], capture_output=True,
                           text=True, timeout=30)
        if not re.search(r"requests_per_s\s+40\s", p.stdout):
            problems.append("virt-autoscaler metrics: " + p.stdout + p.stderr)
        text = prom(port, token)
        for series in ('va_group_app_metric{group="web",metric="requests_per_s",'
                       'stat="value"} 40',
                       'va_group_app_metric{group="web",metric="requests_per_s",'
                       'stat="target"} 30'):
            if series not in text:
                problems.append("/metrics has no '%s'" % series)

        # the guests stop reporting: unknown after two intervals, hold
        size = api.group(GROUP)["desired"]
        wait("the hold after the reports stopped",
             lambda: "no recent value of app metric requests_per_s" in reason(), 15)
        time.sleep(2)
        if api.group(GROUP)["desired"] != size:
            problems.append("desired moved from %d to %d without app data"
                            % (size, api.group(GROUP)["desired"]))
        log("stopped: %s" % reason())

        # low: 5 per instance -> ceil(3 x 5 / 30) = 1
        took = wait("the scale-in", lambda: api.group(GROUP)["desired"] < size, 30,
                    feed=lambda: beat_all(5))
        log("scaled in to %d in %.1f s: %s" % (api.group(GROUP)["desired"], took,
                                               reason()))
        decisions = [e["message"] for e in api.events(GROUP, "decision")]
        if not any("requests_per_s 5 (mean of" in e and "< target 30" in e
                   for e in decisions):
            problems.append("no scale-in decision naming requests_per_s 5: %s"
                            % decisions[-3:])

        if influx:
            # the reports as va_instance_app points, one per value
            def points():
                return influx_rows(influxql(
                    influx, "SELECT value FROM va_instance_app WHERE "
                    "metric = 'requests_per_s' GROUP BY instance, \"group\", "
                    "metric", influx_db))
            def complete(rows):
                # every instance's 40 and 5 (InfluxDB gets a batch per
                # turn of the loop: the last ones may still be on the way)
                return all({40, 5} <= {r["value"] for t, r in rows
                                        if t["instance"] == i} for i in ids)
            t0 = time.time()
            while time.time() - t0 < 20 and not complete(points()):
                time.sleep(0.5)
            rows = points()
            seen = {t["instance"] for t, _ in rows}
            log("va_instance_app: %d points of %d instances" % (len(rows), len(seen)))
            if not complete(rows) or any(t["group"] != GROUP for t, _ in rows):
                problems.append("va_instance_app points: %s, want 40 and 5 "
                                "from each of %s" % (rows[:6], ids))
            other = influx_rows(influxql(
                influx, "SELECT value FROM va_instance_app WHERE metric = 'other'",
                influx_db))
            if other:
                problems.append("the unnamed metric 'other' was written: %s" % other[:3])
            grp = influx_rows(influxql(
                influx, "SELECT value, target FROM va_group_metric WHERE "
                "metric = 'requests_per_s' AND value = 40", influx_db))
            if not grp or grp[0][1]["target"] != 30:
                problems.append("va_group_metric of requests_per_s: %s, want "
                                "value 40 with target 30" % grp[:3])
    except Fail as e:
        problems.append(str(e))
    finally:
        d.stop()
        if influx:
            try:
                influxql(influx, "DROP DATABASE %s" % influx_db)
            except OSError:
                pass
    if problems:
        for p in problems:
            log("FAIL: " + p)
        log("daemon log:\n" + d.tail(40))
        return 1
    log("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
