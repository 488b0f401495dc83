#!/usr/bin/env python3
"""The Debian package (issue 15), built, installed into this machine,
checked, and purged.

  1. scripts/package.sh builds virt-autoscaler_*.deb from the committed
     tree (git archive HEAD: uncommitted changes are not in it) and runs
     lintian, which must report no error (DEB_BUILD_OPTIONS=nocheck: the
     unit suite runs in the gcc build anyway).
  2. `apt-get install ./virt-autoscaler_*.deb`; then:
     - the files are where Debian 12 keeps them: /usr/sbin/virt-autoscaler
       (its --version is the project's), both man pages,
       /lib/systemd/system/virt-autoscaler.service, the sysusers.d file, the
       plugin header under /usr/include/virt-autoscaler, the bash
       completion, the examples (uncompressed) under
       /usr/share/doc/virt-autoscaler/examples;
     - /etc/autoscaler/autoscale.yaml is a conffile and passes `check`
       with no warning, as root and as the service user (the unit's
       ExecStartPre), and the documents its comments name are installed;
       its admin token file exists, 32 hex digits, root:virt-autoscaler 0640;
     - the installed examples pass `check` beside the files they name
       (TLS certificate and key) and with VA_ADMIN_TOKEN set;
     - `systemd-analyze verify` accepts the installed unit, which is not
       enabled (the service needs configuring first);
     - the user virt-autoscaler exists, in group libvirt, home
       /var/lib/virt-autoscaler, no login shell; the state directory is
       virt-autoscaler:virt-autoscaler 0700;
     - installing the same package again (an upgrade's path through the
       maintainer scripts) keeps the admin token and the conffile.
  3. `apt-get purge`: no file of the package is left, nor /etc/autoscaler,
     /var/lib/virt-autoscaler, /usr/include/virt-autoscaler,
     /usr/share/doc/virt-autoscaler, nor systemd's enablement state; the
     system user stays (Debian keeps system users; docs/packaging.md).

The machine is restored whatever happens: the package is purged in a
finally (and at the start, if a killed earlier run left it installed: a
marker file says so); /etc/autoscaler and /var/lib/virt-autoscaler, if they
existed before (scripts/demo.sh works in /var/lib/virt-autoscaler/demo),
are moved aside for the test and put back. A virt-autoscaler package this
test did not install is left alone: the test fails instead.

Root, apt and dpkg needed (skipped, 77, otherwise). Suite 'package', run by
scripts/test.sh's gcc build only; about 1-2 minutes, most of it the build.

usage: package_test.py SOURCE_ROOT VERSION
"""
import glob
import os
import pwd
import grp
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

PKG = "virt-autoscaler"
MARKER = "/var/tmp/virt-autoscaler-package-test.installed"
BACKUP = "/var/tmp/virt-autoscaler-package-test.backup"
MOVED = ["/etc/autoscaler", "/var/lib/virt-autoscaler"]
ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C.UTF-8")


class Fail(Exception):
    pass


def log(msg):
    print("package: " + msg, flush=True)


def run(*args, check=True, timeout=600, **kw):
    p = subprocess.run(list(args), capture_output=True, text=True,
                       timeout=timeout, env=kw.pop("env", ENV), **kw)
    if check and p.returncode != 0:
        raise Fail("%s exited %d:\n%s%s" % (" ".join(args), p.returncode,
                                            p.stdout[-3000:], p.stderr[-3000:]))
    return p


def installed():
    p = run("dpkg-query", "-W", "-f=${Status}", PKG, check=False)
    return p.returncode == 0 and p.stdout.strip() == "install ok installed"


def known_to_dpkg():
    p = run("dpkg-query", "-W", "-f=${Status}", PKG, check=False)
    return p.returncode == 0 and p.stdout.strip() not in ("", "unknown ok not-installed")


def purge():
    run("apt-get", "purge", "-y", "-q", PKG, timeout=300)


def restore_moved():
    for path in MOVED:
        saved = BACKUP + path
        if os.path.lexists(saved):
            if os.path.lexists(path):
                shutil.rmtree(path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.rename(saved, path)
            log("put back %s" % path)
    shutil.rmtree(BACKUP, ignore_errors=True)


def cleanup():
    """Purge what this test installed and put back what it moved aside."""
    if os.path.exists(MARKER):
        if known_to_dpkg():
            purge()
            log("purged the package")
        os.unlink(MARKER)
    restore_moved()


def mode_owner(path):
    st = os.stat(path)
    return (stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name,
            grp.getgrgid(st.st_gid).gr_name)


def expect_mode(path, mode, user, group):
    got = mode_owner(path)
    if got != (mode, user, group):
        raise Fail("%s is %04o %s:%s, expected %04o %s:%s"
                   % ((path,) + got + (mode, user, group)))


def check_config(binary, cfg, as_user=None, env=None, allow_warning=None):
    """`virt-autoscaler check -c CFG`: exit 0, stderr empty (or only the
    warning matching allow_warning)."""
    cmd = [binary, "-c", cfg, "check"]
    if as_user:
        cmd = ["setpriv", "--reuid=" + as_user, "--regid=" + as_user,
               "--init-groups", "--"] + cmd
    p = run(*cmd, check=False, env=env or ENV, cwd="/")
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    if allow_warning:
        lines = [ln for ln in lines if not re.search(allow_warning, ln)]
    if p.returncode != 0 or lines:
        raise Fail("check -c %s%s: exit %d, stderr:\n%s"
                   % (cfg, " as " + as_user if as_user else "", p.returncode, p.stderr))
    if "version: 1" not in p.stdout:
        raise Fail("check -c %s printed no configuration:\n%s" % (cfg, p.stdout))
    log("check %s%s: ok" % (cfg, " (as %s)" % as_user if as_user else ""))


def main():
    root, version = sys.argv[1], sys.argv[2]
    if os.geteuid() != 0 or not shutil.which("apt-get") or not shutil.which("dpkg"):
        print("SKIP: needs root, apt-get and dpkg")
        return 77
    if run("git", "-C", root, "rev-parse", "--git-dir", check=False).returncode:
        raise Fail("%s is not a git checkout: scripts/package.sh builds HEAD" % root)

    # A killed earlier run of ours: clean up after it first.
    cleanup()
    if known_to_dpkg():
        raise Fail("a %s package this test did not install is on this machine "
                   "(dpkg -l %s); not touching it" % (PKG, PKG))
    for path in MOVED:
        if os.path.lexists(path):
            os.makedirs(os.path.dirname(BACKUP + path), exist_ok=True)
            os.rename(path, BACKUP + path)
            log("moved %s aside for the test" % path)

    with tempfile.TemporaryDirectory(prefix="va-package-test-") as work:
        out = os.path.join(work, "out")
        t0 = time.time()
        env = dict(ENV, DEB_BUILD_OPTIONS="nocheck parallel=%d" % (os.cpu_count() or 1))
        p = run(os.path.join(root, "scripts", "package.sh"), out, env=env, check=False,
                timeout=900)
        if p.returncode != 0:
            raise Fail("scripts/package.sh exited %d:\n%s" % (p.returncode, p.stderr[-6000:]))
        deb = p.stdout.strip().splitlines()[-1]
        log("built %s in %.0f s" % (os.path.basename(deb), time.time() - t0))
        if not re.fullmatch(r".*/virt-autoscaler_%s_[a-z0-9]+\.deb" % re.escape(version), deb) \
                or not os.path.isfile(deb):
            raise Fail("package.sh printed %r, not the path of a .deb of version %s"
                       % (deb, version))
        if "lintian" in p.stderr:
            log("lintian's findings (warnings, no error):\n" +
                p.stderr[p.stderr.index("lintian"):])

        # 2. install
        with open(MARKER, "w") as f:
            f.write(deb + "\n")
        t0 = time.time()
        run("apt-get", "install", "-y", "-q", "--no-install-recommends", deb, timeout=300)
        log("installed in %.0f s" % (time.time() - t0))
        if not installed():
            raise Fail("dpkg does not list %s as installed" % PKG)
        files = run("dpkg", "-L", PKG).stdout.split("\n")
        files = [f for f in files if f and f != "/."]

        binary = "/usr/sbin/virt-autoscaler"
        for path in [binary,
                     "/usr/share/man/man8/virt-autoscaler.8.gz",
                     "/usr/share/man/man5/autoscale.yaml.5.gz",
                     "/lib/systemd/system/virt-autoscaler.service",
                     "/usr/lib/sysusers.d/virt-autoscaler.conf",
                     "/usr/include/virt-autoscaler/placement_plugin.h",
                     "/usr/share/bash-completion/completions/virt-autoscaler",
                     "/usr/share/doc/virt-autoscaler/examples/autoscale.yaml",
                     "/usr/share/doc/virt-autoscaler/examples/web.yaml",
                     "/usr/share/doc/virt-autoscaler/copyright",
                     "/etc/autoscaler/autoscale.yaml"]:
            if path not in files or not os.path.isfile(path):
                raise Fail("%s is not installed by the package" % path)
        if not os.access(binary, os.X_OK):
            raise Fail("%s is not executable" % binary)
        got = run(binary, "--version").stdout
        if version not in got:
            raise Fail("%s --version says %r, not %s" % (binary, got, version))
        conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", PKG).stdout
        if "/etc/autoscaler/autoscale.yaml" not in conffiles:
            raise Fail("/etc/autoscaler/autoscale.yaml is not a conffile: %r" % conffiles)
        log("files in place, %d of them" % len(files))

        # the service user and the state directory
        try:
            pw = pwd.getpwnam(PKG)
        except KeyError:
            raise Fail("no user %s after install" % PKG)
        if pw.pw_dir != "/var/lib/virt-autoscaler" or not pw.pw_shell.endswith("nologin"):
            raise Fail("user %s: home %s, shell %s" % (PKG, pw.pw_dir, pw.pw_shell))
        if PKG not in grp.getgrnam("libvirt").gr_mem:
            raise Fail("user %s is not in group libvirt" % PKG)
        expect_mode("/var/lib/virt-autoscaler", 0o700, PKG, PKG)
        token_file = "/etc/autoscaler/admin-token"
        expect_mode(token_file, 0o640, "root", PKG)
        with open(token_file) as f:
            token = f.read()
        if not re.fullmatch(r"[0-9a-f]{32}\n", token):
            raise Fail("%s does not hold 128 random bits in hex" % token_file)
        log("user %s (libvirt), state directory 0700, admin token 0640" % PKG)

        # the shipped configuration, as root and as the unit runs it; the
        # documents its comments point to are installed
        cfg = "/etc/autoscaler/autoscale.yaml"
        with open(cfg) as f:
            named = re.findall(r"/usr/share/doc/\S+[^\s.,)]", f.read())
        if not named:
            raise Fail("%s points to no installed document" % cfg)
        for path in named:
            if not os.path.isfile(path):
                raise Fail("%s names %s, which is not installed" % (cfg, path))
        check_config(binary, cfg)
        check_config(binary, cfg, as_user=PKG)

        # the examples, beside the files they name
        ex = os.path.join(work, "examples")
        os.mkdir(ex)
        for name in ("autoscale.yaml", "web.yaml"):
            shutil.copy("/usr/share/doc/virt-autoscaler/examples/" + name, ex)
        run("certtool", "--generate-privkey", "--key-type", "ed25519",
            "--outfile", os.path.join(ex, "tls.key"))
        tmpl = os.path.join(ex, "cert.template")
        with open(tmpl, "w") as f:
            f.write("cn = autoscaler.example\ndns_name = autoscaler.example\n"
                    "expiration_days = 2\n")
        run("certtool", "--generate-self-signed", "--load-privkey",
            os.path.join(ex, "tls.key"), "--template", tmpl,
            "--outfile", os.path.join(ex, "tls.crt"))
        ex_env = dict(ENV, VA_ADMIN_TOKEN=os.urandom(16).hex())
        check_config(binary, os.path.join(ex, "autoscale.yaml"), env=ex_env)
        # web.yaml listens on libvirt's NAT bridge without TLS: check warns.
        check_config(binary, os.path.join(ex, "web.yaml"), env=ex_env,
                     allow_warning=r"warning: daemon: listen 192\.168\.122\.1:8470 without tls")

        # the unit
        unit = "/lib/systemd/system/virt-autoscaler.service"
        p = run("systemd-analyze", "verify", unit, check=False)
        if p.returncode != 0 or p.stderr.strip():
            raise Fail("systemd-analyze verify %s: exit %d\n%s"
                       % (unit, p.returncode, p.stderr))
        with open(unit) as f:
            text = f.read()
        for line in ("ExecStart=/usr/sbin/virt-autoscaler -c /etc/autoscaler/autoscale.yaml run",
                     "User=virt-autoscaler"):
            if line not in text.splitlines():
                raise Fail("%s lacks %r" % (unit, line))
        enabled = glob.glob("/etc/systemd/system/*.wants/virt-autoscaler.service")
        if enabled:
            raise Fail("the unit is enabled on install: %s" % enabled)
        log("systemd-analyze verify: ok; not enabled")

        # the same package again: token and conffile kept
        with open(cfg) as f:
            cfg_text = f.read()
        run("dpkg", "-i", deb, timeout=300)
        with open(token_file) as f:
            if f.read() != token:
                raise Fail("reinstalling replaced the admin token")
        with open(cfg) as f:
            if f.read() != cfg_text:
                raise Fail("reinstalling changed %s" % cfg)
        expect_mode("/var/lib/virt-autoscaler", 0o700, PKG, PKG)
        log("reinstalled: admin token and configuration kept")

        # 3. purge
        purge()
        os.unlink(MARKER)
        if known_to_dpkg():
            raise Fail("dpkg still knows %s after purge" % PKG)
        left = [f for f in files if os.path.lexists(f) and not os.path.isdir(f)]
        left += [d for d in ("/etc/autoscaler", "/var/lib/virt-autoscaler",
                             "/usr/include/virt-autoscaler",
                             "/usr/share/doc/virt-autoscaler")
                 if os.path.lexists(d)]
        left += glob.glob("/var/lib/systemd/deb-systemd-helper-*/*virt-autoscaler*")
        left += glob.glob("/etc/systemd/system/*/virt-autoscaler.service")
        if left:
            raise Fail("left after purge: %s" % ", ".join(left))
        log("purged: nothing of the package left (the user %s stays)" % PKG)
    return 0


def on_term(signum, frame):
    raise Fail("killed by signal %d" % signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_term)
    rc = 1
    try:
        rc = main()
    except Fail as e:
        print("FAIL: %s" % e, flush=True)
    finally:
        try:
            cleanup()
        except Exception as e:  # the result stands; say what was left
            print("FAIL: cleaning up: %s" % e, flush=True)
            rc = 1
    sys.exit(rc)
