#!/usr/bin/env bash
# The test guest images (scripts/images.sh), as a "service" for the tests.
#
#   scripts/services/images.sh start    build or reuse both images and print
#                                       the export lines tests need
#   scripts/services/images.sh stop     nothing to stop (the cache stays)
#   scripts/services/images.sh status   say which images are cached
#
# First build ~2.5 min (debootstrap of the cloud image), then a no-op until
# scripts/images.sh or scripts/guest/* change. stdout carries only:
#   export VA_TEST_TINY_KERNEL=.../tiny-HASH/vmlinuz
#   export VA_TEST_TINY_INITRD=.../tiny-HASH/initrd.img
#   export VA_TEST_CLOUD_IMAGE=.../cloud-HASH/base.qcow2
#   export VA_TEST_CLOUD_KERNEL=.../cloud-HASH/vmlinuz
#   export VA_TEST_CLOUD_INITRD=.../cloud-HASH/initrd.img
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)

case "${1:-}" in
start) exec "$top/scripts/images.sh" tiny cloud ;;
stop) exit 0 ;;
status)
	rc=0
	for name in tiny cloud; do
		dir=$("$top/scripts/images.sh" --path "$name")
		if [ -f "$dir/.complete" ]; then
			echo "images.sh: $name cached in $dir" >&2
		else
			echo "images.sh: $name not built (expected $dir)" >&2
			rc=3
		fi
	done
	exit $rc
	;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
