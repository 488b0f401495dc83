/*
 * volume.h: VM disks through libvirt's storage API only, so the same code
 * works on a remote host (qemu+ssh://, qemu+tls://) without a shell there.
 *
 * Naming in a host's pool (the daemon's convention, see
 * docs/provisioning.md):
 *   <image basename>            the group's base image, uploaded once per
 *                               host and shared by every VM of every group
 *                               that names the same image file
 *   <image basename>.va-uploading   a marker that exists only while we upload
 *                               the base image (see volume_ensure_base)
 *   <instance id>.qcow2         a VM's overlay (volume_overlay_name)
 *   <instance id>-seed.iso      a VM's cloud-init seed (volume_seed_name)
 *
 *   <image basename>.va-sha256  the SHA-256 and size of the base image,
 *                               written once its upload was verified
 *
 * Half-uploaded base images: libvirt cannot rename a volume, so the upload
 * is bracketed by a marker volume: the marker is created first, then the
 * base volume, then the upload, and the marker is deleted last. A base
 * volume found next to a marker is an interrupted upload (the daemon died
 * or the host dropped the stream): both are deleted and the upload starts
 * again.
 *
 * Verified uploads: libvirt (9.0) reports success for an upload whose last
 * writes failed on the host (a pool that is full by less than ~450 KiB:
 * "No space left on device" only in libvirtd's log), so an upload is read
 * back through a stream and compared (SHA-256) before the checksum volume
 * is written and the marker deleted; a pool that reports less room than
 * the image needs is refused before uploading. A failed upload deletes
 * what it made. A base volume without a marker is the image when its
 * checksum volume says so; without one (an older version's upload, or a
 * volume the administrator put there) it is read back once and compared.
 * A base volume that is not the image (truncated, or another image of the
 * same name) is deleted and uploaded again — unless volumes in the pool
 * are backed by it (VMs' overlays): then it is left alone and the call
 * fails, naming one of them. Within one process,
 * concurrent calls for the same host, pool and image wait for each other
 * (the first uploads, the others reuse); two daemons uploading the same
 * image to the same pool at the same moment are not supported.
 *
 * Every function takes an open connection that it does not own, returns 0
 * (or a documented positive value) or -1 with err_set() naming the host's
 * pool and volume and libvirt's message.
 */
#ifndef VA_VOLUME_H
#define VA_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

/* Conventional names (caller frees); NULL + err_set() for a bad id. */
char *volume_overlay_name(const char *instance_id);
char *volume_seed_name(const char *instance_id);

/*
 * Make sure the pool holds the base image local_path (a file on the
 * daemon's machine) under the name of its basename, uploading it through a
 * libvirt stream when it is missing, an upload was interrupted, or the
 * volume is not the image (see "Verified uploads").
 * On success: *path_out (caller frees) is the volume's path on the host
 * (for an overlay's backing store), *format_out (caller frees, may be
 * NULL to skip) its format ("qcow2", "raw") as libvirt probed it, and
 * *uploaded (may be NULL) tells whether it was uploaded now.
 */
int volume_ensure_base(virConnectPtr conn, const char *pool,
		       const char *local_path, char **path_out,
		       char **format_out, bool *uploaded);

/*
 * Create a qcow2 overlay `name` in pool backed by backing_path (format
 * backing_format) with capacity bytes (0: the backing volume's capacity;
 * a capacity below it is raised to it). Fails if the volume exists.
 * *path_out (may be NULL) gets the new volume's path (caller frees).
 */
int volume_create_overlay(virConnectPtr conn, const char *pool,
			  const char *name, const char *backing_path,
			  const char *backing_format, uint64_t capacity,
			  char **path_out);

/*
 * Create volume `name` (format "raw") holding exactly data[0..len) — for a
 * seed ISO. An existing volume of that name is replaced.
 */
int volume_upload_bytes(virConnectPtr conn, const char *pool, const char *name,
			const void *data, size_t len, char **path_out);

/*
 * For a base image named by its pool volume (no upload): 1 and *path_out,
 * *format_out (caller frees; format_out may be NULL) when volume `name`
 * exists in pool, 0 when it does not, -1 on error. Refreshes the pool first.
 */
int volume_find(virConnectPtr conn, const char *pool, const char *name,
		char **path_out, char **format_out);

/* Delete volume `name` (and, for a base image, its checksum and marker
 * volumes). Returns 0 when deleted or already absent. */
int volume_delete(virConnectPtr conn, const char *pool, const char *name);

/* 1 if the volume exists, 0 if not, -1 on error. */
int volume_exists(virConnectPtr conn, const char *pool, const char *name);

#endif
