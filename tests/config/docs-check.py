#!/usr/bin/env python3
"""The documentation agrees with the binary.

  docs-check.py VIRT_AUTOSCALER SOURCE_ROOT

1. groff renders both man pages without a warning (groff -man -ww -z).
2. Each command's entry in virt-autoscaler(8) (its .TP tag, as rendered)
   starts with that command's usage line from `virt-autoscaler CMD --help`,
   less the options documented once for all (-c FILE; --url, --ca,
   --insecure, --token-file of the client commands), and those options
   have entries.
   A tag written over several lines rendered as the command's name and a
   body starting with its options.
3. Every configuration key that README.md, docs/*.md and the man pages
   name by its path (daemon.http.max_body, groups.*.scaling.cooldown,
   hosts[].pool, or a group key like scaling.cooldown or health.busy_max)
   exists in `virt-autoscaler check --schema`.
"""
import glob
import os
import re
import subprocess
import sys

CLIENT_OPTS = " [--url URL] [--ca FILE | --insecure] [--token-file FILE]"
COMMANDS = ("run", "check", "status", "events", "explain", "scale", "pause",
            "resume", "refresh", "metrics", "simulate")
# A key path: a section word, then dotted words (a group's name as *).
KEY_RE = re.compile(r"(?<![\w/.\-])((?:daemon|hosts\[\]|groups\.\*|groups|scaling|health|"
                    r"scale_in|cloud_init|template)(?:\.[a-z_*]+|\[\])+)")
FILE_EXT = (".md", ".c", ".h", ".py", ".yaml", ".so", ".svg", ".db", ".sh",
            ".service", ".5", ".8", ".txt", ".gz", ".json")


def groff_warnings(root):
    problems = []
    for page in ("man/virt-autoscaler.8", "man/autoscale.yaml.5"):
        p = subprocess.run(["groff", "-man", "-ww", "-z", os.path.join(root, page)],
                           capture_output=True, text=True)
        if p.returncode != 0 or p.stderr:
            problems.append("%s: groff warns:\n%s" % (page, p.stderr))
    return problems


def render(root, page):
    p = subprocess.run(["groff", "-man", "-Tutf8", "-rLL=300n", "-P-cbou",
                        os.path.join(root, page)], capture_output=True, text=True,
                       check=True)
    return p.stdout.replace("\u2010", "-").replace("\u2212", "-")


def usage_entries(binary, root):
    problems = []
    text = render(root, "man/virt-autoscaler.8")
    lines = [re.sub(r"\s+", " ", ln.strip()) for ln in text.splitlines()
             if ln.startswith("       ") and not ln.startswith("        ")]
    for cmd in COMMANDS:
        p = subprocess.run([binary, cmd, "--help"], capture_output=True, text=True)
        first = (p.stdout or p.stderr).splitlines()[0]
        want = first.replace("usage: virt-autoscaler ", "")
        want = want.replace(" [-c FILE]", "").replace(CLIENT_OPTS, "")
        got = [ln for ln in lines if ln == cmd or ln.startswith(cmd + " ")]
        if not any(ln == want or ln.startswith(want + " ") for ln in got):
            problems.append("virt-autoscaler(8): the entry of '%s' does not start "
                            "with its usage '%s'; entries found: %s"
                            % (cmd, want, got or "none"))
    for opt in ("--url URL", "--ca FILE", "--insecure", "--token-file FILE"):
        if opt not in lines:
            problems.append("virt-autoscaler(8): no entry for the client option %s"
                            % opt)
    return problems


def schema_keys(binary):
    out = subprocess.run([binary, "check", "--schema"], capture_output=True,
                         text=True, check=True).stdout
    return {line.split("\t")[0] for line in out.splitlines()}


def known(key, keys):
    key = key.rstrip(".")
    if key.endswith(FILE_EXT):
        return True
    key = re.sub(r"^groups\.(?!\*)[a-z0-9_-]+", "groups.*", key)
    key = key.replace("hosts.", "hosts[].")
    if key.endswith("[]") and key != "hosts[]":
        key = key[:-2]  # a list: its section
    if key in keys or key == "hosts[]":
        return True
    # a group's key written relative to the group
    return ("groups.*." + key) in keys


def doc_keys(binary, root):
    keys = schema_keys(binary)
    problems = []
    files = [os.path.join(root, "README.md")] + \
        sorted(glob.glob(os.path.join(root, "docs", "*.md"))) + \
        [os.path.join(root, "man", "autoscale.yaml.5"),
         os.path.join(root, "man", "virt-autoscaler.8")]
    for path in files:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.replace("\\-", "-").replace("\\&", "")
                for m in KEY_RE.finditer(line):
                    k = m.group(1)
                    if "." not in k.replace("groups.*", "") and not k.startswith("hosts[]"):
                        continue
                    if not known(k, keys):
                        problems.append("%s:%d: '%s' is not a configuration key "
                                        "(virt-autoscaler check --schema)"
                                        % (os.path.relpath(path, root), n, k))
    return problems


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    binary, root = os.path.abspath(sys.argv[1]), sys.argv[2]
    problems = groff_warnings(root) + usage_entries(binary, root) + \
        doc_keys(binary, root)
    for p in problems:
        print(p)
    print("%d problems" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
