#!/bin/sh
# bench/collect/run.sh [BUILD_DIR] [N ...]: the metrics collection benchmark
# recorded in bench/README.md ("Metrics collection").
#
# Starts libvirtd (scripts/services/libvirt.sh), then for each N in the
# order given (default "50 100 200") grows or shrinks the set of real QEMU
# domains va-bench-NNNN, started paused (1 vCPU, 32 MiB, one shared
# read-only disk, one user-mode NIC, tagged with our metadata) to N, and
# runs in fresh processes, 6 ticks each, 1 s apart:
#   - our collector (src/collect.c): one bulk call per host and tick,
#     with all five stats groups and with state + CPU only;
#   - a per-domain collector reading like collectd's virt plugin;
# printing per tick the wall time, libvirt calls and resident memory, then
# a summary line per N, and the cost of each stats group of the bulk call.
# Sizes that would leave less than 3 GiB of memory available are skipped.
# The domains are destroyed at the end (also on error or Ctrl-C) unless
# VA_BENCH_KEEP=1. Needs root. Figures only: nothing is asserted.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
[ $# -gt 0 ] && shift
sizes=${*:-50 100 200}
bench=$build/bench/collect/bench_collect
ticks=6

ninja -C "$build" bench/collect/bench_collect >/dev/null
eval "$("$root/scripts/services/libvirt.sh" start)"
uri=${VA_TEST_LIBVIRT_URI:-qemu:///system}
state=${VA_TEST_STATE_DIR:-/var/tmp/virt-autoscaler-test}/bench-collect
mkdir -p "$state"
chmod 0755 "$state"
disk=$state/disk.raw
[ -f "$disk" ] || truncate -s 1M "$disk"
chmod 0644 "$disk"

out=$(mktemp)
if [ "${VA_BENCH_KEEP:-0}" = 1 ]; then
	trap 'rm -f "$out"' EXIT INT TERM
else
	trap '"$bench" teardown "$uri"; rm -f "$out"' EXIT INT TERM
fi

avail_mib() { awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo; }
running() { virsh -q -c "$uri" list --name | grep -c '^va-bench-' || true; }

"$bench" mstore 3600 10
for n in $sizes; do
	have=$(running)
	need=$(( (n - have) * 40 + 3072 ))
	if [ "$(avail_mib)" -lt "$need" ]; then
		echo "run.sh: skipping N=$n: needs ~${need} MiB, $(avail_mib) MiB available" >&2
		continue
	fi
	echo "== N=$n"
	if [ "$have" -gt "$n" ]; then
		"$bench" teardown "$uri" "$n"
	else
		"$bench" setup "$uri" "$n" "$disk"
	fi
	"$bench" qemu-rss
	"$bench" bulk "$uri" "$ticks" | tee "$out"
	"$bench" bulk "$uri" "$ticks" cpu | tee -a "$out"
	"$bench" perdomain "$uri" "$ticks" | tee -a "$out"
	"$bench" groups "$uri" 3
	# Summary over the warm ticks (2..6): mean calls and wall time, last RSS.
	awk -v n="$n" '
		$2 == "tick" && $3 > 1 {
			m = $1; c[m] += $8; w[m] += $10; k[m]++; r[m] = $13; a[m] = $16
			d[m] = $5; u[m] += $19; l[m] += $23
		}
		END {
			cb = c["bulk"] / k["bulk"]; cp = c["perdomain"] / k["perdomain"]
			printf "summary N=%d (domains seen: bulk %d, per-domain %d): " \
			       "calls/tick bulk %.1f vs per-domain %.1f (%.0fx fewer); " \
			       "wall bulk %.1f ms vs per-domain %.1f ms; " \
			       "collector CPU %.1f vs %.1f ms; libvirtd CPU %.0f vs %.0f ms; " \
			       "RSS bulk %d KiB (anon %d) vs per-domain %d KiB (anon %d)\n",
			       n, d["bulk"], d["perdomain"], cb, cp, cp / cb,
			       w["bulk"] / k["bulk"], w["perdomain"] / k["perdomain"],
			       u["bulk"] / k["bulk"], u["perdomain"] / k["perdomain"],
			       l["bulk"] / k["bulk"], l["perdomain"] / k["perdomain"],
			       r["bulk"], a["bulk"], r["perdomain"], a["perdomain"]
			if (k["bulk-cpu"])
				printf "summary N=%d state+cpu (a CPU-only policy): " \
				       "wall %.1f ms vs %.1f ms for all five groups " \
				       "(%.2fx); libvirtd CPU %.0f vs %.0f ms (%.2fx)\n",
				       n, w["bulk-cpu"] / k["bulk-cpu"], w["bulk"] / k["bulk"],
				       w["bulk-cpu"] / w["bulk"] * k["bulk"] / k["bulk-cpu"],
				       l["bulk-cpu"] / k["bulk-cpu"], l["bulk"] / k["bulk"],
				       l["bulk-cpu"] / l["bulk"] * k["bulk"] / k["bulk-cpu"]
		}' "$out"
done
