#!/usr/bin/env python3
"""HA test: two daemons on one MariaDB, one lease.

Daemons A and B share a fresh database, the host and the group (tiny
guests, min 1, scaled to 2) and have `daemon.ha: { enabled: true, lease: 6s }` with their
own node_id and listen port.

Guests reach the daemons through one address (daemon.public_url), a
forwarder standing in for the load balancer users put in front of them:
only the leader listens, so check-ins find it.

1. A starts and leads; B starts and stays standby: it logs so, serves no
   HTTP, provisions nothing (every 'provision' event and every instance is
   A's: exactly the group's 2).
2. A dies by SIGKILL in the middle of an action: it runs with
   VA_TEST_CRASH_AT=remove_begin and is told to scale 2 -> 1. B takes over
   within 2 x lease + one tick (measured until B's API answers), finishes
   the removal A had begun (reconcile_startup after the takeover), holds
   the group at 1 without a leak or duplicate, and a `scale` to 3 through
   B's admin API is carried out.
3. Fencing: A comes back (standby). B is frozen with SIGSTOP for longer
   than the lease: A takes over. B, resumed, finds its lease gone and exits
   non-zero (so that a supervisor restarts it as the standby).
4. A clean stop (SIGTERM) releases the lease: the standby (B again)
   leads within a retry period.
4b. A leader whose loop blocks for longer than the lease keeps it: B runs
   with VA_TEST_STALL_MS (its loop sleeps 2.5 x lease once, after its first
   reconciliation, as a step waiting on a host that does not answer
   would) while A, restarted, is standby. The lease's own thread renews
   it meanwhile: the lease row keeps B's holder and epoch and its expiry
   moves on, A stays standby, B is still running and leading afterwards
   and a scale to 2 through B's API is carried out.
4c. A real half-dead host: the daemons reach libvirtd through a
   UNIX-socket relay of the test; paused, it still accepts connections
   but passes no byte, like a host that accepts the connection but does
   not answer. The relay stays paused: B's loop may block in a call to
   the host (its va_ticks_total in /metrics, rendered by the loop, stands
   still), but only until keepalive gives up (about 20 s); then B reports
   the host down ("connection ... lost") and its loop ticks again, all
   within HALF_DEAD_LIMIT_S of the pause, while the relay is still
   paused. The lease stays B's meanwhile, A stays standby. (Before the
   loop had a connection of its own, its call queued behind the
   collector's and was still blocked after 2 minutes.) Then the relay
   resumes, B reconnects and a scale to 1 is carried out. Then B stops
   cleanly and A takes over (and stops).
5. The solo rule: without HA, a second daemon on the same state exits
   non-zero naming the lease holder.
After each phase the store (admin API) and libvirt (virsh) must agree.

usage: ha_test.py VIRT_AUTOSCALER_BINARY [--keep]
Needs VA_TEST_LIBVIRT_URI, VA_TEST_POOL, VA_TEST_TINY_KERNEL,
VA_TEST_TINY_INITRD and VA_TEST_MARIADB_*; exits 77 without them.
"""
import os
import shutil
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Api, Daemon, Fail, Forwarder, GUEST_ENV, GUEST_HINT, MARIADB_ENV,  # noqa: E402
                     MARIADB_HINT, check_config, check_consistent, drop_pool,
                     free_port, log, make_pool, mariadb_create, need_env,
                     remove_group_domains, splice, test_host_uri, tiny_config, tiny_disk,
                     workdir, write_token)

LEASE_S = 6
TICK_S = 1
STALL_S = 2.5 * LEASE_S
# src/host_link.c: keepalive every 5 s, dead after 3 unanswered (5 x (3 + 1))
KEEPALIVE_BOUND_S = 20
# B's loop must run again, with the host down, within this of the pause:
# the keepalive bound, B's reconciliation period (5 s), a few ticks and a
# generous margin for a loaded machine (without the fix: minutes)
HALF_DEAD_LIMIT_S = KEEPALIVE_BOUND_S + 5 + 35


def port_open(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_consistent(api, uri, pool, group, desired, timeout):
    t0 = time.time()
    last = None
    while time.time() - t0 < timeout:
        try:
            return check_consistent(api, uri, pool, group, desired)
        except (Fail, OSError) as e:
            last = str(e)
        time.sleep(1)
    raise Fail("not steady after %d s: %s" % (timeout, last))


def this_run(daemon):
    """The log of the daemon's current run (after its last start line)."""
    with open(daemon.logpath) as f:
        text = f.read()
    return text[text.rfind("==== "):]


def wait_log(daemon, pattern, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        with open(daemon.logpath) as f:
            text = f.read()
        m = re.search(pattern, text[text.rfind("==== "):])
        if m:
            return m
        time.sleep(0.2)
    raise Fail("%s: no log line matching %r within %d s" % (daemon.logpath, pattern, timeout))


class HalfDeadHost:
    """A UNIX socket relaying to libvirtd's. Paused, it still accepts
    connections but passes no byte either way: a host that accepts the
    connection but does not answer. Connections open at the pause stay
    dead after resume(); those accepted meanwhile then carry on."""

    def __init__(self, path, target):
        self.target = target
        self.go = threading.Event()
        self.go.set()
        self.gen = 0
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c, self.gen), daemon=True).start()

    def _serve(self, c, gen):
        u = socket.socket(socket.AF_UNIX)
        try:
            u.connect(self.target)
        except OSError:
            c.close()
            return

        def gate():
            self.go.wait()
            return gen == self.gen

        splice(c, u, gate)

    def pause(self):
        self.go.clear()
        self.gen += 1

    def resume(self):
        self.go.set()

    def close(self):
        self.go.set()
        self.sock.close()


def relayed_uri(uri, path):
    """(URI through the relay at path, libvirtd's socket), or None for a
    URI that is not a local libvirtd."""
    m = re.match(r"^(\w+)(?:\+unix)?://(/\w*)\?socket=([^&]+)$", uri)
    if m:
        return "%s+unix://%s?socket=%s" % (m.group(1), m.group(2), path), m.group(3)
    if uri == "qemu:///system":
        return "qemu+unix:///system?socket=" + path, "/run/libvirt/libvirt-sock"
    return None


def ticks(api):
    """va_ticks_total from the daemon's /metrics (rendered by its loop)."""
    req = urllib.request.Request(api.base + "/metrics",
                                 headers={"Authorization": "Bearer " + api.token})
    with urllib.request.urlopen(req, timeout=5) as r:
        m = re.search(r"^va_ticks_total (\d+)", r.read().decode(), re.M)
    if not m:
        raise Fail("no va_ticks_total in /metrics")
    return int(m.group(1))


def lease_row(state, password_file):
    """(holder, epoch, expires_ms) of the 'leader' lease, read with the
    mariadb client (not through a daemon)."""
    db = state.rsplit("/", 1)[1]
    with open(password_file) as f:
        pw = f.read().strip()
    r = subprocess.run(["mariadb", "--no-defaults", "-uva", "-N", "-B",
                        "--socket=" + os.environ["VA_TEST_MARIADB_SOCKET"], db, "-e",
                        "SELECT holder, epoch, expires_ms FROM leases WHERE name = 'leader'"],
                       env=dict(os.environ, MYSQL_PWD=pw), capture_output=True, text=True)
    if r.returncode != 0:
        raise Fail("mariadb: reading the lease: %s" % r.stderr.strip())
    holder, epoch, expires = r.stdout.strip().split("\t")
    return holder, int(epoch), int(expires)


def takeover(standby, api, what):
    """Seconds from now until the standby's admin API answers."""
    t0 = time.time()
    limit = 2 * LEASE_S + TICK_S
    while time.time() - t0 < limit + 30:
        if api.up():
            break
        if not standby.running():
            raise Fail("%s: the standby exited (%s)" % (what, standby.proc.returncode))
        time.sleep(0.1)
    t = time.time() - t0
    log("%s: the standby leads and serves its API %.1f s later (limit %d s)" % (what, t, limit))
    if t > limit:
        raise Fail("%s: takeover took %.1f s, more than 2 x lease + one tick (%d s)"
                   % (what, t, limit))
    return t


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    keep = "--keep" in sys.argv
    env = need_env(GUEST_ENV, GUEST_HINT)
    need_env(MARIADB_ENV, MARIADB_HINT)
    uri = test_host_uri(env)
    work = workdir("ha-")
    tag = "%d" % (os.getpid() % 100000)
    group = "ha%s" % tag
    pool = "va-ha-%s" % tag
    pool_dir = os.path.join(work, "pool")
    state, password_file, drop_db = mariadb_create("va_test_ha")
    token = write_token(work)
    base = tiny_disk(work, "tiny-disk.qcow2")
    daemons, apis = {}, {}
    ports = {node: free_port() for node in ("a", "b", "solo1", "solo2")}
    # guests check in through one address that reaches whichever daemon leads
    public_port = free_port()
    fwd = Forwarder(public_port, [ports["a"], ports["b"]])
    # the daemons reach the host through a relay the test can pause
    hd, daemon_uri = None, uri
    relay = relayed_uri(uri, os.path.join(work, "libvirt-relay.sock"))
    if relay:
        daemon_uri = relay[0]
        hd = HalfDeadHost(os.path.join(work, "libvirt-relay.sock"), relay[1])
    else:
        log("%s cannot be relayed: the half-dead host phase is skipped" % uri)
    for node in ("a", "b", "solo1", "solo2"):
        port = ports[node]
        cfg = os.path.join(work, "%s.yaml" % node)
        ha = ("  ha: { enabled: true, lease: %ds, node_id: node-%s }\n" % (LEASE_S, node)
              if node in ("a", "b") else "")
        tiny_config(cfg, port=port, state=state, uri=daemon_uri, pool=pool, group=group,
                    base=base, kernel=env["VA_TEST_TINY_KERNEL"],
                    initrd=env["VA_TEST_TINY_INITRD"], state_password=password_file,
                    interval="%ds" % TICK_S, min_size=1, max_size=4, daemon_extra=ha,
                    public_url="http://10.0.2.2:%d" % public_port,
                    user_data="#cloud-config\n#tiny: heartbeat=5\n",
                    group_extra="    scale_in: { drain: 5s }\n")
        check_config(binary, cfg)
        daemons[node] = Daemon(binary, cfg, os.path.join(work, "%s.log" % node))
        apis[node] = Api("http://127.0.0.1:%d" % port, token)
        apis[node].port = port
    a, b = daemons["a"], daemons["b"]
    rc = 1
    t_start = time.time()
    try:
        make_pool(uri, pool, pool_dir)
        log("group %s, pool %s, database %s, work dir %s" % (group, pool, state, work))

        # 1. one leader, one standby
        a.start({"VA_TEST_CRASH_AT": "remove_begin"})
        apis["a"].wait_up(60, a)
        apis["a"].set_desired(group, 2)
        b.start()
        wait_log(b, r"standby: the lease is held", 30)
        wait_consistent(apis["a"], uri, pool, group, 2, 120)
        time.sleep(3 * TICK_S)  # the standby had time to do wrong
        if port_open(apis["b"].port):
            raise Fail("the standby serves HTTP")
        if not b.running():
            raise Fail("the standby exited (%s)" % b.proc.returncode)
        with open(b.logpath) as f:
            blog = f.read()
        for bad in ("provision:", "reconcile", "recovered", "listening on"):
            if bad in blog:
                raise Fail("the standby acted: its log has %r" % bad)
        prov = apis["a"].events(group, kind="provision")
        insts = apis["a"].instances(group)
        if len(prov) != 2 or len(insts) != 2:
            raise Fail("expected exactly 2 provisionings and 2 instances, saw %d and %d"
                       % (len(prov), len(insts)))
        log("A leads and provisioned the group's 2 instances; B is standby, silent")

        # 2. the leader dies in the middle of a removal; the standby takes
        # over, finishes it and carries on
        apis["a"].set_desired(group, 1)
        rca = a.wait_exit(60)
        if rca != -signal.SIGKILL:
            raise Fail("A should have died by SIGKILL at remove_begin; exit status %s" % rca)
        takeover(b, apis["b"], "A killed at remove_begin")
        wait_log(b, r"holding the lease as node-b:\d+ \(epoch (\d+)\)", 5)
        m = wait_log(b, r"recovered: (removal of \S+ was interrupted: finished)", 10)
        live = wait_consistent(apis["b"], uri, pool, group, 1, 60)
        log("B: %s; the group holds 1 instance" % m.group(1))
        # the survivor's guest now checks in with B
        t_lead = time.time()
        while True:
            survivor = list(live.values())[0]
            cur = [i for i in apis["b"].instances(group) if i["id"] == survivor["id"]][0]
            if cur["state"] == "ready" and cur["last_heartbeat"] / 1000.0 > t_lead:
                break
            if time.time() - t_lead > 90:
                raise Fail("the surviving guest does not reach B: %s" % cur)
            time.sleep(1)
        log("B: the surviving guest's heartbeats reach B (%.0f s after it led)"
            % (time.time() - t_lead))
        prov = apis["b"].events(group, kind="provision")
        if len(prov) != 2:
            raise Fail("after the takeover: %d provisionings, expected still 2 (a duplicate?)"
                       % len(prov))
        apis["b"].set_desired(group, 3)
        live = wait_consistent(apis["b"], uri, pool, group, 3, 120)
        log("B carries on: a scale to 3 through B worked (%s)"
            % ", ".join(sorted(i["state"] for i in live.values())))

        # 3. a frozen leader is deposed and fenced
        a.start()
        wait_log(a, r"standby: the lease is held", 30)
        b.proc.send_signal(signal.SIGSTOP)
        t_stop = time.time()
        try:
            takeover(a, apis["a"], "B frozen")
        finally:
            b.proc.send_signal(signal.SIGCONT)
        rcb = b.wait_exit(30)
        if rcb is None:
            raise Fail("B, resumed after losing its lease, still runs %.0f s later"
                       % (time.time() - t_stop))
        if rcb == 0 or rcb < 0:
            raise Fail("B, deposed, exited with %s; expected a non-zero exit status" % rcb)
        if "another daemon took over the lease" not in b.tail(30):
            raise Fail("B did not say why it stopped")
        wait_consistent(apis["a"], uri, pool, group, 3, 60)
        log("B, frozen past its lease, was deposed: it exited with %d on resuming" % rcb)

        # 4. a clean stop hands over at once: the lease is released; B
        # runs with the stall switch for 4b
        b.start({"VA_TEST_STALL_MS": "%d" % (STALL_S * 1000),
                 "VA_TEST_RECONCILE_MS": "5000"})
        wait_log(b, r"standby: the lease is held", 30)
        t0 = time.time()
        if a.stop() != 0:
            raise Fail("A did not stop cleanly")
        t_stop = time.time() - t0
        t = takeover(b, apis["b"], "A stopped by SIGTERM")
        if t > LEASE_S / 3 + TICK_S + 2:
            raise Fail("after a clean stop the standby took %.1f s: was the lease released?" % t)
        log("A stopped cleanly in %.1f s; B led %.1f s later" % (t_stop, t))

        # 4b. B's loop stalls past the lease; its lease thread keeps it
        a.start()
        wait_log(a, r"standby: the lease is held", 30)
        if "the loop stalls" in this_run(b):
            raise Fail("B stalled before A was standby: the stall proves nothing "
                       "(raise VA_TEST_RECONCILE_MS)")
        wait_consistent(apis["b"], uri, pool, group, 3, 60)
        wait_log(b, r"VA_TEST_STALL_MS=\d+: the loop stalls", 60)
        t_stall = time.time()
        holder, epoch, expires0 = lease_row(state, password_file)
        if not holder.startswith("node-b:"):
            raise Fail("B stalls but the lease is %s's" % holder)
        expires = [expires0]
        while time.time() - t_stall < STALL_S + 10:
            if re.search(r"the loop stalled \d+ ms", this_run(b)):
                break
            h, e, x = lease_row(state, password_file)
            if (h, e) != (holder, epoch):
                raise Fail("during B's stall the lease moved from %s epoch %d to %s epoch %d"
                           % (holder, epoch, h, e))
            expires.append(x)
            if not a.running() or not b.running():
                raise Fail("during B's stall a daemon exited: A %s, B %s"
                           % (a.proc.returncode, b.proc.returncode))
            time.sleep(1)
        m = wait_log(b, r"the loop stalled (\d+) ms; the lease was renewed (\d+) times "
                     r"meanwhile and is valid for another (-?\d+) ms", 5)
        stalled_ms, renewals = int(m.group(1)), int(m.group(2))
        if stalled_ms < 2 * LEASE_S * 1000:
            raise Fail("B's loop stalled only %d ms, not past the lease" % stalled_ms)
        if renewals < 1 or len(set(expires)) < 2:
            raise Fail("B's lease was not renewed during the stall (renewals %d, expiries %s)"
                       % (renewals, expires))
        time.sleep(2 * TICK_S)  # B's loop runs again; A had its chances
        if not b.running():
            raise Fail("B exited after its stall (%s)" % b.proc.returncode)
        if not a.running():
            raise Fail("the standby A exited during B's stall (%s)" % a.proc.returncode)
        if re.search(r"holding the lease as node-a", this_run(a)):
            raise Fail("A took the lease while B's loop stalled")
        h, e, x = lease_row(state, password_file)
        if (h, e) != (holder, epoch):
            raise Fail("after B's stall the lease is %s epoch %d, not %s epoch %d"
                       % (h, e, holder, epoch))
        apis["b"].set_desired(group, 2)
        wait_consistent(apis["b"], uri, pool, group, 2, 90)
        log("B's loop stalled %.1f s (lease %d s) and B still leads: its lease thread renewed "
            "%d times meanwhile, the lease's expiry moved %.1f s in the database (%d reads), "
            "epoch %d unchanged, A stayed standby; a scale to 2 through B worked"
            % (stalled_ms / 1000.0, LEASE_S, renewals, (max(expires) - expires0) / 1000.0,
               len(expires), epoch))
        final = 2

        # 4c. a half-dead host, left half-dead: B's loop blocks in a call
        # to it until keepalive gives up, then runs on with the host down
        if hd:
            last, t_last, gap = ticks(apis["b"]), time.time(), 0.0
            hd.pause()
            t_pause = time.time()
            expires = [lease_row(state, password_file)[2]]
            down = None
            try:
                while True:
                    now = time.time()
                    if now - t_pause > HALF_DEAD_LIMIT_S:
                        raise Fail("B's loop with its host half-dead: longest stand-still %.1f s, "
                                   "no tick for the last %.1f s, host %s, %.1f s after the pause "
                                   "(limit %d s: keepalive %d s + reconciliation period + margin)"
                                   % (gap, now - t_last, "down" if down else "still up",
                                      now - t_pause, HALF_DEAD_LIMIT_S, KEEPALIVE_BOUND_S))
                    n = ticks(apis["b"])
                    now = time.time()
                    gap = max(gap, now - t_last)
                    if n != last:
                        last, t_last = n, now
                        if down:
                            break  # the host is down and the loop ticks on
                    if not down and re.search(r"local: connection to \S+ lost; reconnecting",
                                              this_run(b)):
                        down = now
                    h, e, x = lease_row(state, password_file)
                    if (h, e) != (holder, epoch):
                        raise Fail("while B's host hung the lease moved from %s epoch %d to %s "
                                   "epoch %d" % (holder, epoch, h, e))
                    expires.append(x)
                    if not a.running() or not b.running():
                        raise Fail("while B's host hung a daemon exited: A %s, B %s"
                                   % (a.proc.returncode, b.proc.returncode))
                    time.sleep(0.5)
                t_resumed = time.time() - t_pause
            finally:
                hd.resume()
            if re.search(r"holding the lease as node-a", this_run(a)):
                raise Fail("A took the lease while B's loop was blocked by its host")
            log("half-dead host, left half-dead: B's loop stood still for at most %.1f s "
                "(keepalive bound %d s, lease %d s), found the host down %.1f s after the pause "
                "and ticked on %.1f s after it (limit %d s); the lease stayed B's (epoch %d, its "
                "expiry moved %.1f s meanwhile), A stayed standby"
                % (gap, KEEPALIVE_BOUND_S, LEASE_S, down - t_pause, t_resumed,
                   HALF_DEAD_LIMIT_S, epoch, (max(expires) - expires[0]) / 1000.0))
            apis["b"].set_desired(group, 1)
            wait_consistent(apis["b"], uri, pool, group, 1, 120)
            final = 1
            log("half-dead host back: B reconnected and a scale to 1 through B worked")
        if "the lease expired" in this_run(b):
            raise Fail("B's lease expired at some point:\n%s" % b.tail(30))

        if b.stop() != 0:
            raise Fail("B did not stop cleanly")
        takeover(a, apis["a"], "B stopped by SIGTERM")
        wait_consistent(apis["a"], uri, pool, group, final, 60)
        if a.stop() != 0:
            raise Fail("A did not stop cleanly")

        # 5. solo: a second daemon without HA refuses to start
        s1, s2 = daemons["solo1"], daemons["solo2"]
        s1.start()
        apis["solo1"].wait_up(60, s1)
        holder = wait_log(s1, r"holding the lease as (\S+) ", 5).group(1)
        s2.start()
        rc2 = s2.wait_exit(30)
        if rc2 is None or rc2 <= 0:
            raise Fail("a second daemon without HA on the same state: exit status %s, "
                       "expected non-zero" % rc2)
        msg = s2.tail(5)
        if holder not in msg or "in use by another daemon" not in msg:
            raise Fail("the refusal does not name the holder %s:\n%s" % (holder, msg))
        log("solo: a second daemon refused to start (exit %d): %s"
            % (rc2, msg.strip().splitlines()[-1][:200]))
        wait_consistent(apis["solo1"], uri, pool, group, final, 60)
        if s1.stop() != 0:
            raise Fail("the solo daemon did not stop cleanly")
        rc = 0
    except Fail as e:
        print("FAIL: %s" % e)
        for node, d in daemons.items():
            if d.proc:
                print("---- daemon %s log (last 40 lines) ----" % node)
                print(d.tail(40))
    finally:
        fwd.close()
        if hd:
            hd.close()
        for d in daemons.values():
            if d.proc and d.proc.poll() is None:
                d.proc.send_signal(signal.SIGCONT)
                d.kill9()
        if not keep:
            remove_group_domains(uri, group)
            drop_pool(uri, pool, pool_dir)
            drop_db()
            if rc == 0:
                shutil.rmtree(work, ignore_errors=True)
    print("HA test: %s in %.0f s" % ("passed" if rc == 0 else "FAILED", time.time() - t_start))
    return rc


if __name__ == "__main__":
    sys.exit(main())
