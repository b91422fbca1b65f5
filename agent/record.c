/* record.c - the eviction's record, fed from the engine's reports: it logs
 * each catalogued journal record (evidence/journal.h) with its fields,
 * turns the eviction's facts into series at the moment each part is
 * complete (evidence/samples.h) and hands them to the remote-write sender
 * and the Pushgateway. It decides nothing about the eviction and never
 * holds it up: every send starts from the loop, after what it accompanies.
 * Until the state file carries the remote-write queue, it keeps it in a
 * file of its own in the state directory. */
#include "record.h"

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

#define QUEUE_FILE_MAX (1024 * 1024)

struct record {
	sd_event *event;
	struct imds *imds;                 /* borrowed */
	char *state_dir;
	struct evidence_sender *sender;    /* NULL: no remote-write-url */
	struct evidence_push *push;        /* NULL: no push-url */
	sd_event_source *save_source;      /* saves the queue's file, after all else */
	char **labels;                     /* the operator's, owned */
	struct evidence_identity id;

	/* The eviction in hand. */
	char event_id[EVENT_ID_MAX];
	struct hook_report reported;       /* sum of its hooks' reports */
	uint64_t chain_end_wall_usec;
	struct evidence_batch pushed;      /* what the Pushgateway group holds */
};

/* ---- the queue's file ---- */

static char *queue_path(const struct record *rec)
{
	return xasprintf("%s/%s", rec->state_dir, RECORD_QUEUE_FILE);
}

/* Written whole to a temporary file, then renamed over: a crash leaves the
 * old queue or the new one. An empty queue removes the file. */
static int on_save(sd_event_source *s, void *userdata)
{
	struct record *rec = userdata;
	char *path = queue_path(rec), *tmp = xasprintf("%s.tmp", path), *text = NULL;
	struct evidence_queue *q;
	cJSON *o;
	int fd = -1, r = 0;

	if (!rec->sender)
		goto out;   /* turned off since: the file stays for a later sender */
	q = evidence_sender_queue(rec->sender);
	if (q->n == 0) {
		if (unlink(path) < 0 && errno != ENOENT)
			r = -errno;
		goto out;
	}
	o = evidence_queue_to_json(q);
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!text) {
		r = -ENOMEM;
		goto out;
	}
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0 || rename(tmp, path) < 0)
		r = -errno;
out:
	if (fd >= 0)
		(void)close(fd);
	if (r < 0) {
		(void)unlink(tmp);
		log_warning_errno(r, "evidence: cannot save the remote-write queue to '%s', it is kept in memory",
				  path);
	}
	cJSON_free(text);
	free(tmp);
	free(path);
	return 0;
}

/* The queue changed: saved from the loop at idle priority, so that no hook
 * start or approval waits for the file. */
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

static void load_queue(struct record *rec)
{
	char *path = queue_path(rec), *buf = xmalloc(QUEUE_FILE_MAX + 1);
	struct json_err err = { "" };
	cJSON *o = NULL;
	size_t len = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warning_errno(-errno, "evidence: cannot open '%s', its batches are lost", path);
		goto out;
	}
	for (;;) {
		ssize_t k = read(fd, buf + len, QUEUE_FILE_MAX + 1 - len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0 || (len += (size_t)k) > QUEUE_FILE_MAX)
			break;
	}
	(void)close(fd);
	o = len <= QUEUE_FILE_MAX ? cJSON_ParseWithLengthOpts(buf, len, NULL, false) : NULL;
	r = o ? evidence_queue_from_json(evidence_sender_queue(rec->sender), o, &err) : -EBADMSG;
	if (r < 0) {
		log_warning("evidence: '%s' does not read back (%s), its batches are lost", path,
			    err.why[0] ? err.why : "not JSON, or too large");
		(void)unlink(path);
	} else {
		size_t n = evidence_sender_queue(rec->sender)->n;

		log_info("evidence: %zu remote-write %s left by the previous run, sending %s", n,
			 plural(n, "batch", "batches"), plural(n, "it", "them"));
		evidence_sender_kick(rec->sender);
	}
out:
	cJSON_Delete(o);
	free(buf);
	free(path);
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
	load_queue(rec);
	return 0;
}

static int start_push(struct record *rec, const struct config *cfg)
{
	int r = evidence_push_new(rec->event, rec->imds, cfg->push_url, &rec->push);

	if (r < 0)
		return log_errno(r, "push: cannot set up the Pushgateway client");
	return 0;
}

int record_new(sd_event *e, struct imds *imds, const struct config *cfg, struct record **ret)
{
	struct record *rec = xcalloc(1, sizeof(*rec));
	int r = 0;

	rec->event = sd_event_ref(e);
	rec->imds = imds;
	rec->state_dir = xstrdup(cfg->state_dir);
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
	/* A save still due is made now: the queue must wait for the next start. */
	if (rec->save_source && rec->sender &&
	    sd_event_source_get_enabled(rec->save_source, NULL) > 0)
		(void)on_save(NULL, rec);
	sd_event_source_disable_unref(rec->save_source);
	evidence_sender_free(rec->sender);
	evidence_push_free(rec->push);
	evidence_batch_done(&rec->pushed);
	labels_free(rec->labels);
	free(rec->state_dir);
	sd_event_unref(rec->event);
	free(rec);
}

void record_reload(struct record *rec, const struct config *cfg)
{
	char why[PATH_MAX + 128], *auth = NULL;

	labels_free(rec->labels);
	rec->labels = labels_copy(cfg->remote_write_labels);
	if (!cfg->remote_write_url && rec->sender) {
		/* What still waits stays in its file for a later sender. */
		if (rec->save_source && sd_event_source_get_enabled(rec->save_source, NULL) > 0)
			(void)on_save(NULL, rec);
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

static void fields_of(struct evidence_fields *f, const struct record *rec, const struct event_record *r)
{
	evidence_fields_init(f, r->ev.type, provider_to_string(r->ev.provider), r->ev.not_before_usec,
			     r->deadline_wall_usec);
}

/* The facts of r as far as they go; hooks is the caller's array of
 * r->n_hooks. */
static struct evidence_eviction facts_of(const struct record *rec, const struct event_record *r,
					 struct evidence_hook *hooks)
{
	struct evidence_eviction f = {
		.type = r->ev.type,
		.source = r->ev.source,
		.detected_wall_usec = r->detected_wall_usec,
		.not_before_wall_usec = r->ev.not_before_usec,
		.deadline_wall_usec = r->deadline_wall_usec,
		.hooks = hooks,
		.n_hooks = hooks ? r->n_hooks : 0,
		.chain_end_wall_usec = rec->chain_end_wall_usec,
		.reported = rec->reported,
		.ack_wall_usec = r->approved ? r->approved_wall_usec : 0,
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
static void send(struct record *rec, const struct event_record *r, unsigned mask, unsigned push_mask)
{
	struct evidence_hook *hooks = (mask | push_mask) & EVIDENCE_CHAIN ?
					      xcalloc(r->n_hooks + 1, sizeof(*hooks)) : NULL;
	struct evidence_eviction f = facts_of(rec, r, hooks);
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

/* The eviction in hand is r: a new one starts its facts afresh. */
static void take(struct record *rec, const struct event_record *r)
{
	if (strcasecmp(rec->event_id, r->ev.id) == 0)
		return;
	(void)strscpy(rec->event_id, sizeof(rec->event_id), r->ev.id);
	rec->reported = (struct hook_report){ 0 };
	rec->chain_end_wall_usec = 0;
}

void record_detected(struct record *rec, const struct event_record *r, uint64_t now)
{
	struct evidence_fields f;
	char nb[RFC3339_MAX];

	take(rec, r);
	fields_of(&f, rec, r);
	evidence_fields_add(&f, "SPOT_EVENT_SOURCE", "%s", r->ev.source);
	evidence_fields_add(&f, "SPOT_EMERGENCY", "%d", r->emergency ? 1 : 0);
	log_emit_fields(LOG_NOTICE, EVIDENCE_MESSAGE_NOTICE, r->ev.id, NULL, f.v,
			"eviction notice: %s %s, NotBefore %s, hooks have %.1f s%s",
			event_type_to_string(r->ev.type), event_status_to_string(r->ev.status),
			r->ev.not_before_usec ? format_rfc3339(nb, sizeof(nb), r->ev.not_before_usec) : "none",
			r->deadline_wall_usec > now ? (double)(r->deadline_wall_usec - now) / USEC_PER_SEC : 0.0,
			r->emergency ? " (emergency budget)" : "");
	send(rec, r, EVIDENCE_DETECTED, EVIDENCE_DETECTED);
}

void record_resumed(struct record *rec, const struct event_record *r)
{
	take(rec, r);
}

void record_hook_ended(struct record *rec, const struct event_record *r, const struct hook_result *res)
{
	struct evidence_fields f;

	take(rec, r);
	hook_report_add(&rec->reported, &res->report);
	if (res->outcome != HOOK_FAILED && res->outcome != HOOK_TIMEOUT)
		return;
	fields_of(&f, rec, r);
	evidence_fields_add(&f, "SPOT_EXIT_STATUS", "%d", res->exit_status);
	if (res->term_signal)
		evidence_fields_add(&f, "SPOT_SIGNAL", "%d", res->term_signal);
	evidence_fields_add(&f, "SPOT_DURATION_USEC", "%" PRIu64, res->duration_usec);
	if (res->budget_usec != USEC_INFINITY)
		evidence_fields_add(&f, "SPOT_BUDGET_USEC", "%" PRIu64, res->budget_usec);
	if (res->outcome == HOOK_TIMEOUT)
		log_emit_fields(LOG_WARNING, EVIDENCE_MESSAGE_HOOK_TIMEOUT, r->ev.id, res->name, f.v,
				"eviction hook '%s' timed out after %.1f s, the chain goes on", res->name,
				(double)res->duration_usec / USEC_PER_SEC);
	else
		log_emit_fields(LOG_WARNING, EVIDENCE_MESSAGE_HOOK_FAILED, r->ev.id, res->name, f.v,
				"eviction hook '%s' failed (exit status %d), the chain goes on", res->name,
				res->exit_status);
}

void record_chain_done(struct record *rec, const struct event_record *r, uint64_t now)
{
	bool ran = false;

	take(rec, r);
	rec->chain_end_wall_usec = now;
	for (size_t i = 0; i < r->n_hooks; i++)
		ran = ran || r->hooks[i].start_wall_usec != 0;
	if (now > r->deadline_wall_usec && ran) {
		struct evidence_fields f;

		fields_of(&f, rec, r);
		evidence_fields_add(&f, "SPOT_OVERRUN_USEC", "%" PRIu64, now - r->deadline_wall_usec);
		log_emit_fields(LOG_WARNING, EVIDENCE_MESSAGE_OVERRUN, r->ev.id, NULL, f.v,
				"hook chain ended after its deadline, %.1f s late",
				(double)(now - r->deadline_wall_usec) / USEC_PER_SEC);
	}
	send(rec, r, EVIDENCE_CHAIN, EVIDENCE_DETECTED | EVIDENCE_CHAIN);
}

void record_approved(struct record *rec, const struct event_record *r, uint64_t now)
{
	struct evidence_fields f;

	take(rec, r);
	fields_of(&f, rec, r);
	if (rec->chain_end_wall_usec && r->approved_wall_usec >= rec->chain_end_wall_usec)
		evidence_fields_add(&f, "SPOT_APPROVAL_USEC", "%" PRIu64,
				    r->approved_wall_usec - rec->chain_end_wall_usec);
	log_emit_fields(LOG_NOTICE, EVIDENCE_MESSAGE_APPROVED, r->ev.id, NULL, f.v,
			"event approved (StartRequests sent)");
	send(rec, r, EVIDENCE_ACK, EVIDENCE_DETECTED | EVIDENCE_CHAIN | EVIDENCE_ACK);
}

void record_cancelled(struct record *rec, const struct event_record *r, uint64_t now)
{
	struct evidence_fields f;

	take(rec, r);
	fields_of(&f, rec, r);
	log_emit_fields(LOG_NOTICE, EVIDENCE_MESSAGE_CANCELLED, r->ev.id, NULL, f.v,
			"event stayed away for %" PRIu64 " s: cancelled, the hooks left are not run",
			ENGINE_GONE_GRACE_USEC / USEC_PER_SEC);
}

void record_recovered(struct record *rec, const struct event_record *r, enum evidence_recover_reason reason,
		      uint64_t recover_wall_usec, uint64_t alive_wall_usec)
{
	struct evidence_eviction facts;
	struct evidence_fields f;
	struct evidence_batch b;

	take(rec, r);
	fields_of(&f, rec, r);
	evidence_fields_add(&f, "SPOT_RECOVER_REASON", "%s", evidence_recover_reason_to_string(reason));
	if (alive_wall_usec && recover_wall_usec >= alive_wall_usec)
		evidence_fields_add(&f, "SPOT_DOWNTIME_USEC", "%" PRIu64, recover_wall_usec - alive_wall_usec);
	log_emit_fields(LOG_NOTICE, EVIDENCE_MESSAGE_RECOVERED, r->ev.id, NULL, f.v,
			"recovered after %s %s: %s", event_type_to_string(r->ev.type), r->ev.id,
			evidence_recover_reason_to_string(reason));
	if (r->drill)
		return;
	facts = facts_of(rec, r, NULL);
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

void record_shutdown(struct record *rec, const struct event_record *r)
{
	struct evidence_fields f;

	fields_of(&f, rec, r);
	log_emit_fields(LOG_NOTICE, EVIDENCE_MESSAGE_SHUTDOWN, r->ev.id, NULL, f.v,
			"shutdown: no eviction notice explains it, running the hooks for %s", r->ev.id);
}
