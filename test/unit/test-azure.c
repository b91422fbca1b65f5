/* test-azure.c - Azure document parsing, driven by test/data/azure.
 *
 * events/NAME.json must parse and yield what events/NAME.expect lists;
 * events/NAME.bad must be refused with -EBADMSG. The same holds for
 * compute/. Adding a case means adding data files. The .expect format, one
 * directive a line ('#' starts a comment):
 *   incarnation N
 *   ignored N
 *   events N          (optional: count when only the first events are listed)
 *   event ID TYPE STATUS SOURCE NOT_BEFORE_SEC DURATION resources=A,B
 *                     (SOURCE '-' for ""; NOT_BEFORE_SEC 0 for unknown)
 *   description TEXT  (of the event above; without it the description is "")
 *   description-len N (its length in bytes, for long ones)
 *   names NAME yes|no (event_names_resource on the event above)
 * compute/NAME.expect holds one line: name NAME. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "azure.h"
#include "event.h"
#include "util.h"

#define EVENTS_DIR  "test/data/azure/events"
#define COMPUTE_DIR "test/data/azure/compute"

/* Reads a whole file into an exactly sized buffer (no NUL added), so
 * AddressSanitizer catches any read past the length the parser was given. */
static char *read_data(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rbe");
	char *buf = NULL;
	size_t len = 0;
	char chunk[4096];
	size_t k;

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

static char *sibling(const char *path, const char *ext)
{
	const char *dot = strrchr(path, '.');

	return xasprintf("%.*s%s", (int)(dot - path), path, ext);
}

static uint64_t parse_u64(const char *file, unsigned line, const char *s)
{
	uint64_t v;

	if (!s || parse_uint64(s, 0, UINT64_MAX, &v) < 0)
		fail_msg("%s:%u: bad number '%s'", file, line, s ? s : "(none)");
	return v;
}

static int64_t parse_i64(const char *file, unsigned line, const char *s)
{
	if (s && s[0] == '-')
		return -(int64_t)parse_u64(file, line, s + 1);
	return (int64_t)parse_u64(file, line, s);
}

static void check_description(const char *file, unsigned line, const struct spot_event *ev,
			      bool checked)
{
	if (ev && !checked && ev->description[0] != '\0')
		fail_msg("%s:%u: event '%s' has description '%s', expected none", file, line,
			 ev->id, ev->description);
}

static void check_event_line(const char *file, unsigned line, char *rest,
			     const struct spot_event *ev)
{
	char *save = NULL, *tok[7];
	const char *resources;
	char listed[EVENT_RESOURCES_MAX * (EVENT_RESOURCE_MAX + 1) + 1] = "";
	size_t off = 0;

	for (int i = 0; i < 7; i++) {
		tok[i] = strtok_r(i == 0 ? rest : NULL, " ", &save);
		if (!tok[i])
			fail_msg("%s:%u: event line needs 7 fields", file, line);
	}
	if (strncmp(tok[6], "resources=", 10) != 0)
		fail_msg("%s:%u: expected resources=", file, line);
	resources = tok[6] + 10;

	for (size_t i = 0; i < ev->n_resources; i++)
		off += (size_t)snprintf(listed + off, sizeof(listed) - off, "%s%s",
					i ? "," : "", ev->resources[i]);

	if (strcmp(ev->id, tok[0]) != 0 ||
	    strcmp(event_type_to_string(ev->type), tok[1]) != 0 ||
	    strcmp(event_status_to_string(ev->status), tok[2]) != 0 ||
	    strcmp(ev->source, strcmp(tok[3], "-") == 0 ? "" : tok[3]) != 0 ||
	    ev->not_before_usec != parse_u64(file, line, tok[4]) * USEC_PER_SEC ||
	    ev->duration_sec != parse_i64(file, line, tok[5]) ||
	    strcmp(listed, resources) != 0)
		fail_msg("%s:%u: got event %s %s %s '%s' %" PRIu64 ".%06" PRIu64 " %" PRId64
			 " resources=%s", file, line, ev->id, event_type_to_string(ev->type),
			 event_status_to_string(ev->status), ev->source,
			 ev->not_before_usec / USEC_PER_SEC, ev->not_before_usec % USEC_PER_SEC,
			 ev->duration_sec, listed);
	assert_int_equal(ev->provider, PROVIDER_AZURE);
}

/* Every parsed event survives the JSON form the state file keeps. */
static void check_round_trip(const struct spot_event *ev)
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

static void test_events_case(void **state)
{
	const char *path = *state;
	char *expect = sibling(path, ".expect"), *line = NULL, *body;
	struct event_list list = { 0 };
	uint64_t incarnation = UINT64_MAX;
	size_t len, cap = 0, n_ignored = SIZE_MAX, listed = 0, want_events = SIZE_MAX;
	const struct spot_event *cur = NULL;
	bool desc_checked = true, saw_incarnation = false, saw_ignored = false;
	unsigned lineno = 0;
	FILE *f;
	int r;

	body = read_data(path, &len);
	r = azure_parse_events(body, len, &incarnation, &list, &n_ignored);
	if (r != 0)
		fail_msg("%s: azure_parse_events() = %d", path, r);

	f = fopen(expect, "re");
	if (!f)
		fail_msg("%s: missing '%s'", path, expect);
	while (getline(&line, &cap, f) >= 0) {
		char *rest, *kw;

		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		kw = line;
		rest = strchr(line, ' ');
		if (!rest)
			fail_msg("%s:%u: directive without argument", expect, lineno);
		*rest++ = '\0';

		if (strcmp(kw, "incarnation") == 0) {
			assert_int_equal(incarnation, parse_u64(expect, lineno, rest));
			saw_incarnation = true;
		} else if (strcmp(kw, "ignored") == 0) {
			if (n_ignored != parse_u64(expect, lineno, rest))
				fail_msg("%s:%u: %zu ignored", expect, lineno, n_ignored);
			saw_ignored = true;
		} else if (strcmp(kw, "events") == 0) {
			want_events = (size_t)parse_u64(expect, lineno, rest);
		} else if (strcmp(kw, "event") == 0) {
			check_description(expect, lineno, cur, desc_checked);
			if (listed >= list.n_events)
				fail_msg("%s:%u: only %zu events parsed", expect, lineno, list.n_events);
			cur = &list.events[listed++];
			desc_checked = false;
			check_event_line(expect, lineno, rest, cur);
			check_round_trip(cur);
		} else if (strcmp(kw, "description") == 0 && cur) {
			if (strcmp(cur->description, rest) != 0)
				fail_msg("%s:%u: description '%s'", expect, lineno, cur->description);
			desc_checked = true;
		} else if (strcmp(kw, "description-len") == 0 && cur) {
			assert_int_equal(strlen(cur->description), parse_u64(expect, lineno, rest));
			desc_checked = true;
		} else if (strcmp(kw, "names") == 0 && cur) {
			char *answer = strrchr(rest, ' ');

			if (!answer)
				fail_msg("%s:%u: names NAME yes|no", expect, lineno);
			*answer++ = '\0';
			if (event_names_resource(cur, rest) != (strcmp(answer, "yes") == 0))
				fail_msg("%s:%u: event_names_resource('%s') wrong", expect, lineno, rest);
		} else {
			fail_msg("%s:%u: unknown directive '%s'", expect, lineno, kw);
		}
	}
	check_description(expect, lineno, cur, desc_checked);
	if (!saw_incarnation || !saw_ignored)
		fail_msg("%s: needs incarnation and ignored lines", expect);
	if (want_events == SIZE_MAX)
		want_events = listed;
	if (list.n_events != want_events || listed > want_events)
		fail_msg("%s: %zu events parsed, %zu expected", path, list.n_events, want_events);

	fclose(f);
	free(line);
	event_list_done(&list);
	free(body);
	free(expect);
}

static void test_events_bad(void **state)
{
	const char *path = *state;
	struct event_list list = { .events = (void *)&list, .n_events = 77 };
	uint64_t incarnation = 12345;
	size_t len, n_ignored = 66;
	char *body = read_data(path, &len);
	int r;

	r = azure_parse_events(body, len, &incarnation, &list, &n_ignored);
	if (r != -EBADMSG)
		fail_msg("%s: azure_parse_events() = %d, expected -EBADMSG", path, r);
	/* Nothing is written on failure. */
	assert_ptr_equal(list.events, &list);
	assert_int_equal(list.n_events, 77);
	assert_int_equal(incarnation, 12345);
	assert_int_equal(n_ignored, 66);
	free(body);
}

static void test_compute_case(void **state)
{
	const char *path = *state;
	char *expect = sibling(path, ".expect"), *want, *name = NULL, *body;
	size_t len, want_len;
	int r;

	body = read_data(path, &len);
	want = read_data(expect, &want_len);
	if (want_len < 6 || strncmp(want, "name ", 5) != 0 || want[want_len - 1] != '\n')
		fail_msg("%s: expected 'name NAME' and a newline", expect);
	r = azure_parse_compute_name(body, len, &name);
	if (r != 0)
		fail_msg("%s: azure_parse_compute_name() = %d", path, r);
	assert_int_equal(strlen(name), want_len - 6);
	assert_memory_equal(name, want + 5, want_len - 6);
	free(name);
	free(want);
	free(body);
	free(expect);
}

static void test_compute_bad(void **state)
{
	const char *path = *state;
	char *name = (char *)path, *body;
	size_t len;
	int r;

	body = read_data(path, &len);
	r = azure_parse_compute_name(body, len, &name);
	if (r != -EBADMSG)
		fail_msg("%s: azure_parse_compute_name() = %d, expected -EBADMSG", path, r);
	assert_ptr_equal(name, path);
	free(body);
}

/* The body handed over by the transport is a length, not a C string. */
static void test_length_bounded(void **state)
{
	static const char doc[] = "{\"DocumentIncarnation\":5,\"Events\":[]}";
	struct event_list list = { 0 };
	uint64_t incarnation = 0;
	char buf[sizeof(doc) + 8];
	size_t n = sizeof(doc) - 1;
	char *name = NULL;

	memcpy(buf, doc, n);
	memcpy(buf + n, "garbage!", 8);  /* no NUL anywhere */
	assert_int_equal(azure_parse_events(buf, n, &incarnation, &list, NULL), 0);
	assert_int_equal(incarnation, 5);
	assert_int_equal(list.n_events, 0);
	event_list_done(&list);

	/* One byte short is a truncated document; the garbage is not JSON. */
	assert_int_equal(azure_parse_events(buf, n - 1, &incarnation, &list, NULL), -EBADMSG);
	assert_int_equal(azure_parse_events(buf, sizeof(buf), &incarnation, &list, NULL), -EBADMSG);
	assert_int_equal(azure_parse_events(NULL, 0, &incarnation, &list, NULL), -EBADMSG);

	/* A NUL does not end the body early: what follows it still counts. */
	assert_int_equal(azure_parse_events("{\"DocumentIncarnation\":1}\0{", 27,
					    &incarnation, &list, NULL), -EBADMSG);
	assert_int_equal(azure_parse_events("{\"DocumentIncarnation\":1}\0", 26,
					    &incarnation, &list, NULL), -EBADMSG);
	assert_int_equal(azure_parse_events("{\"DocumentIncarnation\":1}\0", 25,
					    &incarnation, &list, NULL), 0);
	event_list_done(&list);

	memcpy(buf, "{\"name\":\"vm7\"}xxxxxxxxxxxxxxx", 29);
	assert_int_equal(azure_parse_compute_name(buf, 14, &name), 0);
	assert_string_equal(name, "vm7");
	free(name);
	assert_int_equal(azure_parse_compute_name(buf, 13, &name), -EBADMSG);
}

static void test_null_outputs(void **state)
{
	static const char doc[] = "{\"DocumentIncarnation\":8,\"Events\":[{\"EventId\":\"x\","
				  "\"EventType\":\"Preempt\",\"EventStatus\":\"Scheduled\"},{}]}";
	struct event_list list = { 0 };

	assert_int_equal(azure_parse_events(doc, sizeof(doc) - 1, NULL, &list, NULL), 0);
	assert_int_equal(list.n_events, 1);
	assert_string_equal(list.events[0].id, "x");
	event_list_done(&list);
	assert_null(list.events);
	assert_int_equal(list.n_events, 0);
	event_list_done(&list);   /* done twice is harmless */
	event_list_done(NULL);
}

static void test_approval_body(void **state)
{
	static const char *const ids[] = {
		"4CAEA225-A741-474D-A72E-428C86FCD853",
		"602d9444-d2cd-49c7-8624-8643e7171297",
		"quote\" backslash\\ slash/ tab\t nl\n ctl\x01 utf8-\xc3\xa9",
		"",
	};
	char *body;

	body = azure_approval_body(ids[0]);
	assert_non_null(body);
	assert_string_equal(body, "{\"StartRequests\":[{\"EventId\":\"4CAEA225-A741-474D-A72E-428C86FCD853\"}]}");
	free(body);

	for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
		const cJSON *requests, *request, *id;
		cJSON *root;

		body = azure_approval_body(ids[i]);
		assert_non_null(body);
		/* Escaped: no raw control character or bare quote leaks out. */
		for (const char *p = body; *p; p++)
			assert_true((unsigned char)*p >= 0x20);
		root = cJSON_Parse(body);
		assert_non_null(root);
		requests = cJSON_GetObjectItemCaseSensitive(root, "StartRequests");
		assert_true(cJSON_IsArray(requests));
		assert_int_equal(cJSON_GetArraySize(requests), 1);
		request = cJSON_GetArrayItem(requests, 0);
		id = cJSON_GetObjectItemCaseSensitive(request, "EventId");
		assert_true(cJSON_IsString(id));
		assert_string_equal(id->valuestring, ids[i]);
		cJSON_Delete(root);
		free(body);
	}
	assert_null(azure_approval_body(NULL));
}

static void test_paths(void **state)
{
	assert_string_equal(AZURE_EVENTS_PATH, "/metadata/scheduledevents?api-version=2020-07-01");
	assert_string_equal(AZURE_COMPUTE_PATH, "/metadata/instance/compute?api-version=2021-02-01");
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds a test per file in dir ending in ext; returns how many. */
static size_t add_cases(struct CMUnitTest **tests, size_t *n, const char *dir, const char *ext,
			CMUnitTestFunction fn)
{
	char **names = NULL;
	size_t n_names = 0;
	struct dirent *de;
	DIR *d;

	d = opendir(dir);
	if (!d) {
		fprintf(stderr, "cannot open '%s' (run from the top directory): %s\n", dir,
			strerror(errno));
		exit(EXIT_FAILURE);
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !str_endswith(de->d_name, ext))
			continue;
		names = xrealloc(names, (n_names + 1) * sizeof(*names));
		names[n_names++] = xasprintf("%s/%s", dir, de->d_name);
	}
	closedir(d);
	qsort(names, n_names, sizeof(*names), compare_names);

	*tests = xrealloc(*tests, (*n + n_names) * sizeof(**tests));
	for (size_t i = 0; i < n_names; i++)
		(*tests)[(*n)++] = (struct CMUnitTest){
			.name = names[i],
			.test_func = fn,
			.initial_state = names[i],
		};
	free(names);  /* the strings live on in the tests */
	return n_names;
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_length_bounded),
		cmocka_unit_test(test_null_outputs),
		cmocka_unit_test(test_approval_body),
		cmocka_unit_test(test_paths),
	};
	struct CMUnitTest *tests = NULL;
	size_t n = 0;
	int failed;

	tests = xmalloc(sizeof(fixed));
	memcpy(tests, fixed, sizeof(fixed));
	n = ELEMENTSOF(fixed);
	/* Guard against a data directory that silently went missing. */
	if (add_cases(&tests, &n, EVENTS_DIR, ".json", test_events_case) < 20 ||
	    add_cases(&tests, &n, EVENTS_DIR, ".bad", test_events_bad) < 10 ||
	    add_cases(&tests, &n, COMPUTE_DIR, ".json", test_compute_case) < 3 ||
	    add_cases(&tests, &n, COMPUTE_DIR, ".bad", test_compute_bad) < 3) {
		fprintf(stderr, "test data missing under test/data/azure\n");
		return EXIT_FAILURE;
	}
	failed = _cmocka_run_group_tests("azure", tests, n, NULL, NULL);
	for (size_t i = ELEMENTSOF(fixed); i < n; i++)
		free((void *)tests[i].initial_state);
	free(tests);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
