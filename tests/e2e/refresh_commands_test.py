#!/usr/bin/env python3
"""Instance refresh's commands and state in the daemon, on libvirt's test
driver (issue 16): fast, and run by the sanitizer builds (suite
'testdriver'); the rolling update itself on real guests is
refresh_test.py.

The daemon runs on the test driver with SQLite; group web has 3 running
domains of ours in the node file, adopted at start as ready instances
(built before the daemon knew templates: no template recorded).

  1. `virt-autoscaler refresh web --checkpoint 30%` starts a refresh by
     hand (all=true: every instance created before it is replaced, even
     without a template): GET /v1/groups/web shows it running with its
     settings and total 3; a refresh_started event; the first batch
     removes one adopted instance (at most max_unavailable 1 below
     desired) and starts new ones, which record the configuration's
     template (the test driver cannot upload a volume: their
     provisioning fails, which rollback_after 0 lets be). With one of 3
     replaced it pauses at its checkpoint (refresh_checkpoint);
     `refresh web --resume` resumes it (refresh_resumed).
  2. Bad input: a second start 409 ("already"); resume while running 409
     ("not paused"); malformed bodies 400; an unknown group 404; the CLI
     refuses --cancel with other options (exit 2) and a bad
     --max-unavailable (exit 2).
  3. kill -9, start again: the row is still there, running.
  4. `refresh web --cancel`: cancelled (event refresh_cancelled); a second
     cancel 409 ("no refresh is running").
  5. The adopted instances are given another template (SQL, as if an
     older version of the configuration had built them), the user-data
     changes and the daemon reloads: a refresh begins on its own
     (refresh_started "the template changed (abababababab -> ...)"), for
     those instances.
     A refresh by hand with --surge 2 takes the group's other settings
     (checkpoints [90%] from the configuration).
  6. A configuration with refresh.max_unavailable 0 and surge 0 fails
     `check`, naming the key.

Suite ['integration', 'testdriver'], about 20 s.

usage: refresh_commands_test.py VIRT_AUTOSCALER
"""
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

wait = harness.wait_until


def config(path, port, state, node, work, extra=""):
    harness.testdriver_config(path, port, state, node, """  web:
    min: 0
    max: 6
    desired: 3
    template: { image: %s/base.qcow2, name_prefix: va-t }
    cloud_init: { user_data: user-data }
    health: { ready_within: 10m, heartbeat_timeout: 0s }
%s""" % (work, extra or "    refresh: { rollback_after: 0, checkpoints: [90%] }\n"))


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("refresh-cmd-")
    token = harness.write_token(work)
    port = harness.free_port()
    state = os.path.join(work, "state.db")
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    harness.test_node_xml(node, "web", ids)
    with open(os.path.join(work, "base.qcow2"), "wb") as f:
        f.write(b"\0" * 4096)
    with open(os.path.join(work, "user-data"), "w") as f:
        f.write("#cloud-config\n# v1\n")
    config(cfg, port, state, node, work)
    harness.check_config(binary, cfg)
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    cli = [binary, "-c", cfg]
    opts = ["--url", "http://127.0.0.1:%d" % port, "--token-file",
            os.path.join(work, "admin.token")]
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    path = "/v1/groups/web/refresh"
    rc = 1
    try:
        d.start()
        api.wait_up(30, d)
        wait("3 adopted, ready", lambda: api.group("web")["ready"] == 3, 30, d)

        # 1. a refresh by hand
        p = subprocess.run(cli + ["refresh"] + opts + ["web", "--checkpoint", "30%"],
                           capture_output=True, text=True)
        if p.returncode != 0 or "refresh started (replacing 3 instances)" not in p.stdout:
            raise Fail("refresh: rc %d: %s %s" % (p.returncode, p.stdout, p.stderr))
        # the loop publishes what the API shows at the end of its turn
        r = wait("the refresh in GET /v1/groups/web",
                 lambda: api.group("web").get("refresh"), 10, d)
        if (r.get("state") not in ("running", "paused") or r.get("total") != 3 or r.get("all") is not True
                or r.get("checkpoints") != [30] or r.get("max_unavailable") != "1"
                or r.get("surge") != 1 or r.get("min_healthy") != 90):
            raise Fail("GET /v1/groups/web refresh: %s" % r)
        wait("the first batch", lambda: api.events("web", "refresh_batch"), 20, d)
        removed = [e["instance"] for e in api.events("web", "refresh_replace")]
        if len(removed) != 1 or removed[0] not in ids:
            raise Fail("the first batch removed %s, want one adopted instance" % removed)
        new = wait("new instances", lambda: [r for r in harness.sqlite_query(
            state, "SELECT id, template_hash FROM instances") if r[0] not in ids], 20, d)
        tmpl = {r[1] for r in new}
        if len(tmpl) != 1 or not re.match(r"^[0-9a-f]{64}$", tmpl.pop() or ""):
            raise Fail("new instances' templates: %s" % new)
        if any(i["template"] is not None for i in api.instances("web") if i["id"] in ids):
            raise Fail("an adopted instance has a template")
        log("refresh by hand: batch 1 removed %s, %d new" % (removed[0][:8], len(new)))
        wait("the checkpoint", lambda: api.events("web", "refresh_checkpoint"), 20, d)
        wait("paused in GET /v1/groups/web",
             lambda: api.group("web")["refresh"]["state"] == "paused", 10, d)
        p = subprocess.run(cli + ["refresh"] + opts + ["web", "--resume"],
                           capture_output=True, text=True)
        if p.returncode != 0 or "resumed" not in p.stdout:
            raise Fail("refresh --resume: rc %d: %s %s" % (p.returncode, p.stdout, p.stderr))
        wait("running again", lambda: api.group("web")["refresh"]["state"] == "running", 10, d)
        if not api.events("web", "refresh_resumed"):
            raise Fail("no refresh_resumed event")

        # 2. bad input
        for body, want, text in (({"action": "start"}, 409, "already"),
                                 ({"action": "resume"}, 409, "not paused"),
                                 ({"action": "start", "surge": "x"}, 400, "surge"),
                                 ({"action": "start", "min_healthy": 101}, 400, "min_healthy"),
                                 ({"action": "start", "checkpoints": [0]}, 400, "checkpoints"),
                                 ({"action": "start", "what": 1}, 400, "unknown field"),
                                 ({}, 400, "action is missing")):
            st, b = api.try_call("POST", path, body)
            if st != want or text not in str(b):
                raise Fail("POST %s %s: %s %s, want %d '%s'" % (path, body, st, b, want, text))
        st, b = api.try_call("POST", path, "not an object")
        if st != 400:
            raise Fail("POST a string: %s %s" % (st, b))
        st, b = api.try_call("GET", path)
        if st != 405:
            raise Fail("GET %s: %s %s, want 405" % (path, st, b))
        st, b = api.try_call("POST", "/v1/groups/nosuch/refresh", {"action": "cancel"})
        if st != 404:
            raise Fail("unknown group: %s %s" % (st, b))
        for args in (["--cancel", "--surge", "2"], ["--max-unavailable", "lots"]):
            p = subprocess.run(cli + ["refresh"] + opts + ["web"] + args,
                               capture_output=True, text=True)
            if p.returncode != 2 or not p.stderr:
                raise Fail("refresh %s: rc %d %s" % (args, p.returncode, p.stderr))

        # 3. kill -9: the refresh is in the store
        d.kill9()
        d.start()
        api.wait_up(30, d)
        r = wait("the refresh after the restart",
                 lambda: (api.group("web").get("refresh") or {}), 20, d)
        if r.get("state") not in ("running", "paused") or r.get("total") != 3:
            raise Fail("after kill -9: %s" % r)

        # 4. cancel
        p = subprocess.run(cli + ["refresh"] + opts + ["web", "--cancel"],
                           capture_output=True, text=True)
        if p.returncode != 0 or "cancelled" not in p.stdout:
            raise Fail("refresh --cancel: rc %d: %s %s" % (p.returncode, p.stdout, p.stderr))
        wait("cancelled in GET /v1/groups/web",
             lambda: api.group("web")["refresh"]["state"] == "cancelled", 10, d)
        if not api.events("web", "refresh_cancelled"):
            raise Fail("not cancelled: %s" % api.group("web")["refresh"])
        st, b = api.try_call("POST", path, {"action": "cancel"})
        if st != 409 or "no refresh is running" not in str(b):
            raise Fail("cancel twice: %s %s" % (st, b))
        time.sleep(3)
        if api.group("web")["refresh"]["state"] != "cancelled":
            raise Fail("a cancelled refresh came back: %s" % api.group("web")["refresh"])

        # 5. the template changes: a refresh begins on its own, for the
        # instances of the old template
        left = [i["id"] for i in api.instances("web") if i["id"] in ids]
        db = sqlite3.connect(state, timeout=30)
        with db:
            db.execute("UPDATE instances SET template_hash = ? WHERE group_name = 'web'",
                       ("ab" * 32,))
        db.close()
        with open(os.path.join(work, "user-data"), "w") as f:
            f.write("#cloud-config\n# v2\n")
        n_started = len(api.events("web", "refresh_started"))
        d.proc.send_signal(signal.SIGHUP)
        ev = wait("an automatic refresh", lambda: api.events("web", "refresh_started")[n_started:],
                  20, d)
        if "the template changed (abababababab -> " not in ev[0]["message"]:
            raise Fail("refresh_started: %s" % ev[0]["message"])
        r = wait("the automatic refresh in GET /v1/groups/web",
                 lambda: api.group("web")["refresh"]["state"] == "running" and
                 api.group("web")["refresh"], 10, d)
        if (r["all"] is not False or r["total"] != len(left)
                or r["previous"] != "abababababab" or r["checkpoints"] != [90]):
            raise Fail("automatic refresh: %s (instances of the old template: %d)" % (
                r, len(left)))
        log("automatic: %s" % ev[0]["message"])
        # a command's settings override the group's one by one
        for args in (["--cancel"], ["--surge", "2"]):
            p = subprocess.run(cli + ["refresh"] + opts + ["web"] + args,
                               capture_output=True, text=True)
            if p.returncode != 0:
                raise Fail("refresh %s: %s" % (args, p.stderr))
        r = wait("the refresh by hand", lambda: api.group("web")["refresh"]["all"] and
                 api.group("web")["refresh"], 10, d)
        if (r["surge"] != 2 or r["checkpoints"] != [90] or r["max_unavailable"] != "1"
                or r["min_healthy"] != 90):
            raise Fail("refresh --surge 2: %s, want surge 2 and the group's others" % r)

        # 6. a refresh that could never replace anything fails check
        bad = os.path.join(work, "bad.yaml")
        config(bad, port, state, node, work,
               "    refresh: { max_unavailable: 0, surge: 0 }\n")
        p = subprocess.run([binary, "-c", bad, "check"], capture_output=True, text=True)
        if p.returncode == 0 or "surge" not in p.stderr or "never replace" not in p.stderr:
            raise Fail("check of max_unavailable 0, surge 0: rc %d %s" % (
                p.returncode, p.stderr))
        rc = 0
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        d.stop()
        if rc != 0:
            log("kept %s" % work)
    print("refresh commands: %s" % ("passed" if rc == 0 else "FAILED"))
    return rc


if __name__ == "__main__":
    sys.exit(main())
