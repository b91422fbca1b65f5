/* test-record-json.c - the eviction record (record.c: the names of its
 * enums, the output ring, the list of evictions held and what it drops)
 * and its JSON (record-json.c): the round trip of evictions with several
 * notices, every hook outcome, reports and a recover chain; the keys of
 * every object; the strict reader refusing every field of the wrong type,
 * missing or unknown, every value out of its range and every field that
 * does not follow from the others; and a seeded property test over random
 * evictions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "record-util.h"

static const char *const special_lines[] = {
	"plain",
	"with \"double quotes\" and 'single'",
	"back\\slash and /slash",
	"embedded\nnewline and\r\ncarriage return",
	"tab\there",
	"utf-8: é ü ✓ 日本語 🚀",
	"control: \x01\x02\x1b[31mred\x1b[0m\x7f",
	"",
};

/* ---- names ---- */

static void test_names(void **unused)
{
	static const char *const lifecycles[] = {
		"detected", "running", "paused", "draining", "acknowledging", "done", "cancelled",
		"recovering", "closed",
	};
	static const char *const policies[] = { "after-hooks", "at-once", "never" };
	static const char *const acks[] = { "none", "waiting", "sent", "dropped" };
	static const char *const reasons[] = { "none", "cancelled", "ended", "boot" };
	static const char *const outcomes[] = { "pending", "running", "ok", "failed", "timeout", "skipped" };
	static const char *const reports[] = { "lost_work_seconds", "checkpoint_bytes", "jobs_requeued" };
	enum lifecycle l;
	enum ack_policy p;
	enum ack_state a;
	enum recover_reason rr;
	enum hook_outcome o;

	(void)unused;
	assert_int_equal(ELEMENTSOF(lifecycles), _LC_MAX);
	for (int i = 0; i < _LC_MAX; i++) {
		assert_string_equal(lifecycle_to_string((enum lifecycle)i), lifecycles[i]);
		assert_int_equal(lifecycle_from_string(lifecycles[i], &l), 0);
		assert_int_equal(l, i);
	}
	assert_int_equal(ELEMENTSOF(policies), _ACK_POLICY_MAX);
	for (int i = 0; i < _ACK_POLICY_MAX; i++) {
		assert_string_equal(ack_policy_to_string((enum ack_policy)i), policies[i]);
		assert_int_equal(ack_policy_from_string(policies[i], &p), 0);
		assert_int_equal(p, i);
	}
	assert_int_equal(ELEMENTSOF(acks), _ACK_STATE_MAX);
	for (int i = 0; i < _ACK_STATE_MAX; i++) {
		assert_string_equal(ack_state_to_string((enum ack_state)i), acks[i]);
		assert_int_equal(ack_state_from_string(acks[i], &a), 0);
		assert_int_equal(a, i);
	}
	assert_int_equal(ELEMENTSOF(reasons), _RECOVER_REASON_MAX);
	for (int i = 0; i < _RECOVER_REASON_MAX; i++) {
		assert_string_equal(recover_reason_to_string((enum recover_reason)i), reasons[i]);
		assert_int_equal(recover_reason_from_string(reasons[i], &rr), 0);
		assert_int_equal(rr, i);
	}
	assert_int_equal(ELEMENTSOF(outcomes), _HOOK_OUTCOME_MAX);
	for (int i = 0; i < _HOOK_OUTCOME_MAX; i++) {
		assert_string_equal(hook_outcome_to_string((enum hook_outcome)i), outcomes[i]);
		assert_int_equal(hook_outcome_from_string(outcomes[i], &o), 0);
		assert_int_equal(o, i);
	}
	assert_int_equal(ELEMENTSOF(reports), _REPORT_KEY_MAX);
	for (int i = 0; i < _REPORT_KEY_MAX; i++)
		assert_string_equal(report_key_to_string((enum report_key)i), reports[i]);
	for (int i = 0; i < _EVENT_FEED_MAX; i++)
		assert_non_null(event_feed_to_string((enum event_feed)i));

	/* Out of range: NULL; unknown, other case, NULL: refused, the output
	 * untouched. */
	assert_null(lifecycle_to_string(_LC_MAX));
	assert_null(lifecycle_to_string((enum lifecycle)-1));
	assert_null(ack_policy_to_string(_ACK_POLICY_MAX));
	assert_null(ack_state_to_string(_ACK_STATE_MAX));
	assert_null(recover_reason_to_string(_RECOVER_REASON_MAX));
	assert_null(hook_outcome_to_string(_HOOK_OUTCOME_MAX));
	assert_null(report_key_to_string(_REPORT_KEY_MAX));
	l = LC_PAUSED;
	assert_int_equal(lifecycle_from_string("Running", &l), -EINVAL);
	assert_int_equal(lifecycle_from_string("acking", &l), -EINVAL);
	assert_int_equal(lifecycle_from_string("", &l), -EINVAL);
	assert_int_equal(lifecycle_from_string(NULL, &l), -EINVAL);
	assert_int_equal(l, LC_PAUSED);
	assert_int_equal(ack_policy_from_string("after_hooks", &p), -EINVAL);
	assert_int_equal(ack_state_from_string("acked", &a), -EINVAL);
	assert_int_equal(recover_reason_from_string("reboot", &rr), -EINVAL);
	assert_int_equal(hook_outcome_from_string("OK", &o), -EINVAL);

	assert_false(hook_outcome_is_final(HOOK_PENDING));
	assert_false(hook_outcome_is_final(HOOK_RUNNING));
	assert_true(hook_outcome_is_final(HOOK_OK));
	assert_true(hook_outcome_is_final(HOOK_FAILED));
	assert_true(hook_outcome_is_final(HOOK_TIMEOUT));
	assert_true(hook_outcome_is_final(HOOK_SKIPPED));
}

/* ---- the eviction's plain parts ---- */

static void test_eviction_parts(void **unused)
{
	struct eviction r;
	struct hook_result *h;
	struct spot_event seen;
	uint64_t deadline;

	(void)unused;
	make_eviction(&r, "Lead-1", LC_RUNNING);
	add_notice(&r, "Second-2");
	assert_ptr_equal(eviction_lead(&r), &r.notices[0]);
	assert_ptr_equal(eviction_lead_const(&r), &r.notices[0]);
	assert_ptr_equal(eviction_notice(&r, "second-2"), &r.notices[1]);
	assert_ptr_equal(eviction_notice(&r, "LEAD-1"), &r.notices[0]);
	assert_null(eviction_notice(&r, "third"));

	/* A hook ran when it was started and has an outcome of a run. */
	assert_false(eviction_chain_ran(&r));
	h = add_hook(&r, "10-skipped", HOOK_SKIPPED);
	h->start_wall_usec = 0;
	assert_false(hook_result_ran(h));
	h = add_hook(&r, "20-pending", HOOK_PENDING);
	assert_false(hook_result_ran(h));
	assert_false(eviction_chain_ran(&r));
	h = add_hook(&r, "30-running", HOOK_RUNNING);
	assert_true(hook_result_ran(h));
	assert_true(eviction_chain_ran(&r));
	h->start_wall_usec = 0;
	assert_false(hook_result_ran(h));
	h->start_wall_usec = T0;
	for (int o = HOOK_OK; o <= HOOK_TIMEOUT; o++) {
		h->outcome = (enum hook_outcome)o;
		assert_true(hook_result_ran(h));
	}

	/* What hooks read: as first seen, then as noted when a hook starts. */
	eviction_seen_event(&r, &seen, &deadline);
	assert_string_equal(seen.id, "Lead-1");
	assert_int_equal(seen.status, EVENT_SCHEDULED);
	assert_int_equal(deadline, r.deadline_wall_usec);
	eviction_note_seen(&r);
	assert_true(r.seen.set);
	r.notices[0].ev.status = EVENT_STARTED;
	r.notices[0].ev.not_before_usec += USEC_PER_SEC;
	r.deadline_wall_usec -= USEC_PER_SEC;
	eviction_seen_event(&r, &seen, &deadline);
	assert_int_equal(seen.status, EVENT_SCHEDULED);
	assert_int_equal(seen.not_before_usec, r.notices[0].ev.not_before_usec - USEC_PER_SEC);
	assert_int_equal(deadline, r.deadline_wall_usec + USEC_PER_SEC);
	/* It borrows the lead's resources. */
	assert_ptr_equal(seen.resources, r.notices[0].ev.resources);
	eviction_note_seen(&r);
	eviction_seen_event(&r, &seen, &deadline);
	assert_int_equal(seen.status, EVENT_STARTED);
	assert_int_equal(deadline, r.deadline_wall_usec);

	eviction_done(&r);
	assert_null(r.notices);
	assert_int_equal(r.n_notices, 0);
	eviction_done(&r);
	eviction_done(NULL);
	notice_done(NULL);

	/* No notice: no lead; the event shows the eviction's id. */
	eviction_init(&r);
	(void)strscpy(r.id, sizeof(r.id), "bare");
	assert_null(eviction_lead(&r));
	eviction_note_seen(&r);
	assert_false(r.seen.set);
	eviction_seen_event(&r, &seen, &deadline);
	assert_string_equal(seen.id, "bare");
	eviction_done(&r);
}

static void test_result_ring(void **unused)
{
	struct hook_result r;
	cJSON *lines;
	char *big;

	(void)unused;
	hook_result_init(&r, "10-x", "/etc/spot-agent.d/10-x");
	assert_int_equal(r.outcome, HOOK_PENDING);
	assert_int_equal(r.exit_status, -1);
	assert_string_equal(r.error, "");
	assert_int_equal(report_keys_of(&r.report), 0);
	for (int i = 1; i <= 25; i++) {
		char buf[32];

		snprintf(buf, sizeof(buf), "line %d", i);
		hook_result_add_line(&r, buf);
	}
	lines = lines_of(&r);
	assert_int_equal(cJSON_GetArraySize(lines), HOOK_OUTPUT_LINES);
	assert_string_equal(cJSON_GetArrayItem(lines, 0)->valuestring, "line 16");
	assert_string_equal(cJSON_GetArrayItem(lines, 9)->valuestring, "line 25");
	cJSON_Delete(lines);

	/* Cut on a character boundary, made UTF-8. */
	big = xmalloc(HOOK_LINE_MAX + 1);
	memset(big, 0xff, HOOK_LINE_MAX);
	big[HOOK_LINE_MAX] = '\0';
	hook_result_add_line(&r, big);
	lines = lines_of(&r);
	assert_true(utf8_valid(cJSON_GetArrayItem(lines, 9)->valuestring));
	assert_int_equal(strlen(cJSON_GetArrayItem(lines, 9)->valuestring), HOOK_LINE_MAX / 3 * 3);
	cJSON_Delete(lines);
	free(big);
	hook_result_done(&r);
	lines = lines_of(&r);
	assert_int_equal(cJSON_GetArraySize(lines), 0);
	cJSON_Delete(lines);
	hook_result_done(NULL);
}

/* ---- the list ---- */

static void test_records_list(void **unused)
{
	struct records s;
	struct eviction r, *got;
	char id[32];

	(void)unused;
	/* Closed evictions: the newest RECORDS_MAX stay. */
	records_init(&s);
	assert_null(records_current(&s));
	for (int i = 0; i < 40; i++) {
		snprintf(id, sizeof(id), "c%d", i);
		add_eviction(&s, id, LC_CLOSED);
	}
	assert_int_equal(s.n, RECORDS_MAX);
	snprintf(id, sizeof(id), "c%d", 40 - RECORDS_MAX);
	assert_string_equal(s.items[0].id, id);
	assert_string_equal(s.items[RECORDS_MAX - 1].id, "c39");
	/* All closed: the current one is the newest. */
	assert_string_equal(records_current(&s)->id, "c39");
	records_done(&s);

	/* Evictions not closed survive any number of newer closed ones, in
	 * every other state. */
	records_init(&s);
	for (int l = 0; l < _LC_MAX; l++)
		if (l != LC_CLOSED)
			add_eviction(&s, lifecycle_to_string((enum lifecycle)l), (enum lifecycle)l);
	for (int i = 0; i < 40; i++) {
		snprintf(id, sizeof(id), "c%d", i);
		add_eviction(&s, id, LC_CLOSED);
	}
	assert_int_equal(s.n, RECORDS_MAX);
	for (int l = 0, k = 0; l < _LC_MAX; l++)
		if (l != LC_CLOSED)
			assert_string_equal(s.items[k++].id, lifecycle_to_string((enum lifecycle)l));
	assert_string_equal(s.items[RECORDS_MAX - 1].id, "c39");
	/* The current one is the newest not closed. */
	assert_string_equal(records_current(&s)->id, "recovering");
	records_done(&s);

	/* None closed: the cap gives way; one just added, closed or not, is
	 * never dropped at once (the caller holds the returned pointer). */
	records_init(&s);
	for (int i = 0; i < RECORDS_MAX + 4; i++) {
		snprintf(id, sizeof(id), "u%d", i);
		add_eviction(&s, id, LC_RUNNING);
	}
	assert_int_equal(s.n, RECORDS_MAX + 4);
	make_eviction(&r, "new-closed", LC_CLOSED);
	add_hook(&r, "10-a", HOOK_OK);
	got = records_add(&s, &r);
	assert_string_equal(got->id, "new-closed");
	assert_ptr_equal(got, &s.items[s.n - 1]);
	assert_int_equal(s.n, RECORDS_MAX + 5);
	assert_int_equal(r.n_hooks, 0);          /* *r was zeroed */
	assert_null(r.hooks);
	assert_null(r.notices);
	assert_string_equal(records_current(&s)->id, "u19");

	/* Found by id, case aside, newest first. */
	assert_ptr_equal(records_find(&s, "U3"), &s.items[3]);
	assert_null(records_find(&s, "u99"));
	add_eviction(&s, "u3", LC_CLOSED);
	assert_ptr_equal(records_find(&s, "u3"), &s.items[s.n - 1]);

	/* A drill never shows as the current eviction while another does. */
	records_replace(&s, NULL, 0);
	assert_int_equal(s.n, 0);
	add_eviction(&s, "real", LC_DONE);
	add_eviction(&s, "drill", LC_RUNNING)->drill = true;
	assert_string_equal(records_current(&s)->id, "real");
	records_done(&s);
	records_done(NULL);
}

/* ---- the round trip ---- */

/* Renders r, parses it back; fails with the reader's defect. */
static void read_back(const struct eviction *r, struct eviction *ret)
{
	struct json_err err = { "" };
	char *text = record_text(r);
	cJSON *parsed = cJSON_Parse(text);

	assert_non_null(parsed);
	if (record_from_json(parsed, ret, &err) < 0)
		fail_msg("did not read back: %s\n%s", err.why, text);
	cJSON_Delete(parsed);
	cJSON_free(text);
}

/* An eviction of three notices of three feeds, every hook outcome, output
 * with every kind of character, reports, and a recover chain. */
static void make_full(struct eviction *r)
{
	struct hook_result *h;
	struct notice *n;

	make_eviction(r, "6B2F6E4A-1C2D-4E5F-8A9B-0C1D2E3F4A5B", LC_ACKING);
	(void)strscpy(r->boot, sizeof(r->boot), "0123456789abcdef0123456789abcdef");
	r->emergency = true;
	r->empty_plan = false;
	r->chain_ended_wall_usec = T0 + 20 * USEC_PER_SEC;
	r->drain_until_wall_usec = T0 + 10 * USEC_PER_SEC;
	r->last_alive_wall_usec = T0 + 21 * USEC_PER_SEC;
	n = &r->notices[0];
	(void)strscpy(n->ev.description, sizeof(n->ev.description), "Quote \" newline \n tab \t é");
	assert_int_equal(event_add_resource(&n->ev, "vm-spot-2"), 0);
	n->ack = ACK_SENT;
	n->acked_wall_usec = T0 + 22 * USEC_PER_SEC;
	n->ack_attempts = 3;
	n->policy = ACK_AT_ONCE;
	n->started = true;

	n = add_notice(r, "aws-spot-terminate-1795761030");
	n->ev.provider = PROVIDER_AWS;
	n->ev.feed = FEED_AWS_SPOT;
	n->ev.needs_ack = false;
	n->ev.end = END_CANCELED;
	(void)strscpy(n->key, sizeof(n->key), "aws-spot-terminate");
	n->gone = true;
	n->gone_wall_usec = T0 + 5 * USEC_PER_SEC;
	n->ack = ACK_NONE;
	n->emergency = true;

	n = add_notice(r, "os-shutdown-0123");
	n->ev.type = EVENT_SHUTDOWN;
	n->ev.feed = FEED_OS;
	n->ev.end = END_COMPLETED;
	n->ev.not_before_usec = 0;
	n->ev.needs_ack = false;
	(void)strscpy(n->ev.source, sizeof(n->ev.source), "OS");
	n->policy = ACK_NEVER;
	n->ack = ACK_DROPPED;

	add_hook(r, "00-pending", HOOK_PENDING);
	h = add_hook(r, "10-ok", HOOK_OK);
	for (size_t i = 0; i < ELEMENTSOF(special_lines); i++)
		hook_result_add_line(h, special_lines[i]);
	h->output_bytes = 4242;
	h->report.has_lost_work = true;
	h->report.lost_work_seconds = 0;
	h->report.has_jobs_requeued = true;
	h->report.jobs_requeued = 12;
	h->report.abandon = true;
	h = add_hook(r, "20-failed", HOOK_FAILED);
	h->exit_status = 3;
	for (int i = 0; i < 25; i++) {          /* more than the ring holds */
		char line[32];

		snprintf(line, sizeof(line), "line %d", i);
		hook_result_add_line(h, line);
	}
	h = add_hook(r, "30-killed", HOOK_FAILED);
	h->exit_status = -1;
	h->term_signal = 9;
	h = add_hook(r, "40-timeout", HOOK_TIMEOUT);
	h->term_signal = 15;
	h->timed_out = true;
	h->duration_usec = 20 * USEC_PER_SEC + 1;
	hook_result_add_line(h, "still working...");
	h = add_hook(r, "50-running", HOOK_RUNNING);
	hook_result_add_line(h, "half way");
	h->output_bytes = 9;
	h->report.has_checkpoint_bytes = true;
	h = add_hook(r, "60-skipped", HOOK_SKIPPED);
	(void)strscpy(h->skip_reason, sizeof(h->skip_reason), "deadline");
	h = add_hook(r, "70-bad-utf8", HOOK_OK);
	hook_result_add_line(h, "ok \xff\xfe end \xc3");
	h = add_hook(r, "80-cannot-exec", HOOK_FAILED);
	h->exit_status = 127;
	(void)strscpy(h->error, sizeof(h->error),
		      "cannot execute: No such file or directory (interpreter '/usr/bin/python9')");

	r->recover_reason = RECOVER_BOOT;
	r->recover_started_wall_usec = T0 + 3600 * USEC_PER_SEC;
	r->downtime_usec = 3578 * USEC_PER_SEC;
	h = add_hook_to(r, CHAIN_RECOVER, "10-rejoin", HOOK_OK);
	hook_result_add_line(h, "back");
	add_hook_to(r, CHAIN_RECOVER, "20-running", HOOK_RUNNING);
	add_hook_to(r, CHAIN_RECOVER, "30-pending", HOOK_PENDING);
}

static void test_round_trip(void **unused)
{
	struct eviction r, got, again;
	char why[160], *t1, *t2;
	cJSON *lines;

	(void)unused;
	make_full(&r);
	read_back(&r, &got);
	if (!eviction_reads_back(&r, &got, why, sizeof(why)))
		fail_msg("%s", why);

	/* Interrupted by a crash: it runs again from scratch. */
	assert_int_equal(got.hooks[5].outcome, HOOK_PENDING);
	assert_int_equal(got.hooks[5].start_wall_usec, 0);
	assert_int_equal(got.hooks[5].n_output, 0);
	assert_int_equal(report_keys_of(&got.hooks[5].report), 0);
	assert_int_equal(got.recover_hooks[1].outcome, HOOK_PENDING);
	/* The ring kept the last ten lines, oldest first. */
	lines = lines_of(&got.hooks[2]);
	assert_int_equal(cJSON_GetArraySize(lines), HOOK_OUTPUT_LINES);
	assert_string_equal(cJSON_GetArrayItem(lines, 0)->valuestring, "line 15");
	assert_string_equal(cJSON_GetArrayItem(lines, 9)->valuestring, "line 24");
	cJSON_Delete(lines);
	/* Special characters survived byte for byte. */
	lines = lines_of(&got.hooks[1]);
	assert_int_equal(cJSON_GetArraySize(lines), ELEMENTSOF(special_lines));
	for (size_t i = 0; i < ELEMENTSOF(special_lines); i++)
		assert_string_equal(cJSON_GetArrayItem(lines, (int)i)->valuestring, special_lines[i]);
	cJSON_Delete(lines);
	lines = lines_of(&got.hooks[7]);
	assert_string_equal(cJSON_GetArrayItem(lines, 0)->valuestring, "ok \xef\xbf\xbd\xef\xbf\xbd end \xef\xbf\xbd");
	cJSON_Delete(lines);
	assert_int_equal(got.hooks[1].report.jobs_requeued, 12);
	assert_true(got.hooks[1].report.abandon);
	assert_string_equal(got.hooks[8].error, r.hooks[8].error);
	assert_string_equal(got.notices[1].key, "aws-spot-terminate");
	assert_int_equal(got.notices[1].ev.end, END_CANCELED);
	assert_int_equal(got.notices[2].ev.feed, FEED_OS);
	assert_int_equal(got.recover_reason, RECOVER_BOOT);
	assert_int_equal(got.downtime_usec, 3578 * USEC_PER_SEC);
	assert_string_equal(got.boot, r.boot);

	/* What was read renders to itself: a fixed point after one round. */
	read_back(&got, &again);
	t1 = record_text(&got);
	t2 = record_text(&again);
	assert_string_equal(t1, t2);
	cJSON_free(t1);
	cJSON_free(t2);
	eviction_done(&again);
	eviction_done(&got);
	eviction_done(&r);
}

/* ---- the shape ---- */

static const char *const record_key_list[] = {
	"id", "lifecycle", "lifecycle_since", "lifecycle_since_usec", "event", "event_status",
	"not_before", "not_before_usec", "key", "gone", "gone_at", "gone_at_usec", "deadline",
	"deadline_usec", "emergency", "detected", "detected_usec", "boot", "chain_done", "chain_ended",
	"chain_ended_usec", "empty_plan", "drain_until", "drain_until_usec", "last_alive",
	"last_alive_usec", "hooks", "approval", "notices", "recovery",
};
static const char *const event_keys[] = {
	"id", "type", "status", "source", "not_before", "not_before_usec", "resources",
	"description", "duration_s", "provider", "deadline", "deadline_usec", "drill",
};
static const char *const hook_keys[] = {
	"name", "path", "result", "exit_status", "signal", "timed_out", "started", "started_usec",
	"duration_usec", "budget_usec", "skip_reason", "error", "report", "output", "output_bytes",
};
static const char *const report_keys[] = {
	"lost_work_seconds", "checkpoint_bytes", "jobs_requeued", "abandon",
};
static const char *const notice_keys[] = {
	"event", "key", "feed", "end", "needs_ack", "first_seen", "first_seen_usec", "emergency",
	"gone", "gone_at", "gone_at_usec", "started", "approval",
};
static const char *const notice_approval_keys[] = { "policy", "state", "at", "at_usec", "attempts" };
static const char *const approval_keys[] = {
	"wanted", "approved", "approved_at", "approved_at_usec", "attempts",
};
static const char *const recovery_keys[] = { "reason", "started", "started_usec", "downtime_usec", "hooks" };

static void test_keys(void **unused)
{
	struct eviction r;
	cJSON *o, *item, *st;

	(void)unused;
	assert_int_equal(record_n_keys, ELEMENTSOF(record_key_list));
	for (size_t i = 0; i < record_n_keys; i++)
		assert_string_equal(record_keys[i], record_key_list[i]);

	make_full(&r);
	o = record_to_json(&r, true);
	assert_keys(o, record_key_list, ELEMENTSOF(record_key_list));
	assert_keys(cJSON_GetObjectItem(o, "event"), event_keys, ELEMENTSOF(event_keys));
	assert_keys(cJSON_GetObjectItem(o, "approval"), approval_keys, ELEMENTSOF(approval_keys));
	assert_keys(cJSON_GetObjectItem(o, "recovery"), recovery_keys, ELEMENTSOF(recovery_keys));
	cJSON_ArrayForEach(item, cJSON_GetObjectItem(o, "hooks")) {
		assert_keys(item, hook_keys, ELEMENTSOF(hook_keys));
		assert_keys(cJSON_GetObjectItem(item, "report"), report_keys, ELEMENTSOF(report_keys));
	}
	cJSON_ArrayForEach(item, cJSON_GetObjectItem(cJSON_GetObjectItem(o, "recovery"), "hooks"))
		assert_keys(item, hook_keys, ELEMENTSOF(hook_keys));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "notices")), 3);
	cJSON_ArrayForEach(item, cJSON_GetObjectItem(o, "notices")) {
		assert_keys(item, notice_keys, ELEMENTSOF(notice_keys));
		assert_keys(cJSON_GetObjectItem(item, "event"), event_keys, ELEMENTSOF(event_keys));
		assert_keys(cJSON_GetObjectItem(item, "approval"), notice_approval_keys,
			    ELEMENTSOF(notice_approval_keys));
	}

	/* The values of the flat fields: the lead notice's, as now. */
	assert_member(o, "id", "\"6B2F6E4A-1C2D-4E5F-8A9B-0C1D2E3F4A5B\"");
	assert_member(o, "lifecycle", "\"acknowledging\"");
	assert_member(o, "lifecycle_since", "\"2026-11-27T06:30:31.000000Z\"");
	assert_member(o, "lifecycle_since_usec", "1795761031000000");
	assert_member(o, "event_status", "\"Scheduled\"");
	assert_member(o, "key", "null");
	assert_member(o, "gone", "false");
	assert_member(o, "gone_at", "null");
	assert_member(o, "emergency", "true");
	assert_member(o, "boot", "\"0123456789abcdef0123456789abcdef\"");
	assert_member(o, "chain_done", "true");
	assert_member(o, "chain_ended_usec", "1795761050000000");
	assert_member(o, "empty_plan", "false");
	assert_member(o, "drain_until", "\"2026-11-27T06:30:40.000000Z\"");
	assert_member(o, "last_alive_usec", "1795761051000000");
	/* The first notice that is acknowledged. */
	st = cJSON_GetObjectItem(o, "approval");
	assert_member(st, "wanted", "true");
	assert_member(st, "approved", "true");
	assert_member(st, "approved_at", "\"2026-11-27T06:30:52.000000Z\"");
	assert_member(st, "attempts", "3");
	item = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "notices"), 1);
	assert_member(item, "key", "\"aws-spot-terminate\"");
	assert_member(item, "feed", "\"aws-spot\"");
	assert_member(item, "end", "\"canceled\"");
	assert_member(item, "needs_ack", "false");
	assert_member(item, "gone", "true");
	assert_member(item, "gone_at_usec", "1795761035000000");
	assert_member(cJSON_GetObjectItem(item, "approval"), "state", "\"none\"");
	assert_member(cJSON_GetObjectItem(item, "approval"), "at", "null");
	item = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "notices"), 2);
	assert_member(item, "feed", "\"os\"");
	assert_member(item, "end", "\"completed\"");
	assert_member(cJSON_GetObjectItem(item, "approval"), "policy", "\"never\"");
	assert_member(cJSON_GetObjectItem(item, "approval"), "state", "\"dropped\"");
	assert_member(cJSON_GetObjectItem(item, "event"), "not_before", "null");
	assert_member(cJSON_GetObjectItem(item, "event"), "drill", "false");
	item = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "notices"), 0);
	assert_member(item, "feed", "\"azure-scheduled-events\"");
	assert_member(item, "end", "null");
	assert_member(item, "needs_ack", "true");
	assert_member(cJSON_GetObjectItem(item, "approval"), "policy", "\"at-once\"");
	assert_member(cJSON_GetObjectItem(item, "approval"), "state", "\"sent\"");
	/* Hooks: absent is null, never "" or 0. */
	item = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "hooks"), 0);
	assert_member(item, "result", "\"pending\"");
	assert_member(item, "exit_status", "null");
	assert_member(item, "signal", "null");
	assert_member(item, "started", "null");
	assert_member(item, "duration_usec", "null");
	assert_member(item, "skip_reason", "null");
	assert_member(item, "error", "null");
	assert_member(item, "output", "[]");
	assert_member(item, "report", "{\"lost_work_seconds\":null,\"checkpoint_bytes\":null,"
		      "\"jobs_requeued\":null,\"abandon\":false}");
	item = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "hooks"), 1);
	assert_member(item, "report", "{\"lost_work_seconds\":0,\"checkpoint_bytes\":null,"
		      "\"jobs_requeued\":12,\"abandon\":true}");
	item = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "hooks"), 3);
	assert_member(item, "exit_status", "null");
	assert_member(item, "signal", "9");
	item = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "hooks"), 8);
	assert_member(item, "exit_status", "127");
	assert_member(item, "error", "\"cannot execute: No such file or directory (interpreter '/usr/bin/python9')\"");
	assert_member(cJSON_GetObjectItem(o, "recovery"), "reason", "\"boot\"");
	assert_member(cJSON_GetObjectItem(o, "recovery"), "downtime_usec", "3578000000");
	cJSON_Delete(o);

	/* Without output lines: every ring empty, the byte counts kept. */
	o = record_to_json(&r, false);
	cJSON_ArrayForEach(item, cJSON_GetObjectItem(o, "hooks"))
		assert_member(item, "output", "[]");
	assert_member(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "hooks"), 1), "output_bytes", "4242");
	cJSON_Delete(o);

	/* The status form has the same keys; a hook's name and path are text
	 * there, byte for byte in the file. */
	(void)strscpy(r.hooks[0].name, sizeof(r.hooks[0].name), "00-\xff");
	o = json_object_new();
	record_add_fields(o, &r, true, RECORD_STATUS);
	assert_keys(o, record_key_list, ELEMENTSOF(record_key_list));
	assert_member(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "hooks"), 0), "name", "\"00-\xef\xbf\xbd\"");
	cJSON_Delete(o);
	o = record_to_json(&r, true);
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "hooks"), 0)->child->valuestring, "00-\xff");
	cJSON_Delete(o);

	assert_null(record_hook_error(&r.hooks[0]));
	assert_string_equal(record_hook_error(&r.hooks[8]), r.hooks[8].error);
	eviction_done(&r);
}

/* "approval" is the first notice acknowledged or to be; null when no
 * notice waits for one. "recovery" is null until one begins. */
static void test_approval_and_recovery(void **unused)
{
	struct eviction r, got;
	cJSON *o, *ap;

	(void)unused;
	make_eviction(&r, "a", LC_RUNNING);
	add_notice(&r, "b");
	r.notices[0].ack = ACK_NONE;
	r.notices[1].ack = ACK_NONE;
	o = record_to_json(&r, true);
	assert_member(o, "approval", "null");
	assert_member(o, "recovery", "null");
	cJSON_Delete(o);

	/* Waiting on the second notice. */
	r.notices[1].ack = ACK_WAITING;
	r.notices[1].ack_attempts = 2;
	o = record_to_json(&r, true);
	ap = cJSON_GetObjectItem(o, "approval");
	assert_member(ap, "wanted", "true");
	assert_member(ap, "approved", "false");
	assert_member(ap, "approved_at", "null");
	assert_member(ap, "approved_at_usec", "null");
	assert_member(ap, "attempts", "2");
	cJSON_Delete(o);

	/* Dropped: not wanted any more. */
	r.notices[1].ack = ACK_DROPPED;
	o = record_to_json(&r, true);
	assert_member(cJSON_GetObjectItem(o, "approval"), "wanted", "false");
	assert_member(cJSON_GetObjectItem(o, "approval"), "approved", "false");
	cJSON_Delete(o);

	/* A recovery without hooks yet; a downtime of 0 is 0. */
	r.recover_reason = RECOVER_CANCELLED;
	r.recover_started_wall_usec = T0;
	o = record_to_json(&r, true);
	assert_member(o, "recovery", "{\"reason\":\"cancelled\",\"started\":\"2026-11-27T06:30:30.000000Z\","
		      "\"started_usec\":1795761030000000,\"downtime_usec\":0,\"hooks\":[]}");
	cJSON_Delete(o);
	read_back(&r, &got);
	assert_int_equal(got.recover_reason, RECOVER_CANCELLED);
	assert_int_equal(got.notices[1].ack, ACK_DROPPED);
	eviction_done(&got);

	/* Recover hooks without a reason still show. */
	r.recover_reason = RECOVER_NONE;
	r.recover_started_wall_usec = 0;
	add_hook_to(&r, CHAIN_RECOVER, "10-x", HOOK_PENDING);
	o = record_to_json(&r, true);
	assert_member(cJSON_GetObjectItem(o, "recovery"), "reason", "\"none\"");
	cJSON_Delete(o);
	eviction_done(&r);
}

/* The record's "event" is what the latest hook read on stdin; the flat
 * fields beside it are the platform's word since. */
static void test_seen_event(void **unused)
{
	struct eviction r, got;
	char *stdin_text, *text;
	cJSON *o;

	(void)unused;
	make_eviction(&r, "seen", LC_RUNNING);
	add_hook(&r, "10-a", HOOK_PENDING);
	/* Before any hook: as first seen; the engine notes it as a hook
	 * starts. */
	assert_false(r.seen.set);
	eviction_note_seen(&r);
	stdin_text = record_stdin(&r);
	assert_true(r.seen.set);
	assert_int_equal(r.seen.status, EVENT_SCHEDULED);
	/* The platform says Started and moves NotBefore after the hook read it. */
	r.notices[0].ev.status = EVENT_STARTED;
	r.notices[0].ev.not_before_usec += 5 * USEC_PER_SEC;
	r.deadline_wall_usec -= USEC_PER_SEC;
	o = record_to_json(&r, true);
	text = cJSON_PrintUnformatted(cJSON_GetObjectItem(o, "event"));
	/* "event" is byte for byte what the hook read on stdin. */
	assert_string_equal(text, stdin_text);
	cJSON_free(text);
	assert_member(cJSON_GetObjectItem(o, "event"), "status", "\"Scheduled\"");
	assert_member(o, "event_status", "\"Started\"");
	{
		char want[24];

		(void)snprintf(want, sizeof(want), "%" PRIu64, r.notices[0].ev.not_before_usec);
		assert_member(o, "not_before_usec", want);
	}
	cJSON_Delete(o);

	/* Across a restart. */
	read_back(&r, &got);
	assert_int_equal(got.notices[0].ev.status, EVENT_STARTED);
	assert_int_equal(got.seen.status, EVENT_SCHEDULED);
	o = record_to_json(&got, true);
	text = cJSON_PrintUnformatted(cJSON_GetObjectItem(o, "event"));
	assert_string_equal(text, stdin_text);
	cJSON_free(text);
	cJSON_Delete(o);

	/* The next hook reads the event as it is now. */
	free(stdin_text);
	eviction_note_seen(&got);
	stdin_text = record_stdin(&got);
	assert_non_null(strstr(stdin_text, "\"status\":\"Started\""));
	assert_non_null(strstr(stdin_text, "\"id\":\"seen\""));
	o = record_to_json(&got, true);
	assert_member(cJSON_GetObjectItem(o, "event"), "status", "\"Started\"");
	cJSON_Delete(o);

	/* A drill says so. */
	got.drill = true;
	free(stdin_text);
	stdin_text = record_stdin(&got);
	assert_non_null(strstr(stdin_text, "\"drill\":true"));
	free(stdin_text);
	eviction_done(&got);
	eviction_done(&r);
}

/* Values beyond every bound (only code can put them there: the entry
 * points refuse them) are written clamped, and read back so. */
static void test_bounds_clamped_on_write(void **unused)
{
	struct eviction r, got;
	struct hook_result *h;
	char why[160];

	(void)unused;
	make_eviction(&r, "extreme", LC_RUNNING);
	r.notices[0].ev.not_before_usec = UINT64_MAX;   /* what an unlimited logind delay was */
	r.deadline_wall_usec = UINT64_MAX - 2;
	r.detected_wall_usec = JSON_TIME_MAX_USEC + 1;
	r.notices[0].acked_wall_usec = UINT64_C(1) << 63;
	r.notices[0].ev.duration_sec = INT64_MAX;
	r.notices[0].ack_attempts = UINT32_MAX;
	r.downtime_usec = UINT64_MAX;
	r.recover_reason = RECOVER_ENDED;
	h = add_hook(&r, "10-x", HOOK_FAILED);
	h->exit_status = 300;
	h->term_signal = 200;
	h->start_wall_usec = UINT64_MAX;
	h->duration_usec = UINT64_MAX;
	h->budget_usec = (UINT64_C(1) << 53) + 1;
	h->output_bytes = UINT64_MAX;
	h->report.has_checkpoint_bytes = true;
	h->report.checkpoint_bytes = UINT64_MAX;
	read_back(&r, &got);
	if (!eviction_reads_back(&r, &got, why, sizeof(why)))
		fail_msg("%s", why);
	assert_int_equal(got.notices[0].ev.not_before_usec, JSON_TIME_MAX_USEC);
	assert_int_equal(got.deadline_wall_usec, JSON_TIME_MAX_USEC);
	assert_int_equal(got.detected_wall_usec, JSON_TIME_MAX_USEC);
	assert_int_equal(got.notices[0].acked_wall_usec, JSON_TIME_MAX_USEC);
	assert_int_equal(got.notices[0].ev.duration_sec, EVENT_DURATION_MAX_SEC);
	assert_int_equal(got.notices[0].ack_attempts, UINT32_MAX);
	assert_int_equal(got.downtime_usec, JSON_INT_MAX);
	assert_int_equal(got.hooks[0].exit_status, 255);
	assert_int_equal(got.hooks[0].term_signal, 127);
	assert_int_equal(got.hooks[0].start_wall_usec, JSON_TIME_MAX_USEC);
	assert_int_equal(got.hooks[0].duration_usec, JSON_INT_MAX);
	assert_int_equal(got.hooks[0].budget_usec, JSON_INT_MAX);
	assert_int_equal(got.hooks[0].output_bytes, JSON_INT_MAX);
	assert_int_equal(got.hooks[0].report.checkpoint_bytes, JSON_INT_MAX);
	eviction_done(&got);
	eviction_done(&r);
}

/* ---- the strict reader ---- */

/* The item at a path of keys and indexes ("notices/0/approval"), or NULL. */
static cJSON *item_at(cJSON *o, const char *path)
{
	char *copy = xstrdup(path), *save = NULL;

	for (char *part = strtok_r(copy, "/", &save); part && o; part = strtok_r(NULL, "/", &save)) {
		if (part[0] >= '0' && part[0] <= '9')
			o = cJSON_GetArrayItem(o, atoi(part));
		else
			o = cJSON_GetObjectItemCaseSensitive(o, part);
	}
	free(copy);
	return o;
}

/* record_from_json on o: 0 or the defect in *err. */
static int read_record(const cJSON *o, struct json_err *err)
{
	struct eviction rec;
	int r;

	memset(err, 0, sizeof(*err));
	r = record_from_json(o, &rec, err);
	if (r == 0)
		eviction_done(&rec);
	else
		assert_int_equal(r, -EBADMSG);
	return r;
}

/* The objects of a record, each field of which is checked. */
static const char *const object_paths[] = {
	"", "event", "approval", "notices/0", "notices/0/event", "notices/0/approval", "notices/1",
	"notices/1/event", "notices/1/approval", "hooks/0", "hooks/0/report", "recovery",
	"recovery/hooks/0", "recovery/hooks/0/report",
};

/* Every field of every object of a record, given a value of the wrong
 * type, or left out, or an unknown field added, makes the record refused,
 * the defect naming it. */
static void test_strict_fields(void **unused)
{
	struct eviction r;
	struct json_err err;
	char *pristine;
	int checked = 0;

	(void)unused;
	make_full(&r);
	pristine = record_text(&r);
	eviction_done(&r);
	{
		cJSON *doc = cJSON_Parse(pristine);

		/* The untouched record reads: the refusals below are real. */
		assert_int_equal(read_record(doc, &err), 0);
		cJSON_Delete(doc);
	}
	for (size_t level = 0; level < ELEMENTSOF(object_paths); level++) {
		cJSON *doc = cJSON_Parse(pristine), *obj = object_paths[level][0] ? item_at(doc, object_paths[level]) : doc;
		int nkeys;

		assert_non_null(obj);
		nkeys = cJSON_GetArraySize(obj);
		cJSON_Delete(doc);
		for (int k = 0; k < nkeys; k++) {
			cJSON *orig, *wrong;
			char *key;

			doc = cJSON_Parse(pristine);
			obj = object_paths[level][0] ? item_at(doc, object_paths[level]) : doc;
			orig = cJSON_GetArrayItem(obj, k);
			key = xstrdup(orig->string);
			/* No field takes an object but those that must be one. */
			wrong = cJSON_IsObject(orig) ? cJSON_CreateNumber(1) : cJSON_CreateObject();
			assert_true(cJSON_ReplaceItemInObjectCaseSensitive(obj, key, wrong));
			if (read_record(doc, &err) == 0)
				fail_msg("a wrong type for '%s' (in '%s') was accepted", key, object_paths[level]);
			if (!strstr(err.why, key) && !strstr(err.why, "follow"))
				fail_msg("a wrong type for '%s' (in '%s'): '%s' does not name it", key,
					 object_paths[level], err.why);

			cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
			if (read_record(doc, &err) == 0)
				fail_msg("a missing '%s' (in '%s') was accepted", key, object_paths[level]);
			if (!strstr(err.why, key))
				fail_msg("a missing '%s' (in '%s'): '%s' does not name it", key, object_paths[level],
					 err.why);
			cJSON_Delete(doc);
			free(key);
			checked++;
		}
		/* Nothing but the known fields. */
		doc = cJSON_Parse(pristine);
		obj = object_paths[level][0] ? item_at(doc, object_paths[level]) : doc;
		cJSON_AddNullToObject(obj, "unknown_field");
		if (read_record(doc, &err) == 0)
			fail_msg("an unknown field (in '%s') was accepted", object_paths[level]);
		assert_non_null(strstr(err.why, "unknown field 'unknown_field'"));
		cJSON_Delete(doc);
	}
	print_message("fields checked for type and presence: %d\n", checked);
	assert_int_equal(checked, 30 + 13 + 5 + 2 * (13 + 13 + 5) + 15 + 4 + 5 + 15 + 4);
	cJSON_free(pristine);
}

/* One change to a good record, and the words the reader refuses it with. */
struct defect {
	const char *path;     /* the item replaced ("" the record) */
	const char *value;    /* its new value as JSON text; NULL removes it */
	const char *why;      /* a part of the defect's words */
};

/* Values of the right type that the writer would never write. */
static const struct defect value_defects[] = {
	{ "id", "\"\"", "'id' is empty" },
	{ "id", "\"a\\u0001b\"", "'id' has control characters" },
	{ "lifecycle", "\"evicting\"", "'lifecycle' is 'evicting'" },
	{ "lifecycle", "\"Running\"", "'lifecycle' is 'Running'" },
	{ "lifecycle_since_usec", "-1", "'lifecycle_since_usec' is -1" },
	{ "deadline_usec", "7258118400000000", "'deadline_usec' is 7258118400000000" },
	{ "deadline_usec", "18446744073709551615", "beyond +-(2^53 - 1)" },
	{ "deadline", "\"2026-11-27T06:30:58Z\"", "'deadline' is not 'deadline_usec'" },
	{ "detected_usec", "1.5", "'detected_usec' is not an integer" },
	{ "boot", "\"0123456789abcdef0123456789abcdef0\"", "'boot' is longer than 32 bytes" },
	{ "boot", "\"\"", "'boot' is empty" },
	{ "notices", "[]", "'notices' is not an array of 1 to 8 notices" },
	{ "hooks", "{}", "'hooks' is not an array" },
	/* A notice. */
	{ "notices/0/feed", "\"azure\"", "'feed' is 'azure'" },
	{ "notices/0/end", "\"done\"", "'end' is not null, 'completed' or 'canceled'" },
	{ "notices/0/end", "\"Completed\"", "'end' is not null" },
	{ "notices/0/key", "\"k\\u001b\"", "'key' has control characters" },
	{ "notices/0/approval/policy", "\"later\"", "'policy' is 'later'" },
	{ "notices/0/approval/state", "\"acked\"", "'state' is 'acked'" },
	{ "notices/0/approval/attempts", "-1", "'attempts' is -1" },
	{ "notices/0/approval/attempts", "4294967296", "'attempts' is 4294967296" },
	{ "notices/0/event/type", "\"Evict\"", "unknown type, status or provider" },
	{ "notices/0/event/provider", "\"auto\"", "unknown type, status or provider" },
	{ "notices/0/event/description", "\"\"", "'description' is empty" },
	{ "notices/0/event/resources", "[1]", "'resources' holds something other than a name" },
	{ "notices/0/event/duration_s", "-2", "'duration_s' is -2" },
	{ "notices/0/first_seen_usec", "0", "'first_seen_usec' is 0" },
	/* A hook. */
	{ "hooks/1/name", "\"\"", "'name' is empty" },
	{ "hooks/1/result", "\"done\"", "'result' is 'done'" },
	{ "hooks/1/exit_status", "256", "'exit_status' is 256" },
	{ "hooks/1/exit_status", "-1", "'exit_status' is -1" },
	{ "hooks/1/signal", "0", "'signal' is 0" },
	{ "hooks/1/signal", "128", "'signal' is 128" },
	{ "hooks/1/started_usec", "-5", "'started_usec' is -5" },
	{ "hooks/1/duration_usec", "0", "'duration_usec' is 0" },
	{ "hooks/1/skip_reason", "\"\"", "'skip_reason' is empty" },
	{ "hooks/1/error", "\"\\u00ff\"", NULL },   /* valid: U+00FF is text */
	{ "hooks/1/output", "[1]", "'output' holds something other than a line" },
	{ "hooks/1/output", "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\"]",
	  "'output' is not an array of at most 10 lines" },
	{ "hooks/1/output_bytes", "-1", "'output_bytes' is -1" },
	{ "hooks/1/report/jobs_requeued", "-1", "'jobs_requeued' is -1" },
	{ "hooks/1/report/abandon", "1", "'abandon' is not true or false" },
	/* The recovery. */
	{ "recovery/reason", "\"reboot\"", "'reason' is 'reboot'" },
	{ "recovery/downtime_usec", "-1", "'downtime_usec' is -1" },
	{ "recovery/hooks", "{}", "'hooks' is not an array" },
	{ "recovery", "[]", "not an object" },
	/* Fields that do not follow from the rest of the record. */
	{ "event_status", "\"Started\"", "'event_status' does not follow" },
	{ "event_status", "\"Bogus\"", "'event_status' does not follow" },
	{ "not_before", "null", "'not_before' is not 'not_before_usec'" },
	{ "key", "\"made-up\"", "'key' does not follow" },
	{ "gone", "true", "'gone' does not follow" },
	{ "chain_done", "false", "'chain_done' does not follow" },
	{ "approval", "null", "'approval' does not follow" },
	{ "approval/attempts", "4", "'approval' does not follow" },
	{ "approval/wanted", "\"yes\"", "'approval' does not follow" },
	{ "event/type", "\"Reboot\"", "'event' does not follow" },
	{ "event/id", "\"other\"", "'event' does not follow" },
	{ "event/description", "\"changed\"", "'event' does not follow" },
	{ "notices/1/event/drill", "true", "'notices' does not follow" },
	{ "recovery/downtime_usec", "null", "'recovery' does not follow" },
	{ "recovery/reason", "\"ended\"", NULL },   /* another reason is as good */
};

/* The record's text with the item at path replaced by value (removed for
 * NULL). Caller deletes. */
static cJSON *apply_defect(const char *pristine, const struct defect *d)
{
	cJSON *doc = cJSON_Parse(pristine), *parent = doc;
	const char *slash = strrchr(d->path, '/');
	char *parent_path = slash ? xstrndup(d->path, (size_t)(slash - d->path)) : xstrdup("");
	const char *last = slash ? slash + 1 : d->path;
	cJSON *value = d->value ? cJSON_Parse(d->value) : NULL;

	if (d->value && !value)
		fail_msg("'%s' is not JSON", d->value);
	if (parent_path[0])
		parent = item_at(doc, parent_path);
	if (!parent)
		fail_msg("no '%s' in the record", parent_path);
	if (last[0] >= '0' && last[0] <= '9') {
		if (value)
			assert_true(cJSON_ReplaceItemInArray(parent, atoi(last), value));
		else
			cJSON_DeleteItemFromArray(parent, atoi(last));
	} else if (value) {
		if (!cJSON_ReplaceItemInObjectCaseSensitive(parent, last, value))
			fail_msg("no '%s' in the record", d->path);
	} else {
		cJSON_DeleteItemFromObjectCaseSensitive(parent, last);
	}
	free(parent_path);
	return doc;
}

static void test_strict_values(void **unused)
{
	struct eviction r;
	struct json_err err;
	char *pristine;

	(void)unused;
	make_full(&r);
	pristine = record_text(&r);
	eviction_done(&r);
	for (size_t i = 0; i < ELEMENTSOF(value_defects); i++) {
		const struct defect *d = &value_defects[i];
		cJSON *doc = apply_defect(pristine, d);
		int k = read_record(doc, &err);

		if (!d->why) {
			if (k < 0)
				fail_msg("'%s' = %s was refused: %s", d->path, d->value, err.why);
		} else if (k == 0) {
			fail_msg("'%s' = %s was accepted", d->path, d->value ? d->value : "(removed)");
		} else if (!strstr(err.why, d->why)) {
			fail_msg("'%s' = %s: '%s', want '%s'", d->path, d->value, err.why, d->why);
		}
		cJSON_Delete(doc);
	}

	/* Nine notices are one too many. */
	{
		cJSON *doc = cJSON_Parse(pristine), *notices = cJSON_GetObjectItem(doc, "notices");

		while (cJSON_GetArraySize(notices) < RECORD_NOTICES_MAX)
			cJSON_AddItemToArray(notices, cJSON_Duplicate(cJSON_GetArrayItem(notices, 1), true));
		assert_int_equal(read_record(doc, &err), 0);
		cJSON_AddItemToArray(notices, cJSON_Duplicate(cJSON_GetArrayItem(notices, 1), true));
		assert_int_equal(read_record(doc, &err), -EBADMSG);
		assert_non_null(strstr(err.why, "'notices' is not an array of 1 to 8 notices"));
		cJSON_Delete(doc);
	}
	/* A defect deep down says where it is. */
	{
		static const struct defect d = { "notices/2/approval/state", "\"x\"", NULL };
		cJSON *doc = apply_defect(pristine, &d);

		assert_int_equal(read_record(doc, &err), -EBADMSG);
		assert_string_equal(err.why, "notices[2]: approval: 'state' is 'x'");
		cJSON_Delete(doc);
	}
	{
		static const struct defect d = { "recovery/hooks/0/report/lost_work_seconds", "\"1\"", NULL };
		cJSON *doc = apply_defect(pristine, &d);

		assert_int_equal(read_record(doc, &err), -EBADMSG);
		assert_string_equal(err.why, "recovery: hooks[0]: report: 'lost_work_seconds' is not an integer or null");
		cJSON_Delete(doc);
	}
	/* A record that is not an object at all. */
	{
		cJSON *a = cJSON_CreateArray();

		assert_int_equal(read_record(a, &err), -EBADMSG);
		assert_int_equal(read_record(NULL, &err), -EBADMSG);
		cJSON_Delete(a);
	}
	print_message("values checked: %zu\n", ELEMENTSOF(value_defects));
	cJSON_free(pristine);
}

/* ---- property: whatever the agent holds reads back as written ---- */

#define PROP_ITERATIONS 2000
#define PROP_SEED       UINT64_C(0x5107a6e2024)

/* Renders, parses and compares one eviction; what was read renders to
 * itself again (a fixed point after one round). */
static bool record_round_trip(const struct eviction *rec, char *why, size_t n)
{
	struct eviction back, again;
	struct json_err err = { "" };
	char *text = record_text(rec), *text2, *text3;
	cJSON *parsed = cJSON_Parse(text);
	bool ok;

	if (!parsed || record_from_json(parsed, &back, &err) < 0) {
		(void)snprintf(why, n, "did not read back: %s", parsed ? err.why : "not JSON");
		cJSON_Delete(parsed);
		cJSON_free(text);
		return false;
	}
	cJSON_Delete(parsed);
	ok = eviction_reads_back(rec, &back, why, n);
	text2 = record_text(&back);
	parsed = cJSON_Parse(text2);
	assert_int_equal(record_from_json(parsed, &again, NULL), 0);
	text3 = record_text(&again);
	if (ok && strcmp(text2, text3) != 0) {
		(void)snprintf(why, n, "what was read back renders differently the second time");
		ok = false;
	}
	cJSON_Delete(parsed);
	eviction_done(&again);
	eviction_done(&back);
	cJSON_free(text3);
	cJSON_free(text2);
	cJSON_free(text);
	return ok;
}

/* Random evictions (ids, every lifecycle, notices of every feed, times
 * with 0 and the extremes, hooks with random outcomes and reports, output
 * lines of arbitrary bytes, recover chains, counts up to the maxima),
 * rendered and parsed: the persisted fields come back. Deterministic;
 * SPOT_STATE_SEED and SPOT_STATE_ITERATIONS pick others, and a failure
 * prints the seed that repeats it alone. */
static void test_property_round_trip(void **unused)
{
	uint64_t base = env_u64("SPOT_STATE_SEED", PROP_SEED);
	uint64_t iterations = env_u64("SPOT_STATE_ITERATIONS", PROP_ITERATIONS);
	char why[160];

	(void)unused;
	for (uint64_t i = 0; i < iterations; i++) {
		/* Each iteration is its own seed: the first of a run started there. */
		uint64_t seed = base + i * UINT64_C(0x9e3779b97f4a7c15);
		struct rng r = { seed };
		struct eviction rec;
		bool ok;

		rng_eviction(&r, &rec, (int)i, RECORD_HOOKS_MAX);
		ok = record_round_trip(&rec, why, sizeof(why));
		eviction_done(&rec);
		if (!ok)
			fail_msg("iteration %" PRIu64 " of seed %#" PRIx64 ": %s (alone: SPOT_STATE_SEED=%#" PRIx64
				 " SPOT_STATE_ITERATIONS=1)", i, base, why, seed);
	}
	print_message("property: %" PRIu64 " random evictions read back (seed %#" PRIx64 ")\n", iterations, base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_eviction_parts),
		cmocka_unit_test(test_result_ring),
		cmocka_unit_test(test_records_list),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_approval_and_recovery),
		cmocka_unit_test(test_seen_event),
		cmocka_unit_test(test_bounds_clamped_on_write),
		cmocka_unit_test(test_strict_fields),
		cmocka_unit_test(test_strict_values),
		cmocka_unit_test(test_property_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
