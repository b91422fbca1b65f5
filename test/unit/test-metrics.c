/* test-metrics.c - the Prometheus exposition: exact lines after known
 * updates, escaping, the hook-name cap, and promtool's verdict. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/metrics.h"
#include "http/status.h"
#include "record-util.h"
#include "util.h"

#define PROMTOOL "/usr/bin/promtool"

/* Fails unless text holds line as a whole line. */
static void assert_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line))) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
		p++;
	}
	print_error("missing line: %s\n", line);
	fail();
}

static size_t count_prefix(const char *text, const char *prefix)
{
	size_t n = 0, k = strlen(prefix);

	for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
		if (strncmp(p, prefix, k) == 0)
			n++;
		if (!strchr(p, '\n'))
			break;
	}
	return n;
}

static const struct {
	const char *name;
	const char *type;
} families[] = {
	{ "spot_agent_build_info", "gauge" },
	{ "spot_agent_start_time_seconds", "gauge" },
	{ "spot_agent_imds_requests_total", "counter" },
	{ "spot_agent_imds_request_duration_seconds", "histogram" },
	{ "spot_agent_imds_up", "gauge" },
	{ "spot_agent_imds_consecutive_failures", "gauge" },
	{ "spot_agent_imds_last_success_timestamp_seconds", "gauge" },
	{ "spot_agent_events_total", "counter" },
	{ "spot_agent_events_ignored_total", "counter" },
	{ "spot_agent_eviction_pending", "gauge" },
	{ "spot_agent_eviction_deadline_timestamp_seconds", "gauge" },
	{ "spot_agent_notice_seconds", "histogram" },
	{ "spot_agent_detection_to_first_hook_seconds", "histogram" },
	{ "spot_agent_hook_runs_total", "counter" },
	{ "spot_agent_hook_duration_seconds", "histogram" },
	{ "spot_agent_chain_overruns_total", "counter" },
	{ "spot_agent_approvals_total", "counter" },
	{ "spot_agent_rebalance_recommended", "gauge" },
	{ "spot_agent_config_reload_failed", "gauge" },
};

static void assert_families(const char *text)
{
	const char *last = text;

	for (size_t i = 0; i < ELEMENTSOF(families); i++) {
		char help[128], type[128];
		const char *p;

		(void)snprintf(help, sizeof(help), "# HELP %s ", families[i].name);
		(void)snprintf(type, sizeof(type), "# TYPE %s %s\n", families[i].name, families[i].type);
		p = strstr(text, help);
		assert_non_null(p);
		/* The families come in the documented order. */
		assert_true(p >= last);
		last = p;
		assert_non_null(strstr(text, type));
	}
	assert_int_equal(count_prefix(text, "# HELP "), ELEMENTSOF(families));
	assert_int_equal(count_prefix(text, "# TYPE "), ELEMENTSOF(families));
}

/* What the endpoint reads: the agent's state with its records, and an
 * engine on them once feed() put an eviction there. */
struct fixture {
	struct agent_state s;
	struct records recs;
	struct engine e;
	bool has_engine;
};

static void state_setup(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	agent_state_init(&f->s);
	f->s.provider = xstrdup("azure");
	records_init(&f->recs);
	f->s.records = &f->recs;
}

static void state_teardown(struct fixture *f)
{
	if (f->has_engine)
		engine_done(&f->e);
	records_done(&f->recs);
	agent_state_done(&f->s);
}

/* An engine on the records as they are, as after a restart. */
static void engine_on(struct fixture *f)
{
	if (f->has_engine)
		engine_done(&f->e);
	start_engine(&f->e, &f->recs);
	f->has_engine = true;
	f->s.engine = &f->e;
}

#define DEADLINE_USEC UINT64_C(4102444800500000)   /* 2100-01-01T00:00:00.5Z */

static void test_result_names(_unused_ void **unused)
{
	assert_string_equal(imds_result_to_string(IMDS_RESULT_OK), "ok");
	assert_string_equal(imds_result_to_string(IMDS_RESULT_HTTP_ERROR), "http_error");
	assert_string_equal(imds_result_to_string(IMDS_RESULT_THROTTLED), "throttled");
	assert_string_equal(imds_result_to_string(IMDS_RESULT_TIMEOUT), "timeout");
	assert_string_equal(imds_result_to_string(IMDS_RESULT_TRANSPORT), "transport");
	assert_string_equal(imds_result_to_string(IMDS_RESULT_BAD_DOCUMENT), "bad_document");
	assert_null(imds_result_to_string(_IMDS_RESULT_MAX));
	assert_null(imds_result_to_string((enum imds_result)-1));
}

static void test_render_empty(_unused_ void **unused)
{
	struct fixture f;
	struct metrics *m = metrics_new();
	uint64_t before = now_usec(CLOCK_REALTIME) / USEC_PER_SEC;
	char *text, *p;
	size_t len;
	unsigned long long start;

	state_setup(&f);
	text = metrics_render(m, &f.s, "1.2.3", &len);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	assert_true(len > 0 && text[len - 1] == '\n');
	assert_families(text);

	assert_line(text, "spot_agent_build_info{version=\"1.2.3\",provider=\"azure\"} 1");
	p = strstr(text, "\nspot_agent_start_time_seconds ");
	assert_non_null(p);
	start = strtoull(p + strlen("\nspot_agent_start_time_seconds "), NULL, 10);
	assert_true(start + 5 >= before && start <= before + 5);

	assert_line(text, "spot_agent_imds_requests_total{result=\"ok\"} 0");
	assert_line(text, "spot_agent_imds_requests_total{result=\"http_error\"} 0");
	assert_line(text, "spot_agent_imds_requests_total{result=\"throttled\"} 0");
	assert_line(text, "spot_agent_imds_requests_total{result=\"timeout\"} 0");
	assert_line(text, "spot_agent_imds_requests_total{result=\"transport\"} 0");
	assert_line(text, "spot_agent_imds_requests_total{result=\"bad_document\"} 0");
	assert_line(text, "spot_agent_imds_request_duration_seconds_bucket{le=\"0.001\"} 0");
	assert_line(text, "spot_agent_imds_request_duration_seconds_bucket{le=\"+Inf\"} 0");
	assert_line(text, "spot_agent_imds_request_duration_seconds_sum 0");
	assert_line(text, "spot_agent_imds_request_duration_seconds_count 0");
	assert_int_equal(count_prefix(text, "spot_agent_imds_request_duration_seconds_bucket{"), 14);
	assert_int_equal(count_prefix(text, "spot_agent_notice_seconds_bucket{"), 13);
	assert_int_equal(count_prefix(text, "spot_agent_detection_to_first_hook_seconds_bucket{"), 11);

	assert_line(text, "spot_agent_imds_up 1");
	assert_line(text, "spot_agent_imds_consecutive_failures 0");
	assert_line(text, "spot_agent_imds_last_success_timestamp_seconds 0");
	assert_line(text, "spot_agent_events_total{type=\"Preempt\"} 0");
	assert_line(text, "spot_agent_events_total{type=\"Terminate\"} 0");
	assert_line(text, "spot_agent_events_total{type=\"Reboot\"} 0");
	assert_line(text, "spot_agent_events_total{type=\"Redeploy\"} 0");
	assert_line(text, "spot_agent_events_total{type=\"Freeze\"} 0");
	assert_line(text, "spot_agent_eviction_pending 0");
	assert_line(text, "spot_agent_eviction_deadline_timestamp_seconds 0");
	assert_int_equal(count_prefix(text, "spot_agent_hook_"), 0);
	assert_line(text, "spot_agent_chain_overruns_total 0");
	assert_line(text, "spot_agent_approvals_total{result=\"ok\"} 0");
	assert_line(text, "spot_agent_approvals_total{result=\"failed\"} 0");
	assert_line(text, "spot_agent_events_ignored_total{type=\"Reboot\"} 0");
	assert_line(text, "spot_agent_config_reload_failed 0");

	free(text);
	metrics_free(m);
	state_teardown(&f);
}

/* A fixed set of updates shared by the exact-line and promtool tests. */
static void feed(struct metrics *m, struct fixture *f)
{
	struct eviction *r;

	metrics_imds_request(m, IMDS_RESULT_OK, 800);
	metrics_imds_request(m, IMDS_RESULT_OK, 3000);
	metrics_imds_request(m, IMDS_RESULT_TIMEOUT, 2 * USEC_PER_SEC);
	metrics_imds_request(m, IMDS_RESULT_THROTTLED, 20 * USEC_PER_SEC);
	metrics_imds_request(m, _IMDS_RESULT_MAX, 1);      /* ignored */

	metrics_event_detected(m, EVENT_PREEMPT, 25 * USEC_PER_SEC);
	metrics_event_detected(m, EVENT_TERMINATE, 0);
	metrics_event_detected(m, EVENT_TYPE_INVALID, 0);  /* ignored */
	metrics_first_hook(m, 1500);
	metrics_event_ignored(m, EVENT_REBOOT);
	metrics_event_ignored(m, EVENT_REBOOT);
	metrics_event_ignored(m, EVENT_TYPE_INVALID);  /* ignored */
	(void)strscpy(f->s.reload_error, sizeof(f->s.reload_error), "/etc/spot-agent/spot-agent.conf:3: bad");

	metrics_hook_done(m, "50-deregister", HOOK_FAILED, 300000);
	metrics_hook_done(m, "10-checkpoint", HOOK_OK, 1200000);
	metrics_hook_done(m, "50-deregister", HOOK_TIMEOUT, 30 * USEC_PER_SEC);
	metrics_hook_done(m, "90-flush-logs", HOOK_SKIPPED, 0);
	metrics_hook_done(m, "we\"ird\\name\n", HOOK_OK, 100000);
	metrics_hook_done(m, "10-checkpoint", HOOK_RUNNING, 5);  /* not a result */

	metrics_chain_overran(m);
	metrics_approval(m, true);
	metrics_approval(m, false);
	metrics_approval(m, false);

	f->s.poll.consecutive_failures = 3;
	f->s.poll.last_ok_wall_usec = UINT64_C(1699999999250000);
	/* An eviction whose hooks run (one done, one to go). */
	r = add_eviction(&f->recs, "602d9444-d2cd-49c7-8624-8643e7171297", LC_RUNNING);
	(void)strscpy(r->boot, sizeof(r->boot), "boot-1");
	r->detected_wall_usec = now_usec(CLOCK_REALTIME);
	r->deadline_wall_usec = DEADLINE_USEC;
	r->notices[0].deadline_wall_usec = DEADLINE_USEC;
	r->notices[0].ev.not_before_usec = DEADLINE_USEC + 2 * USEC_PER_SEC - 500000;
	r->drain_until_wall_usec = r->detected_wall_usec + 10 * USEC_PER_SEC;
	add_hook(r, "10-checkpoint", HOOK_OK);
	add_hook(r, "50-deregister", HOOK_PENDING);
	engine_on(f);
	assert_int_equal(f->recs.items[0].state, LC_RUNNING);
}

static void test_render_updates(_unused_ void **unused)
{
	struct fixture f;
	struct metrics *m = metrics_new();
	const char *h;
	char *text;
	size_t len;

	state_setup(&f);
	feed(m, &f);
	text = metrics_render(m, &f.s, "0.1.0", &len);
	assert_families(text);
	assert_line(text, "spot_agent_events_ignored_total{type=\"Reboot\"} 2");
	assert_line(text, "spot_agent_events_ignored_total{type=\"Preempt\"} 0");
	assert_line(text, "spot_agent_config_reload_failed 1");

	assert_line(text, "spot_agent_imds_requests_total{result=\"ok\"} 2");
	assert_line(text, "spot_agent_imds_requests_total{result=\"http_error\"} 0");
	assert_line(text, "spot_agent_imds_requests_total{result=\"throttled\"} 1");
	assert_line(text, "spot_agent_imds_requests_total{result=\"timeout\"} 1");
	assert_line(text, "spot_agent_imds_request_duration_seconds_bucket{le=\"0.001\"} 1");
	assert_line(text, "spot_agent_imds_request_duration_seconds_bucket{le=\"0.0025\"} 1");
	assert_line(text, "spot_agent_imds_request_duration_seconds_bucket{le=\"0.005\"} 2");
	assert_line(text, "spot_agent_imds_request_duration_seconds_bucket{le=\"1\"} 2");
	assert_line(text, "spot_agent_imds_request_duration_seconds_bucket{le=\"2.5\"} 3");
	assert_line(text, "spot_agent_imds_request_duration_seconds_bucket{le=\"10\"} 3");
	assert_line(text, "spot_agent_imds_request_duration_seconds_bucket{le=\"+Inf\"} 4");
	assert_line(text, "spot_agent_imds_request_duration_seconds_sum 22.0038");
	assert_line(text, "spot_agent_imds_request_duration_seconds_count 4");

	assert_line(text, "spot_agent_imds_up 0");
	assert_line(text, "spot_agent_imds_consecutive_failures 3");
	assert_line(text, "spot_agent_imds_last_success_timestamp_seconds 1699999999.25");

	assert_line(text, "spot_agent_events_total{type=\"Preempt\"} 1");
	assert_line(text, "spot_agent_events_total{type=\"Terminate\"} 1");
	assert_line(text, "spot_agent_events_total{type=\"Freeze\"} 0");
	assert_line(text, "spot_agent_eviction_pending 1");
	assert_line(text, "spot_agent_eviction_deadline_timestamp_seconds 4102444800.5");
	assert_line(text, "spot_agent_notice_seconds_bucket{le=\"5\"} 1");
	assert_line(text, "spot_agent_notice_seconds_bucket{le=\"20\"} 1");
	assert_line(text, "spot_agent_notice_seconds_bucket{le=\"30\"} 2");
	assert_line(text, "spot_agent_notice_seconds_bucket{le=\"1800\"} 2");
	assert_line(text, "spot_agent_notice_seconds_bucket{le=\"+Inf\"} 2");
	assert_line(text, "spot_agent_notice_seconds_sum 25");
	assert_line(text, "spot_agent_notice_seconds_count 2");
	assert_line(text, "spot_agent_detection_to_first_hook_seconds_bucket{le=\"0.001\"} 0");
	assert_line(text, "spot_agent_detection_to_first_hook_seconds_bucket{le=\"0.002\"} 1");
	assert_line(text, "spot_agent_detection_to_first_hook_seconds_sum 0.0015");
	assert_line(text, "spot_agent_detection_to_first_hook_seconds_count 1");

	assert_line(text, "spot_agent_hook_runs_total{hook=\"10-checkpoint\",result=\"ok\"} 1");
	assert_line(text, "spot_agent_hook_runs_total{hook=\"10-checkpoint\",result=\"failed\"} 0");
	assert_line(text, "spot_agent_hook_runs_total{hook=\"50-deregister\",result=\"failed\"} 1");
	assert_line(text, "spot_agent_hook_runs_total{hook=\"50-deregister\",result=\"timeout\"} 1");
	assert_line(text, "spot_agent_hook_runs_total{hook=\"50-deregister\",result=\"ok\"} 0");
	assert_line(text, "spot_agent_hook_runs_total{hook=\"90-flush-logs\",result=\"skipped\"} 1");
	assert_line(text, "spot_agent_hook_runs_total{hook=\"we\\\"ird\\\\name\\n\",result=\"ok\"} 1");
	assert_int_equal(count_prefix(text, "spot_agent_hook_runs_total{"), 4 * 4);
	assert_line(text, "spot_agent_hook_duration_seconds_bucket{hook=\"10-checkpoint\",le=\"1\"} 0");
	assert_line(text, "spot_agent_hook_duration_seconds_bucket{hook=\"10-checkpoint\",le=\"2.5\"} 1");
	assert_line(text, "spot_agent_hook_duration_seconds_sum{hook=\"10-checkpoint\"} 1.2");
	assert_line(text, "spot_agent_hook_duration_seconds_count{hook=\"10-checkpoint\"} 1");
	assert_line(text, "spot_agent_hook_duration_seconds_bucket{hook=\"50-deregister\",le=\"0.25\"} 0");
	assert_line(text, "spot_agent_hook_duration_seconds_bucket{hook=\"50-deregister\",le=\"0.5\"} 1");
	assert_line(text, "spot_agent_hook_duration_seconds_bucket{hook=\"50-deregister\",le=\"30\"} 2");
	assert_line(text, "spot_agent_hook_duration_seconds_sum{hook=\"50-deregister\"} 30.3");
	assert_line(text, "spot_agent_hook_duration_seconds_count{hook=\"50-deregister\"} 2");
	/* Skipped hooks are counted, not timed. */
	assert_line(text, "spot_agent_hook_duration_seconds_count{hook=\"90-flush-logs\"} 0");
	assert_line(text, "spot_agent_hook_duration_seconds_bucket{hook=\"we\\\"ird\\\\name\\n\",le=\"0.1\"} 1");

	/* Hooks in byte order of their names. */
	h = strstr(text, "{hook=\"10-checkpoint\"");
	assert_non_null(h);
	assert_true(h < strstr(text, "{hook=\"50-deregister\""));
	assert_true(strstr(text, "{hook=\"50-deregister\"") < strstr(text, "{hook=\"90-flush-logs\""));
	assert_true(strstr(text, "{hook=\"90-flush-logs\"") < strstr(text, "{hook=\"we"));

	assert_line(text, "spot_agent_chain_overruns_total 1");
	assert_line(text, "spot_agent_approvals_total{result=\"ok\"} 1");
	assert_line(text, "spot_agent_approvals_total{result=\"failed\"} 2");

	/* No event id anywhere. */
	assert_null(strstr(text, "602d9444"));

	free(text);
	metrics_free(m);
	state_teardown(&f);
}

static void test_deterministic(_unused_ void **unused)
{
	struct fixture f;
	struct metrics *m = metrics_new();
	char *a, *b;
	size_t na, nb;

	state_setup(&f);
	feed(m, &f);
	a = metrics_render(m, &f.s, "0.1.0", &na);
	b = metrics_render(m, &f.s, "0.1.0", &nb);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
	free(a);
	free(b);
	metrics_free(m);
	state_teardown(&f);
}

static void test_phase_done_and_idle(_unused_ void **unused)
{
	struct fixture f;
	struct metrics *m = metrics_new();
	char *text;

	state_setup(&f);
	feed(m, &f);
	/* Done with its hooks, its NotBefore still ahead: still pending. */
	f.recs.items[0].state = LC_DONE;
	f.recs.items[0].chain_ended_wall_usec = now_usec(CLOCK_REALTIME);
	f.recs.items[0].hooks[1].outcome = HOOK_OK;
	engine_on(&f);
	assert_int_equal(f.recs.items[0].state, LC_DONE);
	text = metrics_render(m, &f.s, "0.1.0", NULL);
	assert_line(text, "spot_agent_eviction_pending 1");
	assert_line(text, "spot_agent_eviction_deadline_timestamp_seconds 4102444800.5");
	free(text);

	/* Over: closed. */
	f.recs.items[0].state = LC_CLOSED;
	engine_on(&f);
	f.s.poll.consecutive_failures = 0;
	text = metrics_render(m, &f.s, "0.1.0", NULL);
	assert_line(text, "spot_agent_eviction_pending 0");
	assert_line(text, "spot_agent_eviction_deadline_timestamp_seconds 0");
	assert_line(text, "spot_agent_imds_up 1");
	free(text);
	metrics_free(m);
	state_teardown(&f);
}

static void test_hook_cap(_unused_ void **unused)
{
	struct fixture f;
	struct metrics *m = metrics_new();
	char name[32], *text;

	state_setup(&f);
	/* Reverse order exercises the sorted insertion. */
	for (int i = METRICS_HOOKS_MAX + 4; i >= 0; i--) {
		(void)snprintf(name, sizeof(name), "hook-%03d", i);
		metrics_hook_done(m, name, HOOK_OK, 1000);
	}
	/* A name already tracked keeps its own series at the cap. */
	metrics_hook_done(m, "hook-132", HOOK_FAILED, 1000);

	text = metrics_render(m, &f.s, "0.1.0", NULL);
	assert_int_equal(count_prefix(text, "spot_agent_hook_runs_total{"), 4 * (METRICS_HOOKS_MAX + 1));
	assert_line(text, "spot_agent_hook_runs_total{hook=\"_other\",result=\"ok\"} 5");
	/* The first METRICS_HOOKS_MAX names seen (132 down to 5) are tracked. */
	assert_line(text, "spot_agent_hook_runs_total{hook=\"hook-132\",result=\"failed\"} 1");
	assert_line(text, "spot_agent_hook_runs_total{hook=\"hook-005\",result=\"ok\"} 1");
	assert_null(strstr(text, "hook=\"hook-004\""));
	assert_null(strstr(text, "hook=\"hook-000\""));
	assert_line(text, "spot_agent_hook_duration_seconds_count{hook=\"_other\"} 5");
	free(text);
	metrics_free(m);
	state_teardown(&f);
}

/* Runs promtool on text; returns its exit status, or -1 to skip. */
static int promtool_check(const char *text, size_t len)
{
	FILE *p;
	int status;

	if (access(PROMTOOL, X_OK) != 0)
		return -1;
	p = popen(PROMTOOL " check metrics", "w");
	assert_non_null(p);
	assert_int_equal(fwrite(text, 1, len, p), len);
	status = pclose(p);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_promtool(_unused_ void **unused)
{
	struct fixture f;
	struct metrics *m = metrics_new();
	char *text;
	size_t len;
	int r;

	state_setup(&f);
	text = metrics_render(m, &f.s, "0.1.0", &len);
	r = promtool_check(text, len);
	free(text);
	if (r < 0) {
		metrics_free(m);
		state_teardown(&f);
		skip();
	}
	assert_int_equal(r, 0);

	feed(m, &f);
	text = metrics_render(m, &f.s, "0.1.0", &len);
	assert_int_equal(promtool_check(text, len), 0);
	free(text);
	metrics_free(m);
	state_teardown(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_result_names),
		cmocka_unit_test(test_render_empty),
		cmocka_unit_test(test_render_updates),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_phase_done_and_idle),
		cmocka_unit_test(test_hook_cap),
		cmocka_unit_test(test_promtool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
