/*
 * api.h: the guest endpoints' handlers (api_guest.c) and the commands'
 * (api_command.c), for the table of handlers in api.c (daemon_http_api,
 * http.h).
 */
#ifndef VA_API_H
#define VA_API_H

#include "http.h"

unsigned api_checkin(void *ctx, const struct http_checkin *in,
		     struct http_reply *out);
unsigned api_heartbeat(void *ctx, const struct http_heartbeat *in,
		       struct http_reply *out);

/* api_command.c: see http.h's struct http_api */
unsigned api_lifecycle(void *ctx, const char *id, const char *result,
		       const char *token, bool admin, struct http_reply *out);
unsigned api_set_desired(void *ctx, const char *name, int desired,
			 struct http_reply *out);
unsigned api_set_paused(void *ctx, const char *name, bool paused,
			struct http_reply *out);
/* POST /v1/groups/NAME/refresh: an instance refresh command (refresh.h). */
unsigned api_refresh(void *ctx, const char *name,
		     const struct http_refresh *rq, struct http_reply *out);

struct daemon;
/* HTTP thread: ask the loop to plan the group at its next turn (a
 * lifecycle hook's wait began or was completed); best effort. */
void api_plan_now(struct daemon *d, const char *group);

#endif
