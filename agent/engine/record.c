/* record.c - the eviction record's plain parts: a hook's result and its
 * output ring, the names of the lifecycle states and the other enums as
 * state.json and /v1/status write them, and the list of evictions held
 * with what is dropped when it grows. Which state follows which is
 * engine.c's; this file never decides anything about the protocol. */
#include "engine/record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- names ---- */

static const char *const outcome_names[_HOOK_OUTCOME_MAX] = {
	[HOOK_PENDING] = "pending",
	[HOOK_RUNNING] = "running",
	[HOOK_OK] = "ok",
	[HOOK_FAILED] = "failed",
	[HOOK_TIMEOUT] = "timeout",
	[HOOK_SKIPPED] = "skipped",
};

static const char *const lifecycle_names[_LC_MAX] = {
	[LC_DETECTED] = "detected",
	[LC_RUNNING] = "running",
	[LC_PAUSED] = "paused",
	[LC_DRAINING] = "draining",
	[LC_ACKING] = "acknowledging",
	[LC_DONE] = "done",
	[LC_CANCELLED] = "cancelled",
	[LC_RECOVERING] = "recovering",
	[LC_CLOSED] = "closed",
};

static const char *const policy_names[_ACK_POLICY_MAX] = {
	[ACK_AFTER_HOOKS] = "after-hooks",
	[ACK_AT_ONCE] = "at-once",
	[ACK_NEVER] = "never",
};

static const char *const ack_names[_ACK_STATE_MAX] = {
	[ACK_NONE] = "none",
	[ACK_WAITING] = "waiting",
	[ACK_SENT] = "sent",
	[ACK_DROPPED] = "dropped",
};

static const char *const recover_names[_RECOVER_REASON_MAX] = {
	[RECOVER_NONE] = "none",
	[RECOVER_CANCELLED] = "cancelled",
	[RECOVER_ENDED] = "ended",
	[RECOVER_BOOT] = "boot",
};

static const char *name_of(const char *const *names, size_t n, int v)
{
	if (v < 0 || (size_t)v >= n)
		return NULL;
	return names[v];
}

static int value_of(const char *const *names, size_t n, const char *s, int *ret)
{
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (names[i] && strcmp(s, names[i]) == 0) {
			*ret = (int)i;
			return 0;
		}
	return -EINVAL;
}

const char *hook_outcome_to_string(enum hook_outcome o)
{
	return name_of(outcome_names, ELEMENTSOF(outcome_names), (int)o);
}

int hook_outcome_from_string(const char *s, enum hook_outcome *ret)
{
	int v, r = value_of(outcome_names, ELEMENTSOF(outcome_names), s, &v);

	if (r >= 0)
		*ret = (enum hook_outcome)v;
	return r;
}

const char *lifecycle_to_string(enum lifecycle s)
{
	return name_of(lifecycle_names, ELEMENTSOF(lifecycle_names), (int)s);
}

int lifecycle_from_string(const char *s, enum lifecycle *ret)
{
	int v, r = value_of(lifecycle_names, ELEMENTSOF(lifecycle_names), s, &v);

	if (r >= 0)
		*ret = (enum lifecycle)v;
	return r;
}

const char *ack_policy_to_string(enum ack_policy p)
{
	return name_of(policy_names, ELEMENTSOF(policy_names), (int)p);
}

int ack_policy_from_string(const char *s, enum ack_policy *ret)
{
	int v, r = value_of(policy_names, ELEMENTSOF(policy_names), s, &v);

	if (r >= 0)
		*ret = (enum ack_policy)v;
	return r;
}

const char *ack_state_to_string(enum ack_state s)
{
	return name_of(ack_names, ELEMENTSOF(ack_names), (int)s);
}

int ack_state_from_string(const char *s, enum ack_state *ret)
{
	int v, r = value_of(ack_names, ELEMENTSOF(ack_names), s, &v);

	if (r >= 0)
		*ret = (enum ack_state)v;
	return r;
}

static const char *const report_names[_REPORT_KEY_MAX] = {
	[REPORT_LOST_WORK_SECONDS] = "lost_work_seconds",
	[REPORT_CHECKPOINT_BYTES] = "checkpoint_bytes",
	[REPORT_JOBS_REQUEUED] = "jobs_requeued",
};

const char *report_key_to_string(enum report_key k)
{
	return name_of(report_names, ELEMENTSOF(report_names), (int)k);
}

bool *hook_report_has(struct hook_report *rep, enum report_key k)
{
	return k == REPORT_LOST_WORK_SECONDS ? &rep->has_lost_work :
	       k == REPORT_CHECKPOINT_BYTES ? &rep->has_checkpoint_bytes : &rep->has_jobs_requeued;
}

uint64_t *hook_report_value(struct hook_report *rep, enum report_key k)
{
	return k == REPORT_LOST_WORK_SECONDS ? &rep->lost_work_seconds :
	       k == REPORT_CHECKPOINT_BYTES ? &rep->checkpoint_bytes : &rep->jobs_requeued;
}

const char *recover_reason_to_string(enum recover_reason rr)
{
	return name_of(recover_names, ELEMENTSOF(recover_names), (int)rr);
}

int recover_reason_from_string(const char *s, enum recover_reason *ret)
{
	int v, r = value_of(recover_names, ELEMENTSOF(recover_names), s, &v);

	if (r >= 0)
		*ret = (enum recover_reason)v;
	return r;
}

/* ---- a hook's result ---- */

bool hook_outcome_is_final(enum hook_outcome o)
{
	return o == HOOK_OK || o == HOOK_FAILED || o == HOOK_TIMEOUT || o == HOOK_SKIPPED;
}

bool hook_result_ran(const struct hook_result *h)
{
	return h->start_wall_usec != 0 && (h->outcome == HOOK_OK || h->outcome == HOOK_FAILED ||
					   h->outcome == HOOK_TIMEOUT || h->outcome == HOOK_RUNNING);
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
	(void)utf8_copy(text, sizeof(text), line);
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

/* ---- notices and evictions ---- */

void notice_init(struct notice *n)
{
	memset(n, 0, sizeof(*n));
	event_init(&n->ev);
}

void notice_done(struct notice *n)
{
	if (!n)
		return;
	event_done(&n->ev);
	memset(n, 0, sizeof(*n));
}

void eviction_init(struct eviction *r)
{
	memset(r, 0, sizeof(*r));
}

static void hooks_free(struct hook_result *hooks, size_t n)
{
	for (size_t i = 0; i < n; i++)
		hook_result_done(&hooks[i]);
	free(hooks);
}

void eviction_done(struct eviction *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_notices; i++)
		notice_done(&r->notices[i]);
	free(r->notices);
	hooks_free(r->hooks, r->n_hooks);
	hooks_free(r->recover_hooks, r->n_recover_hooks);
	memset(r, 0, sizeof(*r));
}

struct notice *eviction_lead(struct eviction *r)
{
	return r->n_notices > 0 ? &r->notices[0] : NULL;
}

const struct notice *eviction_lead_const(const struct eviction *r)
{
	return r->n_notices > 0 ? &r->notices[0] : NULL;
}

struct notice *eviction_notice(struct eviction *r, const char *id)
{
	for (size_t i = 0; i < r->n_notices; i++)
		if (strcasecmp(r->notices[i].ev.id, id) == 0)
			return &r->notices[i];
	return NULL;
}

bool eviction_chain_ran(const struct eviction *r)
{
	for (size_t i = 0; i < r->n_hooks; i++)
		if (hook_result_ran(&r->hooks[i]))
			return true;
	return false;
}

void eviction_note_seen(struct eviction *r)
{
	const struct notice *lead = eviction_lead_const(r);

	if (!lead)
		return;
	r->seen.set = true;
	r->seen.status = lead->ev.status;
	r->seen.not_before_usec = lead->ev.not_before_usec;
	r->seen.deadline_wall_usec = r->deadline_wall_usec;
}

void eviction_seen_event(const struct eviction *r, struct spot_event *ret, uint64_t *ret_deadline)
{
	const struct notice *lead = eviction_lead_const(r);

	event_init(ret);
	if (lead)
		*ret = lead->ev;   /* shallow: the resources stay r's */
	(void)strscpy(ret->id, sizeof(ret->id), r->id);
	*ret_deadline = r->deadline_wall_usec;
	if (r->seen.set) {
		ret->status = r->seen.status;
		ret->not_before_usec = r->seen.not_before_usec;
		*ret_deadline = r->seen.deadline_wall_usec;
	}
}

/* ---- the list ---- */

void records_init(struct records *s)
{
	memset(s, 0, sizeof(*s));
}

static void records_clear(struct records *s)
{
	for (size_t i = 0; i < s->n; i++)
		eviction_done(&s->items[i]);
	free(s->items);
	s->items = NULL;
	s->n = 0;
}

void records_done(struct records *s)
{
	if (!s)
		return;
	records_clear(s);
}

void records_replace(struct records *s, struct eviction *items, size_t n)
{
	records_clear(s);
	s->items = items;
	s->n = n;
}

struct eviction *records_find(struct records *s, const char *id)
{
	/* Newest first: should an id ever repeat, the latest eviction counts. */
	for (size_t i = s->n; i > 0; i--)
		if (strcasecmp(s->items[i - 1].id, id) == 0)
			return &s->items[i - 1];
	return NULL;
}

const struct eviction *records_current(const struct records *s)
{
	for (size_t i = s->n; i > 0; i--)
		if (s->items[i - 1].state != LC_CLOSED && !s->items[i - 1].drill)
			return &s->items[i - 1];
	return s->n > 0 ? &s->items[s->n - 1] : NULL;
}

struct eviction *records_add(struct records *s, struct eviction *r)
{
	s->items = xrealloc(s->items, (s->n + 1) * sizeof(*s->items));
	s->items[s->n++] = *r;
	memset(r, 0, sizeof(*r));

	/* Drop the oldest closed evictions while there are too many. The
	 * others stay even beyond the cap (something is still due for them),
	 * and so does the one just added: the cap is soft, bounded by how
	 * many evictions can be open at once (one, and those recovering). */
	for (size_t i = 0; s->n > RECORDS_MAX && i + 1 < s->n;) {
		if (s->items[i].state != LC_CLOSED) {
			i++;
			continue;
		}
		eviction_done(&s->items[i]);
		memmove(&s->items[i], &s->items[i + 1], (s->n - i - 1) * sizeof(*s->items));
		s->n--;
	}
	return &s->items[s->n - 1];
}
