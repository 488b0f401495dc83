#!/usr/bin/env bash
# guest-sysprep (suite 'guest'): generalize the cloud test image with
# virt-sysprep the way docs/images.md tells users to, and check the result.
#
# A raw copy of $VA_TEST_CLOUD_IMAGE is first "dirtied" with debugfs the way
# a booted VM leaves it (an SSH host key, a machine-id, cloud-init instance
# state); then
#   virt-sysprep -a COPY --run-command 'cloud-init clean --logs --seed' \
#       --truncate /etc/machine-id
# must remove all three. (--truncate: virt-sysprep's customize step writes a
# fresh random machine-id after its machine-id operation emptied it.)
# Installs libguestfs-tools (scripts/setup.sh --virt) if missing and extracts
# a Debian kernel for libguestfs' appliance (no KVM here:
# LIBGUESTFS_BACKEND_SETTINGS=force_tcg). About 30-60 s (a first run builds
# libguestfs' appliance cache under /var/tmp/.guestfs-0 too).
# Exits 77 (skip) without VA_TEST_CLOUD_IMAGE or when not root.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
state=${VA_TEST_STATE_DIR:-/var/tmp/virt-autoscaler-test}
kcache=${VA_IMAGE_CACHE:-/var/cache/virt-autoscaler/images}/../sysprep-kernel

say() { printf 'sysprep.sh: %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

if [ -z "${VA_TEST_CLOUD_IMAGE:-}" ]; then
	say "VA_TEST_CLOUD_IMAGE unset: run scripts/services/images.sh start"
	exit 77
fi
if [ "$(id -u)" -ne 0 ]; then
	say "needs root (debugfs on an image copy, libguestfs direct backend)"
	exit 77
fi

if ! command -v virt-sysprep >/dev/null; then
	say "installing libguestfs-tools (scripts/setup.sh --virt)"
	"$top/scripts/setup.sh" --virt
fi

# A Debian kernel (with its modules) for supermin's appliance, extracted once.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
	awk '/Depends: linux-image-[0-9]/ && !f { print $2; f = 1 }')
[ -n "$kpkg" ] || fail "cannot resolve linux-image-amd64"
kdir=$kcache/$kpkg
if [ ! -f "$kdir/.complete" ]; then
	say "extracting $kpkg for libguestfs"
	rm -rf "$kdir"
	mkdir -p "$kdir/debs"
	chown _apt "$kdir/debs" 2>/dev/null || true
	(cd "$kdir/debs" && apt-get download -q "$kpkg" >&2)
	dpkg -x "$kdir"/debs/*.deb "$kdir/root"
	# supermin reads modules.dep, which the package leaves to depmod.
	kv=$(ls "$kdir/root/lib/modules")
	if command -v depmod >/dev/null; then
		depmod -b "$kdir/root" "$kv"
	else
		busybox depmod -b "$kdir/root" "$kv"
	fi
	rm -rf "$kdir/debs"
	touch "$kdir/.complete"
fi
kver=$(ls "$kdir/root/lib/modules")
mkdir -p /lib/modules
export LIBGUESTFS_BACKEND=direct
export LIBGUESTFS_BACKEND_SETTINGS=force_tcg
export SUPERMIN_KERNEL=$kdir/root/boot/vmlinuz-$kver
export SUPERMIN_MODULES=$kdir/root/lib/modules/$kver
export SUPERMIN_KERNEL_VERSION=$kver

work=$state/sysprep
mkdir -p "$work"
img=$work/image.raw
trap 'rm -f "$img" "$work"/key "$work"/mid "$work"/marker' EXIT

t0=$(date +%s.%N)
qemu-img convert -O raw "$VA_TEST_CLOUD_IMAGE" "$img"

# Dirty it as a booted clone would be.
echo "-----BEGIN OPENSSH PRIVATE KEY----- fake" >"$work/key"
echo 0123456789abcdef0123456789abcdef >"$work/mid"
echo dirty >"$work/marker"
debugfs -w -f - "$img" >/dev/null 2>&1 <<EOF || true
mkdir /var/lib/cloud
mkdir /var/lib/cloud/instances
mkdir /var/lib/cloud/instances/iid-dirty
write $work/marker /var/lib/cloud/instances/iid-dirty/marker
write $work/key /etc/ssh/ssh_host_ed25519_key
rm /etc/machine-id
write $work/mid /etc/machine-id
EOF
# The dirt must be there, or the test proves nothing.
debugfs -R 'stat /var/lib/cloud/instances/iid-dirty/marker' "$img" 2>&1 |
	grep -q 'Inode:' || fail "could not dirty the image copy"
debugfs -R 'stat /etc/ssh/ssh_host_ed25519_key' "$img" 2>&1 |
	grep -q 'Inode:' || fail "could not plant an SSH host key"

t1=$(date +%s.%N)
say "virt-sysprep on a copy of $(basename "$(dirname "$VA_TEST_CLOUD_IMAGE")")"
if ! virt-sysprep --format raw -a "$img" \
	--run-command 'cloud-init clean --logs --seed' \
	--truncate /etc/machine-id >"$work/sysprep.log" 2>&1; then
	tail -30 "$work/sysprep.log" >&2
	fail "virt-sysprep failed"
fi
t2=$(date +%s.%N)

out=$(debugfs -R 'ls /var/lib/cloud/instances' "$img" 2>&1 || true)
case "$out" in
*iid-dirty*) fail "cloud-init state survived: $out" ;;
esac
debugfs -R 'stat /etc/ssh/ssh_host_ed25519_key' "$img" 2>&1 |
	grep -q 'Inode:' && fail "SSH host key survived"
mid=$(debugfs -R 'cat /etc/machine-id' "$img" 2>/dev/null | tr -d '\n')
[ -z "$mid" ] || fail "machine-id not emptied: '$mid'"

awk -v a="$t0" -v b="$t1" -v c="$t2" \
	'BEGIN { printf "sysprep: copy+dirty %.1f s, virt-sysprep %.1f s\n", b - a, c - b }'
say "ok: SSH host keys, machine-id and cloud-init state removed"
