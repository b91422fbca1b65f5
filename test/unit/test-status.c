/* test-status.c - what the agent shows of itself (http/status.c): the
 * /v1/status document (every key, in order, null for what is absent, the
 * current eviction flat at the top, the history as summaries), and
 * readiness and the "state" summary through a real engine on evictions in
 * each lifecycle state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http/status.h"
#include "record-util.h"

static const char *const top_keys[] = {
	"version", "provider", "vm_name", "uptime_s", "state", "ready", "rebalance_recommended", "poll",
	/* the record's fields */
	"id", "lifecycle", "lifecycle_since", "lifecycle_since_usec", "event", "event_status",
	"not_before", "not_before_usec", "key", "gone", "gone_at", "gone_at_usec", "deadline",
	"deadline_usec", "emergency", "detected", "detected_usec", "boot", "chain_done", "chain_ended",
	"chain_ended_usec", "empty_plan", "drain_until", "drain_until_usec", "last_alive",
	"last_alive_usec", "hooks", "approval", "notices", "recovery",
	"history", "config", "ignored_events",
};
#define RECORD_FIRST 8
/* The keys after the record's fields. */
#define AFTER_RECORD 3
static const char *const poll_keys[] = {
	"ok", "failed", "consecutive_failures", "last_success", "last_success_usec",
	"last_latency_usec", "incarnation", "last_error", "optional_error", "imds_v1",
};
static const char *const event_keys[] = {
	"id", "type", "status", "source", "not_before", "not_before_usec", "resources",
	"description", "duration_s", "provider", "deadline", "deadline_usec", "drill",
};
static const char *const status_hook_keys[] = {
	"name", "path", "result", "exit_status", "signal", "timed_out", "started", "started_usec",
	"duration_usec", "budget_usec", "skip_reason", "error", "report", "output", "output_bytes",
};
static const char *const summary_keys[] = {
	"id", "type", "event_status", "lifecycle", "detected", "detected_usec", "deadline",
	"deadline_usec", "chain_done", "approved", "notices", "hooks_ok", "hooks_failed",
	"hooks_timeout", "hooks_skipped", "recover_reason",
};

static void test_empty(void **unused)
{
	struct agent_state s;
	struct records recs;
	const cJSON *poll;
	cJSON *o;

	(void)unused;
	agent_state_init(&s);
	assert_int_equal(s.poll.incarnation, -1);
	assert_true(s.started_mono_usec > 0);
	/* No records at all, then an empty list: the same document. */
	for (int k = 0; k < 2; k++) {
		o = status_to_json(&s, "0.1.0");
		assert_keys(o, top_keys, ELEMENTSOF(top_keys));
		assert_member(o, "version", "\"0.1.0\"");
		assert_member(o, "provider", "null");
		assert_member(o, "vm_name", "null");
		assert_member(o, "uptime_s", "0");
		assert_member(o, "state", "\"idle\"");
		assert_member(o, "ready", "true");
		assert_member(o, "rebalance_recommended", "false");
		assert_member(o, "history", "[]");
		/* No eviction: every field of one is null, none is left out. */
		for (size_t i = RECORD_FIRST; i < ELEMENTSOF(top_keys) - AFTER_RECORD; i++)
			assert_member(o, top_keys[i], "null");
		poll = cJSON_GetObjectItem(o, "poll");
		assert_keys(poll, poll_keys, ELEMENTSOF(poll_keys));
		assert_member(poll, "ok", "0");
		assert_member(poll, "last_success", "null");
		assert_member(poll, "last_success_usec", "null");
		assert_member(poll, "last_latency_usec", "null");
		assert_member(poll, "incarnation", "null");
		assert_member(poll, "last_error", "null");
		assert_member(poll, "optional_error", "null");
		assert_member(poll, "imds_v1", "false");
		cJSON_Delete(o);
		records_init(&recs);
		s.records = &recs;
	}
	assert_null(status_current(&s));
	assert_true(status_ready(&s, now_usec(CLOCK_REALTIME), NULL));
	assert_int_equal(status_phase(&s, now_usec(CLOCK_REALTIME)), PHASE_IDLE);
	records_done(&recs);
	agent_state_done(&s);
	agent_state_done(NULL);
}

static void test_full(void **unused)
{
	struct agent_state s;
	struct records recs;
	struct eviction *r;
	struct hook_result *h;
	const cJSON *poll, *hk, *hist;
	cJSON *o;
	char id[32], *text;

	(void)unused;
	agent_state_init(&s);
	records_init(&recs);
	s.records = &recs;
	s.provider = xstrdup("azure");
	s.vm_name = xstrdup("vm-spot-1");
	s.rebalance_recommended = true;
	s.started_mono_usec = now_usec(CLOCK_MONOTONIC) - 90 * USEC_PER_SEC;
	s.poll.ok = UINT64_C(5000000000);           /* above 2^32 */
	s.poll.failed = 2;
	s.poll.consecutive_failures = 1;
	s.poll.last_ok_wall_usec = T0;
	s.poll.last_latency_usec = 1500;
	s.poll.incarnation = 3;
	s.poll.imds_v1 = true;
	strscpy(s.poll.last_error, sizeof(s.poll.last_error), "HTTP 500");
	strscpy(s.poll.optional_error, sizeof(s.poll.optional_error),
		"events/recommendations/rebalance: HTTP 500");
	for (int i = 0; i < 12; i++) {
		snprintf(id, sizeof(id), "old%d", i);
		add_eviction(&recs, id, LC_CLOSED);
	}
	add_eviction(&recs, "a-drill", LC_CLOSED)->drill = true;
	r = add_eviction(&recs, "now", LC_RUNNING);
	r->notices[0].ev.description[0] = '\0';
	r->notices[0].ev.duration_sec = 30;
	r->deadline_wall_usec = JSON_TIME_MAX_USEC;   /* the last instant kept */
	h = add_hook(r, "10-a", HOOK_OK);
	h->start_wall_usec = T0 + 1;
	h->output_bytes = (uint64_t)JSON_INT_MAX;
	hook_result_add_line(h, "hello");
	h = add_hook(r, "20-b", HOOK_FAILED);
	h->exit_status = 127;
	(void)strscpy(h->error, sizeof(h->error), "cannot execute: No such file or directory");
	h->output_bytes = UINT64_MAX;                  /* clamped on the way out */
	add_hook(r, "30-c", HOOK_PENDING);
	h = add_hook(r, "40-\xff", HOOK_PENDING);      /* a name that is not UTF-8 */

	o = status_to_json(&s, "0.1.0");
	assert_keys(o, top_keys, ELEMENTSOF(top_keys));
	assert_member(o, "provider", "\"azure\"");
	assert_member(o, "vm_name", "\"vm-spot-1\"");
	assert_member(o, "uptime_s", "90");
	assert_member(o, "rebalance_recommended", "true");
	/* No engine (as in tests): idle and ready whatever the records say. */
	assert_member(o, "state", "\"idle\"");
	assert_member(o, "ready", "true");
	poll = cJSON_GetObjectItem(o, "poll");
	assert_keys(poll, poll_keys, ELEMENTSOF(poll_keys));
	assert_member(poll, "ok", "5000000000");
	assert_member(poll, "failed", "2");
	assert_member(poll, "consecutive_failures", "1");
	assert_member(poll, "last_success", "\"2026-11-27T06:30:30.000000Z\"");
	assert_member(poll, "last_success_usec", "1795761030000000");
	assert_member(poll, "last_latency_usec", "1500");
	assert_member(poll, "incarnation", "3");
	assert_member(poll, "last_error", "\"HTTP 500\"");
	assert_member(poll, "optional_error", "\"events/recommendations/rebalance: HTTP 500\"");
	assert_member(poll, "imds_v1", "true");

	/* Flat: the event as hooks read it, then the record's own fields. */
	assert_member(o, "id", "\"now\"");
	assert_member(o, "lifecycle", "\"running\"");
	assert_keys(cJSON_GetObjectItem(o, "event"), event_keys, ELEMENTSOF(event_keys));
	assert_member(cJSON_GetObjectItem(o, "event"), "id", "\"now\"");
	assert_member(cJSON_GetObjectItem(o, "event"), "source", "\"Platform\"");
	assert_member(cJSON_GetObjectItem(o, "event"), "description", "null");
	assert_member(cJSON_GetObjectItem(o, "event"), "duration_s", "30");
	assert_member(cJSON_GetObjectItem(o, "event"), "deadline_usec", "7258118399999999");
	assert_member(o, "event_status", "\"Scheduled\"");
	assert_member(o, "detected", "\"2026-11-27T06:30:30.000000Z\"");
	assert_member(o, "detected_usec", "1795761030000000");   /* above 2^31, exact */
	assert_member(o, "deadline", "\"2199-12-31T23:59:59.999999Z\"");
	assert_member(o, "deadline_usec", "7258118399999999");    /* near 2^53, exact */
	assert_member(o, "key", "null");
	assert_member(o, "gone", "false");
	assert_member(o, "gone_at", "null");
	assert_member(o, "gone_at_usec", "null");
	assert_member(o, "chain_done", "false");
	assert_member(o, "recovery", "null");
	assert_member(cJSON_GetObjectItem(o, "approval"), "wanted", "true");
	assert_member(cJSON_GetObjectItem(o, "approval"), "approved", "false");
	assert_member(cJSON_GetObjectItem(o, "approval"), "approved_at", "null");
	assert_member(cJSON_GetObjectItem(o, "approval"), "attempts", "0");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "notices")), 1);

	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "hooks")), 4);
	hk = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "hooks"), 0);
	assert_keys(hk, status_hook_keys, ELEMENTSOF(status_hook_keys));
	assert_member(hk, "result", "\"ok\"");
	assert_member(hk, "exit_status", "0");
	assert_member(hk, "signal", "null");
	assert_member(hk, "started", "\"2026-11-27T06:30:30.000001Z\"");
	assert_member(hk, "started_usec", "1795761030000001");
	assert_member(hk, "duration_usec", "1234567");
	assert_member(hk, "budget_usec", "27000000");
	assert_member(hk, "skip_reason", "null");
	assert_member(hk, "output", "[\"hello\"]");
	assert_member(hk, "output_bytes", "9007199254740991");
	assert_member(hk, "error", "null");
	hk = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "hooks"), 1);
	assert_member(hk, "exit_status", "127");
	assert_member(hk, "output_bytes", "9007199254740991");
	assert_member(hk, "error", "\"cannot execute: No such file or directory\"");
	/* Not started: absent is null, never "" or 0. */
	hk = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "hooks"), 2);
	assert_member(hk, "result", "\"pending\"");
	assert_member(hk, "exit_status", "null");
	assert_member(hk, "started", "null");
	assert_member(hk, "started_usec", "null");
	assert_member(hk, "duration_usec", "null");
	assert_member(hk, "output", "[]");
	/* Names are text in the document, whatever bytes the file has. */
	hk = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "hooks"), 3);
	assert_member(hk, "name", "\"40-\xef\xbf\xbd\"");

	/* The ten newest others, newest first; a drill is never among them. */
	hist = cJSON_GetObjectItem(o, "history");
	assert_int_equal(cJSON_GetArraySize(hist), STATUS_HISTORY_MAX);
	assert_keys(cJSON_GetArrayItem(hist, 0), summary_keys, ELEMENTSOF(summary_keys));
	assert_member(cJSON_GetArrayItem(hist, 0), "id", "\"old11\"");
	assert_member(cJSON_GetArrayItem(hist, 9), "id", "\"old2\"");
	assert_member(cJSON_GetArrayItem(hist, 0), "type", "\"Preempt\"");
	assert_member(cJSON_GetArrayItem(hist, 0), "lifecycle", "\"closed\"");
	assert_member(cJSON_GetArrayItem(hist, 0), "deadline", "\"2026-11-27T06:30:58.000000Z\"");
	assert_member(cJSON_GetArrayItem(hist, 0), "deadline_usec", "1795761058000000");
	assert_member(cJSON_GetArrayItem(hist, 0), "chain_done", "true");
	assert_member(cJSON_GetArrayItem(hist, 0), "recover_reason", "null");

	/* Whole document: integers as digits (no exponent, no fraction), and
	 * no "" standing for absent; the same in the pretty form http.c sends. */
	text = cJSON_PrintUnformatted(o);
	assert_null(strstr(text, "e+"));
	assert_null(strstr(text, "E+"));
	assert_null(strstr(text, "\"\""));
	assert_null(strstr(text, "a-drill"));
	assert_non_null(strstr(text, "\"detected_usec\":1795761030000000,"));
	cJSON_free(text);
	text = cJSON_Print(o);
	assert_non_null(strstr(text, "\"detected_usec\":\t1795761030000000,"));
	cJSON_free(text);
	cJSON_Delete(o);

	/* History counts the outcomes, the notices, whether one was
	 * acknowledged and why it recovered. */
	r = records_find(&recs, "now");
	r->state = LC_RECOVERING;
	r->chain_ended_wall_usec = T0 + 5 * USEC_PER_SEC;
	r->hooks[2].outcome = HOOK_TIMEOUT;
	r->hooks[3].outcome = HOOK_SKIPPED;
	r->notices[0].ack = ACK_SENT;
	r->recover_reason = RECOVER_ENDED;
	add_notice(r, "now-2");
	add_eviction(&recs, "newest", LC_RUNNING);
	o = status_to_json(&s, "0.1.0");
	assert_member(o, "id", "\"newest\"");
	hist = cJSON_GetObjectItem(o, "history");
	hk = cJSON_GetArrayItem(hist, 0);
	assert_member(hk, "id", "\"now\"");
	assert_member(hk, "lifecycle", "\"recovering\"");
	assert_member(hk, "chain_done", "true");
	assert_member(hk, "approved", "true");
	assert_member(hk, "notices", "2");
	assert_member(hk, "hooks_ok", "1");
	assert_member(hk, "hooks_failed", "1");
	assert_member(hk, "hooks_timeout", "1");
	assert_member(hk, "hooks_skipped", "1");
	assert_member(hk, "recover_reason", "\"ended\"");
	cJSON_Delete(o);

	for (int p = 0; p < _PHASE_MAX; p++)
		assert_non_null(agent_phase_to_string((enum agent_phase)p));
	assert_string_equal(agent_phase_to_string(PHASE_IDLE), "idle");
	assert_string_equal(agent_phase_to_string(PHASE_PENDING), "pending");
	assert_string_equal(agent_phase_to_string(PHASE_RUNNING), "running");
	assert_string_equal(agent_phase_to_string(PHASE_DONE), "done");
	assert_null(agent_phase_to_string(_PHASE_MAX));
	records_done(&recs);
	agent_state_done(&s);
}

/* Readiness and the state summary through the engine: down from detection
 * until the eviction is over; the cause is the eviction that holds it. */
static void test_ready_by_lifecycle(void **unused)
{
	static const struct {
		enum lifecycle state;
		bool future;            /* its NotBefore is still ahead */
		bool ready;
		const char *phase;
	} cases[] = {
		{ LC_DETECTED, true, false, "pending" },
		{ LC_RUNNING, true, false, "running" },
		{ LC_PAUSED, true, false, "running" },
		{ LC_DRAINING, true, false, "done" },
		{ LC_ACKING, true, false, "done" },
		{ LC_DONE, true, false, "done" },
		{ LC_DONE, false, true, "idle" },
		{ LC_CANCELLED, true, true, "idle" },
		{ LC_RECOVERING, false, true, "idle" },
		{ LC_CLOSED, true, true, "idle" },
		{ LC_CLOSED, false, true, "idle" },
	};
	uint64_t now = now_usec(CLOCK_REALTIME);

	(void)unused;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct agent_state s;
		struct records recs;
		struct engine e;
		struct eviction *r;
		const struct eviction *cause = (const struct eviction *)&cause;
		cJSON *o;

		agent_state_init(&s);
		records_init(&recs);
		r = add_eviction(&recs, "ev-1", cases[i].state);
		(void)strscpy(r->boot, sizeof(r->boot), "boot-1");
		add_hook(r, "10-a", cases[i].state == LC_DETECTED ? HOOK_PENDING : HOOK_OK);
		/* A chain under way has a hook left to run. */
		if (cases[i].state == LC_RUNNING || cases[i].state == LC_PAUSED)
			add_hook(r, "20-b", HOOK_PENDING);
		r->detected_wall_usec = now - 5 * USEC_PER_SEC;
		r->notices[0].first_seen_wall_usec = r->detected_wall_usec;
		if (cases[i].future) {
			r->notices[0].ev.not_before_usec = now + 3600 * USEC_PER_SEC;
			r->deadline_wall_usec = now + 3598 * USEC_PER_SEC;
		} else {
			r->notices[0].ev.not_before_usec = now - 2 * USEC_PER_SEC;
			r->deadline_wall_usec = now - 4 * USEC_PER_SEC;
		}
		r->notices[0].deadline_wall_usec = r->deadline_wall_usec;
		r->drain_until_wall_usec = now + 3000 * USEC_PER_SEC;
		if (cases[i].state == LC_RECOVERING) {
			r->recover_reason = RECOVER_ENDED;
			r->recover_started_wall_usec = now - USEC_PER_SEC;
			add_hook_to(r, CHAIN_RECOVER, "10-back", HOOK_PENDING);
		}
		/* Paused: its notice left the listing a moment ago; cancelled:
		 * long enough ago to be withdrawn. */
		if (cases[i].state == LC_PAUSED || cases[i].state == LC_CANCELLED) {
			r->notices[0].gone = true;
			r->notices[0].gone_wall_usec = now - (cases[i].state == LC_PAUSED ? 1 : 60) * USEC_PER_SEC;
		}
		s.records = &recs;
		start_engine(&e, &recs);
		s.engine = &e;
		r = &recs.items[0];
		if (r->state != cases[i].state)
			fail_msg("case %zu: the engine moved %s to %s at its start", i,
				 lifecycle_to_string(cases[i].state), lifecycle_to_string(r->state));

		if (status_ready(&s, now_usec(CLOCK_REALTIME), &cause) != cases[i].ready)
			fail_msg("case %zu (%s): ready is not %d", i, lifecycle_to_string(cases[i].state),
				 cases[i].ready);
		assert_ptr_equal(cause, cases[i].ready ? NULL : r);
		assert_string_equal(agent_phase_to_string(status_phase(&s, now_usec(CLOCK_REALTIME))),
				    cases[i].phase);
		o = status_to_json(&s, "0.1.0");
		assert_member(o, "ready", cases[i].ready ? "true" : "false");
		{
			char *want = xasprintf("\"%s\"", lifecycle_to_string(cases[i].state));

			assert_member(o, "lifecycle", want);
			free(want);
			want = xasprintf("\"%s\"", cases[i].phase);
			assert_member(o, "state", want);
			free(want);
		}
		cJSON_Delete(o);
		engine_done(&e);
		records_done(&recs);
		agent_state_done(&s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_ready_by_lifecycle),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
