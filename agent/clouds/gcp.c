/* gcp.c - GCP behind provider.h: the instance name, instance/preempted
 * and instance/maintenance-event become struct spot_event, each with a
 * stable key and a notice the engine counts from its first sighting (GCP
 * gives neither an id nor a time). Parsers are pure; the round chains its
 * requests through provider.c. It never logs and never trusts an answer:
 * each is bounded and checked before use. */
#include "clouds/provider-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define GCP_NAME_PATH        "/computeMetadata/v1/instance/name"
#define GCP_PREEMPTED_PATH   "/computeMetadata/v1/instance/preempted"
#define GCP_PREEMPT_WAIT_SEC 1
#define GCP_PREEMPTED_WAIT   GCP_PREEMPTED_PATH "?wait_for_change=true&timeout_sec=1"
#define GCP_MAINTENANCE_PATH "/computeMetadata/v1/instance/maintenance-event"

/* Every request must carry it; the server refuses requests without it, which
 * also keeps a browser-driven request forgery from reading the answers. */
static const char *const flavor_headers[] = { "Metadata-Flavor: Google", NULL };

/* This round's answers (the config is provider_cfg's). */
struct gcp_state {
	bool preempted_now;
	bool maintenance_answered;
	bool maintenance_pending;
	enum event_type maintenance_type;
	char maintenance[PROVIDER_TOKEN_MAX + 1];   /* the pending value */
	bool failed;                                /* the essential item failed */
	enum imds_result fail_result;
	char fail_error[IMDS_ERROR_MAX];
	uint64_t done_mono_usec;                    /* when the last answer came */
};

int gcp_parse_flag(const char *body, size_t len, bool *ret)
{
	int k = provider_parse_text(body, len, PROVIDER_TOKEN_MAX);

	if (k == 4 && memcmp(body, "TRUE", 4) == 0)
		*ret = true;
	else if (k == 5 && memcmp(body, "FALSE", 5) == 0)
		*ret = false;
	else
		return -EBADMSG;
	return 0;
}

/* A maintenance-event token: [A-Z][A-Z0-9_]*, as long as the text allows. */
static bool maintenance_token(const char *s, size_t n)
{
	if (n == 0 || s[0] < 'A' || s[0] > 'Z')
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

int gcp_parse_maintenance(const char *body, size_t len, enum event_type *ret_type, bool *ret_pending)
{
	int k = provider_parse_text(body, len, PROVIDER_TOKEN_MAX);
	size_t n;

	if (k < 0 || !maintenance_token(body, (size_t)k))
		return -EBADMSG;
	n = (size_t)k;
	if (n == 4 && memcmp(body, "NONE", 4) == 0) {
		*ret_type = EVENT_TYPE_INVALID;
		*ret_pending = false;
		return 0;
	}
	/* A live migration pauses the VM briefly; anything else named here
	 * (TERMINATE_, the older SHUTDOWN_ and whatever comes next) may stop
	 * it, so it is treated as the worse case. */
	if (n == strlen("MIGRATE_ON_HOST_MAINTENANCE") &&
	    memcmp(body, "MIGRATE_ON_HOST_MAINTENANCE", n) == 0)
		*ret_type = EVENT_FREEZE;
	else
		*ret_type = EVENT_TERMINATE;
	*ret_pending = true;
	return 0;
}

/* Starts an event for this VM: resources [name], provider GCP, Scheduled,
 * from the platform, its NotBefore counted by the engine from the first
 * sighting. -EINVAL when the name cannot be a resource. */
static int event_start(struct spot_event *ev, const char *name)
{
	event_init(ev);
	if (!name || strnlen(name, PROVIDER_NAME_MAX) >= PROVIDER_NAME_MAX ||
	    event_add_resource(ev, name) < 0)
		return -EINVAL;
	ev->status = EVENT_SCHEDULED;
	ev->provider = PROVIDER_GCP;
	ev->id_from_first_seen = true;
	ev->not_before_usec = 0;
	event_set_text(ev->source, sizeof(ev->source), "Platform");
	return 0;
}

static bool boot_tag_valid(const char *tag)
{
	size_t n = strnlen(tag, GCP_BOOT_TAG_MAX + 1);

	if (n > GCP_BOOT_TAG_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((tag[i] >= '0' && tag[i] <= '9') || (tag[i] >= 'a' && tag[i] <= 'f')))
			return false;
	return true;
}

int gcp_preempt_event(const char *name, const char *boot_tag, uint64_t notice_sec,
		      struct spot_event *ret)
{
	static const char prefix[] = "gcp-preempted-";
	struct spot_event ev;
	size_t n, room;

	if (!boot_tag)
		boot_tag = "";
	if (!boot_tag_valid(boot_tag) || notice_sec > UINT64_MAX / USEC_PER_SEC)
		return -EINVAL;
	if (event_start(&ev, name) < 0)
		goto fail;
	/* A name too long for the key is cut there, never the boot tag that
	 * tells one boot's preemption from the next. */
	n = strlen(name);
	room = PROVIDER_KEY_MAX - 1 - (sizeof(prefix) - 1) - (boot_tag[0] ? 1 + strlen(boot_tag) : 0);
	(void)snprintf(ev.id, sizeof(ev.id), "%s%.*s%s%s", prefix, (int)(n < room ? n : room), name,
		       boot_tag[0] ? "-" : "", boot_tag);
	if (!event_id_valid(ev.id))
		goto fail;
	ev.type = EVENT_PREEMPT;
	ev.feed = FEED_GCP_PREEMPTED;
	ev.notice_usec = notice_sec * USEC_PER_SEC;
	event_set_text(ev.description, sizeof(ev.description), "spot preemption");
	event_done(ret);
	*ret = ev;
	return 0;
fail:
	event_done(&ev);
	return -EINVAL;
}

int gcp_maintenance_event(const char *value, enum event_type type, const char *name,
			  struct spot_event *ret)
{
	char lower[PROVIDER_TOKEN_MAX + 1];
	struct spot_event ev;
	size_t n;

	event_init(&ev);
	if (!value || (type != EVENT_FREEZE && type != EVENT_TERMINATE))
		goto fail;
	n = strnlen(value, PROVIDER_TOKEN_MAX + 1);
	if (n > PROVIDER_TOKEN_MAX || !maintenance_token(value, n) || strcmp(value, "NONE") == 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		lower[i] = value[i] >= 'A' && value[i] <= 'Z' ? (char)(value[i] - 'A' + 'a') : value[i];
	lower[n] = '\0';
	if (event_start(&ev, name) < 0)
		goto fail;
	(void)snprintf(ev.id, sizeof(ev.id), "gcp-maintenance-%s", lower);
	if (!event_id_valid(ev.id))
		goto fail;
	ev.type = type;
	ev.feed = FEED_GCP_MAINTENANCE;
	ev.notice_usec = GCP_MAINTENANCE_NOTICE_SEC * USEC_PER_SEC;
	(void)snprintf(ev.description, sizeof(ev.description), "host maintenance: %s", value);
	event_done(ret);
	*ret = ev;
	return 0;
fail:
	event_done(&ev);
	return -EINVAL;
}


/* The round: [instance/name], then instance/preempted (POLL, essential)
 * and instance/maintenance-event (SIDE, optional) in parallel; the round
 * ends when both answered. instance/preempted is a hanging GET
 * (wait_for_change) of at most one second: it answers the moment the value
 * changes, so a preemption is seen at once, and the round still ends within
 * about a second, which keeps the caller's timers going. Its request
 * timeout is the caller's plus that second. Without last_etag the wait is
 * for a change after the request starts; a value that changed between
 * rounds is read when the wait ends. maintenance-event answers 503 around
 * maintenance: that never hides a preemption, it only leaves
 * FEED_GCP_MAINTENANCE out of the round. The name is needed for the
 * events' keys and resources: while unknown, a failing name fails the
 * round. */

static uint64_t notice_sec(const struct provider_handle *p)
{
	uint64_t sec = provider_cfg(p)->gcp_preempt_notice_sec;

	return sec ? sec : GCP_PREEMPT_NOTICE_SEC;
}

static void settle(struct provider_handle *p, struct gcp_state *s)
{
	const char *name = provider_vm_name(p);
	struct provider_outcome o;
	struct event_list *list = &o.events;

	if (provider_request_busy(p, IMDS_SLOT_POLL) || provider_request_busy(p, IMDS_SLOT_SIDE))
		return;
	if (s->failed) {
		char error[IMDS_ERROR_MAX];
		enum imds_result result = s->fail_result;
		uint64_t done = s->done_mono_usec;

		memcpy(error, s->fail_error, sizeof(error));
		provider_fail(p, result, done, "%s", error);
		return;
	}

	provider_outcome_init(&o);
	o.done_mono_usec = s->done_mono_usec;
	o.feeds_answered = 1u << FEED_GCP_PREEMPTED;
	list->events = xcalloc(2, sizeof(*list->events));
	if (s->preempted_now) {
		if (gcp_preempt_event(name, boot_id_tag(), notice_sec(p), &list->events[list->n_events]) < 0)
			goto bad_name;
		list->n_events++;
	}
	if (s->maintenance_answered) {
		o.feeds_answered |= 1u << FEED_GCP_MAINTENANCE;
		if (s->maintenance_pending) {
			if (gcp_maintenance_event(s->maintenance, s->maintenance_type, name,
						  &list->events[list->n_events]) < 0)
				goto bad_name;
			list->n_events++;
		}
	}
	if (list->n_events == 0) {
		free(list->events);
		list->events = NULL;
	}
	provider_finish(p, &o);
	return;

bad_name:
	provider_outcome_done(&o);
	provider_fail(p, IMDS_RESULT_BAD_DOCUMENT, s->done_mono_usec, "instance/name: unusable in an event");
}

static void note_done(struct gcp_state *s, const struct imds_reply *r)
{
	if (r->done_mono_usec > s->done_mono_usec)
		s->done_mono_usec = r->done_mono_usec;
}

static void fail_later(struct gcp_state *s, enum imds_result result, const char *item, const char *error)
{
	if (s->failed)
		return;
	s->failed = true;
	s->fail_result = result;
	(void)snprintf(s->fail_error, sizeof(s->fail_error), "%s: %s", item, error && error[0] ? error : "failed");
}

static void on_maintenance(struct provider_handle *p, void *state, const struct imds_reply *reply)
{
	struct gcp_state *s = state;
	enum event_type type;
	bool pending;

	note_done(s, reply);
	if (reply->result != IMDS_RESULT_OK) {
		provider_add_optional_error(p, "instance/maintenance-event", reply->error);
	} else if (gcp_parse_maintenance(reply->body, reply->len, &type, &pending) < 0) {
		provider_add_optional_error(p, "instance/maintenance-event", "unreadable answer");
	} else {
		s->maintenance_answered = true;
		s->maintenance_pending = pending;
		s->maintenance_type = type;
		if (pending) {
			/* Parsed above: the trimmed text is a token that fits. */
			int k = provider_parse_text(reply->body, reply->len, PROVIDER_TOKEN_MAX);

			memcpy(s->maintenance, reply->body, (size_t)k);
			s->maintenance[k] = '\0';
		}
	}
	settle(p, s);
}

static void on_preempted(struct provider_handle *p, void *state, const struct imds_reply *reply)
{
	struct gcp_state *s = state;

	note_done(s, reply);
	if (reply->result != IMDS_RESULT_OK)
		fail_later(s, reply->result, "instance/preempted", reply->error);
	else if (gcp_parse_flag(reply->body, reply->len, &s->preempted_now) < 0)
		fail_later(s, IMDS_RESULT_BAD_DOCUMENT, "instance/preempted", "unreadable answer");
	settle(p, s);
}

/* Starts the two items. 0, or -errno when not even the essential one could
 * be sent. */
static int request_items(struct provider_handle *p, struct gcp_state *s)
{
	uint64_t timeout = provider_timeout(p);
	int r;

	/* The server holds the answer up to the wait on purpose. */
	timeout = timeout > UINT64_MAX - GCP_PREEMPT_WAIT_SEC * USEC_PER_SEC ?
		  UINT64_MAX : timeout + GCP_PREEMPT_WAIT_SEC * USEC_PER_SEC;
	r = provider_request(p, IMDS_SLOT_POLL, "GET", GCP_PREEMPTED_WAIT, flavor_headers, NULL,
			     timeout, 0, on_preempted);
	if (r < 0)
		return r;
	r = provider_request(p, IMDS_SLOT_SIDE, "GET", GCP_MAINTENANCE_PATH, flavor_headers, NULL,
			     provider_timeout(p), 0, on_maintenance);
	if (r < 0) {
		char error[96];

		(void)snprintf(error, sizeof(error), "cannot start request: %s", strerror(-r));
		provider_add_optional_error(p, "instance/maintenance-event", error);
	}
	return 0;
}

static void on_name(struct provider_handle *p, void *state, const struct imds_reply *reply)
{
	struct gcp_state *s = state;
	char name[PROVIDER_NAME_MAX];
	int r;

	if (reply->result != IMDS_RESULT_OK) {
		provider_fail_reply(p, "instance/name", reply);
		return;
	}
	if (provider_parse_name(reply->body, reply->len, name, sizeof(name)) < 0) {
		provider_fail(p, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
			      "instance/name: unreadable answer");
		return;
	}
	provider_set_vm_name(p, name);
	note_done(s, reply);
	r = request_items(p, s);
	if (r < 0)
		provider_fail_start(p, "instance/preempted", r);
}

static unsigned round_cost(const struct provider_handle *p, const void *state)
{
	return 2 + (provider_vm_name(p) ? 0 : 1);
}

static int start_round(struct provider_handle *p, void *state)
{
	struct gcp_state *s = state;

	*s = (struct gcp_state){ 0 };
	if (!provider_vm_name(p))
		return provider_request(p, IMDS_SLOT_IDENTITY, "GET", GCP_NAME_PATH, flavor_headers, NULL,
					provider_timeout(p), 0, on_name);
	return request_items(p, s);
}

/* Only Google's metadata server sends Metadata-Flavor: Google back; a 200
 * for this path from anything else is not GCP. */
static bool probe_accept(const struct imds_reply *r)
{
	char name[PROVIDER_NAME_MAX];

	return r->metadata_flavor && strcmp(r->metadata_flavor, "Google") == 0 &&
	       provider_parse_name(r->body, r->len, name, sizeof(name)) == 0;
}

const struct provider_ops gcp_provider_ops = {
	.kind = PROVIDER_GCP,
	.state_size = sizeof(struct gcp_state),
	.feeds = (1u << FEED_GCP_PREEMPTED) | (1u << FEED_GCP_MAINTENANCE),
	.round_cost = round_cost,
	.start_round = start_round,
	.approve = NULL,
	.done_state = NULL,
	.probe_method = "GET",
	.probe_path = GCP_NAME_PATH,
	.probe_headers = flavor_headers,
	.probe_accept = probe_accept,
};
