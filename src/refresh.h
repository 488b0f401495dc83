/*
 * refresh.h: instance refresh in the daemon (docs/operations.md), the
 * shell around the planner's step (converge_refresh.c). The loop's
 * thread only.
 *
 *   - setup (start, reload): each group's template is rendered and
 *     hashed (template.h) and stored, so that a rollback finds it after
 *     a restart; the group's refresh row is read;
 *   - each plan: the template and the row go into the planner; the row it
 *     returns is written first (refresh_commit: when the store refuses,
 *     the plan's starts and removals are skipped, as for a refused
 *     desired size);
 *   - START: the template the plan names; the configuration's, or a
 *     stored one (a rollback, or a group rolled back);
 *   - commands (`virt-autoscaler refresh GROUP [--cancel|--resume]`,
 *     POST /v1/groups/NAME/refresh): applied by the loop, the store
 *     first.
 * Crash safety comes from the store: the row, and each instance's
 * template hash written with the instance before its job runs.
 */
#ifndef VA_REFRESH_H
#define VA_REFRESH_H

#include "daemon_int.h"

/* g's template and refresh row (g->cfg, g->files are set). 0, or -1 with
 * err_set() when the store refused. */
int refresh_setup(struct daemon *d, struct dgroup *g);
/* Free what refresh_setup() and later plans left in g. */
void refresh_release(struct dgroup *g);
/* The planner's inputs. */
void refresh_input(struct dgroup *g, struct converge_input *in);
/* Write the plan's row when it changed; false when the store refused it
 * (then the plan's starts and removals must not be applied). */
bool refresh_commit(struct daemon *d, struct dgroup *g,
		    const struct converge_plan *plan);
/* The group and file contents to build a new instance from for template
 * hash (the configuration's when it is g's, or a stored one): 0, or -1
 * with err_set() when the stored template is missing or damaged. */
int refresh_template(struct daemon *d, struct dgroup *g, const char *hash,
		     const struct config_group **gc,
		     const struct provision_files **files);
/* A provisioning job of g failed: counts against the running refresh. */
void refresh_start_failed(struct dgroup *g);
/* The loop applies an operator's refresh command (c->kind REFRESH). */
void refresh_command(struct daemon *d, struct dgroup *g,
		     struct control_cmd *c);
/* JSON object of g's refresh for the snapshot (GET /v1/groups), or NULL
 * when the group never had one. */
char *refresh_json(const struct dgroup *g);

#endif
