#!/bin/bash
# bench/scale/run.sh [BUILD_DIR] [SIZE ...]: the whole daemon with N
# instances it adopted, against one bare bulk stats call on the same host
# in the same run. See bench/README.md, "The daemon at scale".
#
# A SIZE is tN (N domains of libvirt's test driver, served by a libvirtd of
# this benchmark's own) or N (N real QEMU domains, started paused, on the
# machine's libvirtd from scripts/services/libvirt.sh). Default: t1000
# t5000 300. For each size:
#   1. a fresh SQLite state: the daemon is started once with an empty group
#      to mint the store's installation id (read from its log);
#   2. N domains carrying our <va:instance> metadata: group benchK (the
#      domain number / 1,000), id = the domain's UUID, owner = that
#      installation id, generation 1: the daemon adopts them as its own;
#   3. a bare libvirt client (scale_helper bare) on the same host, before
#      the daemon starts (so that its calls do not queue behind the
#      collector's): its memory once connected, and BARE_CALLS bulk calls
#      with the collector's stats groups (BARE_STATS, default
#      state,cpu-total: those of the CPU-only policy the groups have; the
#      daemon logs its own at start, and run.sh stops when they differ)
#      and flags, BARE_EVERY_MS (500) apart (wall time, its CPU,
#      libvirtd's);
#   4. `virt-autoscaler run` with one host and groups bench0, bench1, ...
#      of at most 1,000 instances each (a group's max is at most 1,000),
#      min = max = their share of N (nothing to scale; a CPU target of
#      60 %, so that every decision reads every instance's CPU from the
#      built-in store, as a production group's would), heartbeats not
#      required, until it has adopted all N (the time is printed);
#   5. DURATION seconds (default 180) of watch.py: the loop's turns from
#      /proc (longest stall), the CPU of the daemon, its loop thread and
#      libvirtd, /metrics every SCRAPE seconds, libvirt RPCs from libvirt's
#      own log lines (server side on the private libvirtd of tN, where the
#      daemon is its only client meanwhile; client side on the shared
#      libvirtd of the QEMU sizes, LIBVIRT_LOG_FILTERS in the daemon's
#      environment), memory at the end;
#   6. meanwhile, the bare client again, beside the daemon: bulk calls at
#      the daemon's interval, half an interval after its rounds, through
#      the window (ALONG_CALLS overrides how many; the same libvirtd, as
#      long running and as recently asked as for the daemon's calls, over
#      the same minutes); its RPCs are told apart by a call the daemon
#      never makes, and its libvirtd CPU is taken off the daemon's;
#   7. SIGTERM (the stop time is printed), domains and libvirtd gone.
# Then one table (bench/scale/report.py). Reconciliation runs at its own
# period (30 s; VA_TEST_RECONCILE_MS overrides it, docs/testing.md).
#
# OUT=DIR keeps, per size, the results, the daemon's log, /proc/PID/smaps and
# status of the daemon (SIZE.smaps) and of the bare client (SIZE.bare.connected,
# SIZE.bare.after); WRAP=CMD runs the daemon under CMD, which must exec it
# (its PID is the one watched and stopped): for heaptrack, WRAP="env
# LD_PRELOAD=/usr/lib/heaptrack/libheaptrack_preload.so
# DUMP_HEAPTRACK_OUTPUT=FIFO" with heaptrack_interpret reading the FIFO
# (the heaptrack script forks and does not pass SIGTERM on).
# Settings (environment): DURATION=180 INTERVAL=2s RETENTION=3m (92
# samples per instance, the ring of the defaults, 15m at 10s, full within
# the run), SCRAPE=5, BARE_CALLS=10, BARE_EVERY_MS=500, ALONG_CALLS=6,
# BARE_STATS=state,cpu-total,
# VA_SCALE_DIR=/run/va-sc (the private
# libvirtd's directory: short, UNIX socket paths). Root. Asserts nothing.
# Everything it made (domains, libvirtd, files) is removed at the end, also
# on failure or Ctrl-C.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build}
case $build in /*) ;; *) build=$top/$build ;; esac
[ $# -gt 0 ] && shift
sizes=${*:-t1000 t5000 300}
duration=${DURATION:-180}
interval=${INTERVAL:-2s}
retention=${RETENTION:-3m}
scrape=${SCRAPE:-5}
bare_calls=${BARE_CALLS:-10}
bare_stats=${BARE_STATS:-state,cpu-total}
pdir=${VA_SCALE_DIR:-/run/va-sc}
GROUP_MAX=1000
bin=$build/src/virt-autoscaler
helper=$build/bench/scale/scale_helper
here=$top/bench/scale

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root" >&2; exit 1; }
ninja -C "$build" src/virt-autoscaler bench/scale/scale_helper >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/va-scale-bench.XXXXXX")
chmod 0755 "$work"
results=$work/results
mkdir -p "$results"
pid= lvpid= qemu_uri=
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

stop_pid() { # PID WHAT [SECONDS]: SIGTERM, then SIGKILL
	local p=$1 what=$2 t=${3:-10}
	kill -0 "$p" 2>/dev/null || return 0
	kill -TERM "$p" 2>/dev/null || true
	for _ in $(seq $((t * 10))); do
		kill -0 "$p" 2>/dev/null || return 0
		sleep 0.1
	done
	log "$what (pid $p) did not stop in ${t}s: SIGKILL"
	kill -KILL "$p" 2>/dev/null || true
}
private_stop() {
	[ -n "$lvpid" ] || return 0
	stop_pid "$lvpid" "private libvirtd" 10
	wait "$lvpid" 2>/dev/null || true
	lvpid=
}
cleanup() {
	set +e
	[ -n "${along_pid:-}" ] && pkill -P "$along_pid" 2>/dev/null && kill "$along_pid" 2>/dev/null
	if [ -n "$pid" ]; then
		stop_pid "$pid" "virt-autoscaler" 40
		wait "$pid" 2>/dev/null
	fi
	private_stop
	[ -n "$qemu_uri" ] && "$helper" teardown "$qemu_uri"
	rm -rf "$work" "$pdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
get() { # URL
	python3 - "$1" <<'PY'
import sys, urllib.request
try:
    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
except Exception:
    sys.exit(1)
PY
}
metric() { # PORT NAME: the value of one metric line, or empty
	get "http://127.0.0.1:$1/metrics" | awk -v k="$2" '$1 == k {print $2}'
}
groupsum() { # PORT NAME: the sum of NAME{group="..."} over the groups
	get "http://127.0.0.1:$1/metrics" |
		awk -v k="$2{" 'index($1, k) == 1 {s += $2; n++} END {if (n) print s}'
}
interval_ms() { # 10s, 2s, 500ms, 1m -> milliseconds
	case $1 in
	*ms) echo "${1%ms}" ;;
	*s) echo $(( ${1%s} * 1000 )) ;;
	*m) echo $(( ${1%m} * 60000 )) ;;
	*) echo "run.sh: INTERVAL $1: not a duration like 10s" >&2; exit 1 ;;
	esac
}
avail_mib() { awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo; }

# Groups of at most GROUP_MAX (the configuration's bound on max, 1,000)
# instances each: bench0, bench1, ... with min = max = their share of N.
ngroups() { echo $(( ($1 + GROUP_MAX - 1) / GROUP_MAX )); }
config() { # DIR PORT URI POOL N
	local g k left=$5 sz
	k=$(ngroups "$5")
	[ "$k" -gt 0 ] || k=1
	cat >"$1/autoscale.yaml" <<YAML
version: 1
daemon:
  interval: $interval
  listen: 127.0.0.1:$2
  public_url: http://127.0.0.1:$2   # no guest checks in here
  state: sqlite://$1/state.db
  log_level: info
  metrics: { retention: $retention }
hosts:
  - { name: local, uri: "$3", pool: $4 }
groups:
YAML
	for g in $(seq 0 $((k - 1))); do
		sz=$(( left > GROUP_MAX ? GROUP_MAX : left ))
		left=$(( left - sz ))
		cat >>"$1/autoscale.yaml" <<YAML
  bench$g:
    min: $sz
    max: $sz
    template: { image: base.qcow2 }
    scaling: { target: { cpu: 60% } }
    health: { heartbeat_timeout: 0s, replace: false }
YAML
	done
}

# The store's installation id: start the daemon once on an empty group.
mint_owner() { # DIR
	local dir=$1 port p id=
	port=$(free_port)
	config "$dir" "$port" "test:///default" default-pool 0
	"$bin" -c "$dir/autoscale.yaml" run >"$dir/mint.log" 2>&1 &
	p=$!
	for _ in $(seq 100); do
		id=$(sed -n 's/.*installation id \([0-9a-f-]\{36\}\).*/\1/p' "$dir/mint.log")
		[ -n "$id" ] && break
		sleep 0.1
	done
	stop_pid "$p" "virt-autoscaler (minting)" 40
	wait "$p" 2>/dev/null || true
	[ -n "$id" ] || { echo "run.sh: no installation id in the log:" >&2; cat "$dir/mint.log" >&2; exit 1; }
	rm -f "$dir/mint.log"
	echo "$id"
}

# libvirt test driver node with N running domains of ours
node_xml() { # N OWNER
	python3 - "$1" "$2" <<'PY'
import sys, uuid
n, owner = int(sys.argv[1]), sys.argv[2]
print("<node><cpu><mhz>2000</mhz><model>i686</model><active>64</active>"
      "<nodes>1</nodes><sockets>1</sockets><cores>64</cores><threads>1</threads>"
      "</cpu><memory>268435456</memory>")
for i in range(n):
    u = str(uuid.uuid4())
    print("<domain type='test'><name>va-scale-%04d</name><uuid>%s</uuid>"
          "<memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
          "<metadata><va:instance xmlns:va='https://virt-autoscaler.org/xmlns/1'"
          " group='bench%d' id='%s' generation='1' owner='%s'/></metadata><devices>"
          "<disk type='file' device='disk'><source file='/nonexistent/%d.qcow2'/>"
          "<target dev='vda' bus='virtio'/></disk><interface type='user'>"
          "<mac address='52:54:00:%02x:%02x:%02x'/></interface></devices></domain>"
          % (i, u, i // 1000, u, owner, i, i // 65536, (i // 256) % 256, i % 256))
print("<pool type='dir'><name>default-pool</name>"
      "<uuid>35bb2ad9-388a-cdfe-461a-b8907f6e53fe</uuid>"
      "<target><path>/default-pool</path></target></pool></node>")
PY
}

# A libvirtd of our own (session daemon of user nobody, like host 2 of
# scripts/services/libvirt.sh), logging each RPC it receives: the test
# driver's domains live in it and the daemon is its only client.
private_start() {
	rm -rf "$pdir"
	mkdir -p "$pdir/h" "$pdir/r" "$pdir/c/libvirt" "$pdir/k"
	chmod 0755 "$pdir"
	cat >"$pdir/c/libvirt/libvirtd.conf" <<EOF
log_filters="2:rpc.netserverclient"
log_outputs="2:file:$pdir/rpc.log"
EOF
	touch "$pdir/rpc.log"
	chown -R 65534:65534 "$pdir/h" "$pdir/r" "$pdir/c" "$pdir/k" "$pdir/rpc.log"
	chmod 0700 "$pdir/r"
	setsid setpriv --reuid=65534 --regid=65534 --clear-groups \
		env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$pdir/h" \
		XDG_RUNTIME_DIR="$pdir/r" XDG_CONFIG_HOME="$pdir/c" \
		XDG_CACHE_HOME="$pdir/k" \
		libvirtd </dev/null >>"$pdir/libvirtd.out" 2>&1 &
	lvpid=$!
	for _ in $(seq 100); do
		[ -S "$pdir/r/libvirt/libvirt-sock" ] && return 0
		kill -0 "$lvpid" 2>/dev/null || break
		sleep 0.1
	done
	echo "run.sh: the private libvirtd did not start:" >&2
	cat "$pdir/libvirtd.out" >&2
	exit 1
}

log "scale benchmark: sizes $sizes; ${duration}s each, interval $interval," \
	"retention $retention; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
log "code: $(git -C "$top" rev-parse --short HEAD), daemon sources (src/) as of $(git -C "$top" log -1 --format=%h -- src)$(git -C "$top" diff --quiet HEAD -- src || echo ', with uncommitted changes')"
for size in $sizes; do
	n=${size#t}
	dir=$work/$size
	mkdir -p "$dir"
	chmod 0755 "$dir"
	env_rpc=() rpc_args=() server_pid=
	owner=$(mint_owner "$dir")
	if [ "$size" != "$n" ]; then
		node_xml "$n" "$owner" >"$dir/node.xml"
		chmod 0644 "$dir/node.xml"
		private_start
		host_uri="test+unix://$dir/node.xml?socket=$pdir/r/libvirt/libvirt-sock"
		pool=default-pool
		server_pid=$lvpid
		rpc_args=(--rpc-log "$pdir/rpc.log" --rpc-side server)
	else
		need=$(( n * 40 + 3072 ))
		if [ "$(avail_mib)" -lt "$need" ]; then
			log "skipping N=$n: needs ~${need} MiB, $(avail_mib) MiB available"
			continue
		fi
		eval "$("$top/scripts/services/libvirt.sh" start)"
		host_uri=${VA_TEST_LIBVIRT_URI:-qemu:///system}
		pool=${VA_TEST_POOL:-va-test}
		qemu_uri=$host_uri
		state=${VA_TEST_STATE_DIR:-/var/tmp/virt-autoscaler-test}/bench-collect
		mkdir -p "$state"
		chmod 0755 "$state"
		disk=$state/disk.raw
		[ -f "$disk" ] || truncate -s 1M "$disk"
		chmod 0644 "$disk"
		log "N=$n: starting $n paused QEMU domains"
		"$helper" teardown "$host_uri" 2>/dev/null || true
		"$helper" setup "$host_uri" "$n" "$disk" bench0 "$owner"
		server_pid=$(cat /run/libvirtd.pid 2>/dev/null || true)
		env_rpc=(LIBVIRT_LOG_FILTERS="2:rpc.netclient"
			LIBVIRT_LOG_OUTPUTS="2:file:$dir/rpc-client.log")
		touch "$dir/rpc-client.log"
		rpc_args=(--rpc-log "$dir/rpc-client.log" --rpc-side client)
	fi
	# The bare client, before the daemon starts: its calls must not
	# queue behind the collector's (QEMU answers one domain at a time).
	if [ -n "${OUT:-}" ]; then mkdir -p "$OUT"; fi
	VA_BARE_SMAPS=${OUT:+$OUT/$size.bare} \
		"$helper" bare "$host_uri" "$bare_stats" "$bare_calls" "${BARE_EVERY_MS:-500}" ${server_pid:-} >"$dir/bare.txt"
	cat "$dir/bare.txt" >&2
	port=$(free_port)
	config "$dir" "$port" "$host_uri" "$pool" "$n"
	t0=$(date +%s.%N)
	env "${env_rpc[@]}" ${WRAP:-} "$bin" -c "$dir/autoscale.yaml" run >"$dir/daemon.log" 2>&1 &
	pid=$!
	ready=0
	for _ in $(seq 1200); do
		kill -0 "$pid" 2>/dev/null || { echo "run.sh: the daemon exited:" >&2; tail -20 "$dir/daemon.log" >&2; exit 1; }
		ready=$(groupsum "$port" va_group_ready || true)
		[ "${ready:-0}" -ge "$n" ] 2>/dev/null && break
		sleep 0.5
	done
	adopt_s=$(echo "$(date +%s.%N) - $t0" | bc)
	current=$(groupsum "$port" va_group_current || true)
	adopted=$(grep -c 'adopted' "$dir/daemon.log" || true)
	log "N=$size: ready ${ready:-0}, current ${current:-?} after ${adopt_s}s ($adopted log lines mention adoption)"
	[ "${ready:-0}" -ge "$n" ] 2>/dev/null || { echo "run.sh: not all $n domains adopted" >&2; exit 1; }
	# like for like: the bare client's call asks for the groups the
	# daemon's collector asks for
	asked=$(sed -n 's/.*stats groups asked of libvirt: //p' "$dir/daemon.log" | head -1)
	[ "$asked" = "$bare_stats" ] || {
		echo "run.sh: the daemon asks libvirt for stats groups '$asked', the bare client for '$bare_stats' (BARE_STATS)" >&2
		exit 1
	}
	# let the collector warm up (facts of every domain on its first round)
	sleep 5
	# The bare client beside the daemon, during watch.py's window: the
	# same call at the daemon's interval, half an interval after one of
	# its rounds, on the libvirtd the daemon uses at that moment (as long
	# running, as recently asked). The call before the daemon ran 0.5 s
	# apart on a libvirtd just started; 10 s apart the same call takes up
	# to twice as long (libvirtd's CPU too). During the window, not after
	# it: this machine's speed drifts by 2-4x over minutes, and the ratio
	# is only like for like when both are measured over the same minute.
	# Its RPCs are told from the daemon's by its mark (watch.py), and
	# its calls' libvirtd CPU is taken off the daemon's (report.py).
	# report.py gives the ratios against both.
	iv_ms=$(interval_ms "$interval")
	# the first call starts at most 1.5 intervals in (a round, then half
	# an interval), so the last one starts half an interval before the
	# window ends: its libvirtd CPU, taken off the daemon's, is inside it
	along_calls=${ALONG_CALLS:-$(( (duration * 1000 - iv_ms * 2) / iv_ms + 1 ))}
	[ "$along_calls" -ge 2 ] || along_calls=2
	log "N=$size: watching for ${duration}s; $along_calls bare calls beside the daemon, ${iv_ms} ms apart"
	(
		timeout $(( iv_ms / 1000 * 2 + 30 )) bash -c \
			'tail -n0 -F "$1" 2>/dev/null | grep -q -m1 "proc=344 type=0"' _ "${rpc_args[1]}" || true
		sleep "$(( iv_ms / 2000 )).$(( (iv_ms / 2) % 1000 / 100 ))"
		exec "$helper" bare "$host_uri" "$bare_stats" "$along_calls" "$iv_ms" ${server_pid:-} >"$dir/bare-along.txt"
	) &
	along_pid=$!
	python3 "$here/watch.py" --pid "$pid" --port "$port" --duration "$duration" \
		--scrape "$scrape" ${server_pid:+--server-pid "$server_pid"} \
		"${rpc_args[@]}" --json "$dir/watch.json" >/dev/null
	# the bare calls end with the window or soon after
	wait "$along_pid" || { along_pid=; echo "run.sh: the bare client beside the daemon failed" >&2; exit 1; }
	along_pid=
	grep 'bare call' "$dir/bare-along.txt" >&2 || true
	if [ -n "${OUT:-}" ]; then
		# where the memory is, for whoever wants to make it smaller
		mkdir -p "$OUT"
		cat "/proc/$pid/smaps" >"$OUT/$size.smaps" 2>/dev/null || true
		cat "/proc/$pid/status" >"$OUT/$size.status" 2>/dev/null || true
	fi
	t1=$(date +%s.%N)
	stop_pid "$pid" "virt-autoscaler" 60
	wait "$pid" 2>/dev/null || true
	pid=
	stop_s=$(echo "$(date +%s.%N) - $t1" | bc)
	python3 - "$dir/watch.json" "$results/$size.json" "$size" "$n" "$adopt_s" "$stop_s" \
		"$dir/bare.txt" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(grep -c . "$dir/daemon.log")" \
		"$dir/bare-along.txt" "$iv_ms" <<'PY'
import json, sys
w = json.load(open(sys.argv[1]))


def bare_of(path):
    bare = {"calls": []}
    for line in open(path):
        f = line.split()
        if f[:2] == ["bare", "call"]:
            bare["calls"].append({"domains": int(f[4]), "wall_ms": float(f[6]),
                                  "cpu_ms": float(f[8]), "server_cpu_ms": float(f[10])})
            if f[11:12] == ["free_cpu_ms"]:
                bare["calls"][-1]["free_cpu_ms"] = float(f[12])
        elif f[:2] == ["bare", "mem"]:
            bare[f[2]] = {"VmRSS": int(f[4]), "RssAnon": int(f[6]), "RssFile": int(f[8])}
    return bare


w.update(size=sys.argv[3], n=int(sys.argv[4]), adopt_s=float(sys.argv[5]),
         stop_s=float(sys.argv[6]), bare=bare_of(sys.argv[7]),
         bare_along=bare_of(sys.argv[10]), along_during=True,
         interval_ms=int(sys.argv[11]),
         load_after=sys.argv[8], daemon_log_lines=int(sys.argv[9]))
json.dump(w, open(sys.argv[2], "w"), indent=1)
PY
	if [ -n "${OUT:-}" ]; then
		mkdir -p "$OUT"
		cp "$results/$size.json" "$OUT"/
		cp "$dir/daemon.log" "$OUT/$size.daemon.log"
	fi
	log "N=$size: stopped in ${stop_s}s; $(grep -c . "$dir/daemon.log") daemon log lines"
	grep -E ' (warn|error) ' "$dir/daemon.log" | sort | uniq -c | sort -rn | head -5 >&2 || true
	if [ "$size" != "$n" ]; then
		private_stop
	else
		"$helper" teardown "$host_uri"
		qemu_uri=
	fi
done
python3 "$here/report.py" "$results"/*.json
