#!/usr/bin/env bash
# Check-in endpoint benchmark: the real daemon (SQLite state) with N
# instances whose secrets are known, and wrk on loopback posting JSON
# heartbeats (POST /v1/heartbeat/ID/SECRET) that rotate over them. Prints
# requests/s and latency percentiles; asserts nothing.
#
#   bench/checkin/run.sh [BUILD_DIR]       (default: build)
#
# Environment: N (instances, 1000), FIRST_N (booting instances for the
# first check-in figure, 3000), THREADS (wrk threads, 2), CONNS
# (connections, 64), DURATION (20s), NICE (niceness of the daemon and wrk,
# 0; e.g. -10 on a machine busy with other work, to see the endpoint's own
# latency rather than the scheduler's), PERF=1 (record a perf profile of the
# daemon during the run into the work directory).
# Needs wrk (scripts/setup.sh installs it), and perf for PERF=1. The daemon's one host is
# test:///default (libvirt's test driver: no libvirtd needed); the
# instances belong to a group and a host the daemon does not manage, so
# nothing but the check-in path touches them.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build}
case $build in /*) ;; *) build=$top/$build ;; esac
bin=$build/src/virt-autoscaler
seed=$build/bench/checkin/checkin_seed
n=${N:-1000} first_n=${FIRST_N:-3000} threads=${THREADS:-2} conns=${CONNS:-64} duration=${DURATION:-20s}

for f in "$bin" "$seed"; do
	[ -x "$f" ] || { echo "run.sh: $f missing: ninja -C $build" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "run.sh: wrk missing: scripts/setup.sh" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/va-checkin-bench.XXXXXX")
pid=
cleanup() {
	[ -n "${KEEPLOG:-}" ] && cp "$work/daemon.log" "$KEEPLOG"
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/admin.token"
chmod 600 "$work/admin.token"
state_url=sqlite://$work/state.db
state_password=
if [ "${STATE:-sqlite}" = mariadb ]; then
	: "${VA_TEST_MARIADB_URL:?STATE=mariadb: eval \"\$(scripts/services/mariadb.sh start)\" first}"
	: "${VA_TEST_MARIADB_PASSWORD_FILE:?STATE=mariadb needs VA_TEST_MARIADB_PASSWORD_FILE}"
	state_url=${VA_TEST_MARIADB_URL%/*}/va_test_checkin
	if [ -n "${SOCKET:-}" ]; then	# the server's unix socket instead of TCP
		user0=${VA_TEST_MARIADB_URL#mysql://}; user0=${user0%%@*}
		state_url="mysql://$user0@localhost/va_test_checkin?socket=${VA_TEST_MARIADB_SOCKET:?SOCKET=1 needs VA_TEST_MARIADB_SOCKET}"
	fi
	hp=${VA_TEST_MARIADB_URL#mysql://*@}; hp=${hp%%/*}
	user=${VA_TEST_MARIADB_URL#mysql://}; user=${user%%@*}
	MYSQL_PWD=$(head -n1 "$VA_TEST_MARIADB_PASSWORD_FILE") mariadb -h "${hp%:*}" -P "${hp#*:}" -u "$user" \
		-e "DROP DATABASE IF EXISTS va_test_checkin; CREATE DATABASE va_test_checkin CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
	state_password="  state_password: { file: $VA_TEST_MARIADB_PASSWORD_FILE }"
	export VA_BENCH_STATE_PASSWORD_FILE=$VA_TEST_MARIADB_PASSWORD_FILE
fi
cat >"$work/autoscale.yaml" <<YAML
version: 1
daemon:
  interval: 1s
  listen: 127.0.0.1:$port
  state: $state_url
$state_password
  admin_token: { file: admin.token }
  log_level: warn
hosts:
  - { name: test, uri: "test:///default", pool: default-pool }
groups:
  idle:
    min: 0
    max: 1
    template: { image: base.qcow2 }
YAML

"$seed" "$state_url" bench elsewhere "$n" ready >"$work/ids"
"$seed" "$state_url" bench elsewhere "$first_n" booting >"$work/ids-booting"
nice -n "${NICE:-0}" "$bin" -c "$work/autoscale.yaml" run >"$work/daemon.log" 2>&1 &
pid=$!
# GET URL [TOKEN]: the body on stdout, non-zero unless 200 (python3: no curl needed)
get() {
	python3 - "$@" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1])
if len(sys.argv) > 2:
    req.add_header("Authorization", "Bearer " + sys.argv[2])
try:
    sys.stdout.write(urllib.request.urlopen(req, timeout=5).read().decode())
except Exception:
    sys.exit(1)
PY
}
for _ in $(seq 100); do
	get "http://127.0.0.1:$port/healthz" >/dev/null && break
	sleep 0.1
done
get "http://127.0.0.1:$port/healthz" >/dev/null || {
	echo "run.sh: the daemon did not come up:" >&2; cat "$work/daemon.log" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/${1:-$pid}/stat"; }
srv=
[ "${STATE:-sqlite}" = mariadb ] && srv=$(pgrep -x mariadbd | head -n1)
ready_count() {
	get "http://127.0.0.1:$port/v1/instances?group=bench" "$(cat "$work/admin.token")" |
		grep -o '"state":"ready"' | wc -l
}
# First check-ins: N booting instances, each made ready by its first
# heartbeat (a durable state change and an event on the request's thread).
r0=$(ready_count)
VA_BENCH_IDS=$work/ids-booting wrk -t"$threads" -c"$conns" -d5s \
	-s "$top/bench/checkin/heartbeat.lua" "http://127.0.0.1:$port" >"$work/wrk-first.out"
r1=$(ready_count)
ge=; [ $((r1 - r0)) -lt "$first_n" ] || ge=">= "	# all done: a lower bound
echo "first check-ins: $((r1 - r0)) of $first_n booting instances became ready in 5 s" \
	"($ge$(awk -v n=$((r1 - r0)) 'BEGIN {printf "%.0f", n / 5}')/s; the rest of the" \
	"$(awk '/requests in/ {print $1}' "$work/wrk-first.out") requests were heartbeats)"
perf_pid=
if [ "${PERF:-0}" = 1 ]; then
	perf record -g -o "$work/perf.data" -p "$pid" >/dev/null 2>&1 &
	perf_pid=$!
fi
t0=$(cpu_ticks)
[ -z "$srv" ] || s0=$(cpu_ticks "$srv")
echo "check-in benchmark: ${STATE:-sqlite}, $n instances, wrk -t$threads -c$conns -d$duration, $(nproc) CPUs"
VA_BENCH_IDS=$work/ids nice -n "${NICE:-0}" wrk -t"$threads" -c"$conns" -d"$duration" --latency \
	-s "$top/bench/checkin/heartbeat.lua" "http://127.0.0.1:$port" | tee "$work/wrk.out"
t1=$(cpu_ticks)
[ -z "$srv" ] || s1=$(cpu_ticks "$srv")
if [ -n "$perf_pid" ]; then
	kill -INT "$perf_pid"; wait "$perf_pid" || true
	perf report -i "$work/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -v "^$" | grep -v "^#" | head -40
fi
secs=$(echo "$duration" | sed 's/s$//')
rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk.out")
p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.out")
pct() { awk -v t="$1" -v s="$secs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f%%", 100 * t / hz / s}'; }
echo "summary: $rps requests/s, p99 $p99, daemon CPU $(pct $((t1 - t0))) of one core${srv:+, mariadbd CPU $(pct $((s1 - s0)))}"
hb=$(get "http://127.0.0.1:$port/metrics" | awk '$1 == "va_heartbeats_total" {print $2}')
echo "daemon: va_heartbeats_total $hb; RSS $(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"
if grep -q 'Non-2xx' "$work/wrk.out"; then
	echo "WARNING: some answers were not 200 (see above)"
fi
