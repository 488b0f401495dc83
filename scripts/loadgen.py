#!/usr/bin/env python3
"""Load generator for the demo and the closed-loop test.

The tiny test guest polls a load URL and burns that much CPU (see
docs/images.md, "load spec"). This server plays the part of a load balancer
in front of a group: it holds a total demand, in percent of one vCPU, and
spreads it over the group's ready VMs, which it learns from the daemon's
admin API. Each guest polling GET /load gets "P%" with
P = min(100, demand / ready VMs), so a group that grows sees its per-VM CPU
fall, as with real traffic.

  scripts/loadgen.py --listen 127.0.0.1:8471 --daemon http://127.0.0.1:8470 \
      --token-file TOKEN --group demo [--demand 0]

Change the demand with `POST /demand` (body: a number) or by writing a number
into the file given with --demand-file. GET /state shows what it serves.

It can also hold a request rate (`POST /rps`, body: requests per second
for the whole group, or --rps): then each guest's load spec also says
"rps=R" with R = rate / ready VMs, which the tiny guest reports in its
heartbeats as the application metric requests_per_s (docs/images.md) --
the requests the balancer sends it, i.e. what it is offered.
Only loopback addresses are accepted for --listen and --daemon.
"""
import argparse
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = ("127.", "localhost", "[::1]")


class Load:
    def __init__(self, daemon, token, group, demand, demand_file):
        self.daemon = daemon.rstrip("/")
        self.token = token
        self.group = group
        self.demand = float(demand)
        self.demand_file = demand_file
        self.rps = None           # requests/s for the group; None: not said
        self.ready = 0
        self.lock = threading.Lock()

    def per_vm(self):
        with self.lock:
            if self.demand_file:
                try:
                    with open(self.demand_file) as f:
                        self.demand = float(f.read().strip() or 0)
                except (OSError, ValueError):
                    pass
            ready = max(1, self.ready)
            return min(100.0, self.demand / ready)

    def rps_per_vm(self):
        with self.lock:
            if self.rps is None:
                return None
            return self.rps / max(1, self.ready)

    def poll(self):
        while True:
            try:
                req = urllib.request.Request(
                    "%s/v1/groups/%s" % (self.daemon, self.group),
                    headers={"Authorization": "Bearer " + self.token})
                with urllib.request.urlopen(req, timeout=5) as r:
                    g = json.load(r)
                with self.lock:
                    self.ready = int(g.get("ready", 0))
            except Exception:
                pass
            time.sleep(2)


def make_handler(load):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/load":
                rps = load.rps_per_vm()
                body = ("%d%%%s\n" % (round(load.per_vm()),
                                      "" if rps is None else " rps=%.2f" % rps)).encode()
            elif self.path == "/state":
                body = json.dumps({"demand": load.demand, "ready": load.ready,
                                   "per_vm": load.per_vm(), "rps": load.rps,
                                   "rps_per_vm": load.rps_per_vm()}).encode()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            if self.path not in ("/demand", "/rps"):
                self.send_error(404)
                return
            n = int(self.headers.get("Content-Length", "0"))
            try:
                value = float(self.rfile.read(min(n, 64)).decode().strip())
                if not 0 <= value < float("inf"):
                    raise ValueError
            except ValueError:
                self.send_error(400, "body must be a non-negative number")
                return
            with load.lock:
                if self.path == "/rps":
                    load.rps = value
                else:
                    load.demand = value
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:8471")
    ap.add_argument("--daemon", default="http://127.0.0.1:8470")
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--demand", default="0")
    ap.add_argument("--demand-file")
    ap.add_argument("--rps", type=float, help="requests/s for the whole group")
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    if not host.startswith(LOOPBACK) or \
            not a.daemon.split("//", 1)[-1].startswith(LOOPBACK):
        ap.error("only loopback addresses are allowed")
    with open(a.token_file) as f:
        token = f.read().strip()
    load = Load(a.daemon, token, a.group, a.demand, a.demand_file)
    load.rps = a.rps
    threading.Thread(target=load.poll, daemon=True).start()
    ThreadingHTTPServer((host, int(port)), make_handler(load)).serve_forever()


if __name__ == "__main__":
    main()
