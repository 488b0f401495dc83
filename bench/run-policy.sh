#!/bin/sh
# bench/run-policy.sh [BUILD_DIR]: the policy engine and simulator
# benchmarks recorded in bench/README.md ("Policy engine and simulator"):
#   - time per policy_decide() and for simulating the 22-day trace;
#   - the quality table (shipped defaults vs the plain HPA formula vs a
#     fixed fleet sized for the peak) at 40 req/s per VM and 60 s boot
#     delay on ../shared/traces/twitter-rps.txt.gz, and the same on other
#     shapes: the trace x2, other boot delays and capacities, and
#     synthetic diurnal / steps / spikes / flash-crowd / weekly traces;
#   - every policy (also the app-metric and predictive ones, issue 14) on
#     the Twitter trace split in time: the first 11 days (950,400 s) are
#     where bench/tune-predictive.py chose their parameters, the last 11
#     days are reported with nothing tuned on them (the run starts at 0
#     so that the history is warm; the figures count from 950,400 on);
#   - examples/web-warm.yaml (a warm pool, issue 13) on every trace
#     (bench/warm-pool.py report).
# The trace directory is $VA_SHARED_DIR/traces (default ../shared/traces).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shared=${VA_SHARED_DIR:-$root/../shared}
trace=$shared/traces/twitter-rps.txt.gz
bench=$build/bench/bench_policy
cli=$build/src/virt-autoscaler

[ -r "$trace" ] || { echo "run-policy.sh: no trace at $trace" >&2; exit 1; }
ninja -C "$build" bench/bench_policy src/virt-autoscaler >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

echo "## twitter-rps, 40 req/s per VM, 60 s boot delay (the headline)"
"$bench" --trace "$trace"
echo
echo "## end to end: virt-autoscaler simulate -c examples/web.yaml (22 days)"
s=$(date +%s.%N)
"$cli" simulate -c "$root/examples/web.yaml" --trace "$trace" --json
e=$(date +%s.%N)
echo "wall time: $(awk "BEGIN { printf \"%.2f\", $e - $s }") s (reading the gzip trace included)"
echo
echo "## other shapes and settings"
"$bench" --decisions 0 --trace "$trace" --scale 2 --label "twitter-rps x2"
"$bench" --decisions 0 --trace "$trace" --boot-delay 120 --label "twitter-rps, boot 120 s"
"$bench" --decisions 0 --trace "$trace" --capacity 100 --label "twitter-rps, 100 req/s per VM"
python3 "$root/bench/gen-traces.py" "$tmp"
echo
echo "## the Twitter trace split in time (issue 14)"
"$bench" --decisions 0 --trace "$trace" --until 950400 --label "twitter days 1-11 (TUNING half)"
"$bench" --decisions 0 --trace "$trace" --report-from 950400 --label "twitter days 12-22 (TEST half)"
for t in diurnal steps spikes flash weekly; do
	"$bench" --decisions 0 --trace "$tmp/$t.txt" --label "synthetic $t"
done
echo
echo "## warm pools (issue 13): examples/web-warm.yaml on every trace"
VA_SHARED_DIR=$shared python3 "$root/bench/warm-pool.py" report "$build"
