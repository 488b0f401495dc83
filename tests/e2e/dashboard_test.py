#!/usr/bin/env python3
"""The Grafana dashboards in contrib/grafana/ against the data a real
daemon produces (issue 15): no panel, annotation or variable may ask for
a measurement, field, tag or metric name the daemon does not write.

The daemon runs on libvirt's test driver (test:///WORK/node.xml: two
running domains of group web, adopted at start as ready instances) with
SQLite, its InfluxDB sink writing to a fresh database of the test
InfluxDB (scripts/services/influxdb.sh, VA_TEST_INFLUXDB_URL), and a
Prometheus server of the test's own (Debian's prometheus, installed by
scripts/setup.sh) scraping its /metrics every second with the admin
token, so the per-instance series are there. A second host, dead (its
node file does not exist), gives a host_down event, the warning
annotations' data. For about 30 s the test:

  - waits until the two domains are adopted, and Prometheus has scraped;
  - makes one adopted instance booting again (in the SQLite store) and
    ready by its heartbeat (va_instance_ready_seconds counts it);
  - scales web to 3 through the API (a manual_scale event, a provision
    event, va_scale_actions_total{direction="up"}); the test driver
    cannot upload the seed ISO, so the provisioning fails (an error
    event: the warnings annotation);
  - scales web back to 2 (direction="down").

Then every InfluxQL query of virt-autoscaler-influxdb.json (panels,
annotations, template variables) has its Grafana macros replaced
($timeFilter, $__interval, $group, $host) and is run through influxd's
/query API; every PromQL expression of virt-autoscaler-prometheus.json is
evaluated the same way by Prometheus (query_range over the run; for
label_values() variables the label values API). Each must answer without
error and with at least one series. A macro the test does not know
fails it, and so does the dashboards' structure: the datasource of every
panel, target and annotation is the template variable ${DS} of the right
type, ids are unique, every panel has a query.

The test driver reports no statistics for its domains and neither the
host's free memory nor (in 30 s) its CPU utilization: queries that read
only those (va_instance, va_host.free_kib and cpu_util; va_instance_*
but va_instance_ready_seconds, va_host_free_memory_bytes,
va_host_cpu_utilization_ratio) must still run without error but may be
empty here; the test lists them, and checks the names they use against
the daemon's source (influx.c, metrics.c), where a renamed field or
metric would show.

Suite ['integration', 'testdriver'], about 40 s.

usage: dashboard_test.py VIRT_AUTOSCALER
"""
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "web"
SECRET = "dash" + "x" * 39  # 43 characters, as minted ones
DASHBOARDS = os.path.join(harness.TOP, "contrib", "grafana")
RUN_S = 30

# What the test driver cannot report (see above): (measurement, fields)
# for InfluxDB, metric names for Prometheus.
TESTDRIVER_INFLUX = {"va_instance": None, "va_host": {"free_kib", "cpu_util"}}
TESTDRIVER_PROM = re.compile(
    r"^(va_instance_(?!ready_seconds)\w+|va_host_free_memory_bytes|"
    r"va_host_cpu_utilization_ratio)$")


def config(path, port, state, node, work, influx_url, db):
    harness.testdriver_config(path, port, state, node, """  %s:
    min: 2
    max: 4
    hosts: [test]
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
    scaling:
      interval: 1s
      target: { cpu: 60%%, memory: 70%%, disk_iops: 500, disk_bytes: 50MiB, net_bytes: 10MiB }
""" % GROUP)
    with open(path) as f:
        text = f.read()
    text = text.replace("daemon:\n", """daemon:
  metrics:
    influxdb: { url: "%s", database: %s, batch: 100 }
""" % (influx_url, db), 1)
    text = text.replace("groups:\n", """  - { name: dead, uri: "test://%s/missing.xml", pool: default-pool }
groups:
""" % work, 1)
    with open(path, "w") as f:
        f.write(text)


def http(url, data=None, timeout=10):
    req = urllib.request.Request(url, data=data,
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def influxql(base, q, db=None):
    params = {"q": q}
    if db:
        params["db"] = db
    code, body = http(base + "/query", urllib.parse.urlencode(params).encode())
    if code != 200:
        raise Fail("InfluxDB answered %d to %s: %s" % (code, q, body))
    return json.loads(body)


def wait(what, pred, timeout=30, period=0.2):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(period)
    raise Fail("timed out after %d s waiting for %s" % (timeout, what))


def heartbeat(base, iid):
    code, _ = http("%s/v1/heartbeat/%s/%s" % (base, iid, SECRET), b"{}")
    return code


# ---- the dashboards ----------------------------------------------------------

def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def check_structure(dash, kind):
    """The checks Grafana's import would not make for us: ${DS} everywhere."""
    bad = []
    if dash.get("schemaVersion", 0) < 36:
        bad.append("schemaVersion %s: not a current Grafana's" % dash.get("schemaVersion"))
    tvars = {v["name"]: v for v in dash["templating"]["list"]}
    dsv = tvars.get("DS")
    if not dsv or dsv.get("type") != "datasource" or dsv.get("query") != kind:
        bad.append("no datasource variable DS of type %s: %s" % (kind, dsv))
    want = {"type": kind, "uid": "${DS}"}
    ids = set()
    for p in all_panels(dash["panels"]):
        if p["id"] in ids:
            bad.append("panel id %d twice" % p["id"])
        ids.add(p["id"])
        if p["type"] == "row":
            continue
        if p.get("datasource") != want:
            bad.append("panel %r: datasource %s" % (p["title"], p.get("datasource")))
        if not p.get("targets"):
            bad.append("panel %r has no query" % p["title"])
        for t in p.get("targets", []):
            if t.get("datasource") != want:
                bad.append("panel %r %s: datasource %s" % (p["title"], t["refId"],
                                                           t.get("datasource")))
    for a in dash["annotations"]["list"]:
        if a.get("builtIn"):
            continue
        if a.get("datasource") != want:
            bad.append("annotation %r: datasource %s" % (a["name"], a.get("datasource")))
    for v in tvars.values():
        if v["type"] == "query" and v.get("datasource") != want:
            bad.append("variable %s: datasource %s" % (v["name"], v.get("datasource")))
    return bad


def queries(dash, key):
    """(where, query) of every panel target, annotation and variable."""
    out = []
    for p in all_panels(dash["panels"]):
        for t in p.get("targets", []):
            out.append(("panel %r %s" % (p["title"], t["refId"]), t[key]))
    for a in dash["annotations"]["list"]:
        if a.get("builtIn"):
            continue
        out.append(("annotation %r" % a["name"], a[key]))
        if "target" in a and a["target"].get(key) != a[key]:
            out.append(("annotation %r target" % a["name"], a["target"][key]))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            out.append(("variable %s" % v["name"], v["query"]))
    return out


def substitute(q, macros):
    for k in sorted(macros, key=len, reverse=True):
        q = q.replace(k, macros[k])
    if re.search(r"\$[A-Za-z_{]", q):  # not a regex's end anchor
        raise Fail("a Grafana macro the test does not know in: %s" % q)
    return q


def influx_sources(q):
    """(measurement, fields) a query reads: fields quoted in SELECT."""
    m = re.findall(r'FROM\s+"(\w+)"', q)
    fields = set(re.findall(r'(?:mean|last|sum|count|max|min)\("(\w+)"\)', q))
    return m, fields


def only_testdriver_gaps_influx(q):
    meas, fields = influx_sources(q)
    if not meas:
        return False
    for m in meas:
        if m not in TESTDRIVER_INFLUX:
            return False
        gap = TESTDRIVER_INFLUX[m]
        if gap is not None and not (fields and fields <= gap):
            return False
    return True


def prom_names(expr):
    """Metric names in a PromQL expression: identifiers that are not
    functions, keywords, label names or inside quotes/brackets."""
    e = re.sub(r'"[^"]*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "{}", e)
    e = re.sub(r"\[[^\]]*\]", "[]", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    names = set()
    for m in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", e):
        if m.group(2):
            continue  # a function
        if m.group(1) in ("and", "or", "unless", "bool", "offset", "inf", "nan"):
            continue
        names.add(m.group(1))
    return names


def source_names():
    """The daemon's source where measurement, field and metric names are
    spelled out as C strings (checked as "NAME", quotes included)."""
    text = ""
    for f in ("influx.c", "metrics.c", "rates.c", "api.c", "api_command.c"):
        with open(os.path.join(harness.TOP, "src", f)) as fh:
            text += fh.read()
    return text


def check_influx(dash, base, db, t_start_ms, hosts):
    macros = {
        "$timeFilter": "time >= %dms" % t_start_ms,
        "$__interval": "2s",
        "$group": "(%s)" % GROUP,
        "$host": "(%s)" % "|".join(hosts),
    }
    src = source_names()
    bad, gaps, n = [], [], 0
    for where, q in queries(dash, "query"):
        qq = substitute(q, macros)
        ans = influxql(base, qq, db)
        res = ans["results"][0]
        n += 1
        if "error" in res:
            bad.append("%s: %s\n    %s" % (where, res["error"], qq))
            continue
        if res.get("series"):
            continue
        if only_testdriver_gaps_influx(q):
            meas, fields = influx_sources(q)
            missing = [x for x in set(meas) | fields if '"%s"' % x not in src]
            if missing:
                bad.append("%s: %s are nowhere in the daemon's source"
                           % (where, missing))
            gaps.append(where)
            continue
        bad.append("%s: no series\n    %s" % (where, qq))
    return n, bad, gaps


def check_prometheus(dash, prom, t_start, hosts):
    macros = {
        "$__rate_interval": "5s",
        "$__interval": "2s",
        "$group": GROUP,
        "$host": "|".join(hosts),
    }
    src = source_names()
    bad, gaps, n = [], [], 0
    end = time.time()
    for where, expr in queries(dash, "expr"):
        n += 1
        lv = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", expr)
        if lv:
            code, body = http("%s/api/v1/label/%s/values?%s" % (
                prom, lv.group(2), urllib.parse.urlencode({"match[]": lv.group(1)})))
            if code != 200 or not json.loads(body)["data"]:
                bad.append("%s: %s answered %d %s" % (where, expr, code, body))
            continue
        e = substitute(expr, macros)
        code, body = http("%s/api/v1/query_range?%s" % (prom, urllib.parse.urlencode(
            {"query": e, "start": "%.3f" % t_start, "end": "%.3f" % end, "step": "1"})))
        if code != 200:
            bad.append("%s: HTTP %d %s\n    %s" % (where, code, body, e))
            continue
        if json.loads(body)["data"]["result"]:
            continue
        names = prom_names(e)
        if names and all(TESTDRIVER_PROM.match(x) for x in names):
            missing = [x for x in names if '"%s"' % x not in src]
            if missing:
                bad.append("%s: %s are nowhere in the daemon's source" % (where, missing))
            gaps.append(where)
            continue
        bad.append("%s: no series (names %s)\n    %s" % (where, sorted(names), e))
    return n, bad, gaps


def start_prometheus(work, port, token_file):
    pport = harness.free_port()
    cfg = os.path.join(work, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("""global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: virt-autoscaler
    authorization:
      type: Bearer
      credentials_file: %s
    static_configs:
      - targets: ["127.0.0.1:%d"]
""" % (token_file, port))
    logf = open(os.path.join(work, "prometheus.log"), "w")
    p = subprocess.Popen(["prometheus", "--config.file=" + cfg,
                          "--storage.tsdb.path=" + os.path.join(work, "prom"),
                          "--web.listen-address=127.0.0.1:%d" % pport,
                          "--log.level=warn"],
                         stdout=logf, stderr=logf)
    base = "http://127.0.0.1:%d" % pport

    def ready():
        if p.poll() is not None:
            raise Fail("prometheus exited (%s): see %s" % (p.returncode, logf.name))
        try:
            return http(base + "/-/ready", timeout=2)[0] == 200
        except OSError:
            return False

    wait("Prometheus ready", ready, 30)
    return p, base


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    env = harness.need_env(["VA_TEST_INFLUXDB_URL"],
                           "run scripts/services/influxdb.sh start, or scripts/test.sh")
    influx = env["VA_TEST_INFLUXDB_URL"].rstrip("/")
    if not shutil.which("prometheus"):
        raise Fail("prometheus is missing: run scripts/setup.sh (Debian package prometheus)")
    with open(os.path.join(DASHBOARDS, "virt-autoscaler-influxdb.json")) as f:
        dash_influx = json.load(f)
    with open(os.path.join(DASHBOARDS, "virt-autoscaler-prometheus.json")) as f:
        dash_prom = json.load(f)
    bad = ["influxdb dashboard: " + b for b in check_structure(dash_influx, "influxdb")]
    bad += ["prometheus dashboard: " + b for b in check_structure(dash_prom, "prometheus")]
    if bad:
        raise Fail("\n  ".join(["the dashboards' structure:"] + bad))

    work = harness.workdir("va-dash-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    port = harness.free_port()
    db = "va_test_dash_%d" % os.getpid()
    ids = [str(uuid.uuid4()) for _ in range(2)]
    harness.test_node_xml(node, GROUP, ids)
    config(cfg, port, state, node, work, influx, db)
    base = "http://127.0.0.1:%d" % port
    api = harness.Api(base, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    prom = None
    ok = False
    try:
        influxql(influx, "CREATE DATABASE %s" % db)
        prom, prom_base = start_prometheus(work, port, os.path.join(work, "admin.token"))
        t_start = time.time()
        d.start()
        api.wait_up(30, d)
        wait("the adopted group whole", lambda: (lambda g: g["current"] == 2 and
             g["ready"] == 2)(api.group(GROUP)))
        wait("Prometheus scraping the daemon", lambda: json.loads(http(
            prom_base + "/api/v1/query?query=va_group_desired")[1])["data"]["result"])

        # one adopted instance booting again, made ready by its heartbeat:
        # va_instance_ready_seconds counts it
        hashed = hashlib.sha256(SECRET.encode()).hexdigest()
        db_ = sqlite3.connect(state, timeout=30)
        with db_:
            db_.execute("UPDATE instances SET secret_hash = ?", (hashed,))
            db_.execute("UPDATE instances SET state = 'booting' WHERE id = ?", (ids[0],))
        db_.close()
        wait("a heartbeat of %s accepted" % ids[0], lambda: heartbeat(base, ids[0]) == 200)
        wait("two ready", lambda: api.group(GROUP)["ready"] == 2)
        log("%s made ready by a heartbeat" % ids[0])

        # the test driver cannot upload a seed ISO: the new instance's
        # provisioning fails (an error event, the annotations' data)
        api.set_desired(GROUP, 3)
        wait("the provisioning tried", lambda: api.events(GROUP, "provision_failed"))
        api.set_desired(GROUP, 2)
        log("scaled to 3 (provisioning failed) and back to 2")
        left = RUN_S - (time.time() - t_start)
        if left > 0:
            log("running %.0f s more" % left)
            time.sleep(left)
        kinds = {e["kind"] for e in api.events(GROUP)}
        for k in ("manual_scale", "provision", "provision_failed"):
            if k not in kinds:
                raise Fail("no %s event: %s" % (k, sorted(kinds)))
        # what the sink queued is in InfluxDB by now (batches every turn)
        wait("InfluxDB holding the provision_failed event", lambda: influxql(
            influx, "SELECT count(\"text\") FROM va_event WHERE kind = "
            "'provision_failed'", db)["results"][0].get("series"), 15)

        hosts = ["test", "dead"]
        n, bad_i, gaps_i = check_influx(dash_influx, influx, db,
                                        int(t_start * 1000) - 60000, hosts)
        log("InfluxDB: %d queries run, %d with series, %d left empty by the "
            "test driver: %s" % (n, n - len(bad_i) - len(gaps_i), len(gaps_i),
                                 "; ".join(gaps_i)))
        n, bad_p, gaps_p = check_prometheus(dash_prom, prom_base, t_start, hosts)
        log("Prometheus: %d expressions evaluated, %d with series, %d left empty "
            "by the test driver: %s" % (n, n - len(bad_p) - len(gaps_p), len(gaps_p),
                                        "; ".join(gaps_p)))
        bad = ["influxdb dashboard: " + b for b in bad_i]
        bad += ["prometheus dashboard: " + b for b in bad_p]
        if bad:
            raise Fail("\n  ".join(["queries the data does not answer:"] + bad))
        ok = True
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        if d.stop() not in (0, None):
            ok = False
            log("the daemon did not stop cleanly:\n" + d.tail())
        if prom is not None:
            prom.send_signal(signal.SIGTERM)
            try:
                prom.wait(timeout=20)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
        try:
            influxql(influx, "DROP DATABASE %s" % db)
        except (Fail, OSError):
            pass
    if ok:
        shutil.rmtree(work, ignore_errors=True)
        log("PASS")
        return 0
    log("work directory kept: " + work)
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as e:
        log("FAIL: %s" % e)
        sys.exit(1)
