/* drill.c - `spot-agent drill`: the same hook runner as a real eviction, on
 * a synthetic event, so operators can rehearse a notice window. It touches
 * neither the metadata service nor the state directory (nor its lock), and
 * reports each hook's exit, duration and budget, and every file that was
 * skipped; a hook file that would not run fails it. */
#include "drill.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hooks/chain.h"
#include "engine/engine.h"
#include "hooks/hooks.h"
#include "log.h"
#include "loop.h"
#include "util.h"

struct drill {
	sd_event *event;
	struct engine engine;
	struct chain chain;
	sd_event_source *timer;      /* engine_next_wake */
	bool interrupted;
	bool done;
};

/* The drill's share of the engine's actions: hooks through chain.c, the
 * end of the chain ends the drill; nothing is persisted or approved. */
static void drill_drain(void *userdata)
{
	struct drill *d = userdata;
	struct engine_action a;

	uint64_t wake;

	while (engine_next_action(&d->engine, &a)) {
		if (chain_carry_out(&d->chain, &a))
			continue;
		if ((a.kind == ENGINE_CHAIN_DONE && a.chain == CHAIN_EVICT) || a.kind == ENGINE_EXIT) {
			d->done = true;
			(void)sd_event_exit(d->event, 0);
		}
	}
	wake = engine_next_wake(&d->engine);
	if (d->timer && wake != USEC_INFINITY) {
		(void)sd_event_source_set_time(d->timer, wall_to_mono_usec(wake));
		(void)sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
	}
}

static int on_drill_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct drill *d = userdata;

	engine_tick(&d->engine, now_usec(CLOCK_REALTIME));
	drill_drain(d);
	return 0;
}

/* Ctrl-C or SIGTERM ends a drill at once: the running hook's tree is
 * killed when the chain is freed, the rest is reported as not run. */
static int on_interrupt(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct drill *d = userdata;

	d->interrupted = true;
	(void)sd_event_exit(d->event, 0);
	return 0;
}

/* Every skipped file, and whether one of them was meant to run: a drill
 * that passes with a hook left out would prove the wrong thing. */
static bool print_skips(const struct hook_plan *plan, FILE *out)
{
	for (size_t i = 0; i < plan->n_skips; i++)
		fprintf(out, "skipped %s: %s%s\n", plan->skips[i].path, plan->skips[i].reason,
			plan->skips[i].refused ? "" : " (ignored)");
	if (plan->n_skips_dropped > 0)
		fprintf(out, "skipped ... and %zu more files\n", plan->n_skips_dropped);
	if (plan->n_refused > 0)
		fprintf(out, "drill: %zu hook %s would not run\n", plan->n_refused,
			plural(plan->n_refused, "file", "files"));
	return plan->n_refused > 0;
}

static void print_report(const struct eviction *r, uint64_t end_wall_usec, FILE *out)
{
	fprintf(out, "%-32s %-8s %6s %10s %10s %s\n", "HOOK", "RESULT", "EXIT", "DURATION", "BUDGET", "NOTE");
	for (size_t i = 0; i < r->n_hooks; i++) {
		const struct hook_result *h = &r->hooks[i];
		char exit_text[16] = "-", note[HOOK_REASON_MAX + 16] = "";

		if (h->term_signal)
			(void)snprintf(exit_text, sizeof(exit_text), "sig%d", h->term_signal);
		else if (h->exit_status >= 0 && h->outcome != HOOK_SKIPPED)
			(void)snprintf(exit_text, sizeof(exit_text), "%d", h->exit_status);
		if (h->outcome == HOOK_SKIPPED)
			(void)snprintf(note, sizeof(note), "%s", h->skip_reason);
		else if (h->timed_out)
			(void)snprintf(note, sizeof(note), "timed out");
		fprintf(out, "%-32s %-8s %6s %9.3fs %9.1fs %s\n", h->name, hook_outcome_to_string(h->outcome),
			exit_text, (double)h->duration_usec / USEC_PER_SEC, (double)h->budget_usec / USEC_PER_SEC,
			note);
	}
	if (end_wall_usec > r->deadline_wall_usec)
		fprintf(out, "chain overran its budget by %.3f s\n",
			(double)(end_wall_usec - r->deadline_wall_usec) / USEC_PER_SEC);
	else
		fprintf(out, "chain ended %.3f s before its deadline\n",
			(double)(r->deadline_wall_usec - end_wall_usec) / USEC_PER_SEC);
}

int drill_run(const struct config *c, enum event_type t, uint64_t notice_sec, FILE *out)
{
	struct records st;
	struct engine_config ec = {
		.margin_usec = c->margin_sec * USEC_PER_SEC,
		.hook_timeout_usec = c->hook_timeout_sec * USEC_PER_SEC,
		.events_mask = ~0u,
		.approve = false,
	};
	char *vm_name = NULL;
	struct event_list list = { 0 };
	struct hook_plan skips = { 0 };
	struct spot_event ev;
	struct drill d = { 0 };
	struct eviction *rec;
	char host[256] = "localhost";
	uint64_t now = now_usec(CLOCK_REALTIME), end;
	bool failed = false;
	int r;

	records_init(&st);   /* no state directory: nothing is persisted */
	if (c->vm_name)
		(void)strscpy(host, sizeof(host), c->vm_name);
	else
		(void)gethostname(host, sizeof(host) - 1);
	vm_name = xstrdup(host);
	engine_init(&d.engine, &ec, &st);
	chain_init(&d.chain);

	event_init(&ev);
	(void)snprintf(ev.id, sizeof(ev.id), "drill-%" PRIu64, now / USEC_PER_SEC);
	ev.type = t;
	ev.status = EVENT_SCHEDULED;
	(void)strscpy(ev.source, sizeof(ev.source), "Drill");
	ev.not_before_usec = now + notice_sec * USEC_PER_SEC;
	ev.provider = c->provider == PROVIDER_AUTO ? PROVIDER_AZURE : c->provider;
	ev.duration_sec = -1;
	(void)strscpy(ev.description, sizeof(ev.description), "spot-agent drill");
	(void)event_add_resource(&ev, host);
	list.events = &ev;
	list.n_events = 1;

	r = loop_new(&d.event);
	if (r < 0) {
		log_errno(r, "loop: cannot create");
		goto out;
	}
	d.chain.event = d.event;
	d.chain.engine = &d.engine;
	d.chain.records = &st;
	d.chain.hooks_dir = c->hooks_dir;
	d.chain.hooks_lib_dir = c->hooks_lib_dir;
	d.chain.vm_name = (const char *const *)&vm_name;
	d.chain.drill = true;
	d.chain.after_input = drill_drain;
	d.chain.userdata = &d;
	if ((r = loop_add_signal(d.event, SIGINT, on_interrupt, &d)) < 0 ||
	    (r = loop_add_signal(d.event, SIGTERM, on_interrupt, &d)) < 0 ||
	    (r = sd_event_add_time(d.event, &d.timer, CLOCK_MONOTONIC, USEC_INFINITY, 1, on_drill_timer, &d)) < 0) {
		log_errno(r, "loop: cannot set up");
		goto out;
	}
	/* Drills leave no leftovers either, but keep out of the daemon's cgroup. */
	(void)hooks_tree_setup(NULL, NULL);

	/* The files that will not run, as the chain's own scan will find them. */
	r = hooks_scan(c->hooks_dir, c->hooks_lib_dir, &skips);
	if (r < 0) {
		log_errno(r, "drill: cannot read hooks directory '%s'", c->hooks_dir);
		goto out;
	}

	/* The synthetic event is one round of a pretend provider. */
	engine_start(&d.engine, now);
	engine_round(&d.engine, &list, EVENT_FEEDS_ALL, host, now);
	rec = st.n > 0 ? &st.items[0] : NULL;
	if (!rec) {
		r = log_errno(-EINVAL, "drill: the synthetic %s event was not taken up", event_type_to_string(t));
		goto out;
	}
	fprintf(out, "drill: %s event %s, notice %" PRIu64 " s, margin %" PRIu64 " s, budget %.1f s\n",
		event_type_to_string(t), rec->id, notice_sec, c->margin_sec,
		(double)(rec->deadline_wall_usec - now) / USEC_PER_SEC);
	fflush(out);
	rec->drill = true;   /* the hooks read "drill": true */
	drill_drain(&d);
	if (!d.done) {
		r = loop_run(d.event);
		if (r < 0) {
			log_errno(r, "loop: failed");
			goto out;
		}
	}
	/* Kills a hook still running after an interrupt, before the report. */
	chain_done(&d.chain);
	rec = &st.items[0];
	end = now_usec(CLOCK_REALTIME);
	if (d.interrupted)
		fprintf(out, "drill: interrupted\n");
	if (rec->n_hooks == 0) {
		/* A drill that ran nothing proves nothing. */
		fprintf(out, "drill: no hooks to run in '%s'\n", c->hooks_dir);
		failed = true;
	}
	print_report(rec, end, out);
	if (print_skips(&skips, out))
		failed = true;
	for (size_t i = 0; i < rec->n_hooks; i++)
		if (rec->hooks[i].outcome == HOOK_FAILED || rec->hooks[i].outcome == HOOK_TIMEOUT ||
		    rec->hooks[i].outcome == HOOK_RUNNING || rec->hooks[i].outcome == HOOK_PENDING ||
		    (rec->hooks[i].outcome == HOOK_SKIPPED && strcmp(rec->hooks[i].skip_reason, "deadline") == 0))
			failed = true;
	if (end > rec->deadline_wall_usec || d.interrupted)
		failed = true;
	fprintf(out, "drill: %s\n", failed ? "FAILED" : "passed");
	r = failed ? 1 : 0;
out:
	hook_plan_done(&skips);
	chain_done(&d.chain);
	sd_event_source_disable_unref(d.timer);
	engine_done(&d.engine);
	sd_event_unref(d.event);
	event_done(&ev);
	records_done(&st);
	free(vm_name);
	return r;
}
