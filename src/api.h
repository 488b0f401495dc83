/*
 * api.h: the guest endpoints' handlers (api_guest.c), for the table of
 * handlers in api.c (daemon_http_api, http.h).
 */
#ifndef VA_API_H
#define VA_API_H

#include "http.h"

unsigned api_checkin(void *ctx, const struct http_checkin *in,
		     struct http_reply *out);
unsigned api_heartbeat(void *ctx, const struct http_heartbeat *in,
		       struct http_reply *out);

struct daemon;
/* HTTP thread: ask the loop to plan the group at its next turn (a
 * lifecycle hook's wait began or was completed); best effort. */
void api_plan_now(struct daemon *d, const char *group);

#endif
