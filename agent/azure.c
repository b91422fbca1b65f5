/* azure.c - the Azure side of the wire: Scheduled Events documents become
 * struct spot_event, the compute document gives the VM's own name, and the
 * approval body is built here. It never does I/O or logs, and never trusts
 * the document: every field is type-checked and bounded, and a bad event is
 * dropped and counted rather than failing the whole document. */
#include "azure.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define AZURE_NAME_MAX 256   /* compute.name, bytes incl. NUL */

/* Parses body[0..len) as one JSON value with nothing but whitespace after it. */
static cJSON *parse_document(const char *body, size_t len)
{
	const char *end = NULL;
	cJSON *root;
	bool ok;

	if (!body || len == 0)
		return NULL;
	root = cJSON_ParseWithLengthOpts(body, len, &end, false);
	if (!root)
		return NULL;
	ok = end && end >= body && end <= body + len;
	for (; ok && end < body + len; end++)
		ok = *end == ' ' || *end == '\t' || *end == '\r' || *end == '\n';
	if (!ok) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

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

/* Fills *ev from one element of Events; -EINVAL when the event is unusable. */
static int parse_event(const cJSON *o, struct spot_event *ev)
{
	const cJSON *resources, *item;
	const char *s;

	if (!cJSON_IsObject(o))
		return -EINVAL;
	s = json_string(o, "EventId");
	if (!event_id_valid(s))
		return -EINVAL;
	memcpy(ev->id, s, strlen(s) + 1);
	ev->type = event_type_from_string(json_string(o, "EventType"));
	ev->status = event_status_from_string(json_string(o, "EventStatus"));
	if (ev->type == EVENT_TYPE_INVALID || ev->status == EVENT_STATUS_INVALID)
		return -EINVAL;
	ev->provider = PROVIDER_AZURE;

	/* An unreadable NotBefore counts as unknown (0): the deadline logic then
	 * gives the hooks the emergency budget instead of missing the event. */
	s = json_string(o, "NotBefore");
	if (!s || event_parse_time(s, &ev->not_before_usec) < 0)
		ev->not_before_usec = 0;

	s = json_string(o, "Description");
	if (s)
		event_set_text(ev->description, sizeof(ev->description), s);
	s = json_string(o, "EventSource");
	if (s)
		event_set_text(ev->source, sizeof(ev->source), s);
	if (!json_whole_number(cJSON_GetObjectItemCaseSensitive(o, "DurationInSeconds"),
			       -1.0, 9007199254740992.0, &ev->duration_sec))
		ev->duration_sec = -1;

	/* Non-string, empty and oversized names are skipped; the list is capped. */
	resources = cJSON_GetObjectItemCaseSensitive(o, "Resources");
	if (cJSON_IsArray(resources))
		cJSON_ArrayForEach(item, resources) {
			if (!cJSON_IsString(item) || !item->valuestring)
				continue;
			if (event_add_resource(ev, item->valuestring) == -E2BIG)
				break;
		}
	return 0;
}

int azure_parse_events(const char *body, size_t len, uint64_t *ret_incarnation,
		       struct event_list *ret, size_t *ret_n_ignored)
{
	struct event_list list = { 0 };
	const cJSON *events, *item;
	size_t n_ignored = 0;
	int64_t incarnation;
	cJSON *root;
	int n, r = -EBADMSG;

	root = parse_document(body, len);
	if (!cJSON_IsObject(root))
		goto out;
	if (!json_whole_number(cJSON_GetObjectItemCaseSensitive(root, "DocumentIncarnation"),
			       0.0, 9007199254740992.0, &incarnation))
		goto out;
	events = cJSON_GetObjectItemCaseSensitive(root, "Events");
	if (events && !cJSON_IsArray(events))
		goto out;

	n = events ? cJSON_GetArraySize(events) : 0;
	if (n > 0)
		list.events = xcalloc(n < EVENTS_MAX ? (size_t)n : EVENTS_MAX, sizeof(*list.events));
	cJSON_ArrayForEach(item, events) {
		struct spot_event ev;

		if (list.n_events >= EVENTS_MAX) {
			n_ignored++;
			continue;
		}
		event_init(&ev);
		if (parse_event(item, &ev) < 0) {
			event_done(&ev);
			n_ignored++;
			continue;
		}
		list.events[list.n_events++] = ev;
	}
	if (list.n_events == 0) {
		free(list.events);   /* callers may rely on events == NULL then */
		list.events = NULL;
	}

	if (ret_incarnation)
		*ret_incarnation = (uint64_t)incarnation;
	if (ret_n_ignored)
		*ret_n_ignored = n_ignored;
	*ret = list;
	list = (struct event_list){ 0 };
	r = 0;
out:
	event_list_done(&list);
	cJSON_Delete(root);
	return r;
}

int azure_parse_compute_name(const char *body, size_t len, char **ret_name)
{
	const char *name;
	cJSON *root;
	size_t n;
	int r = -EBADMSG;

	root = parse_document(body, len);
	if (!cJSON_IsObject(root))
		goto out;
	name = json_string(root, "name");
	if (!name)
		goto out;
	n = strnlen(name, AZURE_NAME_MAX);
	if (n == 0 || n >= AZURE_NAME_MAX)
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
