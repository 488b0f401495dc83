#!/usr/bin/env python3
"""The command-line client and SIGHUP reloads, on the real daemon (issue
12): admin token rotation, a host's pool, a broken file on disk, explain.

The daemon runs on libvirt's test driver with a node file of our own (two
running domains carrying our metadata, adopted at start as ready
instances of group web, min = max = 2) and SQLite; no libvirtd, no guest.
Every client command is the real binary (`virt-autoscaler -c CFG ...`).

Checked, in order:
  1. `explain web --limit 3` (an option after the group) answers; `explain
     nosuch` and `events --group nosuch` exit 1 with "no group 'nosuch'".
     Before: usage and exit 2; exit 0.
  2. Token rotation: a new token (32 hex digits) in admin.token, SIGHUP:
     the old token gets 401, the new one 200, and the client (which reads
     the file) works. Before: the old token kept working, the new one got
     401, although daemon.admin_token is marked reloadable.
  3. A host's pool changed together with the group's max, SIGHUP: refused
     with "the pool of host 'test' changed" in the log, no 'reload'
     event, and the old configuration stays (max still 2). Before: applied
     (later removals looked for the instances' volumes in the new pool).
  4. A file broken after the daemon section (a bad value; then a YAML
     syntax error), SIGHUP: the daemon keeps serving; `status` still
     works, with a warning naming the first problem. A file cut inside its
     daemon section: `status` exits 1 saying so. Before: the client
     refused every broken file.

Suite 'integration' and 'testdriver', about 10 s.

usage: cli_reload_test.py VIRT_AUTOSCALER
"""
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "web"
SIZE = 2


def config(path, port, state, node, pool="default-pool", max_size=SIZE,
           tail=""):
    harness.testdriver_config(path, port, state, node, """  %s:
    min: %d
    max: %d
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
%s""" % (GROUP, SIZE, max_size, tail))
    if pool != "default-pool":
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("pool: default-pool", "pool: " + pool))


def cli(binary, cfg, *args):
    p = subprocess.run([binary, "-c", cfg] + list(args), capture_output=True,
                       text=True, timeout=30)
    log("$ virt-autoscaler %s -> %d%s" % (" ".join(args), p.returncode,
                                         (": " + p.stderr.strip().splitlines()[0])
                                         if p.stderr.strip() else ""))
    return p


def expect(p, rc, stdout=None, stderr=None):
    if p.returncode != rc:
        raise Fail("exit status %d, expected %d\nstdout: %s\nstderr: %s"
                   % (p.returncode, rc, p.stdout, p.stderr))
    if stdout and stdout not in p.stdout:
        raise Fail("stdout lacks %r:\n%s" % (stdout, p.stdout))
    if stderr and stderr not in p.stderr:
        raise Fail("stderr lacks %r:\n%s" % (stderr, p.stderr))


def reloads(api):
    return len(api.events(kind="reload"))


def sighup_and_wait_log(d, text, timeout=10):
    """SIGHUP, then wait for text in the daemon's log (after this point)."""
    with open(d.logpath) as f:
        start = len(f.read())
    d.proc.send_signal(signal.SIGHUP)
    t0 = time.time()
    while time.time() - t0 < timeout:
        with open(d.logpath) as f:
            if text in f.read()[start:]:
                return
        time.sleep(0.1)
    raise Fail("%r not logged within %d s after SIGHUP:\n%s" % (text, timeout,
                                                                 d.tail()))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-clireload-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    port = harness.free_port()
    harness.test_node_xml(node, GROUP, [str(uuid.uuid4()) for _ in range(SIZE)])
    config(cfg, port, state, node)
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    ok = False
    try:
        d.start()
        api.wait_up(30, d)
        harness.wait_for("the adopted group whole", lambda g: g["current"] == SIZE and
                         g["ready"] == SIZE, 30, api, GROUP, period=0.2)

        failures = []

        def phase(name, fn):
            try:
                fn()
                log("%s: ok" % name)
            except (Fail, OSError, ValueError, KeyError) as e:
                log("%s: FAIL: %s" % (name, e))
                failures.append(name)

        def explain():
            expect(cli(binary, cfg, "explain", GROUP, "--limit", "3"), 0)
            expect(cli(binary, cfg, "explain", "nosuch"), 1,
                   stderr="no group 'nosuch'")
            expect(cli(binary, cfg, "events", "--group", "nosuch"), 1,
                   stderr="no group 'nosuch'")
            expect(cli(binary, cfg, "status", "stray"), 2)

        def rotate():
            old = harness.Api(api.base, api.token)
            n = reloads(old)
            new = harness.Api(api.base, harness.write_token(work))
            d.proc.send_signal(signal.SIGHUP)
            # Until the reload is done, with the old token: a 401 (rotated)
            # or a new 'reload' event (applied, old token still valid).
            # Few failed requests: the API rate-limits them per client.
            t0 = time.time()
            while True:
                st, body = old.try_call("GET", "/v1/events?kind=reload&limit=1000")
                if st == 401 or (st == 200 and len(body["events"]) > n):
                    break
                if time.time() - t0 > 10:
                    raise Fail("no reload 10 s after SIGHUP (last status %s)" % st)
                time.sleep(0.1)
            log("reloaded %.1f s after SIGHUP" % (time.time() - t0))
            st_new, _ = new.try_call("GET", "/v1/groups")
            st_old, _ = old.try_call("GET", "/v1/groups")
            if st_new == 200:
                api.token = new.token
            if (st_new, st_old) != (200, 401):
                raise Fail("after the rotation the new token gets %s, the old "
                           "one %s (want 200, 401)" % (st_new, st_old))
            expect(cli(binary, cfg, "status"), 0, stdout=GROUP)
            # The new token is in force a moment before the reload's event
            # is stored: wait for it, or the next phase counts it as its own.
            t0 = time.time()
            while reloads(api) <= n:
                if time.time() - t0 > 10:
                    raise Fail("no 'reload' event 10 s after the rotation")
                time.sleep(0.05)

        def pool():
            n = reloads(api)
            config(cfg, port, state, node, pool="other-pool", max_size=SIZE + 1)
            try:
                sighup_and_wait_log(d, "the pool of host 'test' changed from "
                                       "'default-pool' to 'other-pool'")
            finally:
                harness.wait_ticks(api, 3, 10, d)
            if reloads(api) != n:
                raise Fail("a reload that changes a host's pool was applied")
            if api.group(GROUP)["max"] != SIZE:
                raise Fail("the refused reload changed the group's max: %s"
                           % api.group(GROUP))

        def broken():
            config(cfg, port, state, node,
                   tail="    scaling: { cooldown: soon }\n")
            sighup_and_wait_log(d, "new configuration rejected")
            expect(cli(binary, cfg, "status"), 0, stdout=GROUP,
                   stderr="does not pass `virt-autoscaler check` (1 problem; the "
                          "first: %s:15:26: groups.web.scaling.cooldown" % cfg)
            config(cfg, port, state, node, tail="    scaling: { cooldown: [1m\n")
            expect(cli(binary, cfg, "explain", GROUP), 0,
                   stderr="YAML syntax error")
            with open(cfg) as f:
                text = f.read()
            with open(cfg, "w") as f:  # cut inside the daemon section
                f.write(text[:text.index("  admin_token:")] +
                        "  admin_token: { file\n")
            expect(cli(binary, cfg, "status"), 1,
                   stderr="its daemon section cannot be read on its own")
            if api.group(GROUP)["current"] != SIZE:
                raise Fail("the group changed under the broken files")

        # each phase on its own: a failure is reported, the next runs
        phase("1 explain", explain)
        phase("2 token rotation", rotate)
        phase("3 pool", pool)
        phase("4 broken file", broken)
        if failures:
            raise Fail("failed: " + ", ".join(failures))
        ok = True
    except Fail as e:
        log("FAIL: %s" % e)
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
    sys.exit(main())
