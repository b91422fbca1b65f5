/* agent.c - the eviction pipeline on the event loop: learn this VM's name,
 * poll Scheduled Events, turn a notice for this VM into a hook chain with a
 * deadline, persist every hook's outcome, approve the event once, and keep
 * the state that /v1/status and /metrics show. It never blocks and never
 * exits on a runtime error: it logs once, records the error and retries. */
#include "agent.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <systemd/sd-daemon.h>

#include "azure.h"
#include "http.h"
#include "imds.h"
#include "log.h"
#include "metrics.h"
#include "provider.h"
#include "util.h"

#define IGNORED_IDS_MAX 32

struct agent {
	sd_event *event;
	struct config cfg;
	struct agent_state state;
	struct metrics *metrics;
	struct imds *imds;
	struct http_server *http;

	char *base_url;              /* the metadata service, no trailing slash */
	char *events_url;            /* Azure */
	char *compute_url;           /* Azure */
	struct watcher *watcher;     /* AWS and GCP */
	bool provider_known;         /* false while 'auto' is still probing */
	unsigned probe_step;         /* auto: which provider is tried next */
	sd_event_source *poll_timer;
	uint64_t poll_started_mono_usec;
	unsigned backoff_step;
	bool first_poll_done;
	uint64_t last_failure_log_mono_usec;

	/* The running chain, the record it belongs to (by id: records move
	 * when the array grows) and what it borrows. */
	struct hooks_chain *chain;
	char chain_id[EVENT_ID_MAX];
	bool chain_hook_started;
	uint64_t detected_mono_usec;  /* when detected_id was first read */
	char detected_id[EVENT_ID_MAX];  /* newest event detected by this process */
	char **chain_env;
	char *chain_stdin;
	sd_event_source *chain_reaper;

	sd_event_source *approve_timer;
	char approving_id[EVENT_ID_MAX];

	/* Start times of the last AGENT_RATE_MAX requests (ring), to stay under the
	 * metadata service's rate limit. */
	uint64_t sent_mono_usec[AGENT_RATE_MAX];
	size_t sent_next;

	/* Events seen and deliberately not handled, so each is logged once. */
	char ignored_ids[IGNORED_IDS_MAX][EVENT_ID_MAX];
	size_t ignored_next;

	char *skips_signature;
	enum agent_phase last_notified_phase;
	bool stopping;
};

static void schedule_poll(struct agent *a, uint64_t delay_usec);
static void set_vm_name(struct agent *a, const char *name);
static void maybe_start_chain(struct agent *a);
static bool maybe_approve(struct agent *a, bool final);

static uint64_t jitter(uint64_t usec)
{
	/* +-20 %: spreads a fleet's retries after a shared outage. */
	uint64_t span = usec / 5;

	if (span == 0)
		return usec;
	return usec - span + (uint64_t)random() % (2 * span + 1);
}

/* When n more requests may be sent without more than AGENT_RATE_MAX in
 * any AGENT_RATE_WINDOW_USEC; now when there is room. */
static uint64_t rate_next_free(const struct agent *a, uint64_t now, unsigned n)
{
	uint64_t t = a->sent_mono_usec[(a->sent_next + n - 1) % AGENT_RATE_MAX];

	if (t == 0 || now - t >= AGENT_RATE_WINDOW_USEC)
		return now;
	return t + AGENT_RATE_WINDOW_USEC;
}

static void rate_note(struct agent *a, uint64_t now, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		a->sent_mono_usec[a->sent_next] = now;
		a->sent_next = (a->sent_next + 1) % AGENT_RATE_MAX;
	}
}

/* Requests one poll makes: an AWS round asks three items, a GCP round two. */
static unsigned requests_per_poll(const struct agent *a)
{
	if (!a->provider_known)
		return 1;
	switch (a->cfg.provider) {
	case PROVIDER_AWS:
		return 3;
	case PROVIDER_GCP:
		return 2;
	default:
		return 1;
	}
}

static uint64_t poll_interval_usec(const struct agent *a)
{
	return a->cfg.poll_interval_ms * USEC_PER_MSEC;
}

static bool ignored_once(struct agent *a, const char *id)
{
	for (size_t i = 0; i < IGNORED_IDS_MAX; i++)
		if (strcasecmp(a->ignored_ids[i], id) == 0)
			return false;
	(void)strscpy(a->ignored_ids[a->ignored_next], EVENT_ID_MAX, id);
	a->ignored_next = (a->ignored_next + 1) % IGNORED_IDS_MAX;
	return true;
}

static void save_state(struct agent *a)
{
	int r = state_save(&a->state);

	if (r < 0)
		log_errno(r, "state: cannot write '%s/%s', continuing in memory", a->cfg.state_dir,
			  STATE_FILE_NAME);
}

/* The phase follows the records: an eviction counts while its event is in
 * the document (or its chain still runs). */
static void update_phase(struct agent *a)
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

/* ---- the hook chain ---- */

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
		update_phase(a);
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
	save_state(a);
}

static int reap_chain(sd_event_source *s, void *userdata)
{
	struct agent *a = userdata;

	hooks_chain_free(a->chain);
	a->chain = NULL;
	a->chain_id[0] = '\0';
	strv_free(a->chain_env);
	a->chain_env = NULL;
	free(a->chain_stdin);
	a->chain_stdin = NULL;
	a->chain_reaper = sd_event_source_disable_unref(a->chain_reaper);

	update_phase(a);
	if (a->stopping) {
		save_state(a);
		/* The chain is complete: tell the platform before leaving. */
		if (maybe_approve(a, true)) {
			log_info("hooks ended, sending the approval, then exiting");
			return 0;
		}
		log_info("hooks ended, exiting");
		(void)sd_event_exit(a->event, 0);
		return 0;
	}
	maybe_approve(a, false);
	save_state(a);
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
		a->chain_id[0] = '\0';
		strv_free(a->chain_env);
		a->chain_env = NULL;
		free(a->chain_stdin);
		a->chain_stdin = NULL;
		return rr;
	}
	update_phase(a);
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

/* ---- approval ---- */

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
		save_state(a);
		update_phase(a);
		if (a->stopping) {
			(void)sd_event_exit(a->event, 0);
			return;
		}
		maybe_approve(a, false);
		return;
	}
	save_state(a);
	if (a->stopping) {
		log_event(LOG_WARNING, r->ev.id, "approval failed: %s, stopping anyway", reply->error);
		(void)sd_event_exit(a->event, 0);
		return;
	}
	log_event(LOG_WARNING, r->ev.id, "approval failed: %s, retrying", reply->error);
	(void)sd_event_source_set_time_relative(a->approve_timer, jitter(AGENT_APPROVE_RETRY_USEC));
	(void)sd_event_source_set_enabled(a->approve_timer, SD_EVENT_ONESHOT);
}

static int on_approve_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	maybe_approve(userdata, false);
	return 0;
}

static bool needs_approval(const struct agent *a, const struct event_record *r)
{
	return r->chain_done && !r->no_approve && a->cfg.approve && event_record_awaits_approval(r);
}

/* An approval is wanted but not in flight. */
static bool approval_waiting(const struct agent *a)
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
static bool maybe_approve(struct agent *a, bool final)
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
	next = rate_next_free(a, now, 1);
	if (next > now && !final) {
		(void)sd_event_source_set_time(a->approve_timer, next);
		(void)sd_event_source_set_enabled(a->approve_timer, SD_EVENT_ONESHOT);
		return false;
	}
	rate_note(a, now, 1);
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

/* ---- polling ---- */

static bool eviction_active(const struct agent *a)
{
	for (size_t i = 0; i < a->state.n_records; i++) {
		const struct event_record *r = &a->state.records[i];

		if (!r->gone && !r->drill && (!r->chain_done || needs_approval(a, r)))
			return true;
	}
	return a->chain != NULL;
}

static void poll_failed(struct agent *a, enum imds_result result, const char *what, const char *error)
{
	struct poll_stats *p = &a->state.poll;
	uint64_t now = now_usec(CLOCK_MONOTONIC), delay;

	p->failed++;
	p->consecutive_failures++;
	if (p->first_failure_mono_usec == 0)
		p->first_failure_mono_usec = now;
	(void)snprintf(p->last_error, sizeof(p->last_error), "%s: %s", what, error);
	if (p->consecutive_failures == 1 || now - a->last_failure_log_mono_usec >= AGENT_FAILURE_LOG_USEC) {
		log_warning("imds: %s failed (%s), %" PRIu64 " in a row, retrying", what, error,
			    p->consecutive_failures);
		a->last_failure_log_mono_usec = now;
	}

	/* No backoff while an eviction is in hand: its status and approval
	 * matter more than politeness. */
	if (eviction_active(a)) {
		delay = poll_interval_usec(a);
	} else {
		delay = poll_interval_usec(a) << (a->backoff_step < 6 ? a->backoff_step : 6);
		if (delay > AGENT_BACKOFF_MAX_USEC)
			delay = AGENT_BACKOFF_MAX_USEC;
		if (delay < poll_interval_usec(a))
			delay = poll_interval_usec(a);
		delay = jitter(delay);
		a->backoff_step++;
	}
	(void)result;
	schedule_poll(a, delay);
}

static void poll_succeeded(struct agent *a, uint64_t latency_usec, uint64_t done_mono_usec)
{
	struct poll_stats *p = &a->state.poll;

	if (p->consecutive_failures > 0)
		log_info("imds: polls recovered after %" PRIu64 " failures", p->consecutive_failures);
	p->ok++;
	p->consecutive_failures = 0;
	p->first_failure_mono_usec = 0;
	p->last_error[0] = '\0';
	p->last_ok_wall_usec = now_usec(CLOCK_REALTIME);
	p->last_ok_mono_usec = done_mono_usec;
	p->last_latency_usec = latency_usec;
	a->backoff_step = 0;
}

static void schedule_next_poll(struct agent *a)
{
	uint64_t next = a->poll_started_mono_usec + poll_interval_usec(a), now = now_usec(CLOCK_MONOTONIC);

	schedule_poll(a, next > now ? next - now : 0);
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

static void handle_document(struct agent *a, const struct event_list *list, uint64_t read_mono_usec)
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
	update_phase(a);
	maybe_start_chain(a);
	maybe_approve(a, false);
}

/* A poll answer that did not yield a document: counted, then retried. */
static void reply_failed(struct agent *a, const struct imds_reply *reply, enum imds_result result,
			 const char *what, const char *error)
{
	metrics_imds_request(a->metrics, result, reply->latency_usec);
	poll_failed(a, result, what, error);
}

static void on_events_reply(const struct imds_reply *reply, void *userdata)
{
	struct agent *a = userdata;
	struct event_list list = { 0 };
	uint64_t incarnation;
	size_t ignored = 0;
	int r;

	if (reply->result != IMDS_RESULT_OK) {
		reply_failed(a, reply, reply->result, "scheduled events", reply->error);
		return;
	}
	r = azure_parse_events(reply->body, reply->len, &incarnation, &list, &ignored);
	if (r < 0) {
		reply_failed(a, reply, IMDS_RESULT_BAD_DOCUMENT, "scheduled events", "not a Scheduled Events document");
		return;
	}
	metrics_imds_request(a->metrics, IMDS_RESULT_OK, reply->latency_usec);
	poll_succeeded(a, reply->latency_usec, reply->done_mono_usec);
	/* Only now the slow first Scheduled Events call is behind us. */
	a->first_poll_done = true;
	if ((int64_t)incarnation != a->state.poll.incarnation) {
		if (ignored > 0)
			log_notice("imds: document %" PRIu64 " has %zu events of unknown type or status, ignoring them",
				   incarnation, ignored);
		log_debug("imds: document incarnation %" PRIu64 ", %zu events (%zu ignored)", incarnation,
			  list.n_events, ignored);
		a->state.poll.incarnation = (int64_t)incarnation;
	}
	handle_document(a, &list, reply->done_mono_usec);
	event_list_done(&list);
	schedule_next_poll(a);
}

static void on_compute_reply(const struct imds_reply *reply, void *userdata)
{
	struct agent *a = userdata;
	char *name = NULL;
	int r;

	if (reply->result != IMDS_RESULT_OK) {
		reply_failed(a, reply, reply->result, "instance metadata", reply->error);
		return;
	}
	r = azure_parse_compute_name(reply->body, reply->len, &name);
	if (r < 0) {
		reply_failed(a, reply, IMDS_RESULT_BAD_DOCUMENT, "instance metadata", "no compute.name");
		return;
	}
	metrics_imds_request(a->metrics, IMDS_RESULT_OK, reply->latency_usec);
	poll_succeeded(a, reply->latency_usec, reply->done_mono_usec);
	set_vm_name(a, name);
	free(name);
	schedule_poll(a, 0);
}

static void set_vm_name(struct agent *a, const char *name)
{
	if (a->state.vm_name && strcmp(a->state.vm_name, name) == 0)
		return;
	free(a->state.vm_name);
	a->state.vm_name = xstrdup(name);
	log_info("imds: this VM is '%s'", name);
	a->last_notified_phase = _PHASE_MAX;
	update_phase(a);
}

static void on_watch_result(const struct watch_result *w, void *userdata)
{
	struct agent *a = userdata;

	metrics_imds_request(a->metrics, w->result, w->latency_usec);
	if (w->result != IMDS_RESULT_OK) {
		poll_failed(a, w->result, provider_to_string(a->cfg.provider), w->error);
		return;
	}
	poll_succeeded(a, w->latency_usec, w->done_mono_usec);
	a->first_poll_done = true;
	/* The watcher's notices are about this machine by construction; its
	 * own id is what they name (vm-name overrides Azure's only). */
	if (w->vm_name)
		set_vm_name(a, w->vm_name);
	if (a->state.vm_name && w->events)
		handle_document(a, w->events, w->done_mono_usec);
	schedule_next_poll(a);
}

static int use_provider(struct agent *a, enum provider p)
{
	int r = 0;

	a->cfg.provider = p;
	free(a->state.provider);
	a->state.provider = xstrdup(provider_to_string(p));
	if (p != PROVIDER_AZURE)
		r = watcher_new(p, a->imds, a->base_url, &a->watcher);
	a->provider_known = r >= 0;
	return r;
}

/* 'auto': ask each provider's identity item in turn; the first that
 * answers in its own dialect decides. */
static const enum provider probe_order[] = { PROVIDER_AZURE, PROVIDER_AWS, PROVIDER_GCP };

static void on_probe_reply(const struct imds_reply *reply, void *userdata)
{
	struct agent *a = userdata;
	enum provider p = probe_order[a->probe_step % ELEMENTSOF(probe_order)];
	int r;

	metrics_imds_request(a->metrics, reply->result, reply->latency_usec);
	if (reply->result == IMDS_RESULT_OK) {
		log_info("imds: the metadata service speaks %s", provider_to_string(p));
		r = use_provider(a, p);
		if (r < 0) {
			log_errno(r, "imds: cannot watch %s", provider_to_string(p));
			(void)sd_event_exit(a->event, 1);
			return;
		}
		poll_succeeded(a, reply->latency_usec, reply->done_mono_usec);
		a->last_notified_phase = _PHASE_MAX;
		update_phase(a);
		schedule_poll(a, 0);
		return;
	}
	/* A throttled or failing service may well be this one: ask it again
	 * later rather than take the next dialect's refusal for an answer. */
	if (reply->result == IMDS_RESULT_THROTTLED || reply->status >= 500) {
		poll_failed(a, reply->result, "provider probe", reply->error);
		return;
	}
	a->probe_step++;
	if (a->probe_step % ELEMENTSOF(probe_order) != 0) {
		schedule_poll(a, 0);
		return;
	}
	poll_failed(a, reply->result, "provider probe", "no metadata service answered as azure, aws or gcp");
}

static int start_probe(struct agent *a, uint64_t timeout)
{
	static const char *const azure[] = { "Metadata: true", NULL };
	static const char *const aws[] = { "X-aws-ec2-metadata-token-ttl-seconds: 60", NULL };
	static const char *const gcp[] = { "Metadata-Flavor: Google", NULL };
	enum provider p = probe_order[a->probe_step % ELEMENTSOF(probe_order)];
	char *url;
	int r;

	switch (p) {
	case PROVIDER_AZURE:
		r = imds_request(a->imds, IMDS_SLOT_IDENTITY, "GET", a->compute_url, azure, NULL, timeout,
				 on_probe_reply, a);
		break;
	case PROVIDER_AWS:
		url = xasprintf("%s/latest/api/token", a->base_url);
		r = imds_request(a->imds, IMDS_SLOT_IDENTITY, "PUT", url, aws, "", timeout, on_probe_reply, a);
		free(url);
		break;
	default:
		url = xasprintf("%s/computeMetadata/v1/instance/name", a->base_url);
		r = imds_request(a->imds, IMDS_SLOT_IDENTITY, "GET", url, gcp, NULL, timeout, on_probe_reply, a);
		free(url);
		break;
	}
	return r;
}

static int on_poll_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	static const char *const headers[] = { "Metadata: true", NULL };
	struct agent *a = userdata;
	uint64_t timeout = a->first_poll_done ? AGENT_POLL_TIMEOUT_USEC : AGENT_FIRST_POLL_TIMEOUT_USEC;
	int r;

	uint64_t now = now_usec(CLOCK_MONOTONIC), next;

	if (a->stopping)
		return 0;
	/* An approval waiting for a free request slot goes before a poll. */
	if (approval_waiting(a)) {
		maybe_approve(a, false);
		schedule_poll(a, poll_interval_usec(a));
		return 0;
	}
	/* Polls leave one request of every window free, so an approval never
	 * waits for the rate limit. */
	next = rate_next_free(a, now, requests_per_poll(a) + 1);
	if (next > now) {
		schedule_poll(a, next - now);
		return 0;
	}
	rate_note(a, now, requests_per_poll(a));
	a->poll_started_mono_usec = now;
	if (!a->provider_known)
		r = start_probe(a, timeout);
	else if (a->watcher)
		r = watcher_poll(a->watcher, timeout, on_watch_result, a);
	else if (!a->state.vm_name)
		r = imds_request(a->imds, IMDS_SLOT_IDENTITY, "GET", a->compute_url, headers, NULL, timeout,
				 on_compute_reply, a);
	else
		r = imds_request(a->imds, IMDS_SLOT_POLL, "GET", a->events_url, headers, NULL, timeout,
				 on_events_reply, a);
	if (r < 0)
		poll_failed(a, IMDS_RESULT_TRANSPORT, "request", strerror(-r));
	return 0;
}

static void schedule_poll(struct agent *a, uint64_t delay_usec)
{
	int r = sd_event_source_set_time(a->poll_timer, now_usec(CLOCK_MONOTONIC) + delay_usec);

	if (r >= 0)
		r = sd_event_source_set_enabled(a->poll_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		log_errno(r, "loop: cannot arm the poll timer");
}

/* ---- life cycle ---- */

static void set_urls(struct agent *a)
{
	const char *base = config_imds_url(&a->cfg);
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	free(a->base_url);
	free(a->events_url);
	free(a->compute_url);
	a->base_url = xstrndup(base, n);
	a->events_url = xasprintf("%.*s%s", (int)n, base, AZURE_EVENTS_PATH);
	a->compute_url = xasprintf("%.*s%s", (int)n, base, AZURE_COMPUTE_PATH);
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
	set_urls(a);
	if (a->cfg.provider != PROVIDER_AUTO) {
		r = use_provider(a, a->cfg.provider);
		if (r < 0) {
			log_errno(r, "imds: cannot watch %s", provider_to_string(a->cfg.provider));
			goto fail;
		}
	}

	/* Accuracy 1 us: sd-event's default lets a timer slip by up to 250 ms
	 * to coalesce wake-ups, which an eviction window cannot afford. */
	r = sd_event_add_time(e, &a->poll_timer, CLOCK_MONOTONIC, USEC_INFINITY, 1, on_poll_timer, a);
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
	update_phase(a);
	schedule_poll(a, 0);
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
	hooks_chain_free(a->chain);
	strv_free(a->chain_env);
	free(a->chain_stdin);
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
