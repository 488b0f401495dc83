#!/usr/bin/env python3
"""The scriptable command line (issue 15): `--json` of status, events,
explain and metrics, `--token-file`, `--version`, on the real daemon.

The daemon runs on libvirt's test driver with a node file of our own (two
running domains carrying our metadata for group web, adopted at start;
a schedule's min 1 makes the first decision scale web in to 1, so there is
a decision, a scale-in and a removal to show) and a second group api with
no instance; SQLite; no libvirtd, no guest. Every command is the real
binary.

Checked:
  1. Each --json output is one JSON document on stdout, with the shape
     docs/cli.md gives (required fields and their types; a documented
     field the daemon leaves out is null), and the same values as the
     daemon's API.
  2. Errors with --json (unknown group or instance, no daemon at --url,
     a wrong token) exit 1 with the message on stderr and nothing on
     stdout.
  3. --token-file: with --url and no configuration file a remote daemon
     is reached; a file other users may read is refused (exit 1, saying
     chmod); an empty one, a missing one and a wrong token are refused;
     the token never appears in any output; there is no --token option
     (a token on the command line would be in ps).
  4. --version prints meson's project version.
  5. An unreadable configuration file is reported once, not twice.

Suite 'integration' and 'testdriver', a few seconds.

usage: cli_json_test.py VIRT_AUTOSCALER VERSION
"""
import json
import os
import re
import subprocess
import sys
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

NUM = (int, float)
INT = (int,)
STR = (str,)
NULL = (type(None),)
BOOL = (bool,)
OBJ = (dict,)

# docs/cli.md: each field and the types it may have.
GROUP_FIELDS = {
    "name": STR, "min": INT, "max": INT, "desired": INT, "current": INT,
    "ready": INT, "paused": BOOL, "metrics": OBJ,
    "last_decision": STR + NULL, "busy_held": INT,
    "waiting_for_hosts": BOOL,
}
HOST_FIELDS = {
    "name": STR, "state": STR, "since": INT, "reason": STR + NULL,
    "cpus": INT + NULL, "memory_bytes": INT + NULL,
    "free_memory_bytes": INT + NULL, "domains": INT + NULL,
    "vcpus_allocated": INT + NULL, "memory_allocated_bytes": INT + NULL,
}
INSTANCE_FIELDS = {
    "id": STR, "group": STR, "host": STR, "domain": STR, "state": STR,
    "created": INT, "ready_at": INT, "last_heartbeat": INT, "busy": BOOL,
    "address": STR + NULL,
}
EVENT_FIELDS = {
    "id": INT, "time": INT, "group": STR + NULL, "instance": STR + NULL,
    "kind": STR, "message": STR,
}
METRICS_FIELDS = {
    "id": STR, "group": STR, "state": STR, "window_s": NUM, "samples": INT,
    "last_sample_age_s": NUM + NULL, "metrics": OBJ,
}


def config(path, port, state, node):
    harness.testdriver_config(path, port, state, node, """  web:
    min: 0
    max: 4
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
    scaling:
      interval: 1s
      cooldown: 1h
      schedules:
        - { name: always, when: "* * * * *", min: 1 }
  api:
    min: 0
    max: 2
    template: { image: base.qcow2 }
""")


def run(binary, *args, cfg=None):
    argv = [binary] + (["-c", cfg] if cfg else []) + list(args)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    log("$ virt-autoscaler %s -> %d%s" % (" ".join(argv[1:]), p.returncode,
                                         (": " + p.stderr.strip().splitlines()[0])
                                         if p.stderr.strip() else ""))
    return p


def document(p):
    """The one JSON document on stdout of a command that succeeded."""
    if p.returncode != 0:
        raise Fail("exit status %d\nstderr: %s" % (p.returncode, p.stderr))
    try:
        return json.loads(p.stdout)
    except ValueError as e:
        raise Fail("stdout is not one JSON document (%s):\n%s" % (e, p.stdout))


def check_fields(what, obj, fields):
    if not isinstance(obj, dict):
        raise Fail("%s is not an object: %r" % (what, obj))
    for k, types in fields.items():
        if k not in obj:
            raise Fail("%s lacks %r: %r" % (what, k, obj))
        # bool is an int in Python: only where allowed
        v = obj[k]
        if isinstance(v, bool) and bool not in types:
            raise Fail("%s.%s is %r, expected %s" % (what, k, v, types))
        if not isinstance(v, types):
            raise Fail("%s.%s is %r, expected %s" % (what, k, v, types))


def check_list(what, doc, key, fields):
    if not isinstance(doc.get(key), list):
        raise Fail("%s: %r is not a list: %r" % (what, key, doc))
    for i, o in enumerate(doc[key]):
        check_fields("%s.%s[%d]" % (what, key, i), o, fields)
    return doc[key]


def expect_error(p, stderr_has):
    if p.returncode == 0:
        raise Fail("exit status 0, expected an error\nstdout: %s" % p.stdout)
    if p.stdout.strip():
        raise Fail("an error printed on stdout:\n%s" % p.stdout)
    if stderr_has not in p.stderr:
        raise Fail("stderr lacks %r:\n%s" % (stderr_has, p.stderr))


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    project_version = sys.argv[2]
    work = harness.workdir("va-clijson-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    port = harness.free_port()
    url = "http://127.0.0.1:%d" % port
    harness.test_node_xml(node, "web", [str(uuid.uuid4()) for _ in range(2)])
    config(cfg, port, state, node)
    api = harness.Api(url, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    outputs = []  # every stdout and stderr: the token must be in none
    failures = []

    def cli(*args, c=cfg):
        p = run(binary, *args, cfg=c)
        outputs.append(p.stdout + p.stderr)
        return p

    def phase(name, fn):
        try:
            fn()
            log("%s: ok" % name)
        except (Fail, OSError, ValueError, KeyError, TypeError) as e:
            log("%s: FAIL: %s" % (name, e))
            failures.append(name)

    ok = False
    try:
        d.start()
        api.wait_up(30, d)
        harness.wait_for("web scaled in to 1 by its first decision",
                         lambda g: g["desired"] == 1 and g["current"] == 1,
                         30, api, "web", period=0.2)

        def status():
            doc = document(cli("status", "--json"))
            if set(doc) != {"groups", "hosts", "instances"}:
                raise Fail("status: top-level keys %s" % sorted(doc))
            groups = check_list("status", doc, "groups", GROUP_FIELDS)
            hosts = check_list("status", doc, "hosts", HOST_FIELDS)
            insts = check_list("status", doc, "instances", INSTANCE_FIELDS)
            if sorted(g["name"] for g in groups) != ["api", "web"]:
                raise Fail("status: groups %r" % groups)
            web = [g for g in groups if g["name"] == "web"][0]
            ref = api.group("web")
            for k in ("min", "max", "desired", "paused", "last_decision"):
                if web[k] != ref[k]:
                    raise Fail("status: web.%s %r, the API says %r" % (k, web[k], ref[k]))
            if [h["name"] for h in hosts] != ["test"] or hosts[0]["state"] != "up":
                raise Fail("status: hosts %r" % hosts)
            ids = sorted(i["id"] for i in api.instances("web"))
            if sorted(i["id"] for i in insts) != ids or len(ids) != 1:
                raise Fail("status: instances %r, the API has %r" % (insts, ids))
            if not re.fullmatch(harness.UUID_RE, insts[0]["id"]):
                raise Fail("status: instance id %r" % insts[0]["id"])
            if hosts[0]["cpus"] is None:
                raise Fail("status: the test host is measured but cpus is null")

        def events():
            doc = document(cli("events", "--json"))
            evs = check_list("events", doc, "events", EVENT_FIELDS)
            kinds = {e["kind"] for e in evs}
            for k in ("adopted", "start", "decision", "scale_in"):
                if k not in kinds:
                    raise Fail("events: no %r event in %s" % (k, sorted(kinds)))
            if [e["id"] for e in evs] != sorted(e["id"] for e in evs):
                raise Fail("events: not oldest first")
            start = [e for e in evs if e["kind"] == "start"][0]
            if start["group"] is not None or start["instance"] is not None:
                raise Fail("events: the start event has a group or instance: %r" % start)
            # options after and before, --group and --limit
            doc = document(cli("events", "--limit", "2", "--json", "--group", "web"))
            evs = check_list("events --group web", doc, "events", EVENT_FIELDS)
            if not 1 <= len(evs) <= 2 or any(e["group"] != "web" for e in evs):
                raise Fail("events --group web --limit 2: %r" % evs)
            ref = api.events("web", limit=2)
            if evs != ref:
                raise Fail("events: %r, the API says %r" % (evs, ref))

        def explain():
            doc = document(cli("explain", "web", "--json", "--limit", "5"))
            if set(doc) != {"group", "decisions"} or doc["group"] != "web":
                raise Fail("explain: %r" % doc)
            decs = check_list("explain", doc, "decisions", EVENT_FIELDS)
            if not decs or any(e["kind"] != "decision" for e in decs):
                raise Fail("explain web: decisions %r" % decs)
            if "raised to min 1 (schedule 'always')" not in decs[0]["message"]:
                raise Fail("explain web: the first decision: %r" % decs[0])
            doc = document(cli("explain", "--json", "api"))
            if doc != {"group": "api", "decisions": []}:
                raise Fail("explain api (no decision yet): %r" % doc)
            expect_error(cli("explain", "--json", "nosuch"), "no group 'nosuch'")
            expect_error(cli("events", "--json", "--group", "nosuch"),
                         "no group 'nosuch'")

        def metrics():
            iid = api.instances("web")[0]["id"]
            doc = document(cli("metrics", iid, "--json", "--window", "1m"))
            check_fields("metrics", doc, METRICS_FIELDS)
            if doc["id"] != iid or doc["group"] != "web" or doc["window_s"] != 60:
                raise Fail("metrics: %r" % doc)
            if doc["samples"] < 1:
                raise Fail("metrics: no samples of a running adopted domain: %r" % doc)
            for name, m in doc["metrics"].items():
                check_fields("metrics.metrics.%s" % name, m,
                             {"mean": NUM, "max": NUM, "last": NUM, "samples": INT})
            expect_error(cli("metrics", "--json", str(uuid.uuid4())), "no instance")
            expect_error(cli("metrics", "--json", "--window", "1y", iid), "--window")

        def unreachable():
            dead = "http://127.0.0.1:%d" % harness.free_port()
            for cmd in (["status"], ["events"], ["explain", "web"],
                        ["metrics", str(uuid.uuid4())]):
                expect_error(cli(*cmd, "--json", "--url", dead),
                             "cannot reach the daemon at " + dead)

        def token_file():
            default = re.search(r"configuration file \(default (\S+)\)",
                                run(binary, "--help").stdout)
            tf = os.path.join(work, "remote.token")
            with open(tf, "w") as f:
                f.write(token + "\n")
            os.chmod(tf, 0o600)
            if default and os.path.exists(default.group(1)):
                log("token-file: %s exists here: the remote case (no file) "
                    "is not checked" % default.group(1))
            else:
                # a workstation: no configuration, --url and --token-file
                doc = document(cli("status", "--json", "--url", url,
                                   "--token-file", tf, c=None))
                if sorted(g["name"] for g in doc["groups"]) != ["api", "web"]:
                    raise Fail("status with --token-file: %r" % doc)
                p = cli("status", "--url", url, c=None)
                expect_error(p, "--token-file")
            # the file's token rather than the configuration's
            wrong = os.path.join(work, "wrong.token")
            with open(wrong, "w") as f:
                f.write(os.urandom(16).hex())
            os.chmod(wrong, 0o600)
            expect_error(cli("status", "--json", "--token-file", wrong),
                         "wrong admin token")
            document(cli("explain", "web", "--token-file", tf, "--json"))
            os.chmod(tf, 0o644)
            p = cli("status", "--json", "--token-file", tf)
            expect_error(p, "readable by every user")
            if "chmod o-rwx" not in p.stderr:
                raise Fail("no advice in: %s" % p.stderr)
            os.chmod(tf, 0o640)  # group-readable: a shared operators' group
            document(cli("status", "--json", "--token-file", tf))
            empty = os.path.join(work, "empty.token")
            open(empty, "w").close()
            os.chmod(empty, 0o600)
            expect_error(cli("status", "--token-file", empty), "empty")
            expect_error(cli("status", "--token-file", os.path.join(work, "nope")),
                         "No such file")
            # No option takes the token itself (it would be in ps); and
            # --token is not --token-file abbreviated (getopt_long takes
            # unambiguous prefixes), which printed the token as a file name.
            for args in (["--token", token], ["--token=" + token],
                         ["--admin-token", token]):
                p = cli("status", *args)
                if p.returncode != 2:
                    raise Fail("%s: exit %d, expected a usage error"
                               % (args[0], p.returncode))
            p = cli("status", "--token", token)
            if "--token-file" not in p.stderr or "ps" not in p.stderr:
                raise Fail("--token TOKEN: no advice: %s" % p.stderr)

        def version():
            for args in (["--version"], ["-V"], ["version"]):
                p = run(binary, *args)
                if p.returncode != 0 or p.stdout != "virt-autoscaler %s\n" % project_version:
                    raise Fail("%s: %r (exit %d), expected version %s"
                               % (args, p.stdout, p.returncode, project_version))

        def unreadable_config():
            missing = os.path.join(work, "nosuch.yaml")
            p = cli("status", "--json", c=missing)
            expect_error(p, "cannot read the configuration")
            n = p.stderr.count("cannot read the configuration")
            if n != 1:
                raise Fail("said %d times:\n%s" % (n, p.stderr))

        phase("status --json", status)
        phase("events --json", events)
        phase("explain --json", explain)
        phase("metrics --json", metrics)
        phase("--json errors, no daemon", unreachable)
        phase("--token-file", token_file)
        phase("--version", version)
        phase("an unreadable file said once", unreadable_config)

        leaked = [o for o in outputs if token in o]
        if leaked:
            log("the admin token appears in output: FAIL\n%s" % leaked[0])
            failures.append("token in output")
        else:
            log("the admin token in none of %d outputs: ok" % len(outputs))
        if not d.running():
            raise Fail("the daemon exited (%s)" % d.proc.returncode)
        if failures:
            raise Fail("failed: %s" % ", ".join(failures))
        ok = True
        log("PASS")
    except Fail as e:
        log("FAIL: %s" % e)
        log("daemon log tail:\n" + d.tail())
    finally:
        d.stop()
        if ok:
            import shutil
            shutil.rmtree(work, ignore_errors=True)
        else:
            log("work dir kept: %s" % work)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
