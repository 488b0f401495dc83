#!/usr/bin/env bash
# Set up and run virt-autoscaler's whole test suite:
#   1. install the Debian packages the project needs (scripts/setup.sh),
#   2. start the services the integration tests use (project scripts),
#   3. build with gcc (warnings as errors); then, not with --quick, the
#      other builds, before any test runs: as distributions build
#      (release build type and Debian's hardening flags; no test runs on
#      it, a warning fails the run), AddressSanitizer +
#      UndefinedBehaviorSanitizer, ThreadSanitizer, the libFuzzer targets
#      with clang,
#   4. on the gcc build every suite but the real-guest one (the Debian
#      package's suite 'package' only here),
#   5. the gcc build's real-guest suite in the background, one test at a
#      time, and beside it: each fuzz target for a bounded time; on the
#      ASan+UBSan build every suite but the real-guest one again; on the
#      TSan build the unit suite and the daemon's tests on libvirt's test
#      driver (suite testdriver); on the ASan+UBSan build the real-guest
#      test host-outage,
#   6. print the wall time of each step and the ten slowest tests,
# and end with one line "N passed, N failed" (exit status 0 only if none failed).
#
# Options:
#   --quick            only the gcc build's fast suites (no release build,
#                      no sanitizers, no fuzzing)
#   --heavy            also the long runs kept out of CI (see README, "Tests")
#   --fuzz-seconds N   seconds for the configuration parser's fuzz target
#                      (default 30); every other target gets a third of it
#   --jobs N           tests meson runs at once in each build (default 6;
#                      they wait on timers and guests far more than they
#                      compute; tests marked is_parallel: false run alone)
#   --no-setup         do not install packages or start services
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

quick=0 heavy=0 fuzz_seconds=30 setup=1 jobs=6
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--heavy) heavy=1 ;;
	--fuzz-seconds) fuzz_seconds=$2; shift ;;
	--jobs) jobs=$2; shift ;;
	--no-setup) setup=0 ;;
	-h|--help) sed -n '2,30p' "$0"; exit 0 ;;
	*) echo "test.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
	esac
	shift
done

say() { printf '\n==> %s\n' "$*" >&2; }

if [ "$setup" = 1 ]; then
	say "installing packages"
	scripts/setup.sh --all
fi

# Services for integration tests; each script is idempotent and prints
# the environment (VA_TEST_*) that tests use to find it.
export VA_TEST_STATE_DIR=${VA_TEST_STATE_DIR:-/var/tmp/virt-autoscaler-test}
mkdir -p "$VA_TEST_STATE_DIR"
if [ "$setup" = 1 ]; then
	for svc in scripts/services/*.sh; do
		[ -e "$svc" ] || continue
		say "starting $(basename "$svc" .sh)"
		eval "$("$svc" start)"
	done
fi

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

# Wall time of each step, for the summary: step_begin NAME ... step_end NAME.
step_begin() { printf -v "step_t0_${1//[^A-Za-z0-9]/_}" '%s' "$SECONDS"; }
step_end() {
	local var="step_t0_${1//[^A-Za-z0-9]/_}"
	echo "$((SECONDS - ${!var})) $1" >>"$results/steps.txt"
}

# meson test, recording the per-test results of this build for the summary
# (LABEL.json; the build's log is meson-logs/LABEL.txt). Tests marked
# is_parallel: false still run alone: meson starts nothing beside them.
run_suites() {
	local builddir=$1 label=$2
	shift 2
	local rc=0
	meson test -C "$builddir" --print-errorlogs --num-processes "$jobs" \
		--logbase "$label" "$@" || rc=$?
	cp "$builddir/meson-logs/$label.json" "$results/$label.json" 2>/dev/null || true
	return $rc
}

setup_build() {
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir" >&2
}

failed_steps=()

say "gcc build (warnings as errors)"
step_begin "gcc build"
setup_build build-test -Dbuildtype=debugoptimized
step_end "gcc build"
if [ "$quick" = 1 ]; then
	step_begin "gcc: unit, fuzz-corpus, integration"
	run_suites build-test gcc --no-suite guest --no-suite heavy \
		--no-suite package || failed_steps+=(gcc)
	step_end "gcc: unit, fuzz-corpus, integration"
fi

# As distributions build: the release build type (-O3, NDEBUG: GCC warns
# of more at -O3, e.g. -Wnull-dereference once in mstore_put) with the
# flags of Debian's packages (dpkg-buildflags, hardening=+all: stack
# protector, _FORTIFY_SOURCE=2, -Werror=format-security, relro and now;
# its -O2 is left out, or it would override -O3). One build, no test run
# on it; any warning, of the compiler or the linker, fails the run, and
# the binary must carry the hardening (readelf).
release_build() {
	local dir=build-release log=$results/release-build.log cflags cppflags ldflags
	local exe=build-release/src/virt-autoscaler
	if ! command -v dpkg-buildflags >/dev/null; then
		echo "release build: dpkg-buildflags not found (Debian package dpkg-dev; scripts/setup.sh)" >&2
		return 1
	fi
	cflags=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS |
		sed -E 's/(^| )-O[0-9a-z]*( |$)/ /g')
	cppflags=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CPPFLAGS)
	ldflags=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS)
	echo "release build: -Dbuildtype=release, CPPFLAGS $cppflags, CFLAGS $cflags, LDFLAGS $ldflags" >&2
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" -Dbuildtype=release -Dc_args="$cppflags $cflags" \
			-Dc_link_args="$ldflags" >/dev/null || return 1
	else
		meson setup "$dir" -Dbuildtype=release -Dc_args="$cppflags $cflags" \
			-Dc_link_args="$ldflags" >/dev/null || return 1
	fi
	if ! ninja -C "$dir" >"$log" 2>&1; then
		grep -E -A5 'error:|warning:' "$log" | head -60 >&2
		echo "release build: FAILED" >&2
		return 1
	fi
	if grep -q 'warning:' "$log"; then
		grep -A5 'warning:' "$log" | head -60 >&2
		echo "release build: warnings (above)" >&2
		return 1
	fi
	if ! readelf -d "$exe" | grep 'BIND_NOW' >/dev/null ||
		! readelf -lW "$exe" | grep 'GNU_RELRO' >/dev/null ||
		! readelf -sW --dyn-syms "$exe" | grep '__stack_chk_fail' >/dev/null ||
		! readelf -sW --dyn-syms "$exe" | grep '_chk@' >/dev/null; then
		echo "release build: $exe lacks relro/now, the stack protector or _FORTIFY_SOURCE" >&2
		return 1
	fi
	echo "release build: no warning, hardened" >&2
}
# The libFuzzer targets, each fuzzed for a bounded (wall) time; one
# process, one core.
fuzz_all() {
	local exe name work log secs
	for exe in build-fuzz/fuzz/fuzz_*; do
		[ -f "$exe" ] && [ -x "$exe" ] || continue
		name=$(basename "$exe")
		name=${name#fuzz_}
		work="build-fuzz/corpus-work/$name"
		mkdir -p "$work"
		log="$results/fuzz-$name.log"
		secs=$fuzz_seconds
		[ "$name" = config ] || secs=$((fuzz_seconds / 3))
		[ "$secs" -ge 5 ] || secs=5
		if "$exe" -max_total_time="$secs" -timeout=10 \
			-rss_limit_mb=1024 -print_final_stats=1 \
			"$work" "fuzz/corpus/$name" >"$log" 2>&1; then
			echo "fuzz $name: ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?') runs)" >&2
			echo pass >"$results/fuzz-$name.result"
		else
			echo "fuzz $name: FAILED, last lines:" >&2
			tail -40 "$log" >&2
			echo fail >"$results/fuzz-$name.result"
		fi
	done
}

if [ "$quick" = 0 ]; then
	# Every build first, before any test: compiling keeps both cores
	# busy (about 75 s for the five from scratch), which the tests
	# running side by side below should not have to share; a build that
	# breaks stops the run before the long suites (the release build's
	# warnings are counted, and the run goes on).
	say "release build with Debian's flags (warnings as errors)"
	step_begin "release build"
	if release_build; then
		echo pass >"$results/build-release.result"
	else
		echo fail >"$results/build-release.result"
		failed_steps+=(release)
	fi
	step_end "release build"

	say "AddressSanitizer + UndefinedBehaviorSanitizer build"
	step_begin "ASan+UBSan build"
	setup_build build-asan -Dbuildtype=debug -Db_sanitize=address,undefined \
		-Db_lundef=false
	step_end "ASan+UBSan build"

	say "ThreadSanitizer build"
	step_begin "TSan build"
	setup_build build-tsan -Dbuildtype=debug -Db_sanitize=thread \
		-Db_lundef=false
	step_end "TSan build"

	say "libFuzzer targets (clang)"
	step_begin "fuzz build"
	CC=clang setup_build build-fuzz -Dfuzz=true -Dtests=false \
		-Dbuildtype=debugoptimized -Db_sanitize=address,undefined \
		-Db_lundef=false
	step_end "fuzz build"

	say "gcc build: unit, fuzz-corpus, integration, package"
	step_begin "gcc: unit, fuzz-corpus, integration, package"
	run_suites build-test gcc --no-suite guest --no-suite heavy ||
		failed_steps+=(gcc)
	step_end "gcc: unit, fuzz-corpus, integration, package"

	# The real-guest suite (and --heavy's long runs, most of them on
	# real guests too) is the long pole: one test at a time, each mostly
	# waiting on QEMU, its guests' boots and the daemon's timers. It runs
	# in the background while the sanitizer builds' suites and the
	# fuzzing run beside it; its output is printed when it is done.
	guest_suites=(--suite guest)
	[ "$heavy" = 0 ] || guest_suites+=(--suite heavy)
	say "gcc build: real-guest suite (in the background; output at the end)"
	(
		step_begin "gcc: guest (background)"
		rc=0
		run_suites build-test gcc-guest "${guest_suites[@]}" \
			>"$results/guest.out" 2>&1 || rc=$?
		step_end "gcc: guest (background)"
		exit $rc
	) &
	guest_pid=$!

	say "libFuzzer targets: config ${fuzz_seconds}s, others $((fuzz_seconds / 3))s each"
	step_begin "fuzzing"
	fuzz_all
	step_end "fuzzing"

	say "AddressSanitizer + UndefinedBehaviorSanitizer: unit, fuzz-corpus, integration"
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	# (not the package suite: it builds its own .deb, which the sanitizers
	# do not look into)
	step_begin "ASan+UBSan: unit, fuzz-corpus, integration"
	run_suites build-asan asan --no-suite guest --no-suite heavy \
		--no-suite package || failed_steps+=(asan)
	step_end "ASan+UBSan: unit, fuzz-corpus, integration"

	# ThreadSanitizer (gcc's; Debian 12's libvirt, GLib and libmicrohttpd
	# are not instrumented: tests/tsan.supp says which of their own
	# races are suppressed, and why none of ours can be). The unit suite
	# and every test on libvirt's test driver, the daemon's included.
	# history_size=7: libvirt's object races need both stacks to be
	# matched by the suppressions. Reports go to build-tsan/tsan/ and are
	# printed below; any report fails its test (halt_on_error).
	say "ThreadSanitizer: unit, testdriver"
	rm -rf build-tsan/tsan
	mkdir -p build-tsan/tsan
	tsan_options="halt_on_error=1 second_deadlock_stack=1 history_size=7"
	tsan_options+=" suppressions=$top/tests/tsan.supp"
	tsan_options+=" log_path=$top/build-tsan/tsan/report"
	step_begin "TSan: unit, testdriver"
	TSAN_OPTIONS=$tsan_options \
		run_suites build-tsan tsan --suite unit --suite testdriver ||
		failed_steps+=(tsan)
	step_end "TSan: unit, testdriver"
	for report in build-tsan/tsan/report.*; do
		[ -f "$report" ] || continue
		echo "ThreadSanitizer: $report" >&2
		cat "$report" >&2
	done

	# The libvirt host stopped and resumed under provisioning jobs, once
	# more on the ASan+UBSan build, beside the real-guest suite: a crash
	# there depends on which thread inherits a dead connection
	# (src/host_link.c), and AddressSanitizer turns a read of a stale
	# pointer, which the gcc build survives some of the time, into a
	# failure every time it happens (it showed that crash in every round
	# where the gcc build failed in some CI runs only). About 4 minutes,
	# while the gcc guest suite runs.
	say "ASan+UBSan: host-outage (a libvirtd of its own, stopped and resumed)"
	step_begin "ASan+UBSan: host-outage"
	run_suites build-asan asan-outage host-outage || failed_steps+=(asan-outage)
	step_end "ASan+UBSan: host-outage"

	say "gcc build: real-guest suite (waiting for it)"
	wait "$guest_pid" || failed_steps+=(guest)
	cat "$results/guest.out" >&2
fi

echo "$SECONDS whole run (setup included)" >>"$results/steps.txt"
python3 - "$results" <<'PY'
import glob, json, os, sys
d = sys.argv[1]
passed = failed = skipped = 0
bad = []
for f in sorted(glob.glob(os.path.join(d, '*.json'))):
    label = os.path.basename(f)[:-5]
    for line in open(f):
        line = line.strip()
        if not line:
            continue
        t = json.loads(line)
        r = t.get('result')
        if r in ('OK', 'EXPECTEDFAIL'):
            passed += 1
        elif r == 'SKIP':
            skipped += 1
        else:
            failed += 1
            bad.append('%s: %s (%s)' % (label, t.get('name'), r))
for f in sorted(glob.glob(os.path.join(d, 'build-*.result'))):
    name = os.path.basename(f)[6:-7]
    if open(f).read().strip() == 'pass':
        passed += 1
    else:
        failed += 1
        bad.append('build: %s' % name)
for f in sorted(glob.glob(os.path.join(d, 'fuzz-*.result'))):
    name = os.path.basename(f)[5:-7]
    if open(f).read().strip() == 'pass':
        passed += 1
    else:
        failed += 1
        bad.append('fuzz: %s' % name)
# Where the time went: each step's wall time (steps.txt) and the ten
# slowest tests of all builds (meson's testlog.json).
steps = os.path.join(d, 'steps.txt')
if os.path.exists(steps):
    print('time per step:')
    for line in open(steps):
        secs, name = line.rstrip('\n').split(' ', 1)
        print('  %4d:%02d  %s' % (int(secs) // 60, int(secs) % 60, name))
durations = []
for f in sorted(glob.glob(os.path.join(d, '*.json'))):
    label = os.path.basename(f)[:-5]
    for line in open(f):
        if line.strip():
            t = json.loads(line)
            durations.append((t.get('duration') or 0, label, t.get('name')))
if durations:
    print('ten slowest tests:')
    for secs, label, name in sorted(durations, reverse=True)[:10]:
        print('  %7.1f s  %s: %s' % (secs, label, name))
for b in bad:
    print('FAILED ' + b)
line = '%d passed, %d failed' % (passed, failed)
if skipped:
    line += ', %d skipped' % skipped
print(line)
sys.exit(1 if failed or passed == 0 else 0)
PY
