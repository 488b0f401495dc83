#!/usr/bin/env python3
"""Bash completion (contrib/bash-completion/virt-autoscaler, issue 15),
driven through bash itself: the file is sourced, COMP_WORDS and
COMP_CWORD are set as readline sets them, _virt_autoscaler runs, and
COMPREPLY is what would be offered.

Checked:
  1. `complete -p virt-autoscaler` names the function.
  2. Commands and options match the binary: the commands of `--help`
     (the hidden _complete not among them), and for each command the long
     options of `COMMAND --help`, no more (besides --help and --config).
  3. Files after -c, --ca, --token-file, --trace.
  4. Names from a daemon on libvirt's test driver: the groups it serves
     (not those of the file on disk, which has one more since the start)
     for explain, pause, scale and --group (also "--group=w"), instance
     ids for metrics, nothing where a number or a second name goes; with
     --url and --token-file and no -c.
  5. A daemon that accepts and never answers: the completion returns
     within 4 s, with the file's groups. No daemon: the file's groups at
     once, no instance ids.
  6. The same with the bash-completion package loaded, when installed.
  Nothing is ever printed on stderr.

Suite 'integration' and 'testdriver', a few seconds.

usage: completion_test.py VIRT_AUTOSCALER COMPLETION_FILE
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"

DRIVER = r'''
set -u
comp=$1; preload=$2; shift 2
if [ "$preload" != - ]; then source "$preload"; fi
source "$comp"
if [ "$1" = -p ]; then complete -p virt-autoscaler; exit; fi
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE="${COMP_WORDS[*]}"
COMP_POINT=${#COMP_LINE}
COMPREPLY=()
_virt_autoscaler
printf '%s\n' "${COMPREPLY[@]}"
'''


class Completer:
    def __init__(self, binary, compfile):
        self.compfile = compfile
        self.env = dict(os.environ)
        self.env["PATH"] = os.path.dirname(binary) + ":" + self.env.get("PATH", "")
        self.preload = "-"

    def raw(self, *words):
        p = subprocess.run(["bash", "-c", DRIVER, "bash", self.compfile,
                            self.preload] + list(words),
                           capture_output=True, text=True, env=self.env,
                           timeout=30)
        if p.returncode != 0 or p.stderr:
            raise Fail("completing %r: exit %d, stderr: %s"
                       % (words, p.returncode, p.stderr))
        return p.stdout

    def __call__(self, *words):
        """What is offered for the line `virt-autoscaler WORDS...`, the
        last word being completed."""
        out = self.raw("virt-autoscaler", *words)
        return sorted(w for w in out.split("\n") if w)


def expect(what, got, want):
    if sorted(got) != sorted(want):
        raise Fail("%s: offered %s, expected %s" % (what, sorted(got), sorted(want)))
    log("%s: %s" % (what, " ".join(sorted(got)) or "(nothing)"))


def help_commands(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    section = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in section.splitlines() if line.strip()]


def help_options(binary, cmd):
    p = subprocess.run([binary, cmd, "--help"], capture_output=True, text=True)
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", p.stdout + p.stderr))


def config(path, port, state, node, extra=""):
    harness.testdriver_config(path, port, state, node, """  web:
    min: 2
    max: 4
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
  api:
    min: 0
    max: 2
    template: { image: base.qcow2 }
%s""" % extra)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    compfile = os.path.abspath(sys.argv[2])
    comp = Completer(binary, compfile)
    work = harness.workdir("va-completion-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    port = harness.free_port()
    url = "http://127.0.0.1:%d" % port
    harness.test_node_xml(node, "web", [str(uuid.uuid4()) for _ in range(2)])
    config(cfg, port, state, node)
    for name in ("ca.pem", "trace.txt"):
        open(os.path.join(work, name), "w").close()
    api = harness.Api(url, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    failures = []

    def phase(name, fn):
        try:
            fn()
            log("%s: ok" % name)
        except (Fail, OSError, ValueError, KeyError, IndexError,
                subprocess.TimeoutExpired) as e:
            log("%s: FAIL: %s" % (name, e))
            failures.append(name)

    def static():
        reg = comp.raw("-p").strip()
        if reg != "complete -F _virt_autoscaler virt-autoscaler":
            raise Fail("complete -p: %r" % reg)
        cmds = help_commands(binary)
        if "_complete" in cmds or "status" not in cmds:
            raise Fail("--help lists %s" % cmds)
        expect("commands", comp(""), cmds + ["help", "version"])
        expect("commands st", comp("st"), ["status"])
        expect("global options", comp("--"),
               ["--config", "--verbose", "--quiet", "--help", "--version"])
        for cmd in cmds:
            usage = help_options(binary, cmd)
            offered = set(comp(cmd, "--"))
            if not usage <= offered:
                raise Fail("%s: --help has %s, not offered" % (cmd, sorted(usage - offered)))
            if not offered - usage <= {"--help", "--config"}:
                raise Fail("%s: offered %s, not in its --help" % (cmd, sorted(offered - usage)))
            log("options of %s: %s" % (cmd, " ".join(sorted(offered))))
        expect("the --json of status", comp("status", "--j"), ["--json"])
        # options before the command, and -c's argument, are skipped
        expect("after -c FILE", comp("-c", cfg, "-v", "ex"), ["explain"])

    def files():
        w = work + "/"
        expect("-c FILE", comp("-c", w + "auto"), [cfg])
        expect("--config FILE after the command", comp("status", "--config", w + "auto"), [cfg])
        expect("--ca FILE", comp("status", "--ca", w + "ca"), [w + "ca.pem"])
        expect("--token-file FILE", comp("explain", "--token-file", w + "adm"),
               [w + "admin.token"])
        expect("--trace FILE", comp("simulate", "--trace", w + "tr"), [w + "trace.txt"])

    def names():
        ids = [i["id"] for i in api.instances("web")]
        if len(ids) != 2:
            raise Fail("expected the two adopted instances, got %s" % ids)
        expect("explain GROUP", comp("-c", cfg, "explain", ""), ["api", "web"])
        expect("explain --limit 3 GROUP", comp("explain", "-c", cfg, "--limit", "3", ""),
               ["api", "web"])
        expect("pause w", comp("-c", cfg, "pause", "w"), ["web"])
        expect("scale GROUP", comp("-c", cfg, "scale", ""), ["api", "web"])
        expect("scale web N", comp("-c", cfg, "scale", "web", ""), [])
        expect("explain web, then nothing", comp("-c", cfg, "explain", "web", ""), [])
        expect("events --group", comp("-c", cfg, "events", "--group", ""), ["api", "web"])
        expect("events --group=w", comp("-c", cfg, "events", "--group", "=", "w"), ["web"])
        expect("--config=FILE explain --limit=3 GROUP",
               comp("--config", "=", cfg, "explain", "--limit", "=", "3", ""), ["api", "web"])
        expect("metrics INSTANCE", comp("-c", cfg, "metrics", ""), ids)
        expect("metrics --window 1m INSTANCE", comp("metrics", "--window", "1m", "-c", cfg,
                                                   ids[0][:8]), [ids[0]])
        expect("options still offered", comp("-c", cfg, "explain", "--l"), ["--limit"])
        # a remote daemon: no -c, --url and --token-file
        if not os.path.exists("/etc/autoscaler/autoscale.yaml"):
            expect("--url and --token-file", comp("explain", "--url", url, "--token-file",
                                                  os.path.join(work, "admin.token"), ""),
                   ["api", "web"])

    def hung_daemon():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(16)  # accepts (the kernel does), never answers
        try:
            hung = "http://127.0.0.1:%d" % s.getsockname()[1]
            t0 = time.time()
            got = comp("-c", cfg, "explain", "--url", hung, "")
            took = time.time() - t0
            log("a daemon that never answers: %.1f s" % took)
            if took > 4:
                raise Fail("completion took %.1f s" % took)
            expect("groups from the file", got, ["api", "web", "extra"])
        finally:
            s.close()

    def no_daemon():
        t0 = time.time()
        expect("no daemon: groups from the file", comp("-c", cfg, "explain", ""),
               ["api", "web", "extra"])
        expect("no daemon: no instance ids", comp("-c", cfg, "metrics", ""), [])
        if time.time() - t0 > 2:
            raise Fail("%.1f s without a daemon" % (time.time() - t0))

    ok = False
    try:
        phase("commands and options", static)
        phase("files", files)
        d.start()
        api.wait_up(30, d)
        harness.wait_for("the adopted group", lambda g: g["current"] == 2, 30, api, "web",
                         period=0.2)
        # the file gains a group the running daemon does not have
        config(cfg, port, state, node, """  extra:
    min: 0
    max: 1
    template: { image: base.qcow2 }
""")
        phase("names from the daemon", names)
        phase("a daemon that never answers", hung_daemon)
        if os.path.exists(BASH_COMPLETION):
            comp.preload = BASH_COMPLETION
            phase("with bash-completion loaded: names", names)
            phase("with bash-completion loaded: files", files)
            comp.preload = "-"
        else:
            log("%s not installed (scripts/setup.sh installs it): "
                "not checked with it" % BASH_COMPLETION)
        d.stop()
        phase("no daemon", no_daemon)
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
            shutil.rmtree(work, ignore_errors=True)
        else:
            log("work dir kept: %s" % work)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
