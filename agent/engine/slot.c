/* slot.c - the one hook slot: which eviction's chain runs its next hook
 * (a newer eviction's evict chain before an older one's recover chain),
 * the plan a scan of the hook directories gives, and a hook's start and
 * end. One hook runs at a time, machine-wide. */
#include "engine/engine-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void clear_slot(struct engine *e)
{
	e->slot.id[0] = '\0';
	e->slot.shortened = false;
}

static bool chain_has_pending(struct eviction *r, enum chain_kind c, size_t *ret_i)
{
	size_t n;
	struct hook_result *hooks = engine_chain(r, c, &n);

	for (size_t i = 0; i < n; i++)
		if (hooks[i].outcome == HOOK_PENDING) {
			*ret_i = i;
			return true;
		}
	return false;
}

/* The eviction whose chain gets the free slot: the open one, else the
 * oldest recovering one (not while stopping: the recover hooks left wait
 * for the next start). */
static struct eviction *slot_candidate(struct engine *e)
{
	struct eviction *open = engine_open_eviction(e);

	if (open && lifecycle_props(open->state)->starts_hooks)
		return open;
	if (e->stopping)
		return NULL;
	for (size_t i = 0; i < e->records->n; i++) {
		struct eviction *r = &e->records->items[i];

		if (r->state == LC_RECOVERING)
			return r;
	}
	return NULL;
}

/* Starts the next hook when the slot is free: returns true when it did
 * something (a scan asked, a hook started), so the caller looks again. */
bool engine_run_slot(struct engine *e)
{
	struct eviction *r;
	struct engine_rt *rt;
	enum chain_kind c;
	struct hook_result *hooks, *h;
	struct engine_action *a;
	uint64_t now = e->now, deadline, budget;
	size_t n, i;

	if (e->slot.id[0] || e->slot.scanning)
		return false;
	r = slot_candidate(e);
	if (!r)
		return false;
	rt = engine_rt_of(e, r);
	c = lifecycle_props(r->state)->chain;
	deadline = engine_chain_deadline(r, c);
	if (now >= deadline || (rt->retry_wall_usec && rt->retry_wall_usec > now))
		return false;
	if (!rt->planned || rt->planned_chain != c) {
		e->slot.scanning = true;
		(void)strscpy(e->slot.scan_id, sizeof(e->slot.scan_id), r->id);
		a = engine_push(e, ENGINE_SCAN_HOOKS, r->id);
		a->chain = c;
		return true;
	}
	if (!chain_has_pending(r, c, &i))
		return false;
	rt->retry_wall_usec = 0;
	hooks = engine_chain(r, c, &n);
	h = &hooks[i];
	budget = deadline - now;
	if (e->cfg.hook_timeout_usec > 0 && e->cfg.hook_timeout_usec < budget)
		budget = e->cfg.hook_timeout_usec;
	h->outcome = HOOK_RUNNING;
	h->start_wall_usec = now;
	h->budget_usec = budget;
	h->error[0] = '\0';
	(void)strscpy(e->slot.id, sizeof(e->slot.id), r->id);
	e->slot.chain = c;
	e->slot.hook = i;
	e->slot.end_wall_usec = now + budget;
	e->slot.shortened = false;
	if (c == CHAIN_EVICT)
		eviction_note_seen(r);
	/* The first sighting fixed the id and the deadline: on disk right in
	 * front of the first hook start, fast (a crash of the agent keeps
	 * what the kernel has; the first outcome's save is durable). */
	if (e->persist_new) {
		e->persist_new = false;
		engine_push(e, ENGINE_PERSIST, NULL)->fast = true;
	}
	a = engine_push(e, ENGINE_START_HOOK, r->id);
	a->chain = c;
	a->hook = i;
	a->budget_usec = budget;
	lifecycle_fire(e, r, IN_HOOK_STARTED);
	return true;
}

static int compare_results(const void *x, const void *y)
{
	const struct hook_result *a = x, *b = y;

	return strcmp(a->name, b->name);
}

/* Makes the chain follow the plan: final outcomes stay, anything else
 * becomes pending, new hooks join, a pending hook whose file is gone is
 * skipped ("removed"), and the list is in bytewise order. */
static void merge_plan(struct hook_result **hooks_p, size_t *n_p, const struct hook_ref *plan, size_t n_plan)
{
	struct hook_result *hooks = *hooks_p;
	size_t n = *n_p, old = n;

	for (size_t i = 0; i < n; i++)
		if (!hook_outcome_is_final(hooks[i].outcome))
			hooks[i].outcome = HOOK_PENDING;
	for (size_t i = 0; i < n_plan; i++) {
		struct hook_result *found = NULL;

		for (size_t j = 0; j < old && !found; j++)
			if (strcmp(hooks[j].name, plan[i].name) == 0)
				found = &hooks[j];
		if (found) {
			/* The file may have moved between /usr/lib and /etc. */
			if (!hook_outcome_is_final(found->outcome))
				(void)strscpy(found->path, sizeof(found->path), plan[i].path);
			continue;
		}
		if (n >= RECORD_HOOKS_MAX)
			break;
		hooks = xrealloc(hooks, (n + 1) * sizeof(*hooks));
		hook_result_init(&hooks[n], plan[i].name, plan[i].path);
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		bool planned = false;

		if (hooks[i].outcome != HOOK_PENDING)
			continue;
		for (size_t j = 0; j < n_plan && !planned; j++)
			planned = strcmp(plan[j].name, hooks[i].name) == 0;
		if (!planned) {
			hooks[i].outcome = HOOK_SKIPPED;
			(void)strscpy(hooks[i].skip_reason, sizeof(hooks[i].skip_reason), "removed");
		}
	}
	if (n > 1)   /* an empty chain has no array at all */
		qsort(hooks, n, sizeof(*hooks), compare_results);
	*hooks_p = hooks;
	*n_p = n;
}


void engine_hooks_scanned(struct engine *e, const char *id, enum chain_kind chain, const struct hook_ref *hooks,
			  size_t n_hooks, bool readable, uint64_t now)
{
	struct eviction *r = id && id[0] ? records_find(e->records, id) : NULL;
	struct engine_rt *rt;
	size_t n;

	e->now = now;
	e->slot.scanning = false;
	e->slot.scan_id[0] = '\0';
	if (!r || lifecycle_props(r->state)->chain != chain || !lifecycle_props(r->state)->starts_hooks) {
		engine_advance(e, now);
		return;
	}
	rt = engine_rt_of(e, r);
	(void)engine_chain(r, chain, &n);
	if (!readable && n == 0) {
		/* Never run an empty chain (and acknowledge it) because a
		 * directory could not be read. */
		lifecycle_fire(e, r, IN_UNREADABLE);
		engine_advance(e, now);
		return;
	}
	if (chain == CHAIN_RECOVER) {
		if (readable)
			merge_plan(&r->recover_hooks, &r->n_recover_hooks, hooks, n_hooks);
		else
			engine_unrun_interrupted(r->recover_hooks, r->n_recover_hooks);
	} else {
		if (readable)
			merge_plan(&r->hooks, &r->n_hooks, hooks, n_hooks);
		else
			engine_unrun_interrupted(r->hooks, r->n_hooks);
		if (readable && r->n_hooks == 0)
			r->empty_plan = true;
	}
	rt->planned = true;
	rt->planned_chain = chain;
	rt->retry_wall_usec = 0;
	lifecycle_fire(e, r, IN_PLANNED);
	engine_advance(e, now);
}

bool engine_start_error_retried(int err)
{
	/* Shortages that pass: worth another try a moment later. */
	return err == -EAGAIN || err == -ENOMEM || err == -EMFILE || err == -ENFILE || err == -ENOBUFS ||
	       err == -EINTR;
}

static struct hook_result *slot_hook(struct engine *e, struct eviction **ret_r)
{
	struct eviction *r = e->slot.id[0] ? records_find(e->records, e->slot.id) : NULL;
	struct hook_result *hooks;
	size_t n;

	*ret_r = r;
	if (!r)
		return NULL;
	hooks = engine_chain(r, e->slot.chain, &n);
	return e->slot.hook < n ? &hooks[e->slot.hook] : NULL;
}

void engine_hook_start_failed(struct engine *e, int err, const char *why, uint64_t now)
{
	struct eviction *r;
	struct hook_result *h = slot_hook(e, &r);

	e->now = now;
	if (h) {
		struct engine_rt *rt = engine_rt_of(e, r);
		struct engine_action *a;
		enum chain_kind c = e->slot.chain;
		size_t i = e->slot.hook;

		h->start_wall_usec = 0;
		if (why && why[0])
			(void)strscpy(h->error, sizeof(h->error), why);
		else
			(void)snprintf(h->error, sizeof(h->error), "cannot start: %s", strerror(-err));
		clear_slot(e);
		if (engine_start_error_retried(err)) {
			h->outcome = HOOK_PENDING;
			rt->retry_wall_usec = now + ENGINE_START_RETRY_USEC;
			a = engine_push(e, ENGINE_START_RETRY, r->id);
			a->chain = c;
			a->hook = i;
			a->err = err;
		} else {
			h->outcome = HOOK_FAILED;
			h->exit_status = -1;
			engine_push(e, ENGINE_PERSIST, NULL);
			lifecycle_fire(e, r, IN_HOOK_ENDED);
		}
	} else {
		clear_slot(e);
	}
	engine_advance(e, now);
}

void engine_hook_ended(struct engine *e, struct hook_result *res, uint64_t now)
{
	struct eviction *r;
	struct hook_result *h = slot_hook(e, &r);

	e->now = now;
	if (h) {
		enum chain_kind c = e->slot.chain;
		size_t i = e->slot.hook;

		h->outcome = res->outcome == HOOK_RUNNING || res->outcome == HOOK_PENDING ? HOOK_FAILED :
			     res->outcome;
		h->exit_status = res->exit_status;
		h->term_signal = res->term_signal;
		h->timed_out = res->timed_out;
		(void)strscpy(h->error, sizeof(h->error), res->error);
		if (res->start_wall_usec)
			h->start_wall_usec = res->start_wall_usec;
		h->duration_usec = res->duration_usec;
		h->output_bytes = res->output_bytes;
		h->report = res->report;
		for (size_t k = 0; k < HOOK_OUTPUT_LINES; k++) {
			free(h->output[k]);
			h->output[k] = res->output[k];
			res->output[k] = NULL;
		}
		h->output_next = res->output_next;
		h->n_output = res->n_output;
		res->n_output = 0;
		res->output_next = 0;
		r->last_alive_wall_usec = now;
		clear_slot(e);
		/* Exit 77 and the skips it means are one write: a crash between
		 * them must not run what the hook meant to skip. */
		if (h->outcome == HOOK_OK && h->exit_status == HOOK_EXIT_SKIP_REST && !h->timed_out)
			engine_skip_pending(e, r, c, i + 1, "exit 77");
		e->persist_now = false;
		engine_push(e, ENGINE_PERSIST, NULL);
		lifecycle_fire(e, r, IN_HOOK_ENDED);
	} else {
		clear_slot(e);
	}
	engine_advance(e, now);
}

