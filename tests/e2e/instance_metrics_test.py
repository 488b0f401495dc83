#!/usr/bin/env python3
"""GET /v1/instances/ID/metrics and `virt-autoscaler metrics` on the real daemon.

The daemon runs on libvirt's test driver with a node file of our own
(test:///WORK/node.xml: one running domain carrying our <va:instance>
metadata, adopted at start) and SQLite; no libvirtd, no guest. The test
driver's bulk stats return only the state group, so the built-in store gets
samples without values: the answer counts them ("samples" > 0) with no
metrics, and "last_sample_age_s" is the age of the newest.
Checked:
  - admin token required (401 without or with a wrong one);
  - unknown instance, an id that is no UUID: 404; POST: 405;
  - window: default 5m, 500ms, = retention are fine; 0s, garbage and longer
    than daemon.metrics.retention are 400 (the message names the limit);
  - the answer's shape; an upper-case id finds the instance;
  - the CLI: exit codes and messages on the same daemon; its table
    (units, human-readable rates) against a canned answer served on
    loopback, since only a real guest gives values (closed_loop.py checks
    those on a guest).
Suite 'integration', a few seconds.

usage: instance_metrics_test.py VIRT_AUTOSCALER
"""
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NS, Fail, log  # noqa: E402

RETENTION = "10m"


def node_xml(path, dom_uuid):
    with open(path, "w") as f:
        f.write("""<node>
  <domain type='test'>
    <name>va-metrics-1</name>
    <uuid>%(uuid)s</uuid>
    <memory>524288</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
    <metadata>
      <va:instance xmlns:va="%(ns)s" group="idle" id="%(uuid)s" generation="1"/>
    </metadata>
  </domain>
  <pool type='dir'>
    <name>default-pool</name>
    <uuid>%(pool)s</uuid>
    <capacity>107374182400</capacity>
    <allocation>0</allocation>
    <available>107374182400</available>
    <target><path>/default-pool</path></target>
  </pool>
</node>
""" % {"uuid": dom_uuid, "ns": NS, "pool": str(uuid.uuid4())})


def config(path, port, state, node):
    # min = max = 1: the adopted domain is the group; no heartbeats are
    # required, so nothing replaces it while the test runs
    with open(path, "w") as f:
        f.write("""version: 1
daemon:
  interval: 1s
  listen: 127.0.0.1:%d
  state: sqlite://%s
  admin_token: { file: admin.token }
  metrics: { retention: %s }
hosts:
  - { name: test, uri: "test://%s", pool: default-pool }
groups:
  idle:
    min: 1
    max: 1
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
""" % (port, state, RETENTION, node))


def get(base, path, token, method="GET"):
    """(status, parsed JSON body)"""
    headers = {"Authorization": "Bearer " + token} if token is not None else {}
    req = urllib.request.Request(base + path, method=method, headers=headers,
                                 data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def expect(base, path, token, status, method="GET", error=None):
    st, body = get(base, path, token, method)
    if st != status:
        raise Fail("%s %s: HTTP %d %s, want %d" % (method, path, st, body, status))
    if error is not None and error not in body.get("error", ""):
        raise Fail("%s %s: error %r does not say %r" % (method, path, body, error))
    return body


def cli(binary, cfg, *args):
    p = subprocess.run([binary, "-c", cfg, "metrics"] + list(args),
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


CANNED = {
    "id": "11111111-2222-4333-8444-555555555555", "group": "web", "state": "ready",
    "window_s": 300, "samples": 30, "last_sample_age_s": 4.0,
    "metrics": {
        "cpu": {"mean": 12.5, "max": 80.25, "last": 3.0, "samples": 29},
        "memory": {"mean": 40.0, "max": 41.0, "last": 40.5, "samples": 30},
        "disk_read_bps": {"mean": 512, "max": 1536, "last": 0, "samples": 29},
        "net_rx_bps": {"mean": 3 * 1048576, "max": 2.5 * 1073741824, "last": 100,
                       "samples": 29},
        "disk_read_iops": {"mean": 7.25, "max": 20, "last": 1, "samples": 29},
    },
}


class Canned(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(CANNED).encode()
        self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def check_table(binary, cfg):
    """The CLI's table, against a canned answer on loopback."""
    srv = http.server.HTTPServer(("127.0.0.1", 0), Canned)
    srv.paths = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        rc, out, err = cli(binary, cfg, "--url", "http://127.0.0.1:%d" % srv.server_port,
                           "--window", "1h30m", CANNED["id"])
    finally:
        srv.shutdown()
        srv.server_close()
    if rc != 0:
        raise Fail("metrics against the canned answer: exit %d\n%s%s" % (rc, out, err))
    want_path = "/v1/instances/%s/metrics?window=1h30m" % CANNED["id"]
    if srv.paths != [want_path]:
        raise Fail("the CLI asked for %s, want %s" % (srv.paths, want_path))
    rows = {}
    for line in out.splitlines()[1:]:
        cols = line.split()
        if cols and cols[0] != "METRIC":
            rows[cols[0]] = " ".join(cols[1:])
    want = {
        "cpu": "12.5 % 80.2 % 3.0 %",
        "memory": "40.0 % 41.0 % 40.5 %",
        "disk_read_bps": "512 B/s 1.5 KiB/s 0 B/s",
        "net_rx_bps": "3.0 MiB/s 2.5 GiB/s 100 B/s",
        "disk_read_iops": "7.2 ops/s 20.0 ops/s 1.0 ops/s",
    }
    if rows != want:
        raise Fail("the CLI's table:\n%s\nwant rows %s" % (out, want))
    if "30 samples in the last 5m" not in out.splitlines()[0]:
        raise Fail("the CLI's first line: %r" % out.splitlines()[0])


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-metrics-")
    token = harness.write_token(work)
    dom = str(uuid.uuid4())
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    port = harness.free_port()
    base = "http://127.0.0.1:%d" % port
    path = "/v1/instances/%s/metrics" % dom
    node_xml(node, dom)
    config(cfg, port, os.path.join(work, "state.db"), node)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    ok = False
    try:
        log("the CLI's table on a canned answer")
        check_table(binary, cfg)

        d.start()
        harness.Api(base, token).wait_up(30, d)
        log("waiting for the adopted domain's first samples")
        t0 = time.time()
        while True:
            st, body = get(base, path, token)
            if st == 200 and body.get("last_sample_age_s") is not None:
                break
            if time.time() - t0 > 30:
                raise Fail("no sample of the adopted domain within 30 s: %d %s\n%s"
                           % (st, body, d.tail()))
            time.sleep(0.3)

        log("the answer")
        body = expect(base, path, token, 200)
        want = {"id": dom, "group": "idle", "state": "ready", "window_s": 300,
                "metrics": {}}
        got = {k: body.get(k) for k in want}
        if got != want:
            raise Fail("answer %s, want %s" % (body, want))
        # the test driver's samples carry no values, but they are samples
        if not isinstance(body.get("samples"), int) or body["samples"] < 1:
            raise Fail("samples %r: want the adopted domain's samples counted"
                       % body.get("samples"))
        age = body["last_sample_age_s"]
        if not isinstance(age, (int, float)) or not 0 <= age < 30:
            raise Fail("last_sample_age_s %r: want the age of a recent sample" % age)
        body = expect(base, "/v1/instances/%s/metrics" % dom.upper(), token, 200)
        if body["id"] != dom:
            raise Fail("upper-case id: answer for %s" % body["id"])

        log("windows")
        for q, window_s in (("?window=500ms", 0.5), ("?window=1m30s", 90),
                            ("?window=" + RETENTION, 600)):
            body = expect(base, path + q, token, 200)
            if body["window_s"] != window_s:
                raise Fail("%s: window_s %r, want %r" % (q, body["window_s"], window_s))
        expect(base, path + "?window=0s", token, 400, error="longer than 0s")
        expect(base, path + "?window=soon", token, 400, error="not a duration")
        expect(base, path + "?window=", token, 400, error="empty duration")
        expect(base, path + "?window=10m1s", token, 400,
               error="longer than daemon.metrics.retention (10m)")

        log("errors")
        expect(base, path, None, 401)
        expect(base, path, "wrong", 401)
        expect(base, "/v1/instances/%s/metrics" % uuid.uuid4(), token, 404,
               error="no instance")
        expect(base, "/v1/instances/not-a-uuid/metrics", token, 404, error="UUIDs")
        expect(base, path, token, 405, method="POST")

        log("the CLI on the daemon")
        rc, out, err = cli(binary, cfg, dom)
        if rc != 0 or ("instance %s (group idle, ready): " % dom) not in out or \
                "samples in the last 5m" not in out or \
                "none with metric values" not in out:
            raise Fail("metrics %s: exit %d\n%s%s" % (dom, rc, out, err))
        rc, out, err = cli(binary, cfg, "--window", "1h", dom)
        if rc != 1 or "daemon.metrics.retention (10m)" not in err:
            raise Fail("metrics --window 1h: exit %d, want 1 naming the retention\n%s%s"
                       % (rc, out, err))
        rc, out, err = cli(binary, cfg, "--window", "x", dom)
        if rc != 2 or "--window" not in err:
            raise Fail("metrics --window x: exit %d, want 2\n%s%s" % (rc, out, err))
        rc, out, err = cli(binary, cfg, str(uuid.uuid4()))
        if rc != 1 or "no instance" not in err:
            raise Fail("metrics UNKNOWN: exit %d, want 1\n%s%s" % (rc, out, err))
        rc, out, err = cli(binary, cfg)
        if rc != 2 or "usage" not in err:
            raise Fail("metrics without an id: exit %d, want 2\n%s%s" % (rc, out, err))
        ok = True
    finally:
        if d.stop() not in (0, None):
            ok = False
            log("the daemon did not stop cleanly:\n" + d.tail())
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
