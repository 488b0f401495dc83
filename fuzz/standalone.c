/*
 * standalone.c: replay a fuzz target's corpus without libFuzzer.
 * Arguments are files or directories (every regular file inside is fed
 * to LLVMFuzzerTestOneInput once). A crash or sanitizer report fails the
 * test; otherwise it prints how many inputs ran.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
run_file(const char *path, unsigned *count)
{
	size_t len;
	char *buf = util_read_file(path, 16 << 20, &len);

	if (!buf) {
		fprintf(stderr, "standalone: cannot read %s\n", path);
		return -1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
	free(buf);
	(*count)++;
	return 0;
}

int
main(int argc, char **argv)
{
	unsigned count = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		struct dirent **names;
		int n;

		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "standalone: no such path %s\n", argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i], &count) != 0)
				return 1;
			continue;
		}
		n = scandir(argv[i], &names, NULL, alphasort);
		if (n < 0) {
			fprintf(stderr, "standalone: cannot list %s\n", argv[i]);
			return 1;
		}
		for (int j = 0; j < n; j++) {
			char *path = xasprintf("%s/%s", argv[i], names[j]->d_name);
			int rc = 0;

			if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
				rc = run_file(path, &count);
			free(path);
			free(names[j]);
			if (rc != 0) {
				for (j++; j < n; j++)
					free(names[j]);
				free(names);
				return 1;
			}
		}
		free(names);
	}
	printf("%u inputs ran without a crash\n", count);
	return count ? 0 : 1;
}
