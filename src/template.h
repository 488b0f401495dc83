/*
 * template.h: a group's VM template as data, for instance refresh
 * (refresh.h). The template is everything an instance is built from that
 * a refresh replaces instances for: image, disk, vcpus, memory, direct
 * kernel boot, the user-data, network-config and domain XML template
 * files (their contents, not their paths), and the cloud-init switches.
 * Not the name prefix, the hosts, the policy or the static addresses:
 * changing those changes no running instance.
 *
 * template_body() writes it as canonical JSON (keys in a fixed order), its
 * SHA-256 in hex names it (template_hash()); every instance records the
 * hash it was built from, and the store keeps each body (store_template_*)
 * so that a rollback can build from the previous template after a
 * restart, although the configuration file names the new one.
 *
 * Pure (no I/O); the files are passed in, as groups.c read them.
 */
#ifndef VA_TEMPLATE_H
#define VA_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "provision.h"

/* The canonical JSON of gc's template with these file contents (free it). */
char *template_body(const struct config_group *gc,
		    const struct provision_files *files);
/* SHA-256 of body, 64 lowercase hex digits. */
void template_hash(const char *body, char out[65]);

/*
 * A template read back from its body: a copy of the configuration's
 * group whose template and cloud-init switches are the body's, and the
 * body's files. Everything else (name, hosts, health...) stays gc's.
 */
struct template_copy {
	struct config_group gc;
	struct provision_files files;
	char *owned[40]; /* the strings gc and files point to */
};
/* 0, or -1 with err_set() naming what is wrong (a damaged store row). */
int template_parse(const char *body, const struct config_group *gc,
		   struct template_copy *out);
void template_copy_release(struct template_copy *c);

#endif
