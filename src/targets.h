/*
 * targets.h: a group's load-balancer members (its ready instances and
 * their addresses) rendered for a load balancer, written to a file
 * atomically, and a reload URL called after the file changed.
 *
 * The renderers are pure. Nothing read from outside (an address a guest's
 * DHCP client or agent reported, an id) reaches a file unchecked: an
 * entry whose address is not an IPv4 or IPv6 address in its canonical
 * text (inet_pton then inet_ntop give it back) or whose id is not a
 * lowercase UUID is left out, so no value can end a line or start
 * another.
 *
 * The writer (struct targets_writer) is a thread of its own per group
 * with a file: the loop posts the new content (targets_writer_post, never
 * blocks), the thread writes it to a temporary file in the same
 * directory, fsyncs, renames it over the file (a reader sees the old file
 * or the new one, never a part) and fsyncs the directory; then it POSTs
 * to the reload URL (libcurl, TARGETS_POST_TIMEOUT_MS), retrying a
 * failure with a doubling backoff up to TARGETS_RETRY_MAX_MS, until it
 * succeeds or a newer content arrives (whose own POST follows).
 */
#ifndef VA_TARGETS_H
#define VA_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"
#include "util.h"

#define TARGETS_ADDR_LEN 46 /* INET6_ADDRSTRLEN */
#define TARGETS_POST_TIMEOUT_MS 5000
#define TARGETS_RETRY_FIRST_MS 1000
#define TARGETS_RETRY_MAX_MS 60000

/* One member. */
struct targets_entry {
	char id[STORE_ID_LEN + 1];     /* the instance id */
	char addr[TARGETS_ADDR_LEN];   /* its address */
};

/* s is an IPv4 or IPv6 address in canonical text form. */
bool targets_addr_valid(const char *s);
/* s is a lowercase UUID (an instance id). */
bool targets_id_valid(const char *s);

/* The name of format f ("plain", "haproxy", "nginx"). */
const char *targets_format_name(enum config_targets_format f);

/*
 * Render v (n entries, in the order given) in format f with port (0:
 * none; haproxy and nginx need one) into out, after a comment line
 * naming the group. haproxy: a whole "backend GROUP" section (HAProxy
 * has no include; the file is loaded with a second -f); nginx: server
 * lines for an upstream block's include; plain: ADDR or ADDR:PORT lines
 * ([ADDR] for IPv6 with a port). Invalid entries are left out; returns
 * how many.
 */
size_t targets_render(enum config_targets_format f, const char *group,
		      int port, const struct targets_entry *v, size_t n,
		      struct strbuf *out);

/*
 * Replace the file at path with len bytes of data atomically: a
 * temporary file in the same directory, fsync, rename, fsync of the
 * directory; mode 0644. 0, or -1 with err_set() (the old file stays).
 */
int targets_write_file(const char *path, const char *data, size_t len);

struct targets_writer;

/* A writer for group `group` (copied, for messages); NULL with err_set()
 * when no thread could be started. */
struct targets_writer *targets_writer_new(const char *group);
/*
 * Write content to path, then POST to url (NULL: none); all copied.
 * Replaces what an earlier post has not done yet. Never blocks on I/O.
 */
void targets_writer_post(struct targets_writer *w, const char *path,
			 const char *content, const char *url);
/* Stop the thread (a POST in flight is aborted) and free. Accepts NULL. */
void targets_writer_free(struct targets_writer *w);

#endif
