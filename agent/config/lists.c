/* lists.c - the two option values that are lists of items: the event
 * types that run the hooks (events: adding, taking out or replacing the
 * default) and the acknowledgement policy per type (approve-policy).
 * Blanks around items are passed over; every refusal quotes the value. */
#include "config/options.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Narrows the span p, len to leave out blanks at both ends. */
static void trim_span(const char **p, size_t *len)
{
	while (*len > 0 && isspace((unsigned char)**p)) {
		(*p)++;
		(*len)--;
	}
	while (*len > 0 && isspace((unsigned char)(*p)[*len - 1]))
		(*len)--;
}

int option_parse_events(const struct option_def *o, const char *s, unsigned *ret,
			char *err, size_t n)
{
	char e1[ECHO_MAX + 1], e2[ECHO_MAX + 1], names[128];
	unsigned mask = 0, add = 0, del = 0;
	const unsigned preempt = 1u << EVENT_PREEMPT;
	const char *p = s;
	int r;

	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char item[32], sign = 0;
		int v;

		trim_span(&p, &len);
		if (len > 0 && (*p == '+' || *p == '!')) {
			sign = *p;
			p++;
			len--;
		}
		if (len == 0) {
			(void)snprintf(err, n, "value '%s' has an empty item", option_echo(s, e1, sizeof(e1)));
			return -EINVAL;
		}
		if (len >= sizeof(item))
			len = sizeof(item) - 1; /* longer than any name: still unknown */
		memcpy(item, p, len);
		item[len] = '\0';
		if (option_parse_enum(o->choices, item, &v) < 0) {
			option_join_choices(o->choices, ", ", names, sizeof(names));
			(void)snprintf(err, n, "value '%s' names an unknown event type '%s' (known: %s)",
				       option_echo(s, e1, sizeof(e1)), option_echo(item, e2, sizeof(e2)), names);
			return -EINVAL;
		}
		if (sign == '+')
			add |= 1u << v;
		else if (sign == '!')
			del |= 1u << v;
		else
			mask |= 1u << v;
		if ((mask | add) & del & (1u << v)) {
			(void)snprintf(err, n, "value '%s' both wants and drops '%s'",
				       option_echo(s, e1, sizeof(e1)), o->choices->name(v));
			return -EINVAL;
		}
		if (!end)
			break;
		p = end + 1;
	}
	if (mask && add) {
		(void)snprintf(err, n, "value '%s' mixes plain names with '+Type': list every type "
			       "wanted, or only '+Type' and '!Type' items to change the default (%s)",
			       option_echo(s, e1, sizeof(e1)), o->def ? o->def : "");
		return -EINVAL;
	}
	if (mask && !(mask & preempt) && !(del & preempt)) {
		char plus[128] = "", keep[128] = "", drop[128] = "", not_pre[40];
		const char *pre = o->choices->name(EVENT_PREEMPT);

		option_list_append(keep, sizeof(keep), ",", pre);
		for (size_t i = 0; i < o->choices->n_values; i++) {
			int t = o->choices->values[i];
			char signed_name[40];

			if (mask & (1u << t)) {
				(void)snprintf(signed_name, sizeof(signed_name), "+%s", o->choices->name(t));
				option_list_append(plus, sizeof(plus), ",", signed_name);
				option_list_append(keep, sizeof(keep), ",", o->choices->name(t));
				option_list_append(drop, sizeof(drop), ",", o->choices->name(t));
			}
		}
		(void)snprintf(not_pre, sizeof(not_pre), "!%s", pre);
		option_list_append(drop, sizeof(drop), ",", not_pre);
		(void)snprintf(err, n, "value '%s' would ignore %s notices: write '%s' to add to the "
			       "default types, '%s' to keep %s, or '%s' to drop it on purpose",
			       option_echo(s, e1, sizeof(e1)), pre, plus, keep, pre, drop);
		return -EINVAL;
	}
	if (!mask) {
		r = o->def && o->def != s ? option_parse_events(o, o->def, &mask, err, n) : 0;
		if (r < 0)
			return r;
		mask = (mask | add) & ~del;
	}
	if (!mask) {
		(void)snprintf(err, n, "value '%s' leaves no event type to act on",
			       option_echo(s, e1, sizeof(e1)));
		return -EINVAL;
	}
	*ret = mask;
	return 0;
}

int option_parse_policies(const char *s, uint32_t *ret, char *err, size_t n)
{
	char e1[ECHO_MAX + 1], item[64];
	uint32_t v = 0;
	const char *p = s;

	while (*p) {
		const char *end = strchr(p, ','), *colon, *word = p, *pol;
		size_t len = end ? (size_t)(end - p) : strlen(p), pol_len;
		enum ack_policy policy;
		int type = -1;

		trim_span(&word, &len);
		if (len == 0 || len >= sizeof(item))
			goto bad;
		memcpy(item, word, len);
		item[len] = '\0';
		colon = strchr(item, ':');
		if (colon) {
			char name[32];
			const char *t = item;
			size_t k = (size_t)(colon - item);

			trim_span(&t, &k);
			if (k >= sizeof(name))
				goto bad;
			memcpy(name, t, k);
			name[k] = '\0';
			type = event_type_from_string(name);
			if (type < 0) {
				(void)snprintf(err, n, "value '%s' names no event type in '%s'",
					       option_echo(s, e1, sizeof(e1)), name);
				return -EINVAL;
			}
		}
		pol = colon ? colon + 1 : item;
		pol_len = strlen(pol);
		trim_span(&pol, &pol_len);
		((char *)pol)[pol_len] = '\0';
		if (ack_policy_from_string(pol, &policy) < 0)
			goto bad;
		for (int t = 0; t < _EVENT_TYPE_MAX; t++)
			if (type < 0 || t == type)
				v = (v & ~(3u << (2 * t))) | ((uint32_t)policy << (2 * t));
		p = end ? end + 1 : p + strlen(p);
		if (end && !*p)
			goto bad;
	}
	*ret = v;
	return 0;
bad:
	(void)snprintf(err, n, "value '%s' is not a list of after-hooks, at-once or never, each for "
		       "every type or as Type:policy", option_echo(s, e1, sizeof(e1)));
	return -EINVAL;
}

void option_format_policies(uint32_t policies, char *buf, size_t n)
{
	(void)strscpy(buf, n, ack_policy_to_string(ACK_AFTER_HOOKS));
	for (int t = 0; t < _EVENT_TYPE_MAX; t++) {
		enum ack_policy p = (enum ack_policy)((policies >> (2 * t)) & 3u);
		char item[48];

		if (p == ACK_AFTER_HOOKS)
			continue;
		(void)snprintf(item, sizeof(item), "%s:%s", event_type_to_string((enum event_type)t),
			       ack_policy_to_string(p));
		option_list_append(buf, n, ",", item);
	}
}
