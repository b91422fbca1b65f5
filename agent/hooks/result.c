/* result.c - what one hook did, as the state file and /v1/status show it:
 * the outcome names and the ring of its last output lines, made valid
 * UTF-8 and cut to HOOK_LINE_MAX as they are stored. It holds data only;
 * it never runs, logs or decides anything. */
#include "hooks/hooks.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/json.h"

static const char *const outcome_names[_HOOK_OUTCOME_MAX] = {
	[HOOK_PENDING] = "pending",
	[HOOK_RUNNING] = "running",
	[HOOK_OK] = "ok",
	[HOOK_FAILED] = "failed",
	[HOOK_TIMEOUT] = "timeout",
	[HOOK_SKIPPED] = "skipped",
};

const char *hook_outcome_to_string(enum hook_outcome o)
{
	if ((int)o < 0 || o >= _HOOK_OUTCOME_MAX)
		return NULL;
	return outcome_names[o];
}

int hook_outcome_from_string(const char *s, enum hook_outcome *ret)
{
	if (!s)
		return -EINVAL;
	for (int i = 0; i < _HOOK_OUTCOME_MAX; i++) {
		if (strcmp(s, outcome_names[i]) == 0) {
			*ret = (enum hook_outcome)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool hook_outcome_is_final(enum hook_outcome o)
{
	return o == HOOK_OK || o == HOOK_FAILED || o == HOOK_TIMEOUT || o == HOOK_SKIPPED;
}

void hook_result_init(struct hook_result *r, const char *name, const char *path)
{
	memset(r, 0, sizeof(*r));
	(void)strscpy(r->name, sizeof(r->name), name ? name : "");
	(void)strscpy(r->path, sizeof(r->path), path ? path : "");
	r->outcome = HOOK_PENDING;
	r->exit_status = -1;
}

static void result_clear_output(struct hook_result *r)
{
	for (size_t i = 0; i < HOOK_OUTPUT_LINES; i++)
		freep_str(&r->output[i]);
	r->output_next = 0;
	r->n_output = 0;
}

void hook_result_done(struct hook_result *r)
{
	if (!r)
		return;
	result_clear_output(r);
}

void hook_result_add_line(struct hook_result *r, const char *line)
{
	size_t slot = r->output_next % HOOK_OUTPUT_LINES;
	char text[HOOK_LINE_MAX + 1];

	/* Made UTF-8 here, cut on a character boundary, so that what is held
	 * is what the state file and /v1/status show and read back: a line
	 * with bytes replaced later would grow past HOOK_LINE_MAX. */
	(void)json_text_copy(text, sizeof(text), line);
	free(r->output[slot]);
	r->output[slot] = xstrdup(text);
	r->output_next = (slot + 1) % HOOK_OUTPUT_LINES;
	if (r->n_output < HOOK_OUTPUT_LINES)
		r->n_output++;
}

void hook_result_foreach_line(const struct hook_result *r,
			      void (*fn)(const char *line, void *userdata), void *userdata)
{
	size_t n = r->n_output > HOOK_OUTPUT_LINES ? HOOK_OUTPUT_LINES : r->n_output;
	size_t first = (r->output_next % HOOK_OUTPUT_LINES + HOOK_OUTPUT_LINES - n) % HOOK_OUTPUT_LINES;

	for (size_t i = 0; i < n; i++) {
		const char *line = r->output[(first + i) % HOOK_OUTPUT_LINES];

		if (line)
			fn(line, userdata);
	}
}
