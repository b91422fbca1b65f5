/* agent-report.c - what the engine reports, put into words and numbers:
 * one log line per changed fact (a notice seen, joined, gone, back; a
 * transition of the lifecycle; a hook skipped; the chain's end; an
 * acknowledgement), the metrics, and the changes of /healthz, /readyz and
 * sd_notify's STATUS, each logged once each way. It changes nothing the
 * engine decided. */
#include "agent-internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "util.h"

static bool ignored_once(struct agent *a, const char *id)
{
	for (size_t i = 0; i < IGNORED_IDS_MAX; i++)
		if (strcasecmp(a->ignored_ids[i], id) == 0)
			return false;
	(void)strscpy(a->ignored_ids[a->ignored_next], EVENT_ID_MAX, id);
	a->ignored_next = (a->ignored_next + 1) % IGNORED_IDS_MAX;
	return true;
}

static const char *type_of(const struct eviction *r)
{
	const struct notice *lead = r ? eviction_lead_const(r) : NULL;

	return lead ? event_type_to_string(lead->ev.type) : "unknown";
}

/* ---- sd_notify STATUS ---- */

void agent_notify_phase(struct agent *a)
{
	enum agent_phase phase = status_phase(&a->state, agent_now_wall());
	const struct eviction *r = status_current(&a->state);
	const char *id = r ? r->id : "";

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
		(void)sd_notifyf(false, "STATUS=Eviction detected: %s %s, starting hooks", type_of(r), id);
		break;
	case PHASE_RUNNING:
		(void)sd_notifyf(false, "STATUS=Running hooks for %s %s", type_of(r), id);
		break;
	default:
		(void)sd_notifyf(false, "STATUS=Hooks done for %s %s (%s)", type_of(r), id,
				 r ? lifecycle_to_string(r->state) : "");
		break;
	}
}

/* ---- health and readiness, as /healthz and /readyz answer ---- */

/* Readiness follows the engine (engine_ready), which only inputs change;
 * the engine's timer wakes the loop when it changes with time. */
void agent_note_readiness(struct agent *a)
{
	const struct eviction *r = NULL;
	bool ready = status_ready(&a->state, agent_now_wall(), &r);

	if (ready != a->unready)
		return;
	a->unready = !ready;
	if (a->unready) {
		(void)strscpy(a->unready_id, sizeof(a->unready_id), r ? r->id : "");
		log_event(LOG_NOTICE, r ? r->id : NULL, "readiness: /readyz answers 503 from now: evicting (%s %s)",
			  type_of(r), r ? r->id : "unknown");
	} else {
		log_event(LOG_NOTICE, a->unready_id[0] ? a->unready_id : NULL,
			  "readiness: /readyz answers 200 again: no eviction in hand");
		a->unready_id[0] = '\0';
	}
}

/* Health changes when a round ends, or when a failing streak (or the wait
 * for the first answer) outgrows HTTP_HEALTH_WINDOW_SEC between two rounds:
 * the timer is armed for that moment, so the line comes when /healthz
 * first answers 503. */
void agent_note_health(struct agent *a)
{
	const struct poll_stats *p = &a->state.poll;
	uint64_t now = now_usec(CLOCK_MONOTONIC), since;
	char reason[STATUS_REASON_MAX + 64], at[LOG_TIMESTAMP_MAX];
	bool healthy = http_healthy(&a->state, now, reason, sizeof(reason));
	size_t n;
	int r = 0;

	since = p->first_failure_mono_usec ? p->first_failure_mono_usec : a->state.started_mono_usec;
	if (!healthy && !a->unhealthy) {
		a->unhealthy = true;
		a->unhealthy_since_mono_usec = since;
		a->unhealthy_since_wall_usec = mono_to_wall_usec(since);
		n = strlen(reason);
		if (n > 0 && reason[n - 1] == '\n')
			reason[n - 1] = '\0';
		log_warning("health: /healthz answers 503 from now: %s (failing since %s)", reason,
			    log_format_timestamp(at, sizeof(at), a->unhealthy_since_wall_usec));
	} else if (healthy && a->unhealthy) {
		a->unhealthy = false;
		log_notice("health: /healthz answers 200 again: imds polls answer after failing for %.0f s (since %s)",
			   (double)(now - a->unhealthy_since_mono_usec) / USEC_PER_SEC,
			   log_format_timestamp(at, sizeof(at), a->unhealthy_since_wall_usec));
	}
	if (healthy && (p->consecutive_failures > 0 || p->ok == 0)) {
		r = sd_event_source_set_time(a->health_timer, since + HTTP_HEALTH_WINDOW_SEC * USEC_PER_SEC + 1);
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
	agent_note_health(userdata);
	return 0;
}

/* ---- hooks ---- */

void agent_hook_started(void *userdata, const struct eviction *r, enum chain_kind c, size_t hook)
{
	struct agent *a = userdata;
	uint64_t usec;

	if (c != CHAIN_EVICT || a->first_hook_noted || strcasecmp(a->detected_id, r->id) != 0)
		return;
	a->first_hook_noted = true;
	usec = now_usec(CLOCK_MONOTONIC) - a->detected_mono_usec;
	metrics_first_hook(a->metrics, usec);
	log_event(LOG_INFO, r->id, "first hook started %.3f ms after the notice was read",
		  (double)usec / USEC_PER_MSEC);
}

void agent_hook_ended(void *userdata, const struct eviction *r, enum chain_kind c, const struct hook_result *res)
{
	struct agent *a = userdata;

	metrics_hook_done(a->metrics, res->name, res->outcome, res->duration_usec);
	if (c == CHAIN_EVICT)
		record_hook_ended(a->record, r, res);
}

/* What the record's labels say of this machine. */
static void note_identity(struct agent *a)
{
	struct evidence_identity id;

	memset(&id, 0, sizeof(id));
	(void)strscpy(id.provider, sizeof(id.provider), a->state.provider ? a->state.provider : "");
	(void)strscpy(id.instance, sizeof(id.instance), a->state.vm_name ? a->state.vm_name : "");
	record_set_identity(a->record, &id);
}

static size_t count_left(const struct hook_result *hooks, size_t n_hooks)
{
	size_t n = 0;

	for (size_t i = 0; i < n_hooks; i++)
		n += !hook_outcome_is_final(hooks[i].outcome);
	return n;
}

static void report_detected(struct agent *a, const struct eviction *r)
{
	uint64_t now = agent_now_wall();
	const struct notice *lead = eviction_lead_const(r);
	uint64_t nb = lead ? lead->ev.not_before_usec : 0;
	uint64_t notice = nb > now ? nb - now : 0;

	metrics_event_detected(a->metrics, lead ? lead->ev.type : EVENT_PREEMPT, notice);
	(void)strscpy(a->detected_id, sizeof(a->detected_id), r->id);
	a->detected_mono_usec = a->round_read_mono_usec ? a->round_read_mono_usec : now_usec(CLOCK_MONOTONIC);
	a->first_hook_noted = false;
	/* The notice's journal record and its series. */
	note_identity(a);
	record_detected(a->record, r, now);
}

/* The chain's end, naming the hooks that failed; at warning when any did. */
static void report_chain_done(struct agent *a, const struct eviction *r, enum chain_kind c)
{
	const struct hook_result *hooks = c == CHAIN_RECOVER ? r->recover_hooks : r->hooks;
	size_t n = c == CHAIN_RECOVER ? r->n_recover_hooks : r->n_hooks;
	size_t ok = 0, failed = 0, skipped = 0;
	char names[512] = "";

	for (size_t i = 0; i < n; i++) {
		switch (hooks[i].outcome) {
		case HOOK_OK:
			ok++;
			break;
		case HOOK_SKIPPED:
			skipped++;
			break;
		default: {
			size_t k = strlen(names);

			failed++;
			(void)snprintf(names + k, sizeof(names) - k, "%s'%s'", k ? ", " : "", hooks[i].name);
			break;
		}
		}
	}
	if (c == CHAIN_EVICT && agent_now_wall() > r->deadline_wall_usec && ok + failed > 0)
		metrics_chain_overran(a->metrics);
	if (c == CHAIN_EVICT)
		record_chain_done(a->record, r, agent_now_wall());
	log_event(failed ? LOG_WARNING : LOG_NOTICE, r->id, "%s chain done: %zu ok, %zu failed or timed out%s%s%s, %zu skipped",
		  c == CHAIN_RECOVER ? "recover" : "hook", ok, failed, failed ? " (" : "", names,
		  failed ? ")" : "", skipped);
}

static void report_skip(const struct eviction *r, enum chain_kind c, size_t i)
{
	const struct hook_result *h = c == CHAIN_RECOVER ? &r->recover_hooks[i] : &r->hooks[i];
	const char *why = h->skip_reason;

	if (strcmp(why, "deadline") == 0)
		why = "deadline passed";
	else if (strcmp(why, "cancelled") == 0)
		why = "the eviction was cancelled";
	else if (strcmp(why, "evicting") == 0)
		why = "a new eviction needs the hooks";
	log_hook(strcmp(h->skip_reason, "deadline") == 0 ? LOG_WARNING : LOG_INFO, r->id, h->name,
		 "hook '%s' not run: %s", h->name, why);
}

static const char *notice_label(const struct eviction *r, size_t k, char *buf, size_t n)
{
	const struct notice *x = k < r->n_notices ? &r->notices[k] : NULL;

	if (!x)
		(void)snprintf(buf, n, "notice %zu", k);
	else
		(void)snprintf(buf, n, "%s notice %s (%s)", event_type_to_string(x->ev.type), x->ev.id,
			       event_feed_to_string(x->ev.feed));
	return buf;
}

static void report_transition(struct agent *a, const struct eviction *r, const struct engine_action *act)
{
	size_t n_rules;
	const struct engine_rule_info *rules = engine_rules(&n_rules);
	/* A rule's name reads "<state>: <why> -> <next>": the why is logged. */
	const char *why = act->rule < n_rules ? rules[act->rule].name : "?";
	const char *colon = strstr(why, ": "), *arrow;
	int len;

	if (colon)
		why = colon + 2;
	arrow = strstr(why, " -> ");
	len = arrow ? (int)(arrow - why) : (int)strlen(why);
	log_event(act->to == LC_RECOVERING || act->to == LC_CANCELLED ? LOG_NOTICE : LOG_INFO, r->id,
		  "eviction %s: %s -> %s (%.*s)", r->id, lifecycle_to_string(act->from),
		  lifecycle_to_string(act->to), len, why);
	if (act->to == LC_CANCELLED && act->from != LC_CANCELLED)
		record_cancelled(a->record, r, agent_now_wall());
	if (act->to == LC_RECOVERING) {
		static const enum evidence_recover_reason reasons[_RECOVER_REASON_MAX] = {
			[RECOVER_CANCELLED] = EVIDENCE_RECOVER_CANCELLED,
			[RECOVER_ENDED] = EVIDENCE_RECOVER_ENDED,
			[RECOVER_BOOT] = EVIDENCE_RECOVER_BOOT,
		};
		uint64_t from = r->recover_started_wall_usec > r->downtime_usec ?
				r->recover_started_wall_usec - r->downtime_usec : 0;

		note_identity(a);
		record_recovered(a->record, r, reasons[r->recover_reason < _RECOVER_REASON_MAX ? r->recover_reason : 0],
				 r->recover_started_wall_usec, from);
	}
}

void agent_report(struct agent *a, const struct engine_action *act)
{
	struct eviction *r = act->id[0] ? records_find(&a->records, act->id) : NULL;
	char label[EVENT_ID_MAX + 64], at[RFC3339_MAX];

	switch (act->kind) {
	case ENGINE_SHUTDOWN_NOTED:
		if (r && eviction_lead_const(r)->ev.feed == FEED_OS)
			record_shutdown(a->record, r);
		else if (r)
			log_info("shutdown: it joins the eviction in hand (%s), whose deadline it binds", r->id);
		else
			log_info("shutdown: nothing to run for it");
		break;
	case ENGINE_DETECTED:
		if (r)
			report_detected(a, r);
		break;
	case ENGINE_JOINED:
		if (r)
			log_event(LOG_NOTICE, r->id, "%s joins the eviction in hand: no hook runs twice, the "
				  "earliest deadline binds", notice_label(r, act->notice, label, sizeof(label)));
		break;
	case ENGINE_RESUMED:
		if (r) {
			/* The chain it is at: the recover hooks once recovering. */
			bool recover = r->state == LC_RECOVERING;
			const struct hook_result *hooks = recover ? r->recover_hooks : r->hooks;
			size_t n = recover ? r->n_recover_hooks : r->n_hooks;
			uint64_t deadline = engine_chain_deadline(r, recover ? CHAIN_RECOVER : CHAIN_EVICT);

			log_event(LOG_NOTICE, r->id,
				  "resuming eviction %s (%s) after a restart: %zu of %zu %s%s left, %.1f s to the deadline",
				  r->id, lifecycle_to_string(r->state), count_left(hooks, n), n,
				  recover ? "recover " : "", plural(n, "hook", "hooks"),
				  deadline > agent_now_wall() ? (double)(deadline - agent_now_wall()) / USEC_PER_SEC : 0.0);
		}
		break;
	case ENGINE_TRANSITION:
		if (r)
			report_transition(a, r, act);
		break;
	case ENGINE_CHANGED:
		if (r && act->notice < r->n_notices) {
			const struct notice *n = &r->notices[act->notice];
			char deadline[RFC3339_MAX];

			log_event(act->drift ? LOG_DEBUG : LOG_INFO, r->id, "%s is now %s%s, NotBefore %s; the deadline is %s",
				  notice_label(r, act->notice, label, sizeof(label)), event_status_to_string(n->ev.status),
				  n->ev.end == END_COMPLETED ? " (completed)" : n->ev.end == END_CANCELED ? " (cancelled)" : "",
				  n->ev.not_before_usec ? format_rfc3339(at, sizeof(at), n->ev.not_before_usec) : "none",
				  format_rfc3339(deadline, sizeof(deadline), r->deadline_wall_usec));
		}
		break;
	case ENGINE_GONE:
		if (r)
			log_event(LOG_INFO, r->id, "%s left the listing", notice_label(r, act->notice, label, sizeof(label)));
		break;
	case ENGINE_BACK:
		if (r)
			log_event(LOG_INFO, r->id, "%s is listed again", notice_label(r, act->notice, label, sizeof(label)));
		break;
	case ENGINE_IGNORED:
		if (ignored_once(a, act->id)) {
			log_event(LOG_NOTICE, act->id, "%s event for this VM is not in 'events', ignoring",
				  event_type_to_string(act->event_type));
			/* Counted and listed for the operator (/metrics, /v1/status). */
			if (ignored_events_note(&a->state.ignored, act->id, act->event_type, agent_now_wall()))
				metrics_event_ignored(a->metrics, act->event_type);
		}
		break;
	case ENGINE_REFUSED:
		if (ignored_once(a, act->id))
			log_event(LOG_WARNING, act->id, "%s event for this VM would be one notice too many for the "
				  "eviction in hand (%d), ignoring", event_type_to_string(act->event_type),
				  RECORD_NOTICES_MAX);
		break;
	case ENGINE_HOOK_SKIPPED:
		if (r)
			report_skip(r, act->chain, act->hook);
		break;
	case ENGINE_START_RETRY:
		break;   /* chain.c logged why */
	case ENGINE_CHAIN_DONE:
		if (r)
			report_chain_done(a, r, act->chain);
		break;
	case ENGINE_ACKED:
		if (r)
			record_approved(a->record, r, act->notice, agent_now_wall());
		break;
	case ENGINE_ACK_FAILED:
		if (r)
			log_event(LOG_WARNING, r->id, "acknowledging %s failed: %s, %s",
				  notice_label(r, act->notice, label, sizeof(label)), a->ack.error,
				  a->stopping ? "stopping anyway" : "retrying while it is due");
		break;
	case ENGINE_ACK_DROPPED:
		if (r)
			log_event(LOG_INFO, r->id, "%s is not acknowledged: %s",
				  notice_label(r, act->notice, label, sizeof(label)), act->reason ? act->reason : "");
		break;
	default:
		break;
	}
}

int agent_report_setup(struct agent *a)
{
	int r = sd_event_add_time(a->event, &a->health_timer, CLOCK_MONOTONIC, USEC_INFINITY, 1, on_health_timer, a);

	if (r >= 0)
		(void)sd_event_source_set_description(a->health_timer, "health");
	return r;
}

void agent_report_done(struct agent *a)
{
	a->health_timer = sd_event_source_disable_unref(a->health_timer);
}
