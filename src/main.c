/*
 * main.c: virt-autoscaler's command-line entry point; dispatches to the
 * subcommands listed in commands[].
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "log.h"
#include "va_config.h"

struct global_opts global_opts = {
	.config_path = VA_DEFAULT_CONFIG,
};

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{"check", cmd_check, "validate the configuration and print it with defaults filled in"},
	{"run", cmd_run, "run the daemon in the foreground"},
	{"status", cmd_status, "show the running daemon's groups and instances"},
	{"events", cmd_events, "show the activity history"},
	{"explain", cmd_explain, "show a group's recent scaling decisions and why"},
	{"scale", cmd_scale, "set a group's desired size by hand"},
	{"pause", cmd_pause, "stop scaling and repairing a group"},
	{"resume", cmd_resume, "resume scaling and repairing a group"},
	{"refresh", cmd_refresh, "replace a group's instances in batches (rolling update)"},
	{"metrics", cmd_metrics, "show an instance's recent CPU, memory, disk and network figures"},
	{"simulate", cmd_simulate, "replay a load trace through a group's scaling policy"},
	/* no summary: not in the help (for bash completion) */
	{"_complete", cmd_complete, NULL},
	{NULL, NULL, NULL},
};

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: virt-autoscaler [-c FILE] [-v] COMMAND [ARGS]\n"
		"\n"
		"Autoscaling groups of virtual machines on libvirt hosts.\n"
		"\n"
		"Global options:\n"
		"  -c, --config FILE  configuration file (default %s)\n"
		"  -v, --verbose      log debug messages\n"
		"  -q, --quiet        log only warnings and errors\n"
		"  -h, --help         show this help\n"
		"  -V, --version      show the version\n"
		"\n"
		"Commands:\n",
		VA_DEFAULT_CONFIG);
	for (const struct command *c = commands; c->name; c++)
		if (c->summary)
			fprintf(out, "  %-10s %s\n", c->name, c->summary);
	fprintf(out, "\nSee virt-autoscaler(8) and autoscale.yaml(5).\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int opt;

	/* under systemd's journal from the first line on (daemon.log_format
	 * may change it once the configuration is read) */
	log_set_format(LOG_FORMAT_AUTO);
	/* '+': stop at the first non-option, the subcommand's name. */
	while ((opt = getopt_long(argc, argv, "+c:vqhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			global_opts.config_path = optarg;
			break;
		case 'v':
			log_set_level(LOG_LEVEL_DEBUG);
			break;
		case 'q':
			log_set_level(LOG_LEVEL_WARN);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("virt-autoscaler %s\n", VA_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[optind], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[optind], "version") == 0) {
		printf("virt-autoscaler %s\n", VA_VERSION);
		return 0;
	}
	for (const struct command *c = commands; c->name; c++) {
		if (strcmp(argv[optind], c->name) == 0) {
			int sub_argc = argc - optind;
			char **sub_argv = argv + optind;

			/* 0, not 1: glibc then starts afresh and takes the
			 * subcommand's ordering ('+' or not); with 1 it keeps
			 * the '+' of the scan above, and "explain web --limit
			 * 3" stopped at "web" */
			optind = 0;
			return c->fn(sub_argc, sub_argv);
		}
	}
	fprintf(stderr, "virt-autoscaler: unknown command '%s'\n\n",
		argv[optind]);
	usage(stderr);
	return 2;
}
