#!/usr/bin/env python3
"""The status page's first render with many instances (bench/README.md,
"The status page").

Runs the real daemon on libvirt's test driver (in-process, a node file of
N running domains carrying our metadata: all adopted at start as ready
instances of one group) with SQLite state, waits until the group shows
them all, then loads GET / in headless Chromium (tests/e2e/browser.py,
DevTools over a pipe) RUNS times in the admin view (the token typed into
the page's field: every table, 1,000 instance rows included) and RUNS
times in the public view, and prints for each: the time from the start of
navigation to the frame that shows the data (the page writes it into
data-first-render-ms: performance.now() in a task after the animation
frame that follows its first full render, i.e. once that frame is
painted), and the fetch times of /v1/overview and
/v1/instances from the browser's resource timing. The first load of each
view warms the browser's caches (and is reported apart). Asserts
nothing.

usage: first_render.py VIRT_AUTOSCALER [INSTANCES [RUNS]]   (default 1000 15)
"""
import os
import shutil
import statistics
import sys
import time
import uuid

sys.dont_write_bytecode = True
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "tests", "e2e"))
import browser  # noqa: E402
import harness  # noqa: E402

GROUP = "web"


def config(path, port, state, node, n):
    harness.testdriver_config(path, port, state, node, """  %s:
    min: %d
    max: %d
    template: { image: base.qcow2, memory: 128MiB }
    health: { heartbeat_timeout: 0s, replace: false }
    scaling: { interval: 5s, target: { cpu: 60%% } }
""" % (GROUP, n, n))


def load(b, reload):
    if reload:
        b.reload()
    b.wait_js("document.documentElement.getAttribute('data-first-render-ms')", 30,
              "the first render")
    return b.eval("""(function(){
      var r = {render: +document.documentElement.getAttribute('data-first-render-ms'),
               view: document.documentElement.getAttribute('data-view'),
               rows: document.querySelectorAll('#instances tbody tr').length};
      performance.getEntriesByType('resource').forEach(function(e){
        var m = /\\/v1\\/(overview|instances)/.exec(e.name);
        if (m) { r[m[1]] = e.responseEnd - e.startTime; r[m[1] + '_bytes'] = e.encodedBodySize; }
      });
      var nav = performance.getEntriesByType('navigation')[0];
      r.dcl = nav ? nav.domContentLoadedEventEnd : null;
      r.doc = nav ? nav.responseEnd : null;
      performance.getEntriesByType('resource').forEach(function(e){
        if (/app\.js/.test(e.name)) r.js = e.responseEnd;
        if (/style\.css/.test(e.name)) r.css = e.responseEnd;
        if (/\/v1\/overview/.test(e.name)) r.fetch_start = e.startTime;
      });
      return r; })()""")


def scroll_cost(b):
    """From scrolling to the instance table to the painted frame (ms)."""
    return b.eval("""new Promise(function(res){
      var t0 = performance.now();
      document.getElementById('instances').scrollIntoView();
      requestAnimationFrame(function(){ setTimeout(function(){ res(performance.now() - t0); }, 0); });
    })""")


def show_all_cost(b):
    """"Show all" clicked with the instance table in view, to the painted
    frame with every row (ms); then back to the first 100."""
    r = b.eval("""new Promise(function(res){
      document.getElementById('instances').scrollIntoView();
      requestAnimationFrame(function(){ setTimeout(function(){
        var t0 = performance.now();
        document.getElementById('instances-all').click();
        var rows = document.querySelectorAll('#instances tbody tr').length;
        requestAnimationFrame(function(){ setTimeout(function(){
          res([performance.now() - t0, rows]); }, 0); });
      }, 0); });
    })""")
    b.eval("document.getElementById('instances-all').click(); window.scrollTo(0, 0); 1")
    return r


def report(label, runs):
    first, rest = runs[0], runs[1:]

    def stat(key):
        v = [r[key] for r in rest if r.get(key) is not None]
        if not v:
            return "-"
        return "median %.1f ms, min %.1f, max %.1f" % (statistics.median(v), min(v), max(v))
    print("%s (%d instance rows shown):" % (label, rest[0]["rows"]))
    print("  first render: %s over %d loads (the cold first load: %.1f ms)"
          % (stat("render"), len(rest), first["render"]))
    print("  page loaded (document, style, script; ms from the start of navigation): %s, %s, %s"
          % (stat("doc"), stat("css"), stat("js")))
    print("  DOMContentLoaded: %s" % stat("dcl"))
    print("  the script's first request: %s" % stat("fetch_start"))
    print("  GET /v1/overview: %s (%d bytes)" % (stat("overview"), rest[0].get("overview_bytes", 0)))
    if rest[0].get("instances") is not None:
        print("  GET /v1/instances: %s (%d bytes)" % (stat("instances"),
                                                      rest[0].get("instances_bytes", 0)))


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    nruns = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    work = harness.workdir("va-uibench-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    port = harness.free_port()
    harness.test_node_xml(node, GROUP, [str(uuid.uuid4()) for _ in range(n)])
    config(cfg, port, state, node, n)
    base = "http://127.0.0.1:%d" % port
    api = harness.Api(base, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    b = None
    try:
        d.start()
        api.wait_up(120, d)
        t = harness.wait_for("all adopted", lambda g: g["ready"] == n, 600, api, GROUP,
                             period=1)
        print("%d instances adopted and ready after %.1f s" % (n, t))
        harness.wait_ticks(api, 10, 60, d)  # some history for the plots
        b = browser.Chromium(logpath=os.path.join(work, "chromium.log"))
        b.open_page()
        b.navigate(base + "/")
        pub = [load(b, False)] + [load(b, True) for _ in range(nruns)]
        b.eval("(function(t){document.getElementById('token').value=t;"
               " document.getElementById('token-form').requestSubmit(); return 1})('%s')" % token)
        b.wait_js("document.documentElement.getAttribute('data-view')==='admin'", 30)
        adm = []
        scrolls = []
        for _ in range(nruns + 1):
            adm.append(load(b, True))
            scrolls.append(scroll_cost(b))
            b.eval("window.scrollTo(0, 0)")  # a reload restores the scroll position
        want = min(n, 100)  # INSTANCE_ROWS in src/ui/app.js
        if any(r["view"] != "admin" or r["rows"] != want for r in adm):
            print("warning: not every admin load showed %d rows: %s"
                  % (want, [(r["view"], r["rows"]) for r in adm]))
        alls = [show_all_cost(b) for _ in range(6)]
        print("chromium %s, headless, 1280x1000; daemon on the test driver, SQLite"
              % b.send("Browser.getVersion", session=False).get("product"))
        report("admin view", adm)
        print("  scrolling to the instance table, to its painted frame: median %.1f ms, "
              "min %.1f, max %.1f" % (statistics.median(scrolls[1:]), min(scrolls[1:]),
                                      max(scrolls[1:])))
        print("  \"Show all\" (%d rows) with the table in view, to its painted frame: "
              "median %.1f ms, min %.1f, max %.1f" % (alls[0][1], statistics.median(a[0] for a in alls),
                                                    min(a[0] for a in alls), max(a[0] for a in alls)))
        report("public view", pub)
        if b.problems():
            print("page problems: %s" % b.problems())
    finally:
        if b is not None:
            b.close()
        d.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
