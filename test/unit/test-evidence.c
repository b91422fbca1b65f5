/* test-evidence.c - the eviction's record as series: names, labels (sorted,
 * the operator's checked, never an event id), values and timestamps of a
 * canned eviction; the remote-write body decoded again with protobuf-c and
 * snappy; the queue's bounds and its JSON round trip; the backoff's
 * bounds; credentials files and base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <snappy-c.h>

#include "evidence/push.h"
#include "evidence/queue.h"
#include "evidence/remote-write.h"
#include "evidence/remote-write.pb-c.h"
#include "evidence/samples.h"
#include "evidence/sender.h"
#include "util.h"

/* 2026-12-01T11:50:00Z and moments after it. */
#define T0 UINT64_C(1796125800000000)
#define MS(usec) ((int64_t)((usec) / 1000))

static const struct evidence_identity ident = {
	.provider = "azure", .instance = "vm-7", .region = "westeurope", .zone = "2",
	.vm_size = "Standard_D4s_v5", .group = "",
};

static struct evidence_hook canned_hooks[] = {
	{ "10-checkpoint", HOOK_OK, T0 + 100000, T0 + 3100000 },
	{ "20-deregister", HOOK_FAILED, T0 + 3200000, T0 + 3700000 },
	{ "30-drain", HOOK_TIMEOUT, T0 + 3800000, T0 + 13800000 },
	{ "90-flush", HOOK_SKIPPED, 0, 0 },
};

static struct evidence_eviction canned(void)
{
	struct evidence_eviction f = {
		.type = EVENT_PREEMPT,
		.source = "Platform",
		.detected_wall_usec = T0,
		.not_before_wall_usec = T0 + 30000000,
		.deadline_wall_usec = T0 + 12000000,
		.hooks = canned_hooks,
		.n_hooks = ELEMENTSOF(canned_hooks),
		.chain_end_wall_usec = T0 + 14000000,
		.reported = { .has_lost_work = true, .lost_work_seconds = 42 },
		.ack_wall_usec = T0 + 14250000,
	};

	return f;
}

static const struct evidence_series *find(const struct evidence_batch *b, const char *name, const char *k,
					  const char *v)
{
	for (size_t i = 0; i < b->n_series; i++) {
		const char *n = evidence_series_label(&b->series[i], "__name__");
		const char *lv = k ? evidence_series_label(&b->series[i], k) : NULL;

		if (n && strcmp(n, name) == 0 && (!k || (lv && strcmp(lv, v) == 0)))
			return &b->series[i];
	}
	return NULL;
}

static void expect(const struct evidence_batch *b, const char *name, const char *k, const char *v, double value,
		   uint64_t at)
{
	const struct evidence_series *s = find(b, name, k, v);

	if (!s)
		fail_msg("no series %s{%s=%s}", name, k ? k : "", v ? v : "");
	if (fabs(s->value - value) > 1e-9)
		fail_msg("%s: value %g, want %g", name, s->value, value);
	assert_int_equal(s->timestamp_ms, MS(at));
}

static void test_detected(void **state)
{
	struct evidence_eviction f = canned();
	char *extra[] = { "team=ml", "cost_center=42", NULL };
	struct evidence_batch b;

	assert_int_equal(evidence_samples(&ident, extra, &f, EVIDENCE_DETECTED, &b), 2);
	expect(&b, "spot_eviction_detected", "source", "Platform", 1, T0);
	expect(&b, "spot_eviction_notice_seconds", NULL, NULL, 30, T0);
	for (size_t i = 0; i < b.n_series; i++) {
		const struct evidence_series *s = &b.series[i];

		/* Sorted byte for byte, as remote-write requires. */
		for (size_t j = 1; j < s->n_labels; j++)
			assert_true(strcmp(s->labels[j - 1].name, s->labels[j].name) < 0);
		assert_string_equal(evidence_series_label(s, "job"), "spot-agent");
		assert_string_equal(evidence_series_label(s, "instance"), "vm-7");
		assert_string_equal(evidence_series_label(s, "provider"), "azure");
		assert_string_equal(evidence_series_label(s, "region"), "westeurope");
		assert_string_equal(evidence_series_label(s, "zone"), "2");
		assert_string_equal(evidence_series_label(s, "vm_size"), "Standard_D4s_v5");
		assert_string_equal(evidence_series_label(s, "type"), "Preempt");
		assert_string_equal(evidence_series_label(s, "team"), "ml");
		assert_string_equal(evidence_series_label(s, "cost_center"), "42");
		/* Unknown group: no label at all. */
		assert_null(evidence_series_label(s, "group"));
	}
	assert_int_equal(find(&b, "spot_eviction_detected", NULL, NULL)->n_labels, 11);
	evidence_batch_done(&b);
}

static void test_chain(void **state)
{
	struct evidence_eviction f = canned();
	struct evidence_batch b;

	f.ack_wall_usec = 0;
	evidence_samples(&ident, NULL, &f, EVIDENCE_CHAIN, &b);
	expect(&b, "spot_eviction_first_hook_seconds", NULL, NULL, 0.1, T0 + 100000);
	expect(&b, "spot_eviction_hook_duration_seconds", "hook", "10-checkpoint", 3, T0 + 3100000);
	assert_string_equal(evidence_series_label(find(&b, "spot_eviction_hook_duration_seconds", "hook",
						       "10-checkpoint"), "result"), "ok");
	expect(&b, "spot_eviction_hook_duration_seconds", "result", "failed", 0.5, T0 + 3700000);
	expect(&b, "spot_eviction_hook_duration_seconds", "result", "timeout", 10, T0 + 13800000);
	expect(&b, "spot_eviction_hook_duration_seconds", "result", "skipped", 0, T0 + 14000000);
	assert_string_equal(evidence_series_label(find(&b, "spot_eviction_hook_duration_seconds", "result",
						       "skipped"), "hook"), "90-flush");
	expect(&b, "spot_eviction_chain_seconds", NULL, NULL, 14, T0 + 14000000);
	expect(&b, "spot_eviction_chain_overrun_seconds", NULL, NULL, 2, T0 + 14000000);
	expect(&b, "spot_eviction_hooks_failed", NULL, NULL, 2, T0 + 14000000);
	expect(&b, "spot_eviction_lost_work_seconds", NULL, NULL, 42, T0 + 14000000);
	/* Only what the hooks reported. */
	assert_null(find(&b, "spot_eviction_checkpoint_bytes", NULL, NULL));
	assert_null(find(&b, "spot_eviction_jobs_requeued", NULL, NULL));
	/* Not acknowledged yet. */
	assert_null(find(&b, "spot_eviction_approval_seconds", NULL, NULL));
	assert_int_equal(b.n_series, 9);
	evidence_batch_done(&b);

	/* Acknowledged before the chain's batch was made: it rides along. */
	f = canned();
	f.deadline_wall_usec = T0 + 20000000;
	evidence_samples(&ident, NULL, &f, EVIDENCE_CHAIN, &b);
	expect(&b, "spot_eviction_approval_seconds", NULL, NULL, 0.25, T0 + 14250000);
	expect(&b, "spot_eviction_chain_overrun_seconds", NULL, NULL, 0, T0 + 14000000);
	evidence_batch_done(&b);

	/* Later: alone. */
	assert_int_equal(evidence_samples(&ident, NULL, &f, EVIDENCE_ACK, &b), 1);
	expect(&b, "spot_eviction_approval_seconds", NULL, NULL, 0.25, T0 + 14250000);
	evidence_batch_done(&b);
}

static void test_recovered_and_no_event_id(void **state)
{
	struct evidence_eviction f = canned();
	struct evidence_batch b;

	f.recover_reason = EVIDENCE_RECOVER_BOOT;
	f.recover_wall_usec = T0 + 600000000;
	f.alive_wall_usec = f.ack_wall_usec;
	assert_int_equal(evidence_samples(&ident, NULL, &f, EVIDENCE_RECOVERED, &b), 2);
	expect(&b, "spot_eviction_recovered", "reason", "boot", 1, T0 + 600000000);
	expect(&b, "spot_eviction_time_to_recover_seconds", "reason", "boot", 585.75, T0 + 600000000);
	evidence_batch_done(&b);

	evidence_samples(&ident, NULL, &f, EVIDENCE_DETECTED | EVIDENCE_CHAIN | EVIDENCE_RECOVERED, &b);
	for (size_t i = 0; i < b.n_series; i++)
		for (size_t j = 0; j < b.series[i].n_labels; j++)
			assert_true(strcmp(b.series[i].labels[j].name, "id") != 0 &&
				    strcmp(b.series[i].labels[j].name, "event_id") != 0 &&
				    strstr(b.series[i].labels[j].value, "A1B2") == NULL);
	evidence_batch_done(&b);

	/* Nothing known, nothing sent. */
	f = (struct evidence_eviction){ .type = EVENT_PREEMPT };
	assert_int_equal(evidence_samples(&ident, NULL, &f, ~0u, &b), 0);
	evidence_batch_done(&b);
}

static void test_label_check(void **state)
{
	static const char *const good[] = { "team=ml", "_x=1", "Team9=a b", "env=prod/eu" };
	static const char *const bad[] = {
		"team", "=x", "9team=x", "te-am=x", "__meta=x", "job=x", "instance=x", "type=x", "hook=x",
		"reason=x", "team=", "t\xc3=x",
	};
	char why[128];

	for (size_t i = 0; i < ELEMENTSOF(good); i++)
		assert_int_equal(evidence_label_check(good[i], why, sizeof(why)), 0);
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		why[0] = '\0';
		if (evidence_label_check(bad[i], why, sizeof(why)) != -EINVAL)
			fail_msg("'%s' was taken", bad[i]);
		assert_true(why[0] != '\0');
	}
	assert_int_equal(evidence_label_check("team=\xff", why, sizeof(why)), -EINVAL);
}

static void test_extra_labels_bad_and_repeated(void **state)
{
	struct evidence_eviction f = canned();
	char *extra[] = { "job=evil", "team=a", "__x=1", "team=b", NULL };
	struct evidence_batch b;
	const struct evidence_series *s;

	evidence_samples(&ident, extra, &f, EVIDENCE_DETECTED, &b);
	s = find(&b, "spot_eviction_detected", NULL, NULL);
	assert_string_equal(evidence_series_label(s, "job"), "spot-agent");
	assert_string_equal(evidence_series_label(s, "team"), "b");   /* the later wins */
	assert_null(evidence_series_label(s, "__x"));
	evidence_batch_done(&b);
}

/* Decodes a body as a receiver would. */
static Prometheus__WriteRequest *decode(const void *body, size_t len)
{
	size_t raw_len;
	char *raw;
	Prometheus__WriteRequest *req;

	assert_int_equal(snappy_uncompressed_length(body, len, &raw_len), SNAPPY_OK);
	raw = malloc(raw_len ? raw_len : 1);
	assert_non_null(raw);
	assert_int_equal(snappy_uncompress(body, len, raw, &raw_len), SNAPPY_OK);
	req = prometheus__write_request__unpack(NULL, raw_len, (const uint8_t *)raw);
	free(raw);
	assert_non_null(req);
	return req;
}

static void test_encode_decode(void **state)
{
	struct evidence_eviction f = canned();
	char *extra[] = { "team=ml", NULL };
	Prometheus__WriteRequest *req;
	struct evidence_batch b;
	void *body;
	size_t len;

	evidence_samples(&ident, extra, &f, EVIDENCE_DETECTED | EVIDENCE_CHAIN, &b);
	assert_int_equal(evidence_rw_encode(&b, &body, &len), 0);
	req = decode(body, len);
	assert_int_equal(req->n_timeseries, b.n_series);
	for (size_t i = 0; i < b.n_series; i++) {
		const Prometheus__TimeSeries *ts = req->timeseries[i];

		assert_int_equal(ts->n_labels, b.series[i].n_labels);
		for (size_t j = 0; j < ts->n_labels; j++) {
			assert_string_equal(ts->labels[j]->name, b.series[i].labels[j].name);
			assert_string_equal(ts->labels[j]->value, b.series[i].labels[j].value);
		}
		assert_int_equal(ts->n_samples, 1);
		assert_true(ts->samples[0]->value == b.series[i].value);
		assert_int_equal(ts->samples[0]->timestamp, b.series[i].timestamp_ms);
	}
	prometheus__write_request__free_unpacked(req, NULL);
	free(body);

	{
		struct evidence_batch empty = { 0 };

		assert_int_equal(evidence_rw_encode(&empty, &body, &len), -E2BIG);
	}
	evidence_batch_done(&b);
}

static void test_queue_json_round_trip(void **state)
{
	struct evidence_queue q = { 0 }, back = { 0 };
	struct evidence_eviction f = canned();
	char *extra[] = { "team=m\xc3\xbcnchen", NULL };
	struct json_err err = { "" };
	char *text, *again;
	cJSON *o, *parsed;
	struct evidence_batch b;

	evidence_samples(&ident, extra, &f, EVIDENCE_DETECTED, &b);
	evidence_queue_push(&q, &b, false);
	evidence_samples(&ident, extra, &f, EVIDENCE_CHAIN, &b);
	evidence_queue_push(&q, &b, false);
	assert_int_equal(q.n, 2);

	o = evidence_queue_to_json(&q);
	text = cJSON_PrintUnformatted(o);
	parsed = cJSON_Parse(text);
	assert_int_equal(evidence_queue_from_json(&back, parsed, &err), 0);
	assert_int_equal(back.n, q.n);
	assert_int_equal(back.n_series, q.n_series);
	for (size_t i = 0; i < q.n; i++)
		for (size_t j = 0; j < q.batches[i].n_series; j++) {
			const struct evidence_series *x = &q.batches[i].series[j], *y = &back.batches[i].series[j];

			assert_int_equal(x->n_labels, y->n_labels);
			for (size_t k = 0; k < x->n_labels; k++) {
				assert_string_equal(x->labels[k].name, y->labels[k].name);
				assert_string_equal(x->labels[k].value, y->labels[k].value);
			}
			assert_true(x->value == y->value);
			assert_int_equal(x->timestamp_ms, y->timestamp_ms);
		}
	{
		cJSON *o2 = evidence_queue_to_json(&back);

		again = cJSON_PrintUnformatted(o2);
		assert_string_equal(text, again);
		cJSON_free(again);
		cJSON_Delete(o2);
	}
	cJSON_Delete(parsed);
	cJSON_free(text);
	cJSON_Delete(o);
	evidence_queue_done(&back);
	evidence_queue_done(&q);
}

static void test_queue_json_refused(void **state)
{
	static const char *const bad[] = {
		"[]",
		"{}",
		"{\"batches\":[],\"x\":1}",
		"{\"batches\":[{}]}",
		"{\"batches\":[{\"series\":[]}]}",
		"{\"batches\":[{\"series\":[{\"labels\":{\"job\":\"x\"},\"value\":1,\"timestamp_ms\":1}]}]}",
		"{\"batches\":[{\"series\":[{\"labels\":{\"__name__\":\"x\"},\"value\":\"1\",\"timestamp_ms\":1}]}]}",
		"{\"batches\":[{\"series\":[{\"labels\":{\"__name__\":\"x\"},\"value\":1,\"timestamp_ms\":-1}]}]}",
		"{\"batches\":[{\"series\":[{\"labels\":{\"__name__\":\"x\",\"a\":\"\"},\"value\":1,\"timestamp_ms\":1}]}]}",
		"{\"batches\":[{\"series\":[{\"labels\":{\"__name__\":\"x\",\"a\":1},\"value\":1,\"timestamp_ms\":1}]}]}",
		"{\"batches\":[{\"series\":[{\"labels\":[],\"value\":1,\"timestamp_ms\":1}]}]}",
	};
	struct evidence_queue q = { 0 };

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct json_err err = { "" };
		cJSON *o = cJSON_Parse(bad[i]);

		assert_non_null(o);
		if (evidence_queue_from_json(&q, o, &err) != -EBADMSG)
			fail_msg("taken: %s", bad[i]);
		assert_true(err.why[0] != '\0');
		assert_int_equal(q.n, 0);
		cJSON_Delete(o);
	}
}

static void one_series(struct evidence_batch *b, int64_t ts)
{
	const char *kv[] = { "job", "spot-agent" };

	*b = (struct evidence_batch){ 0 };
	evidence_batch_add(b, "spot_eviction_detected", kv, 1, 1, ts);
}

static void test_queue_bounds(void **state)
{
	struct evidence_queue q = { 0 };
	struct evidence_batch b;
	size_t dropped = 0;

	for (int i = 0; i < EVIDENCE_QUEUE_MAX + 10; i++) {
		one_series(&b, i);
		dropped += evidence_queue_push(&q, &b, i > 0);
	}
	assert_int_equal(q.n, EVIDENCE_QUEUE_MAX);
	assert_int_equal(dropped, 10);
	/* The first (being sent) stayed; the next oldest went; the newest is last. */
	assert_int_equal(q.batches[0].series[0].timestamp_ms, 0);
	assert_int_equal(q.batches[1].series[0].timestamp_ms, 11);
	assert_int_equal(q.batches[q.n - 1].series[0].timestamp_ms, EVIDENCE_QUEUE_MAX + 9);
	evidence_queue_pop(&q);
	assert_int_equal(q.batches[0].series[0].timestamp_ms, 11);
	assert_int_equal(q.n_series, EVIDENCE_QUEUE_MAX - 1);
	/* An empty batch is not queued. */
	b = (struct evidence_batch){ 0 };
	assert_int_equal(evidence_queue_push(&q, &b, false), 0);
	assert_int_equal(q.n, EVIDENCE_QUEUE_MAX - 1);
	evidence_queue_done(&q);
}

static void test_backoff(void **state)
{
	static const uint64_t randoms[] = { 0, 1, 12345, UINT64_MAX, UINT64_MAX / 3 };
	uint64_t step = EVIDENCE_RETRY_FIRST_USEC;

	for (unsigned n = 1; n <= 40; n++) {
		for (size_t i = 0; i < ELEMENTSOF(randoms); i++) {
			uint64_t w = evidence_backoff_usec(n, randoms[i]);

			assert_true(w >= step / 2);
			assert_true(w <= step);
			assert_true(w <= EVIDENCE_RETRY_MAX_USEC);
		}
		step = step * 2 > EVIDENCE_RETRY_MAX_USEC ? EVIDENCE_RETRY_MAX_USEC : step * 2;
	}
	assert_int_equal(evidence_backoff_usec(1, 0), 250 * USEC_PER_MSEC);
	assert_int_equal(evidence_backoff_usec(1, 250 * USEC_PER_MSEC), 500 * USEC_PER_MSEC);
	assert_int_equal(evidence_backoff_usec(100, 30 * USEC_PER_SEC), 60 * USEC_PER_SEC);
}

static char *secret_file(const char *content)
{
	char *path = strdup("/tmp/test-evidence-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	return path;
}

static void test_authorization(void **state)
{
	char *bearer = secret_file("t0ken\n"), *basic = secret_file("user:pa:ss\n"), *empty = secret_file("\n");
	char *two = secret_file("a\nb\n"), *nocolon = secret_file("user\n");
	char why[256], *h = NULL;

	assert_int_equal(evidence_authorization(NULL, NULL, &h, why, sizeof(why)), 0);
	assert_null(h);
	assert_int_equal(evidence_authorization(bearer, "", &h, why, sizeof(why)), 0);
	assert_string_equal(h, "Authorization: Bearer t0ken");
	free(h);
	assert_int_equal(evidence_authorization(NULL, basic, &h, why, sizeof(why)), 0);
	assert_string_equal(h, "Authorization: Basic dXNlcjpwYTpzcw==");
	free(h);
	assert_int_equal(evidence_authorization(bearer, basic, &h, why, sizeof(why)), -EINVAL);
	assert_int_equal(evidence_authorization(empty, NULL, &h, why, sizeof(why)), -EINVAL);
	assert_int_equal(evidence_authorization(two, NULL, &h, why, sizeof(why)), -EINVAL);
	assert_null(strstr(why, "a"  "\n"));
	assert_int_equal(evidence_authorization(NULL, nocolon, &h, why, sizeof(why)), -EINVAL);
	assert_null(strstr(why, "user\n"));
	assert_int_equal(evidence_authorization("/nonexistent/x", NULL, &h, why, sizeof(why)), -ENOENT);
	assert_null(h);
	for (char **p = (char *[]){ bearer, basic, empty, two, nocolon, NULL }; *p; p++) {
		unlink(*p);
		free(*p);
	}
}

static void test_base64_and_url(void **state)
{
	char buf[128], *s;

	s = evidence_base64("a/b", 3, true);
	assert_string_equal(s, "YS9i");
	free(s);
	s = evidence_base64("\xfb\xff", 2, true);
	assert_string_equal(s, "-_8=");
	free(s);
	s = evidence_base64("\xfb\xff", 2, false);
	assert_string_equal(s, "+/8=");
	free(s);
	s = evidence_base64("", 0, false);
	assert_string_equal(s, "");
	free(s);
	assert_string_equal(evidence_url_for_log("https://u:p@host:9/api/v1/write", buf, sizeof(buf)),
			    "https://host:9/api/v1/write");
	assert_string_equal(evidence_url_for_log("http://host/a@b", buf, sizeof(buf)), "http://host/a@b");
}

static void test_push(void **state)
{
	struct evidence_eviction f = canned();
	char *extra[] = { "note=a \"b\"\\c", NULL };
	struct evidence_batch b;
	char *s;

	s = evidence_push_group_url("http://pg:9091", "vm-7");
	assert_string_equal(s, "http://pg:9091/metrics/job/spot-agent/instance/vm-7");
	free(s);
	s = evidence_push_group_url("http://pg:9091", "a/b");
	assert_string_equal(s, "http://pg:9091/metrics/job/spot-agent/instance@base64/YS9i");
	free(s);
	s = evidence_push_group_url("http://pg:9091", "");
	assert_string_equal(s, "http://pg:9091/metrics/job/spot-agent/instance@base64/=");
	free(s);

	f.n_hooks = 1;
	evidence_samples(&ident, extra, &f, EVIDENCE_DETECTED | EVIDENCE_CHAIN, &b);
	s = evidence_push_text(&b);
	assert_non_null(strstr(s, "# TYPE spot_eviction_detected gauge\n"
				  "spot_eviction_detected{note=\"a \\\"b\\\"\\\\c\",provider=\"azure\",region=\"westeurope\","
				  "source=\"Platform\",type=\"Preempt\",vm_size=\"Standard_D4s_v5\",zone=\"2\"} 1\n"));
	assert_non_null(strstr(s, "# TYPE spot_eviction_first_hook_seconds gauge\nspot_eviction_first_hook_seconds{"));
	assert_non_null(strstr(s, "} 0.1\n"));
	/* The group's labels are the URL's; no timestamps. */
	assert_null(strstr(s, "job="));
	assert_null(strstr(s, "instance="));
	assert_null(strstr(s, "1796125800000"));
	/* One TYPE line per metric. */
	assert_int_equal(strstr(strstr(s, "# TYPE spot_eviction_detected") + 1, "# TYPE spot_eviction_detected") == NULL, 1);
	free(s);
	evidence_batch_done(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_detected),
		cmocka_unit_test(test_chain),
		cmocka_unit_test(test_recovered_and_no_event_id),
		cmocka_unit_test(test_label_check),
		cmocka_unit_test(test_extra_labels_bad_and_repeated),
		cmocka_unit_test(test_encode_decode),
		cmocka_unit_test(test_queue_json_round_trip),
		cmocka_unit_test(test_queue_json_refused),
		cmocka_unit_test(test_queue_bounds),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_authorization),
		cmocka_unit_test(test_base64_and_url),
		cmocka_unit_test(test_push),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
