/* poll.c - the agent's side of the metadata service: the poll timer, the
 * request rate limit, backoff after failures, the Azure document and
 * identity answers, the AWS/GCP watcher rounds and the 'auto' probe. Each
 * answer ends in agent_handle_document(); nothing here decides about hooks
 * or approvals. It never blocks: every wait is a timer on the loop. */
#include "agent-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "azure.h"
#include "log.h"
#include "util.h"

static void set_vm_name(struct agent *a, const char *name);

uint64_t poll_jitter(uint64_t usec)
{
	/* +-20 %: spreads a fleet's retries after a shared outage. */
	uint64_t span = usec / 5;

	if (span == 0)
		return usec;
	return usec - span + (uint64_t)random() % (2 * span + 1);
}

/* When n more requests may be sent without more than AGENT_RATE_MAX in
 * any AGENT_RATE_WINDOW_USEC; now when there is room. */
uint64_t poll_rate_next_free(const struct agent *a, uint64_t now, unsigned n)
{
	uint64_t t = a->sent_mono_usec[(a->sent_next + n - 1) % AGENT_RATE_MAX];

	if (t == 0 || now - t >= AGENT_RATE_WINDOW_USEC)
		return now;
	return t + AGENT_RATE_WINDOW_USEC;
}

void poll_rate_note(struct agent *a, uint64_t now, unsigned n)
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

uint64_t poll_interval_usec(const struct agent *a)
{
	return a->cfg.poll_interval_ms * USEC_PER_MSEC;
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
	if (agent_eviction_active(a)) {
		delay = poll_interval_usec(a);
	} else {
		delay = poll_interval_usec(a) << (a->backoff_step < 6 ? a->backoff_step : 6);
		if (delay > AGENT_BACKOFF_MAX_USEC)
			delay = AGENT_BACKOFF_MAX_USEC;
		if (delay < poll_interval_usec(a))
			delay = poll_interval_usec(a);
		delay = poll_jitter(delay);
		a->backoff_step++;
	}
	(void)result;
	poll_schedule(a, delay);
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

	poll_schedule(a, next > now ? next - now : 0);
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
	agent_handle_document(a, &list, reply->done_mono_usec);
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
	poll_schedule(a, 0);
}

static void set_vm_name(struct agent *a, const char *name)
{
	if (a->state.vm_name && strcmp(a->state.vm_name, name) == 0)
		return;
	free(a->state.vm_name);
	a->state.vm_name = xstrdup(name);
	log_info("imds: this VM is '%s'", name);
	a->last_notified_phase = _PHASE_MAX;
	agent_update_phase(a);
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
		agent_handle_document(a, w->events, w->done_mono_usec);
	schedule_next_poll(a);
}

int poll_use_provider(struct agent *a, enum provider p)
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
		r = poll_use_provider(a, p);
		if (r < 0) {
			log_errno(r, "imds: cannot watch %s", provider_to_string(p));
			(void)sd_event_exit(a->event, 1);
			return;
		}
		poll_succeeded(a, reply->latency_usec, reply->done_mono_usec);
		a->last_notified_phase = _PHASE_MAX;
		agent_update_phase(a);
		poll_schedule(a, 0);
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
		poll_schedule(a, 0);
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

int poll_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	static const char *const headers[] = { "Metadata: true", NULL };
	struct agent *a = userdata;
	uint64_t timeout = a->first_poll_done ? AGENT_POLL_TIMEOUT_USEC : AGENT_FIRST_POLL_TIMEOUT_USEC;
	int r;

	uint64_t now = now_usec(CLOCK_MONOTONIC), next;

	if (a->stopping)
		return 0;
	/* An approval waiting for a free request slot goes before a poll. */
	if (agent_approval_waiting(a)) {
		agent_maybe_approve(a, false);
		poll_schedule(a, poll_interval_usec(a));
		return 0;
	}
	/* Polls leave one request of every window free, so an approval never
	 * waits for the rate limit. */
	next = poll_rate_next_free(a, now, requests_per_poll(a) + 1);
	if (next > now) {
		poll_schedule(a, next - now);
		return 0;
	}
	poll_rate_note(a, now, requests_per_poll(a));
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

void poll_schedule(struct agent *a, uint64_t delay_usec)
{
	int r = sd_event_source_set_time(a->poll_timer, now_usec(CLOCK_MONOTONIC) + delay_usec);

	if (r >= 0)
		r = sd_event_source_set_enabled(a->poll_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		log_errno(r, "loop: cannot arm the poll timer");
}

void poll_set_urls(struct agent *a)
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
