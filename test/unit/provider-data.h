/* provider-data.h - shared by the provider tests: reading a data
 * file into an exactly sized buffer, its .expect file, and the JSON round
 * trip every parsed event must survive. */
#ifndef SPOT_TEST_PROVIDER_DATA_H
#define SPOT_TEST_PROVIDER_DATA_H

/* Reads a whole file into an exactly sized buffer (no NUL added), so
 * AddressSanitizer catches any read past the length a parser was given. */
_unused_ static char *read_data(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rbe");
	char *buf = NULL, chunk[4096];
	size_t len = 0, k;

	if (!f)
		fail_msg("cannot open '%s': %s", path, strerror(errno));
	while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		buf = xrealloc(buf, len + k);
		memcpy(buf + len, chunk, k);
		len += k;
	}
	assert_false(ferror(f));
	fclose(f);
	if (!buf)
		buf = xmalloc(1);
	*ret_len = len;
	return buf;
}

/* The expect file without comment lines, and its "now" line taken out. */
_unused_ static char *read_expect(const char *path, uint64_t *ret_now)
{
	char *dot = strrchr(path, '.'), *name, *line = NULL, *out = xstrdup("");
	size_t cap = 0;
	FILE *f;

	name = xasprintf("%.*s.expect", (int)(dot - path), path);
	f = fopen(name, "re");
	if (!f)
		fail_msg("%s: missing '%s'", path, name);
	*ret_now = 0;
	while (getline(&line, &cap, f) >= 0) {
		char *joined;

		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (strncmp(line, "now ", 4) == 0) {
			line[strcspn(line, "\n")] = '\0';
			if (parse_uint64(line + 4, 0, UINT32_MAX, ret_now) < 0)
				fail_msg("%s: bad now line", name);
			*ret_now *= USEC_PER_SEC;
			continue;
		}
		joined = xasprintf("%s%s", out, line);
		free(out);
		out = joined;
	}
	fclose(f);
	free(line);
	free(name);
	return out;
}

/* Every event survives the JSON form the state file keeps. */
_unused_ static void check_round_trip(const struct spot_event *ev)
{
	struct spot_event back;
	cJSON *o;

	o = event_to_json(ev, 0, false);
	assert_non_null(o);
	event_init(&back);
	assert_int_equal(event_from_json(o, &back), 0);
	assert_true(event_equal(ev, &back));
	event_done(&back);
	cJSON_Delete(o);
}

#endif
