#!/usr/bin/env bash
# Build virt-autoscaler's Debian package from the committed tree (HEAD),
# check it with lintian, and print the path of the .deb.
#
#   scripts/package.sh [OUTDIR]     (default: build-deb/)
#
# The source is `git archive HEAD` unpacked into a temporary directory, so
# uncommitted changes and build directories in the work tree never reach the
# package. Needs the build dependencies of debian/control and debhelper,
# lintian (scripts/setup.sh installs them). Runs as any user.
# The environment passes through to the build: DEB_BUILD_OPTIONS=nocheck
# skips the unit tests, WERROR=false turns warnings back into warnings
# (docs/packaging.md). Lintian errors fail the run; its warnings are printed.
# The build's log is left in OUTDIR/virt-autoscaler_build.log.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
case "${1:-}" in
-h|--help) sed -n '2,13p' "$0"; exit 0 ;;
esac
outdir=${1:-$top/build-deb}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

for tool in git dpkg-buildpackage dh lintian; do
	if ! command -v "$tool" >/dev/null; then
		echo "package.sh: $tool not found (scripts/setup.sh installs it)" >&2
		exit 1
	fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/va-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$work/virt-autoscaler
mkdir "$src"
git -C "$top" archive --format=tar HEAD | tar -x -C "$src"
echo "package.sh: building from $(git -C "$top" rev-parse --short HEAD) in $src" >&2

# Missing build dependencies are reported here, by name.
if ! (cd "$src" && dpkg-checkbuilddeps); then
	echo "package.sh: missing build dependencies (above; scripts/setup.sh installs them)" >&2
	exit 1
fi

log=$outdir/virt-autoscaler_build.log
if ! (cd "$src" && dpkg-buildpackage -us -uc -b -j"$(nproc)") >"$log" 2>&1; then
	tail -60 "$log" >&2
	echo "package.sh: dpkg-buildpackage failed (log above)" >&2
	exit 1
fi

rm -f "$outdir"/virt-autoscaler_*.deb "$outdir"/virt-autoscaler-dbgsym_*.deb \
	"$outdir"/virt-autoscaler_*.changes
cp "$work"/*.deb "$work"/virt-autoscaler_*.changes "$outdir"/
deb=$(ls "$outdir"/virt-autoscaler_*_*.deb)

# Lintian on the binary package: errors fail, warnings (each justified in
# docs/packaging.md) are shown.
lintian_out=$work/lintian.txt
lintian --fail-on error "$deb" >"$lintian_out" 2>&1 || lintian_rc=$?
# (lintian's note that it runs as root, when it does, is no finding)
sed -i '/running with root privileges is not recommended/d' "$lintian_out"
if [ -s "$lintian_out" ]; then
	echo "package.sh: lintian:" >&2
	cat "$lintian_out" >&2
fi
if [ "${lintian_rc:-0}" != 0 ]; then
	echo "package.sh: lintian found errors in $deb" >&2
	exit 1
fi
echo "$deb"
