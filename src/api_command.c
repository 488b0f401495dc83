/*
 * api_command.c: the HTTP requests that change something (http.c calls
 * these from its threads, through api.c's table): the operators'
 * commands (set the desired size, pause, resume), posted to the loop
 * (control.h) and waited for, and a lifecycle hook's completion, written
 * to the store with the loop asked to plan the group at once. No loop
 * state is touched here.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "daemon_int.h"
#include "secret.h"
#include "util.h"

/* Commands are applied by the loop (control.h): give it this long to
 * take one; a loop that does not is stuck, and the command is withdrawn. */
#define COMMAND_TIMEOUT_MS 10000

static unsigned
command_reply_error(const struct control_cmd *c, struct http_reply *out)
{
	return http_reply_error(out, c->status ? c->status : 503, "%s", c->error);
}

/*
 * Ask the loop to plan group at its next turn (best effort: the result
 * is in the store already, and the group's next plan takes it anyway).
 */
void
api_plan_now(struct daemon *d, const char *group)
{
	struct control_cmd c = {
		.kind = CONTROL_PLAN_NOW,
		.group = group,
	};

	/* not taken (a stopping daemon, no lease): the next plan */
	(void)control_submit(d->ctl, &c, 2000);
}

/*
 * POST /v1/instances/ID/lifecycle: the result goes into the wait's row
 * with a conditional update (the first completion wins), like a
 * check-in's booting -> ready; the loop acts on it at the group's next
 * plan (converge.h, step 6). No loop state is touched here.
 */
unsigned
api_lifecycle(void *ctx, const char *id, const char *result,
	      const char *token, bool admin, struct http_reply *out)
{
	struct daemon *d = ctx;
	struct store_instance si;
	struct store_hook_wait w;
	enum store_hook_result res;
	unsigned char uuid[16];
	char group[256];
	int rc;

	if (util_uuid_parse(id, uuid) != 0)
		return http_reply_error(out, 404, "unknown instance '%.40s'", id);
	if (store_hook_result_parse(result, &res) != 0)
		return http_reply_error(out, 400, "result: %s", err_msg());
	rc = store_instance_get(d->store_http, id, &si);
	if (rc == STORE_E_NOTFOUND)
		return http_reply_error(out, 404, "unknown instance %s", id);
	if (rc != STORE_OK)
		return http_reply_error(out, 503, "state store unavailable");
	if (si.state != STORE_INSTANCE_LAUNCH_WAIT &&
	    si.state != STORE_INSTANCE_TERMINATE_WAIT) {
		http_reply_error(out, 409, "instance %s is %s: it does not wait "
				 "for a lifecycle hook", id,
				 store_instance_state_name(si.state));
		store_instance_release(&si);
		return out->status;
	}
	snprintf(group, sizeof(group), "%s", si.group);
	store_instance_release(&si);
	rc = store_hook_wait_get(d->store_http, id, &w);
	if (rc == STORE_E_NOTFOUND)
		return http_reply_error(out, 409, "instance %s: its hook has not "
					"been sent yet; try again in a moment",
					id);
	if (rc != STORE_OK)
		return http_reply_error(out, 503, "state store unavailable");
	if (!admin && (!token || !*token))
		return http_reply_error(out, 403, "a token is needed: the hook "
					"call's \"token\", or the admin token "
					"(Authorization: Bearer)");
	if (!admin && !secret_verify(token, strlen(token), w.token_hash))
		return http_reply_error(out, 403, "wrong token for the %s hook "
					"of instance %s (a re-sent call has a "
					"new token)", store_hook_name(w.hook),
					id);
	rc = store_hook_wait_complete(d->store_http, id, res);
	if (rc == STORE_E_CONFLICT || rc == STORE_E_NOTFOUND)
		return http_reply_error(out, 409, "%s", err_msg());
	if (rc != STORE_OK)
		return http_reply_error(out, 503, "state store unavailable");
	api_plan_now(d, group);
	strbuf_adds(&out->body, "{\"instance\":");
	http_json_string(&out->body, id);
	strbuf_adds(&out->body, ",\"hook\":");
	http_json_string(&out->body, store_hook_name(w.hook));
	strbuf_adds(&out->body, ",\"result\":");
	http_json_string(&out->body, store_hook_result_name(res));
	strbuf_adds(&out->body, ",\"note\":\"applied at the group's next "
		    "plan (at once)\"}\n");
	return out->status = 200;
}

unsigned
api_set_desired(void *ctx, const char *name, int desired,
		struct http_reply *out)
{
	struct daemon *d = ctx;
	struct control_cmd c = {
		.kind = CONTROL_SET_DESIRED,
		.group = name,
		.desired = desired,
	};

	if (control_submit(d->ctl, &c, COMMAND_TIMEOUT_MS) != 0 || c.status != 200)
		return command_reply_error(&c, out);
	strbuf_addf(&out->body, "{\"group\":");
	http_json_string(&out->body, name);
	strbuf_addf(&out->body, ",\"desired\":%d,\"note\":", c.to);
	http_json_string(&out->body, c.note[0] ? c.note : "ok");
	strbuf_adds(&out->body, "}\n");
	return out->status = 200;
}

unsigned
api_set_paused(void *ctx, const char *name, bool paused, struct http_reply *out)
{
	struct daemon *d = ctx;
	struct control_cmd c = {
		.kind = CONTROL_SET_PAUSED,
		.group = name,
		.paused = paused,
	};

	if (control_submit(d->ctl, &c, COMMAND_TIMEOUT_MS) != 0 || c.status != 200)
		return command_reply_error(&c, out);
	strbuf_addf(&out->body, "{\"paused\":%s}\n", paused ? "true" : "false");
	return out->status = 200;
}

unsigned
api_refresh(void *ctx, const char *name, const struct http_refresh *rq,
	    struct http_reply *out)
{
	struct daemon *d = ctx;
	struct control_cmd c = {
		.kind = CONTROL_REFRESH,
		.group = name,
		.surge = rq->surge,
		.min_healthy = rq->min_healthy,
	};

	snprintf(c.refresh_action, sizeof(c.refresh_action), "%s", rq->action);
	snprintf(c.max_unavailable, sizeof(c.max_unavailable), "%s",
		 rq->max_unavailable);
	snprintf(c.checkpoints, sizeof(c.checkpoints), "%s", rq->checkpoints);
	if (control_submit(d->ctl, &c, COMMAND_TIMEOUT_MS) != 0 || c.status != 200)
		return command_reply_error(&c, out);
	strbuf_adds(&out->body, "{\"group\":");
	http_json_string(&out->body, name);
	strbuf_adds(&out->body, ",\"action\":");
	http_json_string(&out->body, rq->action);
	strbuf_adds(&out->body, ",\"note\":");
	http_json_string(&out->body, c.note[0] ? c.note : "ok");
	strbuf_adds(&out->body, "}\n");
	return out->status = 200;
}
