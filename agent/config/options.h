/* options.h - the option table and the value parsers behind it, shared by
 * the config file parser, the command line and the printers of the config
 * module (config/), and by nothing else: the rest of the agent sees only
 * struct config (config.h). */
#ifndef SPOT_CONFIG_OPTIONS_H
#define SPOT_CONFIG_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define ERR_MAX        512  /* one error message, without the location */
#define ECHO_MAX       64   /* longer values are cut when quoted in a message */
#define LONGOPT_BASE   0x100
#define LONGOPT_NEGATE 0x200
#define HELP_COLUMN    32
#define HELP_WIDTH     79

enum opt_type {
	OPT_PATH,
	OPT_STRING,
	OPT_NAME,                  /* letters, digits, '_', '-' and '/' (an AWS resource name) */
	OPT_URL,
	OPT_UINT,
	OPT_BOOL,
	OPT_ENUM,
	OPT_EVENTS,
	OPT_POLICIES,
	OPT_LISTEN,
	OPT_LIST,       /* may repeat: each value is added to a NULL-terminated list
			 * (char **); an empty value empties it; NAME=VALUE labels */
	OPT_HELP,
	OPT_VERSION,
};

enum {
	OPT_CMDLINE = 1u << 0,  /* command line only, not a config file key */
	OPT_DRILL   = 1u << 1,  /* only together with the drill subcommand */
	OPT_UNSET   = 1u << 2,  /* "" leaves it unset (NULL): the value comes from elsewhere */
	OPT_NONE    = 1u << 3,  /* "none" (or "") is stored as "" and disables the feature */
	OPT_RESTART = 1u << 4,  /* a reload keeps the running value (agent_reload): needs a restart */
	OPT_CHECK   = 1u << 5,  /* only together with the check subcommand */
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
	/* What an unset OPT_UNSET value means, for the printed config; NULL:
	 * taken from the metadata service (the provider's default URL for
	 * OPT_URL). */
	const char *unset_note;
};

union value {
	uint64_t u;
	bool b;
	int e;
	unsigned mask;
	uint32_t policies;         /* OPT_POLICIES: 2 bits per event type */
	char *s;                   /* owned */
};

/* The one table: every option, config key, default and help line. */
extern const struct option_def option_table[];
extern const size_t option_table_n;
#define OPTIONS_N option_table_n
/* A bound on the table's rows, for arrays sized at compile time. */
#define OPTIONS_MAX 64

const struct option_def *option_find(const char *name);
bool option_takes_value(const struct option_def *o);
bool option_is_string_type(enum opt_type t);
const char *option_echo(const char *s, char *buf, size_t n);
/* One of d's values by its name: 0, or -EINVAL for a name it has not. */
int option_parse_enum(const struct enum_desc *d, const char *s, int *ret);
void option_join_choices(const struct enum_desc *d, const char *sep, char *buf, size_t n);
void option_str_append(char *buf, size_t n, const char *text);
void option_list_append(char *buf, size_t n, const char *sep, const char *text);
int option_parse_events(const struct option_def *o, const char *s, unsigned *ret,
			char *err, size_t n);
/* OPT_POLICIES: "after-hooks", "at-once", "never" for every type, and
 * "Type:policy" items for one, applied left to right. */
int option_parse_policies(const char *s, uint32_t *ret, char *err, size_t n);
void option_format_policies(uint32_t policies, char *buf, size_t n);
int option_parse_value(const struct option_def *o, const char *text, union value *ret,
		       char *err, size_t n);
void option_store_value(const struct option_def *o, struct config *c, union value *v);
void option_value_done(const struct option_def *o, union value *v);
/* An OPT_LIST's value: frees it (NULL ok); its number of items. */
void option_list_free(char ***list);
size_t option_list_len(char *const *list);
void option_default_value(const struct option_def *o, union value *ret);
void option_defaults(struct config *c);

#endif
