/* fuzz-config.c - libFuzzer target for the config file parser: any bytes
 * as a config file are accepted or refused with messages, never crash, and
 * an accepted file prints (config_print, what `spot-agent check` shows) as
 * a config file that loads to the very same configuration. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"
#include "fuzz-util.h"

/* Loads text as a config file through a memfd. 0 or -errno; *ret is then
 * the configuration (config_done). */
static int load(const char *text, size_t size, struct config *ret)
{
	struct cmdline cl = { 0 };
	char path[64];
	int fd = memfd_create("fuzz-config", MFD_CLOEXEC), r;

	fuzz_assert(fd >= 0);
	fuzz_assert(size == 0 || write(fd, text, size) == (ssize_t)size);
	(void)snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	cl.command = COMMAND_CHECK;
	cl.config_path = path;
	cl.config_path_given = true;
	r = config_load(&cl, ret);
	close(fd);
	return r;
}

/* config_print's text without its first line, which names the file read.
 * Caller frees. */
static char *print(const struct config *c, size_t *ret_len)
{
	char *text = NULL, *nl;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	fuzz_assert(f);
	config_print(c, f);
	fuzz_assert(fclose(f) == 0 && text);
	nl = strchr(text, '\n');
	fuzz_assert(nl && text[0] == '#');
	len -= (size_t)(nl + 1 - text);
	memmove(text, nl + 1, len + 1);
	*ret_len = len;
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c, again;
	size_t len, len2;
	char *text, *text2;

	if (load((const char *)data, size, &c) < 0)
		return 0;
	text = print(&c, &len);
	/* What check prints must load, and print the same again. */
	fuzz_assert(load(text, len, &again) == 0);
	text2 = print(&again, &len2);
	fuzz_assert(len == len2 && memcmp(text, text2, len) == 0);
	free(text2);
	free(text);
	config_done(&again);
	config_done(&c);
	return 0;
}
