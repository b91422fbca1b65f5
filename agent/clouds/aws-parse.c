/* aws-parse.c - AWS's notice items as struct spot_event: the spot
 * interruption, the Auto Scaling target lifecycle state (warm pools
 * included), scheduled maintenance and its history, and the IMDSv2 token. Pure: no I/O, no
 * logging, no clock of its own; every answer is bounded and checked before
 * use, and an unusable maintenance entry is dropped with its defect named
 * rather than failing the whole list. */
#include "clouds/aws.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "clouds/provider-internal.h"
#include "util.h"

int aws_parse_instance_action(const char *body, size_t len, uint64_t now_wall_usec,
			      struct spot_event *ret)
{
	static const char *const actions[] = { "terminate", "stop", "hibernate" };
	struct spot_event ev;
	const cJSON *action, *when;
	const char *name = NULL;
	uint64_t not_before;
	cJSON *root;
	int r = -EBADMSG;

	event_init(&ev);
	root = provider_parse_json(body, len);
	if (!cJSON_IsObject(root))
		goto out;
	action = cJSON_GetObjectItemCaseSensitive(root, "action");
	when = cJSON_GetObjectItemCaseSensitive(root, "time");
	if (!cJSON_IsString(action) || !action->valuestring ||
	    !cJSON_IsString(when) || !when->valuestring)
		goto out;
	for (size_t i = 0; i < ELEMENTSOF(actions); i++)
		if (strcmp(action->valuestring, actions[i]) == 0)
			name = actions[i];
	if (!name)
		goto out;
	if (event_parse_time(when->valuestring, &not_before) < 0 || not_before == 0)
		goto out;

	/* The key names the notice, not its time: EC2 (and its own mock)
	 * may move the time from one answer to the next, and the notice must
	 * stay one event. The engine makes the id unique at first sight. */
	(void)snprintf(ev.id, sizeof(ev.id), "aws-spot-%s", name);
	ev.id_from_first_seen = true;
	ev.type = EVENT_PREEMPT;
	/* The item stays listed while EC2 stops the instance: past its time
	 * the interruption is under way. */
	ev.status = now_wall_usec >= not_before ? EVENT_STARTED : EVENT_SCHEDULED;
	event_set_text(ev.source, sizeof(ev.source), "Platform");
	ev.not_before_usec = not_before;
	(void)snprintf(ev.description, sizeof(ev.description), "spot interruption: %s", name);
	ev.provider = PROVIDER_AWS;
	ev.feed = FEED_AWS_SPOT;

	event_done(ret);
	*ret = ev;
	r = 0;
out:
	cJSON_Delete(root);
	return r;
}

/* The target states the agent acts on, with the key part and the
 * description of their event. */
static const struct {
	const char *name;
	const char *key;
	const char *description;
} target_states[_AWS_TARGET_MAX] = {
	[AWS_TARGET_OTHER] = { "other", NULL, NULL },
	[AWS_TARGET_TERMINATED] = { "Terminated", "terminate",
				    "auto scaling: target lifecycle state Terminated" },
	[AWS_TARGET_WARMED_TERMINATED] = { "Warmed:Terminated", "warmed-terminate",
					   "auto scaling: target lifecycle state Warmed:Terminated "
					   "(the warm pool instance is terminated)" },
	[AWS_TARGET_WARMED_STOPPED] = { "Warmed:Stopped", "warmed-stop",
					"auto scaling: the instance is being stopped into the warm pool "
					"(target lifecycle state Warmed:Stopped)" },
	[AWS_TARGET_WARMED_HIBERNATED] = { "Warmed:Hibernated", "warmed-hibernate",
					   "auto scaling: the instance is being hibernated into the "
					   "warm pool (target lifecycle state Warmed:Hibernated)" },
};

const char *aws_target_state_to_string(enum aws_target_state s)
{
	if ((int)s < 0 || s >= _AWS_TARGET_MAX)
		return NULL;
	return target_states[s].name;
}

int aws_parse_lifecycle(const char *body, size_t len, enum aws_target_state *ret)
{
	int k = provider_parse_text(body, len, PROVIDER_TOKEN_MAX);

	if (k < 0)
		return k;
	*ret = AWS_TARGET_OTHER;
	for (int i = AWS_TARGET_OTHER + 1; i < _AWS_TARGET_MAX; i++)
		if ((size_t)k == strlen(target_states[i].name) &&
		    memcmp(body, target_states[i].name, (size_t)k) == 0)
			*ret = (enum aws_target_state)i;
	return 0;
}

int aws_parse_token(const char *body, size_t len, char *ret, size_t n)
{
	int k = provider_parse_text(body, len, AWS_TOKEN_MAX);

	if (k < 0 || (size_t)k >= n)
		return -EBADMSG;
	memcpy(ret, body, (size_t)k);
	ret[k] = '\0';
	return 0;
}

bool aws_token_due(uint64_t expiry_mono_usec, uint64_t now_mono_usec)
{
	uint64_t margin = AWS_TOKEN_MARGIN_SEC * USEC_PER_SEC;

	if (expiry_mono_usec == 0)
		return true;
	return expiry_mono_usec <= margin || now_mono_usec >= expiry_mono_usec - margin;
}

int aws_lifecycle_event(const char *instance_id, enum aws_target_state state, uint64_t notice_sec,
			bool needs_ack, struct spot_event *ret)
{
	struct spot_event ev;
	char prefix[40];
	size_t n, room;

	if (!instance_id || (int)state <= AWS_TARGET_OTHER || state >= _AWS_TARGET_MAX ||
	    notice_sec == 0 || notice_sec > UINT64_MAX / USEC_PER_SEC)
		return -EINVAL;
	n = strnlen(instance_id, PROVIDER_NAME_MAX);
	if (n == 0 || n >= PROVIDER_NAME_MAX)
		return -EINVAL;
	(void)snprintf(prefix, sizeof(prefix), "aws-asg-%s-", target_states[state].key);
	room = PROVIDER_KEY_MAX - 1 - strlen(prefix);
	event_init(&ev);
	/* An id too long for the key is cut there; the resource keeps it. */
	(void)snprintf(ev.id, sizeof(ev.id), "%s%.*s", prefix, (int)(n < room ? n : room), instance_id);
	if (event_add_resource(&ev, instance_id) < 0 || !event_id_valid(ev.id)) {
		event_done(&ev);
		return -EINVAL;
	}
	ev.id_from_first_seen = true;
	ev.type = EVENT_TERMINATE;
	ev.status = EVENT_SCHEDULED;
	/* The group acts on the account's behalf (scale-in, instance refresh,
	 * health replacement, the warm pool): not an EC2 capacity decision. */
	event_set_text(ev.source, sizeof(ev.source), "User");
	/* The item gives no time. A lifecycle hook holds the instance for its
	 * heartbeat timeout; without one the notice matches the Spot notice
	 * the hooks are written for. The engine counts it from the first
	 * sighting. */
	ev.not_before_usec = 0;
	ev.notice_usec = notice_sec * USEC_PER_SEC;
	ev.needs_ack = needs_ack;
	event_set_text(ev.description, sizeof(ev.description), target_states[state].description);
	ev.provider = PROVIDER_AWS;
	ev.feed = FEED_AWS_LIFECYCLE;

	event_done(ret);
	*ret = ev;
	return 0;
}

/* ---- events/maintenance/scheduled ---- */

static const struct {
	const char *code;
	enum event_type type;
} maintenance_codes[] = {
	{ "instance-reboot", EVENT_REBOOT },
	{ "system-reboot", EVENT_REBOOT },
	/* The host is serviced: the instance may be unreachable for a moment,
	 * its memory kept, as with Azure's Freeze. */
	{ "system-maintenance", EVENT_FREEZE },
	{ "instance-retirement", EVENT_TERMINATE },
	{ "instance-stop", EVENT_TERMINATE },
};

static const struct {
	const char *state;
	enum event_end end;
} maintenance_states[] = {
	{ "active", END_NONE },
	{ "completed", END_COMPLETED },
	{ "canceled", END_CANCELED },
};

void aws_maintenance_done(struct aws_maintenance *m)
{
	if (!m)
		return;
	event_list_done(&m->events);
	*m = (struct aws_maintenance){ 0 };
}

/* A string member, or NULL (absent or not a string). */
static const char *member_string(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Fills *ev from one entry: 0, or -EINVAL with the defect in why (and the
 * usable id, if any, in ev->id). */
static int parse_entry(const cJSON *o, uint64_t now_wall_usec, struct spot_event *ev,
		       char *why, size_t n)
{
	const cJSON *idv;
	const char *code, *state, *nb, *desc;
	bool known = false;
	int k;

	if (!cJSON_IsObject(o)) {
		(void)snprintf(why, n, "not an object");
		return -EINVAL;
	}
	idv = cJSON_GetObjectItemCaseSensitive(o, "EventId");
	if (!idv) {
		(void)snprintf(why, n, "EventId missing");
		return -EINVAL;
	}
	if (!cJSON_IsString(idv) || !idv->valuestring) {
		(void)snprintf(why, n, "EventId not a string");
		return -EINVAL;
	}
	if (!event_id_valid(idv->valuestring)) {
		(void)snprintf(why, n, "EventId empty, longer than %d bytes or with control characters",
			       EVENT_ID_MAX - 1);
		return -EINVAL;
	}
	(void)strscpy(ev->id, sizeof(ev->id), idv->valuestring);

	code = member_string(o, "Code");
	if (!code) {
		(void)snprintf(why, n, "Code missing or not a string");
		return -EINVAL;
	}
	for (size_t i = 0; i < ELEMENTSOF(maintenance_codes); i++)
		if (strcmp(code, maintenance_codes[i].code) == 0) {
			ev->type = maintenance_codes[i].type;
			known = true;
		}
	if (!known) {
		(void)snprintf(why, n, "unknown Code '%.32s'", code);
		return -EINVAL;
	}
	state = member_string(o, "State");
	if (!state) {
		(void)snprintf(why, n, "State missing or not a string");
		return -EINVAL;
	}
	known = false;
	for (size_t i = 0; i < ELEMENTSOF(maintenance_states); i++)
		if (strcmp(state, maintenance_states[i].state) == 0) {
			ev->end = maintenance_states[i].end;
			known = true;
		}
	if (!known) {
		(void)snprintf(why, n, "unknown State '%.32s'", state);
		return -EINVAL;
	}

	/* As Azure's: a time the agent cannot read counts as unknown, which
	 * gives the hooks the emergency budget instead of missing the event. */
	nb = member_string(o, "NotBefore");
	k = nb ? event_parse_time(nb, &ev->not_before_usec) : 0;
	if (!nb || k < 0)
		ev->not_before_usec = 0;
	if (!nb)
		event_set_note(ev, "NotBefore missing, taken as unknown (emergency budget)");
	else if (k < 0)
		event_set_note(ev, "NotBefore '%.48s' is %s, taken as unknown (emergency budget)", nb,
			       k == -ERANGE ? "out of range" : "unreadable");

	desc = member_string(o, "Description");
	if (desc && desc[0]) {
		char *text = xasprintf("%s: %s", code, desc);

		event_set_text(ev->description, sizeof(ev->description), text);
		free(text);
	} else {
		event_set_text(ev->description, sizeof(ev->description), code);
	}
	ev->status = ev->not_before_usec && now_wall_usec >= ev->not_before_usec ? EVENT_STARTED :
										   EVENT_SCHEDULED;
	event_set_text(ev->source, sizeof(ev->source), "Platform");
	ev->provider = PROVIDER_AWS;
	ev->feed = FEED_AWS_MAINTENANCE;
	return 0;
}

int aws_parse_maintenance(const char *body, size_t len, uint64_t now_wall_usec,
			  struct aws_maintenance *ret)
{
	struct aws_maintenance m = { 0 };
	const cJSON *item;
	size_t cap = 0;
	cJSON *root;
	int r = -EBADMSG;

	root = provider_parse_json(body, len);
	if (!cJSON_IsArray(root))
		goto out;
	cJSON_ArrayForEach(item, root) {
		struct spot_event ev;
		char why[sizeof(m.drops[0].reason)];

		event_init(&ev);
		if (parse_entry(item, now_wall_usec, &ev, why, sizeof(why)) < 0) {
			provider_drop_add(m.drops, &m.n_drops, ev.id, "%s", why);
			event_done(&ev);
			continue;
		}
		if (m.events.n_events >= AWS_MAINTENANCE_EVENTS_MAX) {
			provider_drop_add(m.drops, &m.n_drops, ev.id, "over the limit of %d events",
					  AWS_MAINTENANCE_EVENTS_MAX);
			event_done(&ev);
			continue;
		}
		if (m.events.n_events == cap) {
			cap = cap ? 2 * cap : 2;
			m.events.events = xrealloc(m.events.events, cap * sizeof(*m.events.events));
		}
		m.events.events[m.events.n_events++] = ev;
	}
	*ret = m;
	m = (struct aws_maintenance){ 0 };
	r = 0;
out:
	aws_maintenance_done(&m);
	cJSON_Delete(root);
	return r;
}

/* ---- events/maintenance/history ---- */

static bool id_among(const char (*ids)[EVENT_ID_MAX], size_t n_ids, const char *id)
{
	for (size_t i = 0; i < n_ids; i++)
		if (strcasecmp(ids[i], id) == 0)
			return true;
	return false;
}

int aws_parse_maintenance_history(const char *body, size_t len, uint64_t now_wall_usec,
				  const char (*ids)[EVENT_ID_MAX], size_t n_ids, struct event_list *ret)
{
	struct event_list l = { 0 };
	const cJSON *item;
	cJSON *root;

	root = provider_parse_json(body, len);
	if (!cJSON_IsArray(root)) {
		cJSON_Delete(root);
		return -EBADMSG;
	}
	cJSON_ArrayForEach(item, root) {
		struct spot_event ev;
		char why[sizeof(((struct provider_drop *)0)->reason)];
		bool keep;

		if (l.n_events >= n_ids)
			break;
		event_init(&ev);
		keep = parse_entry(item, now_wall_usec, &ev, why, sizeof(why)) == 0 && ev.end != END_NONE &&
		       id_among(ids, n_ids, ev.id);
		for (size_t i = 0; keep && i < l.n_events; i++)
			if (strcasecmp(l.events[i].id, ev.id) == 0)
				keep = false;
		if (!keep) {
			event_done(&ev);
			continue;
		}
		if (!l.events)
			l.events = xcalloc(n_ids, sizeof(*l.events));
		l.events[l.n_events++] = ev;
	}
	cJSON_Delete(root);
	event_list_done(ret);
	*ret = l;
	return 0;
}
