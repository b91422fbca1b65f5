/* record-json.h - an eviction record in JSON (store/json.h's conventions),
 * as state.json keeps it and /v1/status shows it, and read back exactly. */
#ifndef SPOT_STORE_RECORD_JSON_H
#define SPOT_STORE_RECORD_JSON_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "engine/record.h"
#include "store/json.h"

/* The form: what state.json holds, or what /v1/status shows (hook names as
 * UTF-8 text, an "error" per hook, approval only where one is sent). */
enum record_form {
	RECORD_FILE,
	RECORD_STATUS,
};

/* Adds the record's fields to o (spot-agent(8) lists them): with_output
 * false leaves the hooks' output lines out. */
void record_add_fields(cJSON *o, const struct eviction *r, bool with_output, enum record_form form);
/* The record as state.json keeps it. Caller owns it. */
cJSON *record_to_json(const struct eviction *r, bool with_output);
/* Reads back exactly what record_to_json writes; *ret is written only on
 * success. Returns 0 or -EBADMSG with the first defect in err (may be
 * NULL). A hook saved as running (the agent died during it) reads back
 * pending: it runs again. */
int record_from_json(const cJSON *o, struct eviction *ret, struct json_err *err);
/* The record's keys, in the order they are written (the status document
 * shows each as null when there is no eviction). */
extern const char *const record_keys[];
extern const size_t record_n_keys;

/* The event document for a hook's stdin: the lead notice's event with the
 * record's id, as the engine noted it when the hook started
 * (eviction_note_seen; as first seen before that). Caller frees. */
char *record_stdin(struct eviction *r);

/* One line of a hook's error in words, for /v1/status: its record text, or
 * NULL when there is none. */
const char *record_hook_error(const struct hook_result *h);

#endif
