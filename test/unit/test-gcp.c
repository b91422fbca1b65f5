/* test-gcp.c - the GCP parsers, driven by test/data/gcp, the GCP
 * provider's rounds against a fake metadata service (keys, notices, the
 * hanging GET's timeout, maintenance-event failing beside a preemption
 * that is still seen), and the 'auto' probe of all three dialects, with GCP's Metadata-Flavor response header.
 *
 * Each directory holds one item's cases: NAME.txt must parse and yield what
 * NAME.expect says; NAME.bad must be refused with -EBADMSG, leaving the
 * outputs untouched. Adding a case means adding data files.
 *   flag/NAME.expect: "flag TRUE|FALSE".
 *   maintenance/NAME.expect: "maintenance none|Freeze|Terminate".
 *   name/NAME.expect: "name NAME". */
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
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "engine/event.h"
#include "store/event-json.h"
#include "clouds/provider.h"
#include "util.h"

#define DATA_DIR "test/data/gcp"
#define PLUMB_PROVIDER PROVIDER_GCP
#define PLUMB_FIRST_ITEM "instance/name"
#define SEC(s) ((uint64_t)(s) * USEC_PER_SEC)

#include "provider-data.h"


/* One item: parses body and renders what it got, or returns the error after
 * checking that the outputs were left alone. */
struct item {
	const char *dir;
	size_t min_cases, min_bad;
	int (*render)(const char *body, size_t len, uint64_t now, char **ret);
};

static int render_flag(const char *body, size_t len, uint64_t now, char **ret)
{
	bool a = true, b = false;
	int r;

	r = gcp_parse_flag(body, len, &a);
	if (r < 0) {
		assert_int_equal(gcp_parse_flag(body, len, &b), r);
		assert_true(a);
		assert_false(b);
		return r;
	}
	*ret = xasprintf("flag %s\n", a ? "TRUE" : "FALSE");
	return 0;
}

static int render_maintenance(const char *body, size_t len, uint64_t now, char **ret)
{
	enum event_type type = EVENT_REBOOT;
	bool pending = true, p2 = false;
	int r;

	r = gcp_parse_maintenance(body, len, &type, &pending);
	if (r < 0) {
		assert_int_equal(gcp_parse_maintenance(body, len, &type, &p2), r);
		assert_int_equal(type, EVENT_REBOOT);
		assert_true(pending);
		assert_false(p2);
		return r;
	}
	if (!pending) {
		assert_int_equal(type, EVENT_TYPE_INVALID);
		*ret = xstrdup("maintenance none\n");
	} else {
		assert_true(type == EVENT_FREEZE || type == EVENT_TERMINATE);
		*ret = xasprintf("maintenance %s\n", event_type_to_string(type));
	}
	return 0;
}

static int render_name(const char *body, size_t len, uint64_t now, char **ret)
{
	char name[PROVIDER_NAME_MAX] = "untouched";
	int r;

	r = provider_parse_name(body, len, name, sizeof(name));
	if (r < 0) {
		assert_string_equal(name, "untouched");
		return r;
	}
	*ret = xasprintf("name %s\n", name);
	return 0;
}

static const struct item items[] = {
	{ "flag", 4, 10, render_flag },
	{ "maintenance", 8, 10, render_maintenance },
	{ "name", 3, 4, render_name },
};

struct data_case {
	char *path;
	const struct item *item;
};

static void test_case(void **state)
{
	const struct data_case *c = *state;
	char *body, *want, *got = NULL;
	uint64_t now;
	size_t len;
	int r;

	body = read_data(c->path, &len);
	want = read_expect(c->path, &now);
	r = c->item->render(body, len, now, &got);
	if (r != 0)
		fail_msg("%s: parse failed with %d", c->path, r);
	if (strcmp(got, want) != 0)
		fail_msg("%s: got\n%sexpected\n%s", c->path, got, want);
	free(got);
	free(want);
	free(body);
}

static void test_bad(void **state)
{
	const struct data_case *c = *state;
	char *body, *got = NULL;
	size_t len;
	int r;

	body = read_data(c->path, &len);
	r = c->item->render(body, len, SEC(1795767600), &got);
	if (r != -EBADMSG)
		fail_msg("%s: got %d, expected -EBADMSG%s%s", c->path, r, got ? ":\n" : "", got ? got : "");
	assert_null(got);
	free(body);
}

/* The transport hands over a length, not a C string. */
static void test_length_bounded(void **state)
{
	enum event_type type = EVENT_TYPE_INVALID;
	bool b = false, pending = false;

	assert_int_equal(gcp_parse_flag("TRUEFALSE", 4, &b), 0);
	assert_true(b);
	assert_int_equal(gcp_parse_flag("FALSETRUE", 5, &b), 0);
	assert_false(b);
	assert_int_equal(gcp_parse_flag("TRUEFALSE", 3, &b), -EBADMSG);
	assert_int_equal(gcp_parse_flag("TRUE\0", 5, &b), -EBADMSG);
	assert_int_equal(gcp_parse_flag(NULL, 0, &b), -EBADMSG);

	assert_int_equal(gcp_parse_maintenance("NONEXYZ", 4, &type, &pending), 0);
	assert_false(pending);
	assert_int_equal(gcp_parse_maintenance("MIGRATE_ON_HOST_MAINTENANCE!", 27, &type, &pending), 0);
	assert_true(pending);
	assert_int_equal(type, EVENT_FREEZE);
	/* A prefix of a known value is just another token. */
	assert_int_equal(gcp_parse_maintenance("MIGRATE_ON_HOST_MAINTENANCE", 7, &type, &pending), 0);
	assert_int_equal(type, EVENT_TERMINATE);
	assert_int_equal(gcp_parse_maintenance(NULL, 0, &type, &pending), -EBADMSG);
}

#include "util.h"   /* boot_id_tag */
#include "provider-harness.h"

/* The Preempt event of instance/preempted = TRUE: a key for the engine to
 * make the id from at first sight, and the notice to count from it. */
static void test_preempt_event(void **state)
{
	struct spot_event a, b;
	char name[PROVIDER_NAME_MAX];

	event_init(&a);
	event_init(&b);
	assert_int_equal(GCP_PREEMPT_NOTICE_SEC, 30);
	assert_int_equal(gcp_preempt_event("gce-vm0", "0a1b2c3d", GCP_PREEMPT_NOTICE_SEC, &a), 0);
	assert_string_equal(a.id, "gcp-preempted-gce-vm0-0a1b2c3d");
	assert_true(a.id_from_first_seen);
	assert_int_equal(a.not_before_usec, 0);
	assert_int_equal(a.notice_usec, SEC(30));
	assert_int_equal(a.feed, FEED_GCP_PREEMPTED);
	assert_false(a.needs_ack);
	assert_int_equal(a.type, EVENT_PREEMPT);
	assert_int_equal(a.status, EVENT_SCHEDULED);
	assert_string_equal(a.source, "Platform");
	assert_int_equal(a.provider, PROVIDER_GCP);
	assert_int_equal(a.duration_sec, -1);
	assert_true(a.description[0] != '\0');
	assert_true(event_names_resource(&a, "gce-vm0"));
	assert_false(event_names_resource(&a, "gce-vm1"));
	check_round_trip(&a);

	/* Without a boot tag, and with another notice. */
	assert_int_equal(gcp_preempt_event("gce-vm0", "", 120, &b), 0);
	assert_string_equal(b.id, "gcp-preempted-gce-vm0");
	assert_int_equal(b.notice_usec, SEC(120));
	assert_int_equal(gcp_preempt_event("gce-vm0", NULL, 30, &b), 0);
	assert_string_equal(b.id, "gcp-preempted-gce-vm0");

	/* Refused, the output left alone: no usable name, a tag that is not
	 * lower-case hex or too long. */
	assert_int_equal(gcp_preempt_event("", "", 30, &b), -EINVAL);
	assert_int_equal(gcp_preempt_event(NULL, "", 30, &b), -EINVAL);
	assert_int_equal(gcp_preempt_event("gce-vm0", "0A1B", 30, &b), -EINVAL);
	assert_int_equal(gcp_preempt_event("gce-vm0", "x", 30, &b), -EINVAL);
	assert_int_equal(gcp_preempt_event("gce-vm0", "0123456789abcdef0", 30, &b), -EINVAL);
	assert_int_equal(gcp_preempt_event("gce-vm0", "", UINT64_MAX, &b), -EINVAL);
	assert_string_equal(b.id, "gcp-preempted-gce-vm0");
	assert_int_equal(gcp_preempt_event("gce-vm0", "0123456789abcdef", 30, &b), 0);
	assert_string_equal(b.id, "gcp-preempted-gce-vm0-0123456789abcdef");

	/* The longest name: cut in the key, never the tag, and room is left
	 * for the engine's "-<seconds>"; the resource keeps the whole name. */
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(gcp_preempt_event(name, "0123456789abcdef", 30, &b), 0);
	assert_true(event_id_valid(b.id));
	assert_true(strlen(b.id) <= PROVIDER_KEY_MAX - 1);
	assert_true(str_endswith(b.id, "nnn-0123456789abcdef"));
	assert_true(event_names_resource(&b, name));
	event_done(&a);
	event_done(&b);
}

/* A pending instance/maintenance-event: one key per value. */
static void test_maintenance_event(void **state)
{
	struct spot_event a, b;
	char value[PROVIDER_TOKEN_MAX + 2];

	event_init(&a);
	event_init(&b);
	assert_int_equal(GCP_MAINTENANCE_NOTICE_SEC, 60);
	assert_int_equal(gcp_maintenance_event("MIGRATE_ON_HOST_MAINTENANCE", EVENT_FREEZE, "gce-vm0", &a), 0);
	assert_string_equal(a.id, "gcp-maintenance-migrate_on_host_maintenance");
	assert_true(a.id_from_first_seen);
	assert_int_equal(a.type, EVENT_FREEZE);
	assert_int_equal(a.status, EVENT_SCHEDULED);
	assert_string_equal(a.source, "Platform");
	assert_int_equal(a.provider, PROVIDER_GCP);
	assert_int_equal(a.not_before_usec, 0);
	assert_int_equal(a.notice_usec, SEC(60));
	assert_int_equal(a.feed, FEED_GCP_MAINTENANCE);
	assert_false(a.needs_ack);
	assert_string_equal(a.description, "host maintenance: MIGRATE_ON_HOST_MAINTENANCE");
	assert_true(event_names_resource(&a, "gce-vm0"));
	check_round_trip(&a);

	assert_int_equal(gcp_maintenance_event("TERMINATE_ON_HOST_MAINTENANCE", EVENT_TERMINATE,
					       "gce-vm0", &b), 0);
	assert_string_equal(b.id, "gcp-maintenance-terminate_on_host_maintenance");
	assert_int_equal(b.type, EVENT_TERMINATE);

	/* Refused: NONE, a type other than Freeze/Terminate, not a token,
	 * too long, no usable name. The output is left alone. */
	assert_int_equal(gcp_maintenance_event("NONE", EVENT_TERMINATE, "gce-vm0", &b), -EINVAL);
	assert_int_equal(gcp_maintenance_event("X", EVENT_PREEMPT, "gce-vm0", &b), -EINVAL);
	assert_int_equal(gcp_maintenance_event("X", EVENT_TYPE_INVALID, "gce-vm0", &b), -EINVAL);
	assert_int_equal(gcp_maintenance_event("lower", EVENT_TERMINATE, "gce-vm0", &b), -EINVAL);
	assert_int_equal(gcp_maintenance_event("", EVENT_TERMINATE, "gce-vm0", &b), -EINVAL);
	assert_int_equal(gcp_maintenance_event(NULL, EVENT_TERMINATE, "gce-vm0", &b), -EINVAL);
	assert_int_equal(gcp_maintenance_event("X", EVENT_TERMINATE, "", &b), -EINVAL);
	assert_int_equal(gcp_maintenance_event("X", EVENT_TERMINATE, NULL, &b), -EINVAL);
	memset(value, 'M', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	assert_int_equal(gcp_maintenance_event(value, EVENT_TERMINATE, "gce-vm0", &b), -EINVAL);
	assert_string_equal(b.id, "gcp-maintenance-terminate_on_host_maintenance");
	/* The longest value the parser accepts still makes a valid key. */
	value[PROVIDER_TOKEN_MAX] = '\0';
	assert_int_equal(gcp_maintenance_event(value, EVENT_TERMINATE, "gce-vm0", &b), 0);
	assert_true(event_id_valid(b.id));
	assert_true(strlen(b.id) <= PROVIDER_KEY_MAX - 1);
	event_done(&a);
	event_done(&b);
}

static void test_boot_tag(void **state)
{
	const char *tag = boot_id_tag();

	assert_non_null(tag);
	assert_true(strlen(tag) <= 8);
	for (const char *c = tag; *c; c++)
		assert_true((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'));
	/* Read once: the same for the whole process. */
	assert_ptr_equal(boot_id_tag(), tag);
	if (access("/proc/sys/kernel/random/boot_id", R_OK) == 0)
		assert_int_equal(strlen(tag), 8);
}

/* ---- rounds against the fake metadata service ---- */

#define NAME_PATH        "/computeMetadata/v1/instance/name"
#define PREEMPTED_PATH   "/computeMetadata/v1/instance/preempted"
#define MAINTENANCE_PATH "/computeMetadata/v1/instance/maintenance-event"

/* Google's metadata server: every answer needs the header, and carries it. */
static void serve_gcp(struct fake_imds *f)
{
	static const char *const paths[] = { NAME_PATH, PREEMPTED_PATH, MAINTENANCE_PATH };

	fake_set(f, "GET", NAME_PATH, 200, "gce-vm0");
	fake_set(f, "GET", PREEMPTED_PATH, 200, "FALSE");
	fake_set(f, "GET", MAINTENANCE_PATH, 200, "NONE");
	for (size_t i = 0; i < ELEMENTSOF(paths); i++)
		FAKE_EDIT(f, "GET", paths[i],
			  (void)strscpy(R->require, sizeof(R->require), "Metadata-Flavor: Google");
			  R->reject_status = 403; R->flavor = true);
}

static char *preempt_key(const char *name)
{
	const char *tag = boot_id_tag();

	return xasprintf("gcp-preempted-%s%s%s", name, tag[0] ? "-" : "", tag);
}

static void test_rounds(void **state)
{
	struct capture c = { 0 };
	struct provider_handle *p = NULL, *aws = NULL;
	struct spot_event *ev;
	struct world w;
	unsigned cost, sent;
	char *key = preempt_key("gce-vm0");

	world_init(&w);
	serve_gcp(&w.fake);
	assert_int_equal(new_provider(PROVIDER_GCP, w.imds, w.fake.url, NULL, &p), 0);
	assert_false(provider_can_approve(p));
	assert_int_equal(provider_approve(p, &(struct provider_ack){ .event_id = "x", .feed = FEED_GCP_PREEMPTED },
					  SEC(1), NULL, NULL), -EOPNOTSUPP);
	assert_int_equal(provider_heartbeat(p, NULL, NULL), -EOPNOTSUPP);
	assert_int_equal(provider_heartbeat_period_usec(p), 0);

	/* The name first, then the hanging GET and maintenance-event. */
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_int_equal(cost, 3);
	assert_int_equal(sent, 3);
	assert_string_equal(c.vm_name, "gce-vm0");
	assert_true(c.had_events);
	assert_int_equal(c.events.n_events, 0);
	assert_false(c.rebalance);
	assert_int_equal(c.incarnation, -1);
	assert_true(fake_last_arg(&w.fake, "GET", PREEMPTED_PATH, "wait_for_change=true"));
	assert_true(fake_last_arg(&w.fake, "GET", PREEMPTED_PATH, "timeout_sec=1"));
	assert_true(fake_last_has(&w.fake, "GET", MAINTENANCE_PATH, "Metadata-Flavor: Google"));
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 2);
	assert_int_equal(sent, 2);
	assert_int_equal(fake_hits(&w.fake, "GET", NAME_PATH), 1);

	/* Preempted: the key and the default notice ... */
	fake_set(&w.fake, "GET", PREEMPTED_PATH, 200, "TRUE\n");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.events.n_events, 1);
	assert_int_equal(c.feeds_answered, (1u << FEED_GCP_PREEMPTED) | (1u << FEED_GCP_MAINTENANCE));
	ev = &c.events.events[0];
	assert_string_equal(ev->id, key);
	assert_true(ev->id_from_first_seen);
	assert_int_equal(ev->feed, FEED_GCP_PREEMPTED);
	assert_false(ev->needs_ack);
	assert_int_equal(ev->type, EVENT_PREEMPT);
	assert_int_equal(ev->not_before_usec, 0);
	assert_int_equal(ev->notice_usec, SEC(GCP_PREEMPT_NOTICE_SEC));
	assert_true(event_names_resource(ev, "gce-vm0"));

	/* ... or the one configured (0 restores the default; other
	 * providers ignore it). */
	{
		struct provider_config cfg;

		provider_config_init(&cfg);
		cfg.gcp_preempt_notice_sec = 120;
		assert_int_equal(provider_set_config(p, &cfg), 0);
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(c.events.events[0].notice_usec, SEC(120));
		cfg.gcp_preempt_notice_sec = 0;
		assert_int_equal(provider_set_config(p, &cfg), 0);
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(c.events.events[0].notice_usec, SEC(30));
		assert_string_equal(c.vm_name, "gce-vm0");   /* the name stays */
		assert_int_equal(provider_set_config(NULL, &cfg), -EINVAL);
		assert_int_equal(provider_set_config(p, NULL), -EINVAL);
		assert_int_equal(new_provider(PROVIDER_AWS, w.imds, w.fake.url, NULL, &aws), 0);
		cfg.gcp_preempt_notice_sec = 120;
		assert_int_equal(provider_set_config(aws, &cfg), 0);
		provider_free(aws);
	}

	/* Both at once. */
	fake_set(&w.fake, "GET", MAINTENANCE_PATH, 200, "TERMINATE_ON_HOST_MAINTENANCE\n");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.events.n_events, 2);
	assert_string_equal(c.events.events[0].id, key);
	ev = &c.events.events[1];
	assert_string_equal(ev->id, "gcp-maintenance-terminate_on_host_maintenance");
	assert_int_equal(ev->feed, FEED_GCP_MAINTENANCE);
	assert_int_equal(ev->type, EVENT_TERMINATE);
	assert_int_equal(ev->notice_usec, SEC(GCP_MAINTENANCE_NOTICE_SEC));
	assert_true(event_names_resource(ev, "gce-vm0"));

	/* maintenance-event answers 503 around maintenance: its feed is
	 * unknown this round, and the preemption is still seen. */
	fake_set(&w.fake, "GET", MAINTENANCE_PATH, 503, "");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_int_equal(cost, 2);
	assert_int_equal(sent, 2);
	assert_string_equal(c.optional_error, "instance/maintenance-event: HTTP 503");
	assert_int_equal(c.feeds_answered, 1u << FEED_GCP_PREEMPTED);
	assert_int_equal(c.events.n_events, 1);
	assert_string_equal(c.events.events[0].id, key);
	assert_string_equal(c.vm_name, "gce-vm0");
	/* ... and so for garbage and a stall. */
	fake_set(&w.fake, "GET", MAINTENANCE_PATH, 200, "maybe later");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_string_equal(c.optional_error, "instance/maintenance-event: unreadable answer");
	assert_int_equal(c.feeds_answered, 1u << FEED_GCP_PREEMPTED);
	assert_int_equal(c.events.n_events, 1);
	FAKE_EDIT(&w.fake, "GET", MAINTENANCE_PATH, R->delay_ms = 800);
	one_round(&w, p, 300 * USEC_PER_MSEC, &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_true(strncmp(c.optional_error, "instance/maintenance-event: timed out after 0.", 46) == 0);
	assert_int_equal(c.events.n_events, 1);
	FAKE_EDIT(&w.fake, "GET", MAINTENANCE_PATH, R->delay_ms = 0);
	/* A 404 of maintenance-event is no answer either. */
	fake_set(&w.fake, "GET", MAINTENANCE_PATH, 404, "");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_string_equal(c.optional_error, "instance/maintenance-event: HTTP 404");

	/* The essential item failing fails the round whatever maintenance-
	 * event said, once both answered. */
	fake_set(&w.fake, "GET", MAINTENANCE_PATH, 200, "MIGRATE_ON_HOST_MAINTENANCE");
	fake_set(&w.fake, "GET", PREEMPTED_PATH, 200, "yes");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_BAD_DOCUMENT);
	assert_string_equal(c.error, "instance/preempted: unreadable answer");
	assert_string_equal(c.optional_error, "");
	assert_int_equal(sent, 2);
	fake_set(&w.fake, "GET", PREEMPTED_PATH, 500, "");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(c.error, "instance/preempted: HTTP 500");

	provider_free(p);
	/* Without the header the server refuses: the name item says so. */
	assert_int_equal(new_provider(PROVIDER_GCP, w.imds, w.fake.url, NULL, &p), 0);
	FAKE_EDIT(&w.fake, "GET", NAME_PATH,
		  (void)strscpy(R->require, sizeof(R->require), "Metadata-Flavor: Other"));
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_string_equal(c.error, "instance/name: HTTP 403");
	provider_free(p);
	capture_done(&c);
	free(key);
	world_done(&w);
}

/* instance/preempted waits up to its timeout_sec on purpose: its request
 * may take the caller's timeout plus that second; the other items may not. */
static void test_hanging_get_timeout(void **state)
{
	struct capture c = { 0 };
	struct provider_handle *p = NULL;
	struct world w;
	unsigned cost, sent;

	world_init(&w);
	serve_gcp(&w.fake);
	assert_int_equal(new_provider(PROVIDER_GCP, w.imds, w.fake.url, "gce-vm0", &p), 0);

	/* The override: no instance/name request at all. */
	FAKE_EDIT(&w.fake, "GET", PREEMPTED_PATH, R->delay_ms = 1200);
	one_round(&w, p, 500 * USEC_PER_MSEC, &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_int_equal(cost, 2);
	assert_int_equal(sent, 2);
	assert_string_equal(c.vm_name, "gce-vm0");
	assert_int_equal(fake_hits(&w.fake, "GET", NAME_PATH), 0);
	assert_true(c.latency_usec >= 1200 * USEC_PER_MSEC);

	/* A first-call timeout is Azure's only: GCP's first round keeps the
	 * plain one. */
	FAKE_EDIT(&w.fake, "GET", PREEMPTED_PATH, R->delay_ms = 1900);
	one_round_first(&w, p, 300 * USEC_PER_MSEC, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_TIMEOUT);
	assert_true(strncmp(c.error, "instance/preempted: timed out after 1.", 38) == 0);

	FAKE_EDIT(&w.fake, "GET", PREEMPTED_PATH, R->delay_ms = 0);
	FAKE_EDIT(&w.fake, "GET", MAINTENANCE_PATH, R->delay_ms = 700);
	one_round_first(&w, p, 300 * USEC_PER_MSEC, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_true(strncmp(c.optional_error, "instance/maintenance-event: timed out after 0.", 46) == 0);

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* ---- the 'auto' probe ---- */

#define AZURE_COMPUTE "/metadata/instance/compute"
#define AWS_TOKEN     "/latest/api/token"

struct probe_answer {
	int calls;
	enum provider found;
	enum imds_result result;
	char line[IMDS_ERROR_MAX];
};

static void on_probe(enum provider found, enum imds_result result, const char *error, void *userdata)
{
	struct probe_answer *a = userdata;

	a->calls++;
	a->found = found;
	a->result = result;
	assert_non_null(error);
	(void)strscpy(a->line, sizeof(a->line), error);
}

/* One step: exactly one request, exactly one answer. */
static void probe_step(struct world *w, struct provider_probe *pr, struct probe_answer *a)
{
	unsigned before = counter_sent(&w->count);
	uint64_t end = now_usec(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC;
	int calls = a->calls;

	assert_int_equal(provider_probe_step(pr, SEC(5), on_probe, a), 0);
	assert_int_equal(provider_probe_step(pr, SEC(5), on_probe, a), -EBUSY);
	assert_int_equal(a->calls, calls);
	while (a->calls == calls) {
		assert_true(now_usec(CLOCK_MONOTONIC) < end);
		assert_true(sd_event_run(w->event, 100 * USEC_PER_MSEC) >= 0);
	}
	assert_int_equal(a->calls, calls + 1);
	assert_int_equal(counter_sent(&w->count), before + 1);
}

static void test_probe(void **state)
{
	struct probe_answer a = { 0 };
	struct provider_probe *pr = NULL;
	struct world w;

	world_init(&w);
	assert_int_equal(provider_probe_new(NULL, w.fake.url, &pr), -EINVAL);
	assert_int_equal(provider_probe_new(w.imds, "/", &pr), -EINVAL);
	assert_int_equal(provider_probe_new(w.imds, w.fake.url, &pr), 0);

	/* Nothing answers: each dialect refuses in turn, then the failure. */
	probe_step(&w, pr, &a);
	assert_int_equal(a.found, PROVIDER_AUTO);
	assert_int_equal(a.result, IMDS_RESULT_OK);
	assert_string_equal(a.line, "azure: HTTP 404");
	probe_step(&w, pr, &a);
	assert_int_equal(a.found, PROVIDER_AUTO);
	assert_int_equal(a.result, IMDS_RESULT_OK);
	assert_string_equal(a.line, "aws: HTTP 404");
	probe_step(&w, pr, &a);
	assert_int_equal(a.found, PROVIDER_AUTO);
	assert_int_equal(a.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(a.line, "no metadata service answered as azure, aws or gcp (gcp: HTTP 404)");

	/* A 200 for GCP's item without Metadata-Flavor: Google is not GCP. */
	fake_set(&w.fake, "GET", NAME_PATH, 200, "gce-vm0");
	for (int i = 0; i < 2; i++)
		probe_step(&w, pr, &a);
	assert_int_equal(fake_hits(&w.fake, "GET", NAME_PATH), 0);
	probe_step(&w, pr, &a);
	assert_int_equal(fake_hits(&w.fake, "GET", NAME_PATH), 1);
	assert_true(fake_last_has(&w.fake, "GET", NAME_PATH, "Metadata-Flavor: Google"));
	assert_int_equal(a.found, PROVIDER_AUTO);
	assert_int_equal(a.result, IMDS_RESULT_BAD_DOCUMENT);
	assert_string_equal(a.line, "no metadata service answered as azure, aws or gcp (gcp: not its dialect)");

	/* With the header it is. */
	FAKE_EDIT(&w.fake, "GET", NAME_PATH, R->flavor = true);
	for (int i = 0; i < 2; i++)
		probe_step(&w, pr, &a);
	probe_step(&w, pr, &a);
	assert_int_equal(a.found, PROVIDER_GCP);
	assert_int_equal(a.result, IMDS_RESULT_OK);
	assert_string_equal(a.line, "");

	/* AWS: a token for the PUT. */
	fake_set(&w.fake, "PUT", AWS_TOKEN, 200, "AQAEAtoken==");
	FAKE_EDIT(&w.fake, "PUT", AWS_TOKEN,
		  (void)strscpy(R->require, sizeof(R->require), "X-aws-ec2-metadata-token-ttl-seconds: 60");
		  R->reject_status = 400);
	probe_step(&w, pr, &a);
	assert_string_equal(a.line, "azure: HTTP 404");
	probe_step(&w, pr, &a);
	assert_int_equal(a.found, PROVIDER_AWS);
	assert_int_equal(a.result, IMDS_RESULT_OK);
	assert_int_equal(fake_hits(&w.fake, "PUT", AWS_TOKEN), 1);

	/* Azure: the compute document, asked with Metadata: true. */
	fake_set(&w.fake, "GET", AZURE_COMPUTE, 200, "{\"name\": \"az-vm0\", \"priority\": \"Spot\"}");
	FAKE_EDIT(&w.fake, "GET", AZURE_COMPUTE,
		  (void)strscpy(R->require, sizeof(R->require), "Metadata: true"); R->reject_status = 400);
	probe_step(&w, pr, &a);
	assert_int_equal(a.found, PROVIDER_AZURE);
	assert_true(fake_last_arg(&w.fake, "GET", AZURE_COMPUTE, "api-version=2021-02-01"));
	/* A 200 that is not a compute document is not Azure. */
	fake_set(&w.fake, "GET", AZURE_COMPUTE, 200, "<html></html>");
	probe_step(&w, pr, &a);
	assert_int_equal(a.found, PROVIDER_AUTO);
	assert_int_equal(a.result, IMDS_RESULT_OK);
	assert_string_equal(a.line, "azure: not its dialect");
	probe_step(&w, pr, &a);
	assert_int_equal(a.found, PROVIDER_AWS);

	/* Throttled or failing: the same dialect is asked again later. */
	fake_set(&w.fake, "GET", AZURE_COMPUTE, 429, "");
	probe_step(&w, pr, &a);
	assert_int_equal(a.found, PROVIDER_AUTO);
	assert_int_equal(a.result, IMDS_RESULT_THROTTLED);
	assert_string_equal(a.line, "azure: HTTP 429 (throttled)");
	fake_set(&w.fake, "GET", AZURE_COMPUTE, 503, "");
	probe_step(&w, pr, &a);
	assert_int_equal(a.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(a.line, "azure: HTTP 503");
	fake_set(&w.fake, "PUT", AWS_TOKEN, 500, "");
	fake_set(&w.fake, "GET", AZURE_COMPUTE, 404, "");
	probe_step(&w, pr, &a);
	assert_int_equal(a.result, IMDS_RESULT_OK);
	probe_step(&w, pr, &a);
	assert_int_equal(a.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(a.line, "aws: HTTP 500");
	/* Found, not its dialect, 429, 503 (asked again), 404. */
	assert_int_equal(fake_hits(&w.fake, "GET", AZURE_COMPUTE), 5);

	/* Freed in flight: no callback. */
	assert_int_equal(provider_probe_step(pr, SEC(5), on_probe, &a), 0);
	provider_probe_free(pr);
	assert_false(imds_busy(w.imds, IMDS_SLOT_IDENTITY));
	assert_true(sd_event_run(w.event, 50 * USEC_PER_MSEC) >= 0);
	provider_probe_free(NULL);
	world_done(&w);
}

/* The transport hands the Metadata-Flavor response header over. */
struct flavor_seen {
	int calls;
	char flavor[IMDS_FLAVOR_MAX];
};

static void on_flavor(const struct imds_reply *r, void *userdata)
{
	struct flavor_seen *s = userdata;

	s->calls++;
	assert_non_null(r->metadata_flavor);
	(void)strscpy(s->flavor, sizeof(s->flavor), r->metadata_flavor);
}

static void test_reply_flavor(void **state)
{
	struct flavor_seen s = { 0 };
	struct world w;
	char *url;

	world_init(&w);
	fake_set(&w.fake, "GET", "/with", 200, "x");
	FAKE_EDIT(&w.fake, "GET", "/with", R->flavor = true);
	fake_set(&w.fake, "GET", "/without", 200, "x");

	url = xasprintf("%s/with", w.fake.url);
	assert_int_equal(imds_request(w.imds, IMDS_SLOT_POLL, "GET", url, NULL, NULL, SEC(5), on_flavor, &s), 0);
	free(url);
	while (s.calls < 1)
		assert_true(sd_event_run(w.event, 100 * USEC_PER_MSEC) >= 0);
	assert_string_equal(s.flavor, "Google");

	url = xasprintf("%s/without", w.fake.url);
	assert_int_equal(imds_request(w.imds, IMDS_SLOT_POLL, "GET", url, NULL, NULL, SEC(5), on_flavor, &s), 0);
	free(url);
	while (s.calls < 2)
		assert_true(sd_event_run(w.event, 100 * USEC_PER_MSEC) >= 0);
	assert_string_equal(s.flavor, "");
	world_done(&w);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_length_bounded),
		cmocka_unit_test(test_round_plumbing),
		cmocka_unit_test(test_preempt_event),
		cmocka_unit_test(test_maintenance_event),
		cmocka_unit_test(test_boot_tag),
		cmocka_unit_test(test_rounds),
		cmocka_unit_test(test_hanging_get_timeout),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_reply_flavor),
	};
	struct CMUnitTest *tests;
	size_t n = ELEMENTSOF(fixed);
	int failed;

	tests = xmalloc(sizeof(fixed));
	memcpy(tests, fixed, sizeof(fixed));
	/* Guard against a data directory that silently went missing. */
	for (size_t i = 0; i < ELEMENTSOF(items); i++)
		if (add_cases(&tests, &n, &items[i], ".txt", test_case) < items[i].min_cases ||
		    add_cases(&tests, &n, &items[i], ".bad", test_bad) < items[i].min_bad) {
			fprintf(stderr, "test data missing under %s/%s\n", DATA_DIR, items[i].dir);
			return EXIT_FAILURE;
		}
	failed = _cmocka_run_group_tests("gcp", tests, n, NULL, NULL);
	free_cases(tests, ELEMENTSOF(fixed), n);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
