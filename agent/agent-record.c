/* agent-record.c - the eviction's record, fed from the engine's reports:
 * it logs each catalogued journal record (evidence/journal.h) with its
 * fields, turns the eviction's facts into series at the moment each part
 * is complete (evidence/samples.h) and hands them to the remote-write
 * sender and the Pushgateway. It decides nothing about the eviction and
 * never holds it up: every send starts from the loop, after what it
 * accompanies. The batches not delivered yet travel in the state file. */
#include "agent-record.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/engine.h"
#include "evidence/journal.h"
#include "evidence/push.h"
#include "evidence/queue.h"
#include "evidence/sender.h"
#include "log.h"
#include "util.h"

struct record {
	sd_event *event;
	struct imds *imds;                 /* borrowed */
	struct evidence_sender *sender;    /* NULL: no remote-write-url */
	struct evidence_push *push;        /* NULL: no push-url */
	sd_event_source *save_source;      /* tells the owner to save, after all else */
	void (*queue_changed)(void *userdata);
	void *userdata;
	char **labels;                     /* the operator's, owned */
	struct evidence_identity id;
	struct evidence_batch pushed;      /* what the Pushgateway group holds */
	/* Batches a previous run left, kept while no sender is set up. */
	cJSON *pending_queue;
};

/* ---- the queue in the state file ---- */

static int on_save(sd_event_source *src, void *userdata)
{
	struct record *rec = userdata;

	if (rec->queue_changed)
		rec->queue_changed(rec->userdata);
	return 0;
}

/* The queue changed: the owner saves from the loop at idle priority, so
 * that no hook start or approval waits for the file. */
static void save_queue(void *userdata)
{
	struct record *rec = userdata;
	int r = rec->save_source ? 0 : sd_event_add_defer(rec->event, &rec->save_source, on_save, rec);

	if (r >= 0 && !rec->save_source)
		r = -ENOMEM;
	if (r >= 0) {
		(void)sd_event_source_set_priority(rec->save_source, SD_EVENT_PRIORITY_IDLE);
		r = sd_event_source_set_enabled(rec->save_source, SD_EVENT_ONESHOT);
	}
	if (r < 0)
		(void)on_save(NULL, rec);
}

cJSON *record_queue_json(const struct record *rec)
{
	struct evidence_queue *q;

	if (!rec)
		return NULL;
	if (!rec->sender)
		return rec->pending_queue ? cJSON_Duplicate(rec->pending_queue, true) : NULL;
	q = evidence_sender_queue(rec->sender);
	return q->n > 0 ? evidence_queue_to_json(q) : NULL;
}

static void take_pending(struct record *rec)
{
	struct json_err err = { "" };
	size_t n;

	if (!rec->sender || !rec->pending_queue)
		return;
	if (evidence_queue_from_json(evidence_sender_queue(rec->sender), rec->pending_queue, &err) < 0) {
		log_warning("evidence: the remote-write batches in the state file do not read back (%s), "
			    "they are lost", err.why);
	} else if ((n = evidence_sender_queue(rec->sender)->n) > 0) {
		log_info("evidence: %zu remote-write %s left by the previous run, sending %s", n,
			 plural(n, "batch", "batches"), plural(n, "it", "them"));
		evidence_sender_kick(rec->sender);
	}
	cJSON_Delete(rec->pending_queue);
	rec->pending_queue = NULL;
}

void record_load_queue(struct record *rec, const cJSON *queue)
{
	if (!rec || !queue || cJSON_IsNull(queue))
		return;
	cJSON_Delete(rec->pending_queue);
	rec->pending_queue = cJSON_Duplicate(queue, true);
	take_pending(rec);
}

/* ---- set-up ---- */

static char **labels_copy(char *const *list)
{
	size_t n = 0;
	char **v;

	while (list && list[n])
		n++;
	v = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		v[i] = xstrdup(list[i]);
	return v;
}

static void labels_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* The sender for cfg's remote-write-url, with the queue a previous run
 * (or a sender before a reload) left; one error line when it cannot be. */
static int start_sender(struct record *rec, const struct config *cfg)
{
	struct evidence_sender_params p = {
		.event = rec->event, .imds = rec->imds, .url = cfg->remote_write_url,
		.queue_changed = save_queue, .userdata = rec,
	};
	char why[PATH_MAX + 128], *auth = NULL;
	int r;

	r = evidence_authorization(cfg->remote_write_bearer_token_file, cfg->remote_write_basic_auth_file, &auth,
				   why, sizeof(why));
	if (r < 0) {
		log_error("remote-write: %s", why);
		return r;
	}
	p.authorization = auth;
	r = evidence_sender_new(&p, &rec->sender);
	free_secret(auth);
	if (r < 0)
		return log_errno(r, "remote-write: cannot set up the sender");
	take_pending(rec);
	return 0;
}

static int start_push(struct record *rec, const struct config *cfg)
{
	int r = evidence_push_new(rec->event, rec->imds, cfg->push_url, &rec->push);

	if (r < 0)
		return log_errno(r, "push: cannot set up the Pushgateway client");
	return 0;
}

int record_new(sd_event *e, struct imds *imds, const struct config *cfg, void (*queue_changed)(void *userdata),
	       void *userdata, struct record **ret)
{
	struct record *rec = xcalloc(1, sizeof(*rec));
	int r = 0;

	rec->event = sd_event_ref(e);
	rec->imds = imds;
	rec->queue_changed = queue_changed;
	rec->userdata = userdata;
	rec->labels = labels_copy(cfg->remote_write_labels);
	if (cfg->remote_write_url)
		r = start_sender(rec, cfg);
	if (r >= 0 && cfg->push_url)
		r = start_push(rec, cfg);
	if (r < 0) {
		record_free(rec);
		return r;
	}
	*ret = rec;
	return 0;
}

void record_free(struct record *rec)
{
	if (!rec)
		return;
	sd_event_source_disable_unref(rec->save_source);
	evidence_sender_free(rec->sender);
	evidence_push_free(rec->push);
	evidence_batch_done(&rec->pushed);
	labels_free(rec->labels);
	cJSON_Delete(rec->pending_queue);
	sd_event_unref(rec->event);
	free(rec);
}

void record_reload(struct record *rec, const struct config *cfg)
{
	char why[PATH_MAX + 128], *auth = NULL;

	labels_free(rec->labels);
	rec->labels = labels_copy(cfg->remote_write_labels);
	if (!cfg->remote_write_url && rec->sender) {
		/* What still waits stays in the state file for a later sender. */
		cJSON_Delete(rec->pending_queue);
		rec->pending_queue = record_queue_json(rec);
		evidence_sender_free(rec->sender);
		rec->sender = NULL;
		log_info("remote-write: off; batches still queued wait for it to be set again");
	} else if (cfg->remote_write_url && !rec->sender) {
		(void)start_sender(rec, cfg);
	} else if (rec->sender) {
		if (evidence_authorization(cfg->remote_write_bearer_token_file, cfg->remote_write_basic_auth_file,
					   &auth, why, sizeof(why)) < 0)
			log_warning("remote-write: %s, keeping the credentials read before", why);
		else
			evidence_sender_set_target(rec->sender, cfg->remote_write_url, auth);
		free_secret(auth);
	}
	if (!cfg->push_url) {
		evidence_push_free(rec->push);
		rec->push = NULL;
	} else if (rec->push)
		evidence_push_set_url(rec->push, cfg->push_url);
	else
		(void)start_push(rec, cfg);
}

void record_set_identity(struct record *rec, const struct evidence_identity *id)
{
	rec->id = *id;
}

/* ---- the moments ---- */

static const struct spot_event *lead_ev(const struct eviction *r)
{
	static const struct spot_event none;
	const struct notice *lead = eviction_lead_const(r);

	return lead ? &lead->ev : &none;
}

static void fields_of(struct evidence_fields *f, const struct eviction *r)
{
	const struct spot_event *ev = lead_ev(r);

	evidence_fields_init(f, ev->type, provider_to_string(ev->provider), ev->not_before_usec,
			     r->deadline_wall_usec);
}

/* What the hooks reported, summed over the chain (kept in the record, so
 * a restart keeps it). */
static struct hook_report reported(const struct eviction *r)
{
	struct hook_report sum = { 0 };

	for (size_t i = 0; i < r->n_hooks; i++)
		hook_report_add(&sum, &r->hooks[i].report);
	return sum;
}

/* The latest confirmed acknowledgement, 0 none. */
static uint64_t acked_at(const struct eviction *r)
{
	uint64_t t = 0;

	for (size_t k = 0; k < r->n_notices; k++)
		if (r->notices[k].ack == ACK_SENT && r->notices[k].acked_wall_usec > t)
			t = r->notices[k].acked_wall_usec;
	return t;
}

/* The facts of r as far as they go; hooks is the caller's array of
 * r->n_hooks. */
static struct evidence_eviction facts_of(const struct eviction *r, struct evidence_hook *hooks)
{
	const struct spot_event *ev = lead_ev(r);
	struct evidence_eviction f = {
		.type = ev->type,
		.source = ev->source,
		.detected_wall_usec = r->detected_wall_usec,
		.not_before_wall_usec = ev->not_before_usec,
		.deadline_wall_usec = r->deadline_wall_usec,
		.hooks = hooks,
		.n_hooks = hooks ? r->n_hooks : 0,
		.chain_end_wall_usec = r->chain_ended_wall_usec,
		.reported = reported(r),
		.ack_wall_usec = acked_at(r),
	};

	for (size_t i = 0; hooks && i < r->n_hooks; i++) {
		const struct hook_result *h = &r->hooks[i];

		(void)strscpy(hooks[i].name, sizeof(hooks[i].name), h->name);
		hooks[i].outcome = h->outcome;
		hooks[i].start_wall_usec = h->start_wall_usec;
		hooks[i].end_wall_usec = h->start_wall_usec ? h->start_wall_usec + h->duration_usec : 0;
	}
	return f;
}

/* Sends the parts in mask: remote-write gets them alone; the Pushgateway
 * group gets everything known so far (a PUT replaces the group). */
static void send(struct record *rec, const struct eviction *r, unsigned mask, unsigned push_mask)
{
	struct evidence_hook *hooks = (mask | push_mask) & EVIDENCE_CHAIN ?
					      xcalloc(r->n_hooks + 1, sizeof(*hooks)) : NULL;
	struct evidence_eviction f = facts_of(r, hooks);
	struct evidence_batch b;

	if (r->drill)
		goto out;
	if (rec->sender && evidence_samples(&rec->id, rec->labels, &f, mask, &b) > 0)
		evidence_sender_add(rec->sender, &b);
	else if (rec->sender)
		evidence_batch_done(&b);
	if (rec->push && push_mask) {
		evidence_batch_done(&rec->pushed);
		if (evidence_samples(&rec->id, rec->labels, &f, push_mask, &rec->pushed) > 0)
			evidence_push_put(rec->push, rec->id.instance, &rec->pushed);
	}
out:
	free(hooks);
}

void record_detected(struct record *rec, const struct eviction *r, uint64_t now)
{
	const struct spot_event *ev = lead_ev(r);
	struct evidence_fields f;
	char nb[RFC3339_MAX];

	fields_of(&f, r);
	evidence_fields_add(&f, "SPOT_EVENT_SOURCE", "%s", ev->source);
	evidence_fields_add(&f, "SPOT_EVENT_FEED", "%s", event_feed_to_string(ev->feed));
	evidence_fields_add(&f, "SPOT_EMERGENCY", "%d", r->emergency ? 1 : 0);
	log_emit_fields(LOG_NOTICE, EVIDENCE_MESSAGE_NOTICE, r->id, NULL, f.v,
			"eviction notice: %s %s from %s, NotBefore %s, hooks have %.1f s%s",
			event_type_to_string(ev->type), event_status_to_string(ev->status),
			event_feed_to_string(ev->feed),
			ev->not_before_usec ? format_rfc3339(nb, sizeof(nb), ev->not_before_usec) : "none",
			r->deadline_wall_usec > now ? (double)(r->deadline_wall_usec - now) / USEC_PER_SEC : 0.0,
			r->emergency ? " (emergency budget)" : "");
	send(rec, r, EVIDENCE_DETECTED, EVIDENCE_DETECTED);
}

void record_hook_ended(struct record *rec, const struct eviction *r, const struct hook_result *res)
{
	struct evidence_fields f;

	if (res->outcome != HOOK_FAILED && res->outcome != HOOK_TIMEOUT)
		return;
	fields_of(&f, r);
	evidence_fields_add(&f, "SPOT_EXIT_STATUS", "%d", res->exit_status);
	if (res->term_signal)
		evidence_fields_add(&f, "SPOT_SIGNAL", "%d", res->term_signal);
	evidence_fields_add(&f, "SPOT_DURATION_USEC", "%" PRIu64, res->duration_usec);
	if (res->budget_usec != USEC_INFINITY)
		evidence_fields_add(&f, "SPOT_BUDGET_USEC", "%" PRIu64, res->budget_usec);
	if (res->outcome == HOOK_TIMEOUT)
		log_emit_fields(LOG_WARNING, EVIDENCE_MESSAGE_HOOK_TIMEOUT, r->id, res->name, f.v,
				"eviction hook '%s' timed out after %.1f s, the chain goes on", res->name,
				(double)res->duration_usec / USEC_PER_SEC);
	else
		log_emit_fields(LOG_WARNING, EVIDENCE_MESSAGE_HOOK_FAILED, r->id, res->name, f.v,
				"eviction hook '%s' failed (exit status %d), the chain goes on", res->name,
				res->exit_status);
}

void record_chain_done(struct record *rec, const struct eviction *r, uint64_t now)
{
	if (now > r->deadline_wall_usec && eviction_chain_ran(r)) {
		struct evidence_fields f;

		fields_of(&f, r);
		evidence_fields_add(&f, "SPOT_OVERRUN_USEC", "%" PRIu64, now - r->deadline_wall_usec);
		log_emit_fields(LOG_WARNING, EVIDENCE_MESSAGE_OVERRUN, r->id, NULL, f.v,
				"hook chain ended after its deadline, %.1f s late",
				(double)(now - r->deadline_wall_usec) / USEC_PER_SEC);
	}
	send(rec, r, EVIDENCE_CHAIN, EVIDENCE_DETECTED | EVIDENCE_CHAIN);
}

void record_approved(struct record *rec, const struct eviction *r, size_t k, uint64_t now)
{
	const struct notice *n = k < r->n_notices ? &r->notices[k] : eviction_lead_const(r);
	struct evidence_fields f;

	fields_of(&f, r);
	evidence_fields_add(&f, "SPOT_NOTICE_ID", "%s", n ? n->ev.id : "");
	if (r->chain_ended_wall_usec && n && n->acked_wall_usec >= r->chain_ended_wall_usec)
		evidence_fields_add(&f, "SPOT_APPROVAL_USEC", "%" PRIu64, n->acked_wall_usec - r->chain_ended_wall_usec);
	log_emit_fields(LOG_NOTICE, EVIDENCE_MESSAGE_APPROVED, r->id, NULL, f.v, "event approved (%s)",
			n && n->ev.feed == FEED_AWS_LIFECYCLE ? "CompleteLifecycleAction" : "StartRequests sent");
	send(rec, r, EVIDENCE_ACK, EVIDENCE_DETECTED | EVIDENCE_CHAIN | EVIDENCE_ACK);
}

void record_cancelled(struct record *rec, const struct eviction *r, uint64_t now)
{
	struct evidence_fields f;

	fields_of(&f, r);
	log_emit_fields(LOG_NOTICE, EVIDENCE_MESSAGE_CANCELLED, r->id, NULL, f.v,
			"event stayed away for %" PRIu64 " s: cancelled, the hooks left are not run",
			ENGINE_GONE_GRACE_USEC / USEC_PER_SEC);
}

void record_recovered(struct record *rec, const struct eviction *r, enum evidence_recover_reason reason,
		      uint64_t recover_wall_usec, uint64_t alive_wall_usec)
{
	const struct spot_event *ev = lead_ev(r);
	struct evidence_eviction facts;
	struct evidence_fields f;
	struct evidence_batch b;

	fields_of(&f, r);
	evidence_fields_add(&f, "SPOT_RECOVER_REASON", "%s", evidence_recover_reason_to_string(reason));
	if (alive_wall_usec && recover_wall_usec >= alive_wall_usec)
		evidence_fields_add(&f, "SPOT_DOWNTIME_USEC", "%" PRIu64, recover_wall_usec - alive_wall_usec);
	log_emit_fields(LOG_NOTICE, EVIDENCE_MESSAGE_RECOVERED, r->id, NULL, f.v,
			"recovered after %s %s: %s", event_type_to_string(ev->type), r->id,
			evidence_recover_reason_to_string(reason));
	if (r->drill)
		return;
	facts = facts_of(r, NULL);
	facts.recover_reason = reason;
	facts.recover_wall_usec = recover_wall_usec;
	facts.alive_wall_usec = alive_wall_usec;
	if (rec->sender && evidence_samples(&rec->id, rec->labels, &facts, EVIDENCE_RECOVERED, &b) > 0)
		evidence_sender_add(rec->sender, &b);
	else if (rec->sender)
		evidence_batch_done(&b);
	if (rec->push) {
		evidence_batch_done(&rec->pushed);
		evidence_push_delete(rec->push, rec->id.instance);
	}
}

void record_shutdown(struct record *rec, const struct eviction *r)
{
	struct evidence_fields f;

	fields_of(&f, r);
	log_emit_fields(LOG_NOTICE, EVIDENCE_MESSAGE_SHUTDOWN, r->id, NULL, f.v,
			"shutdown: no eviction notice explains it, running the hooks for %s", r->id);
}
