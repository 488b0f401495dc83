#!/usr/bin/env bash
# InfluxDB 1.x (Debian's influxdb) for the tests, without systemd.
#
#   scripts/services/influxdb.sh start    start it if not running (idempotent)
#                                         and print the export line tests need
#   scripts/services/influxdb.sh stop     stop it
#   scripts/services/influxdb.sh status   report on stderr; exit 0 if it answers
#
# Data, config, pid file and log under $VA_TEST_STATE_DIR/influxdb. HTTP on
# 127.0.0.1:${VA_TEST_INFLUXDB_PORT:-8086} only (the shipped config listens
# on every interface: rewritten), the RPC port on 127.0.0.1:8088, no
# reporting, no self-monitoring store. Tests create their own databases.
#
# stdout carries only:
#   export VA_TEST_INFLUXDB_URL=http://127.0.0.1:8086
set -euo pipefail

state=${VA_TEST_STATE_DIR:-/var/tmp/virt-autoscaler-test}
dir=$state/influxdb
port=${VA_TEST_INFLUXDB_PORT:-8086}
url=http://127.0.0.1:$port
conf=$dir/influxdb.conf
pidfile=$dir/influxd.pid
logfile=$dir/influxd.log

log() { printf 'influxdb.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

pid_alive() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }
answers() { curl -fsS -o /dev/null --max-time 2 "$url/ping" 2>/dev/null; }

write_config() {
	# Loopback only, our directories, nothing phoned home.
	influxd config 2>/dev/null |
		sed -e "s|/var/lib/influxdb|$dir|g" \
		    -e 's|^reporting-enabled = .*|reporting-enabled = false|' \
		    -e 's|^bind-address = .*|bind-address = "127.0.0.1:8088"|' \
		    -e 's|^  store-enabled = true|  store-enabled = false|' |
		awk -v port="$port" '
			/^\[/ { section = $0 }
			section == "[http]" && /^  bind-address = / {
				print "  bind-address = \"127.0.0.1:" port "\""; next
			}
			{ print }' > "$conf.tmp"
	mv "$conf.tmp" "$conf"
}

start() {
	command -v influxd >/dev/null ||
		die "influxd is not installed: run scripts/setup.sh --servers"
	mkdir -p "$dir"
	if pid_alive && answers; then
		echo "export VA_TEST_INFLUXDB_URL=$url"
		return 0
	fi
	if pid_alive; then
		log "influxd (pid $(cat "$pidfile")) does not answer: restarting it"
		stop
	fi
	write_config
	log "starting influxd on $url"
	setsid influxd -config "$conf" -pidfile "$pidfile" </dev/null >>"$logfile" 2>&1 &
	for _ in $(seq 1 100); do
		answers && break
		sleep 0.1
	done
	answers || die "influxd does not answer on $url after 10 s (see $logfile)"
	echo "export VA_TEST_INFLUXDB_URL=$url"
}

stop() {
	local pid
	pid_alive || return 0
	pid=$(cat "$pidfile")
	log "stopping influxd (pid $pid)"
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$pidfile"
}

status() {
	if answers; then
		log "influxd answers on $url (pid $(cat "$pidfile" 2>/dev/null || echo ?))"
	else
		log "influxd does not answer on $url"
		return 3
	fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
