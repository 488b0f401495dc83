#!/usr/bin/env python3
"""Load-balancer membership (issue 16): GET /v1/groups/NAME/targets, the
groups' targets files and their reload URL follow the ready instances.

The daemon runs on libvirt's test driver (no libvirtd, no guest) with
SQLite. The node file has a libvirt network "default" (10.9.0.0/24) and
four running domains of ours with an interface on it, adopted at start as
ready instances: the test driver answers virDomainInterfaceAddresses from
that network, so the addresses come from libvirt as on a real host.

  group web   3 instances, targets: haproxy format, port 8080, a file and
              a reload URL (a loopback HTTP server of the test that
              answers 500 to the first POST: the daemon must retry)
  group api   1 instance, targets: nginx format, port 80; its instance
              gets a static address in the store (10.20.0.5): the static
              one wins over what libvirt reports

Checked:
  A. /targets of web lists the 3 ready instances with libvirt's
     addresses (in 10.9.0.0/24, each the address GET /v1/instances and
     `status` show); api's lists 10.20.0.5; the files hold the same; the
     reload URL was called (after a 500, again);
  B. one instance made booting (SQL, as a guest that has not checked in)
     leaves /targets and the file; a scale-in of web to 1 leaves one;
  C. a reader loop reading the file all along never sees it half
     written: every read is a whole rendering (the header, a backend
     line, server lines that each end in "check");
  D. the rendered files are accepted by the real `haproxy -c` (a
     configuration whose frontend uses the backend the file defines, the
     file as a second -f) and `nginx -t` (an upstream block that
     includes the file), each time the membership changed;
  E. /targets needs the admin token (401 without).

Suite ['integration', 'testdriver'], about 20 s. Needs haproxy and nginx
(scripts/setup.sh installs haproxy and nginx-light).

usage: lb_targets_test.py VIRT_AUTOSCALER
"""
import http.server
import ipaddress
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

NET = ipaddress.ip_network("10.9.0.0/24")
STATIC = "10.20.0.5"


def node_xml(path, doms):
    """doms: (group, id) pairs; each a running domain with our metadata
    and an interface on the network default."""
    body = "".join("""  <domain type='test'>
    <name>va-%(g)s-%(n)d</name>
    <uuid>%(id)s</uuid>
    <memory>131072</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
    <devices>
      <interface type='network'>
        <source network='default'/>
        <mac address='52:54:00:00:%(n)02x:01'/>
      </interface>
    </devices>
    <metadata>
      <va:instance xmlns:va="%(ns)s" group="%(g)s" id="%(id)s" generation="1"/>
    </metadata>
  </domain>
""" % {"g": g, "n": n, "id": iid, "ns": harness.NS} for n, (g, iid) in enumerate(doms))
    with open(path, "w") as f:
        f.write("""<node>
  <network>
    <name>default</name>
    <bridge name='virbr9'/>
    <forward/>
    <ip address='10.9.0.1' netmask='255.255.255.0'>
      <dhcp><range start='10.9.0.2' end='10.9.0.254'/></dhcp>
    </ip>
  </network>
%s  <pool type='dir'>
    <name>default-pool</name>
    <uuid>%s</uuid>
    <capacity>107374182400</capacity>
    <allocation>0</allocation>
    <available>107374182400</available>
    <target><path>/default-pool</path></target>
  </pool>
</node>
""" % (body, uuid.uuid4()))


def config(path, port, state, node, work, hook):
    harness.testdriver_config(path, port, state, node, """  web:
    min: 0
    max: 3
    desired: 3
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
    scale_in: { drain: 0s }
    targets:
      port: 8080
      file: %(work)s/web.haproxy
      format: haproxy
      reload_url: %(hook)s
  api:
    min: 0
    max: 1
    desired: 1
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
    targets: { port: 80, file: "%(work)s/api.nginx", format: nginx }
""" % {"work": work, "hook": hook})


class Hook:
    """A loopback HTTP server counting POSTs; the first is answered 500."""

    def __init__(self):
        hook = self
        self.posts = []  # times

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                hook.posts.append(time.time())
                self.send_response(500 if len(hook.posts) == 1 else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/reload" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()


HAPROXY_LINE = re.compile(r"^    server [0-9a-f-]{36} (\d+\.\d+\.\d+\.\d+):8080 check$")


class Reader:
    """Reads the file in a loop; every read must be a whole rendering."""

    def __init__(self, path):
        self.path = path
        self.reads = 0
        self.bad = []
        self.counts = set()
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            try:
                with open(self.path) as f:
                    text = f.read()
            except FileNotFoundError:
                time.sleep(0.001)
                continue
            self.reads += 1
            lines = text.split("\n")
            ok = (text.endswith("\n") and lines[0].startswith("# virt-autoscaler:")
                  and lines[1] == "backend web"
                  and all(HAPROXY_LINE.match(x) for x in lines[2:-1]))
            if not ok and len(self.bad) < 5:
                self.bad.append(text)
            self.counts.add(len(lines) - 3)
            time.sleep(0.0002)  # a busy reader, not a spinning one


def targets(api, group):
    return api.call("GET", "/v1/groups/%s/targets" % group)


def check_haproxy(work, path):
    cfg = os.path.join(work, "haproxy.cfg")
    with open(cfg, "w") as f:
        f.write("""global
    maxconn 100
defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
frontend fe
    bind 127.0.0.1:%d
    default_backend web
""" % harness.free_port())
    r = subprocess.run(["haproxy", "-c", "-f", cfg, "-f", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise Fail("haproxy -c refused %s:\n%s\n%s" % (path, open(path).read(),
                                                       r.stdout + r.stderr))


def check_nginx(work, path):
    cfg = os.path.join(work, "nginx.conf")
    with open(cfg, "w") as f:
        f.write("""pid %(w)s/nginx.pid;
error_log %(w)s/nginx-error.log;
events {}
http {
    access_log off;
    client_body_temp_path %(w)s; proxy_temp_path %(w)s;
    fastcgi_temp_path %(w)s; uwsgi_temp_path %(w)s; scgi_temp_path %(w)s;
    upstream api {
        include %(p)s;
    }
    server {
        listen 127.0.0.1:%(port)d;
        location / { proxy_pass http://api; }
    }
}
""" % {"w": work, "p": path, "port": harness.free_port()})
    r = subprocess.run(["nginx", "-t", "-c", cfg, "-p", work], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise Fail("nginx -t refused %s:\n%s\n%s" % (path, open(path).read(),
                                                     r.stdout + r.stderr))


def wait(what, pred, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if pred():
                log("%s (%.1f s)" % (what, time.time() - t0))
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise Fail("timed out waiting for: %s" % what)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    for tool in ("haproxy", "nginx"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            raise Fail("%s is not installed (scripts/setup.sh)" % tool)
    os.environ["PATH"] += ":/usr/sbin"
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-lb-")
    token = harness.write_token(work)
    state = os.path.join(work, "state.db")
    cfg = os.path.join(work, "autoscale.yaml")
    node = os.path.join(work, "node.xml")
    web = [str(uuid.uuid4()) for _ in range(3)]
    api_id = str(uuid.uuid4())
    node_xml(node, [("web", i) for i in web] + [("api", api_id)])
    hook = Hook()
    port = harness.free_port()
    config(cfg, port, state, node, work, hook.url)
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    web_file = os.path.join(work, "web.haproxy")
    api_file = os.path.join(work, "api.nginx")
    reader = Reader(web_file)
    ok = False
    try:
        d.start()
        api.wait_up(30, d)

        # A. three members with libvirt's addresses
        wait("3 web targets", lambda: len(targets(api, "web")["targets"]) == 3)
        t = targets(api, "web")
        if t["port"] != 8080 or t["pending"] != 0 or \
                sorted(x["id"] for x in t["targets"]) != sorted(web):
            raise Fail("web targets: %s" % t)
        addrs = {x["id"]: x["address"] for x in t["targets"]}
        for a in addrs.values():
            if ipaddress.ip_address(a) not in NET:
                raise Fail("address %s is not on the test network %s" % (a, NET))
        if len(set(addrs.values())) != 3:
            raise Fail("the instances share addresses: %s" % addrs)
        for inst in api.instances("web"):
            if inst["address"] != addrs[inst["id"]]:
                raise Fail("GET /v1/instances says %s for %s, /targets %s"
                           % (inst["address"], inst["id"], addrs[inst["id"]]))
        status = subprocess.run([binary, "-c", cfg, "status"], capture_output=True,
                                text=True, cwd=work)
        if "ADDRESS" not in status.stdout or any(
                not re.search(r"%s +web +test +ready +- +%s " % (i, re.escape(a)),
                              status.stdout) for i, a in addrs.items()):
            raise Fail("status does not show the addresses:\n%s%s"
                       % (status.stdout, status.stderr))
        log("A: /targets, /v1/instances and status show libvirt's addresses: %s"
            % sorted(addrs.values()))
        wait("the haproxy file with 3 servers",
             lambda: sorted(re.findall(r"(\d+\.\d+\.\d+\.\d+):8080", open(web_file).read()))
             == sorted(addrs.values()))
        check_haproxy(work, web_file)
        # api: the static address wins
        with sqlite3.connect(state, timeout=30) as db:
            db.execute("UPDATE instances SET address = ? WHERE id = ?", (STATIC, api_id))
        wait("api's target is its static address",
             lambda: targets(api, "api")["targets"] == [{"id": api_id, "address": STATIC}])
        wait("the nginx file", lambda: open(api_file).read().endswith(
            "\nserver %s:80;\n" % STATIC))
        check_nginx(work, api_file)
        wait("the reload URL called twice (a 500, then a retry)",
             lambda: len(hook.posts) >= 2)
        log("A: haproxy -c and nginx -t accept the files; reload URL POSTs: %d"
            % len(hook.posts))

        # B. a booting instance is not a member; a scale-in removes members
        posts = len(hook.posts)
        with sqlite3.connect(state, timeout=30) as db:
            db.execute("UPDATE instances SET state = 'booting' WHERE id = ?", (web[0],))
        wait("web[0] out of /targets", lambda: sorted(
            x["id"] for x in targets(api, "web")["targets"]) == sorted(web[1:]))
        wait("web[0] out of the file", lambda: addrs[web[0]] + ":" not in open(web_file).read())
        wait("the reload URL called for the change", lambda: len(hook.posts) > posts)
        check_haproxy(work, web_file)
        with sqlite3.connect(state, timeout=30) as db:
            db.execute("UPDATE instances SET state = 'ready' WHERE id = ?", (web[0],))
        wait("web[0] back", lambda: len(targets(api, "web")["targets"]) == 3)
        api.set_desired("web", 1)
        wait("one web target after the scale-in",
             lambda: len(targets(api, "web")["targets"]) == 1)
        wait("one server in the file",
             lambda: len(re.findall(r"^    server ", open(web_file).read(), re.M)) == 1)
        check_haproxy(work, web_file)
        api.set_desired("web", 0)
        wait("no web target", lambda: targets(api, "web")["targets"] == [])
        wait("no server in the file", lambda: "server" not in open(web_file).read())
        check_haproxy(work, web_file)  # an empty backend is valid
        log("B: booting and removed instances left the targets and the file")

        # C. never half written
        time.sleep(0.5)
        reader.stop = True
        reader.t.join(5)
        if reader.bad:
            raise Fail("the reader saw the file half written:\n%r" % reader.bad[0])
        if not {0, 1, 2, 3} <= reader.counts:
            raise Fail("the reader did not see every membership: %s" % reader.counts)
        log("C: %d reads of the file, each a whole rendering (server counts %s)"
            % (reader.reads, sorted(reader.counts)))
        if [n for n in os.listdir(work) if ".tmp." in n]:
            raise Fail("temporary files left: %s" % os.listdir(work))

        # E. the admin token
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/v1/groups/web/targets" % port,
                                   timeout=5)
            raise Fail("/targets answered without a token")
        except urllib.error.HTTPError as e:
            if e.code != 401:
                raise Fail("/targets without a token: %d" % e.code)
        st, _ = api.try_call("GET", "/v1/groups/nope/targets")
        if st != 404:
            raise Fail("/targets of an unknown group: %s" % st)
        log("E: /targets needs the admin token; unknown group 404")
        ok = True
    finally:
        reader.stop = True
        d.stop()
        hook.close()
        if not ok:
            print(d.tail(80), file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    log("PASS")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as e:
        log("FAIL: %s" % e)
        sys.exit(1)
