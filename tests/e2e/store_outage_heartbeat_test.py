#!/usr/bin/env python3
"""Heartbeats of ready instances while the state store is unreachable
(issue 11: the heartbeat fast path, authenticate_ready() in api.c).

The daemon runs on libvirt's test driver (a node file with two running
domains carrying our metadata: adopted as ready instances; the test then
writes a secret's hash for each into the store, as provisioning does) and
MariaDB: a database of its own on the test server
(scripts/services/mariadb.sh), reached through a TCP relay of the test.
The store "goes away" when the relay cuts every connection and refuses
new ones (the server itself, which other tests share, is left alone), and
comes back when the relay passes connections again.

While the store is unreachable:
  - heartbeats of the two ready instances are answered 200, each within
    1 s: the daemon checks their secrets against the ready table of its
    snapshot, not the store;
  - a check-in (it reads the instance from the store) is answered 503
    "state store unavailable", within 10 s;
  - the loop's flush of the heartbeats into the store fails (the test
    waits for that log line, so that it did happen during the outage).
When the store is back, the heartbeats' times reach it: each instance's
heartbeat_ms in the store is at least the time the test sent its
heartbeats during the outage (the guests send nothing after it), and a
check-in is answered 200 again.

Before the fix it failed on the last point: a flush that failed dropped
its batch (daemon_flush_heartbeats in api.c), so a heartbeat that arrived
during an outage was lost, and the health check later judged the
instance by an older time (heartbeat_timeout: replaced although alive).

Suite 'integration', 'testdriver' (needs MariaDB; exits 77 without it);
about 20 s.

usage: store_outage_heartbeat_test.py VIRT_AUTOSCALER
"""
import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "web"
SIZE = 2
MARIADB_PORT = 3307


class StoreLink:
    """A TCP relay to the MariaDB server; cut() closes every connection
    through it and refuses new ones (accepted, then closed at once) until
    mend()."""

    def __init__(self, target_port):
        self.target = target_port
        self.is_cut = False
        self.conns = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self.is_cut:
                c.close()
                continue
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError:
            c.close()
            return
        u.settimeout(None)
        with self.lock:
            self.conns += [c, u]
        harness.splice(c, u)

    def cut(self):
        self.is_cut = True
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.conns = []

    def mend(self):
        self.is_cut = False

    def close(self):
        self.sock.close()


def mysql(env, db, stmt):
    with open(env["VA_TEST_MARIADB_PASSWORD_FILE"]) as f:
        pw = f.read().strip()
    r = subprocess.run(["mariadb", "--no-defaults", "-uva", "-N", "-B",
                        "--socket=" + env["VA_TEST_MARIADB_SOCKET"], db, "-e", stmt],
                       env=dict(os.environ, MYSQL_PWD=pw), capture_output=True, text=True)
    if r.returncode != 0:
        raise Fail("mariadb: %s: %s" % (stmt, r.stderr.strip()))
    return r.stdout


def config(path, port, url, pwfile, node):
    with open(path, "w") as f:
        f.write("""version: 1
daemon:
  interval: 1s
  listen: 127.0.0.1:%d
  state: %s
  state_password: { file: %s }
  admin_token: { file: admin.token }
hosts:
  - { name: test, uri: "test://%s", pool: default-pool }
groups:
  %s:
    min: %d
    max: %d
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
    scale_in: { drain: 0s }
""" % (port, url, pwfile, node, GROUP, SIZE, SIZE))


def post(port, path, body, timeout=15):
    """(status or None, body, seconds)"""
    import http.client
    t0 = time.time()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("POST", path, body=body)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace"), time.time() - t0
    except (OSError, http.client.HTTPException) as e:
        return None, str(e), time.time() - t0
    finally:
        c.close()


def wait_log(daemon, pattern, since, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        with open(daemon.logpath) as f:
            if re.search(pattern, f.read()[since:]):
                return time.time() - t0
        time.sleep(0.2)
    raise Fail("no log line matching %r within %d s" % (pattern, timeout))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    env = harness.need_env(harness.MARIADB_ENV, harness.MARIADB_HINT)
    work = harness.workdir("va-hb-outage-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    port = harness.free_port()
    ids = [str(uuid.uuid4()) for _ in range(SIZE)]
    sec = {i: secrets.token_urlsafe(32) for i in ids}
    harness.test_node_xml(node, GROUP, ids)
    url, pwfile, drop = harness.mariadb_create("va_test_hbout")
    db = url.rsplit("/", 1)[1]
    link = StoreLink(MARIADB_PORT)
    config(cfg, port, url.replace(":%d/" % MARIADB_PORT, ":%d/" % link.port), pwfile, node)
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    problems = []
    ok = False
    try:
        d.start()
        api.wait_up(30, d)
        harness.wait_for("the adopted group whole", lambda g: g["current"] == SIZE and
                         g["ready"] == SIZE, 30, api, GROUP, period=0.2)
        for i in ids:
            mysql(env, db, "UPDATE instances SET secret_hash = '%s' WHERE id = '%s'"
                  % (hashlib.sha256(sec[i].encode()).hexdigest(), i))
        # the scaler lists the ready instances (and their hashes) each tick
        harness.wait_ticks(api, 3, 30, d)
        for i in ids:
            st = post(port, "/v1/heartbeat/%s/%s" % (i, sec[i]), '{"busy": false}')
            if st[0] != 200:
                raise Fail("instance %s: heartbeat before the outage: %s %s" % (i, st[0], st[1]))

        log("the store is unreachable")
        with open(d.logpath) as f:
            log_at = len(f.read())
        link.cut()
        sent_ms = int(time.time() * 1000)
        for i in ids:
            st, body, took = post(port, "/v1/heartbeat/%s/%s" % (i, sec[i]), '{"busy": false}')
            log("heartbeat of %s: %s after %.2f s" % (i, st, took))
            if st != 200 or took > 1:
                problems.append("heartbeat of ready instance %s while the store is "
                                "unreachable: %s %s after %.1f s, want 200 within 1 s"
                                % (i, st, body.strip(), took))
        st, body, took = post(port, "/v1/checkin/%s/%s" % (ids[0], sec[ids[0]]),
                              "instance_id=%s&hostname=h" % ids[0])
        log("check-in while the store is unreachable: %s %s after %.1f s"
            % (st, body.strip(), took))
        if st != 503 or "state store unavailable" not in body or took > 10:
            problems.append("check-in while the store is unreachable: %s %s after %.1f s, "
                            "want 503 'state store unavailable' within 10 s"
                            % (st, body.strip(), took))
        wait_log(d, r"cannot record \d+ heartbeats", log_at, 20)
        log("the loop's flush failed during the outage")

        link.mend()
        log("the store is back")
        t0 = time.time()
        times = {}
        while time.time() - t0 < 20:
            try:
                times = dict(line.split("\t") for line in mysql(
                    env, db, "SELECT id, heartbeat_ms FROM instances WHERE id IN ('%s')"
                    % "','".join(ids)).split("\n") if line)
            except Fail:
                pass
            if len(times) == SIZE and all(int(v) >= sent_ms for v in times.values()):
                break
            time.sleep(0.5)
        for i in ids:
            got = int(times.get(i, 0))
            if got < sent_ms:
                problems.append("instance %s: heartbeat_ms in the store is %d, %.1f s before "
                                "the heartbeat sent during the outage (%d)"
                                % (i, got, (sent_ms - got) / 1000, sent_ms))
        st, body, _ = post(port, "/v1/checkin/%s/%s" % (ids[0], sec[ids[0]]),
                           "instance_id=%s&hostname=h" % ids[0])
        if st != 200:
            problems.append("check-in with the store back: %s %s" % (st, body.strip()))
        if problems:
            raise Fail("while the store was unreachable:\n  " + "\n  ".join(problems))
        ok = True
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        link.mend()
        if d.stop() not in (0, None):
            ok = False
            log("the daemon did not stop cleanly:\n" + d.tail())
        link.close()
        try:
            drop()
        except Fail as e:
            log("cleanup: %s" % e)
    if ok:
        shutil.rmtree(work, ignore_errors=True)
        log("PASS")
        return 0
    log("work directory kept: " + work)
    return 1


if __name__ == "__main__":
    sys.exit(main())
