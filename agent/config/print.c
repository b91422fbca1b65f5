/* print.c - the configuration as text: `spot-agent check`'s effective
 * config (a valid config file that loads back to the same config) and
 * --help, both generated from the option table. */
#include "config/options.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Formats the value of o in c as config file text. Returns NULL when unset. */
static const char *format_value(const struct option_def *o, const struct config *c,
				char *buf, size_t n)
{
	const void *field = (const char *)c + o->offset;

	switch (o->type) {
	case OPT_PATH:
	case OPT_STRING:
	case OPT_NAME:
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
		 * not read back (option_parse_events). */
		buf[0] = '\0';
		for (size_t i = 0; i < o->choices->n_values; i++) {
			int t = o->choices->values[i];

			if (mask & (1u << t))
				option_list_append(buf, n, ",", o->choices->name(t));
		}
		if (!(mask & (1u << EVENT_PREEMPT))) {
			char not_pre[40];

			(void)snprintf(not_pre, sizeof(not_pre), "!%s", o->choices->name(EVENT_PREEMPT));
			option_list_append(buf, n, ",", not_pre);
		}
		return buf;
	}
	case OPT_POLICIES: {
		uint32_t v = 0;

		for (int t = 0; t < _EVENT_TYPE_MAX; t++)
			v |= (uint32_t)((const enum ack_policy *)field)[t] << (2 * t);
		option_format_policies(v, buf, n);
		return buf;
	}
	case OPT_LIST:
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
	for (size_t i = 0; i < OPTIONS_N; i++) {
		const struct option_def *o = &option_table[i];
		char buf[256];
		const char *s;

		if (o->flags & OPT_CMDLINE)
			continue;
		if (o->type == OPT_LIST) {
			char *const *list = *(char **const *)((const char *)c + o->offset);

			if (!list || !list[0])
				fprintf(f, "# %s = (not set)\n", o->name);
			for (size_t k = 0; list && list[k]; k++)
				fprintf(f, needs_quotes(list[k]) ? "%s = \"%s\"\n" : "%s = %s\n", o->name, list[k]);
			continue;
		}
		s = format_value(o, c, buf, sizeof(buf));
		if (!s) {
			if (o->unset_note)
				fprintf(f, "# %s = (not set: %s)\n", o->name, o->unset_note);
			else if (strcmp(o->name, "imds-url") == 0)
				fprintf(f, "# %s = %s  (not set: the provider's default)\n", o->name,
					config_imds_url(c));
			else if (strcmp(o->name, "vm-name") == 0)
				fprintf(f, "# %s = (not set: taken from the metadata service)\n", o->name);
			else
				fprintf(f, "# %s = (not set)\n", o->name);
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

	if (at + 2 > col) {
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

	if (o->type == OPT_BOOL && !(o->flags & OPT_CMDLINE))
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
		option_list_append(text, sizeof(text), "; ", range);
		if (o->min_note)
			option_list_append(text, sizeof(text), "; ", o->min_note);
	}
	if (o->choices) {
		char part[160];

		option_join_choices(o->choices, ", ", names, sizeof(names));
		(void)snprintf(part, sizeof(part), "%s: %s",
			       o->type == OPT_EVENTS ? "any of" : "one of", names);
		option_list_append(text, sizeof(text), "; ", part);
	}
	if (o->def) {
		option_list_append(text, sizeof(text), "; ", "default: ");
		option_str_append(text, sizeof(text), o->def);
	}
	if (o->flags & OPT_RESTART)
		option_list_append(text, sizeof(text), "; ", "needs a restart");
	if (text[0]) {
		char parts[sizeof(text)];

		(void)strscpy(parts, sizeof(parts), text);
		(void)strscpy(text, sizeof(text), o->help);
		option_str_append(text, sizeof(text), " (");
		option_str_append(text, sizeof(text), parts);
		option_str_append(text, sizeof(text), ")");
	} else
		(void)strscpy(text, sizeof(text), o->help);
	print_wrapped(f, text, at > 0 ? (size_t)at : 0, HELP_COLUMN);
}

void config_usage(FILE *f)
{
	fputs("Usage: spot-agent [OPTIONS]\n"
	      "       spot-agent check [OPTIONS] [--warn-only]\n"
	      "       spot-agent drill [OPTIONS] [--type TYPE] [--notice SECONDS] [--sandbox]\n"
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
	      "            when the agent could start and every hook file would run, 2\n"
	      "            when not\n"
	      "  drill     game day: run the hooks against a synthetic event, no metadata\n"
	      "            service needed; print a per-hook report (exit, duration, budget)\n"
	      "            and exit non-zero if a hook failed, a hook file was skipped or\n"
	      "            the chain overran its budget\n"
	      "\n"
	      "Options (each is also a key of the config file, without the dashes):\n", f);
	for (size_t i = 0; i < OPTIONS_N; i++)
		if (option_table[i].type != OPT_HELP && option_table[i].type != OPT_VERSION &&
		    !(option_table[i].flags & (OPT_DRILL | OPT_CHECK)))
			print_option_help(f, &option_table[i]);
	fputs("\nCheck options:\n", f);
	for (size_t i = 0; i < OPTIONS_N; i++)
		if (option_table[i].flags & OPT_CHECK)
			print_option_help(f, &option_table[i]);
	fputs("\nDrill options:\n", f);
	for (size_t i = 0; i < OPTIONS_N; i++)
		if (option_table[i].flags & OPT_DRILL)
			print_option_help(f, &option_table[i]);
	fputc('\n', f);
	for (size_t i = 0; i < OPTIONS_N; i++)
		if (option_table[i].type == OPT_HELP || option_table[i].type == OPT_VERSION)
			print_option_help(f, &option_table[i]);
	fputs("\nSIGHUP reloads the config file; options that need a restart keep their\n"
	      "running value until the next start.\n"
	      "Exit status: 0 success, 1 runtime failure, 2 usage or config error.\n", f);
}
