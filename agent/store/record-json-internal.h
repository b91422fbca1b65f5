/* record-json-internal.h - between record-json.c (the record, its
 * notices) and hook-json.c (a hook's result). Not for other modules: they
 * see record-json.h. */
#ifndef SPOT_STORE_RECORD_JSON_INTERNAL_H
#define SPOT_STORE_RECORD_JSON_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engine/record.h"
#include "store/json.h"
#include "store/record-json.h"

/* ---- record-json.c ---- */

/* Microseconds of a duration as a JSON integer, 0 meaning none. */
int64_t usec_int(uint64_t usec);
/* Puts "<context>: " in front of the defect recorded so far. */
void err_context(struct json_err *err, const char *fmt, ...) _printf_(2, 3);

/* ---- hook-json.c ---- */

cJSON *hooks_to_json(const struct hook_result *hooks, size_t n, bool with_output, enum record_form form);
/* Reads an array of hooks (owned by *ret on success; on failure nothing is
 * left to free). */
int hooks_from_json(const cJSON *a, struct hook_result **ret, size_t *ret_n, struct json_err *err);

#endif
