/* test-engine.c - the eviction engine, checked exhaustively.
 *
 * A model world drives the real engine through every interleaving (up to a
 * bound) of: rounds that list the notices Scheduled or Started, move their
 * NotBefore earlier, later or into the past, drop them, bring them back,
 * end or cancel them, add a second notice for the same machine, fail, or
 * answer only one feed; hook outcomes (ok, failure, exit 77, timeout,
 * cannot start, unreadable directories); acknowledgement answers;
 * heartbeats; ticks to the engine's next wake; a stop; a shutdown and its
 * cancellation; a crash of the agent before any action is carried out;
 * and a power loss, after which a new boot loads either the last save or,
 * when its fsync was still owed, the one before (a torn state.json falls
 * back to the spare). Paths are replayed from clones, states already seen
 * are pruned by an exact key of everything their future depends on.
 *
 * On every step the README's promises are checked, word for word as the
 * README states them (PROMISES below; test/check-docs.py compares the two).
 * The exploration asserts that every lifecycle state and every row of the
 * transition table was reached, by name.
 *
 * Then plain tests pin down single behaviours, one per fault of the field. */
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
#include "engine/engine-internal.h"
#include "engine/record.h"
#include "store/record-json.h"
#include "util.h"

#define T0 UINT64_C(1795761030000000)   /* 2026-11-27T06:30:30Z */
#define SEC USEC_PER_SEC
#define MARGIN (2 * SEC)
#define HOOKS_MAX_TEST 4
#define PATH_MAX_STEPS 64
#define SOURCES_MAX 2
#define EVICTIONS_TEST 6

/* The README's promises ("Exactly once, across crashes"), word for word. */
static const char *const PROMISES[] = {
	"A hook whose outcome is saved never runs again for its eviction, across crashes.",
	"Hooks run one at a time and in order.",
	"No hook is skipped while its chain has time left, unless a hook asked for it with exit 77, "
	"the eviction was cancelled or is over, or the VM came back on a new boot.",
	"Ids and deadlines the agent makes up are fixed at first sight and saved before a hook sees "
	"them; a restart keeps them.",
	"One eviction per machine: a notice that comes while an eviction is in hand joins it, and no "
	"hook runs twice.",
	"The earliest deadline of its notices binds the chain, and a running hook never outlives it.",
	"A chain that was cancelled, or in which no hook ran, is never acknowledged.",
	"An acknowledgement goes out only after the chain and the drain (unless its policy is "
	"at-once), at most once after it was confirmed, and is retried until it is confirmed or moot.",
	"Readiness is down from detection until the eviction is over, also right after a restart.",
	"Recover hooks run once, after the danger has passed, and only for an eviction whose hooks ran.",
	"A shutdown the agent holds up is let go once nothing is in hand or its budget is spent.",
	"The engine never spins: every wake-up it asks for is in the future.",
};
enum {
	P_ONCE, P_ORDER, P_NO_SKIP, P_IDS, P_ONE_EVICTION, P_DEADLINE, P_NO_ACK_UNRUN, P_ACK,
	P_READY, P_RECOVER, P_SHUTDOWN, P_NO_SPIN, _P_MAX,
};
_Static_assert(ELEMENTSOF(PROMISES) == _P_MAX, "one check per promise");

/* ---- the model world ---- */

enum choice {
	/* inputs: rounds, each with what changed at the metadata service */
	C_ROUND,             /* nothing changed */
	C_ROUND_STARTED,     /* notice 0 Started (Azure blanks NotBefore) */
	C_ROUND_EARLIER,     /* notice 0's NotBefore 10 s earlier */
	C_ROUND_PAST,        /* notice 0's NotBefore already passed */
	C_ROUND_LATER,       /* notice 0's NotBefore 20 s later */
	C_ROUND_GONE,        /* notice 0 leaves the listing */
	C_ROUND_BACK,        /* notice 0 is listed again */
	C_ROUND_ENDED,       /* notice 0 is listed as completed */
	C_ROUND_CANCELED,    /* notice 0 is listed as canceled */
	C_ROUND_SECOND,      /* notice 1 appears */
	C_ROUND_PARTIAL,     /* notice 1's feed does not answer */
	C_ROUND_FAILED,      /* time passes, no answer */
	C_HOOK_OK,
	C_HOOK_FAIL,
	C_HOOK_77,
	C_HOOK_TIMEOUT,
	C_ACK_OK,
	C_ACK_FAIL,
	C_HB_OK,
	C_TICK,
	C_STOP,
	C_SHUTDOWN,
	C_SHUTDOWN_CANCEL,
	C_CRASH,
	C_POWER,             /* power loss: the new boot loads the last save */
	C_POWER_OLD,         /* ... or, its fsync owed, the one before */
	/* how the pending action is carried out */
	C_ACT,
	C_ACT_EAGAIN,        /* START_HOOK: the fork fails with EAGAIN */
	C_ACT_UNREADABLE,    /* SCAN_HOOKS: the directories cannot be read */
	_C_MAX,
};
#define CH(x) (UINT64_C(1) << (x))

static const char *const choice_names[_C_MAX] = {
	"round", "round-started", "round-earlier", "round-past", "round-later", "round-gone",
	"round-back", "round-ended", "round-canceled", "round-second", "round-partial", "round-failed",
	"hook-ok", "hook-fail", "hook-77", "hook-timeout", "ack-ok", "ack-fail", "heartbeat-ok", "tick",
	"stop", "shutdown", "shutdown-cancel", "crash", "power", "power-old", "act", "act-eagain",
	"act-unreadable",
};

struct source_def {
	const char *id;          /* the provider's id, or its key when made_up */
	bool made_up;
	enum event_feed feed;
	enum event_type type;
	bool needs_ack;
	uint64_t notice_usec;    /* made up: NotBefore = first sight + this */
	uint64_t nb_in;          /* provider's: NotBefore = T0 + this */
};

struct scenario {
	const char *name;
	enum provider provider;
	struct source_def src[SOURCES_MAX];
	size_t n_src;            /* notice 1 (if any) appears with C_ROUND_SECOND */
	size_t n_hooks, n_recover;
	unsigned max_inputs, max_crashes, max_rounds, max_eagain, max_power, max_unreadable;
	uint64_t choices;        /* CH() of the inputs this scenario offers */
	uint64_t drain_usec;
	enum ack_policy policy;
	uint64_t heartbeat_usec;
	bool approve;
	size_t hooks_bound;      /* chains up to this long even by default */
};

struct source_state {
	bool listed;
	bool appeared;
	enum event_status status;
	uint64_t nb;             /* 0 for a made-up one */
	enum event_end end;
};

struct key {
	unsigned char *p;
	size_t len, cap;
};

static void put(struct key *k, const void *p, size_t n)
{
	if (k->len + n > k->cap) {
		k->cap = k->cap ? 2 * k->cap : 512;
		while (k->len + n > k->cap)
			k->cap *= 2;
		k->p = xrealloc(k->p, k->cap);
	}
	memcpy(k->p + k->len, p, n);
	k->len += n;
}

static void key_free(struct key *k)
{
	free(k->p);
	memset(k, 0, sizeof(*k));
}

static void key_copy(struct key *dst, const struct key *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src->len)
		put(dst, src->p, src->len);
}

/* What happened to one eviction, by its id. */
struct hist {
	char id[EVENT_ID_MAX];
	bool persisted_final[_CHAIN_KIND_MAX][HOOKS_MAX_TEST];
	bool persisted_77[_CHAIN_KIND_MAX][HOOKS_MAX_TEST];
	bool persisted_acked[RECORD_NOTICES_MAX];
	bool started;            /* a hook of it started */
	char lead_id[EVENT_ID_MAX];
	uint64_t lead_first_seen, lead_nb_made_up;
};

struct world {
	const struct scenario *sc;
	struct records recs;
	struct engine eng;
	bool have_engine;
	char *disk;              /* what a restart loads (state.json) */
	char *prev_disk;         /* the save before it (the spare) */
	struct key disk_key, prev_key;   /* their parsed records, as keys */
	bool synced;             /* the last save's fsync was paid */
	unsigned boots;
	uint64_t now;

	struct source_state src[SOURCES_MAX];

	bool running;
	char run_id[EVENT_ID_MAX];
	enum chain_kind run_chain;
	size_t run_hook;
	uint64_t run_start, run_end;
	bool ack_in_flight;
	char ack_id[EVENT_ID_MAX];
	size_t ack_notice;
	bool hb_in_flight;
	char hb_id[EVENT_ID_MAX];
	size_t hb_notice;
	bool stopped, exited;
	bool shutdown, released;
	uint64_t shutdown_end;

	struct hist hist[EVICTIONS_TEST];
	size_t n_hist;

	unsigned inputs, crashes, rounds, eagains, powers, unreadables;
	bool pending_action;
	struct engine_action action;
	char failure[512];
};

/* Which promise broke first, and how. */
static void fail_world(struct world *w, int promise, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_world(struct world *w, int promise, const char *fmt, ...)
{
	char detail[384];
	va_list ap;

	if (w->failure[0])
		return;
	va_start(ap, fmt);
	(void)vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	(void)snprintf(w->failure, sizeof(w->failure), "\"%.80s...\" broken: %s",
		       promise >= 0 ? PROMISES[promise] : "model", detail);
}

static void boot_tag(unsigned boots, char *buf, size_t n)
{
	(void)snprintf(buf, n, "b00t%04x", boots);
}

static struct engine_config config_for(const struct world *w)
{
	struct engine_config c = {
		.margin_usec = MARGIN,
		.hook_timeout_usec = 0,
		.drain_usec = w->sc->drain_usec,
		.events_mask = (1u << EVENT_PREEMPT) | (1u << EVENT_TERMINATE) | (1u << EVENT_REBOOT) |
			       (1u << EVENT_SHUTDOWN),
		.approve = w->sc->approve,
		.heartbeat_period_usec = w->sc->heartbeat_usec,
		.provider = w->sc->provider,
	};

	for (int t = 0; t < _EVENT_TYPE_MAX; t++)
		c.ack_policy[t] = w->sc->policy;
	boot_tag(w->boots, c.boot, sizeof(c.boot));
	return c;
}

static char *records_to_text(const struct records *st)
{
	cJSON *a = cJSON_CreateArray();
	char *s;

	for (size_t i = 0; i < st->n; i++)
		cJSON_AddItemToArray(a, record_to_json(&st->items[i], true));
	s = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	return s;
}

static void records_from_text(struct records *st, const char *s)
{
	cJSON *a = cJSON_Parse(s), *item;
	struct eviction *items;
	size_t n = 0;

	assert_non_null(a);
	items = xcalloc((size_t)cJSON_GetArraySize(a) + 1, sizeof(*items));
	cJSON_ArrayForEach(item, a) {
		struct json_err err = { "" };

		if (record_from_json(item, &items[n], &err) < 0)
			fail_msg("a saved record does not read back: %s", err.why);
		n++;
	}
	cJSON_Delete(a);
	records_replace(st, items, n);
}

static void new_engine(struct world *w, const char *from)
{
	struct engine_config cfg = config_for(w);

	records_init(&w->recs);
	if (from)
		records_from_text(&w->recs, from);
	engine_init(&w->eng, &cfg, &w->recs);
	w->have_engine = true;
}

static void drop_engine(struct world *w)
{
	if (!w->have_engine)
		return;
	engine_done(&w->eng);
	records_done(&w->recs);
	w->have_engine = false;
}

static void world_init(struct world *w, const struct scenario *sc)
{
	memset(w, 0, sizeof(*w));
	w->sc = sc;
	w->now = T0;
	w->synced = true;
	w->src[0].listed = true;   /* the first notice is there from the first round */
	w->src[0].appeared = true;
	for (size_t s = 0; s < sc->n_src; s++) {
		w->src[s].status = EVENT_SCHEDULED;
		w->src[s].nb = sc->src[s].made_up && sc->src[s].nb_in == 0 ? 0 : T0 + sc->src[s].nb_in;
	}
	new_engine(w, NULL);
	engine_start(&w->eng, w->now);
}

static void world_done(struct world *w)
{
	drop_engine(w);
	free(w->disk);
	free(w->prev_disk);
	w->disk = w->prev_disk = NULL;
	key_free(&w->disk_key);
	key_free(&w->prev_key);
}

static void make_event(const struct world *w, size_t s, struct spot_event *ev)
{
	const struct source_def *d = &w->sc->src[s];
	const struct source_state *st = &w->src[s];

	event_init(ev);
	(void)strscpy(ev->id, sizeof(ev->id), d->id);
	ev->id_from_first_seen = d->made_up;
	ev->type = d->type;
	ev->status = st->status;
	ev->provider = w->sc->provider;
	ev->feed = d->feed;
	ev->end = st->end;
	ev->needs_ack = d->needs_ack;
	ev->notice_usec = d->notice_usec;
	/* Azure blanks NotBefore once Started. */
	ev->not_before_usec = d->feed == FEED_AZURE_SCHEDULED && st->status == EVENT_STARTED ? 0 : st->nb;
	(void)event_add_resource(ev, "vm0");
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

static struct eviction *find(struct world *w, const char *id)
{
	return records_find(&w->recs, id);
}

static struct eviction *disk_find(struct records *disk, const char *id)
{
	return records_find(disk, id);
}

/* ---- exact keys of states ----
 * Everything a state's future depends on, in a compact binary form: two
 * states are the same only when their keys are byte for byte equal. The
 * hash only picks the bucket. */



static void put_str(struct key *k, const char *s)
{
	put(k, s, strlen(s) + 1);
}

static void put_time(struct key *k, uint64_t t)
{
	/* Relative to T0, so keys do not depend on the epoch. */
	uint64_t rel = t ? t - T0 + 1 : 0;

	put(k, &rel, sizeof(rel));
}

static void put_hooks(struct key *k, const struct hook_result *hooks, size_t n)
{
	put(k, &n, sizeof(n));
	for (size_t i = 0; i < n; i++) {
		const struct hook_result *x = &hooks[i];

		put(k, &x->outcome, sizeof(x->outcome));
		put(k, &x->exit_status, sizeof(x->exit_status));
		put(k, &x->timed_out, sizeof(x->timed_out));
		put_time(k, x->start_wall_usec);
		put(k, &x->budget_usec, sizeof(x->budget_usec));
		put_str(k, x->skip_reason);
		put_str(k, x->error);
		put(k, &x->report.abandon, sizeof(x->report.abandon));
	}
}

static void put_records(struct key *k, const struct records *st)
{
	put(k, &st->n, sizeof(st->n));
	for (size_t i = 0; i < st->n; i++) {
		const struct eviction *r = &st->items[i];

		put_str(k, r->id);
		put(k, &r->state, sizeof(r->state));
		put_time(k, r->state_since_wall_usec);
		put_time(k, r->detected_wall_usec);
		put_time(k, r->deadline_wall_usec);
		put(k, &r->emergency, sizeof(r->emergency));
		put_str(k, r->boot);
		put(k, &r->empty_plan, sizeof(r->empty_plan));
		put_time(k, r->chain_ended_wall_usec);
		put_time(k, r->drain_until_wall_usec);
		put_time(k, r->last_alive_wall_usec);
		put(k, &r->recover_reason, sizeof(r->recover_reason));
		put_time(k, r->recover_started_wall_usec);
		put(k, &r->downtime_usec, sizeof(r->downtime_usec));
		put(k, &r->seen, sizeof(r->seen.set) + sizeof(r->seen.status));
		put_time(k, r->seen.not_before_usec);
		put_time(k, r->seen.deadline_wall_usec);
		put(k, &r->n_notices, sizeof(r->n_notices));
		for (size_t j = 0; j < r->n_notices; j++) {
			const struct notice *n = &r->notices[j];

			put_str(k, n->ev.id);
			put_str(k, n->key);
			put(k, &n->ev.status, sizeof(n->ev.status));
			put(k, &n->ev.end, sizeof(n->ev.end));
			put_time(k, n->ev.not_before_usec);
			put_time(k, n->first_seen_wall_usec);
			put_time(k, n->deadline_wall_usec);
			put(k, &n->emergency, sizeof(n->emergency));
			put(k, &n->gone, sizeof(n->gone));
			put_time(k, n->gone_wall_usec);
			put(k, &n->started, sizeof(n->started));
			put(k, &n->ack, sizeof(n->ack));
			put_time(k, n->acked_wall_usec);
			put(k, &n->ack_attempts, sizeof(n->ack_attempts));
		}
		put_hooks(k, r->hooks, r->n_hooks);
		put_hooks(k, r->recover_hooks, r->n_recover_hooks);
	}
}

static void put_disk(struct key *k, const char *text)
{
	struct records st;

	records_init(&st);
	if (text)
		records_from_text(&st, text);
	put(k, &(bool){ text != NULL }, sizeof(bool));
	put_records(k, &st);
	records_done(&st);
}

/* ---- the promises, checked as actions are carried out ---- */

static size_t source_of(const struct world *w, const struct notice *n);

/* A done eviction is no longer in hand once every NotBefore of its
 * notices has passed and the service lists none of them. */
static bool done_over_in_world(const struct world *w, const struct eviction *r)
{
	for (size_t k = 0; k < r->n_notices; k++) {
		const struct notice *n = &r->notices[k];

		if (n->ev.not_before_usec > w->now)
			return false;
		if (n->ev.feed != FEED_OS && w->src[source_of(w, n)].listed)
			return false;
	}
	return true;
}

static bool chain_done_on_disk(struct world *w, const char *id)
{
	struct records disk;
	struct eviction *d, *m = find(w, id);
	bool done = true;

	/* An empty chain has no outcome to save: its acknowledgement does not
	 * wait for the disk. */
	if (m && m->n_hooks == 0)
		return true;
	records_init(&disk);
	records_from_text(&disk, w->disk ? w->disk : "[]");
	d = disk_find(&disk, id);
	if (!d)
		done = false;
	for (size_t i = 0; d && i < d->n_hooks; i++)
		done = done && hook_outcome_is_final(d->hooks[i].outcome);
	records_done(&disk);
	return done;
}

static void check_start(struct world *w, const struct engine_action *a)
{
	struct eviction *r = find(w, a->id);
	struct hist *h = hist_for(w, a->id);
	enum chain_kind c = a->chain;
	size_t i = a->hook, n = 0;
	struct hook_result *hooks = r ? engine_chain(r, c, &n) : NULL;

	if (!r || i >= n || i >= HOOKS_MAX_TEST) {
		fail_world(w, -1, "start of an unknown hook %zu of '%s'", i, a->id);
		return;
	}
	if (w->running)
		fail_world(w, P_ORDER, "hook %zu started while hook %zu of '%s' runs", i, w->run_hook, w->run_id);
	if (h->persisted_final[c][i])
		fail_world(w, P_ONCE, "%s hook %zu of '%s' started again although its outcome was saved",
			   chain_kind_to_string(c), i, a->id);
	for (size_t j = 0; j < i; j++)
		if (!h->persisted_final[c][j] && hooks[j].outcome != HOOK_SKIPPED)
			fail_world(w, P_ORDER, "hook %zu started before hook %zu's outcome was saved", i, j);
	for (size_t j = 0; j < i; j++)
		if (h->persisted_77[c][j])
			fail_world(w, P_NO_SKIP, "hook %zu started after hook %zu exited 77", i, j);
	if (a->budget_usec == 0 || w->now + a->budget_usec > engine_chain_deadline(r, c))
		fail_world(w, P_DEADLINE, "hook %zu given a budget beyond its chain's deadline", i);
	if (c == CHAIN_RECOVER) {
		/* A hook interrupted by a crash reads back pending, but it ran. */
		if (r->state != LC_RECOVERING || (!eviction_chain_ran(r) && !h->started))
			fail_world(w, P_RECOVER, "recover hook of '%s' in %s, its hooks %s", r->id,
				   lifecycle_to_string(r->state), eviction_chain_ran(r) ? "ran" : "never ran");
		return;
	}
	/* One eviction per machine: no other eviction is open meanwhile. */
	for (size_t k = 0; k < w->recs.n; k++) {
		const struct eviction *o = &w->recs.items[k];

		if (o != r && o->state != LC_CLOSED && o->state != LC_RECOVERING &&
		    !(o->state == LC_DONE && done_over_in_world(w, o)))
			fail_world(w, P_ONE_EVICTION, "'%s' runs a hook while '%s' is %s", r->id, o->id,
				   lifecycle_to_string(o->state));
	}
	{
		/* The made-up facts of the lead notice are on disk already. */
		struct records disk;
		struct eviction *d;
		const struct notice *lead = eviction_lead_const(r);

		records_init(&disk);
		records_from_text(&disk, w->disk ? w->disk : "[]");
		d = disk_find(&disk, r->id);
		if (!d)
			fail_world(w, P_IDS, "hook of '%s' started before the eviction was saved", r->id);
		else if (strcmp(d->notices[0].ev.id, lead->ev.id) != 0 ||
			 d->notices[0].first_seen_wall_usec != lead->first_seen_wall_usec ||
			 (lead->key[0] && d->notices[0].ev.not_before_usec != lead->ev.not_before_usec &&
			  w->sc->src[0].nb_in == 0))
			fail_world(w, P_IDS, "hook of '%s' started before its made-up facts were saved", r->id);
		records_done(&disk);
	}
	if (!h->started) {
		h->started = true;
		(void)strscpy(h->lead_id, sizeof(h->lead_id), eviction_lead_const(r)->ev.id);
		h->lead_first_seen = eviction_lead_const(r)->first_seen_wall_usec;
	} else if (strcmp(h->lead_id, eviction_lead_const(r)->ev.id) != 0 ||
		   h->lead_first_seen != eviction_lead_const(r)->first_seen_wall_usec) {
		fail_world(w, P_IDS, "the lead notice of '%s' changed from '%s' to '%s'", r->id, h->lead_id,
			   eviction_lead_const(r)->ev.id);
	}
}

/* The source of the world a notice came from. */
static size_t source_of(const struct world *w, const struct notice *n)
{
	for (size_t s = 0; s < w->sc->n_src; s++) {
		const char *want = w->sc->src[s].id;

		if (w->sc->src[s].made_up ? strcmp(n->key, want) == 0 : strcasecmp(n->ev.id, want) == 0)
			return s;
	}
	return 0;
}

static void check_ack(struct world *w, const struct engine_action *a)
{
	struct eviction *r = find(w, a->id);
	struct hist *h = hist_for(w, a->id);
	const struct notice *n;

	if (!r || a->notice >= r->n_notices) {
		fail_world(w, -1, "acknowledgement of an unknown notice");
		return;
	}
	n = &r->notices[a->notice];
	if (!n->ev.needs_ack || !w->sc->approve)
		fail_world(w, P_ACK, "acknowledgement of a notice nobody waits for");
	if (w->ack_in_flight)
		fail_world(w, P_ACK, "two acknowledgements in flight");
	if (h->persisted_acked[a->notice])
		fail_world(w, P_ACK, "notice %zu acknowledged again although that was saved", a->notice);
	if (r->state == LC_CANCELLED || r->state == LC_RECOVERING || r->state == LC_CLOSED)
		fail_world(w, P_NO_ACK_UNRUN, "acknowledgement while the eviction is %s",
			   lifecycle_to_string(r->state));
	if (n->policy == ACK_AT_ONCE)
		return;
	if (!eviction_chain_ran(r) && !r->empty_plan)
		fail_world(w, P_NO_ACK_UNRUN, "acknowledgement of a chain in which no hook ran");
	for (size_t i = 0; i < r->n_hooks; i++)
		if (r->hooks[i].outcome == HOOK_SKIPPED && strcmp(r->hooks[i].skip_reason, "cancelled") == 0)
			fail_world(w, P_NO_ACK_UNRUN, "acknowledgement of a chain with cancelled hooks");
	if (!chain_done_on_disk(w, r->id))
		fail_world(w, P_ACK, "acknowledgement before the chain's outcome was saved");
	if (w->now < r->drain_until_wall_usec)
		fail_world(w, P_ACK, "acknowledgement %.3f s before the drain passed",
			   (double)(r->drain_until_wall_usec - w->now) / SEC);
	/* The platform still waits for it. */
	if (!w->src[source_of(w, n)].listed || w->src[source_of(w, n)].status != EVENT_SCHEDULED ||
	    (n->ev.not_before_usec && w->now >= n->ev.not_before_usec) ||
	    (w->src[source_of(w, n)].nb && w->now >= w->src[source_of(w, n)].nb))
		fail_world(w, P_ACK, "acknowledgement while the notice is not Scheduled before NotBefore");
}

static void check_skip(struct world *w, const struct engine_action *a)
{
	struct eviction *r = find(w, a->id);
	size_t n = 0;
	struct hook_result *hooks = r ? engine_chain(r, a->chain, &n) : NULL;
	const struct hook_result *h;

	if (!r || a->hook >= n)
		return;
	h = &hooks[a->hook];
	if (strcmp(h->skip_reason, "deadline") == 0) {
		if (w->now < engine_chain_deadline(r, a->chain))
			fail_world(w, P_NO_SKIP, "hook %zu skipped while time remains", a->hook);
	} else if (strcmp(h->skip_reason, "exit 77") == 0) {
		bool earlier = false;

		for (size_t j = 0; j < a->hook; j++)
			earlier = earlier || (hooks[j].exit_status == 77 && hooks[j].outcome == HOOK_OK);
		if (!earlier)
			fail_world(w, P_NO_SKIP, "hook %zu skipped for an exit 77 that did not happen", a->hook);
	} else if (strcmp(h->skip_reason, "cancelled") == 0) {
		/* Reports are carried out after the step: the eviction may have
		 * moved on from its cancel (past its NotBefore, to recovery). */
		if (r->state != LC_CANCELLED && r->state != LC_RECOVERING && r->state != LC_CLOSED)
			fail_world(w, P_NO_SKIP, "hook %zu cancelled while the eviction is %s", a->hook,
				   lifecycle_to_string(r->state));
		for (size_t s = 0; s < w->sc->n_src; s++)
			if (w->src[s].appeared && w->src[s].listed && w->src[s].end == END_NONE)
				fail_world(w, P_NO_SKIP, "hook %zu cancelled while notice %zu is listed", a->hook, s);
	} else if (strcmp(h->skip_reason, "ended") == 0 || strcmp(h->skip_reason, "rebooted") == 0) {
		if (r->state != LC_RECOVERING && r->state != LC_CLOSED)
			fail_world(w, P_NO_SKIP, "hook %zu skipped as over while the eviction is %s", a->hook,
				   lifecycle_to_string(r->state));
	} else if (strcmp(h->skip_reason, "evicting") == 0) {
		if (a->chain != CHAIN_RECOVER)
			fail_world(w, P_NO_SKIP, "an eviction hook skipped for a newer eviction");
	} else {
		fail_world(w, P_NO_SKIP, "hook %zu skipped for '%s'", a->hook, h->skip_reason);
	}
}

static void persist(struct world *w)
{
	free(w->prev_disk);
	key_free(&w->prev_key);
	w->prev_disk = w->synced ? NULL : w->disk;
	if (w->synced) {
		free(w->disk);
		key_free(&w->disk_key);
	} else {
		w->prev_key = w->disk_key;
		memset(&w->disk_key, 0, sizeof(w->disk_key));
	}
	w->disk = records_to_text(&w->recs);
	put_disk(&w->disk_key, w->disk);
	w->synced = false;
	for (size_t k = 0; k < w->recs.n; k++) {
		const struct eviction *r = &w->recs.items[k];
		struct hist *h = hist_for(w, r->id);

		for (int c = 0; c < _CHAIN_KIND_MAX; c++) {
			size_t n;
			struct hook_result *hooks = engine_chain((struct eviction *)r, (enum chain_kind)c, &n);

			for (size_t i = 0; i < n && i < HOOKS_MAX_TEST; i++) {
				if (hook_outcome_is_final(hooks[i].outcome) && hooks[i].outcome != HOOK_SKIPPED)
					h->persisted_final[c][i] = true;
				if (hooks[i].outcome == HOOK_OK && hooks[i].exit_status == 77)
					h->persisted_77[c][i] = true;
			}
		}
		for (size_t k2 = 0; k2 < r->n_notices && k2 < RECORD_NOTICES_MAX; k2++)
			if (r->notices[k2].ack == ACK_SENT)
				h->persisted_acked[k2] = true;
	}
}

static void answer_scan(struct world *w, const struct engine_action *a, bool readable)
{
	struct hook_ref refs[HOOKS_MAX_TEST];
	char names[HOOKS_MAX_TEST][16], paths[HOOKS_MAX_TEST][96];
	size_t n = a->chain == CHAIN_RECOVER ? w->sc->n_recover : w->sc->n_hooks;

	for (size_t i = 0; i < n; i++) {
		(void)snprintf(names[i], sizeof(names[i]), "%02zu-hook", (i + 1) * 10);
		(void)snprintf(paths[i], sizeof(paths[i]), "/etc/spot-agent.d/%s%s",
			       a->chain == CHAIN_RECOVER ? "recover.d/" : "", names[i]);
		refs[i].name = names[i];
		refs[i].path = paths[i];
	}
	engine_hooks_scanned(&w->eng, a->id, a->chain, refs, readable ? n : 0, readable, w->now);
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
	case ENGINE_SCAN_HOOKS:
		if (c == C_ACT_UNREADABLE)
			w->unreadables++;
		answer_scan(w, &a, c != C_ACT_UNREADABLE);
		break;
	case ENGINE_START_HOOK:
		check_start(w, &a);
		if (c == C_ACT_EAGAIN) {
			w->eagains++;
			engine_hook_start_failed(&w->eng, -EAGAIN, NULL, w->now);
			break;
		}
		w->running = true;
		(void)strscpy(w->run_id, sizeof(w->run_id), a.id);
		w->run_chain = a.chain;
		w->run_hook = a.hook;
		w->run_start = w->now;
		w->run_end = w->now + a.budget_usec;
		break;
	case ENGINE_SHORTEN_HOOK:
		if (!w->running)
			fail_world(w, -1, "shorten without a running hook");
		else if (a.end_wall_usec < w->run_end)
			w->run_end = a.end_wall_usec < w->now ? w->now : a.end_wall_usec;
		break;
	case ENGINE_SEND_ACK:
		check_ack(w, &a);
		w->ack_in_flight = true;
		(void)strscpy(w->ack_id, sizeof(w->ack_id), a.id);
		w->ack_notice = a.notice;
		break;
	case ENGINE_SEND_HEARTBEAT:
		if (w->hb_in_flight)
			fail_world(w, -1, "two heartbeats in flight");
		w->hb_in_flight = true;
		(void)strscpy(w->hb_id, sizeof(w->hb_id), a.id);
		w->hb_notice = a.notice;
		break;
	case ENGINE_RELEASE_SHUTDOWN:
		if (!w->shutdown || w->released)
			fail_world(w, P_SHUTDOWN, "shutdown released without one, or twice");
		if ((w->running || w->ack_in_flight) && w->now < w->shutdown_end)
			fail_world(w, P_SHUTDOWN, "shutdown released with a hook running or an acknowledgement in flight");
		w->released = true;
		break;
	case ENGINE_EXIT:
		if (w->running || w->ack_in_flight)
			fail_world(w, -1, "exit with a hook running or an acknowledgement in flight");
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
	case ENGINE_SEND_ACK:
		/* A crash, or a power loss, may come before any effect. */
		if (w->crashes < w->sc->max_crashes)
			out[n++] = C_CRASH;
		if (w->powers < w->sc->max_power)
			out[n++] = C_POWER;
		out[n++] = C_ACT;
		if (w->action.kind == ENGINE_START_HOOK && w->eagains < w->sc->max_eagain)
			out[n++] = C_ACT_EAGAIN;
		break;
	case ENGINE_SCAN_HOOKS:
		out[n++] = C_ACT;
		if (w->unreadables < w->sc->max_unreadable)
			out[n++] = C_ACT_UNREADABLE;
		break;
	default:
		out[n++] = C_ACT;
		break;
	}
	return n;
}

static bool offered(const struct world *w, enum choice c)
{
	return (w->sc->choices & CH(c)) != 0;
}

static size_t input_choices(const struct world *w, enum choice *out)
{
	size_t n = 0;

	if (w->exited || w->inputs >= w->sc->max_inputs)
		return 0;
	if (w->running) {
		out[n++] = C_HOOK_OK;
		out[n++] = C_HOOK_FAIL;
		if (offered(w, C_HOOK_77))
			out[n++] = C_HOOK_77;
		out[n++] = C_HOOK_TIMEOUT;
	}
	if (w->ack_in_flight) {
		out[n++] = C_ACK_OK;
		out[n++] = C_ACK_FAIL;
	}
	if (w->hb_in_flight)
		out[n++] = C_HB_OK;
	if (w->rounds < w->sc->max_rounds && !w->stopped) {
		for (enum choice c = C_ROUND; c <= C_ROUND_FAILED; c++)
			if (c == C_ROUND || offered(w, c))
				out[n++] = c;
	}
	if (engine_next_wake(&w->eng) != USEC_INFINITY)
		out[n++] = C_TICK;
	if (!w->stopped && offered(w, C_STOP))
		out[n++] = C_STOP;
	if (!w->shutdown && offered(w, C_SHUTDOWN))
		out[n++] = C_SHUTDOWN;
	if (w->shutdown && !w->released && offered(w, C_SHUTDOWN_CANCEL))
		out[n++] = C_SHUTDOWN_CANCEL;
	if (w->crashes < w->sc->max_crashes)
		out[n++] = C_CRASH;
	if (w->powers < w->sc->max_power) {
		out[n++] = C_POWER;
		if (!w->synced && w->prev_disk)
			out[n++] = C_POWER_OLD;
	}
	return n;
}

static void restart(struct world *w, const char *from)
{
	char *copy = from ? xstrdup(from) : NULL;

	w->running = false;
	w->ack_in_flight = false;
	w->hb_in_flight = false;
	w->pending_action = false;
	w->stopped = false;
	w->exited = false;
	/* The new process holds a new lock and has seen no PrepareForShutdown. */
	w->shutdown = false;
	w->released = false;
	drop_engine(w);
	w->now += 500 * USEC_PER_MSEC;
	new_engine(w, copy);
	free(copy);
	engine_start(&w->eng, w->now);
}

static void crash(struct world *w)
{
	/* The agent dies: the running hook and the acknowledgement die with
	 * it; state.json holds the last save. */
	w->crashes++;
	restart(w, w->disk);
}

static void power_loss(struct world *w, bool old)
{
	/* The machine dies: it comes back on a new boot, and state.json is
	 * the last save, or torn and the spare (the save before) loads. */
	const char *from = old ? w->prev_disk : w->disk;
	char *keep = from ? xstrdup(from) : NULL;

	w->powers++;
	w->boots++;
	free(w->disk);
	free(w->prev_disk);
	key_free(&w->disk_key);
	key_free(&w->prev_key);
	w->disk = keep;
	w->prev_disk = NULL;
	if (keep)
		put_disk(&w->disk_key, keep);
	w->synced = true;
	restart(w, keep);
}

static void round_input(struct world *w, enum choice c)
{
	struct event_list list = { 0 };
	struct spot_event evs[SOURCES_MAX];
	uint32_t answered = EVENT_FEEDS_ALL;
	struct source_state *s0 = &w->src[0];

	w->rounds++;
	w->now += SEC;
	switch (c) {
	case C_ROUND_FAILED:
		engine_tick(&w->eng, w->now);
		return;
	case C_ROUND_STARTED:
		s0->status = EVENT_STARTED;
		break;
	case C_ROUND_EARLIER:
		if (s0->nb > 10 * SEC)
			s0->nb -= 10 * SEC;
		break;
	case C_ROUND_PAST:
		if (s0->nb)
			s0->nb = w->now - SEC;
		break;
	case C_ROUND_LATER:
		if (s0->nb)
			s0->nb += 20 * SEC;
		break;
	case C_ROUND_GONE:
		s0->listed = false;
		break;
	case C_ROUND_BACK:
		s0->listed = true;
		break;
	case C_ROUND_ENDED:
		s0->end = END_COMPLETED;
		break;
	case C_ROUND_CANCELED:
		s0->end = END_CANCELED;
		break;
	case C_ROUND_SECOND:
		if (w->sc->n_src > 1) {
			w->src[1].appeared = true;
			w->src[1].listed = true;
		}
		break;
	case C_ROUND_PARTIAL:
		if (w->sc->n_src > 1)
			answered &= ~(1u << w->sc->src[1].feed);
		break;
	default:
		break;
	}
	list.events = evs;
	for (size_t s = 0; s < w->sc->n_src; s++) {
		if (!w->src[s].appeared || !w->src[s].listed)
			continue;
		if (!(answered & (1u << w->sc->src[s].feed)))
			continue;
		make_event(w, s, &evs[list.n_events++]);
	}
	engine_round(&w->eng, &list, answered, "vm0", w->now);
	for (size_t i = 0; i < list.n_events; i++)
		event_done(&evs[i]);
}

static void hook_input(struct world *w, enum choice c)
{
	struct hook_result res;
	uint64_t left = w->run_end > w->now ? w->run_end - w->now : 0;

	hook_result_init(&res, "hook", "/x");
	if (c == C_HOOK_TIMEOUT) {
		/* Killed at the end of its budget, as it now stands. */
		w->now = w->run_end > w->now ? w->run_end : w->now;
		res.outcome = HOOK_TIMEOUT;
		res.timed_out = true;
		res.term_signal = 9;
	} else {
		w->now += left > SEC ? SEC : left / 2;
		res.outcome = c == C_HOOK_FAIL ? HOOK_FAILED : HOOK_OK;
		res.exit_status = c == C_HOOK_FAIL ? 1 : c == C_HOOK_77 ? 77 : 0;
	}
	res.start_wall_usec = w->run_start;
	res.duration_usec = w->now - w->run_start;
	hook_result_add_line(&res, "output");
	w->running = false;
	engine_hook_ended(&w->eng, &res, w->now);
	hook_result_done(&res);
}

static void apply_input(struct world *w, enum choice c)
{
	uint64_t wake;

	w->inputs++;
	switch (c) {
	case C_ROUND:
	case C_ROUND_STARTED:
	case C_ROUND_EARLIER:
	case C_ROUND_PAST:
	case C_ROUND_LATER:
	case C_ROUND_GONE:
	case C_ROUND_BACK:
	case C_ROUND_ENDED:
	case C_ROUND_CANCELED:
	case C_ROUND_SECOND:
	case C_ROUND_PARTIAL:
	case C_ROUND_FAILED:
		round_input(w, c);
		break;
	case C_HOOK_OK:
	case C_HOOK_FAIL:
	case C_HOOK_77:
	case C_HOOK_TIMEOUT:
		hook_input(w, c);
		break;
	case C_ACK_OK:
	case C_ACK_FAIL:
		w->now += 10 * USEC_PER_MSEC;
		w->ack_in_flight = false;
		engine_ack_answered(&w->eng, w->ack_id, w->ack_notice, c == C_ACK_OK, w->now);
		break;
	case C_HB_OK:
		w->now += 10 * USEC_PER_MSEC;
		w->hb_in_flight = false;
		engine_heartbeat_answered(&w->eng, w->hb_id, w->hb_notice, true, w->now);
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
		w->shutdown_end = w->now + 20 * SEC;
		engine_shutdown(&w->eng, 20 * SEC, w->now);
		break;
	case C_SHUTDOWN_CANCEL:
		w->shutdown = false;
		engine_shutdown_cancelled(&w->eng, w->now);
		break;
	case C_CRASH:
		crash(w);
		break;
	case C_POWER:
	case C_POWER_OLD:
		power_loss(w, c == C_POWER_OLD);
		break;
	default:
		fail_world(w, -1, "bad input %d", c);
		break;
	}
}

/* ---- the promises, checked whenever the engine waits for input ---- */

static bool notice_over_in_world(const struct world *w)
{
	/* Every notice that appeared has left or is over at the service. */
	for (size_t s = 0; s < w->sc->n_src; s++)
		if (w->src[s].appeared && w->src[s].listed && w->src[s].end == END_NONE)
			return false;
	return true;
}

static void check_quiet(struct world *w)
{
	uint64_t wake = engine_next_wake(&w->eng);
	const struct eviction *cause = NULL;
	bool ready = engine_ready(&w->eng, w->now, &cause);
	unsigned open = 0;

	w->synced = true;   /* the drain ended: the owed fsyncs were paid */
	if (wake <= w->now)
		fail_world(w, P_NO_SPIN, "the engine wants to wake at once (a busy loop)");
	for (size_t i = 0; i < w->recs.n; i++) {
		const struct eviction *r = &w->recs.items[i];
		enum lifecycle s = r->state;

		if (s != LC_CLOSED && s != LC_RECOVERING && !(s == LC_DONE && done_over_in_world(w, r)))
			open++;
		/* Readiness is down from detection until the eviction is over. */
		if ((s == LC_DETECTED || s == LC_RUNNING || s == LC_PAUSED || s == LC_DRAINING || s == LC_ACKING) && ready)
			fail_world(w, P_READY, "/readyz would answer 200 while '%s' is %s", r->id, lifecycle_to_string(s));
		if (s == LC_DONE && ready && !notice_over_in_world(w) && !w->powers)
			for (size_t k = 0; k < r->n_notices; k++)
				if (r->notices[k].ev.not_before_usec > w->now)
					fail_world(w, P_READY, "/readyz would answer 200 while '%s' is done before its NotBefore",
						   r->id);
		/* The running hook follows the deadline. */
		if (w->running && strcmp(w->run_id, r->id) == 0 && w->run_chain == CHAIN_EVICT &&
		    w->run_end > r->deadline_wall_usec && r->deadline_wall_usec > w->now)
			fail_world(w, P_DEADLINE, "the running hook of '%s' may outlive its deadline by %.3f s", r->id,
				   (double)(w->run_end - r->deadline_wall_usec) / SEC);
		/* A chain with time left, nothing running, must wake up. */
		if ((s == LC_DETECTED || s == LC_RUNNING) && !w->running && w->now < r->deadline_wall_usec &&
		    wake == USEC_INFINITY && !w->pending_action)
			for (size_t j = 0; j < r->n_hooks; j++)
				if (r->hooks[j].outcome == HOOK_PENDING)
					fail_world(w, P_NO_SKIP, "the chain of '%s' is stuck with time left", r->id);
		/* An acknowledgement due is being sent or will be retried. */
		if (s == LC_ACKING && !w->ack_in_flight && !w->stopped && wake == USEC_INFINITY)
			for (size_t k = 0; k < r->n_notices; k++)
				if (r->notices[k].ack == ACK_WAITING && w->src[source_of(w, &r->notices[k])].listed &&
				    w->src[source_of(w, &r->notices[k])].status == EVENT_SCHEDULED &&
				    (!r->notices[k].ev.not_before_usec || w->now < r->notices[k].ev.not_before_usec))
					fail_world(w, P_ACK, "notice %zu of '%s' waits for an acknowledgement never sent",
						   k, r->id);
	}
	if (open > 1)
		fail_world(w, P_ONE_EVICTION, "%u evictions open for one machine", open);
	/* A shutdown the agent holds up is let go. */
	if (w->shutdown && !w->released && !w->exited && !w->running && !w->ack_in_flight &&
	    wake == USEC_INFINITY)
		fail_world(w, P_SHUTDOWN, "the shutdown is held up for ever");
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
		else if (c == C_POWER)
			power_loss(w, false);
		else
			carry_out(w, c);
	} else {
		apply_input(w, c);
	}
	while (!w->pending_action && engine_next_action(&w->eng, &w->action)) {
		enum engine_action_kind k = w->action.kind;

		w->pending_action = true;
		if (k != ENGINE_PERSIST && k != ENGINE_START_HOOK && k != ENGINE_SEND_ACK &&
		    !(k == ENGINE_SCAN_HOOKS && w->unreadables < w->sc->max_unreadable))
			carry_out(w, C_ACT);
	}
	if (!w->pending_action)
		check_quiet(w);
	return true;
}

/* ---- cloning ---- */

static void hooks_clone(struct hook_result **dst, const struct hook_result *src, size_t n)
{
	*dst = n ? xcalloc(n, sizeof(**dst)) : NULL;
	for (size_t i = 0; i < n; i++) {
		(*dst)[i] = src[i];
		for (size_t k = 0; k < HOOK_OUTPUT_LINES; k++)
			if (src[i].output[k])
				(*dst)[i].output[k] = xstrdup(src[i].output[k]);
	}
}

static void eviction_clone(struct eviction *dst, const struct eviction *src)
{
	*dst = *src;
	dst->notices = xcalloc(src->n_notices ? src->n_notices : 1, sizeof(*dst->notices));
	for (size_t k = 0; k < src->n_notices; k++) {
		dst->notices[k] = src->notices[k];
		dst->notices[k].ev.resources = NULL;
		dst->notices[k].ev.n_resources = 0;
		event_copy(&dst->notices[k].ev, &src->notices[k].ev);
	}
	hooks_clone(&dst->hooks, src->hooks, src->n_hooks);
	hooks_clone(&dst->recover_hooks, src->recover_hooks, src->n_recover_hooks);
}

/* A deep copy, so that every choice starts from the same world. */
static void world_clone(struct world *dst, const struct world *src)
{
	*dst = *src;
	dst->disk = src->disk ? xstrdup(src->disk) : NULL;
	dst->prev_disk = src->prev_disk ? xstrdup(src->prev_disk) : NULL;
	key_copy(&dst->disk_key, &src->disk_key);
	key_copy(&dst->prev_key, &src->prev_key);
	dst->recs.items = src->recs.n ? xcalloc(src->recs.n, sizeof(*dst->recs.items)) : NULL;
	for (size_t i = 0; i < src->recs.n; i++)
		eviction_clone(&dst->recs.items[i], &src->recs.items[i]);
	dst->eng.records = &dst->recs;
	dst->eng.actions = src->eng.cap ? xcalloc(src->eng.cap, sizeof(*dst->eng.actions)) : NULL;
	if (src->eng.n_actions)
		memcpy(dst->eng.actions, src->eng.actions, src->eng.n_actions * sizeof(*dst->eng.actions));
	dst->eng.rt = src->eng.n_rt ? xcalloc(src->eng.n_rt, sizeof(*dst->eng.rt)) : NULL;
	if (src->eng.n_rt)
		memcpy(dst->eng.rt, src->eng.rt, src->eng.n_rt * sizeof(*dst->eng.rt));
}

static void world_key(const struct world *w, struct key *k)
{
	const struct engine *e = &w->eng;

	k->len = 0;
	put_time(k, w->now);
	put(k, &w->disk_key.len, sizeof(w->disk_key.len));
	if (w->disk_key.len)
		put(k, w->disk_key.p, w->disk_key.len);
	if (!w->synced && w->prev_key.len)
		put(k, w->prev_key.p, w->prev_key.len);
	put(k, &w->synced, sizeof(w->synced));
	put(k, &w->boots, sizeof(w->boots));
	put_records(k, &w->recs);
	/* The engine's memory. */
	put_str(k, e->slot.id);
	put(k, &e->slot.chain, sizeof(e->slot.chain));
	put(k, &e->slot.hook, sizeof(e->slot.hook));
	put_time(k, e->slot.end_wall_usec);
	put(k, &e->slot.scanning, sizeof(e->slot.scanning));
	put(k, &e->ack_in_flight, sizeof(e->ack_in_flight));
	put(k, &e->heartbeat_in_flight, sizeof(e->heartbeat_in_flight));
	put(k, &e->stopping, sizeof(e->stopping));
	put(k, &e->exited, sizeof(e->exited));
	put(k, &e->persist_new, sizeof(e->persist_new));
	put(k, &e->shutdown.on, sizeof(e->shutdown.on));
	put(k, &e->shutdown.rounds, sizeof(e->shutdown.rounds));
	put(k, &e->shutdown.decided, sizeof(e->shutdown.decided));
	put(k, &e->shutdown.released, sizeof(e->shutdown.released));
	put_time(k, e->shutdown.decide_wall_usec);
	put_time(k, e->shutdown.end_wall_usec);
	put(k, &e->n_rt, sizeof(e->n_rt));
	for (size_t i = 0; i < e->n_rt; i++) {
		put_str(k, e->rt[i].id);
		put(k, &e->rt[i].planned, sizeof(e->rt[i].planned));
		put(k, &e->rt[i].planned_chain, sizeof(e->rt[i].planned_chain));
		put_time(k, e->rt[i].retry_wall_usec);
		for (size_t j = 0; j < RECORD_NOTICES_MAX; j++) {
			put(k, &e->rt[i].notice[j].listed, sizeof(bool));
			put(k, &e->rt[i].notice[j].gone_confirmed, sizeof(bool));
			put(k, &e->rt[i].notice[j].ack_failures, sizeof(unsigned));
			put_time(k, e->rt[i].notice[j].ack_next_wall_usec == USEC_INFINITY ? 1 :
				 e->rt[i].notice[j].ack_next_wall_usec);
			put_time(k, e->rt[i].notice[j].heartbeat_next_wall_usec);
		}
	}
	for (size_t i = e->first; i < e->n_actions; i++)
		put(k, &e->actions[i], sizeof(e->actions[i]));
	/* The world. */
	put(k, w->src, sizeof(w->src));
	put(k, &w->running, sizeof(w->running));
	put_str(k, w->run_id);
	put(k, &w->run_chain, sizeof(w->run_chain));
	put(k, &w->run_hook, sizeof(w->run_hook));
	put_time(k, w->run_start);
	put_time(k, w->run_end);
	put(k, &w->ack_in_flight, sizeof(w->ack_in_flight));
	put_str(k, w->ack_id);
	put(k, &w->ack_notice, sizeof(w->ack_notice));
	put(k, &w->hb_in_flight, sizeof(w->hb_in_flight));
	put(k, &w->stopped, sizeof(w->stopped));
	put(k, &w->exited, sizeof(w->exited));
	put(k, &w->shutdown, sizeof(w->shutdown));
	put(k, &w->released, sizeof(w->released));
	put_time(k, w->shutdown_end);
	put(k, w->hist, sizeof(w->hist));
	put(k, &w->inputs, sizeof(w->inputs));
	put(k, &w->crashes, sizeof(w->crashes));
	put(k, &w->rounds, sizeof(w->rounds));
	put(k, &w->eagains, sizeof(w->eagains));
	put(k, &w->powers, sizeof(w->powers));
	put(k, &w->unreadables, sizeof(w->unreadables));
	put(k, &w->pending_action, sizeof(w->pending_action));
	if (w->pending_action)
		put(k, &w->action, sizeof(w->action));
}

/* The states seen: keys in one arena, found by their hash. */
struct seen_set {
	struct { uint64_t hash; size_t off, len; } *slots;
	size_t cap, n;
	unsigned char *arena;
	size_t arena_len, arena_cap;
	uint64_t collisions;     /* equal hashes of different keys */
};

static bool seen_add(struct seen_set *s, const struct key *k);

static void seen_grow(struct seen_set *s)
{
	struct seen_set t = *s;

	t.cap = s->cap ? 2 * s->cap : 1 << 16;
	t.slots = xcalloc(t.cap, sizeof(*t.slots));
	t.n = 0;
	for (size_t i = 0; i < s->cap; i++) {
		size_t j;

		if (!s->slots[i].len)
			continue;
		for (j = s->slots[i].hash & (t.cap - 1); t.slots[j].len; j = (j + 1) & (t.cap - 1))
			;
		t.slots[j] = s->slots[i];
		t.n++;
	}
	free(s->slots);
	*s = t;
}

static bool seen_add(struct seen_set *s, const struct key *k)
{
	uint64_t h = hash_fnv(HASH_FNV_INIT, k->p, k->len);
	size_t i;

	if (2 * (s->n + 1) > s->cap)
		seen_grow(s);
	for (i = h & (s->cap - 1); s->slots[i].len; i = (i + 1) & (s->cap - 1)) {
		if (s->slots[i].hash != h)
			continue;
		if (s->slots[i].len == k->len && memcmp(s->arena + s->slots[i].off, k->p, k->len) == 0)
			return false;
		s->collisions++;
	}
	if (s->arena_len + k->len > s->arena_cap) {
		s->arena_cap = s->arena_cap ? 2 * s->arena_cap : 1 << 22;
		while (s->arena_len + k->len > s->arena_cap)
			s->arena_cap *= 2;
		s->arena = xrealloc(s->arena, s->arena_cap);
	}
	memcpy(s->arena + s->arena_len, k->p, k->len);
	s->slots[i].hash = h;
	s->slots[i].off = s->arena_len;
	s->slots[i].len = k->len;
	s->arena_len += k->len;
	s->n++;
	return true;
}

/* ---- the exploration ---- */

struct coverage {
	uint64_t rule_hits[ENGINE_RULES_MAX];
	bool states[_LC_MAX];
};

struct explore {
	const struct scenario *sc;
	struct seen_set seen;
	struct key key;
	enum choice path[PATH_MAX_STEPS];
	uint64_t states, paths;
	struct coverage *cov;
	char failure[2048];
};

static void describe_path(struct explore *x, size_t len, const char *why)
{
	size_t off = (size_t)snprintf(x->failure, sizeof(x->failure), "%s after:", why);

	for (size_t i = 0; i < len && off < sizeof(x->failure); i++)
		off += (size_t)snprintf(x->failure + off, sizeof(x->failure) - off, " %s", choice_names[x->path[i]]);
}

static void note_coverage(struct explore *x, const struct world *w)
{
	for (size_t i = 0; i < ENGINE_RULES_MAX; i++)
		x->cov->rule_hits[i] += w->eng.rule_hits[i];
	for (size_t i = 0; i < w->recs.n; i++)
		x->cov->states[w->recs.items[i].state] = true;
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
	world_key(w, &x->key);
	if (!seen_add(&x->seen, &x->key))
		return;
	x->states++;
	note_coverage(x, w);
	n = w->pending_action ? action_choices(w, next) : input_choices(w, next);
	if (n == 0 || len + 1 >= PATH_MAX_STEPS) {
		x->paths++;
		return;
	}
	for (size_t i = 0; i < n && !x->failure[0]; i++) {
		struct world *c = xmalloc(sizeof(*c));

		world_clone(c, w);
		/* Counted once per path from the root: the child starts from 0. */
		memset(c->eng.rule_hits, 0, sizeof(c->eng.rule_hits));
		x->path[len] = next[i];
		(void)step(c, next[i]);
		explore(x, c, len + 1);
		world_done(c);
		free(c);
	}
}

static void explore_scenario(const struct scenario *sc, struct coverage *cov, uint64_t *ret_states)
{
	struct explore x = { .sc = sc, .cov = cov };
	struct world w;

	world_init(&w, sc);
	explore(&x, &w, 0);
	world_done(&w);
	print_message("engine: %-28s %zu+%zu hooks: %" PRIu64 " states, %" PRIu64 " paths, %" PRIu64
		      " hash collisions told apart\n", sc->name, sc->n_hooks, sc->n_recover, x.states, x.paths,
		      x.seen.collisions);
	fflush(stdout);
	if (x.failure[0])
		fail_msg("%s, %zu hooks: %s", sc->name, sc->n_hooks, x.failure);
	*ret_states += x.states;
	free(x.seen.slots);
	free(x.seen.arena);
	free(x.key.p);
}

/* SPOT_ENGINE_REPLAY="<choice> <choice> ...": replays one path of a
 * failing scenario and prints every action, to see what the engine did. */
static void replay(const struct scenario *sc, const char *path)
{
	struct world w;
	char copy[2048], *save = NULL;

	world_init(&w, sc);
	(void)strscpy(copy, sizeof(copy), path);
	for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		enum choice c = _C_MAX;

		for (int i = 0; i < _C_MAX; i++)
			if (strcmp(choice_names[i], tok) == 0)
				c = (enum choice)i;
		print_message("replay: %s (now +%.3f s)\n", tok, (double)(w.now - T0) / SEC);
		if (c == _C_MAX || !step(&w, c)) {
			print_message("replay: '%s' not allowed here\n", tok);
			break;
		}
		for (size_t i = 0; i < w.eng.n_actions; i++)
			print_message("replay:   %s %s chain %d hook %zu notice %zu%s\n",
				      engine_action_to_string(w.eng.actions[i].kind), w.eng.actions[i].id,
				      w.eng.actions[i].chain, w.eng.actions[i].hook, w.eng.actions[i].notice,
				      i < w.eng.first ? "" : " (pending)");
		for (size_t i = 0; i < w.recs.n; i++)
			print_message("replay:   eviction %s %s deadline +%.3f\n", w.recs.items[i].id,
				      lifecycle_to_string(w.recs.items[i].state),
				      (double)(w.recs.items[i].deadline_wall_usec - T0) / SEC);
		if (w.failure[0]) {
			print_message("replay: %s\n", w.failure);
			break;
		}
	}
	world_done(&w);
}

static unsigned env_uint(const char *name, unsigned dflt)
{
	const char *v = getenv(name);

	return v && *v ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

#define AZURE_EV(nb) { "C7061BAC-AFDC-4513-B24B-AA5F13A16123", false, FEED_AZURE_SCHEDULED, EVENT_PREEMPT, true, 0, (nb) }
#define AZURE_EV2(nb) { "4CAEA225-A741-474D-A72E-428C86FCD853", false, FEED_AZURE_SCHEDULED, EVENT_TERMINATE, true, 0, (nb) }
#define AWS_SPOT(nb) { "aws-spot-terminate", true, FEED_AWS_SPOT, EVENT_PREEMPT, false, 0, (nb) }
#define AWS_ASG { "aws-asg-terminate-i-0123", true, FEED_AWS_LIFECYCLE, EVENT_TERMINATE, true, 60 * SEC, 0 }
#define AWS_MAINT(nb) { "instance-event-0d59937288b749b32", false, FEED_AWS_MAINTENANCE, EVENT_REBOOT, false, 0, (nb) }
#define GCP_PRE { "gcp-preempted-vm0-0123abcd", true, FEED_GCP_PREEMPTED, EVENT_PREEMPT, false, 30 * SEC, 0 }

#define ROUNDS_AZURE (CH(C_ROUND_STARTED) | CH(C_ROUND_EARLIER) | CH(C_ROUND_PAST) | CH(C_ROUND_GONE) | \
		      CH(C_ROUND_BACK) | CH(C_ROUND_FAILED))
#define COMMON (CH(C_HOOK_77) | CH(C_STOP))

/* The bounds: chains of 0 and 1 hooks reach every state and every row;
 * SPOT_ENGINE_HOOKS (chain lengths up to) and SPOT_ENGINE_EXTRA (inputs
 * beyond each scenario's own) go further: `make torture` raises them. */
static void test_exhaustive(void **unused)
{
	unsigned max_hooks = env_uint("SPOT_ENGINE_HOOKS", 1);
	unsigned extra = env_uint("SPOT_ENGINE_EXTRA", 0);
	struct coverage cov = { 0 };
	uint64_t states = 0;
	const struct scenario base[] = {
		/* Azure: a Preempt with its approval, gone and back, moved, Started. */
		{ "azure preempt", PROVIDER_AZURE, { AZURE_EV(30 * SEC) }, 1, 0, 0, 4, 1, 3, 1, 0, 1,
		  CH(C_ROUND_STARTED) | CH(C_ROUND_PAST) | CH(C_ROUND_GONE) | CH(C_HOOK_77), 3 * SEC,
		  ACK_AFTER_HOOKS, 0, true, 0 },
		/* Azure: NotBefore earlier and later, rounds failing, a stop. */
		{ "azure moved", PROVIDER_AZURE, { AZURE_EV(30 * SEC) }, 1, 0, 0, 4, 1, 3, 0, 0, 0,
		  CH(C_ROUND_EARLIER) | CH(C_ROUND_LATER) | CH(C_ROUND_FAILED) | CH(C_STOP), 0, ACK_AFTER_HOOKS, 0,
		  true, 0 },
		/* Azure with recover hooks: cancelled, back, ended, power loss. */
		/* (Two hooks: a new boot finds a chain running with one done.) */
		{ "azure recover", PROVIDER_AZURE, { AZURE_EV(30 * SEC) }, 1, 0, 1, 5, 0, 4, 0, 1, 0,
		  CH(C_ROUND_STARTED) | CH(C_ROUND_GONE) | CH(C_ROUND_BACK), 8 * SEC, ACK_AFTER_HOOKS, 0, true, 2 },
		/* Azure: a second event for the machine joins; at-once. */
		{ "azure two notices", PROVIDER_AZURE, { AZURE_EV(30 * SEC), AZURE_EV2(20 * SEC) }, 2, 0, 0, 4, 1, 3,
		  0, 0, 0, CH(C_ROUND_SECOND) | CH(C_ROUND_GONE) | CH(C_ROUND_STARTED), 2 * SEC, ACK_AT_ONCE, 0, true, 0 },
		/* AWS: spot, then the Auto Scaling termination joins (heartbeats,
		 * completion); the lifecycle feed failing alone. */
		{ "aws spot + asg", PROVIDER_AWS, { AWS_SPOT(120 * SEC), AWS_ASG }, 2, 0, 0, 4, 1, 3, 1, 0, 0,
		  CH(C_ROUND_SECOND) | CH(C_ROUND_PARTIAL) | CH(C_ROUND_GONE) | CH(C_ROUND_BACK), 0, ACK_AFTER_HOOKS,
		  20 * SEC, true, 0 },
		/* AWS scheduled maintenance: ended or cancelled by the provider. */
		{ "aws maintenance", PROVIDER_AWS, { AWS_MAINT(60 * SEC) }, 1, 0, 1, 4, 0, 3, 0, 1, 1,
		  CH(C_ROUND_ENDED) | CH(C_ROUND_CANCELED) | CH(C_ROUND_GONE) | CH(C_ROUND_BACK), 0, ACK_AFTER_HOOKS,
		  0, true, 0 },
		/* GCP: a preemption and the OS shutting down. */
		{ "gcp preempt + shutdown", PROVIDER_GCP, { GCP_PRE }, 1, 0, 0, 4, 1, 3, 1, 0, 0,
		  CH(C_SHUTDOWN) | CH(C_SHUTDOWN_CANCEL) | CH(C_STOP), 0, ACK_AFTER_HOOKS, 0, true, 0 },
		/* No acknowledgements at all (--no-approve). */
		{ "azure no-approve", PROVIDER_AZURE, { AZURE_EV(30 * SEC) }, 1, 0, 0, 3, 1, 3, 0, 0, 1,
		  CH(C_ROUND_GONE) | CH(C_ROUND_STARTED) | CH(C_STOP), 0, ACK_AFTER_HOOKS, 0, false, 0 },
	};


	if (getenv("SPOT_ENGINE_REPLAY")) {
		/* "<scenario>|<hooks>|<path>" */
		char spec[2048], *name, *hooks, *path, *save = NULL;

		(void)strscpy(spec, sizeof(spec), getenv("SPOT_ENGINE_REPLAY"));
		name = strtok_r(spec, "|", &save);
		hooks = strtok_r(NULL, "|", &save);
		path = strtok_r(NULL, "|", &save);
		for (size_t i = 0; name && hooks && path && i < ELEMENTSOF(base); i++)
			if (strcmp(base[i].name, name) == 0) {
				struct scenario sc = base[i];

				sc.n_hooks = strtoul(hooks, NULL, 10);
				if (strstr(sc.name, "recover") || strstr(sc.name, "maintenance"))
					sc.n_recover = sc.n_hooks > 0 ? 1 : 0;
				sc.max_inputs += (unsigned)sc.n_hooks + extra;
				replay(&sc, path);
			}
		return;
	}
	for (size_t i = 0; i < ELEMENTSOF(base); i++) {
		/* Chains of 0 to max_hooks hooks; recover scenarios with one. */
		size_t bound = max_hooks > base[i].hooks_bound ? max_hooks : base[i].hooks_bound;

		for (size_t n = 0; n <= bound && n <= HOOKS_MAX_TEST; n++) {
			struct scenario sc = base[i];

			sc.n_hooks = n;
			if (strstr(sc.name, "recover") || strstr(sc.name, "maintenance"))
				sc.n_recover = n > 0 ? 1 : 0;
			sc.max_inputs += (unsigned)n + extra;
			explore_scenario(&sc, &cov, &states);
		}
	}
	print_message("engine: explored %" PRIu64 " states\n", states);
	{
		size_t n_rules;
		const struct engine_rule_info *rules = engine_rules(&n_rules);
		unsigned missing = 0;

		for (int s = 0; s < _LC_MAX; s++)
			if (!cov.states[s]) {
				print_error("engine: lifecycle state '%s' never reached\n", lifecycle_to_string((enum lifecycle)s));
				missing++;
			}
		for (size_t i = 0; i < n_rules; i++)
			if (!cov.rule_hits[i]) {
				print_error("engine: rule never taken: %s\n", rules[i].name);
				missing++;
			}
		print_message("engine: %zu transition rows, every one taken %s\n", n_rules, missing ? "NOT" : "");
		assert_int_equal(missing, 0);
	}
}

/* ---- the table itself ---- */

/* Every state has a row for every input: the table is total. */
static void test_table_is_total(void **unused)
{
	size_t n;
	const struct engine_rule_info *rules = engine_rules(&n);

	assert_true(n > 0);
	for (size_t i = 0; i < n; i++) {
		assert_non_null(rules[i].state);
		assert_non_null(rules[i].input);
		assert_true(rules[i].input[0] != '\0');
		assert_non_null(strstr(rules[i].name, ": "));
	}
	/* lifecycle_fire aborts when no row matches; the exhaustive test
	 * drives every state with every input it can. Here, each state's
	 * rows name every input at least once. */
	for (int s = 0; s < _LC_MAX; s++) {
		static const char *const inputs[] = {
			"seen", "joined", "planned", "unreadable", "hook-started", "hook-ended", "boot",
			"preempted", "stop", "ended", "withdrawn", "gone", "back", "deadline", "chain-end",
			"drained", "acks-settled", "settled",
		};

		for (size_t k = 0; k < ELEMENTSOF(inputs); k++) {
			bool found = false;

			for (size_t i = 0; i < n && !found; i++) {
				const char *p = rules[i].input;
				size_t len = strlen(inputs[k]);

				if (strcmp(rules[i].state, lifecycle_to_string((enum lifecycle)s)) != 0)
					continue;
				while ((p = strstr(p, inputs[k]))) {
					if ((p == rules[i].input || p[-1] == ',') && (p[len] == ',' || p[len] == '\0')) {
						found = true;
						break;
					}
					p += len;
				}
			}
			if (!found)
				fail_msg("state '%s' has no row for input '%s'", lifecycle_to_string((enum lifecycle)s),
					 inputs[k]);
		}
	}
}

/* The promises here and in the README are the same words. */
static void test_promises_in_readme(void **unused)
{
	FILE *f = fopen("README.md", "r");
	char *text = NULL;
	size_t cap = 0, len = 0;

	assert_non_null(f);
	for (;;) {
		char buf[4096];
		size_t k = fread(buf, 1, sizeof(buf), f);

		if (k == 0)
			break;
		if (len + k + 1 > cap) {
			cap = 2 * (len + k + 1);
			text = xrealloc(text, cap);
		}
		memcpy(text + len, buf, k);
		len += k;
	}
	fclose(f);
	assert_non_null(text);
	text[len] = '\0';
	/* The README wraps lines: compare with every run of spaces and
	 * newlines as one space. */
	for (char *p = text, *q = text;; p++) {
		if (*p == '\n' || *p == ' ') {
			if (q > text && q[-1] != ' ')
				*q++ = ' ';
			continue;
		}
		*q++ = *p;
		if (!*p)
			break;
	}
	for (size_t i = 0; i < _P_MAX; i++)
		if (!strstr(text, PROMISES[i]))
			fail_msg("README.md lacks the promise \"%s\"", PROMISES[i]);
	free(text);
}

/* ---- single behaviours ---- */

struct fixture {
	struct records st;
	struct engine e;
	struct engine_config cfg;
	struct engine_action acts[512];
	size_t n;
	size_t n_hooks;
	bool running;
	char run_id[EVENT_ID_MAX];
	uint64_t run_end;
};

static void fx_init(struct fixture *f, size_t n_hooks)
{
	memset(f, 0, sizeof(*f));
	f->cfg = (struct engine_config){
		.margin_usec = MARGIN,
		.events_mask = (1u << EVENT_PREEMPT) | (1u << EVENT_TERMINATE) | (1u << EVENT_REBOOT) |
			       (1u << EVENT_FREEZE) | (1u << EVENT_SHUTDOWN),
		.approve = true,
		.provider = PROVIDER_AZURE,
	};
	(void)strscpy(f->cfg.boot, sizeof(f->cfg.boot), "b00t0001");
	f->n_hooks = n_hooks;
	records_init(&f->st);
	engine_init(&f->e, &f->cfg, &f->st);
}

static void fx_config(struct fixture *f)
{
	engine_set_config(&f->e, &f->cfg);
}

static void fx_done(struct fixture *f)
{
	engine_done(&f->e);
	records_done(&f->st);
}

/* Takes the actions queued so far; answers scans with a plan of n hooks
 * (recover scans with one). */
static void fx_drain(struct fixture *f, uint64_t now)
{
	struct engine_action a;

	while (engine_next_action(&f->e, &a)) {
		if (f->n < ELEMENTSOF(f->acts))
			f->acts[f->n++] = a;
		if (a.kind == ENGINE_SCAN_HOOKS) {
			struct hook_ref refs[HOOKS_MAX_TEST] = {
				{ "10-a", "/h/10-a" }, { "20-b", "/h/20-b" }, { "30-c", "/h/30-c" }, { "40-d", "/h/40-d" },
			};

			engine_hooks_scanned(&f->e, a.id, a.chain, refs, a.chain == CHAIN_RECOVER ? 1 : f->n_hooks, true, now);
		} else if (a.kind == ENGINE_START_HOOK) {
			f->running = true;
			(void)strscpy(f->run_id, sizeof(f->run_id), a.id);
			f->run_end = now + a.budget_usec;
		} else if (a.kind == ENGINE_SHORTEN_HOOK) {
			f->run_end = a.end_wall_usec;
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

static size_t fx_last(const struct fixture *f, enum engine_action_kind k)
{
	for (size_t i = f->n; i > 0; i--)
		if (f->acts[i - 1].kind == k)
			return i - 1;
	return SIZE_MAX;
}

static void fx_round(struct fixture *f, struct spot_event *evs, size_t n, uint32_t answered, uint64_t now)
{
	struct event_list l = { .events = evs, .n_events = n };

	engine_round(&f->e, &l, answered, "vm0", now);
	fx_drain(f, now);
}

static void fx_end_hook(struct fixture *f, int exit_status, uint64_t now)
{
	struct hook_result res;

	assert_true(f->running);
	hook_result_init(&res, "hook", "/h");
	res.outcome = exit_status == 0 || exit_status == 77 ? HOOK_OK : HOOK_FAILED;
	res.exit_status = exit_status;
	res.start_wall_usec = now - SEC;
	f->running = false;
	engine_hook_ended(&f->e, &res, now);
	hook_result_done(&res);
	fx_drain(f, now);
}

static void fx_ack(struct fixture *f, bool ok, uint64_t now)
{
	size_t i = fx_last(f, ENGINE_SEND_ACK);

	assert_true(i != SIZE_MAX);
	engine_ack_answered(&f->e, f->acts[i].id, f->acts[i].notice, ok, now);
	fx_drain(f, now);
}

static void azure_event(struct spot_event *ev, const char *id, enum event_type t, uint64_t nb)
{
	event_init(ev);
	(void)strscpy(ev->id, sizeof(ev->id), id);
	ev->type = t;
	ev->status = EVENT_SCHEDULED;
	ev->provider = PROVIDER_AZURE;
	ev->feed = FEED_AZURE_SCHEDULED;
	ev->needs_ack = true;
	ev->not_before_usec = nb;
	(void)event_add_resource(ev, "vm0");
}

static void aws_spot(struct spot_event *ev, uint64_t nb)
{
	event_init(ev);
	(void)strscpy(ev->id, sizeof(ev->id), "aws-spot-terminate");
	ev->id_from_first_seen = true;
	ev->type = EVENT_PREEMPT;
	ev->status = EVENT_SCHEDULED;
	ev->provider = PROVIDER_AWS;
	ev->feed = FEED_AWS_SPOT;
	ev->not_before_usec = nb;
	(void)event_add_resource(ev, "vm0");
}

static void aws_asg(struct spot_event *ev)
{
	event_init(ev);
	(void)strscpy(ev->id, sizeof(ev->id), "aws-asg-terminate-i-0123");
	ev->id_from_first_seen = true;
	ev->type = EVENT_TERMINATE;
	ev->status = EVENT_SCHEDULED;
	ev->provider = PROVIDER_AWS;
	ev->feed = FEED_AWS_LIFECYCLE;
	ev->needs_ack = true;
	ev->notice_usec = 3600 * SEC;
	(void)event_add_resource(ev, "vm0");
}

/* 1. Hook 1 of 3 runs, the document lists nothing for 7 s (cancelled
 * after the grace), the same EventId comes back: the hooks left run,
 * and only then is it approved. */
static void test_cancelled_chain_back_resumes(void **unused)
{
	struct fixture f;
	struct spot_event ev;

	fx_init(&f, 3);
	azure_event(&ev, "EV-1", EVENT_PREEMPT, T0 + 300 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	assert_int_equal(fx_count(&f, ENGINE_START_HOOK), 1);
	for (unsigned i = 1; i <= 7; i++)
		fx_round(&f, NULL, 0, EVENT_FEEDS_ALL, T0 + i * SEC);
	fx_end_hook(&f, 0, T0 + 7 * SEC);
	assert_int_equal(f.st.items[0].state, LC_CANCELLED);
	assert_int_equal(fx_count(&f, ENGINE_SEND_ACK), 0);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0 + 9 * SEC);
	assert_int_equal(f.st.items[0].state, LC_RUNNING);
	assert_int_equal(fx_count(&f, ENGINE_SEND_ACK), 0);
	assert_int_equal(fx_count(&f, ENGINE_START_HOOK), 2);
	fx_end_hook(&f, 0, T0 + 10 * SEC);
	fx_end_hook(&f, 0, T0 + 11 * SEC);
	assert_int_equal(fx_count(&f, ENGINE_START_HOOK), 3);
	assert_int_equal(fx_count(&f, ENGINE_SEND_ACK), 1);
	event_done(&ev);
	fx_done(&f);
}

/* 2. A feed that does not answer leaves its notice as it was. */
static void test_unanswered_feed_keeps_notice(void **unused)
{
	struct fixture f;
	struct spot_event evs[2];

	fx_init(&f, 1);
	aws_spot(&evs[0], T0 + 120 * SEC);
	aws_asg(&evs[1]);
	fx_round(&f, evs, 2, EVENT_FEEDS_ALL, T0);
	assert_int_equal(f.st.n, 1);
	assert_int_equal(f.st.items[0].n_notices, 2);
	/* The lifecycle request fails: the Auto Scaling notice is not gone. */
	fx_round(&f, evs, 1, EVENT_FEEDS_ALL & ~(1u << FEED_AWS_LIFECYCLE), T0 + SEC);
	assert_false(f.st.items[0].notices[1].gone);
	assert_int_equal(fx_count(&f, ENGINE_GONE), 0);
	event_done(&evs[0]);
	event_done(&evs[1]);
	fx_done(&f);
}

/* 5. A restart mid-chain without the metadata service: readiness stays
 * down, the chain resumes at once. */
static void test_ready_down_after_restart(void **unused)
{
	struct fixture f;
	struct spot_event ev;
	char *saved;
	struct records st2;
	struct engine e2;

	fx_init(&f, 2);
	azure_event(&ev, "EV-1", EVENT_PREEMPT, T0 + 60 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	event_done(&ev);
	fx_end_hook(&f, 0, T0 + SEC);
	saved = records_to_text(&f.st);
	fx_done(&f);

	records_init(&st2);
	records_from_text(&st2, saved);
	free(saved);
	engine_init(&e2, &f.cfg, &st2);
	engine_start(&e2, T0 + 2 * SEC);
	assert_false(engine_ready(&e2, T0 + 2 * SEC, NULL));
	{
		struct engine_action a;
		bool scan = false;

		while (engine_next_action(&e2, &a))
			scan = scan || a.kind == ENGINE_SCAN_HOOKS;
		assert_true(scan);
	}
	/* Done with its chain: down until its NotBefore. */
	st2.items[0].state = LC_DONE;
	assert_false(engine_ready(&e2, T0 + 3 * SEC, NULL));
	assert_true(engine_ready(&e2, T0 + 61 * SEC, NULL));
	engine_done(&e2);
	records_done(&st2);
}

/* 7. Every start failed until the deadline: never approved. */
static void test_unrun_chain_never_acknowledged(void **unused)
{
	struct fixture f;
	struct spot_event ev;

	fx_init(&f, 1);
	azure_event(&ev, "EV-1", EVENT_PREEMPT, T0 + 12 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	for (uint64_t t = T0; t < T0 + 11 * SEC; t += ENGINE_START_RETRY_USEC) {
		if (fx_last(&f, ENGINE_START_HOOK) != SIZE_MAX && f.running) {
			f.running = false;
			engine_hook_start_failed(&f.e, -EAGAIN, NULL, t);
		} else {
			engine_tick(&f.e, t);
		}
		fx_drain(&f, t);
	}
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0 + 11 * SEC);
	engine_tick(&f.e, T0 + 11 * SEC);
	fx_drain(&f, T0 + 11 * SEC);
	assert_int_equal(f.st.items[0].state, LC_DONE);
	assert_int_equal(fx_count(&f, ENGINE_SEND_ACK), 0);
	assert_int_equal(f.st.items[0].notices[0].ack, ACK_DROPPED);
	event_done(&ev);
	fx_done(&f);
}

/* 8. NotBefore earlier into the past and Started shorten the running
 * hook at once; the kill's grace ends at the deadline. */
static void test_deadline_follows_the_platform(void **unused)
{
	struct fixture f;
	struct spot_event ev;

	fx_init(&f, 1);
	azure_event(&ev, "EV-1", EVENT_PREEMPT, T0 + 300 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	assert_true(f.running);
	assert_int_equal(f.run_end, T0 + 298 * SEC);
	ev.not_before_usec = T0 + 60 * SEC;   /* earlier */
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0 + SEC);
	assert_int_equal(f.run_end, T0 + 58 * SEC);
	ev.not_before_usec = T0 + SEC;        /* into the past */
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0 + 2 * SEC);
	assert_true(f.run_end <= T0 + 2 * SEC + EVENT_EMERGENCY_BUDGET_SEC * SEC);
	event_done(&ev);

	fx_done(&f);
	fx_init(&f, 1);
	azure_event(&ev, "EV-2", EVENT_PREEMPT, T0 + 300 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	ev.status = EVENT_STARTED;
	ev.not_before_usec = 0;
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0 + SEC);
	assert_int_equal(f.run_end, T0 + SEC + EVENT_EMERGENCY_BUDGET_SEC * SEC);
	event_done(&ev);
	fx_done(&f);

	/* Between one and two margins (2 s) of notice: the margin's length,
	 * not what NotBefore - margin leaves; a NotBefore a little earlier
	 * does not lengthen it; a later one moves it as usual. */
	fx_init(&f, 1);
	azure_event(&ev, "EV-3", EVENT_PREEMPT, T0 + 3 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	assert_int_equal(f.run_end, T0 + 2 * SEC);
	assert_int_equal(f.st.items[0].deadline_wall_usec, T0 + 2 * SEC);
	ev.not_before_usec = T0 + 29 * SEC / 10;
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0 + SEC / 2);
	assert_int_equal(f.st.items[0].deadline_wall_usec, T0 + 2 * SEC);
	assert_int_equal(f.run_end, T0 + 2 * SEC);
	ev.not_before_usec = T0 + 10 * SEC;
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0 + SEC);
	assert_int_equal(f.st.items[0].deadline_wall_usec, T0 + 8 * SEC);
	event_done(&ev);
	fx_done(&f);
}

/* 9. A spot interruption and the Auto Scaling termination of the same
 * instance: one chain, the earliest deadline, the completion still sent. */
static void test_spot_and_asg_one_chain(void **unused)
{
	struct fixture f;
	struct spot_event evs[2];

	fx_init(&f, 2);
	f.cfg.provider = PROVIDER_AWS;
	fx_config(&f);
	aws_spot(&evs[0], T0 + 120 * SEC);
	aws_asg(&evs[1]);
	fx_round(&f, evs, 1, EVENT_FEEDS_ALL, T0);
	fx_round(&f, evs, 2, EVENT_FEEDS_ALL, T0 + 4 * SEC);
	assert_int_equal(f.st.n, 1);
	assert_int_equal(fx_count(&f, ENGINE_JOINED), 1);
	assert_int_equal(f.st.items[0].deadline_wall_usec, T0 + 118 * SEC);
	fx_end_hook(&f, 0, T0 + 5 * SEC);
	fx_end_hook(&f, 0, T0 + 6 * SEC);
	assert_int_equal(fx_count(&f, ENGINE_START_HOOK), 2);
	fx_round(&f, evs, 2, EVENT_FEEDS_ALL, T0 + 7 * SEC);
	assert_int_equal(fx_count(&f, ENGINE_SEND_ACK), 1);
	assert_int_equal(f.acts[fx_last(&f, ENGINE_SEND_ACK)].notice, 1);
	event_done(&evs[0]);
	event_done(&evs[1]);
	fx_done(&f);
}

/* 9. A spot notice that leaves the listing for 12 s and comes back with
 * the same action and time is the same eviction: no hook runs again. */
static void test_flapping_spot_notice_is_one_eviction(void **unused)
{
	struct fixture f;
	struct spot_event ev;

	fx_init(&f, 1);
	f.cfg.provider = PROVIDER_AWS;
	fx_config(&f);
	aws_spot(&ev, T0 + 120 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	fx_end_hook(&f, 0, T0 + SEC);
	for (unsigned i = 2; i < 14; i++)
		fx_round(&f, NULL, 0, EVENT_FEEDS_ALL, T0 + i * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0 + 14 * SEC);
	assert_int_equal(f.st.n, 1);
	assert_int_equal(fx_count(&f, ENGINE_DETECTED), 1);
	assert_int_equal(fx_count(&f, ENGINE_START_HOOK), 1);
	event_done(&ev);
	fx_done(&f);
}

/* AWS's own mock moves `time` by a second on every answer: one eviction,
 * one log line per changed fact, not per answer. */
static void test_moving_time_is_quiet(void **unused)
{
	struct fixture f;
	struct spot_event ev;

	fx_init(&f, 1);
	for (unsigned i = 0; i < 20; i++) {
		aws_spot(&ev, T0 + (120 + (i % 2)) * SEC);
		fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0 + i * SEC);
		event_done(&ev);
	}
	assert_int_equal(f.st.n, 1);
	assert_int_equal(fx_count(&f, ENGINE_CHANGED), 0);
	assert_string_equal(f.st.items[0].notices[0].ev.id, "aws-spot-terminate-1795761030");
	fx_done(&f);

	/* The mock's time: now + 120 s at every answer. The deadline follows,
	 * and each change says it is only a drift later (a debug line). */
	fx_init(&f, 1);
	for (unsigned i = 0; i < 20; i++) {
		aws_spot(&ev, T0 + (120 + i) * SEC);
		fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0 + i * SEC);
		event_done(&ev);
	}
	assert_true(fx_count(&f, ENGINE_CHANGED) >= 5);
	for (size_t i = 0; i < f.n; i++)
		if (f.acts[i].kind == ENGINE_CHANGED)
			assert_true(f.acts[i].drift);
	assert_int_equal(f.st.items[0].notices[0].ev.not_before_usec, T0 + 138 * SEC);
	/* Earlier is news: the deadline shortens. */
	aws_spot(&ev, T0 + 60 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0 + 21 * SEC);
	event_done(&ev);
	assert_int_equal(f.acts[fx_last(&f, ENGINE_CHANGED)].kind, ENGINE_CHANGED);
	assert_false(f.acts[fx_last(&f, ENGINE_CHANGED)].drift);
	assert_int_equal(f.st.items[0].deadline_wall_usec, T0 + 58 * SEC);
	fx_done(&f);
}

/* 4. The drain comes before the platform is told. */
static void test_drain_before_acknowledgement(void **unused)
{
	struct fixture f;
	struct spot_event ev;

	fx_init(&f, 0);
	f.cfg.drain_usec = 10 * SEC;
	fx_config(&f);
	azure_event(&ev, "EV-1", EVENT_PREEMPT, T0 + 300 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	assert_false(engine_ready(&f.e, T0, NULL));
	assert_int_equal(f.st.items[0].state, LC_DRAINING);
	assert_int_equal(fx_count(&f, ENGINE_SEND_ACK), 0);
	assert_int_equal(engine_next_wake(&f.e), T0 + 10 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0 + 9 * SEC);
	assert_int_equal(fx_count(&f, ENGINE_SEND_ACK), 0);
	engine_tick(&f.e, T0 + 10 * SEC);
	fx_drain(&f, T0 + 10 * SEC);
	assert_int_equal(fx_count(&f, ENGINE_SEND_ACK), 1);
	/* Never later than the deadline. */
	fx_done(&f);
	fx_init(&f, 0);
	f.cfg.drain_usec = 60 * SEC;
	fx_config(&f);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	assert_int_equal(f.st.items[0].drain_until_wall_usec, T0 + 298 * SEC < T0 + 60 * SEC ? T0 + 298 * SEC : T0 + 60 * SEC);
	event_done(&ev);
	fx_done(&f);
	fx_init(&f, 0);
	f.cfg.drain_usec = 60 * SEC;
	fx_config(&f);
	azure_event(&ev, "EV-3", EVENT_PREEMPT, T0 + 30 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	assert_int_equal(f.st.items[0].drain_until_wall_usec, T0 + 28 * SEC);
	event_done(&ev);
	fx_done(&f);
}

/* Recover hooks: after a cancel (once its NotBefore passed), after an
 * end, and on a new boot; once each. */
static void test_recover_paths(void **unused)
{
	struct fixture f;
	struct spot_event ev;
	char *saved;
	struct records st2;
	struct engine e2;
	struct engine_action a;
	size_t recover_starts = 0;

	/* Cancelled. */
	fx_init(&f, 1);
	azure_event(&ev, "EV-1", EVENT_REBOOT, T0 + 30 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	fx_end_hook(&f, 0, T0 + SEC);
	for (unsigned i = 2; i < 9; i++)
		fx_round(&f, NULL, 0, EVENT_FEEDS_ALL, T0 + i * SEC);
	assert_int_equal(f.st.items[0].state, LC_CANCELLED);
	engine_tick(&f.e, T0 + 30 * SEC);
	fx_drain(&f, T0 + 30 * SEC);
	assert_int_equal(f.st.items[0].state, LC_RECOVERING);
	assert_int_equal(f.st.items[0].recover_reason, RECOVER_CANCELLED);
	fx_end_hook(&f, 0, T0 + 31 * SEC);
	assert_int_equal(f.st.items[0].state, LC_CLOSED);
	event_done(&ev);
	fx_done(&f);

	/* Ended: a Freeze Started and gone. */
	fx_init(&f, 1);
	azure_event(&ev, "EV-2", EVENT_FREEZE, T0 + 30 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	fx_end_hook(&f, 0, T0 + SEC);
	ev.status = EVENT_STARTED;
	ev.not_before_usec = 0;
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0 + 2 * SEC);
	for (unsigned i = 3; i < 10; i++)
		fx_round(&f, NULL, 0, EVENT_FEEDS_ALL, T0 + i * SEC);
	assert_int_equal(f.st.items[0].state, LC_RECOVERING);
	assert_int_equal(f.st.items[0].recover_reason, RECOVER_ENDED);
	event_done(&ev);
	fx_done(&f);

	/* A new boot. */
	fx_init(&f, 1);
	azure_event(&ev, "EV-3", EVENT_PREEMPT, T0 + 30 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	fx_end_hook(&f, 0, T0 + SEC);
	event_done(&ev);
	saved = records_to_text(&f.st);
	fx_done(&f);
	records_init(&st2);
	records_from_text(&st2, saved);
	free(saved);
	(void)strscpy(f.cfg.boot, sizeof(f.cfg.boot), "b00t0002");
	engine_init(&e2, &f.cfg, &st2);
	engine_start(&e2, T0 + 600 * SEC);
	while (engine_next_action(&e2, &a)) {
		if (a.kind == ENGINE_SCAN_HOOKS) {
			struct hook_ref ref = { "10-uncordon", "/h/recover.d/10-uncordon" };

			assert_int_equal(a.chain, CHAIN_RECOVER);
			engine_hooks_scanned(&e2, a.id, a.chain, &ref, 1, true, T0 + 600 * SEC);
		}
		recover_starts += a.kind == ENGINE_START_HOOK && a.chain == CHAIN_RECOVER;
	}
	assert_int_equal(recover_starts, 1);
	assert_int_equal(st2.items[0].recover_reason, RECOVER_BOOT);
	assert_true(st2.items[0].downtime_usec >= 590 * SEC);
	assert_true(engine_ready(&e2, T0 + 600 * SEC, NULL));
	engine_done(&e2);
	records_done(&st2);
}

/* A chain whose hooks never ran recovers nothing. */
static void test_no_recover_without_a_run(void **unused)
{
	struct fixture f;
	struct spot_event ev;

	fx_init(&f, 0);
	azure_event(&ev, "EV-1", EVENT_REBOOT, T0 + 30 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	for (unsigned i = 1; i < 8; i++)
		fx_round(&f, NULL, 0, EVENT_FEEDS_ALL, T0 + i * SEC);
	engine_tick(&f.e, T0 + 31 * SEC);
	fx_drain(&f, T0 + 31 * SEC);
	assert_int_equal(f.st.items[0].state, LC_CLOSED);
	for (size_t i = 0; i < f.n; i++)
		assert_false(f.acts[i].kind == ENGINE_SCAN_HOOKS && f.acts[i].chain == CHAIN_RECOVER);
	event_done(&ev);
	fx_done(&f);
}

/* An ASG termination: heartbeats while the chain runs, then the
 * completion, with ABANDON when a hook asked for it. */
static void test_asg_heartbeats_and_abandon(void **unused)
{
	struct fixture f;
	struct spot_event ev;
	struct hook_result res;
	size_t i;

	fx_init(&f, 1);
	f.cfg.provider = PROVIDER_AWS;
	f.cfg.heartbeat_period_usec = 60 * SEC;
	fx_config(&f);
	aws_asg(&ev);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	assert_int_equal(fx_count(&f, ENGINE_SEND_HEARTBEAT), 1);
	engine_heartbeat_answered(&f.e, f.st.items[0].id, 0, true, T0 + SEC);
	fx_drain(&f, T0 + SEC);
	assert_int_equal(engine_next_wake(&f.e) <= T0 + 60 * SEC, true);
	engine_tick(&f.e, T0 + 60 * SEC);
	fx_drain(&f, T0 + 60 * SEC);
	assert_int_equal(fx_count(&f, ENGINE_SEND_HEARTBEAT), 2);
	engine_heartbeat_answered(&f.e, f.st.items[0].id, 0, true, T0 + 61 * SEC);
	hook_result_init(&res, "hook", "/h");
	res.outcome = HOOK_OK;
	res.exit_status = 0;
	res.start_wall_usec = T0;
	res.report.abandon = true;
	f.running = false;
	engine_hook_ended(&f.e, &res, T0 + 62 * SEC);
	hook_result_done(&res);
	fx_drain(&f, T0 + 62 * SEC);
	i = fx_last(&f, ENGINE_SEND_ACK);
	assert_true(i != SIZE_MAX);
	assert_true(f.acts[i].abandon);
	fx_ack(&f, true, T0 + 63 * SEC);
	assert_int_equal(f.st.items[0].notices[0].ack, ACK_SENT);
	/* No heartbeat after the completion. */
	engine_tick(&f.e, T0 + 200 * SEC);
	fx_drain(&f, T0 + 200 * SEC);
	assert_int_equal(fx_count(&f, ENGINE_SEND_HEARTBEAT), 2);
	event_done(&ev);
	fx_done(&f);
}

/* Approval policy at-once: acknowledged on sight while the hooks run. */
static void test_at_once_policy(void **unused)
{
	struct fixture f;
	struct spot_event ev;

	fx_init(&f, 2);
	f.cfg.drain_usec = 10 * SEC;
	f.cfg.ack_policy[EVENT_REBOOT] = ACK_AT_ONCE;
	fx_config(&f);
	azure_event(&ev, "EV-1", EVENT_REBOOT, T0 + 900 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	assert_int_equal(fx_count(&f, ENGINE_START_HOOK), 1);
	assert_int_equal(fx_count(&f, ENGINE_SEND_ACK), 1);
	event_done(&ev);
	fx_done(&f);
}

/* An eviction done and over (approved, its NotBefore passed, its notice
 * no longer listed) takes no further platform notice: the next one is the
 * next eviction, and its hooks run. The OS shutting down then is part of
 * the eviction that was: it joins it, no hook runs again, and the
 * shutdown is let go at once. */
static void test_next_eviction_after_one_is_over(void **unused)
{
	struct fixture f;
	struct spot_event a, b;

	fx_init(&f, 1);
	fx_config(&f);
	azure_event(&a, "EV-A", EVENT_PREEMPT, T0 + 30 * SEC);
	fx_round(&f, &a, 1, EVENT_FEEDS_ALL, T0);
	fx_end_hook(&f, 0, T0 + SEC);
	fx_ack(&f, true, T0 + SEC);
	assert_int_equal(f.st.items[0].state, LC_DONE);
	/* Still listed past its NotBefore: the eviction is in hand, a second
	 * notice joins it. */
	azure_event(&b, "EV-B", EVENT_TERMINATE, T0 + 300 * SEC);
	fx_round(&f, &a, 1, EVENT_FEEDS_ALL, T0 + 31 * SEC);
	assert_int_equal(f.st.n, 1);
	/* Gone: over (the grace has not passed, it is still DONE). */
	fx_round(&f, NULL, 0, EVENT_FEEDS_ALL, T0 + 32 * SEC);
	assert_int_equal(f.st.items[0].state, LC_DONE);
	assert_true(engine_ready(&f.e, T0 + 32 * SEC, NULL));
	fx_round(&f, &b, 1, EVENT_FEEDS_ALL, T0 + 33 * SEC);
	assert_int_equal(f.st.n, 2);
	assert_int_equal(fx_count(&f, ENGINE_DETECTED), 2);
	assert_int_equal(fx_count(&f, ENGINE_JOINED), 0);
	assert_int_equal(fx_count(&f, ENGINE_START_HOOK), 2);
	assert_string_equal(f.run_id, "EV-B");
	event_done(&a);
	event_done(&b);
	fx_done(&f);

	fx_init(&f, 1);
	fx_config(&f);
	azure_event(&a, "EV-A", EVENT_PREEMPT, T0 + 30 * SEC);
	fx_round(&f, &a, 1, EVENT_FEEDS_ALL, T0);
	fx_end_hook(&f, 0, T0 + SEC);
	fx_ack(&f, true, T0 + SEC);
	fx_round(&f, NULL, 0, EVENT_FEEDS_ALL, T0 + 32 * SEC);
	engine_shutdown(&f.e, 30 * SEC, T0 + 33 * SEC);
	fx_drain(&f, T0 + 33 * SEC);
	fx_round(&f, NULL, 0, EVENT_FEEDS_ALL, T0 + 33 * SEC);
	fx_round(&f, NULL, 0, EVENT_FEEDS_ALL, T0 + 34 * SEC);
	assert_int_equal(f.st.n, 1);
	assert_int_equal(f.st.items[0].n_notices, 2);
	assert_int_equal(fx_count(&f, ENGINE_START_HOOK), 1);
	assert_int_equal(fx_count(&f, ENGINE_RELEASE_SHUTDOWN), 1);
	event_done(&a);
	fx_done(&f);
}

/* A new record is saved right in front of the first hook start, fast. */
static void test_new_record_saved_before_first_hook(void **unused)
{
	struct fixture f;
	struct spot_event ev;
	size_t persist = SIZE_MAX, start = SIZE_MAX;

	fx_init(&f, 1);
	aws_spot(&ev, T0 + 120 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	event_done(&ev);
	for (size_t i = 0; i < f.n; i++) {
		if (f.acts[i].kind == ENGINE_PERSIST && persist == SIZE_MAX)
			persist = i;
		if (f.acts[i].kind == ENGINE_START_HOOK && start == SIZE_MAX)
			start = i;
	}
	assert_true(persist < start && start != SIZE_MAX);
	assert_true(f.acts[persist].fast);
	fx_done(&f);
}

/* Exit 77 and the skips it means are one save. */
static void test_exit77_and_skips_in_one_save(void **unused)
{
	struct fixture f;
	struct spot_event ev;
	size_t skip, persist;

	fx_init(&f, 3);
	azure_event(&ev, "EV-1", EVENT_PREEMPT, T0 + 300 * SEC);
	fx_round(&f, &ev, 1, EVENT_FEEDS_ALL, T0);
	event_done(&ev);
	f.n = 0;
	fx_end_hook(&f, 77, T0 + SEC);
	skip = fx_last(&f, ENGINE_HOOK_SKIPPED);
	persist = SIZE_MAX;
	for (size_t i = 0; i < f.n; i++)
		if (f.acts[i].kind == ENGINE_PERSIST) {
			persist = i;
			break;
		}
	assert_true(skip != SIZE_MAX && persist != SIZE_MAX && skip < persist);
	assert_int_equal(fx_count(&f, ENGINE_START_HOOK), 0);
	fx_done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_is_total),
		cmocka_unit_test(test_promises_in_readme),
		cmocka_unit_test(test_cancelled_chain_back_resumes),
		cmocka_unit_test(test_unanswered_feed_keeps_notice),
		cmocka_unit_test(test_ready_down_after_restart),
		cmocka_unit_test(test_unrun_chain_never_acknowledged),
		cmocka_unit_test(test_deadline_follows_the_platform),
		cmocka_unit_test(test_spot_and_asg_one_chain),
		cmocka_unit_test(test_flapping_spot_notice_is_one_eviction),
		cmocka_unit_test(test_moving_time_is_quiet),
		cmocka_unit_test(test_drain_before_acknowledgement),
		cmocka_unit_test(test_recover_paths),
		cmocka_unit_test(test_no_recover_without_a_run),
		cmocka_unit_test(test_asg_heartbeats_and_abandon),
		cmocka_unit_test(test_at_once_policy),
		cmocka_unit_test(test_next_eviction_after_one_is_over),
		cmocka_unit_test(test_new_record_saved_before_first_hook),
		cmocka_unit_test(test_exit77_and_skips_in_one_save),
		cmocka_unit_test(test_exhaustive),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
