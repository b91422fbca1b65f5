/* test-azure.c - the Azure provider: Scheduled Events and compute
 * documents driven by test/data/azure, and rounds against a fake metadata
 * service (the compute document in parallel, a failing compute document
 * that must not stop Scheduled Events, the VM filter before the cap, the
 * approval POST), plus the transport starting a request at once.
 *
 * events/NAME.json must parse and yield what events/NAME.expect lists;
 * events/NAME.bad must be refused with -EBADMSG. The same holds for
 * compute/. Adding a case means adding data files. The .expect format, one
 * directive a line ('#' starts a comment):
 *   vm NAME           (the VM the document is parsed for; without it none:
 *                      every well-formed event is returned)
 *   incarnation N
 *   drops N           (events dropped in all)
 *   drop ID|- REASON  (the described drops in document order, as many as
 *                      PROVIDER_DROPS_MAX allows; '-' for no usable id)
 *   other N           (well-formed events for other VMs; 0 when absent)
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

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clouds/azure.h"
#include "engine/event.h"
#include "store/event-json.h"
#include "clouds/provider.h"
#include "util.h"

#define DATA_DIR "test/data/azure"
#define PLUMB_PROVIDER PROVIDER_AZURE
#define PLUMB_FIRST_ITEM "scheduled events"
#define SEC(s) ((uint64_t)(s) * USEC_PER_SEC)
#define ACK(id) (&(struct provider_ack){ .event_id = (id), .feed = FEED_AZURE_SCHEDULED })

#include "provider-data.h"

struct item {
	const char *dir;
};

struct data_case {
	char *path;
	const struct item *item;
};

#include "provider-harness.h"

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

/* The expect file's lines without comments and blank lines. */
struct expect {
	char **lines;
	unsigned *lineno;
	size_t n;
};

static void read_expect_lines(const char *path, struct expect *ret)
{
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		fail_msg("missing '%s'", path);
	*ret = (struct expect){ 0 };
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		ret->lines = xrealloc(ret->lines, (ret->n + 1) * sizeof(*ret->lines));
		ret->lineno = xrealloc(ret->lineno, (ret->n + 1) * sizeof(*ret->lineno));
		ret->lines[ret->n] = xstrdup(line);
		ret->lineno[ret->n++] = lineno;
	}
	fclose(f);
	free(line);
}

static void expect_done(struct expect *x)
{
	for (size_t i = 0; i < x->n; i++)
		free(x->lines[i]);
	free(x->lines);
	free(x->lineno);
}

static void test_events_case(void **state)
{
	const struct data_case *dc = *state;
	const char *path = dc->path;
	char *expect_path = sibling(path, ".expect"), *body;
	struct azure_document doc;
	struct expect x;
	const char *vm = NULL;
	size_t len, listed = 0, want_events = SIZE_MAX, drops_listed = 0;
	const struct spot_event *cur = NULL;
	bool desc_checked = true, saw_incarnation = false, saw_drops = false;
	uint64_t want_other = 0;
	int r;

	read_expect_lines(expect_path, &x);
	for (size_t i = 0; i < x.n; i++)
		if (strncmp(x.lines[i], "vm ", 3) == 0)
			vm = x.lines[i] + 3;

	body = read_data(path, &len);
	r = azure_parse_events(body, len, vm, &doc);
	if (r != 0)
		fail_msg("%s: azure_parse_events() = %d", path, r);

	for (size_t i = 0; i < x.n; i++) {
		unsigned lineno = x.lineno[i];
		char *kw = x.lines[i], *rest;

		rest = strchr(kw, ' ');
		if (!rest)
			fail_msg("%s:%u: directive without argument", expect_path, lineno);
		*rest++ = '\0';

		if (strcmp(kw, "vm") == 0) {
			continue;
		} else if (strcmp(kw, "incarnation") == 0) {
			assert_int_equal(doc.incarnation, parse_u64(expect_path, lineno, rest));
			saw_incarnation = true;
		} else if (strcmp(kw, "drops") == 0) {
			if (doc.n_drops != parse_u64(expect_path, lineno, rest))
				fail_msg("%s:%u: %zu dropped", expect_path, lineno, doc.n_drops);
			saw_drops = true;
		} else if (strcmp(kw, "drop") == 0) {
			char *reason = strchr(rest, ' ');
			const struct provider_drop *d;

			if (!reason)
				fail_msg("%s:%u: drop ID|- REASON", expect_path, lineno);
			*reason++ = '\0';
			if (drops_listed >= PROVIDER_DROPS_MAX || drops_listed >= doc.n_drops)
				fail_msg("%s:%u: only %zu drops described", expect_path, lineno, drops_listed);
			d = &doc.drops[drops_listed++];
			if (strcmp(d->id, strcmp(rest, "-") == 0 ? "" : rest) != 0 || strcmp(d->reason, reason) != 0)
				fail_msg("%s:%u: got drop '%s' '%s'", expect_path, lineno, d->id, d->reason);
		} else if (strcmp(kw, "other") == 0) {
			want_other = parse_u64(expect_path, lineno, rest);
		} else if (strcmp(kw, "events") == 0) {
			want_events = (size_t)parse_u64(expect_path, lineno, rest);
		} else if (strcmp(kw, "event") == 0) {
			check_description(expect_path, lineno, cur, desc_checked);
			if (listed >= doc.events.n_events)
				fail_msg("%s:%u: only %zu events parsed", expect_path, lineno, doc.events.n_events);
			cur = &doc.events.events[listed++];
			desc_checked = false;
			check_event_line(expect_path, lineno, rest, cur);
			check_round_trip(cur);
			/* Azure waits for StartRequests: every event needs it. */
			assert_int_equal(cur->feed, FEED_AZURE_SCHEDULED);
			assert_true(cur->needs_ack);
			/* The filter held: a kept event names the VM. */
			if (vm && !event_names_resource(cur, vm))
				fail_msg("%s:%u: event '%s' does not name '%s'", expect_path, lineno, cur->id, vm);
		} else if (strcmp(kw, "description") == 0 && cur) {
			if (strcmp(cur->description, rest) != 0)
				fail_msg("%s:%u: description '%s'", expect_path, lineno, cur->description);
			desc_checked = true;
		} else if (strcmp(kw, "note") == 0 && cur) {
			if (strcmp(cur->note, rest) != 0)
				fail_msg("%s:%u: note '%s'", expect_path, lineno, cur->note);
		} else if (strcmp(kw, "description-len") == 0 && cur) {
			assert_int_equal(strlen(cur->description), parse_u64(expect_path, lineno, rest));
			desc_checked = true;
		} else if (strcmp(kw, "names") == 0 && cur) {
			char *answer = strrchr(rest, ' ');

			if (!answer)
				fail_msg("%s:%u: names NAME yes|no", expect_path, lineno);
			*answer++ = '\0';
			if (event_names_resource(cur, rest) != (strcmp(answer, "yes") == 0))
				fail_msg("%s:%u: event_names_resource('%s') wrong", expect_path, lineno, rest);
		} else {
			fail_msg("%s:%u: unknown directive '%s'", expect_path, lineno, kw);
		}
	}
	check_description(expect_path, 0, cur, desc_checked);
	if (!saw_incarnation || !saw_drops)
		fail_msg("%s: needs incarnation and drops lines", expect_path);
	if (drops_listed != (doc.n_drops < PROVIDER_DROPS_MAX ? doc.n_drops : PROVIDER_DROPS_MAX))
		fail_msg("%s: %zu drops described, %zu listed", expect_path,
			 doc.n_drops < PROVIDER_DROPS_MAX ? doc.n_drops : PROVIDER_DROPS_MAX, drops_listed);
	if (doc.n_other != want_other)
		fail_msg("%s: %zu events for other VMs, %" PRIu64 " expected", expect_path, doc.n_other, want_other);
	if (want_events == SIZE_MAX)
		want_events = listed;
	if (doc.events.n_events != want_events || listed > want_events)
		fail_msg("%s: %zu events parsed, %zu expected", path, doc.events.n_events, want_events);
	assert_int_equal(doc.events.n_events > 0, doc.events.events != NULL);

	azure_document_done(&doc);
	expect_done(&x);
	free(body);
	free(expect_path);
}

static void test_events_bad(void **state)
{
	const struct data_case *dc = *state;
	const char *path = dc->path;
	struct azure_document doc = { .incarnation = 12345, .n_other = 66, .n_drops = 77 };
	size_t len;
	char *body = read_data(path, &len);
	int r;

	r = azure_parse_events(body, len, NULL, &doc);
	if (r != -EBADMSG)
		fail_msg("%s: azure_parse_events() = %d, expected -EBADMSG", path, r);
	assert_int_equal(azure_parse_events(body, len, "vm", &doc), -EBADMSG);
	/* Nothing is written on failure. */
	assert_int_equal(doc.incarnation, 12345);
	assert_int_equal(doc.n_other, 66);
	assert_int_equal(doc.n_drops, 77);
	assert_null(doc.events.events);
	free(body);
}

static void test_compute_case(void **state)
{
	const struct data_case *dc = *state;
	const char *path = dc->path;
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
	const struct data_case *dc = *state;
	const char *path = dc->path;
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
	struct azure_document d;
	char buf[sizeof(doc) + 8];
	size_t n = sizeof(doc) - 1;
	char *name = NULL;

	memcpy(buf, doc, n);
	memcpy(buf + n, "garbage!", 8);  /* no NUL anywhere */
	assert_int_equal(azure_parse_events(buf, n, NULL, &d), 0);
	assert_int_equal(d.incarnation, 5);
	assert_int_equal(d.events.n_events, 0);
	assert_null(d.events.events);
	azure_document_done(&d);

	/* One byte short is a truncated document; the garbage is not JSON. */
	assert_int_equal(azure_parse_events(buf, n - 1, NULL, &d), -EBADMSG);
	assert_int_equal(azure_parse_events(buf, sizeof(buf), NULL, &d), -EBADMSG);
	assert_int_equal(azure_parse_events(NULL, 0, NULL, &d), -EBADMSG);

	/* A NUL does not end the body early: what follows it still counts. */
	assert_int_equal(azure_parse_events("{\"DocumentIncarnation\":1}\0{", 27, NULL, &d), -EBADMSG);
	assert_int_equal(azure_parse_events("{\"DocumentIncarnation\":1}\0", 26, NULL, &d), -EBADMSG);
	assert_int_equal(azure_parse_events("{\"DocumentIncarnation\":1}\0", 25, NULL, &d), 0);
	azure_document_done(&d);

	memcpy(buf, "{\"name\":\"vm7\"}xxxxxxxxxxxxxxx", 29);
	assert_int_equal(azure_parse_compute_name(buf, 14, &name), 0);
	assert_string_equal(name, "vm7");
	free(name);
	assert_int_equal(azure_parse_compute_name(buf, 13, &name), -EBADMSG);
}

static void test_document_done(void **state)
{
	static const char doc[] = "{\"DocumentIncarnation\":8,\"Events\":[{\"EventId\":\"x\","
				  "\"EventType\":\"Preempt\",\"EventStatus\":\"Scheduled\",\"Resources\":[]},{}]}";
	struct azure_document d;

	assert_int_equal(azure_parse_events(doc, sizeof(doc) - 1, NULL, &d), 0);
	assert_int_equal(d.events.n_events, 1);
	assert_string_equal(d.events.events[0].id, "x");
	assert_int_equal(d.n_drops, 1);
	assert_string_equal(d.drops[0].reason, "EventId missing");
	/* An empty name is no name: every event is returned. */
	azure_document_done(&d);
	assert_int_equal(azure_parse_events(doc, sizeof(doc) - 1, "", &d), 0);
	assert_int_equal(d.events.n_events, 1);
	azure_document_done(&d);
	assert_null(d.events.events);
	assert_int_equal(d.events.n_events, 0);
	azure_document_done(&d);   /* done twice is harmless */
	azure_document_done(NULL);
}

/* An availability set lists the events of all its VMs. Built here at any
 * size: the filter comes before the cap, so however many events other VMs
 * have, this VM's own are kept; and this VM's own beyond the cap are
 * dropped with a reason. */
static void test_filter_before_cap(void **state)
{
	size_t n_other = 3 * EVENTS_MAX, n_own = EVENTS_MAX + 3;
	char *doc = xstrdup("{\"DocumentIncarnation\":77,\"Events\":[");
	struct azure_document d;

	for (size_t i = 0; i < n_other + n_own; i++) {
		bool own = i >= n_other / 2 && i < n_other / 2 + n_own;
		char *next = xasprintf("%s%s{\"EventId\":\"E-%zu\",\"EventStatus\":\"Scheduled\","
				       "\"EventType\":\"%s\",\"Resources\":[\"%s%zu\"],"
				       "\"NotBefore\":\"Mon, 19 Sep 2016 18:29:47 GMT\"}",
				       doc, i ? "," : "", i, own ? "Preempt" : "Freeze",
				       own ? "MyVM" : "other-", own ? (size_t)0 : i);

		free(doc);
		doc = next;
	}
	{
		char *next = xasprintf("%s]}", doc);

		free(doc);
		doc = next;
	}
	/* The own events named MyVM0: matched as myvm0, case aside. */
	assert_int_equal(azure_parse_events(doc, strlen(doc), "myvm0", &d), 0);
	assert_int_equal(d.incarnation, 77);
	assert_int_equal(d.n_other, n_other);
	assert_int_equal(d.events.n_events, EVENTS_MAX);
	for (size_t i = 0; i < d.events.n_events; i++) {
		char id[32];

		(void)snprintf(id, sizeof(id), "E-%zu", n_other / 2 + i);
		assert_string_equal(d.events.events[i].id, id);
		assert_int_equal(d.events.events[i].type, EVENT_PREEMPT);
		assert_true(event_names_resource(&d.events.events[i], "MYVM0"));
	}
	assert_int_equal(d.n_drops, 3);
	assert_string_equal(d.drops[0].reason, "over the limit of 32 events");
	assert_string_equal(d.drops[0].id, "E-80");
	azure_document_done(&d);

	/* Without a name: the first EVENTS_MAX of all, the rest dropped. */
	assert_int_equal(azure_parse_events(doc, strlen(doc), NULL, &d), 0);
	assert_int_equal(d.n_other, 0);
	assert_int_equal(d.events.n_events, EVENTS_MAX);
	assert_string_equal(d.events.events[0].id, "E-0");
	assert_int_equal(d.n_drops, n_other + n_own - EVENTS_MAX);
	azure_document_done(&d);
	free(doc);
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

/* ---- rounds against the fake metadata service ---- */

#define EVENTS_URL  "/metadata/scheduledevents"
#define COMPUTE_URL "/metadata/instance/compute"

static char *read_file(const char *path)
{
	size_t len;
	char *data = read_data(path, &len), *s = xmalloc(len + 1);

	memcpy(s, data, len);
	s[len] = '\0';
	free(data);
	return s;
}

/* Azure IMDS: every request needs Metadata: true. */
static void serve_azure(struct fake_imds *f, const char *events_file, const char *name)
{
	char *doc = read_file(events_file), *compute = xasprintf("{\"name\":\"%s\",\"vmId\":\"x\"}", name);

	fake_set(f, "GET", EVENTS_URL, 200, doc);
	fake_set(f, "GET", COMPUTE_URL, 200, compute);
	fake_set(f, "POST", EVENTS_URL, 200, "");
	FAKE_EDIT(f, "GET", EVENTS_URL,
		  (void)strscpy(R->require, sizeof(R->require), "Metadata: true"); R->reject_status = 400);
	FAKE_EDIT(f, "GET", COMPUTE_URL,
		  (void)strscpy(R->require, sizeof(R->require), "Metadata: true"); R->reject_status = 400);
	FAKE_EDIT(f, "POST", EVENTS_URL,
		  (void)strscpy(R->require, sizeof(R->require), "Metadata: true"); R->reject_status = 400);
	free(doc);
	free(compute);
}

#define AVAILABILITY_SET DATA_DIR "/events/24-availability-set.json"

/* The compute document in parallel while the name is unknown; then only
 * Scheduled Events; our own Preempt found among 40 events of other VMs. */
static void test_round_filter(void **state)
{
	struct capture c = { 0 };
	struct provider_handle *p = NULL;
	struct world w;
	unsigned cost, sent;

	world_init(&w);
	serve_azure(&w.fake, AVAILABILITY_SET, "spot-vm7");
	assert_int_equal(new_provider(PROVIDER_AZURE, w.imds, w.fake.url, NULL, &p), 0);
	assert_int_equal(provider_kind(p), PROVIDER_AZURE);

	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_int_equal(cost, 2);
	assert_int_equal(sent, 2);
	assert_int_equal(w.count.sent[IMDS_SLOT_POLL], 1);
	assert_int_equal(w.count.sent[IMDS_SLOT_IDENTITY], 1);
	assert_string_equal(c.vm_name, "spot-vm7");
	assert_string_equal(c.identity_error, "");
	assert_int_equal(c.incarnation, 24);
	assert_int_equal(c.n_other, 40);
	assert_int_equal(c.events.n_events, 1);
	assert_string_equal(c.events.events[0].id, "OWN-PREEMPT");
	assert_int_equal(c.events.events[0].type, EVENT_PREEMPT);
	assert_false(c.events.events[0].id_from_first_seen);
	assert_int_equal(c.events.events[0].feed, FEED_AZURE_SCHEDULED);
	assert_int_equal(c.events.events[0].end, END_NONE);
	assert_int_equal(c.feeds_answered, 1u << FEED_AZURE_SCHEDULED);
	assert_string_equal(c.optional_error, "");
	assert_false(c.imds_v1);
	assert_int_equal(c.n_drops, 0);
	assert_false(c.rebalance);
	assert_true(fake_last_arg(&w.fake, "GET", EVENTS_URL, "api-version=2020-07-01"));
	assert_true(fake_last_arg(&w.fake, "GET", COMPUTE_URL, "api-version=2021-02-01"));

	/* The name is known: Scheduled Events alone. */
	for (int i = 0; i < 2; i++) {
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(cost, 1);
		assert_int_equal(sent, 1);
		assert_int_equal(c.events.n_events, 1);
	}
	assert_int_equal(fake_hits(&w.fake, "GET", COMPUTE_URL), 1);
	assert_int_equal(fake_hits(&w.fake, "GET", EVENTS_URL), 3);
	provider_free(p);

	/* --vm-name: never the compute document; matched case-insensitively. */
	assert_int_equal(new_provider(PROVIDER_AZURE, w.imds, w.fake.url, "SPOT-VM7", &p), 0);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 1);
	assert_int_equal(sent, 1);
	assert_string_equal(c.vm_name, "SPOT-VM7");
	assert_int_equal(c.events.n_events, 1);
	assert_int_equal(fake_hits(&w.fake, "GET", COMPUTE_URL), 1);

	/* A document that is not one fails the round. */
	fake_set(&w.fake, "GET", EVENTS_URL, 200, "<html>");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_BAD_DOCUMENT);
	assert_string_equal(c.error, "scheduled events: not a Scheduled Events document");
	provider_free(p);

	capture_done(&c);
	world_done(&w);
}

/* The compute document failing must never stop Scheduled Events: the
 * round succeeds without a name, says why, and hands on every event. */
static void test_compute_fails(void **state)
{
	struct capture c = { 0 };
	struct provider_handle *p = NULL;
	struct world w;
	unsigned cost, sent;

	world_init(&w);
	serve_azure(&w.fake, DATA_DIR "/events/12-multiple-events.json", "spot-1");
	fake_set(&w.fake, "GET", COMPUTE_URL, 500, "");
	assert_int_equal(new_provider(PROVIDER_AZURE, w.imds, w.fake.url, NULL, &p), 0);

	for (int i = 0; i < 2; i++) {
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(c.result, IMDS_RESULT_OK);
		assert_string_equal(c.error, "");
		assert_false(c.had_vm_name);
		assert_string_equal(c.identity_error, "instance metadata: HTTP 500");
		assert_int_equal(c.events.n_events, 3);
		assert_int_equal(c.n_other, 0);
		assert_int_equal(c.incarnation, 21);
		/* Asked again every round while the name is unknown. */
		assert_int_equal(cost, 2);
		assert_int_equal(sent, 2);
	}

	/* A 200 without a usable name is no better. */
	fake_set(&w.fake, "GET", COMPUTE_URL, 200, "{\"name\": 5}");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_string_equal(c.identity_error, "instance metadata: no usable compute.name");

	/* Once it answers, its name filters that very round. */
	fake_set(&w.fake, "GET", COMPUTE_URL, 200, "{\"name\": \"spot-1\"}");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_string_equal(c.identity_error, "");
	assert_string_equal(c.vm_name, "spot-1");
	assert_int_equal(c.events.n_events, 1);
	assert_string_equal(c.events.events[0].id, "M-3");
	assert_int_equal(c.n_other, 2);

	/* Scheduled Events failing fails the round, but only once the
	 * compute document is in too: what it told still counts. */
	provider_free(p);
	assert_int_equal(new_provider(PROVIDER_AZURE, w.imds, w.fake.url, NULL, &p), 0);
	fake_set(&w.fake, "GET", EVENTS_URL, 410, "");
	FAKE_EDIT(&w.fake, "GET", COMPUTE_URL, R->delay_ms = 200);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(c.error, "scheduled events: HTTP 410");
	assert_string_equal(c.vm_name, "spot-1");
	assert_true(c.latency_usec >= 200 * USEC_PER_MSEC);
	/* Both failing: the round fails and tells both. */
	provider_free(p);
	assert_int_equal(new_provider(PROVIDER_AZURE, w.imds, w.fake.url, NULL, &p), 0);
	fake_set(&w.fake, "GET", COMPUTE_URL, 429, "");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(c.identity_error, "instance metadata: HTTP 429 (throttled)");
	assert_false(c.had_vm_name);

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* An acknowledgement of a Scheduled Events event. */
#define ACK(id) (&(struct provider_ack){ .event_id = (id), .feed = FEED_AZURE_SCHEDULED })

struct approval {
	int calls;
	char id[EVENT_ID_MAX];
	enum imds_result result;
	char error[IMDS_ERROR_MAX];
};

static void on_approved(const char *event_id, enum imds_result result, const char *error, void *userdata)
{
	struct approval *a = userdata;

	a->calls++;
	(void)strscpy(a->id, sizeof(a->id), event_id);
	a->result = result;
	(void)strscpy(a->error, sizeof(a->error), error);
}

static void run_approval(struct world *w, struct approval *a, int calls)
{
	uint64_t end = now_usec(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC;

	while (a->calls < calls) {
		assert_true(now_usec(CLOCK_MONOTONIC) < end);
		assert_true(sd_event_run(w->event, 100 * USEC_PER_MSEC) >= 0);
	}
}

static void test_approve(void **state)
{
	struct approval a = { 0 };
	struct capture c = { 0 };
	struct provider_handle *p = NULL;
	struct world w;
	unsigned cost, sent;
	char last_body[sizeof(w.fake.routes[0].last_body)];

	world_init(&w);
	serve_azure(&w.fake, AVAILABILITY_SET, "spot-vm7");
	assert_int_equal(new_provider(PROVIDER_AZURE, w.imds, w.fake.url, NULL, &p), 0);
	assert_true(provider_can_approve(p));
	assert_int_equal(provider_approve(p, ACK(""), SEC(5), on_approved, &a), -EINVAL);
	assert_int_equal(provider_approve(p, ACK(NULL), SEC(5), on_approved, &a), -EINVAL);
	assert_int_equal(provider_approve(p, NULL, SEC(5), on_approved, &a), -EINVAL);
	/* Only Scheduled Events are acknowledged; there is no heartbeat. */
	assert_int_equal(provider_approve(p, &(struct provider_ack){ .event_id = "X", .feed = FEED_OS },
					  SEC(5), on_approved, &a), -EOPNOTSUPP);
	assert_int_equal(provider_heartbeat(p, NULL, NULL), -EOPNOTSUPP);
	assert_int_equal(provider_heartbeat_period_usec(p), 0);

	assert_int_equal(provider_approve(p, ACK("OWN-PREEMPT"), SEC(5), on_approved, &a), 0);
	assert_int_equal(provider_approve(p, ACK("OTHER"), SEC(5), on_approved, &a), -EBUSY);
	/* A round goes on beside the approval. */
	assert_int_equal(provider_poll(p, SEC(5), SEC(5), on_round, &c), 0);
	run_approval(&w, &a, 1);
	run_until(w.event, &c, 1);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_int_equal(a.calls, 1);
	assert_string_equal(a.id, "OWN-PREEMPT");
	assert_int_equal(a.result, IMDS_RESULT_OK);
	assert_string_equal(a.error, "");
	assert_int_equal(w.count.sent[IMDS_SLOT_APPROVE], 1);
	assert_true(fake_last_has(&w.fake, "POST", EVENTS_URL, "Metadata: true"));
	assert_true(fake_last_has(&w.fake, "POST", EVENTS_URL, "Content-Type: application/json"));
	assert_true(fake_last_arg(&w.fake, "POST", EVENTS_URL, "api-version=2020-07-01"));
	FAKE_EDIT(&w.fake, "POST", EVENTS_URL, memcpy(last_body, R->last_body, sizeof(last_body)));
	assert_string_equal(last_body, "{\"StartRequests\":[{\"EventId\":\"OWN-PREEMPT\"}]}");

	/* Refused: the answer says so. */
	fake_set(&w.fake, "POST", EVENTS_URL, 400, "{\"error\":\"bad\"}");
	assert_int_equal(provider_approve(p, ACK("OWN-PREEMPT"), SEC(5), on_approved, &a), 0);
	run_approval(&w, &a, 2);
	assert_int_equal(a.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(a.error, "StartRequests: HTTP 400");

	/* Cancelling the round leaves the approval alone; freeing the
	 * provider cancels it, without a callback. */
	fake_set(&w.fake, "POST", EVENTS_URL, 200, "");
	assert_int_equal(provider_approve(p, ACK("OWN-PREEMPT"), SEC(5), on_approved, &a), 0);
	assert_int_equal(provider_poll(p, SEC(5), SEC(5), on_round, &c), 0);
	provider_cancel(p);
	run_approval(&w, &a, 3);
	assert_int_equal(a.result, IMDS_RESULT_OK);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(provider_approve(p, ACK("OWN-PREEMPT"), SEC(5), on_approved, &a), 0);
	provider_free(p);
	assert_false(imds_busy(w.imds, IMDS_SLOT_APPROVE));
	assert_true(sd_event_run(w.event, 50 * USEC_PER_MSEC) >= 0);
	assert_int_equal(a.calls, 3);

	capture_done(&c);
	world_done(&w);
}

/* Only the first Scheduled Events call may take the long first-call
 * timeout (it switches the service on); the compute document never does,
 * and once Scheduled Events answered, nothing does. The fake's delay tells
 * which timeout each request got. */
static void test_first_call_timeout(void **state)
{
	struct capture c = { 0 };
	struct provider_handle *p = NULL;
	struct world w;
	unsigned cost, sent;

	world_init(&w);
	serve_azure(&w.fake, AVAILABILITY_SET, "spot-vm7");
	FAKE_EDIT(&w.fake, "GET", EVENTS_URL, R->delay_ms = 1200);
	FAKE_EDIT(&w.fake, "GET", COMPUTE_URL, R->delay_ms = 1200);
	assert_int_equal(new_provider(PROVIDER_AZURE, w.imds, w.fake.url, NULL, &p), 0);

	/* First round: Scheduled Events waits (3 s), the compute document
	 * does not (0.5 s). */
	one_round_first(&w, p, 500 * USEC_PER_MSEC, SEC(3), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_true(c.latency_usec >= 1200 * USEC_PER_MSEC);
	assert_true(strncmp(c.identity_error, "instance metadata: timed out after 0.", 37) == 0);
	assert_false(c.had_vm_name);
	assert_int_equal(c.events.n_events, EVENTS_MAX);  /* every event while the name is unknown */

	/* It answered: from now on the normal timeout, even if the caller
	 * still offers the long one. */
	one_round_first(&w, p, 500 * USEC_PER_MSEC, SEC(3), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_TIMEOUT);
	assert_true(strncmp(c.error, "scheduled events: timed out after 0.", 36) == 0);
	provider_free(p);

	/* A first call that fails leaves the next one first. */
	assert_int_equal(new_provider(PROVIDER_AZURE, w.imds, w.fake.url, "spot-vm7", &p), 0);
	FAKE_EDIT(&w.fake, "GET", EVENTS_URL, R->delay_ms = 0; R->first_status = 500; R->first_n = R->served + 1);
	one_round_first(&w, p, 500 * USEC_PER_MSEC, SEC(3), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_HTTP_ERROR);
	FAKE_EDIT(&w.fake, "GET", EVENTS_URL, R->delay_ms = 1200);
	one_round_first(&w, p, 500 * USEC_PER_MSEC, SEC(3), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	/* A first-call timeout below the normal one is no shorter. */
	provider_free(p);
	assert_int_equal(new_provider(PROVIDER_AZURE, w.imds, w.fake.url, "spot-vm7", &p), 0);
	FAKE_EDIT(&w.fake, "GET", EVENTS_URL, R->delay_ms = 300);
	one_round_first(&w, p, SEC(2), 100 * USEC_PER_MSEC, &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* A request is on the wire when imds_request returns (the transfer is
 * kicked at once, not on curl's next timer), and its callback still comes
 * from the loop. */
struct seen {
	int calls;
};

static void on_seen(const struct imds_reply *r, void *userdata)
{
	struct seen *s = userdata;

	s->calls++;
}

static void test_sent_at_once(void **state)
{
	struct seen s = { 0 };
	struct world w;
	char *url;
	uint64_t end;

	world_init(&w);
	fake_set(&w.fake, "GET", "/ping", 200, "pong");
	url = xasprintf("%s/ping", w.fake.url);
	/* The first request opens the kept-alive connection. */
	assert_int_equal(imds_request(w.imds, IMDS_SLOT_POLL, "GET", url, NULL, NULL, SEC(5), on_seen, &s), 0);
	assert_int_equal(w.count.sent[IMDS_SLOT_POLL], 1);
	while (s.calls < 1)
		assert_true(sd_event_run(w.event, 100 * USEC_PER_MSEC) >= 0);
	assert_int_equal(w.count.done[IMDS_SLOT_POLL], 1);

	/* The second reaches the server with the loop not running at all. */
	assert_int_equal(imds_request(w.imds, IMDS_SLOT_POLL, "GET", url, NULL, NULL, SEC(5), on_seen, &s), 0);
	assert_int_equal(s.calls, 1);
	end = now_usec(CLOCK_MONOTONIC) + 2 * USEC_PER_SEC;
	while (fake_hits(&w.fake, "GET", "/ping") < 2) {
		struct timespec ts = { 0, 5000000 };

		if (now_usec(CLOCK_MONOTONIC) > end)
			fail_msg("the request did not leave before the loop ran");
		(void)nanosleep(&ts, NULL);
	}
	assert_int_equal(s.calls, 1);
	while (s.calls < 2)
		assert_true(sd_event_run(w.event, 100 * USEC_PER_MSEC) >= 0);
	assert_int_equal(w.count.sent[IMDS_SLOT_POLL], 2);
	assert_int_equal(w.count.done[IMDS_SLOT_POLL], 2);

	/* A cancelled request is sent but never done. */
	assert_int_equal(imds_request(w.imds, IMDS_SLOT_POLL, "GET", url, NULL, NULL, SEC(5), on_seen, &s), 0);
	imds_cancel(w.imds, IMDS_SLOT_POLL);
	assert_true(sd_event_run(w.event, 50 * USEC_PER_MSEC) >= 0);
	assert_int_equal(w.count.sent[IMDS_SLOT_POLL], 3);
	assert_int_equal(w.count.done[IMDS_SLOT_POLL], 2);
	assert_int_equal(s.calls, 2);
	/* Without an observer nothing is counted. */
	imds_set_observer(w.imds, NULL);
	assert_int_equal(imds_request(w.imds, IMDS_SLOT_POLL, "GET", url, NULL, NULL, SEC(5), on_seen, &s), 0);
	while (s.calls < 3)
		assert_true(sd_event_run(w.event, 100 * USEC_PER_MSEC) >= 0);
	assert_int_equal(w.count.sent[IMDS_SLOT_POLL], 3);
	free(url);
	world_done(&w);
}

/* One slot's handle is kept set up between requests and never reset:
 * whatever one request set (method, body, headers, URL) must not leak into
 * the next. */
static void one_request(struct world *w, struct seen *s, const char *method, const char *url,
			const char *const *headers, const char *body)
{
	int before = s->calls;

	assert_int_equal(imds_request(w->imds, IMDS_SLOT_IDENTITY, method, url, headers, body, SEC(5),
				      on_seen, s), 0);
	while (s->calls == before)
		assert_true(sd_event_run(w->event, 100 * USEC_PER_MSEC) >= 0);
}

static struct fake_route *route_of(struct world *w, const char *method, const char *path)
{
	struct fake_route *r = fake_find(&w->fake, method, path);

	assert_non_null(r);
	return r;
}

static void test_slot_requests_do_not_leak(void **state)
{
	static const char *const token[] = { "X-Token-TTL: 60", NULL };
	static const char *const meta[] = { "Metadata: true", NULL };
	struct seen s = { 0 };
	struct world w;
	char *a, *b;

	world_init(&w);
	fake_set(&w.fake, "PUT", "/a", 200, "tok");
	fake_set(&w.fake, "GET", "/a", 200, "doc");
	fake_set(&w.fake, "POST", "/a", 200, "");
	fake_set(&w.fake, "GET", "/b", 200, "other");
	a = xasprintf("%s/a", w.fake.url);
	b = xasprintf("%s/b", w.fake.url);

	one_request(&w, &s, "PUT", a, token, "");
	assert_int_equal(route_of(&w, "PUT", "/a")->hits, 1);
	assert_non_null(strcasestr(route_of(&w, "PUT", "/a")->last_headers, "x-token-ttl: 60"));

	/* A GET after the PUT is a GET, with its own headers only. */
	one_request(&w, &s, "GET", a, meta, NULL);
	assert_int_equal(route_of(&w, "GET", "/a")->hits, 1);
	assert_non_null(strcasestr(route_of(&w, "GET", "/a")->last_headers, "metadata: true"));
	assert_null(strcasestr(route_of(&w, "GET", "/a")->last_headers, "x-token-ttl"));
	assert_non_null(strcasestr(route_of(&w, "GET", "/a")->last_headers, "user-agent: spot-agent/"));
	assert_null(strcasestr(route_of(&w, "GET", "/a")->last_headers, "accept:"));

	one_request(&w, &s, "POST", a, meta, "{\"x\":1}");
	assert_int_equal(route_of(&w, "POST", "/a")->hits, 1);
	assert_string_equal(route_of(&w, "POST", "/a")->last_body, "{\"x\":1}");

	/* After the POST: a GET again, no body, no headers left over. */
	one_request(&w, &s, "GET", a, NULL, NULL);
	assert_int_equal(route_of(&w, "GET", "/a")->hits, 2);
	assert_string_equal(route_of(&w, "GET", "/a")->last_body, "");
	assert_null(strcasestr(route_of(&w, "GET", "/a")->last_headers, "metadata:"));

	/* Another URL on the same handle. */
	one_request(&w, &s, "GET", b, meta, NULL);
	assert_int_equal(route_of(&w, "GET", "/b")->hits, 1);
	assert_int_equal(route_of(&w, "GET", "/a")->hits, 2);
	assert_int_equal(s.calls, 5);
	free(a);
	free(b);
	world_done(&w);
}

static const struct item items[] = {
	{ "events" },
	{ "compute" },
};

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_length_bounded),
		cmocka_unit_test(test_document_done),
		cmocka_unit_test(test_filter_before_cap),
		cmocka_unit_test(test_approval_body),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_round_plumbing),
		cmocka_unit_test(test_round_filter),
		cmocka_unit_test(test_compute_fails),
		cmocka_unit_test(test_approve),
		cmocka_unit_test(test_first_call_timeout),
		cmocka_unit_test(test_sent_at_once),
		cmocka_unit_test(test_slot_requests_do_not_leak),
	};
	struct CMUnitTest *tests;
	size_t n = ELEMENTSOF(fixed);
	int failed;

	tests = xmalloc(sizeof(fixed));
	memcpy(tests, fixed, sizeof(fixed));
	/* Guard against a data directory that silently went missing. */
	if (add_cases(&tests, &n, &items[0], ".json", test_events_case) < 26 ||
	    add_cases(&tests, &n, &items[0], ".bad", test_events_bad) < 10 ||
	    add_cases(&tests, &n, &items[1], ".json", test_compute_case) < 3 ||
	    add_cases(&tests, &n, &items[1], ".bad", test_compute_bad) < 3) {
		fprintf(stderr, "test data missing under %s\n", DATA_DIR);
		return EXIT_FAILURE;
	}
	failed = _cmocka_run_group_tests("azure", tests, n, NULL, NULL);
	free_cases(tests, ELEMENTSOF(fixed), n);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
