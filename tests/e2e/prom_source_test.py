#!/usr/bin/env python3
"""An app target measured outside the VMs (issue 14): the group's figure is
a Prometheus instant query, on libvirt's test driver. The test runs a
Prometheus server of its own (Debian's prometheus) scraping a small
exporter of the test (http.server on loopback) that serves a gauge
lb_requests_per_s{backend="web"} the test sets; the group's target is

  app: { metric: lb_rps, value: 30,
         source: { prometheus: URL, query: 'lb_requests_per_s{backend="web"}' } }

over three adopted ready instances:
  - 120 req/s -> scale out (ceil(120 / 30) = 4; the test driver's host has
    room for one more): `explain` names the source, its value and the
    target; /metrics has va_group_app_metric{stat="value"} 120;
  - 20 req/s -> scale in;
  - the exporter adds a second series -> hold naming "2 series", with an
    app_source_error event; desired unchanged;
  - Prometheus stopped -> hold naming the refused connection.

usage: prom_source_test.py VIRT_AUTOSCALER
"""
import http.server
import os
import re
import shutil
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
SIZE = 3


class Exporter:
    """GET /metrics: the gauge(s) the test sets, in Prometheus' text format."""

    def __init__(self):
        self.lock = threading.Lock()
        self.series = {'backend="web"': 80.0}
        ex = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with ex.lock:
                    body = "# TYPE lb_requests_per_s gauge\n" + "".join(
                        "lb_requests_per_s{%s} %g\n" % (k, v)
                        for k, v in sorted(ex.series.items()))
                body = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def set(self, labels, value):
        with self.lock:
            if value is None:
                self.series.pop(labels, None)
            else:
                self.series[labels] = value

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def prom_metrics(port, token):
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % port,
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode()


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    if not shutil.which("prometheus"):
        raise Fail("prometheus is missing: run scripts/setup.sh (Debian package prometheus)")
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-promsrc-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    port = harness.free_port()
    ids = [str(uuid.uuid4()) for _ in range(SIZE)]
    problems = []
    exporter = Exporter()
    prom, prom_base = harness.start_prometheus(work, """  - job_name: lb
    static_configs:
      - targets: ["127.0.0.1:%d"]
""" % exporter.port)
    log("prometheus at %s scraping the exporter on port %d" % (prom_base, exporter.port))
    harness.test_node_xml(node, GROUP, ids)
    harness.testdriver_config(cfg, port, state, node, """  web:
    min: 1
    max: 10
    desired: 3
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
    scale_in: { drain: 0s }
    scaling:
      target:
        app:
          metric: lb_rps
          value: 30
          source:
            prometheus: "%s"
            query: 'lb_requests_per_s{backend="web"}'
            timeout: 2s
      warmup: 0s
      scale_up_window: 0s
      scale_down_window: 0s
""" % prom_base)
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))

    def reason():
        return api.group(GROUP).get("last_decision") or ""

    def wait(what, pred, timeout):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if pred():
                return time.time() - t0
            if not d.running():
                raise Fail("the daemon exited")
            time.sleep(0.3)
        raise Fail("timed out after %d s waiting for %s; last decision: %s; "
                   "source: %s" % (timeout, what, reason(),
                                   api.group(GROUP).get("app_source")))

    def explain():
        p = subprocess.run([binary, "-c", cfg, "explain", GROUP], capture_output=True,
                           text=True, timeout=30)
        return p.stdout + p.stderr

    try:
        t_start = time.time()
        d.start()
        api.wait_up(30, d)
        harness.wait_for("the adopted group whole", lambda g: g["current"] == SIZE
                         and g["ready"] == SIZE, 30, api, GROUP, period=0.2)
        # adopted instances have no ready time: give them one a minute ago
        # so that they count as serving through the last interval
        db = sqlite3.connect(state, timeout=30)
        for i in ids:
            db.execute("UPDATE instances SET ready_ms = ? WHERE id = ?",
                       (int(time.time() * 1000) - 60000, i))
        db.commit()
        db.close()
        # 80 / 30 -> 3: the size holds while Prometheus' figure arrives
        wait("the first value from Prometheus",
             lambda: (api.group(GROUP).get("app_source") or {}).get("value") == 80, 20)
        log("source: %s" % api.group(GROUP)["app_source"])

        # high: 120 -> ceil(120 / 30) = 4 (95 would be within the 10 % band)
        exporter.set('backend="web"', 120)
        took = wait("the scale-out", lambda: api.group(GROUP)["desired"] >= 4, 20)
        log("scaled out to %d in %.1f s" % (api.group(GROUP)["desired"], took))
        text = explain()
        log("explain:\n" + text)
        if not re.search(r"lb_rps 120 \(total from prometheus\) > target 30 per "
                         r"instance .*-> want 4", text):
            problems.append("explain does not show the decision on the source's "
                            "value and target: " + text)
        if "app metric lb_rps from prometheus %s" % prom_base not in text or \
                'lb_requests_per_s{backend="web"}' not in text:
            problems.append("explain does not name the source and its query: " + text)
        series = ('va_group_app_metric{group="web",metric="lb_rps",stat="value"} 120')
        if series not in prom_metrics(port, token):
            problems.append("/metrics has no '%s'" % series)

        # low: 20 -> ceil(20 / 30) = 1
        size = api.group(GROUP)["desired"]
        exporter.set('backend="web"', 20)
        took = wait("the scale-in", lambda: api.group(GROUP)["desired"] < size, 20)
        log("scaled in to %d in %.1f s: %s" % (api.group(GROUP)["desired"], took,
                                               reason()))
        decisions = [e["message"] for e in api.events(GROUP, "decision")]
        if not any("lb_rps 20 (total from prometheus) < target 30" in e
                   for e in decisions):
            problems.append("no scale-in decision naming lb_rps 20 from prometheus: %s"
                            % decisions[-3:])

        # a second series: the query no longer gives one number -> hold
        size = api.group(GROUP)["desired"]
        exporter.set('backend="web",pool="b"', 500)
        wait("the hold on 2 series", lambda: "returned 2 series" in reason(), 20)
        log("two series: %s" % reason())
        if "no value of app metric lb_rps from prometheus" not in reason():
            problems.append("the hold does not name the metric and source: " + reason())
        time.sleep(2)
        if api.group(GROUP)["desired"] != size:
            problems.append("desired moved from %d to %d on 2 series"
                            % (size, api.group(GROUP)["desired"]))
        ev = [e["message"] for e in api.events(GROUP, "app_source_error")]
        if not any("2 series" in e for e in ev):
            problems.append("no app_source_error event naming 2 series: %s" % ev)
        text = explain()
        if "no value: the query returned 2 series" not in text:
            problems.append("explain does not show the source's error: " + text)
        exporter.set('backend="web",pool="b"', None)
        wait("the source answering again",
             lambda: any("answers again" in e["message"]
                         for e in api.events(GROUP, "app_source_ok")), 20)

        # Prometheus stopped: refused -> hold with the reason
        size = api.group(GROUP)["desired"]
        prom.terminate()
        prom.wait(timeout=30)
        wait("the hold without Prometheus",
             lambda: re.search(r"no value of app metric lb_rps from prometheus: "
                               r"http://127\.0\.0\.1:\d+: .*(refused|connect)",
                               reason(), re.I) is not None, 20)
        log("prometheus stopped: %s" % reason())
        time.sleep(2)
        if api.group(GROUP)["desired"] != size:
            problems.append("desired moved from %d to %d without Prometheus"
                            % (size, api.group(GROUP)["desired"]))
        m = prom_metrics(port, token)
        errs = re.search(r'va_app_source_errors_total\{group="web",metric="lb_rps",'
                         r'source="prometheus"\} (\d+)', m)
        if not errs or int(errs.group(1)) < 2:
            problems.append("va_app_source_errors_total: %s"
                            % (errs.group(0) if errs else "missing"))
        t0 = time.time()
        rc = d.stop()
        log("daemon stopped in %.2f s (rc %s); whole test %.0f s"
            % (time.time() - t0, rc, time.time() - t_start))
        if rc != 0:
            problems.append("the daemon exited with %s" % rc)
        with open(d.logpath) as f:
            logtext = f.read()
        if token in logtext:
            problems.append("the admin token is in the daemon's log")
    except Fail as e:
        problems.append(str(e))
    finally:
        d.stop()
        if prom.poll() is None:
            prom.terminate()
            prom.wait(timeout=30)
        exporter.stop()
    if problems:
        for p in problems:
            log("FAIL: " + p)
        log("daemon log:\n" + d.tail(40))
        return 1
    log("ok")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as e:
        log("FAIL: %s" % e)
        sys.exit(1)
