#!/usr/bin/env python3
"""The command-line client sends the admin token only to a daemon whose
TLS certificate verifies (issue 12, "the CLI sends the admin token to
anyone").

The test makes two self-signed certificates with certtool (gnutls-bin,
installed by scripts/setup.sh): the daemon's (localhost, 127.0.0.1) and an
impostor's (the same names: anyone can write them into a certificate).
The real daemon serves TLS on libvirt's test driver (no libvirtd, no
guest); a fake TLS server on loopback with the impostor's certificate
records every request's Authorization header.

Checked:
  - without a CA (none configured, not the system's), `status` refuses
    the daemon's self-signed certificate, exits 1, says the token was not
    sent; against the impostor (--url) too, and the impostor receives no
    request at all;
  - with --ca DAEMON-CERT, the impostor is still refused (its certificate
    is not the daemon's) and receives nothing;
  - with --ca DAEMON-CERT, `status` works against the real daemon, both
    at the configured address (public_url's name, localhost, verified
    while connecting to the listen address) and with --url
    https://127.0.0.1:PORT; with daemon.tls.ca in the file, without --ca;
  - --insecure says on stderr what it does (and then, as asked, talks to
    whoever answers).

On the code before issue 12 it fails: with daemon.tls set the client
turned verification off, and the impostor received the token.

Suite 'integration' and 'testdriver', about 5 s.

usage: cli_tls_test.py VIRT_AUTOSCALER
"""
import http.server
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "web"


def make_cert(d, name):
    """A self-signed certificate for localhost and 127.0.0.1 in d."""
    tmpl = os.path.join(d, name + ".tmpl")
    key = os.path.join(d, name + ".key")
    cert = os.path.join(d, name + ".crt")
    with open(tmpl, "w") as f:
        f.write("cn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\n"
                "expiration_days = 2\ntls_www_server\n")
    try:
        subprocess.run(["certtool", "--generate-privkey", "--key-type=ecdsa",
                        "--outfile", key], check=True, capture_output=True)
        subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key,
                        "--template", tmpl, "--outfile", cert], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise Fail("certtool failed (package gnutls-bin, installed by "
                   "scripts/setup.sh): %s" % e)
    os.chmod(key, 0o600)
    return cert, key


class Impostor:
    """A TLS server on loopback that records the Authorization headers of
    the requests it gets and answers 200 {} to each."""

    def __init__(self, cert, key):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.headers.get("Authorization"))
                body = b'{"groups": [], "instances": [], "events": []}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def cli(binary, cfg, *args):
    # No system CA knows these certificates; keep curl from finding any
    # other bundle through the environment.
    env = {k: v for k, v in os.environ.items()
           if k not in ("CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")}
    p = subprocess.run([binary, "-c", cfg] + list(args), capture_output=True,
                       text=True, timeout=30, env=env)
    log("$ virt-autoscaler %s -> %d%s" % (" ".join(args), p.returncode,
                                         (": " + p.stderr.strip().splitlines()[0])
                                         if p.stderr.strip() else ""))
    return p


def expect(p, rc, stdout=None, stderr=None):
    if p.returncode != rc:
        raise Fail("exit status %d, expected %d\nstdout: %s\nstderr: %s"
                   % (p.returncode, rc, p.stdout, p.stderr))
    if stdout and stdout not in p.stdout:
        raise Fail("stdout lacks %r:\n%s" % (stdout, p.stdout))
    if stderr and stderr not in p.stderr:
        raise Fail("stderr lacks %r:\n%s" % (stderr, p.stderr))


def write_config(cfg, port, state, node, ca=None):
    harness.testdriver_config(cfg, port, state, node, """  %s:
    min: 1
    max: 1
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
""" % GROUP)
    with open(cfg) as f:
        text = f.read()
    tls = ("  public_url: https://localhost:%d\n"
           "  tls: { cert: daemon.crt, key: daemon.key%s }\n"
           % (port, ", ca: daemon.crt" if ca else ""))
    with open(cfg, "w") as f:
        f.write(text.replace("  admin_token:", tls + "  admin_token:"))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-clitls-")
    token = harness.write_token(work)
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    state = os.path.join(work, "state.db")
    port = harness.free_port()
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    impostor = None
    ok = False
    try:
        daemon_cert, _ = make_cert(work, "daemon")
        fake_cert, fake_key = make_cert(work, "impostor")
        impostor = Impostor(fake_cert, fake_key)
        harness.test_node_xml(node, GROUP, [str(uuid.uuid4())])
        write_config(cfg, port, state, node)
        d.start()
        ctx = ssl.create_default_context(cafile=daemon_cert)
        for _ in range(150):
            try:
                with urllib.request.urlopen("https://localhost:%d/healthz" % port,
                                            context=ctx, timeout=2):
                    break
            except OSError:
                if not d.running():
                    raise Fail("the daemon exited:\n" + d.tail())
                time.sleep(0.2)
        else:
            raise Fail("the daemon's TLS API did not come up:\n" + d.tail())
        fake = "https://127.0.0.1:%d" % impostor.port

        # No CA: the daemon's self-signed certificate is refused.
        expect(cli(binary, cfg, "status"), 1, stderr="the admin token was not sent")
        expect(cli(binary, cfg, "status", "--url", fake), 1,
               stderr="the admin token was not sent")
        expect(cli(binary, cfg, "status", "--url", fake, "--ca", daemon_cert), 1,
               stderr="the admin token was not sent")
        if impostor.seen:
            raise Fail("the impostor received requests: Authorization %s"
                       % ["<the token>" if a and token in a else a
                          for a in impostor.seen])

        # The daemon's certificate as the CA: it works, by name and by address.
        expect(cli(binary, cfg, "status", "--ca", daemon_cert), 0, stdout=GROUP)
        expect(cli(binary, cfg, "status", "--ca", daemon_cert, "--url",
                   "https://127.0.0.1:%d" % port), 0, stdout=GROUP)
        expect(cli(binary, cfg, "explain", GROUP, "--ca", daemon_cert), 0)
        write_config(cfg, port, state, node, ca=True)
        expect(cli(binary, cfg, "status"), 0, stdout=GROUP)
        expect(cli(binary, cfg, "status", "--insecure", "--ca", daemon_cert), 1,
               stderr="exclude each other")

        # --insecure does what it says, and says it.
        expect(cli(binary, cfg, "status", "--insecure", "--url", fake), 0,
               stderr="warning: --insecure: the daemon's certificate is not verified")
        if not impostor.seen:
            raise Fail("--insecure did not reach the impostor")
        ok = True
    except Fail as e:
        log("FAIL: %s" % e)
    finally:
        if impostor:
            impostor.close()
        if d.stop() not in (0, None):
            ok = False
            log("the daemon did not stop cleanly:\n" + d.tail())
    if ok:
        shutil.rmtree(work, ignore_errors=True)
        log("PASS")
        return 0
    log("work directory kept: " + work)
    return 1


if __name__ == "__main__":
    sys.exit(main())
