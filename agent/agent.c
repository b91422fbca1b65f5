/* agent.c - the eviction pipeline's decisions: turn a notice for this VM
 * into a record with a deadline, run its hook chain, persist every hook's
 * outcome, approve the event once, and keep the phase that /readyz and
 * /v1/status show. Talking to the metadata service is poll.c's. It never
 * blocks and never exits on a runtime error: it logs once, records the
 * error and retries. */
#include "agent-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <systemd/sd-daemon.h>

#include "azure.h"
#include "log.h"
#include "util.h"

static void maybe_start_chain(struct agent *a);

static bool ignored_once(struct agent *a, const char *id)
{
	for (size_t i = 0; i < IGNORED_IDS_MAX; i++)
		if (strcasecmp(a->ignored_ids[i], id) == 0)
			return false;
	(void)strscpy(a->ignored_ids[a->ignored_next], EVENT_ID_MAX, id);
	a->ignored_next = (a->ignored_next + 1) % IGNORED_IDS_MAX;
	return true;
}

void agent_save_state(struct agent *a)
{
	int r = state_save(&a->state);

	if (r < 0)
		log_errno(r, "state: cannot write '%s/%s', continuing in memory", a->cfg.state_dir,
			  STATE_FILE_NAME);
}

/* The phase follows the records: an eviction counts while its event is in
 * the document (or its chain still runs). */
void agent_update_phase(struct agent *a)
{
	enum agent_phase phase = PHASE_IDLE;
	const struct event_record *shown = NULL;

	for (size_t i = 0; i < a->state.n_records; i++) {
		const struct event_record *r = &a->state.records[i];
		bool running = a->chain && strcasecmp(r->ev.id, a->chain_id) == 0;
		enum agent_phase p;

		if (r->drill || (r->gone && !running))
			continue;
		if (running)
			p = a->chain_hook_started ? PHASE_RUNNING : PHASE_PENDING;
		else
			p = r->chain_done ? PHASE_DONE : PHASE_PENDING;
		if (!shown || p == PHASE_RUNNING || (p == PHASE_PENDING && phase == PHASE_DONE)) {
			phase = p;
			shown = r;
		}
	}
	a->state.phase = phase;
	if (phase == a->last_notified_phase)
		return;
	a->last_notified_phase = phase;
	switch (phase) {
	case PHASE_IDLE:
		if (a->state.vm_name)
			(void)sd_notifyf(false, "STATUS=Watching %s scheduled events for '%s'",
					 provider_to_string(a->cfg.provider), a->state.vm_name);
		else
			(void)sd_notify(false, "STATUS=Asking the metadata service for this VM's name");
		break;
	case PHASE_PENDING:
		(void)sd_notifyf(false, "STATUS=Eviction detected: %s %s, starting hooks",
				 event_type_to_string(shown->ev.type), shown->ev.id);
		break;
	case PHASE_RUNNING:
		(void)sd_notifyf(false, "STATUS=Running hooks for %s %s",
				 event_type_to_string(shown->ev.type), shown->ev.id);
		break;
	default:
		(void)sd_notifyf(false, "STATUS=Hooks done for %s %s%s", event_type_to_string(shown->ev.type),
				 shown->ev.id, shown->approved ? ", approved" : "");
		break;
	}
}

void agent_log_skips(const struct hook_plan *plan, char **signature)
{
	size_t len = 1;
	char *sig, *p;

	for (size_t i = 0; i < plan->n_skips; i++)
		len += strlen(plan->skips[i].path) + strlen(plan->skips[i].reason) + 2;
	sig = p = xmalloc(len);
	*p = '\0';
	for (size_t i = 0; i < plan->n_skips; i++)
		p += snprintf(p, len - (size_t)(p - sig), "%s\n%s\n", plan->skips[i].path, plan->skips[i].reason);
	if (*signature && strcmp(*signature, sig) == 0) {
		free(sig);
		return;
	}
	for (size_t i = 0; i < plan->n_skips; i++)
		log_warning("hooks: skipping '%s': %s", plan->skips[i].path, plan->skips[i].reason);
	free(*signature);
	*signature = sig;
}

static int compare_results(const void *x, const void *y)
{
	const struct hook_result *a = x, *b = y;

	return strcmp(a->name, b->name);
}

void agent_merge_plan(struct event_record *r, const struct hook_plan *plan)
{
	size_t n = r->n_hooks;

	for (size_t i = 0; i < r->n_hooks; i++) {
		struct hook_result *h = &r->hooks[i];

		if (!hook_outcome_is_final(h->outcome))
			h->outcome = HOOK_PENDING;
	}
	for (size_t i = 0; i < plan->n_hooks; i++) {
		struct hook_result *found = NULL;

		for (size_t j = 0; j < n; j++)
			if (strcmp(r->hooks[j].name, plan->hooks[i].name) == 0)
				found = &r->hooks[j];
		if (found) {
			/* The file may have moved between /usr/lib and /etc. */
			if (!hook_outcome_is_final(found->outcome))
				(void)strscpy(found->path, sizeof(found->path), plan->hooks[i].path);
			continue;
		}
		if (r->n_hooks >= STATE_RECORD_HOOKS_MAX)
			break;
		r->hooks = xrealloc(r->hooks, (r->n_hooks + 1) * sizeof(*r->hooks));
		hook_result_init(&r->hooks[r->n_hooks], plan->hooks[i].name, plan->hooks[i].path);
		r->n_hooks++;
	}
	/* A pending hook whose file is gone cannot run: it is not in the plan. */
	for (size_t i = 0; i < r->n_hooks; i++) {
		struct hook_result *h = &r->hooks[i];
		bool planned = false;

		if (h->outcome != HOOK_PENDING)
			continue;
		for (size_t j = 0; j < plan->n_hooks; j++)
			if (strcmp(plan->hooks[j].name, h->name) == 0)
				planned = true;
		if (!planned) {
			h->outcome = HOOK_SKIPPED;
			(void)strscpy(h->skip_reason, sizeof(h->skip_reason), "removed");
		}
	}
	qsort(r->hooks, r->n_hooks, sizeof(*r->hooks), compare_results);
}

static struct event_record *chain_record(struct agent *a)
{
	return a->chain ? state_find(&a->state, a->chain_id) : NULL;
}

static void on_hook_started(struct hooks_chain *c, size_t index, void *userdata)
{
	struct agent *a = userdata;

	if (!a->chain_hook_started) {
		uint64_t usec = now_usec(CLOCK_MONOTONIC) - a->detected_mono_usec;

		a->chain_hook_started = true;
		/* A chain resumed after a restart has no detection time here. */
		if (strcasecmp(a->chain_id, a->detected_id) == 0) {
			metrics_first_hook(a->metrics, usec);
			log_event(LOG_INFO, a->chain_id, "first hook started %.3f ms after the notice was read",
				  (double)usec / USEC_PER_MSEC);
		}
		agent_update_phase(a);
	}
}

static void on_hook_finished(struct hooks_chain *c, size_t index, void *userdata)
{
	struct agent *a = userdata;
	struct event_record *r = chain_record(a);
	const struct hook_result *h;

	if (!r)
		return;
	h = &r->hooks[index];
	metrics_hook_done(a->metrics, h->name, h->outcome, h->duration_usec);
	/* Persist before the next hook starts: a hook that completed is
	 * never run again for this event, even after a crash. */
	agent_save_state(a);
}

/* Drops the chain and what it borrows (kills a hook still running). */
static void release_chain(struct agent *a)
{
	hooks_chain_free(a->chain);
	a->chain = NULL;
	a->chain_id[0] = '\0';
	strv_free(a->chain_env);
	a->chain_env = NULL;
	free(a->chain_stdin);
	a->chain_stdin = NULL;
}

static int reap_chain(sd_event_source *s, void *userdata)
{
	struct agent *a = userdata;

	release_chain(a);
	a->chain_reaper = sd_event_source_disable_unref(a->chain_reaper);

	agent_update_phase(a);
	if (a->stopping) {
		agent_save_state(a);
		/* The chain is complete: tell the platform before leaving. */
		if (agent_maybe_approve(a, true)) {
			log_info("hooks ended, sending the approval, then exiting");
			return 0;
		}
		log_info("hooks ended, exiting");
		(void)sd_event_exit(a->event, 0);
		return 0;
	}
	agent_maybe_approve(a, false);
	agent_save_state(a);
	maybe_start_chain(a);
	return 0;
}

static void on_chain_finished(struct hooks_chain *c, void *userdata)
{
	struct agent *a = userdata;
	struct event_record *r = chain_record(a);
	size_t ok = 0, failed = 0, skipped = 0;
	bool all_final = true;
	int rr;

	if (r) {
		for (size_t i = 0; i < r->n_hooks; i++) {
			switch (r->hooks[i].outcome) {
			case HOOK_OK:
				ok++;
				break;
			case HOOK_SKIPPED:
				skipped++;
				break;
			case HOOK_PENDING:
			case HOOK_RUNNING:
				all_final = false;
				break;
			default:
				failed++;
				break;
			}
		}
		r->chain_done = all_final;
		if (all_final && now_usec(CLOCK_REALTIME) > r->deadline_wall_usec) {
			metrics_chain_overran(a->metrics);
			log_event(LOG_WARNING, r->ev.id, "hook chain ended after its deadline");
		}
		log_event(LOG_NOTICE, r->ev.id, "hook chain %s: %zu ok, %zu failed or timed out, %zu skipped",
			  all_final ? "done" : "interrupted", ok, failed, skipped);
		/* Every hook's outcome is on disk already; chain_done is
		 * written after the approval has been sent (reap_chain). */
	}
	/* The chain cannot be freed from inside its own callback. */
	rr = sd_event_add_defer(a->event, &a->chain_reaper, reap_chain, a);
	if (rr < 0) {
		log_errno(rr, "loop: cannot schedule chain cleanup");
		(void)sd_event_exit(a->event, 1);
	}
}

static const struct hooks_chain_ops chain_ops = {
	.hook_started = on_hook_started,
	.hook_finished = on_hook_finished,
	.chain_finished = on_chain_finished,
};

static int start_chain(struct agent *a, struct event_record *r)
{
	struct hooks_chain_params p = { 0 };
	struct hook_plan plan = { 0 };
	cJSON *json;
	uint64_t now = now_usec(CLOCK_REALTIME);
	int rr;

	rr = hooks_scan(a->cfg.hooks_dir, a->cfg.hooks_lib_dir, &plan);
	if (rr < 0 && r->n_hooks == 0) {
		/* Never run an empty chain (and approve) because a directory
		 * could not be read: the caller retries on the next poll. */
		log_event(LOG_ERR, r->ev.id, "hooks: cannot read '%s' or '%s': %s, retrying",
			  a->cfg.hooks_dir, a->cfg.hooks_lib_dir, strerror(-rr));
		return -EAGAIN;
	}
	if (rr < 0) {
		log_event(LOG_ERR, r->ev.id, "hooks: cannot read '%s' or '%s': %s, running the hooks known before",
			  a->cfg.hooks_dir, a->cfg.hooks_lib_dir, strerror(-rr));
		for (size_t i = 0; i < r->n_hooks; i++)
			if (!hook_outcome_is_final(r->hooks[i].outcome))
				r->hooks[i].outcome = HOOK_PENDING;
	} else {
		agent_log_skips(&plan, &a->skips_signature);
		agent_merge_plan(r, &plan);
	}
	hook_plan_done(&plan);

	/* A chain resumed after a restart gets the deadline it had, or the
	 * emergency budget when that has passed meanwhile. */
	if (r->deadline_wall_usec <= now + EVENT_EMERGENCY_BUDGET_SEC * USEC_PER_SEC) {
		bool emergency;
		uint64_t d = event_deadline(&r->ev, now, a->cfg.margin_sec * USEC_PER_SEC, &emergency);

		if (d > r->deadline_wall_usec) {
			r->deadline_wall_usec = d;
			r->emergency = emergency;
		}
	}

	json = event_to_json(&r->ev, r->deadline_wall_usec, false);
	a->chain_stdin = cJSON_PrintUnformatted(json);
	cJSON_Delete(json);
	if (!a->chain_stdin)
		return -ENOMEM;
	a->chain_env = hooks_env_new(&r->ev, a->state.vm_name ? a->state.vm_name : "", r->deadline_wall_usec, false);

	p.event = a->event;
	p.results = r->hooks;
	p.n_results = r->n_hooks;
	p.event_id = r->ev.id;
	p.stdin_json = a->chain_stdin;
	p.env = a->chain_env;
	p.deadline_mono_usec = wall_to_mono_usec(r->deadline_wall_usec);
	p.hook_timeout_usec = a->cfg.hook_timeout_sec * USEC_PER_SEC;
	p.ops = &chain_ops;
	p.userdata = a;

	(void)strscpy(a->chain_id, sizeof(a->chain_id), r->ev.id);
	a->chain_hook_started = false;
	rr = hooks_chain_start(&p, &a->chain);
	if (rr < 0) {
		a->chain = NULL;
		release_chain(a);
		return rr;
	}
	agent_update_phase(a);
	return 0;
}

/* Starts the chain of the most urgent record that still needs one. One
 * chain runs at a time; a second eviction notice waits for the first. */
static void maybe_start_chain(struct agent *a)
{
	struct event_record *best = NULL;
	int r;

	if (a->chain || a->stopping)
		return;
	for (size_t i = 0; i < a->state.n_records; i++) {
		struct event_record *rec = &a->state.records[i];

		if (rec->chain_done || rec->gone || rec->drill)
			continue;
		if (!best || rec->deadline_wall_usec < best->deadline_wall_usec)
			best = rec;
	}
	if (!best)
		return;
	r = start_chain(a, best);
	if (r < 0 && r != -EAGAIN)
		/* Left pending: the next poll tries again. */
		log_errno(r, "hooks: cannot start the chain for event %s, retrying", best->ev.id);
}

static void on_approve_reply(const struct imds_reply *reply, void *userdata)
{
	struct agent *a = userdata;
	struct event_record *r = state_find(&a->state, a->approving_id);
	bool ok = reply->result == IMDS_RESULT_OK;

	a->approving_id[0] = '\0';
	metrics_approval(a->metrics, ok);
	if (!r) {
		if (a->stopping)
			(void)sd_event_exit(a->event, 0);
		return;
	}
	r->approve_attempts++;
	if (ok) {
		r->approved = true;
		r->approved_wall_usec = now_usec(CLOCK_REALTIME);
		log_event(LOG_NOTICE, r->ev.id, "event approved (StartRequests sent)");
		agent_save_state(a);
		agent_update_phase(a);
		if (a->stopping) {
			(void)sd_event_exit(a->event, 0);
			return;
		}
		agent_maybe_approve(a, false);
		return;
	}
	agent_save_state(a);
	if (a->stopping) {
		log_event(LOG_WARNING, r->ev.id, "approval failed: %s, stopping anyway", reply->error);
		(void)sd_event_exit(a->event, 0);
		return;
	}
	log_event(LOG_WARNING, r->ev.id, "approval failed: %s, retrying", reply->error);
	(void)sd_event_source_set_time_relative(a->approve_timer, poll_jitter(AGENT_APPROVE_RETRY_USEC));
	(void)sd_event_source_set_enabled(a->approve_timer, SD_EVENT_ONESHOT);
}

static int on_approve_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	agent_maybe_approve(userdata, false);
	return 0;
}

static bool needs_approval(const struct agent *a, const struct event_record *r)
{
	return r->chain_done && !r->no_approve && a->cfg.approve && event_record_awaits_approval(r);
}

/* An approval is wanted but not in flight. */
bool agent_approval_waiting(const struct agent *a)
{
	if (a->approving_id[0] || imds_busy(a->imds, IMDS_SLOT_APPROVE))
		return false;
	for (size_t i = 0; i < a->state.n_records; i++)
		if (needs_approval(a, &a->state.records[i]))
			return true;
	return false;
}

/* final: the agent is stopping and this is the one request it still
 * sends, without waiting for the rate limit. Returns whether one was sent. */
bool agent_maybe_approve(struct agent *a, bool final)
{
	static const char *const headers[] = { "Metadata: true", "Content-Type: application/json", NULL };
	struct event_record *r = NULL;
	uint64_t now, next;
	char *body;
	int rr;

	if (a->approving_id[0] || (a->stopping && !final) || imds_busy(a->imds, IMDS_SLOT_APPROVE))
		return false;
	for (size_t i = 0; i < a->state.n_records && !r; i++)
		if (needs_approval(a, &a->state.records[i]))
			r = &a->state.records[i];
	if (!r)
		return false;
	now = now_usec(CLOCK_MONOTONIC);
	next = poll_rate_next_free(a, now, 1);
	if (next > now && !final) {
		(void)sd_event_source_set_time(a->approve_timer, next);
		(void)sd_event_source_set_enabled(a->approve_timer, SD_EVENT_ONESHOT);
		return false;
	}
	poll_rate_note(a, now, 1);
	body = azure_approval_body(r->ev.id);
	(void)strscpy(a->approving_id, sizeof(a->approving_id), r->ev.id);
	rr = imds_request(a->imds, IMDS_SLOT_APPROVE, "POST", a->events_url, headers, body,
			  AGENT_APPROVE_TIMEOUT_USEC, on_approve_reply, a);
	free(body);
	if (rr < 0) {
		a->approving_id[0] = '\0';
		log_errno(rr, "imds: cannot send the approval for %s, retrying", r->ev.id);
		(void)sd_event_source_set_time_relative(a->approve_timer, AGENT_APPROVE_RETRY_USEC);
		(void)sd_event_source_set_enabled(a->approve_timer, SD_EVENT_ONESHOT);
		return false;
	}
	return true;
}

bool agent_eviction_active(const struct agent *a)
{
	for (size_t i = 0; i < a->state.n_records; i++) {
		const struct event_record *r = &a->state.records[i];

		if (!r->gone && !r->drill && (!r->chain_done || needs_approval(a, r)))
			return true;
	}
	return a->chain != NULL;
}

static void handle_own_event(struct agent *a, const struct spot_event *ev, uint64_t read_mono_usec)
{
	struct event_record *r = state_find(&a->state, ev->id);
	uint64_t now = now_usec(CLOCK_REALTIME);

	if (r) {
		if (r->gone)
			log_event(LOG_INFO, r->ev.id, "%s event still listed (%s), resuming",
				  event_type_to_string(ev->type), event_status_to_string(ev->status));
		r->gone = false;
		if (r->ev.status != ev->status || r->ev.not_before_usec != ev->not_before_usec) {
			log_event(LOG_INFO, r->ev.id, "event is now %s", event_status_to_string(ev->status));
			event_copy(&r->ev, ev);
		}
		return;
	}

	{
		struct event_record rec = { 0 };
		uint64_t notice = ev->not_before_usec > now ? ev->not_before_usec - now : 0;
		char nb[RFC3339_MAX];

		event_record_init(&rec);
		event_copy(&rec.ev, ev);
		rec.no_approve = !a->cfg.approve;
		rec.detected_wall_usec = now;
		rec.deadline_wall_usec = event_deadline(ev, now, a->cfg.margin_sec * USEC_PER_SEC, &rec.emergency);
		metrics_event_detected(a->metrics, ev->type, notice);
		a->detected_mono_usec = read_mono_usec;
		(void)strscpy(a->detected_id, sizeof(a->detected_id), ev->id);
		log_event(LOG_NOTICE, ev->id, "eviction notice: %s %s, NotBefore %s, hooks have %.1f s%s",
			  event_type_to_string(ev->type), event_status_to_string(ev->status),
			  ev->not_before_usec ? format_rfc3339(nb, sizeof(nb), ev->not_before_usec) : "none",
			  (double)(rec.deadline_wall_usec - now) / USEC_PER_SEC,
			  rec.emergency ? " (emergency budget)" : "");
		(void)state_add_record(&a->state, &rec);
	}
}

static bool own_event(const struct agent *a, const struct spot_event *ev)
{
	return event_names_resource(ev, a->state.vm_name) && (a->cfg.events_mask & (1u << ev->type));
}

static bool listed(const struct agent *a, const struct event_list *list, const char *id)
{
	for (size_t i = 0; i < list->n_events; i++)
		if (strcasecmp(list->events[i].id, id) == 0 && own_event(a, &list->events[i]))
			return true;
	return false;
}

void agent_handle_document(struct agent *a, const struct event_list *list, uint64_t read_mono_usec)
{
	for (size_t i = 0; i < list->n_events; i++) {
		const struct spot_event *ev = &list->events[i];

		if (!event_names_resource(ev, a->state.vm_name)) {
			if (ignored_once(a, ev->id))
				log_event(LOG_INFO, ev->id, "%s event for other VMs, ignoring",
					  event_type_to_string(ev->type));
			continue;
		}
		if (!own_event(a, ev)) {
			if (ignored_once(a, ev->id))
				log_event(LOG_NOTICE, ev->id, "%s event for this VM is not in 'events', ignoring",
					  event_type_to_string(ev->type));
			continue;
		}
		handle_own_event(a, ev, read_mono_usec);
	}

	for (size_t i = 0; i < a->state.n_records; i++) {
		struct event_record *r = &a->state.records[i];

		if (r->drill || r->gone || listed(a, list, r->ev.id))
			continue;
		/* Not persisted: whether an event is listed is read afresh
		 * from the first document after a restart, and a write here
		 * would put an fsync in front of the next chain's first hook. */
		r->gone = true;
		log_event(LOG_INFO, r->ev.id, "event left the document");
	}

	/* readyz turns 503 here, before any hook is forked. */
	agent_update_phase(a);
	maybe_start_chain(a);
	agent_maybe_approve(a, false);
}

int agent_new(sd_event *e, struct config *cfg, struct agent **ret)
{
	struct agent *a = xcalloc(1, sizeof(*a));
	struct hook_plan plan = { 0 };
	char *moved = NULL;
	int r;

	a->event = sd_event_ref(e);
	a->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	a->last_notified_phase = _PHASE_MAX;
	srandom((unsigned)now_usec(CLOCK_MONOTONIC) ^ (unsigned)getpid());

	state_init(&a->state, a->cfg.state_dir);
	a->state.provider = xstrdup(provider_to_string(a->cfg.provider));  /* "auto" until probed */
	a->state.started_mono_usec = now_usec(CLOCK_MONOTONIC);
	a->state.poll.incarnation = -1;
	if (a->cfg.vm_name)
		a->state.vm_name = xstrdup(a->cfg.vm_name);
	r = state_load(&a->state, &moved);
	if (r < 0) {
		log_errno(r, "state: cannot use '%s'", a->cfg.state_dir);
		goto fail;
	}
	if (moved) {
		log_warning("state: '%s/%s' was unreadable, moved it to '%s' and started afresh",
			    a->cfg.state_dir, STATE_FILE_NAME, moved);
		free(moved);
	}
	/* Whether a remembered event is still scheduled is known only from
	 * the next document. */
	for (size_t i = 0; i < a->state.n_records; i++)
		a->state.records[i].gone = true;

	r = hooks_scan(a->cfg.hooks_dir, a->cfg.hooks_lib_dir, &plan);
	if (r < 0) {
		log_errno(r, "hooks: cannot read '%s'", a->cfg.hooks_dir);
		goto fail;
	}
	agent_log_skips(&plan, &a->skips_signature);
	log_info("hooks: %zu to run from '%s'", plan.n_hooks, a->cfg.hooks_dir);
	hook_plan_done(&plan);

	a->metrics = metrics_new();
	r = imds_new(e, &a->imds);
	if (r < 0) {
		log_errno(r, "imds: cannot set up the HTTP client");
		goto fail;
	}
	poll_set_urls(a);
	if (a->cfg.provider != PROVIDER_AUTO) {
		r = poll_use_provider(a, a->cfg.provider);
		if (r < 0) {
			log_errno(r, "imds: cannot watch %s", provider_to_string(a->cfg.provider));
			goto fail;
		}
	}

	/* Accuracy 1 us: sd-event's default lets a timer slip by up to 250 ms
	 * to coalesce wake-ups, which an eviction window cannot afford. */
	r = sd_event_add_time(e, &a->poll_timer, CLOCK_MONOTONIC, USEC_INFINITY, 1, poll_on_timer, a);
	if (r >= 0)
		r = sd_event_add_time(e, &a->approve_timer, CLOCK_MONOTONIC, USEC_INFINITY, 1, on_approve_timer, a);
	if (r < 0) {
		log_errno(r, "loop: cannot add timers");
		goto fail;
	}
	(void)sd_event_source_set_description(a->poll_timer, "poll");
	(void)sd_event_source_set_description(a->approve_timer, "approve");
	/* The poll timer outranks the HTTP endpoint: a busy client must not
	 * delay detection (lower value = higher priority in sd-event). */
	(void)sd_event_source_set_priority(a->poll_timer, SD_EVENT_PRIORITY_IMPORTANT);

	if (strcmp(a->cfg.listen, "none") != 0) {
		r = http_server_new(e, a->cfg.listen, &a->state, a->metrics, SPOT_VERSION, &a->http);
		if (r < 0) {
			log_errno(r, "http: cannot listen on '%s'", a->cfg.listen);
			goto fail;
		}
	}
	*ret = a;
	return 0;
fail:
	agent_free(a);
	return r;
}

int agent_start(struct agent *a)
{
	agent_update_phase(a);
	poll_schedule(a, 0);
	return 0;
}

static bool str_changed(const char *x, const char *y)
{
	if (!x || !y)
		return x != y;
	return strcmp(x, y) != 0;
}

void agent_reload(struct agent *a, struct config *cfg)
{
	struct config n = *cfg;
	struct hook_plan plan = { 0 };

	memset(cfg, 0, sizeof(*cfg));
#define KEEP(field, key)                                                                     \
	do {                                                                                 \
		if (str_changed(n.field, a->cfg.field))                                      \
			log_warning("config: changing '" key "' needs a restart, keeping '%s'", \
				    a->cfg.field ? a->cfg.field : "");                       \
		free(n.field);                                                               \
		n.field = a->cfg.field;                                                      \
		a->cfg.field = NULL;                                                         \
	} while (0)
	KEEP(imds_url, "imds-url");
	KEEP(state_dir, "state-dir");
	KEEP(listen, "listen");
#undef KEEP
	if (n.provider != a->cfg.provider && n.provider != PROVIDER_AUTO)
		log_warning("config: changing 'provider' needs a restart, keeping '%s'",
			    provider_to_string(a->cfg.provider));
	n.provider = a->cfg.provider;
	if (str_changed(n.vm_name, a->cfg.vm_name) && n.vm_name) {
		free(a->state.vm_name);
		a->state.vm_name = xstrdup(n.vm_name);
	}
	config_done(&a->cfg);
	a->cfg = n;
	log_setup(a->cfg.log_format, a->cfg.log_level);

	if (hooks_scan(a->cfg.hooks_dir, a->cfg.hooks_lib_dir, &plan) >= 0) {
		free(a->skips_signature);
		a->skips_signature = NULL;
		agent_log_skips(&plan, &a->skips_signature);
		log_info("config reloaded; %zu hooks to run from '%s'", plan.n_hooks, a->cfg.hooks_dir);
	} else {
		log_warning("config reloaded; hooks directory '%s' cannot be read", a->cfg.hooks_dir);
	}
	hook_plan_done(&plan);
}

void agent_stop(struct agent *a)
{
	if (a->stopping)
		return;
	a->stopping = true;
	(void)sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
	(void)sd_event_source_set_enabled(a->poll_timer, SD_EVENT_OFF);
	(void)sd_event_source_set_enabled(a->approve_timer, SD_EVENT_OFF);
	imds_cancel(a->imds, IMDS_SLOT_POLL);
	imds_cancel(a->imds, IMDS_SLOT_IDENTITY);
	if (a->chain && !a->chain_reaper) {
		log_info("stopping after the running hook; the rest resume after a restart");
		hooks_chain_stop(a->chain, false);
		return;
	}
	if (!a->chain)
		(void)sd_event_exit(a->event, 0);
}

void agent_free(struct agent *a)
{
	if (!a)
		return;
	release_chain(a);
	sd_event_source_disable_unref(a->chain_reaper);
	sd_event_source_disable_unref(a->poll_timer);
	sd_event_source_disable_unref(a->approve_timer);
	http_server_free(a->http);
	watcher_free(a->watcher);
	imds_free(a->imds);
	metrics_free(a->metrics);
	state_done(&a->state);
	config_done(&a->cfg);
	free(a->base_url);
	free(a->events_url);
	free(a->compute_url);
	free(a->skips_signature);
	sd_event_unref(a->event);
	free(a);
}
