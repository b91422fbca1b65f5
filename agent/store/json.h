/* json.h - the conventions every JSON document of the agent follows (the
 * hooks' stdin, /v1/status, state.json): integers written as integers and
 * read back exactly, instants as an RFC 3339 string plus microseconds,
 * null for what is absent, text that is UTF-8. */
#ifndef SPOT_JSON_H
#define SPOT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "util.h"

/* "2026-11-27T06:30:30.000000Z": UTC, always six fraction digits. */
#define JSON_TIME_LEN 28   /* with the NUL */

/* Formats an instant (clamped to JSON_TIME_MAX_USEC) as above; "" for 0.
 * Returns buf (n >= JSON_TIME_LEN). */
char *json_format_time(char *buf, size_t n, uint64_t wall_usec);

/* ---- building: every function aborts when out of memory, as xmalloc ---- */

cJSON *json_object_new(void);
cJSON *json_array_new(void);
/* Adds item (owned by o from then on) under key. */
void json_add(cJSON *o, const char *key, cJSON *item);
/* Appends item to an array. */
void json_append(cJSON *array, cJSON *item);

/* An integer, written as digits, clamped to [min, max] (within
 * +-JSON_INT_MAX). */
cJSON *json_int_new(int64_t v, int64_t min, int64_t max);
void json_add_int(cJSON *o, const char *key, int64_t v, int64_t min, int64_t max);
/* The same, or null when v == if_null. */
void json_add_int_or_null(cJSON *o, const char *key, int64_t v, int64_t min, int64_t max,
			  int64_t if_null);
/* Counters and sizes: [0, JSON_INT_MAX]. */
void json_add_count(cJSON *o, const char *key, uint64_t v);
void json_add_bool(cJSON *o, const char *key, bool v);
void json_add_null(cJSON *o, const char *key);
/* Text as utf8_copy into max bytes (0: no limit), so it reads back
 * into a buffer of that size; null for NULL. */
cJSON *json_text_new(const char *s, size_t max);
/* The same as a field: null for NULL and "" (absent is never ""). */
void json_add_text(cJSON *o, const char *key, const char *s, size_t max);
/* A string byte for byte, NULL as null: only for names the agent must
 * recognise again after a restart (hook files), whatever bytes they hold. */
void json_add_bytes(cJSON *o, const char *key, const char *s);
/* An instant: key (json_format_time) and key_usec, both null for 0. */
void json_add_instant(cJSON *o, const char *key, uint64_t wall_usec);

/* ---- reading: strict, each getter names what was wrong in err ---- */

/* The first defect found while reading a document, for a log line. */
struct json_err {
	char why[160];
};
/* Records the first defect (later ones are ignored); returns -EBADMSG. */
int json_fail(struct json_err *err, const char *fmt, ...) _printf_(2, 3);

/* o is an object holding exactly the n keys (no other, none twice). */
int json_check_keys(struct json_err *err, const cJSON *o, const char *const *keys, size_t n);

/* An integer in [min, max] (within +-JSON_INT_MAX); null gives if_null
 * when nullable. A value cJSON parsed is exact in that range; one built in
 * memory (json_int_new) is read from its digits. */
int json_get_int(struct json_err *err, const cJSON *o, const char *key, int64_t min, int64_t max,
		 int64_t *ret);
int json_get_int_or_null(struct json_err *err, const cJSON *o, const char *key, int64_t min,
			 int64_t max, int64_t if_null, int64_t *ret);
int json_get_bool(struct json_err *err, const cJSON *o, const char *key, bool *ret);
/* UTF-8 text that fits buf (n bytes with the NUL); null gives "" when
 * nullable. buf may be NULL to check only. */
int json_get_text(struct json_err *err, const cJSON *o, const char *key, bool nullable, char *buf,
		  size_t n);
/* Any non-empty string that fits buf. */
int json_get_bytes(struct json_err *err, const cJSON *o, const char *key, char *buf, size_t n);
/* An instant: key_usec in [1, JSON_TIME_MAX_USEC] and key its
 * json_format_time, or both null (0). */
int json_get_instant(struct json_err *err, const cJSON *o, const char *key, uint64_t *ret);

#endif
