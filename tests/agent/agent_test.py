#!/usr/bin/env python3
"""The guest agent and the vendor-data script that installs it, run on this
machine (no guest): the real vendor-data of src/seed.c (printed by
seed_vendor_data), split into its MIME parts by Python's email module as
cloud-init does, and its script run as cloud-init would, with every path
under a scratch root (VA_AGENT_ROOT).

A. Without systemd (VA_AGENT_INIT=none): the installer writes the agent,
   its configuration (mode 0600, the only file holding the secret besides
   the seed) and a cloud-init per-boot script, makes cloud-init's log (it
   logs the phone_home URL) unreadable for others, and starts the agent. The
   agent must then heartbeat to the URL of the seed: `{}` without a status
   file; busy and metrics from the status file; only the valid part of a
   status file with bad metrics; liveness only (`{}`) for a status file that
   is not JSON; `{}` again right after the daemon answered 400 to a body; on
   after the daemon was unreachable; no retry for a minute after a 401. The secret must not be in the agent's
   command line or in any world-readable file; a second start (the
   per-boot script again) must exit because the first holds the lock.
B. With systemd (a fake systemctl that records its calls): the unit written
   must pass `systemd-analyze verify`, be enabled and started without
   blocking, and its exposure (`systemd-analyze security --offline=yes`) is
   printed.
C. With cloud_init.agent: false the vendor-data is the cloud-config alone.
D. A resume (warm pool): with a 60 s interval, the agent sends a heartbeat
   within 3 s of the RTC (a file standing for it, VA_AGENT_RTC) jumping
   ahead of the system clock, as it does after a managed save or a pause.

usage: agent_test.py SEED_VENDOR_DATA_BINARY
"""
import email
import http.server
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

SECRET = "s3cr3t-" + os.urandom(8).hex()
IID = "web-0001"


class Fail(Exception):
    pass


class Listener(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.beats = []      # (path, body as parsed JSON)
        self.status = 200
        self.reject_metrics = False

    def bodies_since(self, n):
        with self.lock:
            return [b for _, b in self.beats[n:]]


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        srv = self.server
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"unparsable": raw.decode("latin-1")}
        with srv.lock:
            srv.beats.append((self.path, body))
            status = srv.status
            if srv.reject_metrics and "metrics" in body:
                status = 400
        if self.headers.get("Content-Type") != "application/json":
            status = 415
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"state":"ready"}\n')


def wait_body(srv, pred, what, timeout=15, since=0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        for b in srv.bodies_since(since):
            if pred(b):
                return b
        time.sleep(0.2)
    raise Fail("no heartbeat %s within %d s; got %s" %
               (what, timeout, srv.bodies_since(since)[-5:]))


def parts(vendor):
    msg = email.message_from_string(vendor)
    if not msg.is_multipart():
        raise Fail("vendor-data is not a MIME multipart document")
    out = {}
    for p in msg.walk():
        if p.get_content_maintype() == "multipart":
            continue
        out[p.get_content_type()] = p.get_payload(decode=True).decode("ascii")
    return out


def agent_pids(root):
    prog = os.path.join(root, "usr/local/lib/virt-autoscaler/virt-autoscaler-agent")
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.decode(errors="replace") == prog for a in args):
            pids.append(int(d))
    return pids


def world_readable_with_secret(root):
    found = []
    for dirpath, _, files in os.walk(root):
        for fn in files:
            p = os.path.join(dirpath, fn)
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o004:
                continue
            with open(p, "rb") as f:
                if SECRET.encode() in f.read():
                    found.append(p)
    return found


def case_no_systemd(binary, work, srv, port):
    vendor = subprocess.run(
        [binary, "http://127.0.0.1:%d/" % port, IID, SECRET, "1"],
        check=True, capture_output=True, text=True).stdout
    ps = parts(vendor)
    cc, script = ps.get("text/cloud-config"), ps.get("text/x-shellscript")
    if not cc or not cc.startswith("#cloud-config\n") or "phone_home:" not in cc:
        raise Fail("no cloud-config part with phone_home: %r" % (cc or "")[:200])
    if not script or not script.startswith("#!/bin/sh\n"):
        raise Fail("no shell script part")
    root = os.path.join(work, "root-a")
    os.makedirs(os.path.join(root, "var/log"))
    # cloud-init's log, world-readable as cloud-init 22.4 creates it: it
    # will hold the phone_home URL
    cilog = os.path.join(root, "var/log/cloud-init.log")
    with open(cilog, "w") as f:
        f.write("cloud-init log\n")
    os.chmod(cilog, 0o644)
    path = os.path.join(work, "part-001")
    with open(path, "w") as f:
        f.write(script)
    os.chmod(path, 0o700)       # as cloud-init writes vendor scripts
    env = dict(os.environ, VA_AGENT_ROOT=root, VA_AGENT_INIT="none")
    r = subprocess.run(["sh", path], env=env, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise Fail("installer failed (%d): %s" % (r.returncode, r.stderr))
    print("installer: " + r.stderr.strip())
    conf = os.path.join(root, "etc/virt-autoscaler/agent.conf")
    mode = stat.S_IMODE(os.stat(conf).st_mode)
    if mode != 0o600:
        raise Fail("agent.conf has mode %o, not 600" % mode)
    with open(conf) as f:
        c = json.load(f)
    want = "http://127.0.0.1:%d/v1/heartbeat/%s/%s" % (port, IID, SECRET)
    if c.get("heartbeat_url") != want or c.get("interval") != 1:
        raise Fail("agent.conf: %s" % c)
    if stat.S_IMODE(os.stat(cilog).st_mode) != 0o640:
        raise Fail("/var/log/cloud-init.log is still readable by others")
    perboot = os.path.join(root, "var/lib/cloud/scripts/per-boot/virt-autoscaler-agent")
    if not os.access(perboot, os.X_OK):
        raise Fail("no per-boot script")

    beats0 = 0
    b = wait_body(srv, lambda b: b == {}, "{} (no status file)")
    with srv.lock:
        paths = {p for p, _ in srv.beats}
    if paths != {"/v1/heartbeat/%s/%s" % (IID, SECRET)}:
        raise Fail("heartbeats went to %s" % paths)
    pids = agent_pids(root)
    if len(pids) != 1:
        raise Fail("%d agents run, not 1: %s" % (len(pids), pids))
    pid = pids[0]
    try:
        for p in pids:
            with open("/proc/%d/cmdline" % p, "rb") as f:
                if SECRET.encode() in f.read():
                    raise Fail("the secret is on the agent's command line")
        leaked = world_readable_with_secret(root)
        if leaked:
            raise Fail("world-readable files hold the secret: %s" % leaked)

        status = os.path.join(root, "run/virt-autoscaler/status.json")

        def put(text):
            with open(status + ".tmp", "w") as f:
                f.write(text)
            os.rename(status + ".tmp", status)
            with srv.lock:
                return len(srv.beats)

        n = put('{"busy": true, "metrics": {"queue": 3, "rps": 1.5}}')
        wait_body(srv, lambda b: b == {"busy": True,
                                       "metrics": {"queue": 3, "rps": 1.5}},
                  "with busy and metrics from the status file", since=n)
        n = put('{"busy": "yes", "metrics": {"ok_1": 2, "bad name": 1, '
                '"t": true, "s": "7"}}')
        wait_body(srv, lambda b: b == {"metrics": {"ok_1": 2}},
                  "with only the valid part of the status", since=n)
        n = put('{"busy": true, "metr')
        wait_body(srv, lambda b: b == {}, "{} for a broken status file",
                  since=n)
        # the daemon refuses the metrics: the agent still says it is alive
        n = put('{"busy": false, "metrics": {"queue": 1}}')
        srv.reject_metrics = True
        wait_body(srv, lambda b: b == {"busy": False, "metrics": {"queue": 1}},
                  "with the metrics (answered 400)", since=n)
        with srv.lock:
            n2 = len(srv.beats)
        wait_body(srv, lambda b: b == {}, "{} right after the 400", since=n2 - 1,
                  timeout=3)
        srv.reject_metrics = False
        # an unreachable daemon, then back
        with srv.lock:
            srv.status = 503
        time.sleep(2.5)
        with srv.lock:
            srv.status = 200
            n = len(srv.beats)
        wait_body(srv, lambda b: b == {"busy": False, "metrics": {"queue": 1}},
                  "after the daemon was back", since=n, timeout=10)
        if not os.path.exists("/proc/%d" % pid):
            raise Fail("the agent died")
        # a second start exits: the first holds the lock
        subprocess.run([perboot], check=True, timeout=30)
        time.sleep(3)
        pids = agent_pids(root)
        if pids != [pid]:
            raise Fail("after a second start, agents %s (want only %d)"
                       % (pids, pid))
        # refused (401: unknown instance or wrong secret): the agent backs
        # off for a minute and more, not 5 s (failed secrets are counted per
        # client address, which guests behind NAT share)
        with srv.lock:
            srv.status = 401
            n = len(srv.beats)
        wait_body(srv, lambda b: True, "answered 401", since=n, timeout=5)
        with srv.lock:
            n = len(srv.beats)
        time.sleep(6)
        with srv.lock:
            if len(srv.beats) != n:
                raise Fail("after a 401 the agent tried again within 6 s")
            srv.status = 200
        log = os.path.join(root, "var/log/virt-autoscaler-agent.log")
        with open(log) as f:
            text = f.read()
        if SECRET in text:
            raise Fail("the agent logged the secret")
        for want in ("another agent runs", "not valid JSON",
                     "bad name", "503", "refused the status", "401"):
            if want not in text:
                raise Fail("the agent's log lacks %r:\n%s" % (want, text))
        print("A: %d heartbeats, log:\n%s" % (len(srv.beats), text))
    finally:
        for p in agent_pids(root):
            os.kill(p, signal.SIGTERM)


def case_systemd(binary, work, port):
    vendor = subprocess.run(
        [binary, "http://127.0.0.1:%d" % port, IID, SECRET, "20"],
        check=True, capture_output=True, text=True).stdout
    script = parts(vendor)["text/x-shellscript"]
    root = os.path.join(work, "root-b")
    os.makedirs(os.path.join(root, "run/systemd/system"))
    fake = os.path.join(work, "bin")
    os.makedirs(fake)
    calls = os.path.join(work, "systemctl.calls")
    with open(os.path.join(fake, "systemctl"), "w") as f:
        f.write('#!/bin/sh\necho "$*" >> %s\n' % calls)
    os.chmod(os.path.join(fake, "systemctl"), 0o755)
    env = dict(os.environ, VA_AGENT_ROOT=root,
               PATH=fake + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
    env.pop("VA_AGENT_INIT", None)
    r = subprocess.run(["sh", "-c", script], env=env, capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise Fail("installer (systemd) failed: %s" % r.stderr)
    with open(calls) as f:
        got = f.read().split("\n")
    want = ["daemon-reload", "enable virt-autoscaler-agent.service",
            "start --no-block virt-autoscaler-agent.service", ""]
    if got != want:
        raise Fail("systemctl calls %s, want %s" % (got, want))
    unit = os.path.join(root, "etc/systemd/system/virt-autoscaler-agent.service")
    with open(unit) as f:
        text = f.read()
    if SECRET in text or stat.S_IMODE(os.stat(unit).st_mode) & 0o002:
        raise Fail("the unit holds the secret or is world-writable")
    tmpf = os.path.join(root, "etc/tmpfiles.d/virt-autoscaler-agent.conf")
    with open(tmpf) as f:
        if f.read() != "d /run/virt-autoscaler 0755 root root -\n":
            raise Fail("tmpfiles.d entry")
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", unit],
                           capture_output=True, text=True)
        if r.returncode != 0 or r.stderr.strip():
            raise Fail("systemd-analyze verify: %s%s" % (r.stdout, r.stderr))
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                            "--no-pager", unit], capture_output=True, text=True)
        last = [ln for ln in r.stdout.splitlines() if "Overall exposure" in ln]
        print("B: guest unit %s" % (last[0].strip() if last else r.stderr))
    else:
        print("B: systemd-analyze not installed: unit not verified")
    leaked = world_readable_with_secret(root)
    if leaked:
        raise Fail("world-readable files hold the secret: %s" % leaked)


def case_no_agent(binary, port):
    vendor = subprocess.run(
        [binary, "http://127.0.0.1:%d" % port, IID, SECRET, "20", "no-agent"],
        check=True, capture_output=True, text=True).stdout
    if not vendor.startswith("#cloud-config\n") or "#!/bin/sh" in vendor:
        raise Fail("agent: false still installs the agent:\n" + vendor[:300])


def case_resume(work, srv):
    agent = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "..", "..", "agent", "virt-autoscaler-agent")
    conf = os.path.join(work, "resume.conf")
    rtc = os.path.join(work, "rtc")
    with open(conf, "w") as f:
        json.dump({"heartbeat_url": "http://127.0.0.1:%d/v1/instances/%s/"
                   "heartbeat" % (srv.server_address[1], IID),
                   "interval": 60,
                   "status_file": os.path.join(work, "none.json")}, f)
    os.chmod(conf, 0o600)
    with open(rtc, "w") as f:
        f.write("%d\n" % int(time.time()))
    with srv.lock:
        n = len(srv.beats)
    p = subprocess.Popen([sys.executable, agent, conf],
                         env=dict(os.environ, VA_AGENT_RTC=rtc),
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_body(srv, lambda b: True, "at the start", since=n, timeout=10)
        time.sleep(2)
        with srv.lock:
            n = len(srv.beats)
        # what a resume looks like from inside: the RTC a minute ahead
        with open(rtc, "w") as f:
            f.write("%d\n" % int(time.time() + 60))
        t0 = time.time()
        wait_body(srv, lambda b: True, "after the resume", since=n, timeout=3)
        print("agent: heartbeat %.1f s after the resume showed"
              % (time.time() - t0))
    finally:
        p.terminate()
        err = p.communicate(timeout=10)[1]
    if "resumed" not in err:
        raise Fail("the agent did not log the resume: %s" % err[-300:])


def main():
    binary = sys.argv[1]
    if not shutil.which("python3"):
        print("SKIP: python3 not on PATH")
        return 77
    work = tempfile.mkdtemp(prefix="va-agent-test-")
    srv = Listener()
    port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        case_no_systemd(binary, work, srv, port)
        case_systemd(binary, work, port)
        case_no_agent(binary, port)
        case_resume(work, srv)
    except Fail as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        srv.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
