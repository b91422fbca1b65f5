/* test-json.c - the JSON conventions: integers exact both ways, instants as
 * a string and microseconds that must agree, null for absent, UTF-8 text,
 * strict getters that name the defect. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/json.h"
#include "util.h"

static char *printed(const cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);

	assert_non_null(s);
	return s;
}

static void assert_printed(const cJSON *o, const char *want)
{
	char *s = printed(o);

	assert_string_equal(s, want);
	cJSON_free(s);
}

static void test_integers(void **state)
{
	static const struct {
		int64_t v, min, max;
		const char *text;
	} cases[] = {
		{ 0, 0, JSON_INT_MAX, "0" },
		{ INT64_C(2147483648), 0, JSON_INT_MAX, "2147483648" },            /* above 2^31 */
		{ INT64_C(1796111437658460), 0, JSON_INT_MAX, "1796111437658460" }, /* cJSON: 1.79611143765846e+15 */
		{ JSON_INT_MAX, 0, JSON_INT_MAX, "9007199254740991" },
		{ INT64_MAX, 0, INT64_MAX, "9007199254740991" },                  /* clamped to 2^53 - 1 */
		{ -JSON_INT_MAX, INT64_MIN, 0, "-9007199254740991" },
		{ 300, 0, 255, "255" },
		{ -7, 0, 255, "0" },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		cJSON *o = json_object_new(), *parsed;
		char *text;
		int64_t back = 42;

		json_add_int(o, "n", cases[i].v, cases[i].min, cases[i].max);
		text = printed(o);
		{
			char want[48];

			(void)snprintf(want, sizeof(want), "{\"n\":%s}", cases[i].text);
			assert_string_equal(text, want);
		}
		/* Read back from the object in memory and from its text. */
		assert_int_equal(json_get_int(NULL, o, "n", -JSON_INT_MAX, JSON_INT_MAX, &back), 0);
		parsed = cJSON_Parse(text);
		assert_non_null(parsed);
		{
			int64_t again = 43;

			assert_int_equal(json_get_int(NULL, parsed, "n", -JSON_INT_MAX, JSON_INT_MAX, &again), 0);
			assert_int_equal(again, back);
		}
		cJSON_Delete(parsed);
		cJSON_free(text);
		cJSON_Delete(o);
	}
}

static void test_integer_reading(void **state)
{
	static const struct {
		const char *doc;
		int r;
	} cases[] = {
		{ "{\"n\":12}", 0 },
		{ "{\"n\":-12}", 0 },
		{ "{\"n\":9007199254740991}", 0 },
		{ "{\"n\":1.2e3}", 0 },                 /* an exact integer, whatever its spelling */
		{ "{\"n\":9007199254740992}", -EBADMSG },  /* a double cannot tell it from 2^53 + 1 */
		{ "{\"n\":9007199254740993}", -EBADMSG },
		{ "{\"n\":1.5}", -EBADMSG },
		{ "{\"n\":\"12\"}", -EBADMSG },
		{ "{\"n\":null}", -EBADMSG },
		{ "{\"n\":true}", -EBADMSG },
		{ "{\"m\":1}", -EBADMSG },
	};
	struct json_err err;

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		cJSON *o = cJSON_Parse(cases[i].doc);
		int64_t v = 7;

		memset(&err, 0, sizeof(err));
		assert_non_null(o);
		if (json_get_int(&err, o, "n", -JSON_INT_MAX, JSON_INT_MAX, &v) != cases[i].r)
			fail_msg("%s: not %d", cases[i].doc, cases[i].r);
		if (cases[i].r < 0) {
			assert_int_equal(v, 7);
			assert_non_null(strstr(err.why, "'n'"));
		}
		cJSON_Delete(o);
	}

	/* Ranges, null, and digits built in memory that are not ours. */
	{
		cJSON *o = cJSON_Parse("{\"a\":5,\"b\":null}");
		int64_t v;

		assert_int_equal(json_get_int(NULL, o, "a", 6, 10, &v), -EBADMSG);
		assert_int_equal(json_get_int_or_null(NULL, o, "b", 0, 10, -1, &v), 0);
		assert_int_equal(v, -1);
		cJSON_AddItemToObject(o, "raw", cJSON_CreateRaw("012"));
		assert_int_equal(json_get_int(NULL, o, "raw", 0, 100, &v), -EBADMSG);
		cJSON_AddItemToObject(o, "big", cJSON_CreateRaw("99999999999999999999"));
		assert_int_equal(json_get_int(NULL, o, "big", 0, JSON_INT_MAX, &v), -EBADMSG);
		cJSON_Delete(o);
	}
}

static void test_instants(void **state)
{
	cJSON *o = json_object_new();
	char buf[JSON_TIME_LEN];
	struct json_err err;
	uint64_t v;

	assert_string_equal(json_format_time(buf, sizeof(buf), 1), "1970-01-01T00:00:00.000001Z");
	assert_string_equal(json_format_time(buf, sizeof(buf), UINT64_C(1795761030000000)),
			    "2026-11-27T06:30:30.000000Z");
	assert_string_equal(json_format_time(buf, sizeof(buf), JSON_TIME_MAX_USEC), "2199-12-31T23:59:59.999999Z");
	assert_string_equal(json_format_time(buf, sizeof(buf), UINT64_MAX), "2199-12-31T23:59:59.999999Z");
	assert_string_equal(json_format_time(buf, sizeof(buf), 0), "");

	json_add_instant(o, "at", UINT64_C(1795761030123456));
	json_add_instant(o, "none", 0);
	json_add_instant(o, "far", UINT64_MAX);
	assert_printed(o, "{\"at\":\"2026-11-27T06:30:30.123456Z\",\"at_usec\":1795761030123456,"
		       "\"none\":null,\"none_usec\":null,"
		       "\"far\":\"2199-12-31T23:59:59.999999Z\",\"far_usec\":7258118399999999}");
	assert_int_equal(json_get_instant(NULL, o, "at", &v), 0);
	assert_int_equal(v, UINT64_C(1795761030123456));
	assert_int_equal(json_get_instant(NULL, o, "none", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(json_get_instant(NULL, o, "far", &v), 0);
	assert_int_equal(v, JSON_TIME_MAX_USEC);
	cJSON_Delete(o);

	/* The two halves must agree. */
	{
		static const char *const bad[] = {
			"{\"t\":\"2026-11-27T06:30:30Z\",\"t_usec\":1795761030000000}",
			"{\"t\":\"2026-11-27T06:30:31.000000Z\",\"t_usec\":1795761030000000}",
			"{\"t\":null,\"t_usec\":1795761030000000}",
			"{\"t\":\"2026-11-27T06:30:30.000000Z\",\"t_usec\":null}",
			"{\"t\":\"2026-11-27T06:30:30.000000Z\"}",
			"{\"t\":null,\"t_usec\":0}",
			"{\"t\":\"2200-01-01T00:00:00.000000Z\",\"t_usec\":7258118400000000}",
		};

		for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
			o = cJSON_Parse(bad[i]);
			memset(&err, 0, sizeof(err));
			if (json_get_instant(&err, o, "t", &v) != -EBADMSG)
				fail_msg("accepted %s", bad[i]);
			assert_true(err.why[0]);
			cJSON_Delete(o);
		}
	}
}

static void test_text(void **state)
{
	char buf[8];
	cJSON *o = json_object_new();

	assert_true(utf8_valid(""));
	assert_true(utf8_valid("caf\xc3\xa9 \xf0\x9f\x9a\x80"));
	assert_false(utf8_valid("\xc3"));
	assert_false(utf8_valid("\xc0\xaf"));           /* overlong */
	assert_false(utf8_valid("\xed\xa0\x80"));       /* surrogate */
	assert_false(utf8_valid("\xf4\x90\x80\x80"));   /* above U+10FFFF */
	assert_false(utf8_valid("\xff"));

	assert_int_equal(utf8_copy(buf, sizeof(buf), "a\xff" "b"), 5);
	assert_string_equal(buf, "a\xef\xbf\xbd" "b");
	/* Cut at a character boundary: 7 bytes fit, the emoji's 4 do not. */
	assert_int_equal(utf8_copy(buf, sizeof(buf), "abcd\xf0\x9f\x9a\x80"), 4);
	assert_string_equal(buf, "abcd");
	assert_int_equal(utf8_copy(buf, 1, "abc"), 0);
	assert_string_equal(buf, "");

	/* Absent is null, never "". */
	json_add_text(o, "empty", "", 0);
	json_add_text(o, "none", NULL, 0);
	json_add_text(o, "bad", "x\xfe", 0);
	json_add_text(o, "cut", "abcdefgh", 4);
	json_add_bytes(o, "raw", "x\xfe");
	assert_printed(o, "{\"empty\":null,\"none\":null,\"bad\":\"x\xef\xbf\xbd\",\"cut\":\"abc\",\"raw\":\"x\xfe\"}");
	{
		char got[16];

		assert_int_equal(json_get_text(NULL, o, "empty", true, got, sizeof(got)), 0);
		assert_string_equal(got, "");
		assert_int_equal(json_get_text(NULL, o, "empty", false, got, sizeof(got)), -EBADMSG);
		assert_int_equal(json_get_text(NULL, o, "bad", false, got, sizeof(got)), 0);
		assert_int_equal(json_get_text(NULL, o, "raw", false, got, sizeof(got)), -EBADMSG);
		assert_int_equal(json_get_bytes(NULL, o, "raw", got, sizeof(got)), 0);
		assert_string_equal(got, "x\xfe");
		assert_int_equal(json_get_text(NULL, o, "bad", false, got, 3), -EBADMSG);  /* does not fit */
	}
	cJSON_Delete(o);
}

static void test_keys(void **state)
{
	static const char *const keys[] = { "a", "b" };
	static const struct {
		const char *doc;
		const char *why;
	} cases[] = {
		{ "{\"a\":1,\"b\":2}", NULL },
		{ "{\"b\":2,\"a\":1}", NULL },
		{ "{\"a\":1}", "'b' missing" },
		{ "{\"a\":1,\"b\":2,\"c\":3}", "unknown field 'c'" },
		{ "{\"a\":1,\"a\":2}", "'b' missing" },
		{ "{\"a\":1,\"b\":2,\"b\":3}", "a field given twice" },
		{ "[1,2]", "not an object" },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		cJSON *o = cJSON_Parse(cases[i].doc);
		struct json_err err = { "" };
		int r = json_check_keys(&err, o, keys, ELEMENTSOF(keys));

		if (!cases[i].why)
			assert_int_equal(r, 0);
		else if (r != -EBADMSG || strcmp(err.why, cases[i].why) != 0)
			fail_msg("%s: %d '%s'", cases[i].doc, r, err.why);
		cJSON_Delete(o);
	}
	/* The first defect is the one kept. */
	{
		struct json_err err = { "" };

		(void)json_fail(&err, "first %d", 1);
		(void)json_fail(&err, "second");
		assert_string_equal(err.why, "first 1");
		assert_int_equal(json_fail(NULL, "none"), -EBADMSG);
	}
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_integer_reading),
		cmocka_unit_test(test_instants),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
