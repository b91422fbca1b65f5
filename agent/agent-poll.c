/* agent-poll.c - asking the metadata service: the poll timer, the rate
 * budget every request shares (poll.c decides when), one round through the
 * provider, and what a round brings: the notices for the engine, the
 * poll statistics, and a log line per changed fact (a failure streak, the
 * identity, optional requests, IMDSv1, a rebalance recommendation, the
 * document's drops). It decides nothing about evictions. */
#include "agent-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

struct engine_config agent_engine_config(const struct agent *a)
{
	struct engine_config c = {
		.margin_usec = a->cfg.margin_sec * USEC_PER_SEC,
		.hook_timeout_usec = a->cfg.hook_timeout_sec * USEC_PER_SEC,
		.drain_usec = a->cfg.drain_sec * USEC_PER_SEC,
		.events_mask = a->cfg.events_mask,
		.approve = a->cfg.approve,
		.heartbeat_period_usec = a->provider ? provider_heartbeat_period_usec(a->provider) : 0,
		.provider = a->cfg.provider == PROVIDER_AUTO ? PROVIDER_AZURE : a->cfg.provider,
	};

	for (int t = 0; t < _EVENT_TYPE_MAX; t++)
		c.ack_policy[t] = a->cfg.ack_policy[t];
	(void)strscpy(c.boot, sizeof(c.boot), boot_id_tag());
	return c;
}

void agent_schedule_poll(struct agent *a, uint64_t at_mono)
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
	agent_note_health(a);
	poll_round_ended(&a->sched, now, result == IMDS_RESULT_THROTTLED ? POLL_THROTTLED : POLL_FAILED);
	agent_schedule_poll(a, a->sched.next_round_mono_usec);
	/* Time passed without an answer: the engine may have a deadline. */
	engine_tick(&a->engine, agent_now_wall());
	agent_drain(a);
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
	p->last_ok_wall_usec = agent_now_wall();
	p->last_ok_mono_usec = done_mono_usec;
	p->last_latency_usec = latency_usec;
	agent_note_health(a);
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

/* One line per changed fact of a round, not one per answer. */
static void log_round_notes(struct agent *a, const struct provider_round *r)
{
	const char *optional = r->optional_error ? r->optional_error : "";

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
	if (strcmp(a->optional_error, optional) != 0) {
		if (optional[0])
			log_warning("imds: %s; the notices of the requests that answered are handled, "
				    "retrying the others every poll", optional);
		else if (a->optional_error[0])
			log_info("imds: the optional requests answer again");
		(void)strscpy(a->optional_error, sizeof(a->optional_error), optional);
	}
	(void)strscpy(a->state.poll.optional_error, sizeof(a->state.poll.optional_error), optional);
	a->state.poll.imds_v1 = r->imds_v1;
	if (r->imds_v1_change && r->imds_v1_change[0])
		log_warning("imds: %s", r->imds_v1_change);
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
	engine_round(&a->engine, r->events, r->feeds_answered, a->state.vm_name, agent_now_wall());
	agent_drain(a);
	a->round_read_mono_usec = 0;
	poll_round_ended(&a->sched, now_usec(CLOCK_MONOTONIC), POLL_OK);
	agent_schedule_poll(a, a->sched.next_round_mono_usec);
}

struct provider_config agent_provider_config(const struct agent *a)
{
	struct provider_config c;

	provider_config_init(&c);
	c.base_url = a->base_url;
	c.vm_name = a->cfg.vm_name;
	c.gcp_preempt_notice_sec = a->cfg.gcp_preempt_notice_sec;
	c.aws_imds_fallback = a->cfg.aws_imds_fallback;
	c.aws_lifecycle_hook = a->cfg.aws_lifecycle_hook;
	c.aws_autoscaling_url = a->cfg.aws_autoscaling_url;
	c.aws_heartbeat_interval_sec = a->cfg.aws_heartbeat_interval_sec;
	c.aws_heartbeat_timeout_sec = a->cfg.aws_heartbeat_timeout_sec;
	return c;
}

int agent_use_provider(struct agent *a, enum provider p)
{
	struct provider_config pc = agent_provider_config(a);
	struct engine_config ec;
	int r;

	r = provider_new(p, a->imds, &pc, &a->provider);
	if (r < 0)
		return r;
	a->cfg.provider = p;
	free(a->state.provider);
	a->state.provider = xstrdup(provider_to_string(p));
	ec = agent_engine_config(a);
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
		r = agent_use_provider(a, found);
		if (r < 0) {
			log_errno(r, "imds: cannot watch %s", provider_to_string(found));
			(void)sd_event_exit(a->event, 1);
			return;
		}
		round_succeeded(a, 0, now);
		poll_round_ended(&a->sched, now, POLL_OK);
		agent_schedule_poll(a, now);
		agent_notify_phase(a);
		return;
	}
	if (result == IMDS_RESULT_OK) {
		/* That dialect refused: ask the next one at once. */
		agent_schedule_poll(a, now);
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
		agent_schedule_poll(a, at);
		return 0;
	}
	timeout = poll_request_timeout(&a->sched, false);
	poll_round_started(&a->sched, now);
	/* Only the provider knows which of its calls may be a first one
	 * (Azure's, which switches the service on). */
	if (a->provider)
		r = provider_poll(a->provider, timeout, poll_request_timeout(&a->sched, true), on_round, a);
	else
		r = provider_probe_step(a->probe, timeout, on_probe, a);
	if (r < 0)
		round_failed(a, IMDS_RESULT_TRANSPORT, "request", strerror(-r));
	return 0;
}

/* Only the metadata service's own requests count against its rate limit
 * and in its metrics; Auto Scaling and the evidence receivers do not. */
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

int agent_poll_setup(struct agent *a)
{
	struct imds_observer obs = { .sent = on_sent, .done = on_done, .userdata = a };
	const char *base;
	size_t n;
	int r;

	r = imds_new(a->event, &a->imds);
	if (r < 0) {
		log_errno(r, "imds: cannot set up the HTTP client");
		return r;
	}
	imds_set_observer(a->imds, &obs);
	base = config_imds_url(&a->cfg);
	for (n = strlen(base); n > 0 && base[n - 1] == '/'; n--)
		;
	a->base_url = xstrndup(base, n);
	if (a->cfg.provider == PROVIDER_AUTO)
		r = provider_probe_new(a->imds, a->base_url, &a->probe);
	else
		r = agent_use_provider(a, a->cfg.provider);
	if (r < 0) {
		log_errno(r, "imds: cannot watch %s", provider_to_string(a->cfg.provider));
		return r;
	}
	poll_sched_init(&a->sched, a->cfg.poll_interval_ms * USEC_PER_MSEC);
	/* Accuracy 1 us: sd-event's default lets a timer slip by up to 250 ms
	 * to coalesce wake-ups, which an eviction window cannot afford. */
	r = sd_event_add_time(a->event, &a->poll_timer, CLOCK_MONOTONIC, USEC_INFINITY, 1, on_poll_timer, a);
	if (r < 0) {
		log_errno(r, "loop: cannot add timers");
		return r;
	}
	(void)sd_event_source_set_description(a->poll_timer, "poll");
	/* Polls outrank the HTTP endpoint: a busy client must not delay
	 * detection (lower value = higher priority in sd-event). */
	(void)sd_event_source_set_priority(a->poll_timer, SD_EVENT_PRIORITY_IMPORTANT);
	return 0;
}

void agent_poll_done(struct agent *a)
{
	a->poll_timer = sd_event_source_disable_unref(a->poll_timer);
}
