/* cmdline.c - the command line: the subcommand, the options (each also a
 * config key, applied after the file), and one error line for a usage
 * error. It never exits: the caller exits 2. */
#include "config/options.h"

#include <getopt.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

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
	struct option longopts[2 * OPTIONS_MAX + 1];
	char negated[OPTIONS_MAX][64];        /* "no-NAME" for every bool */
	char shortopts[2 * OPTIONS_MAX + 2];
};

static void build_getopt_tables(struct getopt_tables *t)
{
	size_t nl = 0, ns = 0;

	/* Missing values come back as ':' and are reported by us, not getopt. */
	t->shortopts[ns++] = ':';
	for (size_t i = 0; i < OPTIONS_N; i++) {
		const struct option_def *o = &option_table[i];

		t->longopts[nl++] = (struct option){ o->name, option_takes_value(o) ? required_argument : no_argument,
						     NULL, (int)(LONGOPT_BASE + i) };
		if (o->type == OPT_BOOL && !(o->flags & OPT_CMDLINE)) {
			(void)snprintf(t->negated[i], sizeof(t->negated[i]), "no-%s", o->name);
			t->longopts[nl++] = (struct option){ t->negated[i], no_argument, NULL,
							     (int)(LONGOPT_NEGATE + i) };
		}
		if (o->short_name) {
			t->shortopts[ns++] = o->short_name;
			if (option_takes_value(o))
				t->shortopts[ns++] = ':';
		}
	}
	t->longopts[nl] = (struct option){ 0 };
	t->shortopts[ns] = '\0';
}

static const struct option_def *find_short_option(int c)
{
	for (size_t i = 0; i < OPTIONS_N; i++)
		if (option_table[i].short_name == c)
			return &option_table[i];
	return NULL;
}

/* getopt_long said '?' (unknown option, or a value given to a flag) or ':'
 * (missing value): one line naming the option. */
static void report_getopt_error(int c, const struct getopt_tables *t, char **argv)
{
	const struct option_def *o;
	char e1[ECHO_MAX + 1];

	if (c == ':') {
		o = optopt >= LONGOPT_BASE ? &option_table[optopt - LONGOPT_BASE] : find_short_option(optopt);
		if (o)
			usage_error("option --%s: missing value", o->name);
		else
			usage_error("option '-%c': missing value", optopt);
	} else if (optopt >= LONGOPT_BASE) {
		usage_error("option --%s: takes no value",
			    optopt >= LONGOPT_NEGATE ? t->negated[optopt - LONGOPT_NEGATE]
						     : option_table[optopt - LONGOPT_BASE].name);
	} else if (optopt != 0) {
		usage_error("unknown option '-%c'", optopt);
	} else {
		const char *arg = argv[optind - 1];
		char *name = xstrndup(arg, strcspn(arg, "="));

		usage_error("unknown option '%s'", option_echo(name, e1, sizeof(e1)));
		free(name);
	}
}

struct args_seen {
	const struct option_def *drill_option;  /* a drill-only option, if any */
	const struct option_def *check_option;  /* a check-only option, if any */
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
		if (o->flags & OPT_DRILL)
			seen->drill_option = o;
		if (o->flags & OPT_CHECK)
			seen->check_option = o;
		if (strcmp(o->name, "sandbox") == 0)
			cl->drill_sandbox = true;
		else if (strcmp(o->name, "warn-only") == 0)
			cl->check_warn_only = true;
		else
			add_override(cl, o->name, "yes");
		return 0;
	default:
		break;
	}
	if (option_parse_value(o, arg, &v, err, sizeof(err)) < 0) {
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
		option_value_done(o, &v);
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

	option_default_value(option_find("type"), &v);
	cl.drill_type = (enum event_type)v.e;
	option_default_value(option_find("notice"), &v);
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
			add_override(&cl, option_table[c - LONGOPT_NEGATE].name, "no");
			continue;
		}
		o = c >= LONGOPT_BASE ? &option_table[c - LONGOPT_BASE] : find_short_option(c);
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
		usage_error("unexpected argument '%s'", option_echo(argv[i], e1, sizeof(e1)));
		goto out;
	}

	if (seen.help)
		command = COMMAND_HELP;
	else if (seen.version)
		command = COMMAND_VERSION;
	else if (seen.drill_option && command != COMMAND_DRILL) {
		usage_error("option --%s: only valid with 'drill'", seen.drill_option->name);
		goto out;
	} else if (seen.check_option && command != COMMAND_CHECK) {
		usage_error("option --%s: only valid with 'check'", seen.check_option->name);
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
