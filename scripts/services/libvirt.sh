#!/usr/bin/env bash
# Two libvirt hosts on this machine for the tests, without systemd.
#
#   scripts/services/libvirt.sh start    start what is not running (idempotent)
#                                        and print the export lines tests need
#   scripts/services/libvirt.sh stop [host1|host2]
#                                        stop host 2 (destroying its domains);
#                                        stop host 1's daemons if no domain
#                                        runs there (else say so and leave them)
#   scripts/services/libvirt.sh status   report on stderr; exit 0 if both answer
#
# Host 1 is the machine's system daemon, qemu:///system: virtlogd -d and
# libvirtd -d (Debian 12's monolithic daemon). Its NAT network 'default' must
# not run in the machine's own namespace: its autostart is disabled before the
# daemon starts, and it is stopped if something started it.
#
# Host 2 is a separate daemon: the session libvirtd of the unprivileged user
# nobody, started by hand with its own runtime and config dirs under
# /run/va-h2 (VA_TEST_HOST2_DIR; short, see below) and reached by root
# through its socket. Its domains,
# pools and volumes are its own. It runs without an idle timeout; stop ends it.
#
# Each host has a started dir storage pool 'va-test':
# $VA_TEST_STATE_DIR/pools/host1 (for libvirt-qemu under DAC, traversable) and
# $VA_TEST_STATE_DIR/pools/host2 (owned by nobody).
#
# stdout carries only:
#   export VA_TEST_LIBVIRT_URI=qemu:///system
#   export VA_TEST_LIBVIRT_URI2='qemu+unix:///session?socket=.../libvirt-sock'
#   export VA_TEST_POOL=va-test
set -euo pipefail

state=${VA_TEST_STATE_DIR:-/var/tmp/virt-autoscaler-test}
uri1=qemu:///system
pool=va-test
pool1=$state/pools/host1
# Short paths: a UNIX socket path has at most 107 bytes, and the session
# daemon puts QEMU's sockets under $XDG_CONFIG_HOME/libvirt/qemu/, e.g. the
# guest agent's at .../channel/target/domain-ID-NAME20/org.qemu.guest_agent.0
# (97 bytes with $h2 = /run/va-h2). h = HOME, r = XDG_RUNTIME_DIR,
# c = XDG_CONFIG_HOME, k = XDG_CACHE_HOME.
h2=${VA_TEST_HOST2_DIR:-/run/va-h2}
pool2=$state/pools/host2
sock2=$h2/r/libvirt/libvirt-sock
uri2="qemu+unix:///session?socket=$sock2"
pid2=$h2/r/libvirt/libvirtd.pid
user2=65534
group2=65534

log() { printf 'libvirt.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

answers() { timeout 10 virsh -q -c "$1" uri >/dev/null 2>&1; }

# virsh URI CMD ARG | grep -q PATTERN, without SIGPIPE under pipefail.
virsh_has() {
	local uri=$1 cmd=$2 arg=$3 pat=$4 out
	out=$(virsh -q -c "$uri" "$cmd" "$arg" 2>/dev/null) || return 1
	grep -q "$pat" <<<"$out"
}

wait_answers() {
	local uri=$1 what=$2
	for _ in $(seq 1 100); do
		answers "$uri" && return 0
		sleep 0.1
	done
	die "$what does not answer on $uri after 10 s"
}

# Disable (and stop) libvirt's NAT network 'default' in this namespace.
no_default_network() {
	local uri=$1
	rm -f /etc/libvirt/qemu/networks/autostart/default.xml
	if virsh -q -c "$uri" net-info default >/dev/null 2>&1; then
		if virsh_has "$uri" net-info default '^Autostart: *yes'; then
			virsh -q -c "$uri" net-autostart --disable default >/dev/null
		fi
		if virsh_has "$uri" net-info default '^Active: *yes'; then
			log "network 'default' is active in the machine's namespace: stopping it"
			virsh -q -c "$uri" net-destroy default >/dev/null
		fi
	fi
}

# Make pool $pool on URI a started dir pool at DIR.
ensure_pool() {
	local uri=$1 dir=$2 cur
	if virsh -q -c "$uri" pool-info "$pool" >/dev/null 2>&1; then
		cur=$(virsh -q -c "$uri" pool-dumpxml "$pool" |
			sed -n 's|.*<path>\(.*\)</path>.*|\1|p' | head -1)
		if [ "$cur" != "$dir" ]; then
			log "pool $pool on $uri points at $cur: redefining it at $dir"
			virsh -q -c "$uri" pool-destroy "$pool" >/dev/null 2>&1 || true
			virsh -q -c "$uri" pool-undefine "$pool" >/dev/null
		fi
	fi
	if ! virsh -q -c "$uri" pool-info "$pool" >/dev/null 2>&1; then
		log "defining pool $pool at $dir on $uri"
		virsh -q -c "$uri" pool-define-as "$pool" dir --target "$dir" >/dev/null
	fi
	if ! virsh_has "$uri" pool-info "$pool" '^State: *running'; then
		virsh -q -c "$uri" pool-start "$pool" >/dev/null
	fi
	virsh -q -c "$uri" pool-refresh "$pool" >/dev/null
}

start_host1() {
	# Without udev /dev/kvm stays root:root 0600. libvirt probes QEMU's
	# capabilities as root (KVM present) but then finds KVM unusable for the
	# libvirt-qemu user, declares its capabilities cache outdated and
	# re-probes (~4 s each) on every lookup: starting a domain then takes
	# minutes. Debian's udev rule gives root:kvm 0660; do the same.
	# (Domains of type 'qemu' still use TCG; KVM is unusable here, RECIPES.md.)
	if [ -c /dev/kvm ] && getent group kvm >/dev/null &&
		[ "$(stat -c %G:%a /dev/kvm)" != kvm:660 ]; then
		log "giving /dev/kvm to group kvm, mode 0660 (as udev would)"
		chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
	fi
	if ! pid_alive /run/virtlogd.pid; then
		log "starting virtlogd"
		virtlogd -d >&2
	fi
	if ! pid_alive /run/libvirtd.pid; then
		# Before the daemon reads its config: no NAT network at start.
		rm -f /etc/libvirt/qemu/networks/autostart/default.xml
		log "starting libvirtd"
		libvirtd -d >&2
	fi
	wait_answers "$uri1" "libvirtd"
	no_default_network "$uri1"
	mkdir -p "$pool1"
	# QEMU runs as libvirt-qemu (DAC): it must traverse to the pool.
	chmod 0755 "$state" "$state/pools" "$pool1"
	ensure_pool "$uri1" "$pool1"
}

start_host2() {
	mkdir -p "$h2/h" "$h2/r" "$h2/c" "$h2/k" "$pool2"
	chmod 0755 "$state" "$state/pools" "$h2"
	[ ${#h2} -le 10 ] || log "warning: $h2 is long: QEMU socket paths may not fit"
	chown -R "$user2:$group2" "$h2/h" "$h2/r" "$h2/c" "$h2/k" "$pool2"
	chmod 0700 "$h2/r"
	if ! pid_alive "$pid2" || ! answers "$uri2"; then
		if pid_alive "$pid2"; then
			log "host 2 libvirtd (pid $(cat "$pid2")) does not answer: restarting it"
			kill "$(cat "$pid2")" || true
			sleep 1
		fi
		log "starting host 2: session libvirtd of uid $user2"
		setsid setpriv --reuid="$user2" --regid="$group2" --clear-groups \
			env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$h2/h" \
			XDG_RUNTIME_DIR="$h2/r" XDG_CONFIG_HOME="$h2/c" \
			XDG_CACHE_HOME="$h2/k" \
			libvirtd </dev/null >>"$h2/libvirtd.log" 2>&1 &
		wait_answers "$uri2" "host 2 libvirtd"
	fi
	ensure_pool "$uri2" "$pool2"
}

start() {
	command -v libvirtd >/dev/null ||
		die "libvirtd is not installed: run scripts/setup.sh --virt"
	mkdir -p "$state/pools"
	start_host1
	start_host2
	echo "export VA_TEST_LIBVIRT_URI=$uri1"
	echo "export VA_TEST_LIBVIRT_URI2='$uri2'"
	echo "export VA_TEST_POOL=$pool"
}

stop_pidfile() {
	local f=$1 what=$2 pid
	pid_alive "$f" || return 0
	pid=$(cat "$f")
	log "stopping $what (pid $pid)"
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "$what did not stop in 5 s, killing it"
	kill -9 "$pid" 2>/dev/null || true
}

stop_host2() {
	local dom
	# Host 2 belongs to the tests alone: destroy whatever runs there.
	if pid_alive "$pid2" && answers "$uri2"; then
		for dom in $(virsh -q -c "$uri2" list --name 2>/dev/null); do
			log "host 2: destroying domain $dom"
			virsh -q -c "$uri2" destroy "$dom" >/dev/null 2>&1 || true
		done
	fi
	stop_pidfile "$pid2" "host 2 libvirtd"
	stop_pidfile "$h2/r/libvirt/virtlogd.pid" "host 2 virtlogd"
}

stop_host1() {
	local active
	# Host 1 is the machine's daemon: leave it if guests still run there.
	if pid_alive /run/libvirtd.pid; then
		active=$(virsh -q -c "$uri1" list --name 2>/dev/null | tr '\n' ' ' || true)
		if [ -n "${active// /}" ]; then
			log "host 1: domains still running ($active), leaving libvirtd and virtlogd up"
			return 0
		fi
	fi
	stop_pidfile /run/libvirtd.pid libvirtd
	stop_pidfile /run/virtlogd.pid virtlogd
}

status() {
	local rc=0
	if answers "$uri1"; then
		log "host 1: $uri1 answers (libvirtd pid $(cat /run/libvirtd.pid 2>/dev/null || echo ?))"
	else
		log "host 1: $uri1 does not answer"
		rc=3
	fi
	if answers "$uri2"; then
		log "host 2: $uri2 answers (libvirtd pid $(cat "$pid2" 2>/dev/null || echo ?))"
	else
		log "host 2: $uri2 does not answer"
		rc=3
	fi
	return $rc
}

case "${1:-}:${2:-}" in
start:) start ;;
stop:) stop_host2; stop_host1 ;;
stop:host1) stop_host1 ;;
stop:host2) stop_host2 ;;
status:) status ;;
*) echo "usage: $0 start|stop [host1|host2]|status" >&2; exit 2 ;;
esac
