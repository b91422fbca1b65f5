/* config.c - the option table and everything it drives: the defaults, the
 * config file parser, the command line, config_print and --help. This is the
 * edge where the operator's input enters the agent, so it logs its own
 * one-line errors. It never exits and never applies a half-valid
 * configuration: a result is handed out whole or not at all. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Enum fields of struct config are stored through an int. */
_Static_assert(sizeof(enum provider) == sizeof(int), "enum provider is not int-sized");
_Static_assert(sizeof(enum log_format) == sizeof(int), "enum log_format is not int-sized");

#define ERR_MAX        512  /* one error message, without the location */
#define ECHO_MAX       64   /* longer values are cut when quoted in a message */
#define LONGOPT_BASE   0x100
#define LONGOPT_NEGATE 0x200
#define HELP_COLUMN    32
#define HELP_WIDTH     79

enum opt_type {
	OPT_PATH,
	OPT_STRING,
	OPT_URL,
	OPT_UINT,
	OPT_BOOL,
	OPT_ENUM,
	OPT_EVENTS,
	OPT_LISTEN,
	OPT_HELP,
	OPT_VERSION,
};

enum {
	OPT_CMDLINE = 1u << 0,  /* command line only, not a config file key */
	OPT_DRILL   = 1u << 1,  /* only together with the drill subcommand */
	OPT_UNSET   = 1u << 2,  /* "" leaves it unset (NULL): the value comes from elsewhere */
	OPT_NONE    = 1u << 3,  /* "none" (or "") is stored as "" and disables the feature */
	OPT_RESTART = 1u << 4,  /* a reload keeps the running value (agent_reload): needs a restart */
};

/* The names of an enum and how to parse them; values lists the accepted ones. */
struct enum_desc {
	const int *values;
	size_t n_values;
	const char *(*name)(int v);
	int (*parse)(const char *s, int *ret);
};

struct option_def {
	const char *name;          /* long option and config key */
	char short_name;           /* 0 when none */
	enum opt_type type;
	unsigned flags;
	size_t offset;             /* in struct config; unused with OPT_CMDLINE */
	uint64_t min, max;         /* OPT_UINT: bounds; strings: max is the length limit */
	const char *def;           /* default as text, parsed like any value; NULL = unset */
	const char *metavar;
	const char *help;
	const struct enum_desc *choices; /* OPT_ENUM, OPT_EVENTS */
	const char *min_note;      /* appended to "is below the minimum" */
};

union value {
	uint64_t u;
	bool b;
	int e;
	unsigned mask;
	char *s;                   /* owned */
};

static const char *provider_name(int v)
{
	return provider_to_string((enum provider)v);
}

static int provider_parse(const char *s, int *ret)
{
	enum provider p;
	int r = provider_from_string(s, &p);

	if (r < 0)
		return r;
	*ret = (int)p;
	return 0;
}

static const char *event_type_name(int v)
{
	return event_type_to_string((enum event_type)v);
}

static int event_type_parse(const char *s, int *ret)
{
	enum event_type t = event_type_from_string(s);

	if (t == EVENT_TYPE_INVALID)
		return -EINVAL;
	*ret = (int)t;
	return 0;
}

static const char *log_format_name(int v)
{
	return log_format_to_string((enum log_format)v);
}

static int log_format_parse(const char *s, int *ret)
{
	enum log_format f;
	int r = log_parse_format(s, &f);

	if (r < 0)
		return r;
	*ret = (int)f;
	return 0;
}

static const int provider_values[] = { PROVIDER_AZURE, PROVIDER_AWS, PROVIDER_GCP, PROVIDER_AUTO };
static const struct enum_desc provider_desc = {
	provider_values, ELEMENTSOF(provider_values), provider_name, provider_parse,
};

static const int event_type_values[] = {
	EVENT_PREEMPT, EVENT_TERMINATE, EVENT_REBOOT, EVENT_REDEPLOY, EVENT_FREEZE, EVENT_SHUTDOWN,
};
static const struct enum_desc event_type_desc = {
	event_type_values, ELEMENTSOF(event_type_values), event_type_name, event_type_parse,
};

static const int log_format_values[] = {
	LOG_FORMAT_AUTO, LOG_FORMAT_TEXT, LOG_FORMAT_JSON, LOG_FORMAT_JOURNAL,
};
static const struct enum_desc log_format_desc = {
	log_format_values, ELEMENTSOF(log_format_values), log_format_name, log_format_parse,
};

static const int log_level_values[] = { LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR };
static const struct enum_desc log_level_desc = {
	log_level_values, ELEMENTSOF(log_level_values), log_level_to_string, log_parse_level,
};

#define CFG(field) offsetof(struct config, field)

/* The one table: every option, config key, default and help line. */
static const struct option_def options[] = {
	{ "config", 'c', OPT_PATH, OPT_CMDLINE, 0, 0, PATH_MAX - 1, CONFIG_DEFAULT_PATH, "FILE",
	  "config file, command line only; a missing default file means defaults, a "
	  "missing named file is an error", NULL, NULL },
	{ "provider", 0, OPT_ENUM, OPT_RESTART, CFG(provider), 0, 0, "azure", "NAME",
	  "cloud whose metadata service is watched; auto probes them", &provider_desc, NULL },
	{ "imds-url", 0, OPT_URL, OPT_UNSET | OPT_RESTART, CFG(imds_url), 0, CONFIG_URL_MAX, NULL, "URL",
	  "base URL of the metadata service, for tests and simulators; unset means the "
	  "provider's: " CONFIG_IMDS_URL_DEFAULT " for azure and aws, " CONFIG_IMDS_URL_GCP
	  " for gcp", NULL, NULL },
	{ "hooks-dir", 0, OPT_PATH, 0, CFG(hooks_dir), 0, PATH_MAX - 1, CONFIG_DEFAULT_HOOKS, "DIR",
	  "hook directory; its files run one after another in byte order of their names",
	  NULL, NULL },
	{ "hooks-lib-dir", 0, OPT_PATH, OPT_NONE, CFG(hooks_lib_dir), 0, PATH_MAX - 1,
	  CONFIG_DEFAULT_LIB, "DIR",
	  "packaged hooks, merged with the hook directory by file name: the hook "
	  "directory wins and a link to /dev/null there masks; 'none' disables the "
	  "merge (for tests and packaging)", NULL, NULL },
	{ "state-dir", 0, OPT_PATH, OPT_RESTART, CFG(state_dir), 0, PATH_MAX - 1, CONFIG_DEFAULT_STATE, "DIR",
	  "persistent state (state.json)", NULL, NULL },
	{ "listen", 0, OPT_LISTEN, OPT_RESTART, CFG(listen), 0, CONFIG_LISTEN_MAX, CONFIG_DEFAULT_LISTEN,
	  "ADDR:PORT",
	  "HTTP endpoint (/healthz, /readyz, /v1/status, /metrics), ADDR:PORT or "
	  "[IPV6]:PORT; 'none' disables it; on an address that is not loopback only "
	  "/healthz and /readyz unless exposed", NULL, NULL },
	{ "expose-metrics", 0, OPT_BOOL, 0, CFG(expose_metrics), 0, 0, "no", NULL,
	  "also serve /metrics when listen is not a loopback address", NULL, NULL },
	{ "expose-status", 0, OPT_BOOL, 0, CFG(expose_status), 0, 0, "no", NULL,
	  "also serve /v1/status (hook output, paths, event ids) when listen is not a "
	  "loopback address", NULL, NULL },
	{ "poll-interval", 0, OPT_UINT, 0, CFG(poll_interval_ms), CONFIG_POLL_MIN_MS,
	  CONFIG_POLL_MAX_MS, "1000", "MS", "metadata poll period in milliseconds", NULL,
	  "Azure IMDS allows about 5 requests per second" },
	{ "vm-name", 0, OPT_STRING, OPT_UNSET | OPT_RESTART, CFG(vm_name), 0, CONFIG_VM_NAME_MAX, NULL, "NAME",
	  "this VM's name as events list it; set only to override, unset means it is "
	  "asked from the metadata service", NULL, NULL },
	{ "events", 0, OPT_EVENTS, 0, CFG(events_mask), 0, 0, "Preempt,Terminate,Shutdown", "LIST",
	  "comma-separated event types that trigger the hooks: '+Type' adds to the default, "
	  "'!Type' takes one out of it; plain names replace it, and such a list names "
	  "Preempt or drops it with '!Preempt'", &event_type_desc, NULL },
	{ "margin", 0, OPT_UINT, 0, CFG(margin_sec), 0, 600, "2", "SECONDS",
	  "the hook chain must end this long before the event's NotBefore", NULL, NULL },
	{ "gcp-preempt-notice", 0, OPT_UINT, 0, CFG(gcp_preempt_notice_sec), 1, 600, "30", "SECONDS",
	  "GCP: time from a preemption notice to the hard power-off (150 with "
	  "preemptionNoticeDuration=120s)", NULL, NULL },
	{ "hook-timeout", 0, OPT_UINT, 0, CFG(hook_timeout_sec), 0, 3600, "0", "SECONDS",
	  "upper bound for any single hook; 0 means only the deadline", NULL, NULL },
	{ "approve", 0, OPT_BOOL, 0, CFG(approve), 0, 0, "yes", NULL,
	  "approve the event after the hooks (Azure StartRequests); --no-approve, or "
	  "'approve = no' in the file, does not", NULL, NULL },
	{ "log-format", 0, OPT_ENUM, 0, CFG(log_format), 0, 0, "auto", "FORMAT",
	  "log output; auto is journal under systemd, else text", &log_format_desc, NULL },
	{ "log-level", 0, OPT_ENUM, 0, CFG(log_level), 0, 0, "info", "LEVEL",
	  "most verbose level logged", &log_level_desc, NULL },
	{ "type", 0, OPT_ENUM, OPT_CMDLINE | OPT_DRILL, 0, 0, 0, "Preempt", "TYPE",
	  "drill: type of the synthetic event", &event_type_desc, NULL },
	{ "notice", 0, OPT_UINT, OPT_CMDLINE | OPT_DRILL, 0, 1, 3600, "30", "SECONDS",
	  "drill: seconds from now to the synthetic event's NotBefore", NULL, NULL },
	{ "help", 'h', OPT_HELP, OPT_CMDLINE, 0, 0, 0, NULL, NULL, "show this help and exit",
	  NULL, NULL },
	{ "version", 0, OPT_VERSION, OPT_CMDLINE, 0, 0, 0, NULL, NULL,
	  "show the version and exit", NULL, NULL },
};

#define N_OPTIONS ELEMENTSOF(options)

static const struct option_def *find_option(const char *name)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (strcmp(options[i].name, name) == 0)
			return &options[i];
	return NULL;
}

static bool takes_value(const struct option_def *o)
{
	return o->type != OPT_BOOL && o->type != OPT_HELP && o->type != OPT_VERSION;
}

static bool is_string_type(enum opt_type t)
{
	return t == OPT_PATH || t == OPT_STRING || t == OPT_URL || t == OPT_LISTEN;
}

/* Copies s for quoting in a message: control characters become '?', and a
 * long value is cut with "...". Returns buf. */
static const char *echo(const char *s, char *buf, size_t n)
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

static void join_choices(const struct enum_desc *d, const char *sep, char *buf, size_t n)
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

static int parse_enum(const struct enum_desc *d, const char *s, int *ret)
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
static void str_append(char *buf, size_t n, const char *text)
{
	size_t k = strlen(buf);

	if (k + 1 < n)
		(void)strscpy(buf + k, n - k, text);
}

/* Appends sep (unless buf is empty) and text to the list in buf. */
static void list_append(char *buf, size_t n, const char *sep, const char *text)
{
	if (buf[0])
		str_append(buf, n, sep);
	str_append(buf, n, text);
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
static int parse_events(const struct option_def *o, const char *s, unsigned *ret,
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

		while (len > 0 && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)p[len - 1]))
			len--;
		if (len > 0 && (*p == '+' || *p == '!')) {
			sign = *p;
			p++;
			len--;
		}
		if (len == 0) {
			(void)snprintf(err, n, "value '%s' has an empty item", echo(s, e1, sizeof(e1)));
			return -EINVAL;
		}
		if (len >= sizeof(item))
			len = sizeof(item) - 1; /* longer than any name: still unknown */
		memcpy(item, p, len);
		item[len] = '\0';
		if (parse_enum(o->choices, item, &v) < 0) {
			join_choices(o->choices, ", ", names, sizeof(names));
			(void)snprintf(err, n, "value '%s' names an unknown event type '%s' (known: %s)",
				       echo(s, e1, sizeof(e1)), echo(item, e2, sizeof(e2)), names);
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
				       echo(s, e1, sizeof(e1)), o->choices->name(v));
			return -EINVAL;
		}
		if (!end)
			break;
		p = end + 1;
	}
	if (mask && add) {
		(void)snprintf(err, n, "value '%s' mixes plain names with '+Type': list every type "
			       "wanted, or only '+Type' and '!Type' items to change the default (%s)",
			       echo(s, e1, sizeof(e1)), o->def ? o->def : "");
		return -EINVAL;
	}
	if (mask && !(mask & preempt) && !(del & preempt)) {
		char plus[128] = "", keep[128] = "", drop[128] = "", not_pre[40];
		const char *pre = o->choices->name(EVENT_PREEMPT);

		list_append(keep, sizeof(keep), ",", pre);
		for (size_t i = 0; i < o->choices->n_values; i++) {
			int t = o->choices->values[i];
			char signed_name[40];

			if (mask & (1u << t)) {
				(void)snprintf(signed_name, sizeof(signed_name), "+%s", o->choices->name(t));
				list_append(plus, sizeof(plus), ",", signed_name);
				list_append(keep, sizeof(keep), ",", o->choices->name(t));
				list_append(drop, sizeof(drop), ",", o->choices->name(t));
			}
		}
		(void)snprintf(not_pre, sizeof(not_pre), "!%s", pre);
		list_append(drop, sizeof(drop), ",", not_pre);
		(void)snprintf(err, n, "value '%s' would ignore %s notices: write '%s' to add to the "
			       "default types, '%s' to keep %s, or '%s' to drop it on purpose",
			       echo(s, e1, sizeof(e1)), pre, plus, keep, pre, drop);
		return -EINVAL;
	}
	if (!mask) {
		r = o->def && o->def != s ? parse_events(o, o->def, &mask, err, n) : 0;
		if (r < 0)
			return r;
		mask = (mask | add) & ~del;
	}
	if (!mask) {
		(void)snprintf(err, n, "value '%s' leaves no event type to act on",
			       echo(s, e1, sizeof(e1)));
		return -EINVAL;
	}
	*ret = mask;
	return 0;
}

static int parse_listen(const char *s, char *err, size_t n)
{
	char e1[ECHO_MAX + 1], e2[ECHO_MAX + 1];
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *port;
	size_t alen;
	uint64_t p;
	int family;

	if (strcmp(s, "none") == 0)
		return 0;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			goto bad_form;
		alen = (size_t)(close - s - 1);
		port = close + 2;
		family = AF_INET6;
		s++;
	} else {
		const char *colon = strrchr(s, ':');

		if (!colon)
			goto bad_form;
		alen = (size_t)(colon - s);
		port = colon + 1;
		family = AF_INET;
		if (memchr(s, ':', alen)) {
			(void)snprintf(err, n, "value '%s' needs brackets around an IPv6 address, "
				       "as in [::1]:%u", echo(s, e1, sizeof(e1)), CONFIG_DEFAULT_PORT);
			return -EINVAL;
		}
	}
	if (alen == 0 || alen >= sizeof(addr))
		goto bad_addr;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(family, addr, bin) != 1)
		goto bad_addr;
	if (parse_uint64(port, 1, 65535, &p) < 0) {
		(void)snprintf(err, n, "value '%s' has an invalid port '%s' (1 to 65535)",
			       echo(family == AF_INET6 ? s - 1 : s, e1, sizeof(e1)),
			       echo(port, e2, sizeof(e2)));
		return -EINVAL;
	}
	return 0;

bad_form:
	(void)snprintf(err, n, "value '%s' is not 'none', ADDR:PORT or [IPV6]:PORT",
		       echo(s, e1, sizeof(e1)));
	return -EINVAL;
bad_addr:
	/* The listener binds a numeric address; names are not resolved. */
	alen = alen < sizeof(addr) ? alen : sizeof(addr) - 1;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	(void)snprintf(err, n, "value '%s' has an invalid %s address '%s'",
		       echo(family == AF_INET6 ? s - 1 : s, e1, sizeof(e1)),
		       family == AF_INET6 ? "IPv6" : "IPv4", echo(addr, e2, sizeof(e2)));
	return -EINVAL;
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
			       echo(s, e1, sizeof(e1)));
		return -EINVAL;
	}
	if (host[0] == '\0' || host[0] == '/') {
		(void)snprintf(err, n, "value '%s' has no host", echo(s, e1, sizeof(e1)));
		return -EINVAL;
	}
	if (strpbrk(s, " ")) {
		(void)snprintf(err, n, "value '%s' contains a space", echo(s, e1, sizeof(e1)));
		return -EINVAL;
	}
	return 0;
}

/* Parses text as a value of option o into *ret (strings are allocated).
 * On failure writes a message (without location) to err. */
static int parse_value(const struct option_def *o, const char *text, union value *ret,
		       char *err, size_t n)
{
	char e1[ECHO_MAX + 1], names[128];
	uint64_t u;
	int r;

	if (is_string_type(o->type)) {
		size_t len = strlen(text);

		if (len > o->max) {
			(void)snprintf(err, n, "value is longer than %" PRIu64 " bytes", o->max);
			return -EINVAL;
		}
		for (size_t i = 0; i < len; i++)
			if (iscntrl((unsigned char)text[i])) {
				(void)snprintf(err, n, "value '%s' contains a control character",
					       echo(text, e1, sizeof(e1)));
				return -EINVAL;
			}
		/* A value never needs a double quote, and without one every value
		 * can be written back into a config file. */
		if (strchr(text, '"')) {
			(void)snprintf(err, n, "value '%s' contains a double quote",
				       echo(text, e1, sizeof(e1)));
			return -EINVAL;
		}
		if (len == 0 && (o->flags & OPT_UNSET)) {
			ret->s = NULL;
			return 0;
		}
		if ((o->flags & OPT_NONE) && (len == 0 || strcmp(text, "none") == 0)) {
			ret->s = xstrdup("");
			return 0;
		}
	}
	if (text[0] == '\0' && takes_value(o)) {
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
					       echo(text, e1, sizeof(e1)));
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
	case OPT_UINT:
		r = parse_uint64(text, 0, UINT64_MAX, &u);
		if (r == -EINVAL) {
			(void)snprintf(err, n, "value '%s' is not a whole number",
				       echo(text, e1, sizeof(e1)));
			return -EINVAL;
		}
		if (r < 0 || u > o->max) {
			(void)snprintf(err, n, "value '%s' is above the maximum %" PRIu64,
				       echo(text, e1, sizeof(e1)), o->max);
			return -EINVAL;
		}
		if (u < o->min) {
			(void)snprintf(err, n, "value '%s' is below the minimum %" PRIu64 "%s%s%s",
				       echo(text, e1, sizeof(e1)), o->min, o->min_note ? " (" : "",
				       o->min_note ? o->min_note : "", o->min_note ? ")" : "");
			return -EINVAL;
		}
		ret->u = u;
		return 0;
	case OPT_BOOL:
		if (parse_bool(text, &ret->b) < 0) {
			(void)snprintf(err, n, "value '%s' is not a boolean (yes or no)",
				       echo(text, e1, sizeof(e1)));
			return -EINVAL;
		}
		return 0;
	case OPT_ENUM:
		if (parse_enum(o->choices, text, &ret->e) < 0) {
			join_choices(o->choices, ", ", names, sizeof(names));
			(void)snprintf(err, n, "value '%s' is not one of %s",
				       echo(text, e1, sizeof(e1)), names);
			return -EINVAL;
		}
		return 0;
	case OPT_EVENTS:
		return parse_events(o, text, &ret->mask, err, n);
	case OPT_HELP:
	case OPT_VERSION:
		break;
	}
	(void)snprintf(err, n, "takes no value");
	return -EINVAL;
}

static void store_value(const struct option_def *o, struct config *c, union value *v)
{
	void *field = (char *)c + o->offset;

	switch (o->type) {
	case OPT_PATH:
	case OPT_STRING:
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
	case OPT_HELP:
	case OPT_VERSION:
		break;
	}
}

static void value_done(const struct option_def *o, union value *v)
{
	if (is_string_type(o->type))
		freep_str(&v->s);
}

/* The table's defaults are text parsed by the same code as any value, so a
 * default can never be something the parser would refuse. */
static void default_value(const struct option_def *o, union value *ret)
{
	char err[ERR_MAX];

	memset(ret, 0, sizeof(*ret));
	if (o->def && parse_value(o, o->def, ret, err, sizeof(err)) < 0)
		abort(); /* a broken table is a build bug */
}

static void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < N_OPTIONS; i++) {
		union value v;

		if (options[i].flags & OPT_CMDLINE)
			continue;
		default_value(&options[i], &v);
		store_value(&options[i], c, &v);
	}
}

void config_done(struct config *c)
{
	if (!c)
		return;
	freep_str(&c->config_path);
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (!(options[i].flags & OPT_CMDLINE) && is_string_type(options[i].type))
			freep_str((char **)((char *)c + options[i].offset));
}

/* ---- the command line ---- */

static void usage_error(const char *fmt, ...) _printf_(1, 2);
static void usage_error(const char *fmt, ...)
{
	char msg[ERR_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s", msg);
}

static void add_override(struct cmdline *cl, const char *key, const char *value)
{
	cl->overrides = xrealloc(cl->overrides, (cl->n_overrides + 1) * sizeof(char *));
	cl->overrides[cl->n_overrides++] = xasprintf("%s=%s", key, value);
}

void cmdline_done(struct cmdline *cl)
{
	if (!cl)
		return;
	freep_str(&cl->config_path);
	for (size_t i = 0; i < cl->n_overrides; i++)
		free(cl->overrides[i]);
	free(cl->overrides);
	cl->overrides = NULL;
	cl->n_overrides = 0;
}

static int subcommand(const char *word, enum command *ret)
{
	if (strcmp(word, "check") == 0)
		*ret = COMMAND_CHECK;
	else if (strcmp(word, "drill") == 0)
		*ret = COMMAND_DRILL;
	else
		return -EINVAL;
	return 0;
}

/* getopt_long's tables, built from the option table. */
struct getopt_tables {
	struct option longopts[2 * N_OPTIONS + 1];
	char negated[N_OPTIONS][64];        /* "no-NAME" for every bool */
	char shortopts[2 * N_OPTIONS + 2];
};

static void build_getopt_tables(struct getopt_tables *t)
{
	size_t nl = 0, ns = 0;

	/* Missing values come back as ':' and are reported by us, not getopt. */
	t->shortopts[ns++] = ':';
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option_def *o = &options[i];

		t->longopts[nl++] = (struct option){ o->name, takes_value(o) ? required_argument : no_argument,
						     NULL, (int)(LONGOPT_BASE + i) };
		if (o->type == OPT_BOOL) {
			(void)snprintf(t->negated[i], sizeof(t->negated[i]), "no-%s", o->name);
			t->longopts[nl++] = (struct option){ t->negated[i], no_argument, NULL,
							     (int)(LONGOPT_NEGATE + i) };
		}
		if (o->short_name) {
			t->shortopts[ns++] = o->short_name;
			if (takes_value(o))
				t->shortopts[ns++] = ':';
		}
	}
	t->longopts[nl] = (struct option){ 0 };
	t->shortopts[ns] = '\0';
}

static const struct option_def *find_short_option(int c)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (options[i].short_name == c)
			return &options[i];
	return NULL;
}

/* getopt_long said '?' (unknown option, or a value given to a flag) or ':'
 * (missing value): one line naming the option. */
static void report_getopt_error(int c, const struct getopt_tables *t, char **argv)
{
	const struct option_def *o;
	char e1[ECHO_MAX + 1];

	if (c == ':') {
		o = optopt >= LONGOPT_BASE ? &options[optopt - LONGOPT_BASE] : find_short_option(optopt);
		if (o)
			usage_error("option --%s: missing value", o->name);
		else
			usage_error("option '-%c': missing value", optopt);
	} else if (optopt >= LONGOPT_BASE) {
		usage_error("option --%s: takes no value",
			    optopt >= LONGOPT_NEGATE ? t->negated[optopt - LONGOPT_NEGATE]
						     : options[optopt - LONGOPT_BASE].name);
	} else if (optopt != 0) {
		usage_error("unknown option '-%c'", optopt);
	} else {
		const char *arg = argv[optind - 1];
		char *name = xstrndup(arg, strcspn(arg, "="));

		usage_error("unknown option '%s'", echo(name, e1, sizeof(e1)));
		free(name);
	}
}

struct args_seen {
	const struct option_def *drill_option;  /* a drill-only option, if any */
	bool help;
	bool version;
};

/* Records one option of the command line in cl. Values are checked here
 * already, so a bad one is reported against its option. */
static int apply_option(struct cmdline *cl, const struct option_def *o, const char *arg,
			struct args_seen *seen)
{
	char err[ERR_MAX];
	union value v;

	switch (o->type) {
	case OPT_HELP:
		seen->help = true;
		return 0;
	case OPT_VERSION:
		seen->version = true;
		return 0;
	case OPT_BOOL:
		add_override(cl, o->name, "yes");
		return 0;
	default:
		break;
	}
	if (parse_value(o, arg, &v, err, sizeof(err)) < 0) {
		usage_error("option --%s: %s", o->name, err);
		return -EINVAL;
	}
	if (o->flags & OPT_DRILL)
		seen->drill_option = o;
	if (strcmp(o->name, "config") == 0) {
		free(cl->config_path);
		cl->config_path = v.s;
		cl->config_path_given = true;
	} else if (strcmp(o->name, "type") == 0) {
		cl->drill_type = (enum event_type)v.e;
	} else if (strcmp(o->name, "notice") == 0) {
		cl->drill_notice_sec = v.u;
	} else {
		value_done(o, &v);
		add_override(cl, o->name, arg);
	}
	return 0;
}

int config_parse_args(int argc, char **argv, struct cmdline *ret)
{
	struct getopt_tables t;
	struct args_seen seen = { 0 };
	struct cmdline cl = { 0 };
	enum command command = COMMAND_RUN;
	bool have_sub = false;
	union value v;
	int r = -EINVAL;

	default_value(find_option("type"), &v);
	cl.drill_type = (enum event_type)v.e;
	default_value(find_option("notice"), &v);
	cl.drill_notice_sec = v.u;
	build_getopt_tables(&t);

	/* The subcommand word usually comes first. */
	if (argc > 1 && subcommand(argv[1], &command) == 0) {
		have_sub = true;
		argv++;
		argc--;
	}

	optind = 0; /* glibc: full re-initialisation, so this can run more than once */
	opterr = 0;
	for (;;) {
		const struct option_def *o;
		int c = getopt_long(argc, argv, t.shortopts, t.longopts, NULL);

		if (c == -1)
			break;
		if (c == '?' || c == ':') {
			report_getopt_error(c, &t, argv);
			goto out;
		}
		if (c >= LONGOPT_NEGATE) {
			add_override(&cl, options[c - LONGOPT_NEGATE].name, "no");
			continue;
		}
		o = c >= LONGOPT_BASE ? &options[c - LONGOPT_BASE] : find_short_option(c);
		if (!o) {
			usage_error("unknown option '-%c'", c);
			goto out;
		}
		if (apply_option(&cl, o, optarg, &seen) < 0)
			goto out;
	}

	/* What getopt left over: at most the subcommand, when it came later. */
	for (int i = optind; i < argc; i++) {
		char e1[ECHO_MAX + 1];

		if (!have_sub && subcommand(argv[i], &command) == 0) {
			have_sub = true;
			continue;
		}
		usage_error("unexpected argument '%s'", echo(argv[i], e1, sizeof(e1)));
		goto out;
	}

	if (seen.help)
		command = COMMAND_HELP;
	else if (seen.version)
		command = COMMAND_VERSION;
	else if (seen.drill_option && command != COMMAND_DRILL) {
		usage_error("option --%s: only valid with 'drill'", seen.drill_option->name);
		goto out;
	}

	cl.command = command;
	if (!cl.config_path)
		cl.config_path = xstrdup(CONFIG_DEFAULT_PATH);
	*ret = cl;
	cl = (struct cmdline){ 0 };
	r = 0;
out:
	cmdline_done(&cl);
	return r;
}

/* ---- the config file ---- */

struct file_parser {
	const char *path;
	struct config *config;
	unsigned seen[N_OPTIONS];   /* line where each key was set, 0 = not yet */
	unsigned errors;
};

static void file_error(struct file_parser *p, unsigned line, const char *fmt, ...) _printf_(3, 4);
static void file_error(struct file_parser *p, unsigned line, const char *fmt, ...)
{
	char msg[ERR_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s:%u: %s", p->path, line, msg);
	p->errors++;
}

static char *skip_space(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

static void trim_end(char *s)
{
	size_t len = strlen(s);

	while (len > 0 && isspace((unsigned char)s[len - 1]))
		s[--len] = '\0';
}

/* Finds the value after '=': optionally in double quotes, and ended by a
 * '#' that starts the value or follows whitespace. */
static int split_value(char *s, char **ret, const char **ret_err)
{
	s = skip_space(s);
	if (*s == '"') {
		char *close = strchr(s + 1, '"');
		char *rest;

		if (!close) {
			*ret_err = "missing closing quote";
			return -EINVAL;
		}
		rest = skip_space(close + 1);
		trim_end(rest);
		if (*rest != '\0' && *rest != '#') {
			*ret_err = "unexpected text after the closing quote";
			return -EINVAL;
		}
		*close = '\0';
		*ret = s + 1;
		return 0;
	}
	for (char *c = s; *c; c++)
		if (*c == '#' && (c == s || *(c - 1) == ' ' || *(c - 1) == '\t')) {
			*c = '\0';
			break;
		}
	trim_end(s);
	*ret = s;
	return 0;
}

static void parse_line(struct file_parser *p, char *line, unsigned lineno)
{
	char err[ERR_MAX], e1[ECHO_MAX + 1];
	const struct option_def *o;
	const char *serr;
	char *key, *eq, *value;
	union value v;
	size_t idx;

	key = skip_space(line);
	trim_end(key);
	if (*key == '\0' || *key == '#')
		return;
	eq = strchr(key, '=');
	if (!eq) {
		file_error(p, lineno, "expected 'key = value', got '%s'", echo(key, e1, sizeof(e1)));
		return;
	}
	*eq = '\0';
	trim_end(key);
	if (*key == '\0') {
		file_error(p, lineno, "missing key before '='");
		return;
	}
	o = find_option(key);
	if (!o || o->type == OPT_HELP || o->type == OPT_VERSION) {
		file_error(p, lineno, "unknown key '%s'", echo(key, e1, sizeof(e1)));
		return;
	}
	if (o->flags & OPT_CMDLINE) {
		file_error(p, lineno, "key '%s' is only valid on the command line", o->name);
		return;
	}
	idx = (size_t)(o - options);
	if (p->seen[idx]) {
		file_error(p, lineno, "duplicate key '%s', first set on line %u", o->name, p->seen[idx]);
		return;
	}
	p->seen[idx] = lineno;
	if (split_value(eq + 1, &value, &serr) < 0) {
		file_error(p, lineno, "%s: %s", o->name, serr);
		return;
	}
	if (parse_value(o, value, &v, err, sizeof(err)) < 0) {
		file_error(p, lineno, "%s: %s", o->name, err);
		return;
	}
	store_value(o, p->config, &v);
}

static void parse_text(struct file_parser *p, char *buf, size_t len)
{
	unsigned lineno = 0;
	size_t pos = 0;

	while (pos < len) {
		char *start = buf + pos;
		char *nl = memchr(start, '\n', len - pos);
		size_t line_len = nl ? (size_t)(nl - start) : len - pos;

		lineno++;
		pos += line_len + 1;
		if (line_len > CONFIG_LINE_MAX) {
			file_error(p, lineno, "line is longer than %d bytes", CONFIG_LINE_MAX);
			continue;
		}
		if (memchr(start, '\0', line_len)) {
			file_error(p, lineno, "line contains a NUL byte");
			continue;
		}
		start[line_len] = '\0';
		parse_line(p, start, lineno);
	}
}

/* Reads a whole config file of at most CONFIG_FILE_MAX bytes into a
 * NUL-terminated buffer the caller frees. -EFBIG when larger, -EBADF when
 * not a file, else -errno. */
static int read_config(const char *path, char **ret_buf, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		r = -EISDIR;
		goto out;
	}
	/* Character devices are allowed so that "-c /dev/null" means defaults. */
	if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
		r = -EBADF;
		goto out;
	}
	buf = xmalloc(CONFIG_FILE_MAX + 2);
	for (;;) {
		ssize_t k = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (k == 0)
			break;
		len += (size_t)k;
		if (len > CONFIG_FILE_MAX) {
			r = -EFBIG;
			goto out;
		}
	}
	buf[len] = '\0';
	*ret_buf = buf;
	*ret_len = len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	(void)close(fd);
	return r;
}

int config_load(const struct cmdline *cl, struct config *ret)
{
	struct file_parser p = { 0 };
	struct config c;
	char *buf = NULL;
	size_t len = 0;
	int r;

	config_defaults(&c);
	p.config = &c;

	r = cl->config_path ? read_config(cl->config_path, &buf, &len) : -ENOENT;
	if (r == -ENOENT && !cl->config_path_given)
		r = 0; /* no file at the default place: the defaults */
	else if (r < 0) {
		if (r == -EFBIG)
			log_error("cannot read config '%s': larger than %d bytes", cl->config_path, CONFIG_FILE_MAX);
		else
			log_error("cannot read config '%s': %s", cl->config_path,
				  r == -EBADF ? "not a regular file" : strerror(-r));
		p.errors++;
	} else {
		c.config_path = xstrdup(cl->config_path);
		p.path = cl->config_path;
		parse_text(&p, buf, len);
	}

	/* The command line wins over the file; its values were checked when it
	 * was parsed, but a reload checks them again like everything else. */
	for (size_t i = 0; i < cl->n_overrides; i++) {
		const char *eq = strchr(cl->overrides[i], '=');
		char *key = eq ? xstrndup(cl->overrides[i], (size_t)(eq - cl->overrides[i])) : NULL;
		const struct option_def *o = key ? find_option(key) : NULL;
		char err[ERR_MAX];
		union value v;

		if (!o || (o->flags & OPT_CMDLINE) || !eq) {
			char e1[ECHO_MAX + 1];

			log_error("unknown option '--%s'", echo(key ? key : cl->overrides[i], e1, sizeof(e1)));
			p.errors++;
		} else if (parse_value(o, eq + 1, &v, err, sizeof(err)) < 0) {
			log_error("option --%s: %s", o->name, err);
			p.errors++;
		} else
			store_value(o, &c, &v);
		free(key);
	}

	free(buf);
	if (p.errors > 0) {
		config_done(&c);
		return -EINVAL;
	}
	*ret = c;
	return 0;
}

/* ---- output ---- */

/* Formats the value of o in c as config file text. Returns NULL when unset. */
static const char *format_value(const struct option_def *o, const struct config *c,
				char *buf, size_t n)
{
	const void *field = (const char *)c + o->offset;

	switch (o->type) {
	case OPT_PATH:
	case OPT_STRING:
	case OPT_URL:
	case OPT_LISTEN: {
		const char *s = *(char *const *)field;

		if (s && s[0] == '\0' && (o->flags & OPT_NONE))
			return "none";
		return s;
	}
	case OPT_UINT:
		(void)snprintf(buf, n, "%" PRIu64, *(const uint64_t *)field);
		return buf;
	case OPT_BOOL:
		return *(const bool *)field ? "yes" : "no";
	case OPT_ENUM:
		return o->choices->name(*(const int *)field);
	case OPT_EVENTS: {
		unsigned mask = *(const unsigned *)field;

		/* The full list; a list without Preempt says so, or it would
		 * not read back (parse_events). */
		buf[0] = '\0';
		for (size_t i = 0; i < o->choices->n_values; i++) {
			int t = o->choices->values[i];

			if (mask & (1u << t))
				list_append(buf, n, ",", o->choices->name(t));
		}
		if (!(mask & (1u << EVENT_PREEMPT))) {
			char not_pre[40];

			(void)snprintf(not_pre, sizeof(not_pre), "!%s", o->choices->name(EVENT_PREEMPT));
			list_append(buf, n, ",", not_pre);
		}
		return buf;
	}
	case OPT_HELP:
	case OPT_VERSION:
		break;
	}
	return NULL;
}

/* True when s must be written in double quotes to read back the same. */
static bool needs_quotes(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || isspace((unsigned char)s[0]) || isspace((unsigned char)s[len - 1]) ||
	    s[0] == '#')
		return true;
	for (size_t i = 1; i < len; i++)
		if (s[i] == '#' && (s[i - 1] == ' ' || s[i - 1] == '\t'))
			return true;
	return false;
}

void config_print(const struct config *c, FILE *f)
{
	fprintf(f, "# spot-agent effective configuration (file: %s)\n",
		c->config_path ? c->config_path : "none, defaults");
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct option_def *o = &options[i];
		char buf[256];
		const char *s;

		if (o->flags & OPT_CMDLINE)
			continue;
		s = format_value(o, c, buf, sizeof(buf));
		if (!s) {
			if (o->type == OPT_URL)
				fprintf(f, "# %s = %s  (not set: the provider's default)\n", o->name,
					config_imds_url(c));
			else
				fprintf(f, "# %s = (not set: taken from the metadata service)\n", o->name);
		} else if (needs_quotes(s))
			fprintf(f, "%s = \"%s\"\n", o->name, s);
		else
			fprintf(f, "%s = %s\n", o->name, s);
	}
}

/* Prints text word-wrapped from column col (the cursor is at column at). */
static void print_wrapped(FILE *f, const char *text, size_t at, size_t col)
{
	const char *p = text;

	if (at >= col) {
		fputc('\n', f);
		at = 0;
	}
	fprintf(f, "%*s", (int)(col - at), "");
	at = col;
	while (*p) {
		size_t w = strcspn(p, " ");

		if (at > col && at + 1 + w > HELP_WIDTH) {
			fprintf(f, "\n%*s", (int)col, "");
			at = col;
		} else if (at > col) {
			fputc(' ', f);
			at++;
		}
		fprintf(f, "%.*s", (int)w, p);
		at += w;
		p += w;
		while (*p == ' ')
			p++;
	}
	fputc('\n', f);
}

static void print_option_help(FILE *f, const struct option_def *o)
{
	char head[128], text[1024], names[128];
	int at;

	if (o->type == OPT_BOOL)
		at = snprintf(head, sizeof(head), "      --%s, --no-%s", o->name, o->name);
	else if (o->short_name)
		at = snprintf(head, sizeof(head), "  -%c, --%s%s%s", o->short_name, o->name,
			      o->metavar ? " " : "", o->metavar ? o->metavar : "");
	else
		at = snprintf(head, sizeof(head), "      --%s%s%s", o->name,
			      o->metavar ? " " : "", o->metavar ? o->metavar : "");
	fputs(head, f);

	/* "help (range; note; choices; default; restart)", each part only
	 * when it applies: the form the docs check (test/check-docs.py) reads. */
	text[0] = '\0';
	if (o->type == OPT_UINT) {
		char range[64];

		(void)snprintf(range, sizeof(range), "%" PRIu64 " to %" PRIu64, o->min, o->max);
		list_append(text, sizeof(text), "; ", range);
		if (o->min_note)
			list_append(text, sizeof(text), "; ", o->min_note);
	}
	if (o->choices) {
		char part[160];

		join_choices(o->choices, ", ", names, sizeof(names));
		(void)snprintf(part, sizeof(part), "%s: %s",
			       o->type == OPT_EVENTS ? "any of" : "one of", names);
		list_append(text, sizeof(text), "; ", part);
	}
	if (o->def) {
		list_append(text, sizeof(text), "; ", "default: ");
		str_append(text, sizeof(text), o->def);
	}
	if (o->flags & OPT_RESTART)
		list_append(text, sizeof(text), "; ", "needs a restart");
	if (text[0]) {
		char parts[sizeof(text)];

		(void)strscpy(parts, sizeof(parts), text);
		(void)strscpy(text, sizeof(text), o->help);
		str_append(text, sizeof(text), " (");
		str_append(text, sizeof(text), parts);
		str_append(text, sizeof(text), ")");
	} else
		(void)strscpy(text, sizeof(text), o->help);
	print_wrapped(f, text, at > 0 ? (size_t)at : 0, HELP_COLUMN);
}

void config_usage(FILE *f)
{
	fputs("Usage: spot-agent [OPTIONS]\n"
	      "       spot-agent check [OPTIONS]\n"
	      "       spot-agent drill [OPTIONS] [--type TYPE] [--notice SECONDS]\n"
	      "       spot-agent --version | --help\n"
	      "\n"
	      "Watches the cloud's instance metadata service for eviction notices and runs\n"
	      "the hooks of the hook directory in order before the deadline.\n"
	      "\n"
	      "Commands:\n"
	      "  (none)    run the agent in the foreground (systemd Type=notify)\n"
	      "  check     validate the config, the hook and state directories and the\n"
	      "            listen address; print the config (as a config file), the hooks\n"
	      "            in run order and every skipped file with its reason; exit 0\n"
	      "            when the agent could start, 2 when not\n"
	      "  drill     game day: run the hooks against a synthetic event, no metadata\n"
	      "            service needed; print a per-hook report (exit, duration, budget)\n"
	      "            and exit non-zero if a hook failed or the chain overran its budget\n"
	      "\n"
	      "Options (each is also a key of the config file, without the dashes):\n", f);
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (options[i].type != OPT_HELP && options[i].type != OPT_VERSION &&
		    !(options[i].flags & OPT_DRILL))
			print_option_help(f, &options[i]);
	fputs("\nDrill options:\n", f);
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (options[i].flags & OPT_DRILL)
			print_option_help(f, &options[i]);
	fputc('\n', f);
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (options[i].type == OPT_HELP || options[i].type == OPT_VERSION)
			print_option_help(f, &options[i]);
	fputs("\nSIGHUP reloads the config file; options that need a restart keep their\n"
	      "running value until the next start.\n"
	      "Exit status: 0 success, 1 runtime failure, 2 usage or config error.\n", f);
}

const char *config_imds_url(const struct config *c)
{
	if (c->imds_url)
		return c->imds_url;
	return c->provider == PROVIDER_GCP ? CONFIG_IMDS_URL_GCP : CONFIG_IMDS_URL_DEFAULT;
}
