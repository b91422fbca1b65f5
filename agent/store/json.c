/* json.c - the conventions every JSON document of the agent follows: exact
 * integers (cJSON holds numbers as doubles and would print 1.7961e+15),
 * instants as RFC 3339 plus microseconds, null for absent, UTF-8 text. The
 * builders abort when out of memory, like xmalloc; the getters are strict
 * and say what was wrong. Pure: no I/O beyond the abort message, no
 * logging, no locale or TZ. */
#include "store/json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define JSON_KEY_MAX 64    /* longest key name, with its "_usec" */

static cJSON *check(cJSON *item)
{
	if (!item) {
		static const char msg[] = "spot-agent: out of memory\n";

		(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
		abort();
	}
	return item;
}

char *json_format_time(char *buf, size_t n, uint64_t wall_usec)
{
	if (wall_usec == 0) {
		if (n > 0)
			buf[0] = '\0';
		return buf;
	}
	if (wall_usec > JSON_TIME_MAX_USEC)
		wall_usec = JSON_TIME_MAX_USEC;
	return format_rfc3339_frac(buf, n, wall_usec, 6);
}




/* ---- building ---- */

cJSON *json_object_new(void)
{
	return check(cJSON_CreateObject());
}

cJSON *json_array_new(void)
{
	return check(cJSON_CreateArray());
}

void json_add(cJSON *o, const char *key, cJSON *item)
{
	check(item);
	if (!cJSON_AddItemToObject(o, key, item))
		check(NULL);
}

void json_append(cJSON *array, cJSON *item)
{
	check(item);
	if (!cJSON_AddItemToArray(array, item))
		check(NULL);
}

cJSON *json_int_new(int64_t v, int64_t min, int64_t max)
{
	char digits[24];

	if (min < -JSON_INT_MAX)
		min = -JSON_INT_MAX;
	if (max > JSON_INT_MAX)
		max = JSON_INT_MAX;
	if (v < min)
		v = min;
	if (v > max)
		v = max;
	/* Raw: cJSON copies the digits as they are, never through a double. */
	(void)snprintf(digits, sizeof(digits), "%" PRId64, v);
	return check(cJSON_CreateRaw(digits));
}

void json_add_int(cJSON *o, const char *key, int64_t v, int64_t min, int64_t max)
{
	json_add(o, key, json_int_new(v, min, max));
}

void json_add_int_or_null(cJSON *o, const char *key, int64_t v, int64_t min, int64_t max,
			  int64_t if_null)
{
	if (v == if_null)
		json_add_null(o, key);
	else
		json_add_int(o, key, v, min, max);
}

void json_add_count(cJSON *o, const char *key, uint64_t v)
{
	json_add_int(o, key, v > (uint64_t)JSON_INT_MAX ? JSON_INT_MAX : (int64_t)v, 0, JSON_INT_MAX);
}

void json_add_bool(cJSON *o, const char *key, bool v)
{
	json_add(o, key, cJSON_CreateBool(v));
}

void json_add_null(cJSON *o, const char *key)
{
	json_add(o, key, cJSON_CreateNull());
}

cJSON *json_text_new(const char *s, size_t max)
{
	size_t len;
	char *clean;
	cJSON *item;

	if (!s)
		return check(cJSON_CreateNull());
	len = strlen(s);
	if ((max == 0 || len < max) && utf8_valid(s))
		return check(cJSON_CreateString(s));
	/* Each invalid byte becomes three. */
	if (max == 0 || max > 3 * len + 1)
		max = 3 * len + 1;
	clean = xmalloc(max);
	(void)utf8_copy(clean, max, s);
	item = check(cJSON_CreateString(clean));
	free(clean);
	return item;
}

void json_add_text(cJSON *o, const char *key, const char *s, size_t max)
{
	json_add(o, key, json_text_new(s && s[0] ? s : NULL, max));
}

void json_add_bytes(cJSON *o, const char *key, const char *s)
{
	json_add(o, key, s ? cJSON_CreateString(s) : cJSON_CreateNull());
}

void json_add_instant(cJSON *o, const char *key, uint64_t wall_usec)
{
	char name[JSON_KEY_MAX], text[JSON_TIME_LEN];

	(void)snprintf(name, sizeof(name), "%s_usec", key);
	if (wall_usec == 0) {
		json_add_null(o, key);
		json_add_null(o, name);
		return;
	}
	if (wall_usec > JSON_TIME_MAX_USEC)
		wall_usec = JSON_TIME_MAX_USEC;
	json_add(o, key, cJSON_CreateString(json_format_time(text, sizeof(text), wall_usec)));
	json_add_int(o, name, (int64_t)wall_usec, 1, (int64_t)JSON_TIME_MAX_USEC);
}

/* ---- reading ---- */

int json_fail(struct json_err *err, const char *fmt, ...)
{
	va_list ap;

	if (err && !err->why[0]) {
		va_start(ap, fmt);
		(void)vsnprintf(err->why, sizeof(err->why), fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

int json_check_keys(struct json_err *err, const cJSON *o, const char *const *keys, size_t n)
{
	const cJSON *item;
	size_t count = 0;

	if (!cJSON_IsObject(o))
		return json_fail(err, "not an object");
	cJSON_ArrayForEach(item, o) {
		bool known = false;

		for (size_t i = 0; i < n && !known; i++)
			known = item->string && strcmp(item->string, keys[i]) == 0;
		if (!known)
			return json_fail(err, "unknown field '%.40s'", item->string ? item->string : "");
		count++;
	}
	for (size_t i = 0; i < n; i++)
		if (!cJSON_GetObjectItemCaseSensitive(o, keys[i]))
			return json_fail(err, "'%s' missing", keys[i]);
	/* Every child is known and every key is there: more children than
	 * keys means one of them twice. */
	if (count != n)
		return json_fail(err, "a field given twice");
	return 0;
}

/* Decimal digits as json_int_new writes them: an optional '-', no leading
 * zero, nothing else. */
static int parse_digits(const char *s, int64_t *ret)
{
	bool negative = *s == '-';
	uint64_t v = 0;

	if (negative)
		s++;
	if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] != '\0'))
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > (uint64_t)JSON_INT_MAX)
			return -ERANGE;
	}
	*ret = negative ? -(int64_t)v : (int64_t)v;
	return 0;
}

/* The integer an item holds: -EINVAL when it is not one, -ERANGE beyond
 * +-JSON_INT_MAX (a double that large may be a neighbour rounded). */
static int item_int(const cJSON *v, int64_t *ret)
{
	double d;

	if (cJSON_IsRaw(v))
		return v->valuestring ? parse_digits(v->valuestring, ret) : -EINVAL;
	if (!cJSON_IsNumber(v))
		return -EINVAL;
	d = v->valuedouble;
	if (!(d >= -(double)JSON_INT_MAX && d <= (double)JSON_INT_MAX))
		return -ERANGE;
	if ((double)(int64_t)d != d)
		return -EINVAL;
	*ret = (int64_t)d;
	return 0;
}

static int get_int(struct json_err *err, const cJSON *o, const char *key, int64_t min, int64_t max,
		   bool nullable, int64_t if_null, int64_t *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	int64_t x;
	int r;

	if (!v)
		return json_fail(err, "'%s' missing", key);
	if (nullable && cJSON_IsNull(v)) {
		*ret = if_null;
		return 0;
	}
	r = item_int(v, &x);
	if (r == -ERANGE)
		return json_fail(err, "'%s' is beyond +-(2^53 - 1), which a JSON number holds exactly", key);
	if (r < 0)
		return json_fail(err, "'%s' is not an integer%s", key, nullable ? " or null" : "");
	if (x < min || x > max)
		return json_fail(err, "'%s' is %" PRId64 ", outside [%" PRId64 ", %" PRId64 "]", key, x, min,
				 max);
	*ret = x;
	return 0;
}

int json_get_int(struct json_err *err, const cJSON *o, const char *key, int64_t min, int64_t max,
		 int64_t *ret)
{
	return get_int(err, o, key, min, max, false, 0, ret);
}

int json_get_int_or_null(struct json_err *err, const cJSON *o, const char *key, int64_t min,
			 int64_t max, int64_t if_null, int64_t *ret)
{
	return get_int(err, o, key, min, max, true, if_null, ret);
}

int json_get_bool(struct json_err *err, const cJSON *o, const char *key, bool *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsBool(v))
		return json_fail(err, "'%s' is not true or false", key);
	*ret = cJSON_IsTrue(v);
	return 0;
}

int json_get_text(struct json_err *err, const cJSON *o, const char *key, bool nullable, char *buf,
		  size_t n)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (nullable && cJSON_IsNull(v)) {
		if (buf && n > 0)
			buf[0] = '\0';
		return 0;
	}
	if (!cJSON_IsString(v) || !v->valuestring)
		return json_fail(err, "'%s' is not a string%s", key, nullable ? " or null" : "");
	/* "" is never written for text: absent is null. */
	if (!v->valuestring[0])
		return json_fail(err, "'%s' is empty", key);
	if (!utf8_valid(v->valuestring))
		return json_fail(err, "'%s' is not UTF-8", key);
	if (strlen(v->valuestring) >= n)
		return json_fail(err, "'%s' is longer than %zu bytes", key, n - 1);
	if (buf)
		memcpy(buf, v->valuestring, strlen(v->valuestring) + 1);
	return 0;
}

int json_get_bytes(struct json_err *err, const cJSON *o, const char *key, char *buf, size_t n)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsString(v) || !v->valuestring)
		return json_fail(err, "'%s' is not a string", key);
	if (!v->valuestring[0])
		return json_fail(err, "'%s' is empty", key);
	if (strscpy(buf, n, v->valuestring) < 0)
		return json_fail(err, "'%s' is longer than %zu bytes", key, n - 1);
	return 0;
}

int json_get_instant(struct json_err *err, const cJSON *o, const char *key, uint64_t *ret)
{
	char name[JSON_KEY_MAX], want[JSON_TIME_LEN];
	const cJSON *text;
	int64_t usec;
	int r;

	(void)snprintf(name, sizeof(name), "%s_usec", key);
	r = json_get_int_or_null(err, o, name, 1, (int64_t)JSON_TIME_MAX_USEC, 0, &usec);
	if (r < 0)
		return r;
	text = cJSON_GetObjectItemCaseSensitive(o, key);
	if (usec == 0) {
		if (!cJSON_IsNull(text))
			return json_fail(err, "'%s' is not null as '%s' is", key, name);
	} else {
		(void)json_format_time(want, sizeof(want), (uint64_t)usec);
		if (!cJSON_IsString(text) || !text->valuestring || strcmp(text->valuestring, want) != 0)
			return json_fail(err, "'%s' is not '%s' = %" PRId64 " (%s)", key, name, usec, want);
	}
	*ret = (uint64_t)usec;
	return 0;
}
