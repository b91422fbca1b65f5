/* hook-json.c - a hook's result as JSON, for record-json.c: its fields,
 * the report it left in SPOT_REPORT and its output lines, written by one
 * set of functions for state.json and /v1/status alike and read back as
 * strictly as the record around it. A hook saved as running reads back
 * pending: it runs again. It never logs and decides nothing.
 *
 * <hook>: name, path, result, exit_status, signal, timed_out,
 *   started(_usec), duration_usec, budget_usec, skip_reason, error, report,
 *   output, output_bytes.
 * Its name and path are UTF-8 text in /v1/status but kept byte for byte
 * in state.json: a hook is recognised by its file name after a restart. */
#include "store/record-json-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HOOK_EXIT_MAX       255
#define HOOK_SIGNAL_MAX     127   /* what a wait status can carry */
#define REPORT_VALUE_MAX    JSON_INT_MAX

static const char *const hook_keys[] = {
	"name", "path", "result", "exit_status", "signal", "timed_out", "started", "started_usec",
	"duration_usec", "budget_usec", "skip_reason", "error", "report", "output", "output_bytes",
};
static const char *const report_keys[] = {
	"lost_work_seconds", "checkpoint_bytes", "jobs_requeued", "abandon",
};

/* ---- writing ---- */

static void add_output_line(const char *line, void *userdata)
{
	/* Lines read back through hook_result_add_line, which keeps
	 * HOOK_LINE_MAX bytes: they are written that short. */
	json_append(userdata, json_text_new(line, HOOK_LINE_MAX + 1));
}

const char *record_hook_error(const struct hook_result *h)
{
	return h->error[0] ? h->error : NULL;
}

static cJSON *report_to_json(const struct hook_report *rep)
{
	struct hook_report r = *rep;
	cJSON *o = json_object_new();

	for (enum report_key k = 0; k < _REPORT_KEY_MAX; k++) {
		uint64_t v = *hook_report_value(&r, k);

		if (*hook_report_has(&r, k))
			json_add_int(o, report_key_to_string(k),
				     (int64_t)(v > (uint64_t)REPORT_VALUE_MAX ? (uint64_t)REPORT_VALUE_MAX : v),
				     0, REPORT_VALUE_MAX);
		else
			json_add_null(o, report_key_to_string(k));
	}
	json_add_bool(o, "abandon", rep->abandon);
	return o;
}

static cJSON *hook_to_json(const struct hook_result *h, bool with_output, enum record_form form)
{
	cJSON *o = json_object_new(), *output = json_array_new();

	if (form == RECORD_STATUS) {
		json_add_text(o, "name", h->name, sizeof(h->name));
		json_add_text(o, "path", h->path, sizeof(h->path));
	} else {
		json_add_bytes(o, "name", h->name);
		json_add_bytes(o, "path", h->path);
	}
	json_add_text(o, "result", hook_outcome_to_string(h->outcome), 0);
	json_add_int_or_null(o, "exit_status", h->exit_status, 0, HOOK_EXIT_MAX, -1);
	json_add_int_or_null(o, "signal", h->term_signal, 1, HOOK_SIGNAL_MAX, 0);
	json_add_bool(o, "timed_out", h->timed_out);
	json_add_instant(o, "started", h->start_wall_usec);
	json_add_int_or_null(o, "duration_usec", usec_int(h->duration_usec), 1, JSON_INT_MAX, 0);
	json_add_int_or_null(o, "budget_usec", usec_int(h->budget_usec), 1, JSON_INT_MAX, 0);
	json_add_text(o, "skip_reason", h->skip_reason, sizeof(h->skip_reason));
	json_add_text(o, "error", h->error, sizeof(h->error));
	json_add(o, "report", report_to_json(&h->report));
	if (with_output)
		hook_result_foreach_line(h, add_output_line, output);
	json_add(o, "output", output);
	json_add_count(o, "output_bytes", h->output_bytes);
	return o;
}

cJSON *hooks_to_json(const struct hook_result *hooks, size_t n, bool with_output, enum record_form form)
{
	cJSON *a = json_array_new();

	for (size_t i = 0; i < n; i++)
		json_append(a, hook_to_json(&hooks[i], with_output, form));
	return a;
}

/* ---- reading back ---- */

static int report_from_json(const cJSON *o, struct hook_report *rep, struct json_err *err)
{
	if (json_check_keys(err, o, report_keys, ELEMENTSOF(report_keys)) < 0 ||
	    json_get_bool(err, o, "abandon", &rep->abandon) < 0)
		return -EBADMSG;
	for (enum report_key k = 0; k < _REPORT_KEY_MAX; k++) {
		int64_t v;

		if (json_get_int_or_null(err, o, report_key_to_string(k), 0, REPORT_VALUE_MAX, -1, &v) < 0)
			return -EBADMSG;
		if (v >= 0) {
			*hook_report_has(rep, k) = true;
			*hook_report_value(rep, k) = (uint64_t)v;
		}
	}
	return 0;
}

/* Fills h from o. On success h holds owned lines (hook_result_done frees
 * them); on failure nothing is left to free. */
static int hook_from_json(const cJSON *o, struct hook_result *h, struct json_err *err)
{
	char name[HOOK_NAME_MAX], path[PATH_MAX], result[16];
	int64_t exit_status, term_signal, duration, budget, output_bytes;
	const cJSON *output, *line;
	struct hook_report rep = { 0 };
	uint64_t started;
	bool timed_out;

	if (json_check_keys(err, o, hook_keys, ELEMENTSOF(hook_keys)) < 0 ||
	    json_get_bytes(err, o, "name", name, sizeof(name)) < 0 ||
	    json_get_bytes(err, o, "path", path, sizeof(path)) < 0 ||
	    json_get_text(err, o, "result", false, result, sizeof(result)) < 0 ||
	    json_get_int_or_null(err, o, "exit_status", 0, HOOK_EXIT_MAX, -1, &exit_status) < 0 ||
	    json_get_int_or_null(err, o, "signal", 1, HOOK_SIGNAL_MAX, 0, &term_signal) < 0 ||
	    json_get_bool(err, o, "timed_out", &timed_out) < 0 ||
	    json_get_instant(err, o, "started", &started) < 0 ||
	    json_get_int_or_null(err, o, "duration_usec", 1, JSON_INT_MAX, 0, &duration) < 0 ||
	    json_get_int_or_null(err, o, "budget_usec", 1, JSON_INT_MAX, 0, &budget) < 0 ||
	    json_get_int(err, o, "output_bytes", 0, JSON_INT_MAX, &output_bytes) < 0)
		return -EBADMSG;
	if (report_from_json(cJSON_GetObjectItemCaseSensitive(o, "report"), &rep, err) < 0) {
		err_context(err, "report");
		return -EBADMSG;
	}
	output = cJSON_GetObjectItemCaseSensitive(o, "output");
	if (!cJSON_IsArray(output) || cJSON_GetArraySize(output) > HOOK_OUTPUT_LINES)
		return json_fail(err, "'output' is not an array of at most %d lines", HOOK_OUTPUT_LINES);
	cJSON_ArrayForEach(line, output)
		if (!cJSON_IsString(line) || !line->valuestring || !utf8_valid(line->valuestring) ||
		    strlen(line->valuestring) > HOOK_LINE_MAX)
			return json_fail(err, "'output' holds something other than a line of UTF-8 text");

	hook_result_init(h, name, path);
	if (hook_outcome_from_string(result, &h->outcome) < 0)
		return json_fail(err, "'result' is '%s'", result);
	if (json_get_text(err, o, "skip_reason", true, h->skip_reason, sizeof(h->skip_reason)) < 0 ||
	    json_get_text(err, o, "error", true, h->error, sizeof(h->error)) < 0)
		return -EBADMSG;
	if (h->outcome == HOOK_RUNNING) {
		/* The agent stopped while this hook ran: it never completed, so it
		 * runs again. The interrupted run's figures and lines go. */
		hook_result_init(h, name, path);
		h->outcome = HOOK_PENDING;
		return 0;
	}
	h->exit_status = (int)exit_status;
	h->term_signal = (int)term_signal;
	h->timed_out = timed_out;
	h->start_wall_usec = started;
	h->duration_usec = (uint64_t)duration;
	h->budget_usec = (uint64_t)budget;
	h->output_bytes = (uint64_t)output_bytes;
	h->report = rep;
	cJSON_ArrayForEach(line, output)
		hook_result_add_line(h, line->valuestring);
	return 0;
}

int hooks_from_json(const cJSON *a, struct hook_result **ret, size_t *ret_n, struct json_err *err)
{
	struct hook_result *hooks;
	const cJSON *h;
	size_t n = 0;
	int size = cJSON_GetArraySize(a);

	if (!cJSON_IsArray(a) || size > RECORD_HOOKS_MAX)
		return json_fail(err, "'hooks' is not an array of at most %d hooks", RECORD_HOOKS_MAX);
	hooks = xcalloc((size_t)size, sizeof(*hooks));
	cJSON_ArrayForEach(h, a) {
		if (hook_from_json(h, &hooks[n], err) < 0) {
			err_context(err, "hooks[%zu]", n);
			for (size_t i = 0; i < n; i++)
				hook_result_done(&hooks[i]);
			free(hooks);
			return -EBADMSG;
		}
		n++;
	}
	*ret = hooks;
	*ret_n = n;
	return 0;
}
