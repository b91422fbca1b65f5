/* drill.c - `spot-agent drill`: the same hook runner as a real eviction, on
 * a synthetic event, so operators can rehearse a notice window. It touches
 * neither the metadata service nor the state file, and reports each hook's
 * exit, duration and budget. */
#include "drill.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "hooks.h"
#include "log.h"
#include "loop.h"
#include "state.h"
#include "util.h"

struct drill {
	sd_event *event;
	struct hooks_chain *chain;
	bool interrupted;
};

static void on_finished(struct hooks_chain *c, void *userdata)
{
	struct drill *d = userdata;

	(void)sd_event_exit(d->event, 0);
}

/* Ctrl-C or SIGTERM ends a drill at once: the running hook's process group
 * is killed when the chain is freed, the rest is reported as skipped. */
static int on_interrupt(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct drill *d = userdata;

	d->interrupted = true;
	if (d->chain)
		hooks_chain_stop(d->chain, true);
	(void)sd_event_exit(d->event, 0);
	return 0;
}

static const struct hooks_chain_ops drill_ops = {
	.chain_finished = on_finished,
};

static void print_report(const struct event_record *r, uint64_t end_wall_usec, FILE *out)
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
	struct event_record rec = { 0 };
	struct hook_plan plan = { 0 };
	struct hooks_chain_params p = { 0 };
	struct drill d = { 0 };
	char *skips = NULL, *stdin_json = NULL, **env = NULL;
	char host[256] = "localhost";
	cJSON *json;
	uint64_t now = now_usec(CLOCK_REALTIME), end;
	bool failed = false;
	int r;

	r = hooks_scan(c->hooks_dir, c->hooks_lib_dir, &plan);
	if (r < 0) {
		log_errno(r, "hooks: cannot read '%s'", c->hooks_dir);
		goto out;
	}
	agent_log_skips(&plan, &skips);

	event_init(&rec.ev);
	(void)snprintf(rec.ev.id, sizeof(rec.ev.id), "drill-%" PRIu64, now / USEC_PER_SEC);
	rec.ev.type = t;
	rec.ev.status = EVENT_SCHEDULED;
	(void)strscpy(rec.ev.source, sizeof(rec.ev.source), "Drill");
	rec.ev.not_before_usec = now + notice_sec * USEC_PER_SEC;
	rec.ev.provider = c->provider == PROVIDER_AUTO ? PROVIDER_AZURE : c->provider;
	rec.ev.duration_sec = -1;
	(void)strscpy(rec.ev.description, sizeof(rec.ev.description), "spot-agent drill");
	rec.drill = true;
	rec.detected_wall_usec = now;
	rec.deadline_wall_usec = event_deadline(&rec.ev, now, c->margin_sec * USEC_PER_SEC, &rec.emergency);
	agent_merge_plan(&rec, &plan);
	if (c->vm_name)
		(void)strscpy(host, sizeof(host), c->vm_name);
	else
		(void)gethostname(host, sizeof(host) - 1);

	fprintf(out, "drill: %s event %s, notice %" PRIu64 " s, margin %" PRIu64 " s, %zu hooks, budget %.1f s\n",
		event_type_to_string(t), rec.ev.id, notice_sec, c->margin_sec, rec.n_hooks,
		(double)(rec.deadline_wall_usec - now) / USEC_PER_SEC);
	fflush(out);

	r = loop_new(&d.event);
	if (r < 0) {
		log_errno(r, "loop: cannot create");
		goto out;
	}
	json = event_to_json(&rec.ev, rec.deadline_wall_usec, true);
	stdin_json = cJSON_PrintUnformatted(json);
	cJSON_Delete(json);
	env = hooks_env_new(&rec.ev, host, rec.deadline_wall_usec, true);

	p.event = d.event;
	p.results = rec.hooks;
	p.n_results = rec.n_hooks;
	p.event_id = rec.ev.id;
	p.stdin_json = stdin_json;
	p.env = env;
	p.deadline_mono_usec = wall_to_mono_usec(rec.deadline_wall_usec);
	p.hook_timeout_usec = c->hook_timeout_sec * USEC_PER_SEC;
	p.ops = &drill_ops;
	p.userdata = &d;
	if ((r = loop_add_signal(d.event, SIGINT, on_interrupt, &d)) < 0 ||
	    (r = loop_add_signal(d.event, SIGTERM, on_interrupt, &d)) < 0) {
		log_errno(r, "loop: cannot watch signals");
		goto out;
	}
	r = hooks_chain_start(&p, &d.chain);
	if (r < 0) {
		log_errno(r, "hooks: cannot start the drill");
		goto out;
	}
	r = loop_run(d.event);
	if (r < 0) {
		log_errno(r, "loop: failed");
		goto out;
	}
	/* Kills a hook still running after an interrupt, before the report. */
	hooks_chain_free(d.chain);
	d.chain = NULL;
	end = now_usec(CLOCK_REALTIME);
	if (d.interrupted)
		fprintf(out, "drill: interrupted\n");
	print_report(&rec, end, out);
	for (size_t i = 0; i < rec.n_hooks; i++)
		if (rec.hooks[i].outcome == HOOK_FAILED || rec.hooks[i].outcome == HOOK_TIMEOUT ||
		    (rec.hooks[i].outcome == HOOK_SKIPPED && strcmp(rec.hooks[i].skip_reason, "deadline") == 0))
			failed = true;
	if (end > rec.deadline_wall_usec || d.interrupted)
		failed = true;
	fprintf(out, "drill: %s\n", failed ? "FAILED" : "passed");
	r = failed ? 1 : 0;
out:
	hooks_chain_free(d.chain);
	sd_event_unref(d.event);
	strv_free(env);
	free(stdin_json);
	free(skips);
	hook_plan_done(&plan);
	event_record_done(&rec);
	return r;
}
