"""Shared helpers of the end-to-end tests: the real daemon binary, its admin
API, a generated configuration, and what libvirt really holds (read with
virsh, never through the daemon).

Used by every test in this directory.
"""
import json
import glob
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NS = "https://virt-autoscaler.org/xmlns/1"
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
VOLUME_RE = re.compile(r"^(%s)(\.qcow2|-seed\.iso)$" % UUID_RE)
LIVE = ("requested", "provisioning", "booting", "ready", "unhealthy")


class Fail(Exception):
    pass


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def need_env(names, hint):
    """The VA_TEST_* variables, or exit 77 (meson SKIP) naming the script."""
    env = {k: os.environ.get(k) for k in names}
    missing = [k for k, v in env.items() if not v]
    if missing:
        print("SKIP: %s not set (%s)" % (", ".join(missing), hint))
        sys.exit(77)
    return env


GUEST_ENV = ("VA_TEST_LIBVIRT_URI", "VA_TEST_POOL", "VA_TEST_TINY_KERNEL",
             "VA_TEST_TINY_INITRD")
GUEST_HINT = ("run scripts/services/libvirt.sh start and "
              "scripts/services/images.sh start, or scripts/test.sh")
MARIADB_ENV = ("VA_TEST_MARIADB_URL", "VA_TEST_MARIADB_PASSWORD_FILE",
               "VA_TEST_MARIADB_SOCKET")
MARIADB_HINT = "run scripts/services/mariadb.sh start, or scripts/test.sh"


def workdir(prefix):
    state_dir = os.environ.get("VA_TEST_STATE_DIR", "/var/tmp/virt-autoscaler-test")
    os.makedirs(state_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix=prefix, dir=state_dir)
    os.chmod(work, 0o755)  # libvirt-qemu reads the base image from here
    return work


def write_token(work):
    token = os.urandom(16).hex()
    path = os.path.join(work, "admin.token")
    with open(path, "w") as f:
        f.write(token)
    os.chmod(path, 0o600)
    return token


def tiny_disk(work, name):
    """An empty qcow2 the tiny guest's overlay sits on (it boots from its
    initramfs; the disk only has to exist)."""
    base = os.path.join(work, name)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", base, "64M"], check=True)
    os.chmod(base, 0o644)
    return base


CORE_SIGNALS = (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE,
                signal.SIGILL, signal.SIGTRAP, signal.SIGSYS, signal.SIGQUIT)


def core_pattern():
    """The kernel's core_pattern ("?" when it cannot be read)."""
    try:
        with open("/proc/sys/kernel/core_pattern") as f:
            return f.read().strip()
    except OSError:
        return "?"


def core_pattern_relative():
    pat = core_pattern()
    return bool(pat) and pat != "?" and not pat.startswith(("/", "|"))


def allow_core_dumps():
    """In the child before exec: cores as large as they come (the hard
    limit permitting)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    except (ValueError, OSError):
        pass


def core_backtrace(binary, pid, core_dir):
    """Every thread's backtrace from the core that process pid left in
    core_dir (Debian's default pattern "core", or "core.PID"), read with
    gdb; a line saying why not, when there is none."""
    cores = [c for c in glob.glob(os.path.join(core_dir or ".", "core*"))
             if os.path.basename(c) in ("core", "core.%d" % pid)]
    if not cores:
        return ("\n(no core file of process %d in %s; core_pattern is %r)\n"
                % (pid, core_dir, core_pattern()))
    if not shutil.which("gdb"):
        return "\n(core file %s kept; gdb is not installed)\n" % cores[0]
    try:
        r = subprocess.run(["gdb", "-batch", "-nx", "-ex", "thread apply all bt 30",
                            binary, cores[0]], capture_output=True, text=True,
                           timeout=120)
        out = r.stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        out = "gdb failed: %s" % e
    keep = [ln for ln in out.splitlines()
            if ln.startswith(("#", "Thread ", "Program terminated", "Core was"))]
    return ("\n==== backtraces from %s\n%s\n" % (cores[0], "\n".join(keep[:400])))


class Daemon:
    """`virt-autoscaler -c CFG run` as a child process, logging to a file."""

    def __init__(self, binary, cfg, logpath):
        self.binary = binary
        self.cfg = cfg
        self.logpath = logpath
        self.proc = None

    def start(self, extra_env=None):
        env = dict(os.environ)
        env.pop("VA_TEST_CRASH_AT", None)
        if extra_env:
            env.update(extra_env)
        self.logf = open(self.logpath, "a")
        self.logf.write("==== %s start %s\n" % (time.strftime("%H:%M:%S"),
                                                 extra_env or ""))
        self.logf.flush()
        # A daemon that dies by a signal leaves its core in its working
        # directory (the log's) when the kernel writes cores to a relative
        # path, as Debian's default "core" does; tail() then prints the
        # threads' backtraces. The test's own working directory is kept
        # where cores go elsewhere (an absolute path or a pipe).
        self.core_dir = os.path.dirname(os.path.abspath(self.logpath))
        self.proc = subprocess.Popen([os.path.abspath(self.binary), "-c",
                                      os.path.abspath(self.cfg), "run"],
                                     stdout=self.logf, stderr=self.logf, env=env,
                                     cwd=self.core_dir if core_pattern_relative() else None,
                                     preexec_fn=allow_core_dumps)
        return self.proc

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill9(self):
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()
        return self.proc.returncode if self.proc else None

    def tail(self, n=60):
        try:
            with open(self.logpath) as f:
                text = "".join(f.readlines()[-n:])
        except OSError:
            text = ""
        return text + self.backtrace()

    def backtrace(self):
        """The threads' backtraces from the core of a daemon that died by
        a signal ("" if it did not, or left no core); printed once."""
        if (self.proc is None or self.proc.returncode is None or
                -self.proc.returncode not in CORE_SIGNALS or
                getattr(self, "bt_done", False)):
            return ""
        self.bt_done = True
        return core_backtrace(self.binary, self.proc.pid, self.core_dir)


class Api:
    def __init__(self, base, token):
        self.base = base
        self.token = token

    def call(self, method, path, body=None, timeout=10):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + self.token,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)

    def up(self):
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=2) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def wait_up(self, timeout, daemon=None):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.up():
                return time.time() - t0
            if daemon is not None and not daemon.running():
                raise Fail("the daemon exited (%s) before its API came up"
                           % daemon.proc.returncode)
            time.sleep(0.2)
        raise Fail("the admin API did not come up within %d s" % timeout)

    def group(self, name):
        return self.call("GET", "/v1/groups/" + name)

    def instances(self, group):
        return self.call("GET", "/v1/instances?group=" + group)["instances"]

    def events(self, group=None, kind=None, limit=1000):
        q = "/v1/events?limit=%d" % limit
        if group:
            q += "&group=" + group
        if kind:
            q += "&kind=" + kind
        return self.call("GET", q)["events"]

    def set_desired(self, group, n, timeout=10):
        return self.call("PUT", "/v1/groups/%s/desired" % group, {"desired": n},
                         timeout=timeout)

    def try_call(self, method, path, body=None, timeout=10):
        """(HTTP status, parsed body or text); status None when the request
        got no answer (connection refused, reset or timed out)."""
        try:
            return 200, self.call(method, path, body, timeout)
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text
        except (OSError, urllib.error.URLError) as e:
            return None, str(e)

    def metric(self, name):
        """A sample of /metrics without labels (e.g. va_ticks_total), or None."""
        with urllib.request.urlopen(self.base + "/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return None


def wait_for(what, pred, timeout, api, group, period=3):
    """Poll the group until pred(group json) holds; log its changes."""
    t0 = time.time()
    last = None
    while time.time() - t0 < timeout:
        try:
            g = api.group(group)
        except Exception as e:  # daemon starting or busy
            g = {"error": str(e)}
        state = (g.get("desired"), g.get("current"), g.get("ready"),
                 g.get("metrics", {}).get("cpu"))
        if state != last:
            log("%s: desired %s, current %s, ready %s, cpu %s" % ((what,) + state))
            last = state
        if "error" not in g and pred(g):
            return time.time() - t0
        time.sleep(period)
    raise Fail("timed out after %d s waiting for: %s" % (timeout, what))


def wait_until(what, pred, timeout, daemon, period=1):
    """Poll pred() until it returns something true (returned), while the
    daemon runs; Fail with the daemon's log after timeout seconds."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if not daemon.running():
            raise Fail("the daemon exited while waiting for %s:\n%s" % (what, daemon.tail()))
        v = pred()
        if v:
            log("%s after %.0f s" % (what, time.time() - t0))
            return v
        time.sleep(period)
    raise Fail("%s: not within %d s\n%s" % (what, timeout, daemon.tail()))


def wait_ticks(api, n, timeout, daemon=None):
    """Wait until the daemon's loop has completed n more ticks
    (va_ticks_total); the time it took."""
    t0 = time.time()
    first = api.metric("va_ticks_total") or 0
    while time.time() - t0 < timeout:
        if daemon is not None and not daemon.running():
            raise Fail("the daemon exited (%s)" % daemon.proc.returncode)
        if (api.metric("va_ticks_total") or 0) >= first + n:
            return time.time() - t0
        time.sleep(0.1)
    raise Fail("the daemon's loop did not tick %d times within %d s" % (n, timeout))


class SqliteWriteLock:
    """Another writer on a SQLite state store: holds its write lock
    (BEGIN IMMEDIATE) from acquire() to release(). In WAL mode the daemon
    still reads; its writes wait for the store's busy timeout (10 s) and
    then fail, as during a database outage."""

    def __init__(self, path):
        self.path = path
        self.db = None

    def acquire(self):
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("BEGIN IMMEDIATE")
        self.since = time.time()

    def release(self):
        if self.db is not None:
            self.db.execute("ROLLBACK")
            self.db.close()
            self.db = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def sqlite_query(path, sql, args=()):
    db = sqlite3.connect(path, timeout=30)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def testdriver_config(path, port, state, node, groups, host_extra="",
                      comment=""):
    """The configuration of a daemon on libvirt's test driver: one host
    "test" on the node file `node`, SQLite state at `state`, interval 1 s,
    the admin token from admin.token beside the file. `groups` is the
    YAML of the groups: section, indented by two spaces; `host_extra` more
    keys of the host (", reserved_memory: 0"); `comment` a YAML comment
    line above the host."""
    with open(path, "w") as f:
        f.write("""version: 1
daemon:
  interval: 1s
  listen: 127.0.0.1:%d
  state: sqlite://%s
  admin_token: { file: admin.token }
hosts:
%s  - { name: test, uri: "test://%s", pool: default-pool%s }
groups:
%s""" % (port, state, ("  # %s\n" % comment) if comment else "", node,
         host_extra, groups))


def test_node_xml(path, group=None, ids=(), name_prefix="va-t"):
    """A node file for libvirt's test driver (test:///PATH): the storage
    pool default-pool, and one running domain per id in ids carrying our
    metadata for the group (adopted by the daemon at start, as ready
    instances). No libvirtd: the driver lives in the daemon's process."""
    import uuid as uuidlib
    doms = "".join("""  <domain type='test'>
    <name>%(prefix)s-%(n)d</name>
    <uuid>%(id)s</uuid>
    <memory>131072</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
    <metadata>
      <va:instance xmlns:va="%(ns)s" group="%(group)s" id="%(id)s" generation="1"/>
    </metadata>
  </domain>
""" % {"prefix": name_prefix, "n": n, "id": iid, "ns": NS, "group": group}
        for n, iid in enumerate(ids))
    with open(path, "w") as f:
        f.write("""<node>
%s  <pool type='dir'>
    <name>default-pool</name>
    <uuid>%s</uuid>
    <capacity>107374182400</capacity>
    <allocation>0</allocation>
    <available>107374182400</available>
    <target><path>/default-pool</path></target>
  </pool>
</node>
""" % (doms, uuidlib.uuid4()))


class OwnLibvirtd:
    """A libvirtd of the test's own, to stop and resume at will: the
    session daemon of the user nobody with its own runtime and config
    directories, reached by root through its socket (as
    scripts/services/libvirt.sh starts host 2). Its domains, pools and
    volumes are its own. The directory is short (/run/va-oXXXXXXXX):
    QEMU's sockets go under it and a UNIX socket path has at most 107
    bytes. stop() ends it and everything it started."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="va-o", dir="/run")
        os.chmod(self.dir, 0o755)
        self.sock = os.path.join(self.dir, "r/libvirt/libvirt-sock")
        self.uri = "qemu+unix:///session?socket=" + self.sock
        self.proc = None
        self.stopped = False

    def start(self, timeout=20):
        d = self.dir
        for sub in "hrck":
            os.makedirs(os.path.join(d, sub), exist_ok=True)
            os.chown(os.path.join(d, sub), 65534, 65534)
        os.chmod(os.path.join(d, "r"), 0o700)
        self.log = open(os.path.join(d, "libvirtd.log"), "a")
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=%s/h" % d,
             "XDG_RUNTIME_DIR=%s/r" % d, "XDG_CONFIG_HOME=%s/c" % d,
             "XDG_CACHE_HOME=%s/k" % d, "libvirtd"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            start_new_session=True)
        t0 = time.time()
        while time.time() - t0 < timeout:
            r = subprocess.run(["virsh", "-q", "-c", self.uri, "uri"],
                               capture_output=True, timeout=10)
            if r.returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise Fail("own libvirtd did not answer on %s" % self.uri)

    def pause(self):
        """SIGSTOP: the host accepts nothing and answers nothing."""
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self):
        if self.proc is not None and self.stopped:
            self.proc.send_signal(signal.SIGCONT)
            self.stopped = False

    def stop(self):
        if self.proc is None:
            return
        self.resume()
        if self.proc.poll() is None:
            for name in virsh(self.uri, "list", "--name").split():
                virsh(self.uri, "destroy", name)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # the session daemon spawned a virtlogd of its own
        pidfile = os.path.join(self.dir, "r/libvirt/virtlogd.pid")
        try:
            with open(pidfile) as f:
                os.kill(int(f.read().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


def virsh(uri, *args, check=False):
    r = subprocess.run(["virsh", "-q", "-c", uri] + list(args),
                       capture_output=True, text=True)
    if check and r.returncode != 0:
        raise Fail("virsh %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


def group_domains(uri, group):
    """{instance id: (domain name, running)} of the domains that carry our
    metadata with this group, read from libvirt."""
    out = {}
    running = set(virsh(uri, "list", "--name").split())
    for name in virsh(uri, "list", "--all", "--name").split():
        meta = virsh(uri, "metadata", name, NS)
        if 'group="%s"' % group not in meta:
            continue
        m = re.search(r'id="(%s)"' % UUID_RE, meta)
        iid = m.group(1) if m else "?" + name
        if iid in out:
            raise Fail("two domains claim instance %s: %s and %s"
                       % (iid, out[iid][0], name))
        out[iid] = (name, name in running)
    return out


def pool_volumes(uri, pool):
    """{instance id: [volume names]} of the volumes named like ours."""
    virsh(uri, "pool-refresh", pool)
    out = {}
    for line in virsh(uri, "vol-list", pool).splitlines():
        if not line.strip():
            continue
        m = VOLUME_RE.match(line.split()[0])
        if m:
            out.setdefault(m.group(1), []).append(line.split()[0])
    return out


def leftovers(uri, pool, group, ids):
    """Domains of the group and volumes of its instances still on the host."""
    doms = [name for name, _ in group_domains(uri, group).values()]
    vols = [v for i, vs in pool_volumes(uri, pool).items() if i in ids for v in vs]
    return doms, vols


def test_host_uri(env):
    """The libvirt host the crash, HA and health tests use: the second test
    host (a session libvirtd of its own) when there is one, because the
    first is shared with tests and benchmarks that may hold hundreds of
    domains, whose vCPUs the placement counts. VA_TEST_E2E_URI overrides."""
    return (os.environ.get("VA_TEST_E2E_URI") or os.environ.get("VA_TEST_LIBVIRT_URI2")
            or env["VA_TEST_LIBVIRT_URI"])


def make_pool(uri, name, path):
    """A private directory pool: every volume in it is the test's own. The
    directory belongs to nobody: the second test host's libvirtd runs as
    that user (the system one, as root, writes anywhere)."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    os.chown(path, 65534, 65534)
    virsh(uri, "pool-define-as", name, "dir", "--target", path, check=True)
    virsh(uri, "pool-start", name, check=True)


def drop_pool(uri, name, path):
    if name in virsh(uri, "pool-list", "--all", "--name").split():
        for line in virsh(uri, "vol-list", name).splitlines():
            if line.strip():
                virsh(uri, "vol-delete", "--pool", name, line.split()[0])
        virsh(uri, "pool-destroy", name)
        virsh(uri, "pool-undefine", name)
    shutil.rmtree(path, ignore_errors=True)


def remove_group_domains(uri, group):
    for name, _ in group_domains(uri, group).values():
        virsh(uri, "destroy", name)
        virsh(uri, "undefine", name)


def check_consistent(api, uri, pool, group, desired=None, all_volumes=True,
                     settled=True):
    """The store (admin API) and libvirt (virsh) agree, nothing leaked,
    nothing duplicated. With all_volumes, every volume named like ours in
    the (private) pool must belong to a live instance; with settled, no
    instance may be half provisioned. Returns the live instances."""
    insts = api.instances(group)
    g = api.group(group)
    want = g["desired"] if desired is None else desired
    live = {i["id"]: i for i in insts if i["state"] in LIVE}
    other = [(i["id"], i["state"]) for i in insts if i["state"] not in LIVE]
    doms = group_domains(uri, group)
    vols = pool_volumes(uri, pool)
    problems = []
    if other:
        problems.append("instances in transit or lost: %s" % other)
    if settled:
        busy = [(i, v["state"]) for i, v in live.items()
                if v["state"] in ("requested", "provisioning")]
        if busy:
            problems.append("instances being provisioned: %s" % busy)
    if len(live) != want:
        problems.append("%d live instances, desired %d" % (len(live), want))
    if len(doms) != want:
        problems.append("%d domains of the group, desired %d" % (len(doms), want))
    for iid, (name, running) in doms.items():
        if iid not in live:
            problems.append("domain %s (%s) belongs to no live instance" % (name, iid))
        elif not running:
            problems.append("domain %s of live instance %s is not running" % (name, iid))
        elif live[iid]["domain"] != name:
            problems.append("instance %s: store says domain %s, libvirt %s"
                            % (iid, live[iid]["domain"], name))
    for iid in live:
        if iid not in doms:
            problems.append("live instance %s has no domain" % iid)
    for iid, names in vols.items():
        if iid in live:
            if len(names) != 2:
                problems.append("instance %s has volumes %s" % (iid, names))
        elif all_volumes:
            problems.append("volumes %s belong to no live instance" % names)
    if problems:
        raise Fail("store and libvirt disagree:\n  " + "\n  ".join(problems))
    return live


def mariadb_create(prefix):
    """A fresh database on the test server: (url, password file, drop())."""
    env = need_env(MARIADB_ENV, MARIADB_HINT)
    db = "%s_%d_%d" % (prefix, os.getpid(), int(time.time()) % 100000)
    with open(env["VA_TEST_MARIADB_PASSWORD_FILE"]) as f:
        pw = f.read().strip()

    def sql(stmt):
        r = subprocess.run(["mariadb", "--no-defaults", "-uva",
                            "--socket=" + env["VA_TEST_MARIADB_SOCKET"], "-e", stmt],
                           env=dict(os.environ, MYSQL_PWD=pw),
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise Fail("mariadb: %s: %s" % (stmt, r.stderr.strip()))

    sql("CREATE DATABASE %s" % db)
    url = env["VA_TEST_MARIADB_URL"].rsplit("/", 1)[0] + "/" + db
    return url, env["VA_TEST_MARIADB_PASSWORD_FILE"], lambda: sql("DROP DATABASE IF EXISTS %s" % db)


def tiny_config(path, *, port, state, uri, pool, group, base, kernel, initrd,
                state_password=None, interval="1s", min_size=1, max_size=4,
                group_extra="", daemon_extra="", user_data=None,
                public_url=None, log_level="info", name_prefix="t"):
    # name_prefix: short, because the session libvirtd of the second test
    # host puts the domain name into a UNIX socket path (guest agent
    # channel) that may not exceed 107 bytes
    """Write a configuration with one host and one group of tiny guests."""
    work = os.path.dirname(path)
    ud = ""
    if user_data is not None:
        with open(os.path.join(work, "user-data"), "w") as f:
            f.write(user_data)
        ud = "    cloud_init:\n      user_data: user-data\n"
    text = """version: 1
daemon:
  interval: %(interval)s
  listen: 127.0.0.1:%(port)d
  public_url: %(public_url)s
  state: %(state)s
%(state_password)s  admin_token: { file: admin.token }
  log_level: %(log_level)s
%(daemon_extra)shosts:
  - name: local
    uri: %(uri)s
    pool: %(pool)s
    user_net: true
    domain_type: qemu
    # the test host is shared with other tests' domains: let placement
    # limits not get in the way of what this test is about
    cpu_overcommit: 64
    memory_overcommit: 16
    reserved_memory: 0
groups:
  %(group)s:
    min: %(min)d
    max: %(max)d
    template:
      name_prefix: %(name_prefix)s
      vcpus: 1
      memory: 128MiB
      image: %(base)s
      disk: 64MiB
      kernel: %(kernel)s
      initrd: %(initrd)s
      cmdline: "console=ttyS0 panic=-1"
%(ud)s%(group_extra)s""" % dict(
        interval=interval, port=port, state=state, uri=uri, pool=pool,
        group=group, base=base, kernel=kernel, initrd=initrd, min=min_size,
        max=max_size, ud=ud, group_extra=group_extra, daemon_extra=daemon_extra,
        public_url=public_url or "http://10.0.2.2:%d" % port, log_level=log_level,
        name_prefix=name_prefix,
        state_password=("  state_password: { file: %s }\n" % state_password
                        if state_password else ""))
    with open(path, "w") as f:
        f.write(text)


def check_config(binary, cfg):
    r = subprocess.run([binary, "-c", cfg, "check"], capture_output=True, text=True)
    if r.returncode != 0:
        raise Fail("config rejected:\n" + r.stderr)


def splice(c, u, gate=None):
    """Pass bytes both ways between sockets c and u until either side ends,
    then close both. gate, if given, is called before each chunk is passed
    on (it may block); when it returns False the connection is dropped."""
    def pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data or (gate is not None and not gate()):
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for x in (a, b):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
    pipe(c, u)
    c.close()
    u.close()


class Forwarder:
    """A TCP forwarder on 127.0.0.1: each connection goes to the first of
    the target ports that accepts it. In front of two HA daemons it plays
    the load balancer (or moving address) that users put in daemon.public_url:
    only the leader listens, so connections find it."""

    def __init__(self, port, targets):
        self.targets = targets
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        for port in self.targets:
            try:
                u = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                continue
        else:
            c.close()
            return
        u.settimeout(None)
        splice(c, u)

    def close(self):
        self.sock.close()


class LibvirtRelay:
    """A UNIX socket relaying to libvirtd's, which reads the client's RPC
    messages (libvirt's remote protocol: a 4-byte length, then program,
    version, procedure...). Everything through it is real libvirt; the
    test can
      - hold a call: hold(procs, seconds, times) delays the next `times`
        messages whose procedure is in procs (REMOTE_PROC_* numbers, e.g.
        11 for virDomainDefineXML), and what follows them on that
        connection, by `seconds` (a libvirt step that takes that long);
      - refuse a call: refuse(procs, message, times) answers the next
        `times` calls whose procedure is in procs with a libvirt error
        (VIR_ERR_OPERATION_INVALID from the QEMU driver, `message`)
        instead of passing them on: what a host says when it cannot do it
        (e.g. 182, virDomainManagedSave, for a domain that blocks it);
      - take the host away: down() closes every connection through it and
        closes new ones at once (a host that refuses connections), up()
        lets them through again.
    uri is the relayed one (qemu+unix:///session?socket=PATH)."""

    REMOTE_PROGRAM = 0x20008086

    def __init__(self, path, target_uri):
        m = re.match(r"^(\w+)(?:\+unix)?://(/\w*)\?socket=([^&]+)$", target_uri)
        if not m:
            raise Fail("cannot relay %s: not a local libvirtd socket URI" % target_uri)
        self.uri = "%s+unix://%s?socket=%s" % (m.group(1), m.group(2), path)
        self.target = m.group(3)
        self.is_down = False
        self.holds = []        # [procs, seconds, times left]
        self.held = []         # (procedure, seconds) of each message held
        self.refusals = []     # [procs, message, times left]
        self.refused = []      # procedure of each call refused
        self.conns = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        os.chmod(path, 0o777)
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self, procs, seconds, times=1):
        with self.lock:
            self.holds.append([set(procs), seconds, times])

    def refuse(self, procs, message, times=1):
        with self.lock:
            self.refusals.append([set(procs), message, times])

    def _refusal(self, proc):
        with self.lock:
            for r in self.refusals:
                if proc in r[0] and r[2] > 0:
                    r[2] -= 1
                    self.refused.append(proc)
                    return r[1]
        return None

    @staticmethod
    def _error_reply(call, message):
        """A REPLY with status ERROR to the call `call` (its header: prog,
        vers, proc, type, serial, status after the length): a
        remote_error (remote_protocol.x) with the code, the domain, the
        message and no object."""
        def u32(v):
            return int(v).to_bytes(4, "big")
        text = message.encode()
        body = (u32(55) + u32(10) +                     # code, domain
                u32(1) + u32(len(text)) + text + b"\0" * (-len(text) % 4) +
                u32(2) +                                # level: error
                u32(0) + u32(0) + u32(0) + u32(0) +     # dom, str1-3: none
                u32(0) + u32(0) + u32(0))               # int1, int2, net
        head = call[4:16] + u32(1) + call[20:24] + u32(1)
        return u32(4 + len(head) + len(body)) + head + body

    def down(self):
        self.is_down = True
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def up(self):
        self.is_down = False

    def close(self):
        self.down()
        self.sock.close()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self.is_down:
                c.close()
                continue
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _delay(self, proc):
        with self.lock:
            for h in self.holds:
                if proc in h[0] and h[2] > 0:
                    h[2] -= 1
                    self.held.append((proc, h[1]))
                    return h[1]
        return 0

    def _serve(self, c):
        u = socket.socket(socket.AF_UNIX)
        try:
            u.connect(self.target)
        except OSError:
            c.close()
            return
        with self.lock:
            self.conns += [c, u]
        wlock = threading.Lock()   # both directions write to c

        def recv_exact(n):
            buf = b""
            while len(buf) < n:
                data = c.recv(n - len(buf))
                if not data:
                    raise EOFError
                buf += data
            return buf

        def upstream():
            # the client's messages, one at a time
            try:
                while True:
                    head = recv_exact(4)
                    length = int.from_bytes(head, "big")
                    if length < 4 or length > 64 << 20:
                        raise EOFError
                    msg = head + recv_exact(length - 4)
                    if len(msg) >= 24 and int.from_bytes(msg[4:8], "big") == self.REMOTE_PROGRAM:
                        proc = int.from_bytes(msg[12:16], "big")
                        delay = self._delay(proc)
                        if delay:
                            time.sleep(delay)
                        refusal = self._refusal(proc)
                        if refusal is not None:
                            with wlock:
                                c.sendall(self._error_reply(msg, refusal))
                            continue
                    u.sendall(msg)
            except (OSError, EOFError):
                pass
            finally:
                for x in (c, u):
                    try:
                        x.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        def recv_up(n):
            buf = b""
            while len(buf) < n:
                data = u.recv(n - len(buf))
                if not data:
                    raise EOFError
                buf += data
            return buf

        threading.Thread(target=upstream, daemon=True).start()
        try:
            # libvirtd's messages, whole: a refusal goes between two
            while True:
                head = recv_up(4)
                length = int.from_bytes(head, "big")
                if length < 4 or length > 64 << 20:
                    break
                msg = head + recv_up(length - 4)
                with wlock:
                    c.sendall(msg)
        except (OSError, EOFError):
            pass
        finally:
            for x in (c, u):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            c.close()
            u.close()


def start_prometheus(work, scrape_configs, timeout=30):
    """A Prometheus server of the test's own (Debian's prometheus) on a free
    loopback port, scraping every second: `scrape_configs` is the YAML of
    the scrape_configs: list, indented by two spaces. Returns (process,
    base URL) once /-/ready answers; stop it with proc.terminate()."""
    pport = free_port()
    cfg = os.path.join(work, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n" + scrape_configs)
    logf = open(os.path.join(work, "prometheus.log"), "a")
    p = subprocess.Popen(["prometheus", "--config.file=" + cfg,
                          "--storage.tsdb.path=" + os.path.join(work, "prom"),
                          "--web.listen-address=127.0.0.1:%d" % pport,
                          "--log.level=warn"],
                         stdout=logf, stderr=logf)
    base = "http://127.0.0.1:%d" % pport
    t0 = time.time()
    while time.time() - t0 < timeout:
        if p.poll() is not None:
            raise Fail("prometheus exited (%s): see %s" % (p.returncode, logf.name))
        try:
            with urllib.request.urlopen(base + "/-/ready", timeout=2) as r:
                if r.status == 200:
                    return p, base
        except OSError:
            pass
        time.sleep(0.2)
    p.kill()
    raise Fail("Prometheus not ready within %d s: see %s" % (timeout, logf.name))
