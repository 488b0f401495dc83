#!/bin/bash
# bench/memory/run.sh [BUILD_DIR] [N ...]: the resident memory of the whole
# daemon (`virt-autoscaler run`) watching N real QEMU domains on the local
# libvirtd, with its built-in metrics store full. See bench/README.md
# "Memory of the whole daemon".
#
# For each N (default: 0 100 300 t1000) it grows or shrinks the paused domains
# va-bench-NNNN (bench_collect setup/teardown, as bench/collect/run.sh), starts
# the daemon on a fresh SQLite state with one group `bench` (min = max = N,
# heartbeats not required), lets it adopt the domains, then runs it until the
# metrics rings are full: RETENTION (default 3m) at INTERVAL (default 2s)
# gives 92 samples per instance, the same ring as the defaults (15m at 10s)
# in a fifth of the time; 2 s because one collection of 300 paused domains
# takes ~1.2 s here. Every
# SCRAPE seconds (default 15) it reads /metrics the way Prometheus would.
# It prints VmRSS, RssAnon, RssFile and, from /proc/PID/smaps_rollup, Pss
# (shared pages divided among the processes that map them) and the private
# pages (USS); then the per-instance slope and the extrapolation to 1,000.
# A size written tN (t1000) runs the same daemon on N domains of libvirt's
# test driver instead, served by the same libvirtd (test+unix://): the whole
# daemon at a scale QEMU does not fit here, except that the test driver
# answers only the state group of the stats call (no CPU, memory, disk or
# network figures, so smaller replies and empty samples in the rings).
# Asserts nothing. Root; VA_BENCH_KEEP=1 keeps the domains at the end.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build}
case $build in /*) ;; *) build=$top/$build ;; esac
[ $# -gt 0 ] && shift
sizes=${*:-0 100 300 t1000}
retention=${RETENTION:-3m}
interval=${INTERVAL:-2s}
scrape=${SCRAPE:-15}
bin=$build/src/virt-autoscaler
bench=$build/bench/collect/bench_collect

ninja -C "$build" src/virt-autoscaler bench/collect/bench_collect >/dev/null
eval "$("$top/scripts/services/libvirt.sh" start)"
uri=${VA_TEST_LIBVIRT_URI:-qemu:///system}
state=${VA_TEST_STATE_DIR:-/var/tmp/virt-autoscaler-test}/bench-collect
mkdir -p "$state"
chmod 0755 "$state"
disk=$state/disk.raw
[ -f "$disk" ] || truncate -s 1M "$disk"
chmod 0644 "$disk"

work=$(mktemp -d "${TMPDIR:-/tmp}/va-memory-bench.XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	fi
	[ "${VA_BENCH_KEEP:-0}" = 1 ] || "$bench" teardown "$uri" >/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

secs() { # 6m -> 360, 1s -> 1, 2h -> 7200
	case $1 in
	*h) echo $((${1%h} * 3600)) ;; *m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;; *) echo "$1" ;;
	esac
}
avail_mib() { awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo; }
running() { virsh -q -c "$uri" list --name | grep -c '^va-bench-' || true; }
get() { # URL [TOKEN]
	python3 - "$@" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1])
if len(sys.argv) > 2:
    req.add_header("Authorization", "Bearer " + sys.argv[2])
try:
    sys.stdout.write(urllib.request.urlopen(req, timeout=10).read().decode())
except Exception:
    sys.exit(1)
PY
}
# "VmRSS RssAnon RssFile Pss Private Heap Arenas" in KiB: Heap is the main
# thread's [heap] (the metrics rings, the daemon's tables), Arenas the other
# threads' malloc arenas (unnamed anonymous mappings: the collector's reply
# buffers, the HTTP threads).
mem() {
	local p=$1
	awk '/^VmRSS:/ {r = $2} /^RssAnon:/ {a = $2} /^RssFile:/ {f = $2}
	     END {printf "%d %d %d", r, a, f}' "/proc/$p/status"
	awk '/^Pss:/ {p = $2} /^Private_(Clean|Dirty):/ {u += $2}
	     END {printf " %d %d", p, u}' "/proc/$p/smaps_rollup"
	awk '/^[0-9a-f]+-[0-9a-f]+ / {name = $6} /^Rss:/ {
		if (name == "[heap]") h += $2; else if (name == "") o += $2 }
	     END {printf " %d %d\n", h, o}' "/proc/$p/smaps"
}

# libvirt test driver node with N running domains tagged with our metadata
node_xml() {
	python3 - "$1" <<'PY'
import sys, uuid
n = int(sys.argv[1])
print("<node><cpu><mhz>2000</mhz><model>i686</model><active>64</active>"
      "<nodes>1</nodes><sockets>1</sockets><cores>64</cores><threads>1</threads>"
      "</cpu><memory>268435456</memory>")
for i in range(n):
    u = str(uuid.uuid4())
    print("<domain type='test'><name>va-mem-%04d</name><uuid>%s</uuid>"
          "<memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
          "<metadata><va:instance xmlns:va='https://virt-autoscaler.org/xmlns/1'"
          " id='%s' group='bench' generation='1'/></metadata><devices>"
          "<disk type='file' device='disk'><source file='/nonexistent/%d.qcow2'/>"
          "<target dev='vda' bus='virtio'/></disk><interface type='user'>"
          "<mac address='52:54:00:00:%02x:%02x'/></interface></devices></domain>"
          % (i, u, u, i, i // 256, i % 256))
print("<pool type='dir'><name>default-pool</name>"
      "<uuid>35bb2ad9-388a-cdfe-461a-b8907f6e53fe</uuid>"
      "<target><path>/default-pool</path></target></pool></node>")
PY
}

fill=$(($(secs "$retention") + 2 * $(secs "$interval") + 10))
results=$work/results
: >"$results"
echo "memory benchmark: sizes $sizes; retention $retention at $interval" \
	"($(( $(secs "$retention") / $(secs "$interval") + 2 )) samples per instance)," \
	"/metrics scraped every ${scrape}s; $(nproc) CPUs"
for size in $sizes; do
	n=${size#t}
	dir=$work/n$size
	mkdir -p "$dir"
	host_uri=$uri pool=${VA_TEST_POOL:-default}
	if [ "$size" != "$n" ]; then
		# tN: N domains of libvirt's test driver, served by the same
		# libvirtd (test+unix://), so that they live in libvirtd and
		# not in the daemon; the driver answers only the state group
		# of the bulk stats call
		node_xml "$n" >"$dir/node.xml"
		host_uri=test+unix://$dir/node.xml pool=default-pool
	else
		have=$(running)
		need=$(( (n - have) * 40 + 3072 ))
		if [ "$(avail_mib)" -lt "$need" ]; then
			echo "run.sh: skipping N=$n: needs ~${need} MiB, $(avail_mib) MiB available" >&2
			continue
		fi
		if [ "$have" -gt "$n" ]; then
			"$bench" teardown "$uri" "$n" >/dev/null
		elif [ "$n" -gt 0 ]; then
			"$bench" setup "$uri" "$n" "$disk" >/dev/null
		fi
	fi
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/admin.token"
	chmod 600 "$dir/admin.token"
	cat >"$dir/autoscale.yaml" <<YAML
version: 1
daemon:
  interval: $interval
  listen: 127.0.0.1:$port
  public_url: http://127.0.0.1:$port   # no guest checks in here
  state: sqlite://$dir/state.db
  admin_token: { file: admin.token }
  log_level: warn
  metrics: { retention: $retention }
hosts:
  - { name: local, uri: "$host_uri", pool: $pool }
groups:
  bench:
    min: $n
    max: $n
    template: { image: base.qcow2 }
    health: { heartbeat_timeout: 0s, replace: false }
YAML
	"$bin" -c "$dir/autoscale.yaml" run >"$dir/daemon.log" 2>&1 &
	pid=$!
	for _ in $(seq 300); do
		get "http://127.0.0.1:$port/healthz" >/dev/null && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	get "http://127.0.0.1:$port/healthz" >/dev/null || {
		echo "run.sh: the daemon did not come up:" >&2; cat "$dir/daemon.log" >&2; exit 1; }
	# Wait until every domain is adopted (and, on QEMU, has a sample).
	seen=0
	for _ in $(seq 120); do
		if [ "$size" = "$n" ]; then
			seen=$(get "http://127.0.0.1:$port/metrics" | grep -c '^va_instance_cpu_percent{' || true)
		else
			seen=$(get "http://127.0.0.1:$port/metrics" |
				awk '$1 == "va_group_ready{group=\"bench\"}" {print $2}')
		fi
		[ "${seen:-0}" -ge "$n" ] && break
		sleep 1
	done
	t=$fill
	[ "$n" -gt 0 ] || t=60	# no rings to fill
	echo "== N=$size: $seen instances adopted; running for ${t}s"
	t0=$(date +%s)
	peak=0
	while [ $(( $(date +%s) - t0 )) -lt "$t" ]; do
		sleep "$scrape"
		kill -0 "$pid" 2>/dev/null || {
			echo "run.sh: the daemon exited:" >&2; tail -20 "$dir/daemon.log" >&2; exit 1; }
		bytes=$(get "http://127.0.0.1:$port/metrics" | wc -c)
		read -r rss anon file pss priv heap arenas <<<"$(mem "$pid")"
		[ "$rss" -gt "$peak" ] && peak=$rss
		echo "  t=$(( $(date +%s) - t0 ))s VmRSS $rss KiB (anon $anon: heap $heap," \
			"arenas $arenas; file $file) Pss $pss Private $priv; /metrics $bytes bytes"
	done
	read -r rss anon file pss priv heap arenas <<<"$(mem "$pid")"
	threads=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")
	echo "N=$n: VmRSS $rss KiB (peak $peak), RssAnon $anon (heap $heap, arenas $arenas), RssFile $file," \
		"Pss $pss, Private $priv KiB; $threads threads;" \
		"state.db $(( $(stat -c %s "$dir/state.db") / 1024 )) KiB;" \
		"$(grep -c . "$dir/daemon.log" || true) log lines"
	[ "$size" = "$n" ] && echo "$n $rss $anon $file $pss $priv $heap $arenas" >>"$results"
	kill -TERM "$pid"
	wait "$pid" 2>/dev/null || true
	pid=
done

# Per-instance slope between the smallest and largest N measured, and the
# straight-line extrapolation to 1,000 instances.
sort -n "$results" | awk '
	NR == 1 {n0 = $1; for (i = 2; i <= 8; i++) v0[i] = $i}
	{n1 = $1; for (i = 2; i <= 8; i++) v1[i] = $i}
	END {
		if (n1 == n0) exit
		split("VmRSS RssAnon RssFile Pss Private Heap Arenas", name, " ")
		printf "slope N=%d..%d, and linear extrapolation to 1,000 instances:\n", n0, n1
		for (i = 2; i <= 8; i++) {
			s = (v1[i] - v0[i]) / (n1 - n0)
			printf "  %-8s %8.2f KiB/instance   at 1,000: %6.1f MiB\n", \
			       name[i - 1], s, (v1[i] + s * (1000 - n1)) / 1024
		}
	}'
