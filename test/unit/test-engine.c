/* test-engine.c - the eviction engine, checked exhaustively.
 *
 * A model world drives the real engine through every interleaving (up to a
 * bound) of: rounds that list the event Scheduled or Started, move its
 * NotBefore, drop it or fail; hook outcomes (ok, failure, exit 77, timeout,
 * cannot start); approval answers; ticks to the engine's next wake; a stop;
 * and a crash before any action is carried out, after which a new engine
 * starts from what was persisted. Paths are replayed from the start (the
 * engine is never copied), and states already seen are pruned by a hash of
 * the disk, the engine's memory and the world. On every step the promises
 * of engine.h are checked; the numbers of states and paths are printed.
 *
 * Then a few plain tests pin down single behaviours. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "store/state.h"
#include "util.h"

#define T0 UINT64_C(1795761030000000)   /* 2026-11-27T06:30:30Z */
#define SEC USEC_PER_SEC
#define MARGIN (2 * SEC)
#define HOOKS_MAX_TEST 4
#define PATH_MAX_STEPS 64

/* ---- the model world ---- */

enum choice {
	/* inputs */
	C_ROUND_SCHEDULED,
	C_ROUND_STARTED,
	C_ROUND_MOVED,       /* NotBefore moves (AWS) */
	C_ROUND_GONE,
	C_ROUND_FAILED,      /* time passes, no answer */
	C_HOOK_OK,
	C_HOOK_FAIL,
	C_HOOK_77,
	C_HOOK_TIMEOUT,
	C_APPROVE_OK,
	C_APPROVE_FAIL,
	C_TICK,
	C_STOP,
	C_SHUTDOWN,          /* logind: the OS begins shutting down */
	C_CRASH,
	/* how the pending action is carried out */
	C_ACT,               /* as asked */
	C_ACT_EAGAIN,        /* START_HOOK: fork fails with EAGAIN */
	_C_MAX,
};

struct scenario {
	enum provider provider;
	size_t n_hooks;
	unsigned max_inputs;
	unsigned max_crashes;
	unsigned max_rounds;
	unsigned max_eagain;
};

struct world {
	const struct scenario *sc;
	struct agent_state st;
	struct engine eng;
	bool have_engine;
	char *disk;              /* the records as last persisted (JSON), owned */
	uint64_t now;

	/* The metadata service. */
	bool listed;             /* the notice is shown */
	bool ever_listed;
	enum event_status status;
	uint64_t nb;             /* NotBefore (absolute providers) */
	bool moved;              /* NotBefore moved at least once */

	/* What the runner and the platform see. */
	int running;             /* hook index running, -1 none */
	char running_id[EVENT_ID_MAX];
	uint64_t running_start, running_budget;
	bool kill_asked;
	bool approving;
	char approving_id[EVENT_ID_MAX];
	bool stopped;
	bool exited;
	bool shutdown;           /* PrepareForShutdown reached this agent */
	bool released;           /* ... and the agent let it go on */
	uint64_t shutdown_end;

	/* History for the invariants, per record id. */
	struct hist {
		char id[EVENT_ID_MAX];
		uint64_t first_deadline;   /* the deadline hooks were first given */
		bool started;
		bool persisted_final[HOOKS_MAX_TEST];
		bool persisted_77_at[HOOKS_MAX_TEST];  /* that hook's exit 77 is on disk */
		bool persisted_approved;
		unsigned approvals_ok;
	} hist[4];
	size_t n_hist;
	uint64_t gone_since;               /* world time the notice left, 0 listed */
	bool new_notice_ok;                /* gone past the grace: a made-up key may
					    * name a new notice when it is back */

	unsigned inputs, crashes, rounds, eagains;
	bool pending_action;               /* an action awaits its carrying-out choice */
	struct engine_action action;
	char failure[512];                 /* first violated invariant */
};

static void fail_world(struct world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_world(struct world *w, const char *fmt, ...)
{
	va_list ap;

	if (w->failure[0])
		return;
	va_start(ap, fmt);
	(void)vsnprintf(w->failure, sizeof(w->failure), fmt, ap);
	va_end(ap);
}

static struct engine_config config_for(const struct scenario *sc)
{
	struct engine_config c = {
		.margin_usec = MARGIN,
		.hook_timeout_usec = 0,
		.events_mask = (1u << EVENT_PREEMPT) | (1u << EVENT_TERMINATE),
		.approve = true,
		.provider_approves = sc->provider == PROVIDER_AZURE,
	};

	return c;
}

static char *records_to_string(const struct agent_state *st)
{
	cJSON *a = cJSON_CreateArray();
	char *s;

	for (size_t i = 0; i < st->n_records; i++)
		cJSON_AddItemToArray(a, event_record_to_json(&st->records[i]));
	s = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	return s;
}

static void records_from_string(struct agent_state *st, const char *s)
{
	cJSON *a = cJSON_Parse(s), *item;

	assert_non_null(a);
	cJSON_ArrayForEach(item, a) {
		struct event_record rec;

		assert_int_equal(event_record_from_json(item, &rec), 0);
		(void)state_add_record_at(st, &rec, T0);
	}
	cJSON_Delete(a);
}

static void new_engine(struct world *w)
{
	struct engine_config cfg = config_for(w->sc);

	state_init(&w->st, NULL);
	if (w->disk)
		records_from_string(&w->st, w->disk);
	engine_init(&w->eng, &cfg, &w->st);
	w->have_engine = true;
}

static void drop_engine(struct world *w)
{
	if (!w->have_engine)
		return;
	engine_done(&w->eng);
	state_done(&w->st);
	w->have_engine = false;
}

static void world_init(struct world *w, const struct scenario *sc)
{
	memset(w, 0, sizeof(*w));
	w->sc = sc;
	w->now = T0;
	w->running = -1;
	w->status = EVENT_SCHEDULED;
	w->nb = sc->provider == PROVIDER_AWS ? T0 + 120 * SEC : T0 + 30 * SEC;
	w->listed = true;   /* the notice is there from the first round */
	new_engine(w);
	engine_start(&w->eng, w->now);
}

static void world_done(struct world *w)
{
	drop_engine(w);
	free(w->disk);
	w->disk = NULL;
}

static void make_event(const struct world *w, struct spot_event *ev)
{
	event_init(ev);
	ev->type = EVENT_PREEMPT;
	ev->status = w->status;
	ev->provider = w->sc->provider;
	(void)event_add_resource(ev, "vm0");
	switch (w->sc->provider) {
	case PROVIDER_AZURE:
		(void)strscpy(ev->id, sizeof(ev->id), "C7061BAC-AFDC-4513-B24B-AA5F13A16123");
		ev->not_before_usec = w->status == EVENT_STARTED ? 0 : w->nb;
		break;
	case PROVIDER_AWS:
		(void)strscpy(ev->id, sizeof(ev->id), "aws-spot-terminate");
		ev->id_from_first_seen = true;
		ev->not_before_usec = w->nb;
		break;
	default:
		(void)strscpy(ev->id, sizeof(ev->id), "gcp-preempted-vm0-0123abcd");
		ev->id_from_first_seen = true;
		ev->notice_usec = 30 * SEC;
		break;
	}
}

static struct event_record *the_record(struct world *w)
{
	/* One notice per scenario: the newest record is it. */
	return w->st.n_records > 0 ? &w->st.records[w->st.n_records - 1] : NULL;
}

static struct hist *hist_for(struct world *w, const char *id)
{
	for (size_t i = 0; i < w->n_hist; i++)
		if (strcmp(w->hist[i].id, id) == 0)
			return &w->hist[i];
	if (w->n_hist == ELEMENTSOF(w->hist))
		return &w->hist[w->n_hist - 1];
	(void)strscpy(w->hist[w->n_hist].id, sizeof(w->hist[w->n_hist].id), id);
	return &w->hist[w->n_hist++];
}

/* ---- invariants checked as actions are carried out ---- */

static void check_start(struct world *w, const struct engine_action *a)
{
	struct event_record *r = state_find(&w->st, a->id);
	struct hist *h = hist_for(w, a->id);
	size_t i = a->hook;

	if (!r || i >= r->n_hooks) {
		fail_world(w, "start of an unknown hook %zu of '%s'", i, a->id);
		return;
	}
	if (w->running >= 0)
		fail_world(w, "hook %zu started while hook %d runs", i, w->running);
	if (h->persisted_final[i])
		fail_world(w, "hook %zu started again although its outcome was persisted", i);
	for (size_t j = 0; j < i; j++)
		if (!h->persisted_final[j])
			fail_world(w, "hook %zu started before hook %zu's outcome was on disk", i, j);
	for (size_t j = 0; j < i; j++)
		if (h->persisted_77_at[j])
			fail_world(w, "hook %zu started after hook %zu exited 77", i, j);
	if (a->budget_usec == 0 || w->now + a->budget_usec > r->deadline_wall_usec)
		fail_world(w, "hook %zu given a budget beyond the deadline", i);
	if (!h->started) {
		/* One notice, one id: another id only for a notice that came back
		 * after it had gone past the grace. */
		for (size_t k = 0; k < w->n_hist; k++)
			if (&w->hist[k] != h && w->hist[k].started && !w->new_notice_ok)
				fail_world(w, "the notice's id changed from '%s' to '%s'", w->hist[k].id, a->id);
		w->new_notice_ok = false;
		h->started = true;
		h->first_deadline = r->deadline_wall_usec;
	} else if (!w->moved && w->status == EVENT_SCHEDULED && r->deadline_wall_usec != h->first_deadline) {
		/* A provider's new NotBefore, or a Started event re-detected after
		 * a crash (its emergency budget), may move it; nothing else. */
		fail_world(w, "the deadline changed from %" PRIu64 " to %" PRIu64 " without a new NotBefore",
			   h->first_deadline, r->deadline_wall_usec);
	}
}

static void check_approve(struct world *w, const struct engine_action *a)
{
	struct event_record *r = state_find(&w->st, a->id);
	struct agent_state disk;

	if (w->sc->provider != PROVIDER_AZURE)
		fail_world(w, "approval sent for a provider without one");
	if (!r)
		return;
	if (r->ev.type == EVENT_SHUTDOWN)
		fail_world(w, "the synthetic Shutdown event was approved");
	if (!w->listed || w->status != EVENT_SCHEDULED || w->now >= w->nb)
		fail_world(w, "approval sent while the event is not Scheduled before NotBefore");
	if (hist_for(w, a->id)->persisted_approved)
		fail_world(w, "approved again although the approval was on disk");
	if (w->approving)
		fail_world(w, "two approvals in flight");
	/* The chain is complete on disk: a crash now does not run a hook
	 * the platform was told is done... */
	state_init(&disk, NULL);
	records_from_string(&disk, w->disk ? w->disk : "[]");
	{
		struct event_record *d = state_find(&disk, a->id);

		if (!d)
			fail_world(w, "approval of a record not on disk");
		for (size_t i = 0; d && i < d->n_hooks; i++) {
			const struct hook_result *h = &d->hooks[i];

			if (!hook_outcome_is_final(h->outcome))
				fail_world(w, "approval while hook %zu is not final on disk", i);
		}
	}
	state_done(&disk);
	/* ...and no hook went unrun for want of resources. */
	for (size_t i = 0; i < r->n_hooks; i++) {
		const struct hook_result *h = &r->hooks[i];

		if (h->outcome == HOOK_FAILED && h->start_errno == EAGAIN)
			fail_world(w, "approval of a chain whose hook %zu could not start", i);
		if (h->outcome == HOOK_SKIPPED && strcmp(h->skip_reason, "deadline") == 0 &&
		    w->now < r->deadline_wall_usec)
			fail_world(w, "hook %zu skipped for the deadline before it", i);
	}
}

static void check_skip(struct world *w, const struct engine_action *a)
{
	struct event_record *r = state_find(&w->st, a->id);
	const struct hook_result *h;

	if (!r || a->hook >= r->n_hooks)
		return;
	h = &r->hooks[a->hook];
	if (strcmp(h->skip_reason, "deadline") == 0) {
		if (w->now < r->deadline_wall_usec)
			fail_world(w, "hook %zu skipped while time remains", a->hook);
	} else if (strcmp(h->skip_reason, "exit 77") == 0) {
		bool earlier = false;

		for (size_t j = 0; j < a->hook; j++)
			earlier = earlier || (r->hooks[j].exit_status == 77 && r->hooks[j].outcome == HOOK_OK);
		if (!earlier)
			fail_world(w, "hook %zu skipped for an exit 77 that did not happen", a->hook);
	} else if (strcmp(h->skip_reason, "cancelled") == 0) {
		/* Its notice left for good: gone past the grace, or replaced by
		 * a newer record for the same key. */
		bool replaced = the_record(w) != r;

		if (!replaced && (w->listed || !w->gone_since || w->now < w->gone_since + ENGINE_GONE_GRACE_USEC))
			fail_world(w, "hook %zu cancelled although the event is listed or just left", a->hook);
	} else {
		fail_world(w, "hook %zu skipped for '%s'", a->hook, h->skip_reason);
	}
}

static void persist(struct world *w)
{
	free(w->disk);
	w->disk = records_to_string(&w->st);
	for (size_t k = 0; k < w->st.n_records; k++) {
		const struct event_record *r = &w->st.records[k];
		struct hist *h = hist_for(w, r->ev.id);

		for (size_t i = 0; i < r->n_hooks && i < HOOKS_MAX_TEST; i++) {
			if (hook_outcome_is_final(r->hooks[i].outcome))
				h->persisted_final[i] = true;
			if (r->hooks[i].outcome == HOOK_OK && r->hooks[i].exit_status == 77)
				h->persisted_77_at[i] = true;
		}
		if (r->approved)
			h->persisted_approved = true;
	}
}

static struct hook_plan plan_for(const struct scenario *sc)
{
	struct hook_plan p = { 0 };

	p.hooks = xcalloc(sc->n_hooks, sizeof(*p.hooks));
	for (size_t i = 0; i < sc->n_hooks; i++) {
		(void)snprintf(p.hooks[i].name, sizeof(p.hooks[i].name), "%02zu-hook", (i + 1) * 10);
		(void)snprintf(p.hooks[i].path, sizeof(p.hooks[i].path), "/etc/spot-agent.d/%s",
			       p.hooks[i].name);
	}
	p.n_hooks = sc->n_hooks;
	return p;
}

/* Carries out w->action as choice c says. */
static void carry_out(struct world *w, enum choice c)
{
	struct engine_action a = w->action;

	w->pending_action = false;
	switch (a.kind) {
	case ENGINE_PERSIST:
		persist(w);
		break;
	case ENGINE_SCAN_HOOKS: {
		struct hook_plan p = plan_for(w->sc);

		engine_hooks_scanned(&w->eng, a.id, &p, w->now);
		hook_plan_done(&p);
		break;
	}
	case ENGINE_START_HOOK:
		check_start(w, &a);
		if (c == C_ACT_EAGAIN) {
			w->eagains++;
			engine_hook_start_failed(&w->eng, EAGAIN, w->now);
			break;
		}
		w->running = (int)a.hook;
		(void)strscpy(w->running_id, sizeof(w->running_id), a.id);
		w->running_start = w->now;
		w->running_budget = a.budget_usec;
		w->kill_asked = false;
		break;
	case ENGINE_KILL_HOOK:
		if (w->running < 0)
			fail_world(w, "kill without a running hook");
		w->kill_asked = true;
		break;
	case ENGINE_APPROVE:
		check_approve(w, &a);
		w->approving = true;
		(void)strscpy(w->approving_id, sizeof(w->approving_id), a.id);
		break;
	case ENGINE_RELEASE_SHUTDOWN:
		if (!w->shutdown || w->released)
			fail_world(w, "shutdown released without one, or twice");
		if ((w->running >= 0 || w->approving) && w->now < w->shutdown_end)
			fail_world(w, "shutdown released with a hook running or an approval in flight");
		w->released = true;
		break;
	case ENGINE_EXIT:
		if (w->running >= 0 || w->approving)
			fail_world(w, "exit with a hook running or an approval in flight");
		w->exited = true;
		break;
	case ENGINE_HOOK_SKIPPED:
		check_skip(w, &a);
		break;
	default:
		break;
	}
}

/* The choices the carrying-out of the pending action allows. */
static size_t action_choices(const struct world *w, enum choice *out)
{
	size_t n = 0;

	switch (w->action.kind) {
	case ENGINE_PERSIST:
	case ENGINE_START_HOOK:
	case ENGINE_APPROVE:
		/* A crash may come before any effect. */
		if (w->crashes < w->sc->max_crashes)
			out[n++] = C_CRASH;
		out[n++] = C_ACT;
		if (w->action.kind == ENGINE_START_HOOK && w->eagains < w->sc->max_eagain)
			out[n++] = C_ACT_EAGAIN;
		break;
	default:
		out[n++] = C_ACT;
		break;
	}
	return n;
}

static size_t input_choices(const struct world *w, enum choice *out)
{
	size_t n = 0;

	if (w->exited || w->inputs >= w->sc->max_inputs)
		return 0;
	if (w->running >= 0) {
		out[n++] = C_HOOK_OK;
		out[n++] = C_HOOK_FAIL;
		out[n++] = C_HOOK_77;
		out[n++] = C_HOOK_TIMEOUT;
	}
	if (w->approving) {
		out[n++] = C_APPROVE_OK;
		out[n++] = C_APPROVE_FAIL;
	}
	if (w->rounds < w->sc->max_rounds && !w->stopped) {
		out[n++] = C_ROUND_SCHEDULED;
		if (w->sc->provider == PROVIDER_AZURE)
			out[n++] = C_ROUND_STARTED;
		if (w->sc->provider == PROVIDER_AWS && !w->moved)
			out[n++] = C_ROUND_MOVED;
		out[n++] = C_ROUND_GONE;
		out[n++] = C_ROUND_FAILED;
	}
	if (engine_next_wake(&w->eng) != USEC_INFINITY)
		out[n++] = C_TICK;
	if (!w->stopped)
		out[n++] = C_STOP;
	if (!w->shutdown)
		out[n++] = C_SHUTDOWN;
	if (w->crashes < w->sc->max_crashes)
		out[n++] = C_CRASH;
	return n;
}

static void crash(struct world *w)
{
	/* The agent dies: the running hook and the approval die with it. */
	w->crashes++;
	w->running = -1;
	w->approving = false;
	w->pending_action = false;
	w->stopped = false;
	w->exited = false;
	/* The new process holds a new lock and has seen no PrepareForShutdown. */
	w->shutdown = false;
	w->released = false;
	drop_engine(w);
	w->now += 500 * USEC_PER_MSEC;
	new_engine(w);
	engine_start(&w->eng, w->now);
}

static void round_input(struct world *w, enum choice c)
{
	struct event_list list = { 0 };
	struct spot_event ev;

	w->rounds++;
	w->now += SEC;
	if (c == C_ROUND_FAILED) {
		engine_tick(&w->eng, w->now);
		return;
	}
	if (c == C_ROUND_GONE) {
		if (w->listed)
			w->gone_since = w->now;
		w->listed = false;
	} else {
		if (!w->listed) {
			if (w->sc->provider != PROVIDER_AZURE && w->gone_since &&
			    w->now >= w->gone_since + ENGINE_GONE_GRACE_USEC)
				w->new_notice_ok = true;
			w->gone_since = 0;
		}
		w->listed = true;
		w->ever_listed = true;
		if (c == C_ROUND_STARTED)
			w->status = EVENT_STARTED;
		if (c == C_ROUND_MOVED) {
			w->nb += 5 * SEC;
			w->moved = true;
		}
	}
	if (w->listed) {
		make_event(w, &ev);
		list.events = &ev;
		list.n_events = 1;
	}
	engine_round(&w->eng, &list, "vm0", w->now);
	if (w->listed)
		event_done(&ev);
}

static void hook_input(struct world *w, enum choice c)
{
	struct hook_result res;
	uint64_t left;

	hook_result_init(&res, "hook", "/x");
	left = w->running_start + w->running_budget > w->now ? w->running_start + w->running_budget - w->now : 0;
	if (c == C_HOOK_TIMEOUT || w->kill_asked) {
		w->now = w->running_start + w->running_budget > w->now ? w->running_start + w->running_budget : w->now;
		res.outcome = HOOK_TIMEOUT;
		res.timed_out = true;
		res.term_signal = 15;
	} else {
		w->now += left > SEC ? SEC : left / 2;
		res.outcome = c == C_HOOK_FAIL ? HOOK_FAILED : HOOK_OK;
		res.exit_status = c == C_HOOK_FAIL ? 1 : c == C_HOOK_77 ? 77 : 0;
	}
	res.start_wall_usec = w->running_start;
	res.duration_usec = w->now - w->running_start;
	hook_result_add_line(&res, "output");
	w->running = -1;
	engine_hook_ended(&w->eng, &res, w->now);
	hook_result_done(&res);
}

static void apply_input(struct world *w, enum choice c)
{
	uint64_t wake;

	w->inputs++;
	switch (c) {
	case C_ROUND_SCHEDULED:
	case C_ROUND_STARTED:
	case C_ROUND_MOVED:
	case C_ROUND_GONE:
	case C_ROUND_FAILED:
		round_input(w, c);
		break;
	case C_HOOK_OK:
	case C_HOOK_FAIL:
	case C_HOOK_77:
	case C_HOOK_TIMEOUT:
		hook_input(w, c);
		break;
	case C_APPROVE_OK:
	case C_APPROVE_FAIL:
		w->now += 10 * USEC_PER_MSEC;
		w->approving = false;
		if (c == C_APPROVE_OK)
			hist_for(w, w->approving_id)->approvals_ok++;
		engine_approval_answered(&w->eng, w->approving_id, c == C_APPROVE_OK, w->now);
		break;
	case C_TICK:
		wake = engine_next_wake(&w->eng);
		if (wake > w->now)
			w->now = wake;
		engine_tick(&w->eng, w->now);
		break;
	case C_STOP:
		w->stopped = true;
		engine_stop(&w->eng, w->now);
		break;
	case C_SHUTDOWN:
		w->shutdown = true;
		w->shutdown_end = w->now + 30 * SEC;
		engine_shutdown(&w->eng, 30 * SEC, "0123abcd", w->now);
		break;
	case C_CRASH:
		crash(w);
		break;
	default:
		fail_world(w, "bad input %d", c);
		break;
	}
}

/* Checks that hold whenever the engine waits for input. */
static void check_quiet(struct world *w)
{
	struct event_record *r = the_record(w);
	enum agent_phase ph = engine_phase(&w->eng);

	/* Everything due was done: a wake-up due at once would spin the loop. */
	if (engine_next_wake(&w->eng) <= w->now)
		fail_world(w, "the engine wants to wake at once (a busy loop)");
	if (!r)
		return;
	/* Readiness is down from detection (or resumption) to the end. */
	if (!r->chain_done && !(r->gone && w->now >= r->gone_wall_usec + ENGINE_GONE_GRACE_USEC) &&
	    ph != PHASE_PENDING && ph != PHASE_RUNNING)
		fail_world(w, "phase %s while the chain is unfinished", agent_phase_to_string(ph));
	/* An engine waiting with a hook pending and time left must wake up,
	 * stopping or not: SIGTERM lets the chain finish. */
	if (!r->chain_done && !r->gone && w->running < 0 && w->now < r->deadline_wall_usec &&
	    r->rt.planned && engine_next_wake(&w->eng) == USEC_INFINITY)
		fail_world(w, "chain stuck with time left");
	/* A shutdown the agent holds up is let go (an exit lets go of the
	 * lock with the process). */
	if (w->shutdown && !w->released && !w->exited && w->running < 0 && !w->approving &&
	    engine_next_wake(&w->eng) == USEC_INFINITY)
		fail_world(w, "the shutdown is held up for ever");
	/* An approval that is due is being sent or will be retried. */
	if (engine_wants_approval(&w->eng, r, w->now) && !w->approving && !w->stopped &&
	    engine_next_wake(&w->eng) == USEC_INFINITY)
		fail_world(w, "approval due but never sent again");
}

/* Takes one choice, then carries out the reports and effects that need
 * none. Returns false when the choice is not allowed here. */
static bool step(struct world *w, enum choice c)
{
	enum choice allowed[_C_MAX];
	size_t n = w->pending_action ? action_choices(w, allowed) : input_choices(w, allowed);
	bool ok = false;

	for (size_t j = 0; j < n; j++)
		ok = ok || allowed[j] == c;
	if (!ok)
		return false;
	if (w->pending_action) {
		if (c == C_CRASH)
			crash(w);
		else
			carry_out(w, c);
	} else {
		apply_input(w, c);
	}
	while (!w->pending_action && engine_next_action(&w->eng, &w->action)) {
		w->pending_action = true;
		if (w->action.kind != ENGINE_PERSIST && w->action.kind != ENGINE_START_HOOK &&
		    w->action.kind != ENGINE_APPROVE)
			carry_out(w, C_ACT);
	}
	if (!w->pending_action)
		check_quiet(w);
	return true;
}

static void record_clone(struct event_record *dst, const struct event_record *src)
{
	*dst = *src;
	dst->file_text = NULL;
	dst->ev.resources = NULL;
	dst->ev.n_resources = 0;
	event_copy(&dst->ev, &src->ev);
	dst->hooks = src->n_hooks ? xcalloc(src->n_hooks, sizeof(*dst->hooks)) : NULL;
	for (size_t i = 0; i < src->n_hooks; i++) {
		dst->hooks[i] = src->hooks[i];
		for (size_t k = 0; k < HOOK_OUTPUT_LINES; k++)
			if (src->hooks[i].output[k])
				dst->hooks[i].output[k] = xstrdup(src->hooks[i].output[k]);
	}
}

/* A deep copy, so that every choice starts from the same world. */
static void world_clone(struct world *dst, const struct world *src)
{
	*dst = *src;
	dst->disk = src->disk ? xstrdup(src->disk) : NULL;
	dst->st.records = src->st.n_records ? xcalloc(src->st.n_records, sizeof(*dst->st.records)) : NULL;
	for (size_t i = 0; i < src->st.n_records; i++)
		record_clone(&dst->st.records[i], &src->st.records[i]);
	dst->eng.state = &dst->st;
	dst->eng.actions = src->eng.cap ? xcalloc(src->eng.cap, sizeof(*dst->eng.actions)) : NULL;
	if (src->eng.n_actions)
		memcpy(dst->eng.actions, src->eng.actions, src->eng.n_actions * sizeof(*dst->eng.actions));
}

/* ---- the exploration ---- */

struct seen_set {
	uint64_t *slots;
	size_t cap, n;
};

static bool seen_add(struct seen_set *s, uint64_t h)
{
	size_t i;

	if (h == 0)
		h = 1;
	if (2 * (s->n + 1) > s->cap) {
		struct seen_set t = { .cap = s->cap ? 2 * s->cap : 1 << 16 };

		t.slots = xcalloc(t.cap, sizeof(*t.slots));
		for (size_t k = 0; k < s->cap; k++)
			if (s->slots[k])
				(void)seen_add(&t, s->slots[k]);
		free(s->slots);
		*s = t;
	}
	for (i = h & (s->cap - 1); s->slots[i]; i = (i + 1) & (s->cap - 1))
		if (s->slots[i] == h)
			return false;
	s->slots[i] = h;
	s->n++;
	return true;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	return hash_fnv(h, p, n);
}

static uint64_t hash_records(uint64_t h, const struct agent_state *st)
{
	for (size_t i = 0; i < st->n_records; i++) {
		const struct event_record *r = &st->records[i];

		h = fnv(h, r->ev.id, strlen(r->ev.id));
		h = fnv(h, &r->ev.status, sizeof(r->ev.status));
		h = fnv(h, &r->ev.not_before_usec, sizeof(r->ev.not_before_usec));
		h = fnv(h, &r->deadline_wall_usec, sizeof(r->deadline_wall_usec));
		h = fnv(h, &r->detected_wall_usec, sizeof(r->detected_wall_usec));
		h = fnv(h, &r->emergency, sizeof(r->emergency));
		h = fnv(h, &r->chain_done, sizeof(r->chain_done));
		h = fnv(h, &r->approved, sizeof(r->approved));
		h = fnv(h, &r->gone, sizeof(r->gone));
		h = fnv(h, &r->gone_wall_usec, sizeof(r->gone_wall_usec));
		h = fnv(h, r->key, strlen(r->key));
		h = fnv(h, &r->rt, sizeof(r->rt));
		h = fnv(h, &r->n_hooks, sizeof(r->n_hooks));
		for (size_t k = 0; k < r->n_hooks; k++) {
			const struct hook_result *x = &r->hooks[k];

			h = fnv(h, &x->outcome, sizeof(x->outcome));
			h = fnv(h, &x->exit_status, sizeof(x->exit_status));
			h = fnv(h, &x->timed_out, sizeof(x->timed_out));
			h = fnv(h, &x->start_errno, sizeof(x->start_errno));
			h = fnv(h, &x->start_wall_usec, sizeof(x->start_wall_usec));
			h = fnv(h, &x->budget_usec, sizeof(x->budget_usec));
			h = fnv(h, x->skip_reason, strlen(x->skip_reason));
		}
	}
	return h;
}

/* Everything the future of a path depends on. */
static uint64_t signature(const struct world *w)
{
	uint64_t h = HASH_FNV_INIT;
	uint64_t rel = w->now - T0;

	h = fnv(h, w->disk ? w->disk : "-", w->disk ? strlen(w->disk) : 1);
	h = hash_records(h, &w->st);
	h = fnv(h, w->eng.chain_id, strlen(w->eng.chain_id));
	h = fnv(h, &w->eng.running, sizeof(w->eng.running));
	h = fnv(h, &w->eng.kill_sent, sizeof(w->eng.kill_sent));
	h = fnv(h, &w->eng.stopping, sizeof(w->eng.stopping));
	h = fnv(h, &w->eng.exited, sizeof(w->eng.exited));
	h = fnv(h, &rel, sizeof(rel));
	h = fnv(h, &w->listed, sizeof(w->listed));
	h = fnv(h, &w->status, sizeof(w->status));
	h = fnv(h, &w->nb, sizeof(w->nb));
	h = fnv(h, &w->running, sizeof(w->running));
	h = fnv(h, &w->approving, sizeof(w->approving));
	h = fnv(h, &w->stopped, sizeof(w->stopped));
	h = fnv(h, &w->shutdown, sizeof(w->shutdown));
	h = fnv(h, &w->released, sizeof(w->released));
	h = fnv(h, &w->eng.shutdown, sizeof(w->eng.shutdown));
	h = fnv(h, &w->eng.shutdown_decided, sizeof(w->eng.shutdown_decided));
	h = fnv(h, &w->eng.shutdown_rounds, sizeof(w->eng.shutdown_rounds));
	h = fnv(h, &w->eng.shutdown_released, sizeof(w->eng.shutdown_released));
	h = fnv(h, &w->exited, sizeof(w->exited));
	h = fnv(h, w->hist, sizeof(w->hist));
	h = fnv(h, &w->new_notice_ok, sizeof(w->new_notice_ok));
	h = fnv(h, &w->gone_since, sizeof(w->gone_since));
	h = fnv(h, &w->inputs, sizeof(w->inputs));
	h = fnv(h, &w->crashes, sizeof(w->crashes));
	h = fnv(h, &w->rounds, sizeof(w->rounds));
	h = fnv(h, &w->eagains, sizeof(w->eagains));
	h = fnv(h, &w->pending_action, sizeof(w->pending_action));
	if (w->pending_action)
		h = fnv(h, &w->action, sizeof(w->action));
	for (size_t i = w->eng.first; i < w->eng.n_actions; i++)
		h = fnv(h, &w->eng.actions[i], sizeof(w->eng.actions[i]));
	return h;
}

struct explore {
	const struct scenario *sc;
	struct seen_set seen;
	enum choice path[PATH_MAX_STEPS];
	uint64_t states, paths, max_depth;
	char failure[1024];
};

static const char *const choice_names[_C_MAX] = {
	"round-scheduled", "round-started", "round-moved", "round-gone", "round-failed",
	"hook-ok", "hook-fail", "hook-77", "hook-timeout", "approve-ok", "approve-fail",
	"tick", "stop", "shutdown", "crash", "act", "act-eagain",
};

static void describe_path(struct explore *x, size_t len, const char *why)
{
	size_t off = (size_t)snprintf(x->failure, sizeof(x->failure), "%s after:", why);

	for (size_t i = 0; i < len && off < sizeof(x->failure); i++)
		off += (size_t)snprintf(x->failure + off, sizeof(x->failure) - off, " %s",
					choice_names[x->path[i]]);
}

static void explore(struct explore *x, const struct world *w, size_t len)
{
	enum choice next[_C_MAX];
	size_t n;

	if (x->failure[0])
		return;
	if (w->failure[0]) {
		describe_path(x, len, w->failure);
		return;
	}
	if (!seen_add(&x->seen, signature(w)))
		return;
	x->states++;
	if (len > x->max_depth)
		x->max_depth = len;
	n = w->pending_action ? action_choices(w, next) : input_choices(w, next);
	if (n == 0 || len + 1 >= PATH_MAX_STEPS) {
		x->paths++;
		return;
	}
	for (size_t i = 0; i < n && !x->failure[0]; i++) {
		struct world *c = xmalloc(sizeof(*c));

		world_clone(c, w);
		x->path[len] = next[i];
		(void)step(c, next[i]);
		explore(x, c, len + 1);
		world_done(c);
		free(c);
	}
}

static void explore_scenario(const struct scenario *sc, uint64_t *ret_states, uint64_t *ret_paths)
{
	struct explore x = { .sc = sc };
	struct world w;

	world_init(&w, sc);
	explore(&x, &w, 0);
	world_done(&w);
	if (x.failure[0])
		fail_msg("%s, %zu hooks: %s", provider_to_string(sc->provider), sc->n_hooks, x.failure);
	*ret_states += x.states;
	*ret_paths += x.paths;
	free(x.seen.slots);
}

static unsigned env_uint(const char *name, unsigned dflt)
{
	const char *v = getenv(name);

	return v && *v ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

/* The bounds: SPOT_ENGINE_EXTRA inputs beyond the chain's own (hook ends,
 * one round, one approval), SPOT_ENGINE_CRASHES and SPOT_ENGINE_ROUNDS;
 * `make torture` raises them. */
static void test_exhaustive_crash_points(void **unused)
{
	static const enum provider providers[] = { PROVIDER_AZURE, PROVIDER_AWS, PROVIDER_GCP };
	unsigned max_hooks = env_uint("SPOT_ENGINE_HOOKS", HOOKS_MAX_TEST);
	unsigned extra = env_uint("SPOT_ENGINE_EXTRA", 0);
	unsigned crashes = env_uint("SPOT_ENGINE_CRASHES", 1);
	unsigned rounds = env_uint("SPOT_ENGINE_ROUNDS", 3);
	uint64_t states = 0, paths = 0;

	for (size_t p = 0; p < ELEMENTSOF(providers); p++) {
		for (size_t n = 1; n <= max_hooks && n <= HOOKS_MAX_TEST; n++) {
			struct scenario sc = {
				.provider = providers[p],
				.n_hooks = n,
				.max_inputs = (unsigned)n + 2 + extra,
				.max_crashes = crashes,
				.max_rounds = rounds,
				.max_eagain = 1,
			};
			uint64_t s0 = states, p0 = paths;

			explore_scenario(&sc, &states, &paths);
			print_message("engine: %-5s %zu hooks: %" PRIu64 " states, %" PRIu64 " paths\n",
				      provider_to_string(sc.provider), n, states - s0, paths - p0);
			fflush(stdout);
		}
	}
	print_message("engine: explored %" PRIu64 " states and %" PRIu64 " complete paths\n", states, paths);
	assert_true(states > 1000);
}

/* ---- single behaviours ---- */

struct fixture {
	struct agent_state st;
	struct engine e;
	struct engine_action acts[256];
	size_t n;
};

static void fx_init(struct fixture *f, bool approves)
{
	struct engine_config cfg = {
		.margin_usec = MARGIN,
		.events_mask = (1u << EVENT_PREEMPT) | (1u << EVENT_TERMINATE),
		.approve = true,
		.provider_approves = approves,
	};

	memset(f, 0, sizeof(*f));
	state_init(&f->st, NULL);
	engine_init(&f->e, &cfg, &f->st);
}

static void fx_done(struct fixture *f)
{
	engine_done(&f->e);
	state_done(&f->st);
}

/* Takes the actions queued so far; answers scans with a plan of n hooks. */
static void fx_drain(struct fixture *f, size_t n_hooks, uint64_t now)
{
	struct engine_action a;

	while (engine_next_action(&f->e, &a)) {
		if (f->n < ELEMENTSOF(f->acts))
			f->acts[f->n++] = a;
		if (a.kind == ENGINE_SCAN_HOOKS) {
			struct scenario sc = { .n_hooks = n_hooks };
			struct hook_plan p = plan_for(&sc);

			engine_hooks_scanned(&f->e, a.id, &p, now);
			hook_plan_done(&p);
		}
	}
}

static size_t fx_count(const struct fixture *f, enum engine_action_kind k)
{
	size_t c = 0;

	for (size_t i = 0; i < f->n; i++)
		c += f->acts[i].kind == k;
	return c;
}

static void fx_round(struct fixture *f, struct spot_event *ev, size_t n_hooks, uint64_t now)
{
	struct event_list l = { .events = ev, .n_events = ev ? 1 : 0 };

	engine_round(&f->e, &l, "vm0", now);
	fx_drain(f, n_hooks, now);
}

static void aws_event(struct spot_event *ev, uint64_t nb)
{
	event_init(ev);
	(void)strscpy(ev->id, sizeof(ev->id), "aws-spot-terminate");
	ev->id_from_first_seen = true;
	ev->type = EVENT_PREEMPT;
	ev->status = EVENT_SCHEDULED;
	ev->provider = PROVIDER_AWS;
	ev->not_before_usec = nb;
	(void)event_add_resource(ev, "vm0");
}

/* An Azure Preempt for vm0, "EV-1", Scheduled with NotBefore nb. */
static void azure_event(struct spot_event *ev, uint64_t nb)
{
	event_init(ev);
	(void)strscpy(ev->id, sizeof(ev->id), "EV-1");
	ev->type = EVENT_PREEMPT;
	ev->status = EVENT_SCHEDULED;
	ev->provider = PROVIDER_AZURE;
	ev->not_before_usec = nb;
	(void)event_add_resource(ev, "vm0");
}

/* AWS's own mock moves `time` on every answer: one event, one chain. */
static void test_moving_time_is_one_event(void **unused)
{
	struct fixture f;
	struct spot_event ev;

	fx_init(&f, false);
	for (unsigned i = 0; i < 20; i++) {
		aws_event(&ev, T0 + (120 + i) * SEC);
		fx_round(&f, &ev, 2, T0 + i * SEC);
		event_done(&ev);
	}
	assert_int_equal(f.st.n_records, 1);
	assert_int_equal(fx_count(&f, ENGINE_DETECTED), 1);
	assert_int_equal(fx_count(&f, ENGINE_START_HOOK), 1);
	assert_string_equal(f.st.records[0].ev.id, "aws-spot-terminate-1795761030");
	assert_int_equal(f.st.records[0].ev.not_before_usec, T0 + 139 * SEC);
	assert_int_equal(f.st.records[0].deadline_wall_usec, T0 + 137 * SEC);
	fx_done(&f);
}

/* A made-up id and deadline are persisted before the first hook starts. */
static void test_invented_facts_persisted_before_first_hook(void **unused)
{
	struct fixture f;
	struct spot_event ev;
	size_t persist = SIZE_MAX, start = SIZE_MAX;

	fx_init(&f, false);
	aws_event(&ev, T0 + 120 * SEC);
	fx_round(&f, &ev, 1, T0);
	event_done(&ev);
	for (size_t i = 0; i < f.n; i++) {
		if (f.acts[i].kind == ENGINE_PERSIST && persist == SIZE_MAX)
			persist = i;
		if (f.acts[i].kind == ENGINE_START_HOOK && start == SIZE_MAX)
			start = i;
	}
	assert_true(persist < start && start != SIZE_MAX);
	fx_done(&f);
}

static size_t first_of(const struct fixture *f, enum engine_action_kind kind)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->acts[i].kind == kind)
			return i;
	return SIZE_MAX;
}

/* A new record goes to disk right before the first hook start, after the
 * scan, and for an empty chain after the approval: the approval does not
 * wait for the disk. */
static void test_new_record_saved_behind_scan_and_approval(void **unused)
{
	for (size_t hooks = 0; hooks <= 1; hooks++) {
		struct fixture f;
		struct spot_event ev;
		size_t persist, scan, next;

		fx_init(&f, true);
		azure_event(&ev, T0 + 30 * SEC);
		fx_round(&f, &ev, hooks, T0);
		persist = first_of(&f, ENGINE_PERSIST);
		scan = first_of(&f, ENGINE_SCAN_HOOKS);
		next = first_of(&f, hooks ? ENGINE_START_HOOK : ENGINE_APPROVE);
		assert_true(scan < persist && persist != SIZE_MAX && next != SIZE_MAX);
		if (hooks)
			assert_true(persist < next);   /* on disk before a hook sees it */
		else
			assert_true(next < persist);   /* the approval first */
		assert_true(f.acts[persist].fast);
		event_done(&ev);
		fx_done(&f);
	}
}

/* A fork failure leaves the hook pending and retries it; no approval. */
static void test_start_failure_retried_never_approved(void **unused)
{
	struct fixture f;
	struct spot_event ev;
	uint64_t now = T0;

	fx_init(&f, true);
	azure_event(&ev, T0 + 30 * SEC);
	fx_round(&f, &ev, 2, now);
	assert_int_equal(fx_count(&f, ENGINE_START_HOOK), 1);
	for (unsigned i = 0; i < 50; i++) {
		engine_hook_start_failed(&f.e, EAGAIN, now);
		fx_drain(&f, 2, now);
		assert_int_equal(fx_count(&f, ENGINE_APPROVE), 0);
		assert_int_equal(engine_next_wake(&f.e), now + ENGINE_START_RETRY_USEC);
		now = engine_next_wake(&f.e);
		engine_tick(&f.e, now);
		fx_drain(&f, 2, now);
	}
	assert_int_equal(f.st.records[0].hooks[0].outcome, HOOK_RUNNING);
	assert_int_equal(fx_count(&f, ENGINE_START_HOOK), 51);
	assert_int_equal(fx_count(&f, ENGINE_START_RETRY), 50);
	event_done(&ev);
	fx_done(&f);
}

/* Exit 77: the hook's outcome and the skips it implies are one write. */
static void test_exit77_and_skips_in_one_persist(void **unused)
{
	struct fixture f;
	struct spot_event ev;
	struct hook_result res;
	struct agent_state disk;
	char *text;

	fx_init(&f, false);
	aws_event(&ev, T0 + 120 * SEC);
	fx_round(&f, &ev, 4, T0);
	hook_result_init(&res, "x", "/x");
	res.outcome = HOOK_OK;
	res.exit_status = 77;
	f.n = 0;
	engine_hook_ended(&f.e, &res, T0 + SEC);
	/* The first action after the end is the one write. */
	assert_true(engine_next_action(&f.e, &f.acts[0]));
	while (f.acts[0].kind == ENGINE_HOOK_SKIPPED)
		assert_true(engine_next_action(&f.e, &f.acts[0]));
	assert_int_equal(f.acts[0].kind, ENGINE_PERSIST);
	text = records_to_string(&f.st);
	state_init(&disk, NULL);
	records_from_string(&disk, text);
	for (size_t i = 1; i < 4; i++) {
		assert_int_equal(disk.records[0].hooks[i].outcome, HOOK_SKIPPED);
		assert_string_equal(disk.records[0].hooks[i].skip_reason, "exit 77");
	}
	state_done(&disk);
	cJSON_free(text);
	hook_result_done(&res);
	event_done(&ev);
	fx_done(&f);
}

/* A restarted engine resumes an unfinished record at once, readiness down. */
static void test_resume_without_imds(void **unused)
{
	struct fixture f;
	struct spot_event ev;
	struct hook_result res;
	char *text;

	fx_init(&f, false);
	aws_event(&ev, T0 + 120 * SEC);
	fx_round(&f, &ev, 3, T0);
	hook_result_init(&res, "x", "/x");
	res.outcome = HOOK_OK;
	res.exit_status = 0;
	engine_hook_ended(&f.e, &res, T0 + SEC);
	fx_drain(&f, 3, T0 + SEC);
	text = records_to_string(&f.st);
	fx_done(&f);

	fx_init(&f, false);
	records_from_string(&f.st, text);
	engine_start(&f.e, T0 + 2 * SEC);
	assert_int_equal(engine_phase(&f.e), PHASE_PENDING);
	fx_drain(&f, 3, T0 + 2 * SEC);
	assert_int_equal(fx_count(&f, ENGINE_RESUMED), 1);
	assert_int_equal(fx_count(&f, ENGINE_START_HOOK), 1);
	/* Hook 0 is done: the resumed chain starts at hook 1. */
	for (size_t i = 0; i < f.n; i++)
		if (f.acts[i].kind == ENGINE_START_HOOK)
			assert_int_equal(f.acts[i].hook, 1);
	assert_int_equal(engine_phase(&f.e), PHASE_RUNNING);
	cJSON_free(text);
	hook_result_done(&res);
	event_done(&ev);
	fx_done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_moving_time_is_one_event),
		cmocka_unit_test(test_invented_facts_persisted_before_first_hook),
		cmocka_unit_test(test_new_record_saved_behind_scan_and_approval),
		cmocka_unit_test(test_start_failure_retried_never_approved),
		cmocka_unit_test(test_exit77_and_skips_in_one_persist),
		cmocka_unit_test(test_resume_without_imds),
		cmocka_unit_test(test_exhaustive_crash_points),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
