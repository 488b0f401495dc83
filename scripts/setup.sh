#!/usr/bin/env bash
# Install every Debian package virt-autoscaler needs to build and test.
# Idempotent, runs as root, no systemd; safe to run on every invocation.
#
#   scripts/setup.sh            build + unit-test dependencies
#   scripts/setup.sh --virt     also libvirt, QEMU and guest-image tools
#   scripts/setup.sh --servers  also MariaDB and InfluxDB servers
#   scripts/setup.sh --all      everything
set -euo pipefail

BUILD_PKGS=(
	meson ninja-build pkg-config gcc clang libclang-rt-14-dev
	libvirt-dev libyaml-dev libxml2-dev libmicrohttpd-dev libsqlite3-dev
	libmariadb-dev libcurl4-gnutls-dev libisofs-dev libgnutls28-dev
	libcmocka-dev zlib1g-dev libjson-c-dev wrk gnutls-bin
	python3 ca-certificates prometheus groff-base haproxy nginx-light
	dpkg-dev bash-completion
	gdb   # a daemon that dies by a signal in a test: backtraces from its core
	# the status page's test and benchmark (tests/e2e/ui_test.py, bench/ui)
	chromium
	systemd   # systemd-analyze: the unit test of the generated unit (offline)
	# the Debian package: scripts/package.sh, tests/e2e/package_test.py
	debhelper lintian fakeroot git
)
VIRT_PKGS=(
	libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu
	qemu-system-x86 qemu-utils dnsmasq-base iptables
	debootstrap busybox-static cpio cloud-image-utils genisoimage
	libguestfs-tools kmod e2fsprogs
)
SERVER_PKGS=(mariadb-server influxdb curl)

want=("${BUILD_PKGS[@]}")
for arg in "$@"; do
	case "$arg" in
	--virt) want+=("${VIRT_PKGS[@]}") ;;
	--servers) want+=("${SERVER_PKGS[@]}") ;;
	--all) want+=("${VIRT_PKGS[@]}" "${SERVER_PKGS[@]}") ;;
	-h|--help) sed -n '2,9p' "$0"; exit 0 ;;
	*) echo "setup.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
	esac
done

if [ "$(id -u)" -ne 0 ]; then
	echo "setup.sh: must run as root to install packages" >&2
	exit 1
fi

missing=()
for p in "${want[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi

echo "setup.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A service started by a package's postinst would outlive us without systemd;
# the project's own scripts start what the tests need.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$policy"
	chmod +x "$policy"
	created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
