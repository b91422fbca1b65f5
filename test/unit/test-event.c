/* test-event.c - the event model: NotBefore parsing, deadline arithmetic,
 * the JSON form, copies and the string tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/event.h"
#include "store/event-json.h"
#include "util.h"

#define SEC(s) ((uint64_t)(s) * USEC_PER_SEC)

static const struct {
	const char *s;
	uint64_t usec;
} good_times[] = {
	{ "", 0 },
	/* RFC 1123, as Azure sends it, and its variants. */
	{ "Tue, 16 Mar 2021 00:58:46 GMT", SEC(1615856326) },
	{ "Tue, 16 Mar 2021 00:58:46 UTC", SEC(1615856326) },
	{ "Tue, 16 Mar 2021 00:58:46 +0000", SEC(1615856326) },
	{ "Tue, 16 Mar 2021 01:58:46 +0100", SEC(1615856326) },
	{ "Mon, 15 Mar 2021 23:58:46 -0100", SEC(1615856326) },
	{ "tue, 16 MAR 2021 00:58:46 gmt", SEC(1615856326) },
	{ "16 Mar 2021 00:58:46 GMT", SEC(1615856326) },
	{ "Sat, 6 Mar 2021 00:58:46 GMT", SEC(1614992326) },
	{ "Sat, 06 Mar 2021 00:58:46 GMT", SEC(1614992326) },
	/* The weekday is not cross-checked: the date is authoritative. */
	{ "Fri, 16 Mar 2021 00:58:46 GMT", SEC(1615856326) },
	/* AWS maintenance form. */
	{ "21 Jan 2019 09:00:43 GMT", SEC(1548061243) },
	/* ISO 8601 / RFC 3339. */
	{ "2016-09-19T18:29:47Z", SEC(1474309787) },
	{ "2016-09-19t18:29:47z", SEC(1474309787) },
	{ "2016-09-19 18:29:47Z", SEC(1474309787) },
	{ "2016-09-19T18:29:47-00:00", SEC(1474309787) },
	{ "2016-09-19T19:29:47+01:00", SEC(1474309787) },
	{ "2016-09-19T20:29:47+0200", SEC(1474309787) },
	{ "2016-09-19T13:29:47-05:00", SEC(1474309787) },
	{ "2016-09-20T00:59:47+06:30", SEC(1474309787) },
	{ "2016-09-19T18:29:47.5Z", SEC(1474309787) + 500000 },
	{ "2016-09-19T18:29:47.000001Z", SEC(1474309787) + 1 },
	{ "2016-09-19T18:29:47.123456789Z", SEC(1474309787) + 123456 },
	{ "2016-09-19T13:29:47.25-05:00", SEC(1474309787) + 250000 },
	/* Calendar corners. */
	{ "2024-02-29T12:00:00Z", SEC(1709208000) },
	{ "Thu, 29 Feb 2024 12:00:00 GMT", SEC(1709208000) },
	{ "2000-02-29T00:00:00Z", SEC(951782400) },
	{ "2100-03-01T00:00:00Z", SEC(4107542400) },
	{ "2038-01-19T03:14:08Z", SEC(2147483648) },
	/* The last instants the agent keeps (JSON_TIME_MAX_USEC). */
	{ "2199-12-31T23:59:59Z", SEC(7258118399) },
	{ "2199-12-31T23:59:59.999999Z", JSON_TIME_MAX_USEC },
	{ "2200-01-01T00:59:59+01:00", SEC(7258118399) },
	{ "Tue, 31 Dec 2199 23:59:59 GMT", SEC(7258118399) },
	{ "1970-01-01T00:00:01Z", SEC(1) },
	{ "1970-01-01T01:00:01+01:00", SEC(1) },
};

static const char *const bad_times[] = {
	"Mon, 30 Feb 2026 10:00:00 GMT",     /* Feb 30 */
	"2026-02-30T10:00:00Z",
	"2023-02-29T00:00:00Z",              /* not a leap year */
	"2100-02-29T00:00:00Z",              /* century, not a leap year */
	"2016-09-31T00:00:00Z",
	"2016-13-01T00:00:00Z",
	"2016-00-10T00:00:00Z",
	"2016-09-00T00:00:00Z",
	"0 Mar 2021 00:58:46 GMT",
	"32 Mar 2021 00:58:46 GMT",
	"123 Mar 2021 00:58:46 GMT",
	"Tue, 16 Mar 2021 24:00:00 GMT",     /* hour 24 */
	"2021-03-16T24:00:00Z",
	"Tue, 16 Mar 2021 00:60:00 GMT",
	"Tue, 16 Mar 2021 00:00:60 GMT",     /* no leap seconds */
	"2016-12-31T23:59:60Z",
	"Tue, 16 Mar 2021 00:58:46",         /* missing GMT */
	"Tue, 16 Mar 2021 00:58:46 ",
	"Tue, 16 Mar 2021 00:58:46 GMT ",    /* trailing junk */
	"Tue, 16 Mar 2021 00:58:46 GMTx",
	"Tue, 16 Mar 2021 00:58:46 GMT\n",
	"Tue, 16 Mar 2021 00:58:46 EST",
	"Tue, 16 Mar 2021 00:58:46 +01",
	"Tue, 16 Mar 2021 00:58:46 +01:00",
	"Tue, 16 Mar 2021 00:58:46 +2400",
	"Tue, 16 Mar 2021 00:58:46 +0160",
	"Tue,16 Mar 2021 00:58:46 GMT",
	"Tue, 16 Mar 2021  00:58:46 GMT",
	"Tue 16 Mar 2021 00:58:46 GMT",
	"Tuesday, 16 Mar 2021 00:58:46 GMT",
	"Xyz, 16 Mar 2021 00:58:46 GMT",
	"16 Mrz 2021 00:58:46 GMT",
	"16 March 2021 00:58:46 GMT",
	"16 Mar 21 00:58:46 GMT",
	"16 Mar 20211 00:58:46 GMT",
	"16 Mar 2021 0:58:46 GMT",
	"16 Mar 2021 00:58 GMT",
	" 2016-09-19T18:29:47Z",
	"2016-09-19T18:29:47",               /* no zone: local time is ambiguous */
	"2016-09-19",
	"2016-09-19T18:29",
	"2016-9-19T18:29:47Z",
	"2016-09-19X18:29:47Z",
	"2016-09-19T18:29:47Zjunk",
	"2016-09-19T18:29:47Z ",
	"2016-09-19T18:29:47.Z",
	"2016-09-19T18:29:47.1234567890Z",
	"2016-09-19T18:29:47,5Z",
	"2016-09-19T18:29:47+24:00",
	"2016-09-19T18:29:47+01:60",
	"2016-09-19T18:29:47+1:00",
	"2016-09-19T18:29:47+01",
	"2016-09-19T18:29:47+01:0",
	"+2016-09-19T18:29:47Z",
	"1969-02-30T00:00:00Z",              /* not a date, before the epoch too */
	"1474309787",
	"now",
	"-",
	"T",
	"Tue,",
};

/* Real times the agent's JSON could not carry exactly: -ERANGE. */
static const char *const out_of_range_times[] = {
	"1969-12-31T23:59:59Z",              /* before the epoch */
	"1970-01-01T00:30:00+01:00",
	"Wed, 31 Dec 1969 23:59:59 GMT",
	"2200-01-01T00:00:00Z",              /* JSON_TIME_END_SEC */
	"2199-12-31T23:59:59-00:01",
	"Fri, 31 Dec 2300 23:59:59 GMT",
	"2255-06-05T23:47:34.740993Z",       /* 2^53 microseconds */
	"9999-12-31T23:59:59Z",
	"31 Dec 9999 23:59:59 -2359",
};

static void test_parse_time_good(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(good_times); i++) {
		uint64_t usec = 42;
		int r = event_parse_time(good_times[i].s, &usec);

		if (r != 0 || usec != good_times[i].usec)
			fail_msg("'%s': r=%d got %" PRIu64 " want %" PRIu64, good_times[i].s, r, usec,
				 good_times[i].usec);
	}
}

static void test_parse_time_bad(void **state)
{
	uint64_t usec = 42;

	for (size_t i = 0; i < ELEMENTSOF(bad_times); i++) {
		int r = event_parse_time(bad_times[i], &usec);

		if (r != -EINVAL)
			fail_msg("'%s' accepted as %" PRIu64, bad_times[i], usec);
		assert_int_equal(usec, 42);  /* untouched on error */
	}
	assert_int_equal(event_parse_time(NULL, &usec), -EINVAL);
	for (size_t i = 0; i < ELEMENTSOF(out_of_range_times); i++) {
		int r = event_parse_time(out_of_range_times[i], &usec);

		if (r != -ERANGE)
			fail_msg("'%s': %d, not -ERANGE", out_of_range_times[i], r);
		assert_int_equal(usec, 42);
	}
}

/* A NotBefore must mean the same instant whatever TZ and locale say. */
static void test_parse_time_environment(void **state)
{
	static const char *const zones[] = { "Asia/Kolkata", "America/St_Johns", "UTC0", "XYZ-5:30" };
	static const char *const locales[] = { "tr_TR.UTF-8", "de_DE.UTF-8", "C.UTF-8", "C" };
	char *old_tz = getenv("TZ") ? xstrdup(getenv("TZ")) : NULL;

	for (size_t z = 0; z < ELEMENTSOF(zones); z++) {
		assert_int_equal(setenv("TZ", zones[z], 1), 0);
		tzset();
		for (size_t l = 0; l < ELEMENTSOF(locales); l++) {
			uint64_t usec;
			char buf[EVENT_TIME_MAX];

			(void)setlocale(LC_ALL, locales[l]);  /* may not be installed */
			assert_int_equal(event_parse_time("TUE, 16 MAR 2021 00:58:46 GMT", &usec), 0);
			assert_int_equal(usec, SEC(1615856326));
			assert_int_equal(event_parse_time("2016-09-19T18:29:47Z", &usec), 0);
			assert_int_equal(usec, SEC(1474309787));
			assert_string_equal(event_format_time(buf, sizeof(buf), usec), "2016-09-19T18:29:47Z");
		}
	}
	(void)setlocale(LC_ALL, "C");
	if (old_tz)
		assert_int_equal(setenv("TZ", old_tz, 1), 0);
	else
		assert_int_equal(unsetenv("TZ"), 0);
	tzset();
	free(old_tz);
}

static void test_format_time(void **state)
{
	static const uint64_t values[] = {
		1, SEC(1), SEC(1474309787), SEC(1474309787) + 500000, SEC(1474309787) + 123456,
		SEC(1474309787) + 1, SEC(951782400), SEC(1709208000) + 999999, SEC(7258118399),
		JSON_TIME_MAX_USEC,
	};
	char buf[EVENT_TIME_MAX], small[8];

	assert_string_equal(event_format_time(buf, sizeof(buf), 0), "");
	assert_string_equal(event_format_time(buf, sizeof(buf), SEC(1474309787)), "2016-09-19T18:29:47Z");
	assert_string_equal(event_format_time(buf, sizeof(buf), SEC(1474309787) + 500000),
			    "2016-09-19T18:29:47.5Z");
	assert_string_equal(event_format_time(buf, sizeof(buf), SEC(1474309787) + 120),
			    "2016-09-19T18:29:47.00012Z");
	assert_string_equal(event_format_time(small, sizeof(small), SEC(1474309787)), "");

	for (size_t i = 0; i < ELEMENTSOF(values); i++) {
		uint64_t back = 0;

		event_format_time(buf, sizeof(buf), values[i]);
		assert_int_equal(event_parse_time(buf, &back), 0);
		assert_int_equal(back, values[i]);
	}
}

static void make_event(struct spot_event *ev, enum event_status status, uint64_t not_before_usec)
{
	event_init(ev);
	assert_int_equal(strscpy(ev->id, sizeof(ev->id), "A123BC45-1234-5678-AB90-ABCDEF123456"), 0);
	ev->type = EVENT_PREEMPT;
	ev->status = status;
	ev->not_before_usec = not_before_usec;
}

static void test_deadline(void **state)
{
	const uint64_t now = SEC(1700000000), margin = SEC(2);
	static const struct {
		const char *what;
		enum event_status status;
		int64_t not_before_from_now_usec;   /* INT64_MIN: no NotBefore */
		uint64_t margin_usec;
		int64_t want_from_now_usec;
		bool emergency;
	} cases[] = {
		{ "normal", EVENT_SCHEDULED, 30000000, 2000000, 28000000, false },
		{ "far away", EVENT_SCHEDULED, 7 * 86400 * INT64_C(1000000), 2000000,
		  7 * 86400 * INT64_C(1000000) - 2000000, false },
		{ "no margin", EVENT_SCHEDULED, 30000000, 0, 30000000, false },
		{ "exactly the budget", EVENT_SCHEDULED, 12000000, 2000000, 10000000, false },
		{ "just under the budget", EVENT_SCHEDULED, 11999999, 2000000, 9999999, false },
		{ "short notice", EVENT_SCHEDULED, 4000000, 1000000, 3000000, false },
		{ "notice equal to the margin", EVENT_SCHEDULED, 2000000, 2000000, 2000000, true },
		/* Between one and two margins: the margin's length, so that a
		 * little more notice never means less time. */
		{ "just over the margin", EVENT_SCHEDULED, 2000001, 2000000, 2000000, false },
		{ "one and a half margins", EVENT_SCHEDULED, 3000000, 2000000, 2000000, false },
		{ "just under twice the margin", EVENT_SCHEDULED, 3999999, 2000000, 2000000, false },
		{ "twice the margin", EVENT_SCHEDULED, 4000000, 2000000, 2000000, false },
		{ "just over twice the margin", EVENT_SCHEDULED, 4000001, 2000000, 2000001, false },
		{ "margin larger than notice", EVENT_SCHEDULED, 30000000, 60000000, 30000000, true },
		{ "started", EVENT_STARTED, 30000000, 2000000, 10000000, true },
		{ "started, blank NotBefore", EVENT_STARTED, INT64_MIN, 2000000, 10000000, true },
		{ "no NotBefore", EVENT_SCHEDULED, INT64_MIN, 2000000, 10000000, true },
		{ "past", EVENT_SCHEDULED, -60000000, 2000000, 10000000, true },
		{ "now", EVENT_SCHEDULED, 0, 0, 10000000, true },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct spot_event ev;
		uint64_t nb, got;
		bool emergency = !cases[i].emergency;

		nb = cases[i].not_before_from_now_usec == INT64_MIN ? 0 :
		     (uint64_t)((int64_t)now + cases[i].not_before_from_now_usec);
		make_event(&ev, cases[i].status, nb);
		got = event_deadline(&ev, now, cases[i].margin_usec, &emergency);
		if (got != (uint64_t)((int64_t)now + cases[i].want_from_now_usec) ||
		    emergency != cases[i].emergency)
			fail_msg("%s: deadline now%+" PRId64 " emergency=%d", cases[i].what,
				 (int64_t)(got - now), emergency);
		/* The output flag is optional. */
		assert_int_equal(event_deadline(&ev, now, cases[i].margin_usec, NULL), got);
		event_done(&ev);
	}

	/* More notice never means less time: the budget grows with the notice
	 * left, step by step across 0 to 3 margins. */
	{
		uint64_t last = 0;

		for (uint64_t left = 1; left <= SEC(6); left += 997) {
			uint64_t budget = event_margin_deadline(now + left, now, margin) - now;

			if (budget < last || budget > left)
				fail_msg("%" PRIu64 " us of notice: %" PRIu64 " us for the hooks, after %" PRIu64,
					 left, budget, last);
			last = budget;
		}
	}

	/* A margin larger than NotBefore itself does not wrap around. */
	{
		struct spot_event ev;
		bool emergency = false;

		make_event(&ev, EVENT_SCHEDULED, SEC(5));
		assert_int_equal(event_deadline(&ev, SEC(1), SEC(10), &emergency), SEC(5));
		assert_true(emergency);
		assert_int_equal(event_deadline(&ev, UINT64_MAX - 1, margin, &emergency), UINT64_MAX);
		event_done(&ev);
	}
}

static void fill_event(struct spot_event *ev)
{
	make_event(ev, EVENT_SCHEDULED, SEC(1615856326));
	ev->type = EVENT_FREEZE;
	assert_int_equal(strscpy(ev->source, sizeof(ev->source), "Platform"), 0);
	assert_int_equal(strscpy(ev->description, sizeof(ev->description),
				 "Host \"server\" is\tundergoing maintenance \xe2\x82\xac."), 0);
	ev->duration_sec = 5;
	ev->provider = PROVIDER_AZURE;
	assert_int_equal(event_add_resource(ev, "WestNO_0"), 0);
	assert_int_equal(event_add_resource(ev, "WestNO_1"), 0);
}

/* The object's key k as text ("null", digits, "\"text\""). */
static char *member_text(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	assert_non_null(v);
	return cJSON_PrintUnformatted(v);
}

static void assert_member(const cJSON *o, const char *k, const char *want)
{
	char *got = member_text(o, k);

	if (strcmp(got, want) != 0)
		fail_msg("'%s' is %s, want %s", k, got, want);
	cJSON_free(got);
}

static void test_json(void **state)
{
	static const char *const keys[] = {
		"id", "type", "status", "source", "not_before", "not_before_usec", "resources",
		"description", "duration_s", "provider", "deadline", "deadline_usec", "drill",
	};
	struct spot_event ev, back;
	uint64_t deadline = 7;
	const cJSON *item;
	cJSON *o, *parsed;
	bool drill = false;
	size_t i = 0;
	char *text;

	fill_event(&ev);
	o = event_to_json(&ev, SEC(1615856300) + 999999, true);
	assert_non_null(o);
	/* Every field, in this order, and no other. */
	cJSON_ArrayForEach(item, o) {
		assert_true(i < ELEMENTSOF(keys));
		assert_string_equal(item->string, keys[i]);
		i++;
	}
	assert_int_equal(i, ELEMENTSOF(keys));
	assert_member(o, "id", "\"A123BC45-1234-5678-AB90-ABCDEF123456\"");
	assert_member(o, "type", "\"Freeze\"");
	assert_member(o, "status", "\"Scheduled\"");
	assert_member(o, "source", "\"Platform\"");
	assert_member(o, "not_before", "\"2021-03-16T00:58:46.000000Z\"");
	assert_member(o, "not_before_usec", "1615856326000000");
	assert_member(o, "resources", "[\"WestNO_0\",\"WestNO_1\"]");
	assert_member(o, "duration_s", "5");
	assert_member(o, "provider", "\"azure\"");
	/* Microseconds as digits, never a double's 1.6158563009999e+15. */
	assert_member(o, "deadline", "\"2021-03-16T00:58:20.999999Z\"");
	assert_member(o, "deadline_usec", "1615856300999999");
	assert_member(o, "drill", "true");

	/* Through text and back, as the state file does. */
	text = cJSON_PrintUnformatted(o);
	assert_non_null(text);
	assert_non_null(strstr(text, "\"deadline_usec\":1615856300999999,"));
	parsed = cJSON_Parse(text);
	assert_non_null(parsed);
	event_init(&back);
	assert_int_equal(event_doc_from_json(parsed, &back, &deadline, &drill, NULL), 0);
	assert_true(event_equal(&ev, &back));
	assert_int_equal(deadline, SEC(1615856300) + 999999);
	assert_true(drill);
	event_done(&back);
	cJSON_Delete(parsed);
	free(text);
	cJSON_Delete(o);

	/* Absent is null: no deadline, unknown NotBefore, duration, source
	 * and description; no resources is an empty list. */
	event_done(&ev);
	make_event(&ev, EVENT_STARTED, 0);
	ev.provider = PROVIDER_GCP;
	o = event_to_json(&ev, 0, false);
	assert_member(o, "deadline", "null");
	assert_member(o, "deadline_usec", "null");
	assert_member(o, "not_before", "null");
	assert_member(o, "not_before_usec", "null");
	assert_member(o, "source", "null");
	assert_member(o, "description", "null");
	assert_member(o, "duration_s", "null");
	assert_member(o, "resources", "[]");
	assert_member(o, "drill", "false");
	/* Also straight from the object built in memory. */
	event_init(&back);
	assert_int_equal(event_doc_from_json(o, &back, &deadline, &drill, NULL), 0);
	assert_true(event_equal(&ev, &back));
	assert_int_equal(deadline, 0);
	assert_false(drill);
	event_done(&back);
	cJSON_Delete(o);

	/* Extremes: the last instant and the longest duration the agent keeps. */
	ev.not_before_usec = JSON_TIME_MAX_USEC;
	ev.duration_sec = EVENT_DURATION_MAX_SEC;
	o = event_to_json(&ev, JSON_TIME_MAX_USEC, false);
	assert_member(o, "not_before", "\"2199-12-31T23:59:59.999999Z\"");
	assert_member(o, "not_before_usec", "7258118399999999");
	assert_member(o, "duration_s", "9007199254740991");
	text = cJSON_PrintUnformatted(o);
	parsed = cJSON_Parse(text);
	event_init(&back);
	assert_int_equal(event_doc_from_json(parsed, &back, &deadline, NULL, NULL), 0);
	assert_int_equal(back.not_before_usec, JSON_TIME_MAX_USEC);
	assert_int_equal(back.duration_sec, EVENT_DURATION_MAX_SEC);
	assert_int_equal(deadline, JSON_TIME_MAX_USEC);
	event_done(&back);
	cJSON_Delete(parsed);
	free(text);
	cJSON_Delete(o);

	/* Beyond them (only code could set such values) is clamped on the way
	 * out, so what is written still reads back. */
	ev.not_before_usec = UINT64_MAX;
	o = event_to_json(&ev, UINT64_MAX, false);
	assert_member(o, "not_before_usec", "7258118399999999");
	assert_member(o, "deadline_usec", "7258118399999999");
	event_init(&back);
	assert_int_equal(event_from_json(o, &back), 0);
	assert_int_equal(back.not_before_usec, JSON_TIME_MAX_USEC);
	event_done(&back);
	cJSON_Delete(o);

	/* Text is UTF-8 whatever was put in: bytes that are not become U+FFFD. */
	(void)strscpy(ev.description, sizeof(ev.description), "bad \xff byte");
	o = event_to_json(&ev, 0, false);
	assert_member(o, "description", "\"bad \xef\xbf\xbd byte\"");
	cJSON_Delete(o);
	event_done(&ev);
}

static void test_json_minimal_and_bad(void **state)
{
	static const char good[] =
		"{\"id\":\"a\",\"type\":\"Terminate\",\"status\":\"Scheduled\",\"source\":null,"
		"\"not_before\":null,\"not_before_usec\":null,\"resources\":[],\"description\":null,"
		"\"duration_s\":null,\"provider\":\"aws\",\"deadline\":null,\"deadline_usec\":null,"
		"\"drill\":false}";
	/* Each: a key of the good document and the value it gets instead
	 * (NULL: the key is left out). */
	static const struct {
		const char *key, *value;
	} bad[] = {
		{ "id", NULL }, { "id", "\"\"" }, { "id", "7" }, { "id", "\"a\\tb\"" }, { "id", "null" },
		{ "type", "\"Hibernate\"" }, { "type", "\"preempt\"" }, { "type", "null" },
		{ "status", "\"Completed\"" }, { "status", NULL },
		{ "source", "false" }, { "source", "\"\"" }, { "source", NULL },
		{ "not_before", "\"2016-09-19T18:29:47Z\"" },   /* not its _usec's form */
		{ "not_before_usec", "1474309787000000" },       /* without its string */
		{ "not_before_usec", "0" }, { "not_before_usec", "1.5" }, { "not_before_usec", "\"1\"" },
		{ "not_before_usec", "9007199254740993" },
		{ "resources", "\"vm\"" }, { "resources", "[\"vm\",1]" }, { "resources", "[\"\"]" },
		{ "resources", "null" }, { "resources", "[\"\xff\"]" },
		{ "description", "\"\"" }, { "description", "1" },
		{ "duration_s", "-1" }, { "duration_s", "1.5" }, { "duration_s", "\"5\"" },
		{ "duration_s", "9007199254740992" },
		{ "provider", "\"Azure\"" }, { "provider", "\"auto\"" }, { "provider", NULL },
		{ "deadline_usec", "7258118400000000" },         /* 2200-01-01 */
		{ "drill", "0" }, { "drill", NULL },
		{ "extra", "1" },
	};
	struct spot_event ev;
	struct json_err err;
	cJSON *o;

	o = cJSON_Parse(good);
	assert_non_null(o);
	event_init(&ev);
	assert_int_equal(event_from_json(o, &ev), 0);
	assert_string_equal(ev.id, "a");
	assert_int_equal(ev.type, EVENT_TERMINATE);
	assert_int_equal(ev.provider, PROVIDER_AWS);
	assert_int_equal(ev.not_before_usec, 0);
	assert_int_equal(ev.duration_sec, -1);
	assert_string_equal(ev.source, "");
	assert_string_equal(ev.description, "");
	assert_int_equal(ev.n_resources, 0);
	event_done(&ev);
	cJSON_Delete(o);

	assert_int_equal(event_from_json(NULL, &ev), -EINVAL);
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		o = cJSON_Parse(good);
		if (bad[i].value) {
			cJSON *v = cJSON_Parse(bad[i].value);

			assert_non_null(v);
			if (cJSON_HasObjectItem(o, bad[i].key))
				assert_true(cJSON_ReplaceItemInObjectCaseSensitive(o, bad[i].key, v));
			else
				cJSON_AddItemToObject(o, bad[i].key, v);
		} else {
			cJSON_DeleteItemFromObjectCaseSensitive(o, bad[i].key);
		}
		event_init(&ev);
		strscpy(ev.id, sizeof(ev.id), "untouched");
		memset(&err, 0, sizeof(err));
		if (event_doc_from_json(o, &ev, NULL, NULL, &err) != -EINVAL)
			fail_msg("accepted '%s' = %s", bad[i].key, bad[i].value ? bad[i].value : "(missing)");
		/* The defect is named. */
		if (!strstr(err.why, bad[i].key) && !strstr(err.why, "unknown"))
			fail_msg("'%s' = %s: defect '%s'", bad[i].key, bad[i].value ? bad[i].value : "-", err.why);
		assert_string_equal(ev.id, "untouched");
		assert_null(ev.resources);
		cJSON_Delete(o);
	}
}

static void test_copy_done(void **state)
{
	struct spot_event a, b, c;

	event_init(&a);
	assert_int_equal(a.type, EVENT_TYPE_INVALID);
	assert_int_equal(a.status, EVENT_STATUS_INVALID);
	assert_int_equal(a.duration_sec, -1);
	assert_null(a.resources);
	assert_int_equal(a.n_resources, 0);

	fill_event(&a);
	event_init(&b);
	event_copy(&b, &a);
	assert_true(event_equal(&a, &b));
	assert_ptr_not_equal(a.resources, b.resources);
	/* Deep: changing the source leaves the copy alone. */
	a.resources[0][0] = 'X';
	assert_string_equal(b.resources[0], "WestNO_0");
	assert_false(event_equal(&a, &b));

	/* Copying over an event that holds resources frees them (ASan checks). */
	event_copy(&b, &a);
	assert_true(event_equal(&a, &b));
	event_copy(&b, &b);
	assert_true(event_equal(&a, &b));

	/* No resources: no allocation shared or made. */
	event_init(&c);
	event_copy(&b, &c);
	assert_null(b.resources);
	assert_int_equal(b.n_resources, 0);
	assert_true(event_equal(&b, &c));

	event_done(&a);
	assert_null(a.resources);
	assert_int_equal(a.n_resources, 0);
	assert_int_equal(a.id[0], '\0');
	event_done(&a);   /* twice */
	event_done(NULL);
	event_done(&b);
	event_done(&c);
}

static void test_string_tables(void **state)
{
	enum provider p = PROVIDER_AUTO;

	for (int t = 0; t < _EVENT_TYPE_MAX; t++)
		assert_int_equal(event_type_from_string(event_type_to_string(t)), t);
	for (int s = 0; s < _EVENT_STATUS_MAX; s++)
		assert_int_equal(event_status_from_string(event_status_to_string(s)), s);
	for (int i = 0; i < _PROVIDER_MAX; i++) {
		assert_int_equal(provider_from_string(provider_to_string(i), &p), 0);
		assert_int_equal(p, i);
	}
	assert_string_equal(event_type_to_string(EVENT_PREEMPT), "Preempt");
	assert_string_equal(event_type_to_string(EVENT_TERMINATE), "Terminate");
	assert_string_equal(event_type_to_string(EVENT_REBOOT), "Reboot");
	assert_string_equal(event_type_to_string(EVENT_REDEPLOY), "Redeploy");
	assert_string_equal(event_type_to_string(EVENT_FREEZE), "Freeze");
	assert_string_equal(event_status_to_string(EVENT_SCHEDULED), "Scheduled");
	assert_string_equal(event_status_to_string(EVENT_STARTED), "Started");
	assert_string_equal(provider_to_string(PROVIDER_AZURE), "azure");
	assert_string_equal(provider_to_string(PROVIDER_AWS), "aws");
	assert_string_equal(provider_to_string(PROVIDER_GCP), "gcp");
	assert_string_equal(provider_to_string(PROVIDER_AUTO), "auto");

	assert_null(event_type_to_string(EVENT_TYPE_INVALID));
	assert_null(event_type_to_string(_EVENT_TYPE_MAX));
	assert_null(event_status_to_string(EVENT_STATUS_INVALID));
	assert_null(event_status_to_string(_EVENT_STATUS_MAX));
	assert_null(provider_to_string(_PROVIDER_MAX));
	assert_int_equal(event_type_from_string("preempt"), EVENT_TYPE_INVALID);
	assert_int_equal(event_type_from_string("Hibernate"), EVENT_TYPE_INVALID);
	assert_int_equal(event_type_from_string(""), EVENT_TYPE_INVALID);
	assert_int_equal(event_type_from_string(NULL), EVENT_TYPE_INVALID);
	assert_int_equal(event_status_from_string("started"), EVENT_STATUS_INVALID);
	assert_int_equal(event_status_from_string(NULL), EVENT_STATUS_INVALID);
	p = PROVIDER_GCP;
	assert_int_equal(provider_from_string("Azure", &p), -EINVAL);
	assert_int_equal(provider_from_string(NULL, &p), -EINVAL);
	assert_int_equal(p, PROVIDER_GCP);
}

static void test_names_resource(void **state)
{
	struct spot_event ev;

	make_event(&ev, EVENT_SCHEDULED, 0);
	assert_false(event_names_resource(&ev, "myspotvm"));
	assert_int_equal(event_add_resource(&ev, "FrontEnd_IN_0"), 0);
	assert_int_equal(event_add_resource(&ev, "myvmss_3"), 0);
	assert_true(event_names_resource(&ev, "FrontEnd_IN_0"));
	assert_true(event_names_resource(&ev, "frontend_in_0"));
	assert_true(event_names_resource(&ev, "FRONTEND_IN_0"));
	assert_true(event_names_resource(&ev, "MyVmSs_3"));
	assert_false(event_names_resource(&ev, "FrontEnd_IN"));
	assert_false(event_names_resource(&ev, "FrontEnd_IN_00"));
	assert_false(event_names_resource(&ev, "myvmss_4"));
	assert_false(event_names_resource(&ev, ""));
	assert_false(event_names_resource(&ev, NULL));
	assert_false(event_names_resource(NULL, "myvmss_3"));
	/* ASCII only: no folding of other bytes. */
	event_done(&ev);
	make_event(&ev, EVENT_SCHEDULED, 0);
	assert_int_equal(event_add_resource(&ev, "vm-\xc3\xa9"), 0);
	assert_true(event_names_resource(&ev, "VM-\xc3\xa9"));
	assert_false(event_names_resource(&ev, "vm-\xc3\x89"));
	event_done(&ev);
}

static void test_helpers(void **state)
{
	char id[EVENT_ID_MAX + 1];
	char buf[6];
	struct spot_event ev;

	/* set_text truncates on UTF-8 boundaries. */
	event_set_text(buf, sizeof(buf), "abcde");
	assert_string_equal(buf, "abcde");
	event_set_text(buf, sizeof(buf), "abcdef");
	assert_string_equal(buf, "abcde");
	event_set_text(buf, sizeof(buf), "abcd\xc3\xa9");     /* 2-byte char cut */
	assert_string_equal(buf, "abcd");
	event_set_text(buf, sizeof(buf), "a\xf0\x9f\x98\x80x");   /* 4-byte char fits */
	assert_string_equal(buf, "a\xf0\x9f\x98\x80");
	event_set_text(buf, sizeof(buf), "ab\xf0\x9f\x98\x80");   /* 4-byte char cut */
	assert_string_equal(buf, "ab");
	event_set_text(buf, 1, "abc");
	assert_string_equal(buf, "");

	/* ids */
	memset(id, 'a', sizeof(id));
	id[EVENT_ID_MAX - 1] = '\0';
	assert_true(event_id_valid(id));
	id[EVENT_ID_MAX - 1] = 'a';
	id[EVENT_ID_MAX] = '\0';
	assert_false(event_id_valid(id));
	assert_false(event_id_valid(""));
	assert_false(event_id_valid(NULL));
	assert_false(event_id_valid("a\tb"));
	assert_false(event_id_valid("a\x7f"));
	assert_true(event_id_valid("602d9444-d2cd-49c7-8624-8643e7171297"));
	/* An id must read back byte for byte, so it must be UTF-8. */
	assert_true(event_id_valid("caf\xc3\xa9"));
	assert_false(event_id_valid("caf\xe9"));
	assert_false(event_id_valid("\xed\xa0\x80"));   /* a surrogate */

	/* Text that is not UTF-8 is made so where it enters. */
	event_set_text(buf, sizeof(buf), "a\xff" "b");
	assert_string_equal(buf, "a\xef\xbf\xbd" "b");
	event_set_text(buf, sizeof(buf), "ab\xff\xff");     /* the second does not fit */
	assert_string_equal(buf, "ab\xef\xbf\xbd");

	/* Notes quote what a service sent, on one line. */
	event_init(&ev);
	event_set_note(&ev, "NotBefore '%s' is unreadable", "x\ny\x01\xff");
	assert_string_equal(ev.note, "NotBefore 'x?y?\xef\xbf\xbd' is unreadable");
	{
		char longer[2 * EVENT_NOTE_MAX];

		memset(longer, 'z', sizeof(longer) - 1);
		longer[sizeof(longer) - 1] = '\0';
		event_set_note(&ev, "%s", longer);
		assert_int_equal(strlen(ev.note), EVENT_NOTE_MAX - 1);
	}
	event_done(&ev);

	/* resources cap */
	event_init(&ev);
	for (int i = 0; i < EVENT_RESOURCES_MAX; i++) {
		char name[16];

		snprintf(name, sizeof(name), "vm%d", i);
		assert_int_equal(event_add_resource(&ev, name), 0);
	}
	assert_int_equal(event_add_resource(&ev, "one-too-many"), -E2BIG);
	assert_int_equal(ev.n_resources, EVENT_RESOURCES_MAX);
	assert_string_equal(ev.resources[EVENT_RESOURCES_MAX - 1], "vm63");
	event_done(&ev);
	{
		char name[EVENT_RESOURCE_MAX + 1];

		memset(name, 'n', sizeof(name));
		name[EVENT_RESOURCE_MAX] = '\0';
		assert_int_equal(event_add_resource(&ev, name), -EINVAL);
		name[EVENT_RESOURCE_MAX - 1] = '\0';
		assert_int_equal(event_add_resource(&ev, name), 0);
		assert_int_equal(strlen(ev.resources[0]), EVENT_RESOURCE_MAX - 1);
	}
	assert_int_equal(event_add_resource(&ev, ""), -EINVAL);
	assert_int_equal(ev.n_resources, 1);
	assert_int_equal(event_add_resource(&ev, "vm-\xc0"), 0);
	assert_string_equal(ev.resources[1], "vm-\xef\xbf\xbd");
	event_done(&ev);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_time_good),
		cmocka_unit_test(test_parse_time_bad),
		cmocka_unit_test(test_parse_time_environment),
		cmocka_unit_test(test_format_time),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_json_minimal_and_bad),
		cmocka_unit_test(test_copy_done),
		cmocka_unit_test(test_string_tables),
		cmocka_unit_test(test_names_resource),
		cmocka_unit_test(test_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
