/* agent.c - the daemon's wiring: the engine's inputs come from here (provider
 * rounds, hook ends, approval answers, timers, SIGTERM) and its actions are
 * carried out here (state file, hooks through chain.c, approvals through the
 * provider), with every wait a source on the one sd-event loop. What to do
 * is engine.c's, when to ask the metadata service is poll.c's, how to ask
 * it is the provider's. It never blocks and never exits on a runtime error:
 * it logs once, records the error and retries. */
#include "agent.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "hooks/chain.h"
#include "engine/engine.h"
#include "http/http.h"
#include "clouds/imds.h"
#include "log.h"
#include "logind/logind.h"
#include "http/metrics.h"
#include "engine/poll.h"
#include "clouds/provider.h"
#include "record.h"
#include "store/state.h"
#include "util.h"

#define IGNORED_IDS_MAX 32

struct agent {
	sd_event *event;
	struct config cfg;
	struct agent_state state;
	struct engine engine;
	struct chain chain;
	struct metrics *metrics;
	struct imds *imds;
	struct http_server *http;
	struct logind *logind;           /* the delay inhibitor lock for shutdown */
	struct record *record;           /* the eviction's record: journal, remote-write, push */
	char *base_url;                  /* the metadata service, no trailing slash */

	struct provider_handle *provider;  /* NULL while 'auto' probes */
	struct provider_probe *probe;
	struct poll_sched sched;
	sd_event_source *poll_timer;
	uint64_t round_read_mono_usec;   /* when the round being handled was read */
	bool first_round_done;
	uint64_t last_failure_log_mono_usec;
	int64_t incarnation;             /* last logged, -1 none */
	char identity_error[IMDS_ERROR_MAX];  /* last logged */
	size_t n_other_logged;

	sd_event_source *engine_timer;   /* engine_next_wake */
	sd_event_source *approve_timer;  /* an approval waiting for a free request */
	char approve_waiting[EVENT_ID_MAX];
	char approve_error[IMDS_ERROR_MAX];

	/* Events seen and deliberately not handled, so each is logged once. */
	char ignored_ids[IGNORED_IDS_MAX][EVENT_ID_MAX];
	size_t ignored_next;

	enum agent_phase last_notified_phase;
	/* What /healthz and /readyz last answered, as logged: each change is
	 * logged once, not per request or per poll. */
	sd_event_source *health_timer;   /* the failing streak outgrows the window */
	bool unhealthy;
	uint64_t unhealthy_since_mono_usec;  /* start of the failing streak that did it */
	uint64_t unhealthy_since_wall_usec;  /* the same, as first logged */
	bool unready;
	char unready_id[EVENT_ID_MAX];   /* the event that took readiness down */
	bool draining;
	struct state_sync sync;          /* fsyncs of the last save, owed until the drain ends */
	bool stopping;
};

static void drain(struct agent *a);

static uint64_t now_wall(void)
{
	return now_usec(CLOCK_REALTIME);
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

static struct engine_config engine_config_of(const struct agent *a)
{
	struct engine_config c = {
		.margin_usec = a->cfg.margin_sec * USEC_PER_SEC,
		.hook_timeout_usec = a->cfg.hook_timeout_sec * USEC_PER_SEC,
		.events_mask = a->cfg.events_mask,
		.approve = a->cfg.approve,
		.provider_approves = a->provider && provider_can_approve(a->provider),
		.provider = a->cfg.provider == PROVIDER_AUTO ? PROVIDER_AZURE : a->cfg.provider,
	};

	return c;
}

/* ---- sd_notify STATUS ---- */

static void notify_phase(struct agent *a)
{
	enum agent_phase phase = a->state.phase;
	const struct event_record *r = state_current(&a->state);
	const char *type = r ? event_type_to_string(r->ev.type) : "";
	const char *id = r ? r->ev.id : "";

	if (phase == a->last_notified_phase)
		return;
	a->last_notified_phase = phase;
	switch (phase) {
	case PHASE_IDLE:
		if (a->state.vm_name)
			(void)sd_notifyf(false, "STATUS=Watching %s for evictions of '%s'",
					 a->state.provider, a->state.vm_name);
		else
			(void)sd_notify(false, "STATUS=Asking the metadata service for this VM's name");
		break;
	case PHASE_PENDING:
		(void)sd_notifyf(false, "STATUS=Eviction detected: %s %s, starting hooks", type, id);
		break;
	case PHASE_RUNNING:
		(void)sd_notifyf(false, "STATUS=Running hooks for %s %s", type, id);
		break;
	default:
		(void)sd_notifyf(false, "STATUS=Hooks done for %s %s%s", type, id,
				 r && r->approved ? ", approved" : "");
		break;
	}
}

/* ---- health and readiness, as /healthz and /readyz answer ---- */

/* /readyz answers 503 in these phases (http.c's route_readyz). */
static bool phase_unready(enum agent_phase phase)
{
	return phase == PHASE_PENDING || phase == PHASE_RUNNING || phase == PHASE_DONE;
}

/* Readiness follows the phase, which only drain() changes. */
static void note_readiness(struct agent *a)
{
	const struct event_record *r;

	if (phase_unready(a->state.phase) == a->unready)
		return;
	a->unready = !a->unready;
	if (a->unready) {
		r = state_current(&a->state);
		(void)strscpy(a->unready_id, sizeof(a->unready_id), r ? r->ev.id : "");
		log_event(LOG_NOTICE, r ? r->ev.id : NULL, "readiness: /readyz answers 503 from now: evicting (%s %s)",
			  r ? event_type_to_string(r->ev.type) : "unknown", r ? r->ev.id : "unknown");
	} else {
		log_event(LOG_NOTICE, a->unready_id[0] ? a->unready_id : NULL,
			  "readiness: /readyz answers 200 again: no eviction in hand");
		a->unready_id[0] = '\0';
	}
}

/* Health changes when a round ends, or when a failing streak outgrows
 * HTTP_HEALTH_WINDOW_SEC between two rounds: the timer is armed for that
 * moment, so the line comes when /healthz first answers 503. */
static void note_health(struct agent *a)
{
	const struct poll_stats *p = &a->state.poll;
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	char reason[STATE_REASON_MAX + 64], since[LOG_TIMESTAMP_MAX];
	bool healthy = http_healthy(&a->state, now, reason, sizeof(reason));
	size_t n;
	int r = 0;

	if (!healthy && !a->unhealthy) {
		a->unhealthy = true;
		a->unhealthy_since_mono_usec = p->first_failure_mono_usec;
		a->unhealthy_since_wall_usec = mono_to_wall_usec(p->first_failure_mono_usec);
		n = strlen(reason);
		if (n > 0 && reason[n - 1] == '\n')
			reason[n - 1] = '\0';
		log_warning("health: /healthz answers 503 from now: %s (failing since %s)", reason,
			    log_format_timestamp(since, sizeof(since), a->unhealthy_since_wall_usec));
	} else if (healthy && a->unhealthy) {
		a->unhealthy = false;
		log_notice("health: /healthz answers 200 again: imds polls answer after failing for %.0f s (since %s)",
			   (double)(now - a->unhealthy_since_mono_usec) / USEC_PER_SEC,
			   log_format_timestamp(since, sizeof(since), a->unhealthy_since_wall_usec));
	}
	if (healthy && p->consecutive_failures > 0) {
		r = sd_event_source_set_time(a->health_timer, p->first_failure_mono_usec +
					     HTTP_HEALTH_WINDOW_SEC * USEC_PER_SEC + 1);
		if (r >= 0)
			r = sd_event_source_set_enabled(a->health_timer, SD_EVENT_ONESHOT);
	} else {
		(void)sd_event_source_set_enabled(a->health_timer, SD_EVENT_OFF);
	}
	if (r < 0)
		log_warning_errno(r, "loop: cannot arm the health timer, health changes are logged when a poll ends");
}

static int on_health_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	note_health(userdata);
	return 0;
}

/* ---- carrying out the engine's actions ---- */

/* Every save is in place before the engine's next action is carried out:
 * a restarted agent reads it, so a hook whose outcome was saved never runs
 * again and an id or deadline made up at first sight never changes. What a
 * durable save adds are its two fsyncs, for a crash of the machine; they
 * are paid once the drain has carried out the actions that followed the
 * save (the next hook's start, the approval), before the loop handles
 * anything else. So the next hook and the approval do not wait a
 * millisecond for the disk, and the window in which only a power loss
 * could undo the save is that one loop turn. */
static void save(struct agent *a, bool durable)
{
	/* A fast save after a durable one still owes the durable one's fsyncs. */
	bool owed = durable || a->sync.fd >= 0;
	int r = state_save_begin(&a->state, &a->sync);

	if (r >= 0 && !owed)
		state_sync_drop(&a->sync);
	if (r < 0)
		log_errno(r, "state: cannot write '%s/%s', continuing in memory", a->cfg.state_dir,
			  STATE_FILE_NAME);
}

static void pay_sync(struct agent *a)
{
	int r = state_sync_finish(&a->sync);

	if (r < 0)
		log_errno(r, "state: cannot sync '%s/%s' to disk", a->cfg.state_dir, STATE_FILE_NAME);
}

static void on_approve_answer(const char *id, enum imds_result result, const char *error, void *userdata)
{
	struct agent *a = userdata;
	bool ok = result == IMDS_RESULT_OK;

	metrics_approval(a->metrics, ok);
	(void)strscpy(a->approve_error, sizeof(a->approve_error), ok ? "" : error);
	engine_approval_answered(&a->engine, id, ok, now_wall());
	drain(a);
}

/* Sends the approval now, or as soon as the rate budget has room. */
static void send_approval(struct agent *a, const char *id)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	uint64_t at = poll_rate_free_at(&a->sched, now, 1);
	int r;

	if (at > now && !a->stopping) {
		(void)strscpy(a->approve_waiting, sizeof(a->approve_waiting), id);
		(void)sd_event_source_set_time(a->approve_timer, at);
		(void)sd_event_source_set_enabled(a->approve_timer, SD_EVENT_ONESHOT);
		return;
	}
	a->approve_waiting[0] = '\0';
	r = a->provider ? provider_approve(a->provider, id, AGENT_APPROVE_TIMEOUT_USEC, on_approve_answer, a) :
			  -EOPNOTSUPP;
	if (r < 0) {
		(void)snprintf(a->approve_error, sizeof(a->approve_error), "cannot send: %s", strerror(-r));
		engine_approval_answered(&a->engine, id, false, now_wall());
	}
}

static int on_approve_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct agent *a = userdata;
	char id[EVENT_ID_MAX];

	(void)strscpy(id, sizeof(id), a->approve_waiting);
	if (id[0])
		send_approval(a, id);
	drain(a);
	return 0;
}

static size_t count_left(const struct event_record *r)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n_hooks; i++)
		n += !hook_outcome_is_final(r->hooks[i].outcome);
	return n;
}

/* What the record's labels say of this machine; the provider's identity
 * document (region, zone, size, group) is not read yet. */
static void note_identity(struct agent *a)
{
	struct evidence_identity id;

	memset(&id, 0, sizeof(id));
	(void)strscpy(id.provider, sizeof(id.provider), a->state.provider ? a->state.provider : "");
	(void)strscpy(id.instance, sizeof(id.instance), a->state.vm_name ? a->state.vm_name : "");
	record_set_identity(a->record, &id);
}

static void report_detected(struct agent *a, const struct event_record *r)
{
	uint64_t now = now_wall();
	uint64_t notice = r->ev.not_before_usec > now ? r->ev.not_before_usec - now : 0;

	metrics_event_detected(a->metrics, r->ev.type, notice);
	chain_note_detected(&a->chain, r->ev.id, a->round_read_mono_usec ? a->round_read_mono_usec :
						 now_usec(CLOCK_MONOTONIC));
	/* The record: the notice's journal entry and its series. */
	note_identity(a);
	record_detected(a->record, r, now);
}

static void report_chain_done(struct agent *a, const struct event_record *r)
{
	size_t ok = 0, failed = 0, skipped = 0;

	for (size_t i = 0; i < r->n_hooks; i++) {
		switch (r->hooks[i].outcome) {
		case HOOK_OK:
			ok++;
			break;
		case HOOK_SKIPPED:
			skipped++;
			break;
		default:
			failed++;
			break;
		}
	}
	if (now_wall() > r->deadline_wall_usec && ok + failed > 0)
		metrics_chain_overran(a->metrics);
	log_event(LOG_NOTICE, r->ev.id, "hook chain done: %zu ok, %zu failed or timed out, %zu skipped", ok,
		  failed, skipped);
	/* The record: an overrun's journal entry, the chain's series. */
	note_identity(a);
	record_chain_done(a->record, r, now_wall());
}

static void report_skip(const struct event_record *r, size_t i)
{
	const struct hook_result *h = &r->hooks[i];
	const char *why = h->skip_reason;

	if (strcmp(why, "deadline") == 0)
		why = "deadline passed";
	else if (strcmp(why, "cancelled") == 0)
		why = "the event was cancelled";
	log_hook(strcmp(h->skip_reason, "deadline") == 0 ? LOG_WARNING : LOG_INFO, r->ev.id, h->name,
		 "hook '%s' not run: %s", h->name, why);
}

static void carry_out(struct agent *a, const struct engine_action *act)
{
	struct event_record *r = act->id[0] ? state_find(&a->state, act->id) : NULL;

	if (chain_carry_out(&a->chain, act))
		return;
	switch (act->kind) {
	case ENGINE_PERSIST:
		save(a, !act->fast);
		break;
	case ENGINE_APPROVE:
		send_approval(a, act->id);
		break;
	case ENGINE_EXIT:
		log_info("nothing left in hand, exiting");
		(void)sd_event_exit(a->event, 0);
		break;
	case ENGINE_RELEASE_SHUTDOWN:
		log_info("shutdown: nothing left in hand, letting it go on");
		logind_release(a->logind);
		break;
	case ENGINE_SHUTDOWN_NOTED:
		if (r && r->ev.type == EVENT_SHUTDOWN)
			record_shutdown(a->record, r);   /* the record: its journal entry */
		else
			log_info("shutdown: the eviction in hand covers it");
		break;
	case ENGINE_DETECTED:
		if (r)
			report_detected(a, r);
		break;
	case ENGINE_RESUMED:
		if (r)
			record_resumed(a->record, r);
		if (r)
			log_event(LOG_NOTICE, r->ev.id,
				  "resuming the hook chain of %s %s after a restart: %zu of %zu %s left, %.1f s to the deadline",
				  event_type_to_string(r->ev.type), r->ev.id, r->n_hooks ? count_left(r) : 0,
				  r->n_hooks, plural(r->n_hooks, "hook", "hooks"),
				  (double)(r->deadline_wall_usec - now_wall()) / USEC_PER_SEC);
		break;
	case ENGINE_CHANGED:
		if (r) {
			char nb[RFC3339_MAX];

			log_event(LOG_INFO, r->ev.id, "event is now %s, NotBefore %s",
				  event_status_to_string(r->ev.status),
				  r->ev.not_before_usec ? format_rfc3339(nb, sizeof(nb), r->ev.not_before_usec) : "none");
		}
		break;
	case ENGINE_GONE:
		log_event(LOG_INFO, act->id, "event left the document");
		break;
	case ENGINE_BACK:
		log_event(LOG_INFO, act->id, "event is listed again, resuming");
		break;
	case ENGINE_CANCELLED:
		/* The record: the cancellation's journal entry; the VM lives on
		 * (no recover step yet: recovered at once). */
		if (r) {
			record_cancelled(a->record, r, now_wall());
			record_recovered(a->record, r, EVIDENCE_RECOVER_CANCELLED, now_wall(),
					 r->approved ? r->approved_wall_usec : r->gone_wall_usec);
		} else
			log_event(LOG_NOTICE, act->id, "event stayed away for %" PRIu64 " s: cancelled, the hooks "
				  "left are not run", ENGINE_GONE_GRACE_USEC / USEC_PER_SEC);
		break;
	case ENGINE_IGNORED:
		if (ignored_once(a, act->id))
			log_event(LOG_NOTICE, act->id, "%s event for this VM is not in 'events', ignoring",
				  event_type_to_string(act->event_type));
		break;
	case ENGINE_HOOK_SKIPPED:
		if (r && act->hook < r->n_hooks)
			report_skip(r, act->hook);
		break;
	case ENGINE_CHAIN_DONE:
		if (r)
			report_chain_done(a, r);
		break;
	case ENGINE_APPROVED:
		/* The record: the acknowledgement's journal entry and series. */
		if (r)
			record_approved(a->record, r, now_wall());
		else
			log_event(LOG_NOTICE, act->id, "event approved (StartRequests sent)");
		break;
	case ENGINE_APPROVE_FAILED:
		log_event(LOG_WARNING, act->id, "approval failed: %s, %s", a->approve_error,
			  a->stopping ? "stopping anyway" : "retrying while it is due");
		break;
	default:
		break;
	}
}

static void arm_engine_timer(struct agent *a)
{
	uint64_t wake = engine_next_wake(&a->engine), now = now_wall(), mono = now_usec(CLOCK_MONOTONIC);
	int r;

	if (wake == USEC_INFINITY) {
		(void)sd_event_source_set_enabled(a->engine_timer, SD_EVENT_OFF);
		return;
	}
	r = sd_event_source_set_time(a->engine_timer, wake > now ? mono + (wake - now) : mono);
	if (r >= 0)
		r = sd_event_source_set_enabled(a->engine_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		log_errno(r, "loop: cannot arm the engine timer");
}

/* Carries out what the engine asked, in order; an action may give the
 * engine a new input, whose actions queue behind. */
static void drain(struct agent *a)
{
	struct engine_action act;

	if (a->draining)
		return;
	a->draining = true;
	while (engine_next_action(&a->engine, &act))
		carry_out(a, &act);
	pay_sync(a);
	a->draining = false;
	arm_engine_timer(a);
	notify_phase(a);
	note_readiness(a);
}

static void after_hook(void *userdata)
{
	drain(userdata);
}

/* The record: a failed hook's journal entry, what the hook reported. */
static void on_hook_ended(void *userdata, const char *id, const struct hook_result *res)
{
	struct agent *a = userdata;
	struct event_record *r = state_find(&a->state, id);

	if (r)
		record_hook_ended(a->record, r, res);
}

static int on_engine_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct agent *a = userdata;

	engine_tick(&a->engine, now_wall());
	drain(a);
	return 0;
}

/* ---- polling ---- */

static void schedule_poll(struct agent *a, uint64_t at_mono)
{
	int r = sd_event_source_set_time(a->poll_timer, at_mono);

	if (r >= 0)
		r = sd_event_source_set_enabled(a->poll_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		log_errno(r, "loop: cannot arm the poll timer");
}

/* Errors of a round read "<item>: <detail>": returns the detail and copies
 * the item ("" when there is none). */
static const char *split_error(const char *error, char *item, size_t n)
{
	const char *colon = strstr(error, ": ");

	item[0] = '\0';
	if (!colon || (size_t)(colon - error) >= n)
		return error;
	memcpy(item, error, (size_t)(colon - error));
	item[colon - error] = '\0';
	return colon + 2;
}

static void round_failed(struct agent *a, enum imds_result result, const char *what, const char *error)
{
	struct poll_stats *p = &a->state.poll;
	uint64_t now = now_usec(CLOCK_MONOTONIC);

	p->failed++;
	p->consecutive_failures++;
	if (p->first_failure_mono_usec == 0)
		p->first_failure_mono_usec = now;
	(void)snprintf(p->last_error, sizeof(p->last_error), "%s: %s", what, error);
	if (p->consecutive_failures == 1 || now - a->last_failure_log_mono_usec >= AGENT_FAILURE_LOG_USEC) {
		char item[IMDS_ERROR_MAX];
		const char *detail = split_error(error, item, sizeof(item));

		log_warning("imds: %s failed (%s), %" PRIu64 " in a row, retrying at the poll interval",
			    item[0] ? item : what, detail, p->consecutive_failures);
		a->last_failure_log_mono_usec = now;
	}
	note_health(a);
	poll_round_ended(&a->sched, now, result == IMDS_RESULT_THROTTLED ? POLL_THROTTLED : POLL_FAILED);
	schedule_poll(a, a->sched.next_round_mono_usec);
	/* Time passed without an answer: the engine may have a deadline. */
	engine_tick(&a->engine, now_wall());
	drain(a);
}

static void round_succeeded(struct agent *a, uint64_t latency_usec, uint64_t done_mono_usec)
{
	struct poll_stats *p = &a->state.poll;

	if (p->consecutive_failures > 0)
		log_info("imds: polls recovered after %" PRIu64 " %s", p->consecutive_failures,
			 plural(p->consecutive_failures, "failure", "failures"));
	p->ok++;
	p->consecutive_failures = 0;
	p->first_failure_mono_usec = 0;
	p->last_error[0] = '\0';
	p->last_ok_wall_usec = now_wall();
	p->last_ok_mono_usec = done_mono_usec;
	p->last_latency_usec = latency_usec;
	note_health(a);
}

static void set_vm_name(struct agent *a, const char *name)
{
	if (!name || (a->state.vm_name && strcmp(a->state.vm_name, name) == 0))
		return;
	free(a->state.vm_name);
	a->state.vm_name = xstrdup(name);
	log_info("imds: this VM is '%s'", name);
	a->last_notified_phase = _PHASE_MAX;
}

static void log_round_notes(struct agent *a, const struct provider_round *r)
{
	if (strcmp(a->identity_error, r->identity_error ? r->identity_error : "") != 0) {
		if (r->identity_error && r->identity_error[0]) {
			char item[IMDS_ERROR_MAX];
			const char *detail = split_error(r->identity_error, item, sizeof(item));

			log_warning("imds: %s failed (%s), retrying; events are still read, this VM's "
				    "own are handled once its name is known", item[0] ? item : "identity", detail);
		}
		(void)strscpy(a->identity_error, sizeof(a->identity_error),
			      r->identity_error ? r->identity_error : "");
	}
	if (r->rebalance != a->state.rebalance_recommended) {
		a->state.rebalance_recommended = r->rebalance;
		if (r->rebalance)
			log_notice("imds: rebalance recommendation: the platform suggests moving work off "
				   "this VM (reported, no hooks run)");
		else
			log_info("imds: the rebalance recommendation was withdrawn");
	}
	if (r->incarnation >= 0 && r->incarnation != a->incarnation) {
		a->incarnation = r->incarnation;
		a->state.poll.incarnation = r->incarnation;
		for (size_t i = 0; i < r->n_drops && i < PROVIDER_DROPS_MAX; i++)
			log_notice("imds: document %" PRId64 ": event '%s' dropped: %s, ignoring it", r->incarnation,
				   r->drops[i].id[0] ? r->drops[i].id : "?", r->drops[i].reason);
		if (r->n_drops > PROVIDER_DROPS_MAX)
			log_notice("imds: document %" PRId64 ": and %zu more %s dropped", r->incarnation,
				   r->n_drops - PROVIDER_DROPS_MAX, plural(r->n_drops - PROVIDER_DROPS_MAX, "event", "events"));
		for (size_t i = 0; r->events && i < r->events->n_events; i++)
			if (r->events->events[i].note[0])
				log_notice("imds: document %" PRId64 ": event '%s': %s", r->incarnation,
					   r->events->events[i].id, r->events->events[i].note);
		if (r->n_other > 0 && r->n_other != a->n_other_logged)
			log_info("imds: document %" PRId64 " lists %zu %s for other VMs, ignoring %s",
				 r->incarnation, r->n_other, plural(r->n_other, "event", "events"),
				 plural(r->n_other, "it", "them"));
		a->n_other_logged = r->n_other;
	}
}

static void on_round(const struct provider_round *r, void *userdata)
{
	struct agent *a = userdata;

	if (r->result != IMDS_RESULT_OK) {
		if (r->vm_name)
			set_vm_name(a, r->vm_name);
		round_failed(a, r->result, provider_to_string(provider_kind(a->provider)), r->error);
		return;
	}
	round_succeeded(a, r->latency_usec, r->done_mono_usec);
	a->first_round_done = true;
	/* --vm-name overrides what the service says. */
	if (!a->cfg.vm_name)
		set_vm_name(a, r->vm_name);
	log_round_notes(a, r);
	a->round_read_mono_usec = r->done_mono_usec;
	/* readyz turns 503 in here, before any hook is forked. */
	engine_round(&a->engine, r->events, a->state.vm_name, now_wall());
	drain(a);
	a->round_read_mono_usec = 0;
	poll_round_ended(&a->sched, now_usec(CLOCK_MONOTONIC), POLL_OK);
	schedule_poll(a, a->sched.next_round_mono_usec);
}

static int use_provider(struct agent *a, enum provider p)
{
	struct engine_config ec;
	int r;

	r = provider_new(p, a->imds, a->base_url, a->cfg.vm_name, &a->provider);
	if (r < 0)
		return r;
	provider_set_gcp_notice(a->provider, a->cfg.gcp_preempt_notice_sec);
	a->cfg.provider = p;
	free(a->state.provider);
	a->state.provider = xstrdup(provider_to_string(p));
	ec = engine_config_of(a);
	engine_set_config(&a->engine, &ec);
	a->last_notified_phase = _PHASE_MAX;
	return 0;
}

static void on_probe(enum provider found, enum imds_result result, const char *error, void *userdata)
{
	struct agent *a = userdata;
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	int r;

	if (found != PROVIDER_AUTO) {
		log_info("imds: the metadata service speaks %s; provider auto chose it, the first of azure, aws "
			 "and gcp to answer in its own dialect", provider_to_string(found));
		provider_probe_free(a->probe);
		a->probe = NULL;
		r = use_provider(a, found);
		if (r < 0) {
			log_errno(r, "imds: cannot watch %s", provider_to_string(found));
			(void)sd_event_exit(a->event, 1);
			return;
		}
		round_succeeded(a, 0, now);
		poll_round_ended(&a->sched, now, POLL_OK);
		schedule_poll(a, now);
		notify_phase(a);
		return;
	}
	if (result == IMDS_RESULT_OK) {
		/* That dialect refused: ask the next one at once. */
		schedule_poll(a, now);
		return;
	}
	round_failed(a, result, "provider probe", error);
}

static int on_poll_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct agent *a = userdata;
	uint64_t now = now_usec(CLOCK_MONOTONIC), at, timeout;
	int r;

	if (a->stopping)
		return 0;
	/* A round in flight (an early poll asked for during it) schedules
	 * the next when it ends. */
	if (a->provider && provider_busy(a->provider))
		return 0;
	at = poll_round_at(&a->sched, now, a->provider ? provider_round_cost(a->provider) : 1);
	if (at > now) {
		schedule_poll(a, at);
		return 0;
	}
	timeout = poll_request_timeout(&a->sched, !a->first_round_done);
	poll_round_started(&a->sched, now);
	if (a->provider)
		r = provider_poll(a->provider, timeout, on_round, a);
	else
		r = provider_probe_step(a->probe, timeout, on_probe, a);
	if (r < 0)
		round_failed(a, IMDS_RESULT_TRANSPORT, "request", strerror(-r));
	return 0;
}

static void on_sent(void *userdata, enum imds_slot slot, uint64_t mono_usec)
{
	struct agent *a = userdata;

	if (imds_slot_is_metadata(slot))
		poll_note_sent(&a->sched, mono_usec);
}

static void on_done(void *userdata, enum imds_slot slot, enum imds_result result, uint64_t latency_usec)
{
	struct agent *a = userdata;

	if (imds_slot_is_metadata(slot))
		metrics_imds_request(a->metrics, result, latency_usec);
}

/* ---- the OS shutting down (logind) ---- */

static void on_shutdown_started(uint64_t budget_usec, void *userdata)
{
	struct agent *a = userdata;

	if (budget_usec == 0) {
		log_warning("shutdown: the OS is shutting down and no lock holds it up; "
			    "the hooks in hand get until SIGTERM's end");
		return;
	}
	if (budget_usec == USEC_INFINITY)
		log_notice("shutdown: the OS is shutting down, logind waits for the hooks");
	else
		log_notice("shutdown: the OS is shutting down, logind waits up to %.1f s for the hooks",
			   (double)budget_usec / USEC_PER_SEC);
	engine_shutdown(&a->engine, budget_usec, boot_id_tag(), now_wall());
	/* The notice may be there already (GCP preempts with the soft-off):
	 * ask now rather than at the next tick. */
	schedule_poll(a, now_usec(CLOCK_MONOTONIC));
	drain(a);
}

static void on_shutdown_cancelled(void *userdata)
{
	struct agent *a = userdata;

	log_notice("shutdown: cancelled; the hooks in hand run on");
	engine_shutdown_cancelled(&a->engine, now_wall());
	drain(a);
}

static void on_logind_unavailable(const char *why, void *userdata)
{
	log_info("logind: %s; a shutdown will not wait for the hooks", why);
}

static const struct logind_ops logind_ops = {
	.shutdown_started = on_shutdown_started,
	.shutdown_cancelled = on_shutdown_cancelled,
	.unavailable = on_logind_unavailable,
};

/* ---- life cycle ---- */

static void load_state(struct agent *a)
{
	struct state_load_report rep;
	char path[PATH_MAX];
	int r;

	(void)snprintf(path, sizeof(path), "%s/%s", a->cfg.state_dir, STATE_FILE_NAME);
	r = state_load_report(&a->state, &rep);
	if (r < 0)
		log_warning_errno(r, "state: cannot open '%s', continuing without the saved state",
				  a->cfg.state_dir);
	if (rep.stale_removed > 0)
		log_info("state: removed %u stale temp %s of interrupted saves in '%s'", rep.stale_removed,
			 plural(rep.stale_removed, "file", "files"), a->cfg.state_dir);
	if (rep.error < 0 && rep.moved)
		log_warning("state: '%s' was unreadable (%s), moved it to '%s' and started afresh", path,
			    rep.reason[0] ? rep.reason : strerror(-rep.error), rep.moved);
	else if (rep.error < 0)
		log_warning("state: '%s' was unreadable (%s) and could not be moved aside; starting afresh, "
			    "the next save replaces it", path, rep.reason[0] ? rep.reason : strerror(-rep.error));
	if (rep.dropped > 0)
		log_warning("state: %u %s of '%s' did not read back and %s left out, the others are "
			    "kept (%s); the file as it was is in '%s'", rep.dropped, plural(rep.dropped, "record", "records"),
			    path, rep.dropped == 1 ? "was" : "were", rep.dropped_reason,
			    rep.kept ? rep.kept : "(no copy could be written)");
	free(rep.moved);
	free(rep.kept);
}

/* The hooks' cgroup is named after the state directory: the same agent
 * finds its own leftovers after a restart, and two agents on one machine
 * (tests) keep apart. */
static void setup_tree(struct agent *a)
{
	uint64_t h = hash_fnv(HASH_FNV_INIT, a->cfg.state_dir, a->cfg.state_dir ? strlen(a->cfg.state_dir) : 0);
	char tag[17];
	unsigned killed = 0;
	int r;

	(void)snprintf(tag, sizeof(tag), "%016" PRIx64, h);
	r = hooks_tree_setup(tag, &killed);
	if (r < 0)
		log_warning_errno(r, "hooks: cannot set up the hooks' process tree, children that leave "
				  "their session are still killed while the agent runs");
	if (killed > 0)
		log_warning("hooks: killed %u %s left over from a previous run's hooks", killed,
			    plural(killed, "process", "processes"));
	if (!hooks_tree_cgroup())
		log_info("hooks: no cgroup for the hooks, their leftovers are found as orphans");
}

int agent_new(sd_event *e, struct config *cfg, struct agent **ret)
{
	static const struct imds_observer observer = { .sent = on_sent, .done = on_done };
	struct imds_observer obs = observer;
	struct agent *a = xcalloc(1, sizeof(*a));
	struct engine_config ec;
	const char *base;
	size_t n;
	int r;

	a->sync = (struct state_sync)STATE_SYNC_INIT;
	a->event = sd_event_ref(e);
	a->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg));
	a->last_notified_phase = _PHASE_MAX;
	a->incarnation = -1;

	state_init(&a->state, a->cfg.state_dir);
	a->state.provider = xstrdup(provider_to_string(a->cfg.provider));  /* "auto" until probed */
	a->state.started_mono_usec = now_usec(CLOCK_MONOTONIC);
	a->state.poll.incarnation = -1;
	if (a->cfg.vm_name)
		a->state.vm_name = xstrdup(a->cfg.vm_name);
	load_state(a);
	setup_tree(a);

	ec = engine_config_of(a);
	engine_init(&a->engine, &ec, &a->state);
	chain_init(&a->chain);
	a->chain.event = e;
	a->chain.engine = &a->engine;
	a->chain.state = &a->state;
	a->chain.cfg = &a->cfg;
	a->chain.after_input = after_hook;
	a->chain.hook_ended = on_hook_ended;
	a->chain.userdata = a;

	a->metrics = metrics_new();
	a->chain.metrics = a->metrics;
	r = imds_new(e, &a->imds);
	if (r < 0) {
		log_errno(r, "imds: cannot set up the HTTP client");
		goto fail;
	}
	obs.userdata = a;
	imds_set_observer(a->imds, &obs);
	r = record_new(e, a->imds, &a->cfg, &a->record);
	if (r < 0)
		goto fail;
	base = config_imds_url(&a->cfg);
	for (n = strlen(base); n > 0 && base[n - 1] == '/'; n--)
		;
	a->base_url = xstrndup(base, n);
	if (a->cfg.provider == PROVIDER_AUTO)
		r = provider_probe_new(a->imds, a->base_url, &a->probe);
	else
		r = use_provider(a, a->cfg.provider);
	if (r < 0) {
		log_errno(r, "imds: cannot watch %s", provider_to_string(a->cfg.provider));
		goto fail;
	}
	poll_sched_init(&a->sched, a->cfg.poll_interval_ms * USEC_PER_MSEC);

	/* Accuracy 1 us: sd-event's default lets a timer slip by up to 250 ms
	 * to coalesce wake-ups, which an eviction window cannot afford. */
	r = sd_event_add_time(e, &a->poll_timer, CLOCK_MONOTONIC, USEC_INFINITY, 1, on_poll_timer, a);
	if (r >= 0)
		r = sd_event_add_time(e, &a->engine_timer, CLOCK_MONOTONIC, USEC_INFINITY, 1, on_engine_timer, a);
	if (r >= 0)
		r = sd_event_add_time(e, &a->approve_timer, CLOCK_MONOTONIC, USEC_INFINITY, 1, on_approve_timer, a);
	if (r >= 0)
		r = sd_event_add_time(e, &a->health_timer, CLOCK_MONOTONIC, USEC_INFINITY, 1, on_health_timer, a);
	if (r < 0) {
		log_errno(r, "loop: cannot add timers");
		goto fail;
	}
	(void)sd_event_source_set_description(a->poll_timer, "poll");
	(void)sd_event_source_set_description(a->engine_timer, "engine");
	(void)sd_event_source_set_description(a->approve_timer, "approve");
	(void)sd_event_source_set_description(a->health_timer, "health");
	/* Polls and the engine outrank the HTTP endpoint: a busy client must
	 * not delay detection (lower value = higher priority in sd-event). */
	(void)sd_event_source_set_priority(a->poll_timer, SD_EVENT_PRIORITY_IMPORTANT);
	(void)sd_event_source_set_priority(a->engine_timer, SD_EVENT_PRIORITY_IMPORTANT);

	/* Without logind (containers, minimal images) the agent runs on. */
	r = logind_new(e, &logind_ops, a, &a->logind);
	if (r < 0)
		log_warning_errno(r, "logind: cannot watch for shutdowns, going on without");

	if (strcmp(a->cfg.listen, "none") != 0) {
		r = http_server_new(e, a->cfg.listen, &a->state, a->metrics, SPOT_VERSION, &a->http);
		if (r < 0) {
			log_errno(r, "http: cannot listen on '%s' (%s)", a->cfg.listen,
				  strerrorname_np(-r) ? strerrorname_np(-r) : "?");
			goto fail;
		}
		http_server_expose(a->http, a->cfg.expose_metrics, a->cfg.expose_status);
	}
	*ret = a;
	return 0;
fail:
	agent_free(a);
	return r;
}

/* Where the endpoint listens: the configured address, or systemd's socket,
 * which replaces it. */
static void describe_listen(const struct agent *a, char *buf, size_t n)
{
	if (!a->http)
		(void)snprintf(buf, n, "none");
	else if (sd_listen_fds(0) > 0)
		(void)snprintf(buf, n, "the socket passed by systemd (port %d)", http_server_port(a->http));
	else
		(void)snprintf(buf, n, "%s", a->cfg.listen);
}

/* The one line that says what this run watches and where it answers. */
static void log_started(const struct agent *a, const struct hook_plan *plan, int scan_error)
{
	const char *lib = a->cfg.hooks_lib_dir && a->cfg.hooks_lib_dir[0] ? a->cfg.hooks_lib_dir : NULL;
	char listen[CONFIG_LISTEN_MAX + 64], hooks[32];

	describe_listen(a, listen, sizeof(listen));
	if (scan_error < 0)
		(void)snprintf(hooks, sizeof(hooks), "unreadable hooks");
	else
		(void)snprintf(hooks, sizeof(hooks), "%zu %s", plan->n_hooks, plural(plan->n_hooks, "hook", "hooks"));
	log_info("spot-agent " SPOT_VERSION " started: provider %s, imds %s, listen %s, %s from '%s'%s%s%s, "
		 "state in '%s'", a->cfg.provider == PROVIDER_AUTO ? "auto (probing azure, aws, then gcp)" :
		 provider_to_string(a->cfg.provider), a->base_url, listen, hooks, a->cfg.hooks_dir,
		 lib ? " and '" : "", lib ? lib : "", lib ? "'" : "", a->cfg.state_dir);
}

int agent_start(struct agent *a)
{
	static const struct hook_plan none = { 0 };
	const struct hook_plan *plan = &none;
	int r;

	/* Scanned now, so that the first event need not wait for it. */
	r = chain_prescan(&a->chain, &plan);
	if (r >= 0)
		log_info("hooks: %zu to run from '%s'", plan->n_hooks, a->cfg.hooks_dir);
	log_started(a, plan, r);
	/* An unfinished chain resumes now, without waiting for the service. */
	engine_start(&a->engine, now_wall());
	drain(a);
	schedule_poll(a, now_usec(CLOCK_MONOTONIC));
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
	const struct hook_plan *view = &plan;
	struct engine_config ec;
	int r;

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
	KEEP(vm_name, "vm-name");
#undef KEEP
	if (n.provider != a->cfg.provider && n.provider != PROVIDER_AUTO)
		log_warning("config: changing 'provider' needs a restart, keeping '%s'",
			    provider_to_string(a->cfg.provider));
	n.provider = a->cfg.provider;
	config_done(&a->cfg);
	a->cfg = n;
	log_setup(a->cfg.log_format, a->cfg.log_level);
	http_server_expose(a->http, a->cfg.expose_metrics, a->cfg.expose_status);
	record_reload(a->record, &a->cfg);
	ec = engine_config_of(a);
	engine_set_config(&a->engine, &ec);
	provider_set_gcp_notice(a->provider, a->cfg.gcp_preempt_notice_sec);
	poll_sched_set_interval(&a->sched, a->cfg.poll_interval_ms * USEC_PER_MSEC);

	free(a->chain.skips_signature);
	a->chain.skips_signature = NULL;
	/* Scanned ahead for the next chain; while one is in hand, only for
	 * the log (the next chain scans then). */
	r = chain_prescan(&a->chain, &view);
	if (r == -EBUSY) {
		r = hooks_scan(a->cfg.hooks_dir, a->cfg.hooks_lib_dir, &plan);
		if (r >= 0)
			chain_log_skips(&plan, &a->chain.skips_signature);
		view = &plan;
	}
	if (r >= 0) {
		if (view->n_hooks == 0)
			log_warning("config reloaded, but no hook would run: hooks-dir '%s' is missing or "
				    "has no runnable file", a->cfg.hooks_dir);
		else
			log_info("config reloaded; %zu %s to run from '%s'", view->n_hooks,
				 plural(view->n_hooks, "hook", "hooks"), a->cfg.hooks_dir);
	} else {
		log_warning("config reloaded; hooks directory '%s' cannot be read", a->cfg.hooks_dir);
	}
	hook_plan_done(&plan);
	drain(a);
}

void agent_stop(struct agent *a)
{
	if (a->stopping)
		return;
	a->stopping = true;
	(void)sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
	(void)sd_event_source_set_enabled(a->poll_timer, SD_EVENT_OFF);
	if (a->provider)
		provider_cancel(a->provider);
	if (engine_active(&a->engine))
		log_info("stopping: the hook chain in hand runs to its end within its deadline first");
	engine_stop(&a->engine, now_wall());
	drain(a);
}

void agent_free(struct agent *a)
{
	if (!a)
		return;
	chain_done(&a->chain);
	hooks_tree_done();
	sd_event_source_disable_unref(a->poll_timer);
	sd_event_source_disable_unref(a->engine_timer);
	sd_event_source_disable_unref(a->approve_timer);
	sd_event_source_disable_unref(a->health_timer);
	http_server_free(a->http);
	logind_free(a->logind);
	provider_free(a->provider);
	provider_probe_free(a->probe);
	record_free(a->record);
	imds_free(a->imds);
	metrics_free(a->metrics);
	engine_done(&a->engine);
	pay_sync(a);
	state_done(&a->state);
	config_done(&a->cfg);
	free(a->base_url);
	sd_event_unref(a->event);
	free(a);
}
