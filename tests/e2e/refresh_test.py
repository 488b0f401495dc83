#!/usr/bin/env python3
"""Instance refresh on real guests (issue 16): a rolling update of the
group's user-data, a kill -9 in the middle of it, a template that never
checks in rolled back on its own, and bad input.

One daemon (SQLite, the defaults), tiny guests under QEMU on the libvirtd
of scripts/services/libvirt.sh. Group R: min 1, max 5, desired 3,
groups.*.refresh at its defaults (auto, max_unavailable 1, surge 1,
min_healthy 90%, rollback_after 1), health.ready_within 45s. The
guests' user-data names a URL of the test (on loopback, 10.0.2.2 from
the guest) that each guest GETs every 2 s with its instance id and the
user-data's version in the path: so the test sees, from inside each
guest, which user-data it runs.

  1. 3 ready instances, each fetching /v1/ID.
  2. The user-data changes to v2 and the daemon reloads (SIGHUP): a
     refresh begins on its own (event refresh_started, GET /v1/groups
     shows it running). Bad input meanwhile: a second `refresh` is
     refused (409, says one is running), `refresh --resume` too (409, not
     paused), a malformed body 400. After its first batch the daemon is
     killed (-9) and started again: the refresh carries on.
  3. It ends (refresh done): every instance was replaced, each new one
     fetches /v2 with its id, none fetches /v1; exactly 3 instances were
     created for it (a restart did not double them); store and libvirt
     agree. Sampled every second from the start of the refresh: the
     ready instances never fell more than max_unavailable (1) below
     desired.
  4. A configuration that fails `check` (memory: 1KiB) is refused by the
     reload: nothing is replaced, the instances stay.
  5. A failing template: the image becomes an empty disk with no kernel
     (a VM that never boots, so never checks in). The refresh starts a
     new instance, it does not check in within ready_within, and the
     refresh rolls back on its own (refresh_rollback, then rolled_back);
     the group is back at 3 ready instances of the v2 template (each
     fetching /v2), still never more than 1 below desired.
  6. Scale to 0: nothing of the group is left on the host.

Suite 'guest'; about 5 minutes.

usage: refresh_test.py VIRT_AUTOSCALER [--keep]
Needs VA_TEST_LIBVIRT_URI, VA_TEST_POOL, VA_TEST_TINY_KERNEL,
VA_TEST_TINY_INITRD (scripts/services/*.sh start); exits 77 without them.
"""
import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

wait = harness.wait_until

TAG = "%d" % (os.getpid() % 100000)
GROUP = "rf" + TAG
DESIRED = 3
MAX_UNAVAILABLE = 1


class Fetches:
    """What the guests fetch: GET /VERSION/ID -> the last version per id,
    and every (version, id) seen."""

    def __init__(self):
        self.lock = threading.Lock()
        self.last = {}
        self.seen = set()

    def note(self, version, iid):
        with self.lock:
            self.last[iid] = (version, time.time())
            self.seen.add((version, iid))

    def version(self, iid, within=20):
        with self.lock:
            v = self.last.get(iid)
        return v[0] if v and time.time() - v[1] < within else None

    def saw(self, version, iid):
        with self.lock:
            return (version, iid) in self.seen


def serve(fetches):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            m = re.match(r"^/(v\d+)/([0-9a-f-]{36})$", self.path)
            if m:
                fetches.note(m.group(1), m.group(2))
            body = b"0\n"  # a load spec: no load
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def write_config(path, port, state, uri, pool, kernel, initrd, base,
                 memory="128MiB", broken_image=None):
    harness.tiny_config(
        path, port=port, state="sqlite://" + state, uri=uri, pool=pool,
        group=GROUP, base=base, kernel=kernel, initrd=initrd, min_size=0,
        max_size=5, name_prefix="rf", group_extra="""    desired: %d
    cloud_init:
      user_data: user-data
    health:
      ready_within: 45s
      heartbeat_timeout: 60s
    scale_in: { drain: 2s }
""" % DESIRED)
    with open(path) as f:
        text = f.read()
    text = text.replace("memory: 128MiB", "memory: " + memory)
    if broken_image:
        # no kernel: the BIOS boots the disk, which is empty
        text = re.sub(r"\n      (kernel|initrd|cmdline): [^\n]*", "", text)
        text = text.replace("image: " + base, "image: " + broken_image)
    with open(path, "w") as f:
        f.write(text)


def write_user_data(work, version, fport):
    with open(os.path.join(work, "user-data"), "w") as f:
        f.write("#cloud-config\n"
                "#tiny: load_url=http://10.0.2.2:%d/%s/${INSTANCE_ID}\n"
                "#tiny: heartbeat=2\n" % (fport, version))


class Sampler:
    """Every second: desired - ready, the worst seen, while running."""

    def __init__(self, api):
        self.api = api
        self.worst = 0
        self.worst_at = None
        self.most = 0
        self.samples = 0
        self.on = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            if self.on:
                try:
                    g = self.api.group(GROUP)
                    short = g["desired"] - g["ready"]
                    self.most = max(self.most, g["current"])
                    self.samples += 1
                    if short > self.worst:
                        self.worst = short
                        self.worst_at = (time.strftime("%H:%M:%S"), g["desired"],
                                         g["ready"], g["current"])
                except Exception:  # a restart: the API is down meanwhile
                    pass
            time.sleep(1)


def live(api):
    return [i for i in api.instances(GROUP) if i["state"] in harness.LIVE]


def ready(api):
    return [i for i in api.instances(GROUP) if i["state"] == "ready"]


def metric(api, name, group):
    """The sample of name{group="GROUP"} in /metrics, or None."""
    import urllib.request
    with urllib.request.urlopen(api.base + "/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('%s{group="%s"} ' % (name, group)):
                return float(line.split()[-1])
    return None


def refresh_of(api):
    return api.group(GROUP).get("refresh") or {}


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    keep = "--keep" in sys.argv
    env = harness.need_env(harness.GUEST_ENV, harness.GUEST_HINT)
    uri, pool = env["VA_TEST_LIBVIRT_URI"], env["VA_TEST_POOL"]
    kernel, initrd = env["VA_TEST_TINY_KERNEL"], env["VA_TEST_TINY_INITRD"]
    work = harness.workdir("refresh-")
    token = harness.write_token(work)
    base = harness.tiny_disk(work, "tiny-disk-%s.qcow2" % GROUP)
    broken = harness.tiny_disk(work, "empty-disk-%s.qcow2" % GROUP)
    fetches = Fetches()
    srv = serve(fetches)
    fport = srv.server_address[1]
    port = harness.free_port()
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    write_user_data(work, "v1", fport)
    write_config(cfg, port, state, uri, pool, kernel, initrd, base)
    harness.check_config(binary, cfg)
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    sampler = Sampler(api)
    rc = 1
    try:
        d.start()
        api.wait_up(60, d)

        # 1. three ready instances on v1
        wait("3 ready instances fetching /v1", lambda: len(ready(api)) == DESIRED and all(
            fetches.version(i["id"]) == "v1" for i in ready(api)), 240, d)
        old = {i["id"] for i in live(api)}
        t1 = old_template = None
        for i in live(api):
            old_template = i["template"]
        if not old_template or not re.match(r"^[0-9a-f]{12}$", old_template):
            raise Fail("GET /v1/instances shows no template hash: %s" % live(api))

        # 2. the user-data changes: a refresh begins on its own
        write_user_data(work, "v2", fport)
        sampler.on = True
        t1 = time.time()
        d.proc.send_signal(signal.SIGHUP)
        r = wait("the refresh to begin", lambda: refresh_of(api).get("state") == "running"
                 and refresh_of(api), 30, d)
        if r.get("total") != DESIRED or r.get("max_unavailable") != "1" or r.get("surge") != 1:
            raise Fail("refresh: %s" % r)
        ev = api.events(GROUP, "refresh_started")
        if not ev or "replacing 3 instances" not in ev[0]["message"]:
            raise Fail("no refresh_started event saying what it replaces: %s" % ev)
        log("refresh: %s" % ev[0]["message"])

        # bad input while it runs
        st, body = api.try_call("POST", "/v1/groups/%s/refresh" % GROUP, {"action": "start"})
        if st != 409 or "already" not in str(body):
            raise Fail("a second refresh: %s %s, want 409 'already'" % (st, body))
        p = subprocess.run([binary, "-c", cfg, "refresh", GROUP, "--url",
                            "http://127.0.0.1:%d" % port, "--token-file",
                            os.path.join(work, "admin.token")],
                           capture_output=True, text=True)
        if p.returncode == 0 or "already" not in p.stderr:
            raise Fail("`refresh` while one runs: rc %d: %s" % (p.returncode, p.stderr))
        log("refresh while one runs: %s" % p.stderr.strip())
        st, body = api.try_call("POST", "/v1/groups/%s/refresh" % GROUP, {"action": "resume"})
        if st != 409 or "not paused" not in str(body):
            raise Fail("resume while running: %s %s, want 409 'not paused'" % (st, body))
        for bad in ({"action": "explode"}, {"action": "start", "surge": -1},
                    {"action": "start", "max_unavailable": "lots"},
                    {"action": "start", "checkpoints": [80, 20]}, {"surge": 1}):
            st, body = api.try_call("POST", "/v1/groups/%s/refresh" % GROUP, bad)
            if st != 400:
                raise Fail("refresh %s: %s %s, want 400" % (bad, st, body))
        st, body = api.try_call("POST", "/v1/groups/nosuch/refresh", {"action": "start"})
        if st != 404:
            raise Fail("refresh of no group: %s %s, want 404" % (st, body))

        # kill -9 after the first batch, start again
        wait("the first batch", lambda: api.events(GROUP, "refresh_batch"), 120, d)
        d.kill9()
        log("daemon killed (-9) mid-refresh: %s" % refresh_of_store(state))
        d.start()
        api.wait_up(60, d)

        # 3. it ends; every instance runs v2
        wait("the refresh to end", lambda: refresh_of(api).get("state") == "done", 420, d)
        dt = time.time() - t1
        now_live = live(api)
        ids = {i["id"] for i in now_live}
        if ids & old:
            raise Fail("instances not replaced: %s" % (ids & old))
        new_template = now_live[0]["template"]
        if any(i["template"] != new_template for i in now_live) or new_template == old_template:
            raise Fail("templates after the refresh: %s (old %s)" % (
                [i["template"] for i in now_live], old_template))
        wait("every new instance fetching /v2", lambda: all(
            fetches.version(i) == "v2" for i in ids), 60, d)
        if any(fetches.saw("v1", i) for i in ids):
            raise Fail("a new instance ran the old user-data")
        # the kill interrupted provisionings: the restart rolled them back
        # (journal) and started others; none twice
        created = [e for e in api.events(GROUP, "provision") if e["time"] >= t1 * 1000]
        rolled = [e for e in api.events(GROUP, "recovered") if e["time"] >= t1 * 1000
                  and "provisioning" in e["message"] and "rolled back" in e["message"]]
        if len(created) - len(rolled) != DESIRED:
            raise Fail("%d instances created for the refresh, %d of them rolled back "
                       "after the kill: want %d kept (no double): %s" % (
                           len(created), len(rolled), DESIRED,
                           [e["message"] for e in created + rolled]))
        log("%d instances created for the refresh, %d interrupted by the kill and "
            "rolled back at the restart" % (len(created), len(rolled)))
        if sampler.most > DESIRED + 1:
            raise Fail("%d instances at once, more than desired + surge" % sampler.most)
        batches = api.events(GROUP, "refresh_batch")
        done = api.events(GROUP, "refresh_done")
        log("refresh done in %.0f s, %d batches: %s" % (dt, len(batches), done[0]["message"]))
        wait("the old instances removed", lambda: all(
            i["state"] in harness.LIVE for i in api.instances(GROUP)), 60, d)
        harness.check_consistent(api, uri, pool, GROUP, all_volumes=False)
        log("worst shortfall so far: %d (%s), %d samples" % (
            sampler.worst, sampler.worst_at, sampler.samples))
        if sampler.worst > MAX_UNAVAILABLE:
            raise Fail("ready fell %d below desired (max_unavailable %d) at %s" % (
                sampler.worst, MAX_UNAVAILABLE, sampler.worst_at))

        # 4. a configuration that fails check: refused, nothing replaced
        write_config(cfg, port, state, uri, pool, kernel, initrd, base, memory="1KiB")
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(5)
        if {i["id"] for i in live(api)} != ids or refresh_of(api).get("state") != "done":
            raise Fail("a refused configuration changed the group")
        if "memory" not in d.tail(40):
            raise Fail("the refused reload does not say what is wrong:\n" + d.tail(40))

        # 5. a template that never checks in: rolled back on its own
        write_config(cfg, port, state, uri, pool, kernel, initrd, base,
                     broken_image=broken)
        harness.check_config(binary, cfg)
        t5 = time.time()
        d.proc.send_signal(signal.SIGHUP)
        wait("the broken refresh to begin", lambda: refresh_of(api).get("state") == "running"
             and refresh_of(api).get("template") != new_template, 30, d)
        wait("the rollback", lambda: api.events(GROUP, "refresh_rollback"), 180, d)
        log("rollback: %s" % api.events(GROUP, "refresh_rollback")[0]["message"])
        wait("rolled back", lambda: refresh_of(api).get("state") == "rolled_back", 300, d)
        wait("3 ready instances of the v2 template again", lambda: len(ready(api)) == DESIRED
             and all(i["template"] == new_template for i in live(api)), 120, d)
        wait("each fetching /v2", lambda: all(
            fetches.version(i["id"]) == "v2" for i in live(api)), 60, d)
        log("rolled back %.0f s after the change" % (time.time() - t5))
        # it stays rolled back: no new refresh of the same broken template
        time.sleep(5)
        if refresh_of(api).get("state") != "rolled_back":
            raise Fail("after the rollback: %s" % refresh_of(api))
        sampler.on = False
        log("worst shortfall: %d (%s), %d samples" % (
            sampler.worst, sampler.worst_at, sampler.samples))
        if sampler.worst > MAX_UNAVAILABLE:
            raise Fail("ready fell %d below desired (max_unavailable %d) at %s" % (
                sampler.worst, MAX_UNAVAILABLE, sampler.worst_at))
        wait("the failed instances removed", lambda: all(
            i["state"] in harness.LIVE for i in api.instances(GROUP)), 60, d)
        harness.check_consistent(api, uri, pool, GROUP, all_volumes=False)
        # what the operator sees: status, explain, /metrics
        cli = [binary, "-c", cfg]
        opts = ["--url", "http://127.0.0.1:%d" % port, "--token-file",
                os.path.join(work, "admin.token")]
        out = subprocess.run(cli + ["status"] + opts, capture_output=True, text=True).stdout
        if "last refresh rolled_back" not in out:
            raise Fail("status does not show the refresh:\n" + out)
        out = subprocess.run(cli + ["explain"] + opts + [GROUP], capture_output=True,
                             text=True).stdout
        if not re.search(r"refresh rolled_back .*template [0-9a-f]{12} \(previous [0-9a-f]{12}\)", out):
            raise Fail("explain does not show the refresh:\n" + out)
        if metric(api, "va_group_refresh_remaining", GROUP) != 0:
            raise Fail("va_group_refresh_remaining is not 0 after the refresh")

        # 6. scale to 0: nothing left
        api.set_desired(GROUP, 0)
        wait("the group empty", lambda: not api.instances(GROUP), 180, d, period=2)
        rc = 0
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        sampler.on = False
        d.stop()
        srv.shutdown()
        if rc != 0 or keep:
            log("kept %s" % work)
        try:
            ids = [r[0] for r in harness.sqlite_query(state, "SELECT id FROM instances")]
        except Exception:  # no store: nothing was created
            ids = []
        doms, vols = harness.leftovers(uri, pool, GROUP, ids)
        if (doms or vols) and rc == 0:
            log("FAIL: left on the host: domains %s, volumes %s" % (doms, vols))
            rc = 1
        harness.remove_group_domains(uri, GROUP)
    print("instance refresh: %s" % ("passed" if rc == 0 else "FAILED"))
    return rc


def refresh_of_store(state):
    rows = harness.sqlite_query(state, "SELECT state, batches, total FROM refreshes")
    return rows


if __name__ == "__main__":
    sys.exit(main())
