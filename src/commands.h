/*
 * commands.h: the subcommands of the virt-autoscaler binary.
 *
 * Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand itself, so getopt works as usual) and returns the process
 * exit status: 0 success, 1 failure, 2 usage error.
 */
#ifndef VA_COMMANDS_H
#define VA_COMMANDS_H

/* Options shared by every subcommand, parsed before the subcommand name. */
struct global_opts {
	const char *config_path; /* -c FILE, or the built-in default */
};

extern struct global_opts global_opts;

int cmd_check(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
/* daemon.c: the daemon */
int cmd_run(int argc, char **argv);
/* client.c: operator commands through the daemon's admin API */
int cmd_status(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_scale(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_refresh(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
/* the names bash completion offers (groups, instances); not in the help */
int cmd_complete(int argc, char **argv);

#endif
