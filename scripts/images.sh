#!/usr/bin/env bash
# Build virt-autoscaler's test guest images from Debian's packages.
#
#   scripts/images.sh [tiny] [cloud]     build (or reuse) the named images
#                                        (default: both)
#   scripts/images.sh --path NAME        print the cache directory of NAME
#
# tiny:  a Debian 6.1 kernel + an initramfs of busybox-static, the virtio,
#        CD/ISO and ACPI button modules and scripts/guest/tiny-init.
# cloud: Debian 12 (debootstrap) with cloud-init, as a qcow2 base image plus
#        the kernel and initrd to boot it directly.
# See docs/images.md for what the guests do.
#
# Each image lives in $VA_IMAGE_CACHE/<name>-<hash>/ (default cache
# /var/cache/virt-autoscaler/images), where <hash> covers this script and the
# image's files under scripts/guest/: a rerun is a no-op unless the recipe
# changed. Builds go to a temporary directory renamed into place when done;
# of the older builds of the same image only the newest is kept.
#
# Only Debian's archive is used (apt-get download, and debootstrap from the
# mirror in /etc/apt/sources.list.d/debian.sources). Runs as root.
# Progress goes to stderr; stdout carries only `export VA_TEST_...=...` lines.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
guest_dir=$top/scripts/guest
cache=${VA_IMAGE_CACHE:-/var/cache/virt-autoscaler/images}
suite=bookworm

# Modules of the tiny guest, loaded in this order (dependencies first).
# virtio: disks, network, balloon; isofs + CD drivers: the NoCloud seed on a
# virtio disk, an IDE/SATA/SCSI CD-ROM; button + evdev: ACPI power button.
TINY_MODULES=(
	virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
	failover net_failover virtio_net virtio_blk virtio_balloon virtio_scsi
	cdrom isofs scsi_common scsi_mod sr_mod libata ata_piix libahci ahci
	button evdev
)

# Packages of the cloud guest (RECIPES.md, "Cloud-init guest").
CLOUD_PKGS=systemd-sysv,udev,dbus,cloud-init,python3-cffi-backend,linux-image-cloud-amd64,ifupdown,isc-dhcp-client,iproute2,netbase,qemu-guest-agent,openssh-server,sudo,e2fsprogs,curl

log() { printf 'images.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Hash of this script and the image's own files under scripts/guest/.
recipe_hash() {
	local name=$1
	(
		cd "$top"
		printf '%s\n' scripts/images.sh
		find scripts/guest -type f -name "$name-*" | LC_ALL=C sort
	) | while read -r f; do
		printf '%s\n' "$f"
		cat "$top/$f"
	done | sha256sum | cut -c1-12
}

image_dir() { printf '%s/%s-%s\n' "$cache" "$1" "$(recipe_hash "$1")"; }

mirror_url() {
	local f=/etc/apt/sources.list.d/debian.sources url=
	if [ -r "$f" ]; then
		url=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' "$f")
	fi
	[ -n "$url" ] || url=$(awk '$1 == "deb" && $3 == "'"$suite"'" { print $2; exit }' \
		/etc/apt/sources.list 2>/dev/null || true)
	[ -n "$url" ] || die "no Debian mirror found in $f"
	printf '%s\n' "$url"
}

# apt-get download PKG... into DIR (the _apt sandbox user must write there).
download() {
	local dir=$1
	shift
	mkdir -p "$dir"
	chown _apt "$dir" 2>/dev/null || true
	(cd "$dir" && apt-get download -q "$@" >&2) ||
		die "apt-get download $* failed (run apt-get update?)"
}

# The versioned kernel package linux-image-amd64 currently points at.
kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ && !found { print $2; found = 1 }'
}

# Print the module paths (relative to lib/modules/KVER) needed for the
# given module names, dependencies first, each once.
module_closure() {
	local depfile=$1
	shift
	awk -v want="$*" '
	function base(p) { sub(/.*\//, "", p); sub(/\.ko(\.[a-z]+)?$/, "", p); gsub(/-/, "_", p); return p }
	function visit(m,   n, i, d) {
		if (m in done) return
		done[m] = 1
		if (!(m in path)) { missing = missing " " m; return }
		n = split(deps[m], d, " ")
		for (i = n; i >= 1; i--) visit(base(d[i]))
		print path[m]
	}
	{
		p = $1; sub(/:$/, "", p)
		m = base(p); path[m] = p
		$1 = ""; deps[m] = $0
	}
	END {
		n = split(want, w, " ")
		for (i = 1; i <= n; i++) visit(w[i])
		if (missing != "") { print "missing modules:" missing > "/dev/stderr"; exit 1 }
	}' "$depfile"
}

build_tiny() {
	local out=$1 tmp=$2
	local kpkg kver root mod
	kpkg=$(kernel_package)
	if [ -z "$kpkg" ]; then
		log "tiny: no package lists? running apt-get update"
		apt-get update -q >&2 || true
		kpkg=$(kernel_package)
	fi
	[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 to a kernel package"
	log "tiny: downloading $kpkg busybox-static"
	download "$tmp/debs" "$kpkg" busybox-static
	dpkg -x "$tmp"/debs/linux-image-*.deb "$tmp/kernel"
	dpkg -x "$tmp"/debs/busybox-static_*.deb "$tmp/busybox"
	local bb=$tmp/busybox/bin/busybox
	[ -x "$bb" ] || die "busybox-static package has no bin/busybox"
	kver=$(ls "$tmp/kernel/lib/modules")
	"$bb" depmod -b "$tmp/kernel" "$kver"

	root=$tmp/root
	mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,mnt,root} \
		"$root/lib/modules/$kver"
	cp "$bb" "$root/bin/busybox"
	for a in $("$bb" --list); do
		[ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
	done
	local order=()
	mapfile -t order < <(module_closure \
		"$tmp/kernel/lib/modules/$kver/modules.dep" "${TINY_MODULES[@]}")
	: >"$root/etc/tiny-modules"
	for mod in "${order[@]}"; do
		mkdir -p "$root/lib/modules/$kver/$(dirname "$mod")"
		cp "$tmp/kernel/lib/modules/$kver/$mod" "$root/lib/modules/$kver/$mod"
		printf '/lib/modules/%s/%s\n' "$kver" "$mod" >>"$root/etc/tiny-modules"
	done
	install -m 0755 "$guest_dir/tiny-init" "$root/sbin/tiny-init"
	ln -s tiny-init "$root/sbin/tiny-dhcp"
	install -m 0644 "$guest_dir/tiny-inittab" "$root/etc/inittab"
	ln -s bin/busybox "$root/init"
	mknod -m 0600 "$root/dev/console" c 5 1
	mknod -m 0666 "$root/dev/null" c 1 3
	echo "$kver" >"$root/etc/tiny-kernel"
	(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) |
		gzip -9 >"$out/initrd.img"
	cp "$tmp/kernel/boot/vmlinuz-$kver" "$out/vmlinuz"
	printf 'kernel=%s\nmodules=%s\n' "$kver" "${order[*]}" >"$out/MANIFEST"
}

cloud_cleanup_mounts() {
	local rootfs=$1 m
	for m in dev/pts dev proc sys; do
		if mountpoint -q "$rootfs/$m" 2>/dev/null; then
			umount -l "$rootfs/$m" || true
		fi
	done
}

build_cloud() {
	local out=$1 tmp=$2
	local rootfs=$tmp/rootfs mirror kver
	mirror=$(mirror_url)
	log "cloud: debootstrap $suite from $mirror (about 2 minutes)"
	debootstrap --variant=minbase --include="$CLOUD_PKGS" \
		"$suite" "$rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
		tail -30 "$tmp/debootstrap.log" >&2
		die "debootstrap failed (full log above)"
	}
	# Mounts for chroot commands; removed by the caller's trap as well.
	mount -t proc proc "$rootfs/proc"
	mount -t sysfs sys "$rootfs/sys"
	mount --bind /dev "$rootfs/dev"

	log "cloud: configuring"
	printf 'LABEL=rootfs / ext4 defaults,errors=remount-ro 0 1\n' >"$rootfs/etc/fstab"
	printf 'debian\n' >"$rootfs/etc/hostname"
	printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' \
		>"$rootfs/etc/hosts"
	printf 'source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n' \
		>"$rootfs/etc/network/interfaces"
	install -m 0644 "$guest_dir/cloud-90-virt-autoscaler.cfg" \
		"$rootfs/etc/cloud/cloud.cfg.d/90-virt-autoscaler.cfg"
	install -m 0644 "$guest_dir/cloud-initramfs-modules" \
		"$rootfs/etc/initramfs-tools/modules"
	sed -i 's/^MODULES=.*/MODULES=list/' \
		"$rootfs/etc/initramfs-tools/initramfs.conf"
	chroot "$rootfs" update-initramfs -u -k all >&2
	# Timers that only cost CPU in short-lived test guests; no graphical
	# target to reach.
	chroot "$rootfs" systemctl disable --quiet apt-daily.timer \
		apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
		2>/dev/null || true
	chroot "$rootfs" systemctl set-default --quiet multi-user.target
	chroot "$rootfs" passwd -l root >/dev/null
	# Generalize: every clone gets its own identity from cloud-init.
	rm -f "$rootfs"/etc/ssh/ssh_host_*
	: >"$rootfs/etc/machine-id"
	rm -f "$rootfs/var/lib/dbus/machine-id"
	chroot "$rootfs" cloud-init clean --logs --seed >&2
	chroot "$rootfs" apt-get clean
	rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log \
		"$rootfs"/tmp/* "$rootfs"/var/tmp/*
	cloud_cleanup_mounts "$rootfs"

	kver=$(ls "$rootfs/lib/modules" | sort -V | tail -1)
	cp "$rootfs/boot/vmlinuz-$kver" "$out/vmlinuz"
	cp "$rootfs/boot/initrd.img-$kver" "$out/initrd.img"

	log "cloud: making the ext4 file system and the qcow2 image"
	truncate -s 3G "$tmp/base.raw"
	mkfs.ext4 -q -L rootfs -d "$rootfs" "$tmp/base.raw"
	qemu-img convert -O qcow2 "$tmp/base.raw" "$out/base.qcow2"
	rm -f "$tmp/base.raw"
	printf 'kernel=%s\ncmdline=root=LABEL=rootfs rw console=ttyS0 net.ifnames=0\n' \
		"$kver" >"$out/MANIFEST"
}

# Build image NAME unless its current recipe is cached; print its dir.
ensure() {
	local name=$1 dir lock tmp out start
	dir=$(image_dir "$name")
	mkdir -p "$cache"
	chmod 0755 "$cache" "$(dirname "$cache")" 2>/dev/null || true
	lock=$cache/.$name.lock
	exec {lockfd}>"$lock"
	flock "$lockfd"
	if [ -f "$dir/.complete" ]; then
		log "$name: cached in $dir"
	else
		start=$(date +%s)
		tmp=$(mktemp -d "$cache/.$name-build-XXXXXX")
		chmod 0755 "$tmp"
		# shellcheck disable=SC2064
		trap "cloud_cleanup_mounts '$tmp/rootfs'; rm -rf --one-file-system '$tmp'" EXIT
		out=$tmp/out
		mkdir -p "$out"
		"build_$name" "$out" "$tmp"
		chmod 0755 "$out"
		chmod 0644 "$out"/*
		date -u +%FT%TZ >"$out/.complete"
		rm -rf "$dir"
		mv "$out" "$dir"
		rm -rf --one-file-system "$tmp"
		trap - EXIT
		log "$name: built in $(($(date +%s) - start)) s: $dir"
	fi
	# Older recipes of the same image: keep the newest one (a test run that
	# started before the recipe changed may still use it), remove the rest.
	ls -dt "$cache/$name"-*/ 2>/dev/null | sed 's|/$||' | grep -vxF "$dir" |
		tail -n +2 | while read -r old; do
		rm -rf "$old"
	done
	exec {lockfd}>&-
	printf '%s\n' "$dir"
}

main() {
	if [ "${1:-}" = --path ]; then
		[ $# -eq 2 ] || die "usage: images.sh --path NAME"
		image_dir "$2"
		return
	fi
	[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, mknod)"
	local names=("$@") name dir
	[ ${#names[@]} -gt 0 ] || names=(tiny cloud)
	for name in "${names[@]}"; do
		case "$name" in
		tiny)
			dir=$(ensure tiny)
			printf 'export VA_TEST_TINY_KERNEL=%s\n' "$dir/vmlinuz"
			printf 'export VA_TEST_TINY_INITRD=%s\n' "$dir/initrd.img"
			;;
		cloud)
			dir=$(ensure cloud)
			printf 'export VA_TEST_CLOUD_IMAGE=%s\n' "$dir/base.qcow2"
			printf 'export VA_TEST_CLOUD_KERNEL=%s\n' "$dir/vmlinuz"
			printf 'export VA_TEST_CLOUD_INITRD=%s\n' "$dir/initrd.img"
			;;
		-h | --help) sed -n '2,22p' "$0"; exit 0 ;;
		*) die "unknown image '$name' (tiny, cloud)" ;;
		esac
	done
}

main "$@"
