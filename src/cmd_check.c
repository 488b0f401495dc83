/*
 * cmd_check.c: `virt-autoscaler check [-c FILE] [--schema]`.
 *
 * Validates the configuration; on success prints the effective
 * configuration (defaults filled in) as YAML on stdout and exits 0 (the
 * output itself passes check and prints identically), with any warnings
 * ("FILE:LINE:COL: warning: ...") on stderr; on failure prints
 * one line per problem on stderr and exits 1. --schema prints every key
 * with its type, default, bounds and reload flag instead.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "util.h"

static void
schema_line(const struct config_key_info *k, void *arg)
{
	(void)arg;
	printf("%s\t%s\t%s\t%s\t%s\t%s\n", k->key, k->type,
	       k->required ? "required" : (k->def ? k->def : "-"),
	       k->bounds ? k->bounds : "-", k->reloadable ? "reload" : "restart",
	       k->doc ? k->doc : "");
}

int
cmd_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"schema", no_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct strbuf errors = STRBUF_INIT, out = STRBUF_INIT;
	struct config *cfg;
	int opt, rc = 1;

	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			global_opts.config_path = optarg;
			break;
		case 's':
			config_schema_walk(schema_line, NULL);
			return 0;
		case 'h':
			printf("usage: virt-autoscaler check [-c FILE] [--schema]\n"
			       "Validate the configuration and print it with "
			       "defaults filled in.\n"
			       "  --schema  list every key: type, default, "
			       "bounds, reload/restart, meaning\n");
			return 0;
		default:
			fprintf(stderr, "usage: virt-autoscaler check [-c FILE] "
				"[--schema]\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "virt-autoscaler check: unexpected argument "
			"'%s'\n", argv[optind]);
		return 2;
	}
	cfg = config_load(global_opts.config_path, &errors);
	if (!cfg) {
		fputs(strbuf_str(&errors), stderr);
		goto cleanup;
	}
	if (cfg->warnings)
		fputs(cfg->warnings, stderr);
	config_print(cfg, &out);
	fputs(strbuf_str(&out), stdout);
	rc = fflush(stdout) == 0 ? 0 : 1;
cleanup:
	config_free(cfg);
	strbuf_release(&errors);
	strbuf_release(&out);
	return rc;
}
