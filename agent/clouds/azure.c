/* azure.c - Azure behind provider.h: a round is GET scheduledevents, plus
 * the compute document in parallel while the VM's name is unknown;
 * Scheduled Events documents become struct spot_event for this VM, and an
 * event is approved with StartRequests. The parsers do no I/O, and nothing
 * here logs or trusts the document: every field is type-checked and
 * bounded, and a bad event is dropped with its defect named rather than
 * failing the whole document. */
#include "clouds/azure.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clouds/provider-internal.h"
#include "util.h"

static const char *const metadata_headers[] = { "Metadata: true", NULL };

_Static_assert(EVENT_ID_MAX == 128, "the drop reason below names the limit");

/* A JSON number holding a whole value in [min, max] (within 2^53). */
static bool json_whole_number(const cJSON *n, double min, double max, int64_t *ret)
{
	double v;
	int64_t i;

	if (!cJSON_IsNumber(n))
		return false;
	v = n->valuedouble;
	if (!(v >= min && v <= max)) /* also false for NaN */
		return false;
	i = (int64_t)v;
	if ((double)i != v)
		return false;
	*ret = i;
	return true;
}

static const char *json_string(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ASCII only, as event_names_resource: the locale must not change which VM
 * an event names. */
static bool same_name(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		char x = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
		char y = *b >= 'A' && *b <= 'Z' ? (char)(*b - 'A' + 'a') : *b;

		if (x != y)
			return false;
	}
	return *a == *b;
}

/* A value from the document, fit to quote in a drop reason: at most 32
 * bytes, anything but printable ASCII shown as '?', "..." when cut. */
static void quote_value(char *buf, size_t n, const char *s)
{
	size_t i = 0, max = 32;

	for (; s[i] && i < max && i + 4 < n; i++)
		buf[i] = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
	buf[i] = '\0';
	if (s[i] && i + 4 <= n)
		memcpy(buf + i, "...", 4);
}

/* A string field that must hold one of a set of names: "" when it does
 * (the value in *ret), else the defect. */
static bool check_enum(const cJSON *o, const char *key, int (*from_string)(const char *),
		       int *ret, char *why, size_t n)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	char quoted[40];

	if (!v) {
		(void)snprintf(why, n, "%s missing", key);
		return false;
	}
	if (!cJSON_IsString(v) || !v->valuestring) {
		(void)snprintf(why, n, "%s not a string", key);
		return false;
	}
	*ret = from_string(v->valuestring);
	if (*ret < 0) {
		quote_value(quoted, sizeof(quoted), v->valuestring);
		(void)snprintf(why, n, "unknown %s '%s'", key, quoted);
		return false;
	}
	return true;
}

/* Azure's own types only: Shutdown is the agent's, never the platform's. */
static int type_from_string(const char *s)
{
	enum event_type t = event_type_from_string(s);

	return t == EVENT_SHUTDOWN ? (int)EVENT_TYPE_INVALID : (int)t;
}

static int status_from_string(const char *s)
{
	return (int)event_status_from_string(s);
}

/* The defect of an EventId, NULL when it is usable. */
static const char *id_defect(const cJSON *v)
{
	size_t n;

	if (!v)
		return "EventId missing";
	if (!cJSON_IsString(v) || !v->valuestring)
		return "EventId not a string";
	n = strnlen(v->valuestring, EVENT_ID_MAX);
	if (n == 0)
		return "EventId empty";
	if (n >= EVENT_ID_MAX)
		return "EventId longer than 127 bytes";
	if (!event_id_valid(v->valuestring))
		return "EventId has control characters";
	return NULL;
}

/* Fills *ev from one element of Events. Returns 0, or -EINVAL with the
 * defect in why (and the usable id, if any, in ev->id). */
static int parse_event(const cJSON *o, const char *vm_name, struct spot_event *ev,
		       char *why, size_t n)
{
	const cJSON *resources, *item;
	const char *s, *defect;
	bool kept_vm = false;
	int type, status, k;

	if (!cJSON_IsObject(o)) {
		(void)snprintf(why, n, "not an object");
		return -EINVAL;
	}
	item = cJSON_GetObjectItemCaseSensitive(o, "EventId");
	defect = id_defect(item);
	if (defect) {
		(void)snprintf(why, n, "%s", defect);
		return -EINVAL;
	}
	(void)strscpy(ev->id, sizeof(ev->id), item->valuestring);
	if (!check_enum(o, "EventType", type_from_string, &type, why, n) ||
	    !check_enum(o, "EventStatus", status_from_string, &status, why, n))
		return -EINVAL;
	ev->type = (enum event_type)type;
	ev->status = (enum event_status)status;
	ev->feed = FEED_AZURE_SCHEDULED;
	/* Azure waits for StartRequests (or NotBefore) while the event is
	 * Scheduled; once Started nothing is waited for. */
	ev->needs_ack = ev->status == EVENT_SCHEDULED;
	resources = cJSON_GetObjectItemCaseSensitive(o, "Resources");
	if (!resources) {
		(void)snprintf(why, n, "Resources missing");
		return -EINVAL;
	}
	if (!cJSON_IsArray(resources)) {
		(void)snprintf(why, n, "Resources not an array");
		return -EINVAL;
	}
	ev->provider = PROVIDER_AZURE;
	ev->feed = FEED_AZURE_SCHEDULED;
	/* Azure waits for StartRequests (or NotBefore). */
	ev->needs_ack = true;

	/* An unreadable NotBefore, or one beyond what the agent keeps exactly
	 * (2200), counts as unknown (0): the deadline logic then gives the
	 * hooks the emergency budget instead of missing the event. */
	s = json_string(o, "NotBefore");
	k = s ? event_parse_time(s, &ev->not_before_usec) : 0;
	if (!s || k < 0)
		ev->not_before_usec = 0;
	if (k < 0)
		event_set_note(ev, "NotBefore '%.48s' is %s, taken as unknown (emergency budget)", s,
			       k == -ERANGE ? "out of range" : "unreadable");

	s = json_string(o, "Description");
	if (s)
		event_set_text(ev->description, sizeof(ev->description), s);
	s = json_string(o, "EventSource");
	if (s)
		event_set_text(ev->source, sizeof(ev->source), s);
	if (!json_whole_number(cJSON_GetObjectItemCaseSensitive(o, "DurationInSeconds"),
			       -1.0, (double)EVENT_DURATION_MAX_SEC, &ev->duration_sec))
		ev->duration_sec = -1;

	/* Non-string, empty and oversized names are skipped and the list is
	 * capped, but every name is looked at: this VM may be listed past the
	 * cap, and then it takes the last place kept. */
	cJSON_ArrayForEach(item, resources) {
		bool is_vm;
		int r;

		if (!cJSON_IsString(item) || !item->valuestring)
			continue;
		is_vm = vm_name && same_name(item->valuestring, vm_name);
		r = event_add_resource(ev, item->valuestring);
		if (r == 0 && is_vm)
			kept_vm = true;
		if (r == -E2BIG && is_vm && !kept_vm) {
			(void)strscpy(ev->resources[ev->n_resources - 1], EVENT_RESOURCE_MAX,
				      item->valuestring);
			kept_vm = true;
		}
	}
	return 0;
}

void azure_document_done(struct azure_document *d)
{
	if (!d)
		return;
	event_list_done(&d->events);
	*d = (struct azure_document){ 0 };
}

int azure_parse_events(const char *body, size_t len, const char *vm_name, struct azure_document *ret)
{
	struct azure_document doc = { 0 };
	const cJSON *events, *item;
	size_t cap = 0;
	cJSON *root;
	int r = -EBADMSG;

	if (vm_name && !vm_name[0])
		vm_name = NULL;
	root = provider_parse_json(body, len);
	if (!cJSON_IsObject(root))
		goto out;
	if (!json_whole_number(cJSON_GetObjectItemCaseSensitive(root, "DocumentIncarnation"),
			       0.0, (double)JSON_INT_MAX, &doc.incarnation))
		goto out;
	events = cJSON_GetObjectItemCaseSensitive(root, "Events");
	if (events && !cJSON_IsArray(events))
		goto out;

	cJSON_ArrayForEach(item, events) {
		struct spot_event ev;
		char why[sizeof(doc.drops[0].reason)];

		event_init(&ev);
		if (parse_event(item, vm_name, &ev, why, sizeof(why)) < 0) {
			provider_drop_add(doc.drops, &doc.n_drops, ev.id, "%s", why);
			event_done(&ev);
			continue;
		}
		/* The filter first: the cap is for this VM's events only. */
		if (vm_name && !event_names_resource(&ev, vm_name)) {
			doc.n_other++;
			event_done(&ev);
			continue;
		}
		if (doc.events.n_events >= EVENTS_MAX) {
			provider_drop_add(doc.drops, &doc.n_drops, ev.id,
					  "over the limit of %d events", EVENTS_MAX);
			event_done(&ev);
			continue;
		}
		if (doc.events.n_events == cap) {
			cap = cap ? 2 * cap : 4;
			doc.events.events = xrealloc(doc.events.events, cap * sizeof(*doc.events.events));
		}
		doc.events.events[doc.events.n_events++] = ev;
	}

	*ret = doc;
	doc = (struct azure_document){ 0 };
	r = 0;
out:
	azure_document_done(&doc);
	cJSON_Delete(root);
	return r;
}

int azure_parse_compute_name(const char *body, size_t len, char **ret_name)
{
	const char *name;
	cJSON *root;
	size_t n;
	int r = -EBADMSG;

	root = provider_parse_json(body, len);
	if (!cJSON_IsObject(root))
		goto out;
	name = json_string(root, "name");
	if (!name)
		goto out;
	n = strnlen(name, PROVIDER_NAME_MAX);
	if (n == 0 || n >= PROVIDER_NAME_MAX)
		goto out;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			goto out;
	*ret_name = xstrndup(name, n);
	r = 0;
out:
	cJSON_Delete(root);
	return r;
}

char *azure_approval_body(const char *event_id)
{
	cJSON *root, *requests, *request;
	char *body = NULL;

	if (!event_id)
		return NULL;
	root = cJSON_CreateObject();
	requests = cJSON_AddArrayToObject(root, "StartRequests");
	request = cJSON_CreateObject();
	if (!requests || !request || !cJSON_AddStringToObject(request, "EventId", event_id) ||
	    !cJSON_AddItemToArray(requests, request)) {
		cJSON_Delete(request);
		goto out;
	}
	body = cJSON_PrintUnformatted(root);
out:
	cJSON_Delete(root);
	return body;
}

/* ---- the provider ----
 * A round: GET scheduledevents always, and while the VM's name is unknown
 * (no --vm-name) GET the compute document in parallel. The round ends when
 * both have answered; the document is parsed only then, so a name learned
 * in this very round already filters it. A compute document that fails is
 * reported in identity_error and never fails the round: Scheduled Events
 * must be watched even while the VM cannot tell its own name (every event
 * is then handed on). Until Scheduled Events has answered once, its call
 * gets the caller's first-call timeout: the first call switches the
 * service on and may take two minutes. Nothing else ever does. */

struct azure_state {
	bool events_answered;              /* Scheduled Events answered 2xx once */

	/* This round. */
	bool events_pending, compute_pending;
	enum imds_result events_result;
	char events_error[IMDS_ERROR_MAX];
	char *events_body;                 /* owned, a copy of the answer */
	size_t events_len;
	uint64_t done_mono_usec;           /* when the later answer arrived */
};

static void reset_round(struct azure_state *s)
{
	bool answered = s->events_answered;

	free(s->events_body);
	*s = (struct azure_state){ .events_answered = answered };
}

static bool want_compute(const struct provider_handle *p)
{
	return !provider_vm_name(p);
}

static unsigned round_cost(const struct provider_handle *p, const void *state)
{
	return 1 + (want_compute(p) ? 1 : 0);
}

static void note_done(struct azure_state *s, const struct imds_reply *r)
{
	if (r->done_mono_usec > s->done_mono_usec)
		s->done_mono_usec = r->done_mono_usec;
}

/* Ends the round once nothing is pending. */
static void maybe_end(struct provider_handle *p, struct azure_state *s)
{
	struct provider_outcome o;
	struct azure_document doc;
	uint64_t done = s->done_mono_usec;
	char *body;
	size_t len;
	int r;

	if (s->events_pending || s->compute_pending)
		return;
	if (s->events_result != IMDS_RESULT_OK) {
		enum imds_result result = s->events_result;
		char error[IMDS_ERROR_MAX];

		memcpy(error, s->events_error, sizeof(error));
		reset_round(s);
		provider_fail(p, result, done, "scheduled events: %s", error);
		return;
	}
	body = s->events_body;
	len = s->events_len;
	s->events_body = NULL;
	reset_round(s);
	r = azure_parse_events(body, len, provider_vm_name(p), &doc);
	free(body);
	if (r < 0) {
		provider_fail(p, IMDS_RESULT_BAD_DOCUMENT, done,
			      "scheduled events: not a Scheduled Events document");
		return;
	}
	provider_outcome_init(&o);
	o.events = doc.events;
	o.incarnation = doc.incarnation;
	o.n_other = doc.n_other;
	memcpy(o.drops, doc.drops, sizeof(o.drops));
	o.n_drops = doc.n_drops;
	o.feeds_answered = 1u << FEED_AZURE_SCHEDULED;
	o.done_mono_usec = done;
	provider_finish(p, &o);
}

static void on_events(struct provider_handle *p, void *state, const struct imds_reply *r)
{
	struct azure_state *s = state;

	s->events_pending = false;
	note_done(s, r);
	s->events_result = r->result;
	(void)strscpy(s->events_error, sizeof(s->events_error),
		      r->error && r->error[0] ? r->error : "failed");
	if (r->result == IMDS_RESULT_OK) {
		s->events_answered = true;
		s->events_body = xmalloc(r->len + 1);
		memcpy(s->events_body, r->body, r->len);
		s->events_body[r->len] = '\0';
		s->events_len = r->len;
	}
	maybe_end(p, s);
}

static void on_compute(struct provider_handle *p, void *state, const struct imds_reply *r)
{
	struct azure_state *s = state;
	char *name = NULL;

	s->compute_pending = false;
	note_done(s, r);
	if (r->result != IMDS_RESULT_OK)
		provider_set_identity_error(p, "instance metadata: %s",
					    r->error && r->error[0] ? r->error : "failed");
	else if (azure_parse_compute_name(r->body, r->len, &name) < 0)
		provider_set_identity_error(p, "instance metadata: no usable compute.name");
	else
		provider_set_vm_name(p, name);
	free(name);
	maybe_end(p, s);
}

static int start_round(struct provider_handle *p, void *state)
{
	struct azure_state *s = state;
	int r;

	reset_round(s);
	r = provider_request(p, IMDS_SLOT_POLL, "GET", AZURE_EVENTS_PATH, metadata_headers, NULL,
			     s->events_answered ? provider_timeout(p) : provider_first_call_timeout(p), 0,
			     on_events);
	if (r < 0)
		return r;
	s->events_pending = true;
	if (want_compute(p)) {
		r = provider_request(p, IMDS_SLOT_IDENTITY, "GET", AZURE_COMPUTE_PATH, metadata_headers,
				     NULL, provider_timeout(p), 0, on_compute);
		if (r < 0)
			provider_set_identity_error(p, "instance metadata: cannot start request: %s",
						    strerror(-r));
		else
			s->compute_pending = true;
	}
	return 0;
}

static void on_approve(struct provider_handle *p, void *state, const struct imds_reply *r)
{
	char error[IMDS_ERROR_MAX] = "";

	if (r->result != IMDS_RESULT_OK)
		(void)snprintf(error, sizeof(error), "StartRequests: %s",
			       r->error && r->error[0] ? r->error : "failed");
	provider_approve_end(p, r->result, error);
}

static int approve(struct provider_handle *p, void *state, const struct provider_ack *ack,
		   uint64_t timeout_usec)
{
	static const char *const headers[] = {
		"Metadata: true", "Content-Type: application/json", NULL,
	};
	char *body;
	int r;

	if (ack->feed != FEED_AZURE_SCHEDULED)
		return -EOPNOTSUPP;
	body = azure_approval_body(ack->event_id);
	if (!body)
		return -ENOMEM;
	r = provider_request(p, IMDS_SLOT_APPROVE, "POST", AZURE_EVENTS_PATH, headers, body,
			     timeout_usec, 0, on_approve);
	free(body);   /* the transport keeps its own copy */
	return r;
}

static void done_state(void *state)
{
	reset_round(state);
}

static bool probe_accept(const struct imds_reply *r)
{
	char *name = NULL;

	if (azure_parse_compute_name(r->body, r->len, &name) < 0)
		return false;
	free(name);
	return true;
}

const struct provider_ops azure_provider_ops = {
	.kind = PROVIDER_AZURE,
	.state_size = sizeof(struct azure_state),
	.feeds = 1u << FEED_AZURE_SCHEDULED,
	.round_cost = round_cost,
	.start_round = start_round,
	.approve = approve,
	.done_state = done_state,
	.probe_method = "GET",
	.probe_path = AZURE_COMPUTE_PATH,
	.probe_headers = metadata_headers,
	.probe_accept = probe_accept,
};
