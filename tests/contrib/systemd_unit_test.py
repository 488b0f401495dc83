#!/usr/bin/env python3
"""The generated systemd unit (meson configure_file of
contrib/virt-autoscaler.service.in), checked offline: the machine needs
systemd-analyze, not a running systemd.

- its ExecStartPre=/ExecStart= run SBINDIR/virt-autoscaler (the install's
  prefix and sbindir) with the default configuration file;
- `systemd-analyze verify` finds nothing wrong with it, except that the
  binary is not at SBINDIR yet when the project is not installed; a copy
  whose SBINDIR is the build directory (where the binary is) verifies clean;
- it runs as the user virt-autoscaler, not root, in group libvirt;
- `systemd-analyze security --offline=yes` rates its exposure at most 4.0
  (printed);
- the sysusers.d file makes that user, with the state directory as home
  (where ssh finds the keys of qemu+ssh:// hosts), a member of libvirt.

Exits 77 without systemd-analyze.

usage: systemd_unit_test.py UNIT SBINDIR DEFAULT_CONFIG BINARY SYSUSERS
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

MAX_EXPOSURE = 4.0


def analyze(*args):
    r = subprocess.run(["systemd-analyze"] + list(args), capture_output=True,
                       text=True, cwd="/")
    return r.returncode, r.stdout, r.stderr


def main():
    if len(sys.argv) != 6:
        print(__doc__)
        return 2
    unit, sbindir, config, binary, sysusers = sys.argv[1:]
    if not shutil.which("systemd-analyze"):
        print("SKIP: systemd-analyze not installed")
        return 77
    with open(unit) as f:
        text = f.read()
    fail = []
    prog = os.path.join(sbindir, "virt-autoscaler")
    for key, args in (("ExecStartPre", "check"), ("ExecStart", "run")):
        want = "%s=%s -c %s %s" % (key, prog, config, args)
        if want not in text.splitlines():
            fail.append("no line %r" % want)
    if re.search(r"@[A-Za-z_]+@", text):
        fail.append("an @VARIABLE@ was not substituted")
    for want in ("User=virt-autoscaler", "SupplementaryGroups=libvirt",
                 "StateDirectory=virt-autoscaler"):
        if want not in text.splitlines():
            fail.append("no line %r" % want)

    # verify: on the unit as generated ...
    work = tempfile.mkdtemp(prefix="va-unit-")
    try:
        rc, out, err = analyze("verify", "--man=no", unit)
        allowed = "virt-autoscaler.service: Command %s is not executable: " \
                  "No such file or directory" % prog
        lines = [l for l in (out + err).splitlines() if l.strip()]
        other = [l for l in lines if not (l == allowed and not os.path.exists(prog))]
        print("verify (as generated): rc %d%s" % (rc, "".join("\n  " + l for l in lines)))
        if other:
            fail.append("systemd-analyze verify: %s" % other)
        # ... and on a copy whose binary exists
        copy = os.path.join(work, "virt-autoscaler.service")
        with open(copy, "w") as f:
            f.write(text.replace(prog + " ", os.path.abspath(binary) + " "))
        rc, out, err = analyze("verify", "--man=no", copy)
        print("verify (binary from the build): rc %d %s%s" % (rc, out, err))
        if rc != 0 or (out + err).strip():
            fail.append("systemd-analyze verify of the copy: rc %d %s%s"
                        % (rc, out, err))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rc, out, err = analyze("security", "--offline=yes", "--no-pager", unit)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\S+)", out)
    if not m:
        fail.append("systemd-analyze security: no exposure level (rc %d): %s"
                    % (rc, err.strip()))
    else:
        score = float(m.group(1))
        print("systemd-analyze security --offline=yes: %.1f %s (at most %.1f)"
              % (score, m.group(2), MAX_EXPOSURE))
        if score > MAX_EXPOSURE:
            fail.append("exposure %.1f > %.1f:\n%s" % (score, MAX_EXPOSURE, out))

    with open(sysusers) as f:
        rules = [l.split() for l in f if l.strip() and not l.startswith("#")]
    user = [r for r in rules if r[0] == "u" and r[1] == "virt-autoscaler"]
    if not user or "/var/lib/virt-autoscaler" not in user[0]:
        fail.append("sysusers: no user virt-autoscaler with home "
                    "/var/lib/virt-autoscaler: %s" % rules)
    if ["m", "virt-autoscaler", "libvirt"] not in rules:
        fail.append("sysusers: virt-autoscaler is not made a member of libvirt")

    for f in fail:
        print("FAIL: " + f)
    print("PASS" if not fail else "")
    return 1 if fail else 0


if __name__ == "__main__":
    sys.exit(main())
