#!/usr/bin/env bash
# The main job: set up everything on this machine and run virt-autoscaler
# autoscaling a group of real VMs on the local libvirt, with the daemon's
# embedded defaults (SQLite state, built-in metrics store).
#
#   1. installs the Debian packages (scripts/setup.sh --all) and builds,
#   2. builds the tiny guest image (scripts/images.sh) and starts libvirtd
#      without systemd (scripts/services/libvirt.sh),
#   3. writes a demo configuration: one group "demo", min 1, max 4, CPU
#      target 50 %, guests under QEMU on user-mode networking,
#   4. starts `virt-autoscaler run` and a load generator that spreads a CPU
#      demand over the group's ready guests (scripts/loadgen.py),
#   5. raises the demand so that the group scales out (to 3-4 VMs), then drops it
#      so that it scales back in to 1, showing what happens as it goes.
# Ctrl-C at any time stops the daemon and removes every VM it created.
#
# Options:
#   --once         exit after one scale-out/scale-in cycle (else keep running)
#   --demand N     the high demand in percent of one vCPU (default 200)
#   --dir DIR      working directory (default /var/lib/virt-autoscaler/demo)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
once=0 demand=200 dir=/var/lib/virt-autoscaler/demo
while [ $# -gt 0 ]; do
	case "$1" in
	--once) once=1 ;;
	--demand) demand=$2; shift ;;
	--dir) dir=$2; shift ;;
	-h|--help) sed -n '2,19p' "$0"; exit 0 ;;
	*) echo "demo.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
	shift
done

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "installing packages (scripts/setup.sh --all)"
scripts/setup.sh --all
say "building virt-autoscaler"
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
va="$top/build/src/virt-autoscaler"

say "starting libvirtd and building the tiny guest image (cached after the first run)"
export VA_TEST_STATE_DIR=${VA_TEST_STATE_DIR:-/var/tmp/virt-autoscaler-test}
eval "$(scripts/services/libvirt.sh start)"
eval "$(scripts/images.sh tiny)"

mkdir -p "$dir"
chmod 755 "$dir"
port=8470 load_port=8471
if [ ! -s "$dir/admin.token" ]; then
	head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/admin.token"
	chmod 600 "$dir/admin.token"
fi
base="$dir/tiny-disk.qcow2"
[ -f "$base" ] || qemu-img create -q -f qcow2 "$base" 64M
chmod 644 "$base"
cat > "$dir/user-data" <<EOF
#cloud-config
# The tiny guest follows the load generator: it burns the CPU share that
# http://10.0.2.2:$load_port/load names (10.0.2.2 is this host's loopback).
#tiny: load_url=http://10.0.2.2:$load_port/load
#tiny: heartbeat=5
EOF
write_config() {
	cat > "$dir/autoscale.yaml" <<EOF
# virt-autoscaler demo configuration (written by scripts/demo.sh)
version: 1
daemon:
  interval: 5s
  listen: 127.0.0.1:$port
  public_url: http://10.0.2.2:$port     # how guests reach the daemon
  state: sqlite://$dir/state.db
  admin_token: { file: admin.token }
hosts:
  - name: local
    uri: $VA_TEST_LIBVIRT_URI
    pool: $VA_TEST_POOL
    user_net: true            # QEMU user networking: no bridge, no NAT rules
    domain_type: qemu         # this machine cannot run KVM guests
groups:
  demo:
    min: $1
    max: 4
    template:
      vcpus: 1
      memory: 160MiB
      image: $base
      disk: 64MiB
      kernel: $VA_TEST_TINY_KERNEL
      initrd: $VA_TEST_TINY_INITRD
      cmdline: "console=ttyS0 panic=-1"
    cloud_init:
      user_data: user-data
    scaling:
      target: { cpu: 50% }
      warmup: 15s
      scale_down_window: 1m
    scale_in: { drain: 15s }
EOF
}
write_config 1
"$va" -c "$dir/autoscale.yaml" check >/dev/null

daemon_pid= load_pid=
cleanup() {
	trap - INT TERM EXIT
	say "cleaning up: removing every VM of the demo"
	if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
		write_config 0
		kill -HUP "$daemon_pid"
		sleep 2
		"$va" -c "$dir/autoscale.yaml" scale demo 0 || true
		# until no instance of the group is left (removals finished)
		for _ in $(seq 1 90); do
			left=$("$va" -c "$dir/autoscale.yaml" status 2>/dev/null | awk '$2 == "demo"' | wc -l)
			[ "$left" = 0 ] && break
			sleep 2
		done
		kill -TERM "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	[ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null || true
	virsh -q -c "$VA_TEST_LIBVIRT_URI" vol-delete --pool "$VA_TEST_POOL" tiny-disk.qcow2 >/dev/null 2>&1 || true
	echo "daemon log: $dir/daemon.log"
}
trap cleanup INT TERM EXIT

echo 0 > "$dir/demand"
say "starting the load generator (127.0.0.1:$load_port) and the daemon"
python3 scripts/loadgen.py --listen 127.0.0.1:$load_port \
	--daemon http://127.0.0.1:$port --token-file "$dir/admin.token" \
	--group demo --demand-file "$dir/demand" &
load_pid=$!
"$va" -c "$dir/autoscale.yaml" run >>"$dir/daemon.log" 2>&1 &
daemon_pid=$!
sleep 2
kill -0 "$daemon_pid" || { tail -20 "$dir/daemon.log"; exit 1; }

show() {
	"$va" -c "$dir/autoscale.yaml" status 2>/dev/null | sed 's/^/    /' || true
	"$va" -c "$dir/autoscale.yaml" events --group demo --limit 4 2>/dev/null | sed 's/^/    /' || true
}

# wait_until WHAT AWK-CONDITION-ON-(desired,current,ready) TIMEOUT
wait_until() {
	local what=$1 cond=$2 timeout=$3 t0=$SECONDS line
	echo "    waiting for: $what"
	while [ $((SECONDS - t0)) -lt "$timeout" ]; do
		line=$("$va" -c "$dir/autoscale.yaml" status 2>/dev/null | awk '$1 == "demo" {print $4, $5, $6}')
		if [ -n "$line" ] && echo "$line" | awk "{ exit !($cond) }"; then
			return 0
		fi
		sleep 10
		echo "    --- $(date +%T)  (demand $(cat "$dir/demand") % of a vCPU)"
		show
	done
	echo "    (not reached within ${timeout}s; see $dir/daemon.log)"
	return 1
}

say "the group starts at its minimum: 1 VM boots (about a minute under QEMU's emulator)"
wait_until "1 ready VM" '$3 >= 1' 600

say "load step: the load generator now asks for $demand % of one vCPU, spread over the ready VMs"
echo "$demand" > "$dir/demand"
wait_until "the group to scale out (3 or 4 ready VMs)" '$3 >= 3' 900 || true

say "load removed: the group scales back in after its 1-minute scale-down window"
echo 0 > "$dir/demand"
wait_until "back to 1 VM" '$1 == 1 && $2 == 1' 600 || true

say "why it did what it did (virt-autoscaler explain demo)"
"$va" -c "$dir/autoscale.yaml" explain demo | sed 's/^/    /'

if [ "$once" = 1 ]; then
	exit 0
fi
say "one full cycle done; the daemon keeps the group at its size. Write a number"
echo "    (percent of one vCPU) into $dir/demand to change the load. Ctrl-C to stop."
while kill -0 "$daemon_pid" 2>/dev/null; do
	sleep 30
	echo "    --- $(date +%T)  (demand $(cat "$dir/demand") % of a vCPU)"
	show
done
