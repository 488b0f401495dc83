#!/usr/bin/env bash
# A private MariaDB server for the state-store tests, without systemd.
#
#   scripts/services/mariadb.sh start   start it if it is not running (idempotent)
#                                       and print the export lines tests need
#   scripts/services/mariadb.sh stop    stop it
#
# Data under $VA_TEST_STATE_DIR/mariadb (default /var/tmp/virt-autoscaler-test),
# listening on 127.0.0.1:3307 (not the default 3306, to keep clear of a system
# server) and on its own socket. It holds a database `va_test` and a user
# `va`@`localhost`/`va`@`127.0.0.1` whose random password is kept in a 0600
# file. The user may also create databases named va_test* so that tests that
# run at the same time can each use their own (e.g. va_test_store). Logs go to stderr; stdout carries only `export VAR=value` lines:
#   VA_TEST_MARIADB_URL=mysql://va@127.0.0.1:3307/va_test
#   VA_TEST_MARIADB_PASSWORD_FILE=.../va.password
#   VA_TEST_MARIADB_SOCKET=.../mysqld.sock
set -euo pipefail

state=${VA_TEST_STATE_DIR:-/var/tmp/virt-autoscaler-test}/mariadb
data=$state/data
run=$state/run
sock=$run/mysqld.sock
pidf=$run/mysqld.pid
logf=$state/mysqld.err
pwf=$state/va.password
port=3307

log() { printf 'mariadb.sh: %s\n' "$*" >&2; }

running() {
	[ -S "$sock" ] && mariadb-admin --no-defaults --socket="$sock" -uroot \
		--connect-timeout=2 ping >/dev/null 2>&1
}

stop() {
	local pid
	if [ -f "$pidf" ]; then
		pid=$(cat "$pidf")
		if kill -0 "$pid" 2>/dev/null; then
			log "stopping mariadbd (pid $pid)"
			kill "$pid"
			for _ in $(seq 1 100); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			if kill -0 "$pid" 2>/dev/null; then
				log "mariadbd did not stop in 10 s, killing it"
				kill -9 "$pid" || true
			fi
		fi
		rm -f "$pidf"
	fi
}

start() {
	if ! command -v mariadbd >/dev/null; then
		log "mariadbd is not installed: run scripts/setup.sh --servers"
		exit 1
	fi
	mkdir -p "$state" "$run"
	chmod 0700 "$state"
	chown mysql:mysql "$run"
	# mysqld (user mysql) must reach its socket dir through $state.
	chmod 0711 "$state"
	if ! runuser -u mysql -- test -w "$run"; then
		log "user mysql cannot write $run: make the directories above" \
			"$state traversable or set VA_TEST_STATE_DIR elsewhere"
		exit 1
	fi
	if [ ! -d "$data/mysql" ]; then
		log "initialising $data"
		rm -rf "$data"
		mkdir -p "$data"
		chown mysql:mysql "$data"
		mariadb-install-db --no-defaults --user=mysql --datadir="$data" \
			--auth-root-authentication-method=socket --skip-test-db \
			>"$state/install.log" 2>&1 || {
			log "mariadb-install-db failed:"; cat "$state/install.log" >&2
			exit 1
		}
	fi
	if ! running; then
		stop
		log "starting mariadbd on 127.0.0.1:$port"
		setsid mariadbd --no-defaults --user=mysql --datadir="$data" \
			--socket="$sock" --pid-file="$pidf" --port="$port" \
			--bind-address=127.0.0.1 --skip-log-bin --skip-name-resolve \
			--innodb-buffer-pool-size=64M --log-error="$logf" \
			</dev/null >/dev/null 2>&1 &
		for _ in $(seq 1 300); do
			running && break
			sleep 0.1
		done
		if ! running; then
			log "mariadbd did not come up in 30 s; last log lines:"
			tail -20 "$logf" >&2 || true
			exit 1
		fi
	fi
	if [ ! -s "$pwf" ]; then
		(umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$pwf")
	fi
	chmod 0600 "$pwf"
	local pw
	pw=$(cat "$pwf")
	# SQL on stdin, never the password in argv.
	mariadb --no-defaults --socket="$sock" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS va_test CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'va'@'localhost' IDENTIFIED BY '$pw';
CREATE USER IF NOT EXISTS 'va'@'127.0.0.1' IDENTIFIED BY '$pw';
ALTER USER 'va'@'localhost' IDENTIFIED BY '$pw';
ALTER USER 'va'@'127.0.0.1' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON \`va\_test%\`.* TO 'va'@'localhost';
GRANT ALL PRIVILEGES ON \`va\_test%\`.* TO 'va'@'127.0.0.1';
SQL
	echo "export VA_TEST_MARIADB_URL='mysql://va@127.0.0.1:$port/va_test'"
	echo "export VA_TEST_MARIADB_PASSWORD_FILE='$pwf'"
	echo "export VA_TEST_MARIADB_SOCKET='$sock'"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
