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

#endif
