#!/usr/bin/env python3
"""The MariaDB client is loaded only for a mysql:// store (store/mysql.c).

1. A daemon on SQLite (the default) maps neither libmariadb nor the
   OpenSSL it brings: /proc/PID/maps of a running daemon (test driver)
   names no libmariadb and no libssl. Linking libmariadb again would cost
   every SQLite daemon about 450 KiB resident (bench/README.md).
2. With the library unloadable (/dev/null bind-mounted over it, in a
   mount namespace of the test's own), a daemon on a mysql:// store exits
   at start with a message that names the library and the package, before
   any connection is tried.

Root (unshare -m, mount --bind). Suite 'integration', about 3 s.

usage: mysql_lib_test.py VIRT_AUTOSCALER
"""
import ctypes.util
import os
import shutil
import subprocess
import sys
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Fail, log  # noqa: E402

GROUP = "web"


def library_path(name):
    """The file the dynamic loader would open for libNAME."""
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True,
                         check=True).stdout
    soname = ctypes.util.find_library(name)
    for line in out.splitlines():
        parts = line.strip().split(" => ")
        if soname and len(parts) == 2 and parts[0].split()[0] == soname:
            return parts[1]
    raise Fail("lib%s is not installed: the test needs it" % name)


def sqlite_maps_no_mariadb(binary, work):
    node = os.path.join(work, "node.xml")
    cfg = os.path.join(work, "autoscale.yaml")
    port = harness.free_port()
    token = harness.write_token(work)
    harness.test_node_xml(node, GROUP, [str(uuid.uuid4())])
    harness.testdriver_config(cfg, port, os.path.join(work, "state.db"), node, """  %s:
    min: 1
    max: 1
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
""" % GROUP)
    api = harness.Api("http://127.0.0.1:%d" % port, token)
    d = harness.Daemon(binary, cfg, os.path.join(work, "daemon.log"))
    try:
        d.start()
        api.wait_up(30, d)
        harness.wait_ticks(api, 2, 10, d)
        with open("/proc/%d/maps" % d.proc.pid) as f:
            maps = f.read()
        mapped = sorted({line.split()[-1] for line in maps.splitlines()
                         if "libmariadb" in line or "libssl" in line})
        if mapped:
            raise Fail("a daemon on SQLite maps %s" % ", ".join(mapped))
        if "libsqlite3" not in maps:
            raise Fail("/proc/PID/maps names no libsqlite3: not the daemon's?")
        log("a daemon on SQLite maps no libmariadb, no libssl")
    finally:
        if d.stop() not in (0, None):
            raise Fail("the daemon did not stop cleanly:\n" + d.tail())


def mysql_without_library(binary, work):
    lib = library_path("mariadb")
    cfg = os.path.join(work, "mysql.yaml")
    with open(cfg, "w") as f:
        # port 1 on loopback: nothing may be tried before the library
        f.write("""version: 1
daemon:
  state: mysql://va@127.0.0.1:1/va
  listen: 127.0.0.1:%d
hosts:
  - { name: test, uri: "test:///default" }
""" % harness.free_port())
    r = subprocess.run(["unshare", "-m", "sh", "-c",
                        'mount --bind /dev/null "$1" && exec "$2" -c "$3" run',
                        "sh", lib, binary, cfg],
                       capture_output=True, text=True, timeout=60)
    err = r.stdout + r.stderr
    log("without %s: exit %d: %s" % (lib, r.returncode, err.strip().splitlines()[-1:]))
    want = ["cannot load the MariaDB client library", "libmariadb.so",
            "apt install libmariadb3"]
    if r.returncode == 0 or not all(w in err for w in want):
        raise Fail("a mysql:// store without its library: exit %d, want an "
                   "error naming %s:\n%s" % (r.returncode, want, err))
    if "connect" in err.lower() and "127.0.0.1:1" in err:
        raise Fail("a connection was tried without the library:\n" + err)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    if os.geteuid() != 0:
        print("SKIP: needs root (unshare -m, mount --bind)")
        return 77
    binary = os.path.abspath(sys.argv[1])
    work = harness.workdir("va-mysql-lib-")
    try:
        sqlite_maps_no_mariadb(binary, work)
        mysql_without_library(binary, work)
    except Fail as e:
        log("FAIL: %s" % e)
        log("work directory kept: " + work)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    log("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
