#!/usr/bin/env python3
"""The status page (GET /) in a real browser: headless Chromium from Debian,
driven over the DevTools protocol on a pipe (browser.py).

The daemon runs on libvirt's test driver with a node file of our own (four
running domains of group "web" carrying our metadata, adopted at start as
ready instances; group "batch" empty) and SQLite; no libvirtd, no guest.
Checked:
  - the headers of the page, its files and the JSON: Content-Security-
    Policy default-src 'self' (so no inline script, style or handler runs,
    and nothing loads from elsewhere), nosniff, X-Frame-Options DENY;
    /v1/overview answers without a token and names no instance, the admin
    API still wants one; a reload (SIGHUP) keeps each group's history;
  - public view (no token): both groups' rows, the instances plot of each
    with data points (desired, current, ready), hosts with capacity; no
    instance id anywhere in the page, and it says what needs the token;
  - admin view (the token typed into the page's field): the four instance
    rows, the recent decisions with their reasons, the last decision per
    group; a decision whose text is HTML (written into the store by the
    test) shows as text: no element of it exists, its handler never runs;
    the instance filter;
  - the page's Pause button pauses the group (the admin API says so);
  - a wrong token is refused once and forgotten at once: one admin request,
    not one per refresh, so the page never trips the daemon's limit on
    failed authentications;
  - it refreshes without reloading: the plot gains points;
  - the metric plot, on the daemon's own page files served with canned data
    (the test driver's statistics carry no counters, so the daemon has no
    metric to plot): the metric's line with every point but a gap, and its
    target's line;
  - no CSP violation and no JavaScript error in any of it.
Screenshots go to BUILD_DIR/ui-status.png (admin view), ui-public.png and
ui-metric.png; their paths are printed.

Chromium runs as root with --no-sandbox (browser.py says why). Without
chromium installed the test is skipped (exit 77): scripts/setup.sh installs
it.

Suite 'integration', 'testdriver'; about 20 s.

usage: ui_test.py VIRT_AUTOSCALER BUILD_DIR
"""
import http.server
import json
import os
import shutil
import signal
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser  # noqa: E402
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP, OTHER = "web", "batch"
SIZE = 4
EVIL = ("<img src=x id=xss-probe onerror=\"document.title='pwned'\">"
        "<b id=xss-bold>4 -> 4</b> held")


def config(path, port, state, node, cooldown="0s"):
    harness.testdriver_config(path, port, state, node, """  %s:
    min: 2
    max: 6
    desired: %d
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
    scaling: { interval: 1s, cooldown: %s, target: { cpu: 60%% } }
  %s:
    min: 0
    max: 3
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
""" % (GROUP, SIZE, cooldown, OTHER))


def fetch(url, token=None):
    """(status, headers dict lower-cased, body bytes)."""
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def check_headers(base, ids):
    for path, ctype in (("/", "text/html"), ("/ui/app.js", "text/javascript"),
                        ("/ui/style.css", "text/css"),
                        ("/v1/overview", "application/json")):
        st, h, body = fetch(base + path)
        if st != 200:
            raise Fail("GET %s without a token: %s %s" % (path, st, body[:200]))
        if not h.get("content-type", "").startswith(ctype):
            raise Fail("GET %s: content type %s" % (path, h.get("content-type")))
        csp = h.get("content-security-policy", "")
        if "default-src 'self'" not in csp or "frame-ancestors 'none'" not in csp:
            raise Fail("GET %s: Content-Security-Policy %r" % (path, csp))
        if h.get("x-content-type-options") != "nosniff":
            raise Fail("GET %s: X-Content-Type-Options %r" % (path, h.get("x-content-type-options")))
        if h.get("x-frame-options") != "DENY":
            raise Fail("GET %s: X-Frame-Options %r" % (path, h.get("x-frame-options")))
        if path == "/v1/overview":
            text = body.decode()
            for i in ids:
                if i in text:
                    raise Fail("/v1/overview names instance %s" % i)
            ov = json.loads(text)
            names = [g["name"] for g in ov["groups"]]
            if names != [GROUP, OTHER]:
                raise Fail("/v1/overview groups %s" % names)
    for path in ("/v1/instances", "/v1/hosts", "/v1/events"):
        st, _, _ = fetch(base + path)
        if st != 401:
            raise Fail("GET %s without a token: %s, not 401" % (path, st))
    log("headers: CSP, nosniff, DENY on the page, its files and the JSON; "
        "/v1/overview public without instance ids; the admin API still 401")


def overview_history(base):
    ov = json.loads(fetch(base + "/v1/overview")[2])
    return {g["name"]: g["history"]["time"] for g in ov["groups"]}


def history_across_reload(d, api, base, cfg, port, state, node):
    """A reload keeps the plots: the rings carry over like the counts."""
    before = overview_history(base)[GROUP]
    reloads = len(api.events(kind="reload"))
    config(cfg, port, state, node, cooldown="5s")
    d.proc.send_signal(signal.SIGHUP)
    t0 = time.time()
    while len(api.events(kind="reload")) <= reloads:
        if time.time() - t0 > 15:
            raise Fail("the reload was not applied:\n" + d.tail())
        time.sleep(0.2)
    harness.wait_ticks(api, 2, 30, d)
    after = overview_history(base)[GROUP]
    if after[:len(before)] != before or len(after) <= len(before):
        raise Fail("after SIGHUP the history of %s has %d points from %s, before %d from %s"
                   % (GROUP, len(after), after[:1], len(before), before[:1]))
    log("SIGHUP: the history went on (%d points, then %d)" % (len(before), len(after)))


def no_problems(b, where):
    bad = b.problems() + ["CSP: " + v for v in (b.eval("window.__cspViolations") or [])]
    if b.eval("document.title") != "virt-autoscaler":
        bad.append("title is %r" % b.eval("document.title"))
    if bad:
        raise Fail("%s: %s" % (where, "; ".join(bad)))


def wait_refresh(b, after, timeout=20):
    return int(b.wait_js("(function(){var n=+document.documentElement."
                         "getAttribute('data-refreshes')||0; return n>%d ? n : 0})()"
                         % after, timeout, "the page's refresh #%d" % (after + 1)))


def plot_points(b, group):
    """Drawn values per series of the group's instances plot."""
    return b.eval("""(function(){
      var f = document.querySelector('figure[data-group="%s"]');
      if (!f) return null;
      var s = f.querySelector('svg.plot'), out = {};
      s.querySelectorAll('polyline').forEach(function(p){
        var k = p.getAttribute('data-series');
        out[k] = (out[k]||0) + p.getAttribute('points').trim().split(/\\s+/).length; });
      out.total = +s.getAttribute('data-points');
      return out; })()""" % group)


def public_view(b, base, ids, shots):
    b.navigate(base + "/")
    wait_refresh(b, 0)
    if b.eval("document.documentElement.getAttribute('data-view')") != "public":
        raise Fail("without a token the page is not in its public view")
    rows = b.eval("Array.from(document.querySelectorAll('#groups tbody tr'))"
                  ".map(function(r){return [r.getAttribute('data-group'),"
                  " r.cells[3].textContent, r.cells[4].textContent, r.cells[5].textContent]})")
    if [r[0] for r in rows] != [GROUP, OTHER]:
        raise Fail("group rows %s" % rows)
    if rows[0][1:] != [str(SIZE)] * 3:
        raise Fail("row of %s: desired/current/ready %s, want %d each" % (GROUP, rows[0][1:], SIZE))
    for g in (GROUP, OTHER):
        p = plot_points(b, g)
        if not p or not p.get("total") or not all(p.get(k) for k in ("desired", "current", "ready")):
            raise Fail("group %s: the instances plot has no data points: %s" % (g, p))
    hosts = b.eval("Array.from(document.querySelectorAll('#hosts tbody tr'))"
                   ".map(function(r){return Array.from(r.cells).map(function(c){return c.textContent})})")
    if len(hosts) != 1 or hosts[0][0] != "test" or hosts[0][1] != "up" or hosts[0][3] in ("", "-"):
        raise Fail("hosts table %s" % hosts)
    html = b.eval("document.documentElement.outerHTML")
    for i in ids:
        if i in html:
            raise Fail("the public view shows instance %s" % i)
    note = b.eval("document.getElementById('instances-note').textContent")
    if "admin token" not in note:
        raise Fail("the public view does not say the instances need the token: %r" % note)
    if b.eval("getComputedStyle(document.querySelector('#groups th.admin')).display") != "none":
        raise Fail("the admin columns show in the public view")
    no_problems(b, "public view")
    shots.append(b.screenshot(os.path.join(shots[0], "ui-public.png")))
    log("public view: %s rows, plots with %s points, hosts %s, no instance id"
        % ([r[0] for r in rows], plot_points(b, GROUP), hosts[0][:4]))


def type_token(b, token):
    n = int(b.eval("+document.documentElement.getAttribute('data-refreshes')"))
    b.eval("(function(t){var i=document.getElementById('token'); i.value=t;"
           " document.getElementById('token-form').requestSubmit(); return 1})(%s)"
           % json.dumps(token))
    return n


def admin_view(b, api, ids, shots):
    n = type_token(b, api.token)
    wait_refresh(b, n)
    b.wait_js("document.documentElement.getAttribute('data-view')==='admin'", 10, "the admin view")
    if b.eval("document.getElementById('token').value") != "":
        raise Fail("the token stays in the field after it was set")
    if b.eval("sessionStorage.getItem('va-admin-token')") != api.token:
        raise Fail("the token is not kept in sessionStorage")
    shown = b.eval("Array.from(document.querySelectorAll('#instances tbody tr'))"
                   ".map(function(r){return r.getAttribute('data-instance')})")
    if sorted(shown) != sorted(ids):
        raise Fail("instance rows %s, want %s" % (shown, sorted(ids)))
    states = b.eval("Array.from(document.querySelectorAll('#instances tbody tr'))"
                    ".map(function(r){return r.cells[4].textContent})")
    if states != ["ready"] * SIZE:
        raise Fail("instance states %s" % states)
    dec = b.eval("Array.from(document.querySelectorAll('#decisions tbody tr'))"
                 ".map(function(r){return r.cells[2].textContent})")
    if EVIL not in dec:
        raise Fail("the decision written with HTML is not shown as its text: %s" % dec)
    if b.eval("!!document.getElementById('xss-probe') || !!document.getElementById('xss-bold')"):
        raise Fail("an element of the decision's HTML exists in the page")
    last = b.eval("document.querySelector('#groups tr[data-group=\"%s\"] td.reason').textContent"
                  % GROUP)
    if not last or last == "-":
        raise Fail("no last decision in the group's row: %r" % last)
    b.eval("(function(){var f=document.getElementById('instances-filter'); f.value=%s;"
           " f.dispatchEvent(new Event('input')); return 1})()" % json.dumps(ids[0][:13]))
    one = b.eval("Array.from(document.querySelectorAll('#instances tbody tr'))"
                 ".map(function(r){return r.getAttribute('data-instance')})")
    if one != [ids[0]]:
        raise Fail("the filter %r shows %s, want only %s" % (ids[0][:13], one, ids[0]))
    b.eval("(function(){var f=document.getElementById('instances-filter'); f.value='';"
           " f.dispatchEvent(new Event('input')); return 1})()")
    time.sleep(0.5)  # an onerror would have run by now
    no_problems(b, "admin view")
    log("admin view: %d instance rows, %d decisions (the HTML one as text), last decision %r"
        % (len(shown), len(dec), last[:60]))


def pause_from_page(b, api):
    n = int(b.eval("+document.documentElement.getAttribute('data-refreshes')"))
    b.eval("document.querySelector('#groups tr[data-group=\"%s\"] button.pause').click()" % GROUP)
    t0 = time.time()
    while not api.group(GROUP)["paused"]:
        if time.time() - t0 > 15:
            raise Fail("the page's Pause button did not pause the group")
        time.sleep(0.2)
    wait_refresh(b, n)
    b.wait_js("document.querySelector('#groups tr[data-group=\"%s\"]').cells[6].textContent==='paused'"
              % GROUP, 15, "the row to say paused")
    msg = b.eval("document.getElementById('message').textContent")
    log("Pause on the page: the group is paused (%r)" % msg)


def live_refresh(b):
    b.eval("window.__same_page = 1")
    before = plot_points(b, GROUP)["total"]
    n = int(b.eval("+document.documentElement.getAttribute('data-refreshes')"))
    wait_refresh(b, n + 1, timeout=20)
    after = plot_points(b, GROUP)["total"]
    if b.eval("window.__same_page") != 1:
        raise Fail("the page reloaded to refresh")
    if after <= before:
        raise Fail("two refreshes later the plot has %d points, before %d" % (after, before))
    log("live: two refreshes without a reload, the plot went from %d to %d points"
        % (before, after))


def wrong_token(b):
    b.eval("document.getElementById('token-forget').click()")
    b.wait_js("document.documentElement.getAttribute('data-view')==='public'", 10, "the public view")
    b.eval("performance.clearResourceTimings()")
    type_token(b, "0123456789abcdef0123456789abcdef")
    b.wait_js("/not accepted/.test(document.getElementById('message').textContent)", 10,
              "the page to say the token was not accepted")
    n = int(b.eval("+document.documentElement.getAttribute('data-refreshes')"))
    wait_refresh(b, n)  # one more refresh: no admin call any more
    admin_calls = b.eval("performance.getEntriesByType('resource').map(function(e){return e.name})"
                         ".filter(function(u){return /\\/v1\\/(groups|hosts|events|instances)/.test(u)})")
    if len(admin_calls) != 1:
        raise Fail("a wrong token made %d admin requests, want 1: %s" % (len(admin_calls), admin_calls))
    if b.eval("sessionStorage.getItem('va-admin-token')") is not None:
        raise Fail("the refused token is still kept")
    if b.eval("document.documentElement.getAttribute('data-view')") != "public":
        raise Fail("with a refused token the page is not in its public view")
    log("a wrong token: one admin request (401), forgotten, public view: %r"
        % b.eval("document.getElementById('message').textContent")[:80])


class Canned(http.server.BaseHTTPRequestHandler):
    files = {}

    def do_GET(self):
        if self.path not in self.files:
            self.send_error(404)
            return
        ctype, headers, body = self.files[self.path]
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        for k in ("content-security-policy", "x-content-type-options", "x-frame-options"):
            self.send_header(k, headers[k])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def metric_plot(b, base, shots):
    """The daemon's page files with canned data: a cpu series and its target."""
    for path in ("/", "/ui/app.js", "/ui/style.css"):
        st, h, body = fetch(base + path)
        Canned.files[path] = (h["content-type"], h, body)
    now = int(time.time() * 1000)
    n = 30
    times = [now - (n - 1 - i) * 10000 for i in range(n)]
    cpu = [20 + 2 * i for i in range(n)]
    cpu[12] = None
    ov = {"time": now, "hosts": [], "groups": [{
        "name": "canned", "min": 1, "max": 9, "desired": 3, "current": 3, "ready": 3,
        "paused": False, "interval_s": 10, "window_s": 600, "metrics": {"cpu": cpu[-1]},
        "targets": {"cpu": 60},
        "history": {"time": times, "desired": [3] * n, "current": [3] * n, "ready": [3] * n,
                    "metrics": {"cpu": cpu}, "targets": {"cpu": [60] * n}}}]}
    _, h, _ = fetch(base + "/v1/overview")
    Canned.files["/v1/overview"] = ("application/json", h, json.dumps(ov).encode())
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        b.navigate("http://127.0.0.1:%d/" % srv.server_address[1])
        wait_refresh(b, 0)
        got = b.eval("""(function(){
          var out = {};
          document.querySelectorAll('figure[data-group="canned"] svg.plot polyline').forEach(function(p){
            var k = p.getAttribute('data-series');
            (out[k] = out[k] || []).push(p.getAttribute('points').trim().split(/\\s+/).length); });
          return out; })()""")
        # 30 values, one missing: two lines of 12 and 17 points
        if got.get("cpu") != [12, 17]:
            raise Fail("the cpu plot's lines have %s points, want [12, 17]" % got.get("cpu"))
        if not got.get("target"):
            raise Fail("no target line in the cpu plot: %s" % got)
        text = b.eval("document.querySelector('#groups tr[data-group=\"canned\"]').cells[7].textContent")
        if text != "cpu 78% (60%)":
            raise Fail("the metrics cell says %r, want 'cpu 78%% (60%%)'" % text)
        no_problems(b, "metric plot")
        shots.append(b.screenshot(os.path.join(shots[0], "ui-metric.png")))
        log("metric plot: cpu lines of %s points around the gap, target drawn" % got["cpu"])
    finally:
        srv.shutdown()
        srv.server_close()


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    outdir = os.path.abspath(sys.argv[2])
    if not browser.find():
        print("SKIP: chromium is not installed (scripts/setup.sh installs it)")
        return 77
    work = harness.workdir("va-ui-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    port = harness.free_port()
    ids = [str(uuid.uuid4()) for _ in range(SIZE)]
    harness.test_node_xml(node, GROUP, ids)
    config(cfg, port, state, node)
    base = "http://127.0.0.1:%d" % port
    api = harness.Api(base, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    b = None
    shots = [outdir]
    ok = False
    try:
        d.start()
        api.wait_up(60, d)
        harness.wait_for("the adopted group whole", lambda g: g["current"] == SIZE and
                         g["ready"] == SIZE, 60, api, GROUP, period=0.2)
        db = sqlite3.connect(state, timeout=30)
        with db:
            db.execute("INSERT INTO events (time_ms, group_name, kind, message) "
                       "VALUES (?, ?, 'decision', ?)", (int(time.time() * 1000), GROUP, EVIL))
        db.close()
        harness.wait_ticks(api, 3, 30, d)
        check_headers(base, ids)
        history_across_reload(d, api, base, cfg, port, state, node)
        b = browser.Chromium(logpath=os.path.join(work, "chromium.log"))
        b.open_page()
        public_view(b, base, ids, shots)
        admin_view(b, api, ids, shots)
        pause_from_page(b, api)
        live_refresh(b)
        shots.append(b.screenshot(os.path.join(outdir, "ui-status.png")))
        wrong_token(b)
        metric_plot(b, base, shots)
        for s in shots[1:]:
            log("screenshot: %s" % s)
        ok = True
    except (Fail, browser.BrowserError) as e:
        log("FAIL: %s" % e)
        if b is not None:
            try:
                log("chromium problems: %s" % b.problems())
            except browser.BrowserError:
                pass
    finally:
        if b is not None:
            b.close()
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
    sys.exit(main())
