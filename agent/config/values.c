/* values.c - one option's value: parsed and checked against the table's
 * type and bounds ("FILE:LINE: message" comes from the caller), stored
 * into struct config, defaulted and freed. The edge where the operator's
 * input enters the agent: every message quotes it safely (option_echo). */
#include "config/options.h"

#include <arpa/inet.h>
#include <unistd.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/address.h"
#include "evidence/samples.h"
#include "log.h"

/* Copies s for quoting in a message: control characters become '?', and a
 * long value is cut with "...". Returns buf. */
const char *option_echo(const char *s, char *buf, size_t n)
{
	size_t len = strlen(s), i, k = 0;
	bool cut = len >= n || len > ECHO_MAX;
	size_t keep = cut ? (n - 1 < ECHO_MAX ? n - 1 : ECHO_MAX) - 3 : len;

	for (i = 0; i < keep; i++)
		buf[k++] = iscntrl((unsigned char)s[i]) ? '?' : s[i];
	if (cut) {
		memcpy(buf + k, "...", 3);
		k += 3;
	}
	buf[k] = '\0';
	return buf;
}

void option_join_choices(const struct enum_desc *d, const char *sep, char *buf, size_t n)
{
	size_t k = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < d->n_values && k < n; i++) {
		int w = snprintf(buf + k, n - k, "%s%s", i ? sep : "", d->name(d->values[i]));

		if (w < 0)
			break;
		k += (size_t)w;
	}
}

int option_parse_enum(const struct enum_desc *d, const char *s, int *ret)
{
	int v;

	if (d->parse(s, &v) < 0)
		return -EINVAL;
	for (size_t i = 0; i < d->n_values; i++)
		if (d->values[i] == v) {
			*ret = v;
			return 0;
		}
	return -EINVAL;
}

/* Appends text to the string in buf (of n bytes), cut when full. */
void option_str_append(char *buf, size_t n, const char *text)
{
	size_t k = strlen(buf);

	if (k + 1 < n)
		(void)strscpy(buf + k, n - k, text);
}

/* Appends sep (unless buf is empty) and text to the list in buf. */
void option_list_append(char *buf, size_t n, const char *sep, const char *text)
{
	if (buf[0])
		option_str_append(buf, n, sep);
	option_str_append(buf, n, text);
}

/* Three forms, so that adding is never mistaken for replacing and Preempt
 * is never lost by accident:
 *   "+A,!B"  the default, plus A, minus B;
 *   "A,C"    exactly A and C, replacing the default; it must name Preempt
 *            or drop it on purpose with "!Preempt" ("A,!Preempt");
 *   "!B" next to plain names only says that B is left out on purpose, while
 *   "+A" next to them is refused: adding to a list that replaces the
 *   default means nothing.
 * A type both wanted and dropped, and a list that leaves no type, are
 * refused as well. */
/* The rule is http/address.c's, the words are the config's. The config
 * asks for more: a port of its own (1 or more), and an address literal,
 * so that what check prints is what the socket binds. */
static int parse_listen(const char *s, char *err, size_t n)
{
	char e1[ECHO_MAX + 1], e2[ECHO_MAX + 1];
	char addr[INET6_ADDRSTRLEN + 1];
	struct http_address a;
	size_t alen;

	if (strcmp(s, "none") == 0)
		return 0;
	if (http_address_parse(s, &a) == 0) {
		if (a.named)
			a.error = HTTP_ADDRESS_HOST;
		else if (a.port_number < 1)
			a.error = HTTP_ADDRESS_PORT;
		else
			return 0;
	}
	switch (a.error) {
	case HTTP_ADDRESS_PORT:
		(void)snprintf(err, n, "value '%s' has an invalid port '%s' (1 to 65535)",
			       option_echo(s, e1, sizeof(e1)), option_echo(a.port, e2, sizeof(e2)));
		return -EINVAL;
	case HTTP_ADDRESS_BRACKETS:
		(void)snprintf(err, n, "value '%s' needs brackets around an IPv6 address, "
			       "as in [::1]:%u", option_echo(s, e1, sizeof(e1)), CONFIG_DEFAULT_PORT);
		return -EINVAL;
	case HTTP_ADDRESS_HOST:
		/* The listener binds a numeric address; names are not resolved. */
		alen = a.host_len < sizeof(addr) ? a.host_len : sizeof(addr) - 1;
		memcpy(addr, a.host, alen);
		addr[alen] = '\0';
		(void)snprintf(err, n, "value '%s' has an invalid %s address '%s'",
			       option_echo(s, e1, sizeof(e1)), a.family == AF_INET6 ? "IPv6" : "IPv4",
			       option_echo(addr, e2, sizeof(e2)));
		return -EINVAL;
	default:
		(void)snprintf(err, n, "value '%s' is not 'none', ADDR:PORT or [IPV6]:PORT",
			       option_echo(s, e1, sizeof(e1)));
		return -EINVAL;
	}
}

static int parse_url(const char *s, char *err, size_t n)
{
	char e1[ECHO_MAX + 1];
	const char *host;

	if (strncasecmp(s, "http://", 7) == 0)
		host = s + 7;
	else if (strncasecmp(s, "https://", 8) == 0)
		host = s + 8;
	else {
		(void)snprintf(err, n, "value '%s' does not start with http:// or https://",
			       option_echo(s, e1, sizeof(e1)));
		return -EINVAL;
	}
	if (host[0] == '\0' || host[0] == '/') {
		(void)snprintf(err, n, "value '%s' has no host", option_echo(s, e1, sizeof(e1)));
		return -EINVAL;
	}
	if (strpbrk(s, " ")) {
		(void)snprintf(err, n, "value '%s' contains a space", option_echo(s, e1, sizeof(e1)));
		return -EINVAL;
	}
	return 0;
}

/* Parses text as a value of option o into *ret (strings are allocated).
 * On failure writes a message (without location) to err. */
int option_parse_value(const struct option_def *o, const char *text, union value *ret,
		       char *err, size_t n)
{
	char e1[ECHO_MAX + 1], names[128];
	uint64_t u;
	int r;

	if (option_is_string_type(o->type) || o->type == OPT_LIST) {
		size_t len = strlen(text);

		if (len > o->max) {
			(void)snprintf(err, n, "value is longer than %" PRIu64 " bytes", o->max);
			return -EINVAL;
		}
		for (size_t i = 0; i < len; i++)
			if (iscntrl((unsigned char)text[i])) {
				(void)snprintf(err, n, "value '%s' contains a control character",
					       option_echo(text, e1, sizeof(e1)));
				return -EINVAL;
			}
		/* A value never needs a double quote, and without one every value
		 * can be written back into a config file. */
		if (strchr(text, '"')) {
			(void)snprintf(err, n, "value '%s' contains a double quote",
				       option_echo(text, e1, sizeof(e1)));
			return -EINVAL;
		}
		if (len == 0 && ((o->flags & OPT_UNSET) || o->type == OPT_LIST)) {
			ret->s = NULL;
			return 0;
		}
		if ((o->flags & OPT_NONE) && (len == 0 || strcmp(text, "none") == 0)) {
			ret->s = xstrdup("");
			return 0;
		}
	}
	if (text[0] == '\0' && option_takes_value(o)) {
		(void)snprintf(err, n, "value is empty");
		return -EINVAL;
	}

	switch (o->type) {
	case OPT_URL:
		if (parse_url(text, err, n) < 0)
			return -EINVAL;
		ret->s = xstrdup(text);
		/* The providers append "/metadata/..." to the base. */
		for (size_t len = strlen(ret->s); len > 0 && ret->s[len - 1] == '/'; len--)
			ret->s[len - 1] = '\0';
		return 0;
	case OPT_LISTEN:
		if (parse_listen(text, err, n) < 0)
			return -EINVAL;
		ret->s = xstrdup(text);
		return 0;
	case OPT_PATH:
		/* Hooks run with cwd "/", so a relative directory is made
		 * absolute here, against the directory the agent started in.
		 * The config file keeps its name as given, for messages. */
		if (strcmp(o->name, "config") != 0 && text[0] != '\0' && text[0] != '/' &&
		    strcmp(text, "none") != 0) {
			char cwd[PATH_MAX];

			if (!getcwd(cwd, sizeof(cwd))) {
				(void)snprintf(err, n, "value '%s' is relative and the current directory is unknown",
					       option_echo(text, e1, sizeof(e1)));
				return -EINVAL;
			}
			ret->s = xasprintf("%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, text);
			return 0;
		}
		ret->s = xstrdup(text);
		return 0;
	case OPT_STRING:
		ret->s = xstrdup(text);
		return 0;
	case OPT_NAME:
		for (const char *c = text; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
			      *c == '_' || *c == '-' || *c == '/')) {
				(void)snprintf(err, n, "value '%s' may hold only letters, digits, '_', '-' and '/'",
					       option_echo(text, e1, sizeof(e1)));
				return -EINVAL;
			}
		ret->s = xstrdup(text);
		return 0;
	case OPT_UINT:
		r = parse_uint64(text, 0, UINT64_MAX, &u);
		if (r == -EINVAL) {
			(void)snprintf(err, n, "value '%s' is not a whole number",
				       option_echo(text, e1, sizeof(e1)));
			return -EINVAL;
		}
		if (r < 0 || u > o->max) {
			(void)snprintf(err, n, "value '%s' is above the maximum %" PRIu64,
				       option_echo(text, e1, sizeof(e1)), o->max);
			return -EINVAL;
		}
		if (u < o->min) {
			(void)snprintf(err, n, "value '%s' is below the minimum %" PRIu64 "%s%s%s",
				       option_echo(text, e1, sizeof(e1)), o->min, o->min_note ? " (" : "",
				       o->min_note ? o->min_note : "", o->min_note ? ")" : "");
			return -EINVAL;
		}
		ret->u = u;
		return 0;
	case OPT_BOOL:
		if (parse_bool(text, &ret->b) < 0) {
			(void)snprintf(err, n, "value '%s' is not a boolean (yes or no)",
				       option_echo(text, e1, sizeof(e1)));
			return -EINVAL;
		}
		return 0;
	case OPT_ENUM:
		if (option_parse_enum(o->choices, text, &ret->e) < 0) {
			option_join_choices(o->choices, ", ", names, sizeof(names));
			(void)snprintf(err, n, "value '%s' is not one of %s",
				       option_echo(text, e1, sizeof(e1)), names);
			return -EINVAL;
		}
		return 0;
	case OPT_EVENTS:
		return option_parse_events(o, text, &ret->mask, err, n);
	case OPT_POLICIES:
		return option_parse_policies(text, &ret->policies, err, n);
	case OPT_LIST: {
		char why[160];

		if (evidence_label_check(text, why, sizeof(why)) < 0) {
			(void)snprintf(err, n, "value '%s': %s", option_echo(text, e1, sizeof(e1)), why);
			return -EINVAL;
		}
		ret->s = xstrdup(text);
		return 0;
	}
	case OPT_HELP:
	case OPT_VERSION:
		break;
	}
	(void)snprintf(err, n, "takes no value");
	return -EINVAL;
}

/* An OPT_LIST's list: NULL empties it, a NAME=VALUE whose NAME is held
 * replaces that one (the command line after the file), any other is
 * appended. Takes item. */
static void list_store(void *field, char *item)
{
	char ***list = field;
	size_t n = 0, name_len;

	if (!item) {
		option_list_free(list);
		return;
	}
	name_len = strcspn(item, "=") + 1;
	for (; *list && (*list)[n]; n++)
		if (strncmp((*list)[n], item, name_len) == 0) {
			free((*list)[n]);
			(*list)[n] = item;
			return;
		}
	*list = xrealloc(*list, (n + 2) * sizeof(char *));
	(*list)[n] = item;
	(*list)[n + 1] = NULL;
}

void option_list_free(char ***list)
{
	for (size_t i = 0; *list && (*list)[i]; i++)
		free((*list)[i]);
	free(*list);
	*list = NULL;
}

size_t option_list_len(char *const *list)
{
	size_t n = 0;

	while (list && list[n])
		n++;
	return n;
}

void option_store_value(const struct option_def *o, struct config *c, union value *v)
{
	void *field = (char *)c + o->offset;

	switch (o->type) {
	case OPT_PATH:
	case OPT_STRING:
	case OPT_NAME:
	case OPT_URL:
	case OPT_LISTEN:
		free(*(char **)field);
		*(char **)field = v->s;
		v->s = NULL;
		break;
	case OPT_UINT:
		*(uint64_t *)field = v->u;
		break;
	case OPT_BOOL:
		*(bool *)field = v->b;
		break;
	case OPT_ENUM:
		*(int *)field = v->e;
		break;
	case OPT_EVENTS:
		*(unsigned *)field = v->mask;
		break;
	case OPT_POLICIES:
		for (int t = 0; t < _EVENT_TYPE_MAX; t++)
			((enum ack_policy *)field)[t] = (enum ack_policy)((v->policies >> (2 * t)) & 3u);
		break;
	case OPT_LIST:
		list_store(field, v->s);
		v->s = NULL;
		break;
	case OPT_HELP:
	case OPT_VERSION:
		break;
	}
}

void option_value_done(const struct option_def *o, union value *v)
{
	if (option_is_string_type(o->type) || o->type == OPT_LIST)
		freep_str(&v->s);
}

/* The table's defaults are text parsed by the same code as any value, so a
 * default can never be something the parser would refuse. */
void option_default_value(const struct option_def *o, union value *ret)
{
	char err[ERR_MAX];

	memset(ret, 0, sizeof(*ret));
	if (o->def && option_parse_value(o, o->def, ret, err, sizeof(err)) < 0)
		abort(); /* a broken table is a build bug */
}

void option_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < OPTIONS_N; i++) {
		union value v;

		if (option_table[i].flags & OPT_CMDLINE)
			continue;
		option_default_value(&option_table[i], &v);
		option_store_value(&option_table[i], c, &v);
	}
}

void config_done(struct config *c)
{
	if (!c)
		return;
	freep_str(&c->config_path);
	for (size_t i = 0; i < OPTIONS_N; i++)
		if (!(option_table[i].flags & OPT_CMDLINE) && option_is_string_type(option_table[i].type))
			freep_str((char **)((char *)c + option_table[i].offset));
		else if (!(option_table[i].flags & OPT_CMDLINE) && option_table[i].type == OPT_LIST)
			option_list_free((char ***)((char *)c + option_table[i].offset));
}

const char *config_imds_url(const struct config *c)
{
	if (c->imds_url)
		return c->imds_url;
	return c->provider == PROVIDER_GCP ? CONFIG_IMDS_URL_GCP : CONFIG_IMDS_URL_DEFAULT;
}
