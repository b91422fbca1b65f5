/* gcp.c - the GCP side of the wire: the instance name, instance/preempted
 * and instance/maintenance-event become struct spot_event, with deadlines
 * counted from when each condition was first seen. Parsers are pure; the
 * round only chains requests through watcher.c. It never logs and never
 * trusts an answer: each is bounded and checked before use. */
#include "provider.h"

#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define GCP_NAME_PATH        "/computeMetadata/v1/instance/name"
#define GCP_PREEMPTED_PATH   "/computeMetadata/v1/instance/preempted"
#define GCP_PREEMPTED_WAIT   GCP_PREEMPTED_PATH "?wait_for_change=true&timeout_sec=1"
#define GCP_MAINTENANCE_PATH "/computeMetadata/v1/instance/maintenance-event"

/* Every request must carry it; the server refuses requests without it, which
 * also keeps a browser-driven request forgery from reading the answers. */
static const char *const flavor_headers[] = { "Metadata-Flavor: Google", NULL };

struct gcp_state {
	struct watcher_sighting preempted;    /* "TRUE" while preempted */
	struct watcher_sighting maintenance;  /* the pending maintenance-event value */
	bool preempted_now;                   /* this round's answer */
};

int gcp_parse_flag(const char *body, size_t len, bool *ret)
{
	int k = watcher_parse_text(body, len, WATCHER_TOKEN_MAX);

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
	int k = watcher_parse_text(body, len, WATCHER_TOKEN_MAX);
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
 * from the platform. -EINVAL when the name cannot be a resource. */
static int event_start(struct spot_event *ev, const char *name)
{
	event_init(ev);
	if (!name || strnlen(name, WATCHER_NAME_MAX) >= WATCHER_NAME_MAX ||
	    event_add_resource(ev, name) < 0)
		return -EINVAL;
	ev->status = EVENT_SCHEDULED;
	ev->provider = PROVIDER_GCP;
	event_set_text(ev->source, sizeof(ev->source), "Platform");
	return 0;
}

int gcp_preempt_event(const char *name, uint64_t first_seen_wall_usec, struct spot_event *ret)
{
	struct spot_event ev;

	if (event_start(&ev, name) < 0)
		goto fail;
	(void)snprintf(ev.id, sizeof(ev.id), "gcp-preempted-%s", name);
	if (!event_id_valid(ev.id))
		goto fail;
	ev.type = EVENT_PREEMPT;
	ev.not_before_usec = first_seen_wall_usec + GCP_PREEMPT_NOTICE_SEC * USEC_PER_SEC;
	event_set_text(ev.description, sizeof(ev.description), "spot preemption");
	event_done(ret);
	*ret = ev;
	return 0;
fail:
	event_done(&ev);
	return -EINVAL;
}

int gcp_maintenance_event(const char *value, enum event_type type, const char *name,
			  uint64_t first_seen_wall_usec, struct spot_event *ret)
{
	char lower[WATCHER_TOKEN_MAX + 1];
	struct spot_event ev;
	size_t n;

	event_init(&ev);
	if (!value || (type != EVENT_FREEZE && type != EVENT_TERMINATE))
		goto fail;
	n = strnlen(value, WATCHER_TOKEN_MAX + 1);
	if (n > WATCHER_TOKEN_MAX || !maintenance_token(value, n) || strcmp(value, "NONE") == 0)
		goto fail;
	for (size_t i = 0; i < n; i++)
		lower[i] = value[i] >= 'A' && value[i] <= 'Z' ? (char)(value[i] - 'A' + 'a') : value[i];
	lower[n] = '\0';
	if (event_start(&ev, name) < 0)
		goto fail;
	(void)snprintf(ev.id, sizeof(ev.id), "gcp-maintenance-%s-%" PRIu64, lower,
		       first_seen_wall_usec / USEC_PER_SEC);
	if (!event_id_valid(ev.id))
		goto fail;
	ev.type = type;
	ev.not_before_usec = first_seen_wall_usec + GCP_MAINTENANCE_NOTICE_SEC * USEC_PER_SEC;
	(void)snprintf(ev.description, sizeof(ev.description), "host maintenance: %s", value);
	event_done(ret);
	*ret = ev;
	return 0;
fail:
	event_done(&ev);
	return -EINVAL;
}

/* The round: [instance/name] -> instance/preempted -> instance/maintenance-event,
 * each started from the previous callback. instance/preempted is a hanging
 * GET (wait_for_change) of at most one second: it answers the moment the
 * value changes, so a preemption is seen at once, and the round still ends
 * within about a second, which keeps maintenance-event and the caller's
 * timers going. Without last_etag the wait is for a change after the request
 * starts; a value that changed between rounds is read when the wait ends. */

/* A Spot VM stopped by a preemption can be started and preempted again with
 * the same name; the boot id keeps the second notice from looking handled
 * already, and stays the same across agent restarts within one boot. Read
 * once; "" when unavailable. */
static const char *boot_tag(void)
{
	static char tag[9];
	static bool done;
	char buf[64];
	ssize_t n;
	int fd;

	if (done)
		return tag;
	done = true;
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tag;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	for (ssize_t i = 0, j = 0; i < n && j < 8; i++)
		if (isxdigit((unsigned char)buf[i]))
			tag[j++] = buf[i];
	return tag;
}

static void append_boot_tag(struct spot_event *ev)
{
	const char *tag = boot_tag();
	size_t n = strlen(ev->id);

	if (tag[0] && n + 1 + strlen(tag) < sizeof(ev->id))
		(void)snprintf(ev->id + n, sizeof(ev->id) - n, "-%s", tag);
}

static void start_failed(struct watcher *w, const char *item, int r)
{
	watcher_fail(w, IMDS_RESULT_TRANSPORT, 0, "%s: cannot start request: %s", item, strerror(-r));
}

static void fail_reply(struct watcher *w, const char *item, const struct imds_reply *reply)
{
	watcher_fail(w, reply->result, reply->done_mono_usec, "%s: %s", item,
		     reply->error && reply->error[0] ? reply->error : "failed");
}

static void on_maintenance(const struct imds_reply *reply, void *userdata)
{
	struct watcher *w = userdata;
	struct gcp_state *s = watcher_state(w);
	const char *name = watcher_vm_name(w);
	char value[WATCHER_TOKEN_MAX + 1] = "";
	struct event_list list = { 0 };
	enum event_type type;
	uint64_t now, first;
	bool pending;

	if (reply->result != IMDS_RESULT_OK) {
		fail_reply(w, "instance/maintenance-event", reply);
		return;
	}
	if (gcp_parse_maintenance(reply->body, reply->len, &type, &pending) < 0) {
		watcher_fail(w, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
			     "instance/maintenance-event: unreadable answer");
		return;
	}
	if (pending) {
		/* Parsed above: the trimmed text is a token that fits. */
		int k = watcher_parse_text(reply->body, reply->len, WATCHER_TOKEN_MAX);

		memcpy(value, reply->body, (size_t)k);
		value[k] = '\0';
	}

	/* Whole seconds, rounded down: the value changed before we read it,
	 * and a deadline a fraction early is the safe side. */
	now = now_usec(CLOCK_REALTIME);
	now -= now % USEC_PER_SEC;
	list.events = xcalloc(2, sizeof(*list.events));
	first = watcher_sighting_update(&s->preempted, s->preempted_now ? "TRUE" : NULL, now);
	if (s->preempted_now) {
		if (gcp_preempt_event(name, first, &list.events[list.n_events]) < 0)
			goto bad_name;
		append_boot_tag(&list.events[list.n_events]);
		list.n_events++;
	}
	first = watcher_sighting_update(&s->maintenance, value, now);
	if (pending) {
		if (gcp_maintenance_event(value, type, name, first, &list.events[list.n_events]) < 0)
			goto bad_name;
		list.n_events++;
	}
	if (list.n_events == 0) {
		free(list.events);
		list.events = NULL;
	}
	watcher_finish(w, &list, reply->done_mono_usec);
	return;

bad_name:
	event_list_done(&list);
	watcher_fail(w, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
		     "instance/name: unusable in an event");
}

static void on_preempted(const struct imds_reply *reply, void *userdata)
{
	struct watcher *w = userdata;
	struct gcp_state *s = watcher_state(w);
	int r;

	if (reply->result != IMDS_RESULT_OK) {
		fail_reply(w, "instance/preempted", reply);
		return;
	}
	if (gcp_parse_flag(reply->body, reply->len, &s->preempted_now) < 0) {
		watcher_fail(w, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
			     "instance/preempted: unreadable answer");
		return;
	}
	r = watcher_request(w, IMDS_SLOT_POLL, "GET", GCP_MAINTENANCE_PATH, flavor_headers,
			    on_maintenance);
	if (r < 0)
		start_failed(w, "instance/maintenance-event", r);
}

static void on_name(const struct imds_reply *reply, void *userdata)
{
	struct watcher *w = userdata;
	char name[WATCHER_NAME_MAX];
	int r;

	if (reply->result != IMDS_RESULT_OK) {
		fail_reply(w, "instance/name", reply);
		return;
	}
	if (watcher_parse_name(reply->body, reply->len, name, sizeof(name)) < 0) {
		watcher_fail(w, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
			     "instance/name: unreadable answer");
		return;
	}
	watcher_set_vm_name(w, name);
	r = watcher_request(w, IMDS_SLOT_POLL, "GET", GCP_PREEMPTED_WAIT, flavor_headers, on_preempted);
	if (r < 0)
		start_failed(w, "instance/preempted", r);
}

static int start_round(struct watcher *w, void *state)
{
	struct gcp_state *s = state;

	s->preempted_now = false;
	if (!watcher_vm_name(w))
		return watcher_request(w, IMDS_SLOT_IDENTITY, "GET", GCP_NAME_PATH, flavor_headers,
				       on_name);
	return watcher_request(w, IMDS_SLOT_POLL, "GET", GCP_PREEMPTED_WAIT, flavor_headers,
			       on_preempted);
}

const struct watcher_ops gcp_watcher_ops = {
	.state_size = sizeof(struct gcp_state),
	.start_round = start_round,
	.done_state = NULL,
};
