/* test-config.c - the option table end to end: defaults, the config file,
 * the command line, error lines (compared byte for byte), config_print
 * round trips and --help. Data files live in test/data/config/; a bad-X.conf
 * with its bad-X.expected is a new case without new code. */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "config/options.h"

#define DATA "test/data/config/"
#define MISSING DATA "does-not-exist.conf"

/* ---- helpers ---- */

static char *read_all(FILE *f)
{
	size_t n = 0, cap = 4096;
	char *buf = malloc(cap);
	size_t k;

	assert_non_null(buf);
	rewind(f);
	while ((k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += k;
		if (cap - n - 1 == 0) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	buf[n] = '\0';
	return buf;
}

static char *read_path(const char *path)
{
	FILE *f = fopen(path, "re");
	char *s;

	assert_non_null(f);
	s = read_all(f);
	fclose(f);
	return s;
}

/* stderr goes to a temporary file between capture_begin and capture_end. */
static FILE *capture_file;
static int capture_saved = -1;

static void capture_begin(void)
{
	fflush(stderr);
	capture_file = tmpfile();
	assert_non_null(capture_file);
	capture_saved = dup(STDERR_FILENO);
	assert_true(capture_saved >= 0);
	assert_true(dup2(fileno(capture_file), STDERR_FILENO) >= 0);
}

/* Errors are log lines ("<time> spot-agent: error: <message>", see
 * test-log.c): each line is cut back to "spot-agent: <message>", what these
 * tests compare. */
static void strip_log_prefixes(char *s)
{
	static const char head[] = "spot-agent: ", level[] = "error: ";
	char *in = s, *out = s;

	while (*in) {
		char *eol = strchr(in, '\n');
		size_t n = eol ? (size_t)(eol - in) + 1 : strlen(in);
		char *ts_end = memchr(in, ' ', n);

		/* "2026-12-01T11:48:54.123Z " */
		if (ts_end && ts_end - in == 24 && in[4] == '-' && in[10] == 'T' && in[23] == 'Z') {
			n -= (size_t)(ts_end + 1 - in);
			in = ts_end + 1;
		}
		if (n > strlen(head) + strlen(level) && strncmp(in, head, strlen(head)) == 0 &&
		    strncmp(in + strlen(head), level, strlen(level)) == 0) {
			memmove(out, head, strlen(head));
			out += strlen(head);
			in += strlen(head) + strlen(level);
			n -= strlen(head) + strlen(level);
		}
		memmove(out, in, n);
		out += n;
		in += n;
	}
	*out = '\0';
}

/* Returns what was written to stderr; the caller frees it. */
static char *capture_end(void)
{
	char *s;

	fflush(stderr);
	assert_true(dup2(capture_saved, STDERR_FILENO) >= 0);
	close(capture_saved);
	capture_saved = -1;
	s = read_all(capture_file);
	fclose(capture_file);
	capture_file = NULL;
	strip_log_prefixes(s);
	return s;
}

/* Runs config_parse_args on a NULL-terminated list of words (argv[0] is
 * added), capturing stderr into *ret_err when not NULL. */
static int parse_argv(struct cmdline *cl, char **ret_err, ...)
{
	char *argv[64];
	int argc = 0, r;
	va_list ap;
	const char *w;

	argv[argc++] = strdup("spot-agent");
	va_start(ap, ret_err);
	while ((w = va_arg(ap, const char *)))
		argv[argc++] = strdup(w);
	va_end(ap);
	argv[argc] = NULL;

	capture_begin();
	r = config_parse_args(argc, argv, cl);
	if (ret_err)
		*ret_err = capture_end();
	else
		free(capture_end());
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	return r;
}

#define PARSE(cl, err, ...) parse_argv((cl), (err), __VA_ARGS__, (const char *)NULL)

/* A cmdline for path, as "-c path" (given) or the default path (not given). */
static void cmdline_for(struct cmdline *cl, const char *path, bool given)
{
	memset(cl, 0, sizeof(*cl));
	cl->command = COMMAND_RUN;
	cl->config_path = strdup(path);
	cl->config_path_given = given;
	cl->drill_type = EVENT_PREEMPT;
	cl->drill_notice_sec = 30;
}

static int load(const struct cmdline *cl, struct config *c, char **ret_err)
{
	int r;

	capture_begin();
	r = config_load(cl, c);
	if (ret_err)
		*ret_err = capture_end();
	else
		free(capture_end());
	return r;
}

static int load_file(const char *path, struct config *c, char **ret_err)
{
	struct cmdline cl;
	int r;

	cmdline_for(&cl, path, true);
	r = load(&cl, c, ret_err);
	cmdline_done(&cl);
	return r;
}

static char *print_config(const struct config *c)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	assert_non_null(f);
	config_print(c, f);
	fclose(f);
	return buf;
}

static void assert_str_eq_or_null(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

/* Everything but config_path. */
static void assert_config_equal(const struct config *a, const struct config *b)
{
	assert_int_equal(a->provider, b->provider);
	assert_str_eq_or_null(a->imds_url, b->imds_url);
	assert_str_eq_or_null(a->hooks_dir, b->hooks_dir);
	assert_str_eq_or_null(a->hooks_lib_dir, b->hooks_lib_dir);
	assert_str_eq_or_null(a->state_dir, b->state_dir);
	assert_str_eq_or_null(a->listen, b->listen);
	assert_int_equal(a->poll_interval_ms, b->poll_interval_ms);
	assert_str_eq_or_null(a->vm_name, b->vm_name);
	assert_int_equal(a->events_mask, b->events_mask);
	assert_int_equal(a->margin_sec, b->margin_sec);
	assert_int_equal(a->hook_timeout_sec, b->hook_timeout_sec);
	assert_int_equal(a->drain_sec, b->drain_sec);
	for (int t = 0; t < _EVENT_TYPE_MAX; t++)
		assert_int_equal(a->ack_policy[t], b->ack_policy[t]);
	assert_int_equal(a->approve, b->approve);
	assert_int_equal(a->log_format, b->log_format);
	assert_int_equal(a->log_level, b->log_level);
	assert_str_eq_or_null(a->remote_write_url, b->remote_write_url);
	assert_str_eq_or_null(a->remote_write_bearer_token_file, b->remote_write_bearer_token_file);
	assert_str_eq_or_null(a->remote_write_basic_auth_file, b->remote_write_basic_auth_file);
	assert_str_eq_or_null(a->push_url, b->push_url);
	assert_int_equal(option_list_len(a->remote_write_labels), option_list_len(b->remote_write_labels));
	for (size_t i = 0; a->remote_write_labels && a->remote_write_labels[i]; i++)
		assert_string_equal(a->remote_write_labels[i], b->remote_write_labels[i]);
}

static char tmpdir[64];

static int setup_tmpdir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-config.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static const char *const tmp_files[] = { "bool.conf", "limits.conf", "round-trip.conf", "labels.conf" };

static int teardown_tmpdir(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(tmp_files) / sizeof(tmp_files[0]); i++) {
		char path[128];

		snprintf(path, sizeof(path), "%s/%s", tmpdir, tmp_files[i]);
		(void)unlink(path);
	}
	return rmdir(tmpdir);
}

static char *tmp_path(const char *name)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", tmpdir, name) > 0);
	return p;
}

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

#define EV(t) (1u << (t))

static void round_trip(struct config *c);

/* ---- defaults ---- */

static void test_defaults(void **state)
{
	struct cmdline cl;
	struct config c;
	char *err;

	(void)state;
	assert_int_equal(PARSE(&cl, &err, NULL), 0);
	assert_string_equal(err, "");
	free(err);
	assert_int_equal(cl.command, COMMAND_RUN);
	assert_string_equal(cl.config_path, CONFIG_DEFAULT_PATH);
	assert_false(cl.config_path_given);
	assert_int_equal(cl.drill_type, EVENT_PREEMPT);
	assert_int_equal(cl.drill_notice_sec, 30);
	assert_int_equal(cl.n_overrides, 0);
	cmdline_done(&cl);

	/* A missing file at the default place means defaults. */
	cmdline_for(&cl, MISSING, false);
	assert_int_equal(load(&cl, &c, &err), 0);
	assert_string_equal(err, "");
	free(err);
	assert_null(c.config_path);
	assert_int_equal(c.provider, PROVIDER_AZURE);
	assert_null(c.imds_url);
	assert_string_equal(config_imds_url(&c), "http://169.254.169.254");
	assert_string_equal(c.hooks_dir, CONFIG_DEFAULT_HOOKS);
	assert_string_equal(c.hooks_lib_dir, CONFIG_DEFAULT_LIB);
	assert_string_equal(c.state_dir, CONFIG_DEFAULT_STATE);
	assert_string_equal(c.listen, CONFIG_DEFAULT_LISTEN);
	assert_int_equal(c.poll_interval_ms, 1000);
	assert_null(c.vm_name);
	assert_int_equal(c.events_mask, EV(EVENT_PREEMPT) | EV(EVENT_TERMINATE) | EV(EVENT_SHUTDOWN));
	assert_int_equal(c.margin_sec, 2);
	assert_int_equal(c.hook_timeout_sec, 0);
	assert_int_equal(c.drain_sec, 10);
	for (int t = 0; t < _EVENT_TYPE_MAX; t++)
		assert_int_equal(c.ack_policy[t], ACK_AFTER_HOOKS);
	assert_true(c.approve);
	assert_int_equal(c.log_format, LOG_FORMAT_AUTO);
	assert_int_equal(c.log_level, LOG_INFO);
	config_done(&c);
	cmdline_done(&cl);

	/* A file of comments only gives the same. */
	assert_int_equal(load_file(DATA "empty.conf", &c, NULL), 0);
	assert_string_equal(c.config_path, DATA "empty.conf");
	assert_int_equal(c.poll_interval_ms, 1000);
	assert_true(c.approve);
	config_done(&c);
}

static void test_missing_named_file(void **state)
{
	struct config c;
	char *err;

	(void)state;
	assert_int_equal(load_file(MISSING, &c, &err), -EINVAL);
	assert_string_equal(err, "spot-agent: cannot read config '" MISSING
			    "': No such file or directory\n");
	free(err);

	/* A directory is not readable as a config, given or not. */
	assert_int_equal(load_file("test/data/config", &c, &err), -EINVAL);
	assert_string_equal(err, "spot-agent: cannot read config 'test/data/config': Is a directory\n");
	free(err);

	/* -c /dev/null: an empty config, so the defaults. */
	assert_int_equal(load_file("/dev/null", &c, &err), 0);
	assert_string_equal(err, "");
	free(err);
	assert_string_equal(c.listen, CONFIG_DEFAULT_LISTEN);
	config_done(&c);
}

/* ---- the file ---- */

static void test_good_full(void **state)
{
	struct config c;
	char *err, *out, *expected;

	(void)state;
	assert_int_equal(load_file(DATA "good-full.conf", &c, &err), 0);
	assert_string_equal(err, "");
	free(err);
	assert_string_equal(c.config_path, DATA "good-full.conf");
	assert_int_equal(c.provider, PROVIDER_AWS);
	assert_string_equal(c.imds_url, "http://127.0.0.1:8080"); /* trailing '/' dropped */
	assert_string_equal(config_imds_url(&c), "http://127.0.0.1:8080");
	assert_string_equal(c.hooks_dir, "/srv/hooks");
	assert_string_equal(c.hooks_lib_dir, "");
	assert_string_equal(c.state_dir, "/srv/state");
	assert_string_equal(c.listen, "[::1]:9999");
	assert_int_equal(c.poll_interval_ms, 250);
	assert_string_equal(c.vm_name, "vm-42");
	assert_int_equal(c.events_mask, EV(EVENT_PREEMPT) | EV(EVENT_REBOOT) | EV(EVENT_FREEZE));
	assert_int_equal(c.margin_sec, 5);
	assert_int_equal(c.hook_timeout_sec, 120);
	assert_int_equal(c.drain_sec, 30);
	assert_int_equal(c.ack_policy[EVENT_PREEMPT], ACK_AT_ONCE);
	assert_int_equal(c.ack_policy[EVENT_TERMINATE], ACK_AFTER_HOOKS);
	assert_int_equal(c.ack_policy[EVENT_REBOOT], ACK_NEVER);
	assert_int_equal(c.ack_policy[EVENT_REDEPLOY], ACK_NEVER);
	assert_int_equal(c.ack_policy[EVENT_FREEZE], ACK_NEVER);
	assert_int_equal(c.ack_policy[EVENT_SHUTDOWN], ACK_NEVER);
	assert_false(c.approve);
	assert_int_equal(c.log_format, LOG_FORMAT_JSON);
	assert_int_equal(c.log_level, LOG_DEBUG);

	out = print_config(&c);
	expected = read_path(DATA "good-full.expected");
	assert_string_equal(out, expected);
	free(out);
	free(expected);
	config_done(&c);
}

static void test_quoted(void **state)
{
	struct config c;
	char *err, *out, *expected;

	(void)state;
	assert_int_equal(load_file(DATA "quoted.conf", &c, &err), 0);
	assert_string_equal(err, "");
	free(err);
	assert_int_equal(c.provider, PROVIDER_GCP);
	assert_string_equal(c.hooks_dir, "/srv/hooks #1");
	assert_null(c.vm_name);
	assert_string_equal(c.state_dir, "/srv/st#ate");
	assert_string_equal(c.listen, "0.0.0.0:80");
	assert_int_equal(c.events_mask, EV(EVENT_PREEMPT) | EV(EVENT_TERMINATE));
	assert_false(c.approve);
	assert_string_equal(c.imds_url, "https://example.test/base#frag");

	out = print_config(&c);
	expected = read_path(DATA "quoted.expected");
	assert_string_equal(out, expected);
	free(out);
	free(expected);
	config_done(&c);
}

static void test_gcp_default_url(void **state)
{
	struct cmdline cl;
	struct config c;

	(void)state;
	assert_int_equal(PARSE(&cl, NULL, "-c", "/dev/null", "--provider", "gcp"), 0);
	assert_int_equal(load(&cl, &c, NULL), 0);
	assert_null(c.imds_url);
	assert_string_equal(config_imds_url(&c), "http://169.254.169.254");
	config_done(&c);
	cmdline_done(&cl);
}

static void test_bool_spellings(void **state)
{
	static const struct {
		const char *text;
		bool value;
	} cases[] = {
		{ "yes", true }, { "no", false }, { "true", true }, { "false", false },
		{ "on", true }, { "off", false }, { "1", true }, { "0", false }, { "No", false },
	};
	char *path = tmp_path("bool.conf");

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[64];
		struct config c;

		snprintf(text, sizeof(text), "approve = %s\n", cases[i].text);
		write_file(path, text, strlen(text));
		assert_int_equal(load_file(path, &c, NULL), 0);
		assert_int_equal(c.approve, cases[i].value);
		config_done(&c);
	}
	free(path);
}

/* Adding to the default event types is written differently from
 * replacing them, a list that replaces them keeps Preempt unless it drops
 * it by name, and each refusal is one exact line. The printed form of each
 * accepted value reads back to the same set. */
static void test_events_forms(void **state)
{
#define ALL_DEFAULT (EV(EVENT_PREEMPT) | EV(EVENT_TERMINATE) | EV(EVENT_SHUTDOWN))
	static const struct {
		const char *text;
		unsigned mask;         /* 0: refused with line */
		const char *printed;   /* config_print's value */
		const char *line;
	} cases[] = {
		/* The default, plus or minus. */
		{ "+Reboot", ALL_DEFAULT | EV(EVENT_REBOOT), "Preempt,Terminate,Reboot,Shutdown", NULL },
		{ "+Reboot, +Freeze", ALL_DEFAULT | EV(EVENT_REBOOT) | EV(EVENT_FREEZE),
		  "Preempt,Terminate,Reboot,Freeze,Shutdown", NULL },
		{ "!Shutdown", EV(EVENT_PREEMPT) | EV(EVENT_TERMINATE), "Preempt,Terminate", NULL },
		{ "+Redeploy,!Terminate", EV(EVENT_PREEMPT) | EV(EVENT_SHUTDOWN) | EV(EVENT_REDEPLOY),
		  "Preempt,Redeploy,Shutdown", NULL },
		{ "+Preempt", ALL_DEFAULT, "Preempt,Terminate,Shutdown", NULL },
		{ "!Preempt", EV(EVENT_TERMINATE) | EV(EVENT_SHUTDOWN), "Terminate,Shutdown,!Preempt", NULL },
		/* A list of its own. */
		{ "Preempt", EV(EVENT_PREEMPT), "Preempt", NULL },
		{ "Reboot,Preempt", EV(EVENT_PREEMPT) | EV(EVENT_REBOOT), "Preempt,Reboot", NULL },
		{ "Reboot, !Preempt", EV(EVENT_REBOOT), "Reboot,!Preempt", NULL },
		{ "!Preempt,Freeze,Reboot", EV(EVENT_REBOOT) | EV(EVENT_FREEZE), "Reboot,Freeze,!Preempt", NULL },
		{ "Preempt,!Terminate", EV(EVENT_PREEMPT), "Preempt", NULL },
		/* Refused. */
		{ "Reboot", 0, NULL,
		  "value 'Reboot' would ignore Preempt notices: write '+Reboot' to add to the default "
		  "types, 'Preempt,Reboot' to keep Preempt, or 'Reboot,!Preempt' to drop it on purpose" },
		{ "Freeze,Reboot", 0, NULL,
		  "value 'Freeze,Reboot' would ignore Preempt notices: write '+Reboot,+Freeze' to add to "
		  "the default types, 'Preempt,Reboot,Freeze' to keep Preempt, or 'Reboot,Freeze,!Preempt' "
		  "to drop it on purpose" },
		{ "Terminate,!Shutdown", 0, NULL,
		  "value 'Terminate,!Shutdown' would ignore Preempt notices: write '+Terminate' to add to "
		  "the default types, 'Preempt,Terminate' to keep Preempt, or 'Terminate,!Preempt' to drop "
		  "it on purpose" },
		{ "Preempt,+Reboot", 0, NULL,
		  "value 'Preempt,+Reboot' mixes plain names with '+Type': list every type wanted, or "
		  "only '+Type' and '!Type' items to change the default (Preempt,Terminate,Shutdown)" },
		{ "+Reboot,Preempt", 0, NULL,
		  "value '+Reboot,Preempt' mixes plain names with '+Type': list every type wanted, or "
		  "only '+Type' and '!Type' items to change the default (Preempt,Terminate,Shutdown)" },
		{ "Preempt,!Preempt", 0, NULL, "value 'Preempt,!Preempt' both wants and drops 'Preempt'" },
		{ "!Reboot,+Reboot", 0, NULL, "value '!Reboot,+Reboot' both wants and drops 'Reboot'" },
		{ "!Preempt,!Terminate,!Shutdown", 0, NULL,
		  "value '!Preempt,!Terminate,!Shutdown' leaves no event type to act on" },
		{ "+", 0, NULL, "value '+' has an empty item" },
		{ "Preempt,,Reboot", 0, NULL, "value 'Preempt,,Reboot' has an empty item" },
		{ "+Hibernate", 0, NULL,
		  "value '+Hibernate' names an unknown event type 'Hibernate' "
		  "(known: Preempt, Terminate, Reboot, Redeploy, Freeze, Shutdown)" },
	};
	char *path = tmp_path("bool.conf");

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[96], want[512], *err = NULL, *out, *line;
		struct cmdline cl;
		struct config c;

		snprintf(text, sizeof(text), "events = %s\n", cases[i].text);
		write_file(path, text, strlen(text));
		if (!cases[i].mask) {
			assert_int_equal(load_file(path, &c, &err), -EINVAL);
			snprintf(want, sizeof(want), "spot-agent: %s:1: events: %s\n", path, cases[i].line);
			if (strcmp(err, want) != 0)
				fprintf(stderr, "case '%s': got %s", cases[i].text, err);
			assert_string_equal(err, want);
			free(err);

			/* The same line for the option. */
			assert_int_equal(PARSE(&cl, &err, "--events", cases[i].text), -EINVAL);
			snprintf(want, sizeof(want), "spot-agent: option --events: %s\n", cases[i].line);
			assert_string_equal(err, want);
			free(err);
			continue;
		}
		assert_int_equal(load_file(path, &c, &err), 0);
		assert_string_equal(err, "");
		free(err);
		if (c.events_mask != cases[i].mask)
			fprintf(stderr, "case '%s': mask %#x\n", cases[i].text, c.events_mask);
		assert_int_equal(c.events_mask, cases[i].mask);
		out = print_config(&c);
		snprintf(want, sizeof(want), "\nevents = %s\n", cases[i].printed);
		line = strstr(out, want);
		if (!line)
			fprintf(stderr, "case '%s': printed\n%s", cases[i].text, out);
		assert_non_null(line);
		free(out);
		round_trip(&c);
		config_done(&c);
	}
	free(path);
#undef ALL_DEFAULT
}

/* approve-policy: one policy for every type, then Type:policy items, applied
 * left to right; printed as after-hooks and the types that differ, which
 * reads back to the same policies. Each refusal is one exact line. */
static void test_approve_policy_forms(void **state)
{
#define A ACK_AFTER_HOOKS
#define O ACK_AT_ONCE
#define N ACK_NEVER
	static const struct {
		const char *text;
		/* Preempt, Terminate, Reboot, Redeploy, Freeze, Shutdown */
		enum ack_policy want[_EVENT_TYPE_MAX];
		const char *printed;   /* NULL: refused with line */
		const char *line;
	} cases[] = {
		{ "after-hooks", { A, A, A, A, A, A }, "after-hooks", NULL },
		{ "at-once", { O, O, O, O, O, O },
		  "after-hooks,Preempt:at-once,Terminate:at-once,Reboot:at-once,Redeploy:at-once,"
		  "Freeze:at-once,Shutdown:at-once", NULL },
		{ "never", { N, N, N, N, N, N },
		  "after-hooks,Preempt:never,Terminate:never,Reboot:never,Redeploy:never,Freeze:never,"
		  "Shutdown:never", NULL },
		{ "Reboot:at-once", { A, A, O, A, A, A }, "after-hooks,Reboot:at-once", NULL },
		{ "after-hooks,Reboot:at-once", { A, A, O, A, A, A }, "after-hooks,Reboot:at-once", NULL },
		{ "never,Preempt:after-hooks,Freeze:at-once", { A, N, N, N, O, N },
		  "after-hooks,Terminate:never,Reboot:never,Redeploy:never,Freeze:at-once,Shutdown:never", NULL },
		/* Blanks around items, names and policies, as in events. */
		{ "after-hooks, Reboot : at-once", { A, A, O, A, A, A }, "after-hooks,Reboot:at-once", NULL },
		{ "never ,\tFreeze:at-once", { N, N, N, N, O, N },
		  "after-hooks,Preempt:never,Terminate:never,Reboot:never,Redeploy:never,Freeze:at-once,"
		  "Shutdown:never", NULL },
		/* Left to right: a later item wins. */
		{ "Preempt:never,Preempt:at-once", { O, A, A, A, A, A }, "after-hooks,Preempt:at-once", NULL },
		{ "Shutdown:never,at-once", { O, O, O, O, O, O },
		  "after-hooks,Preempt:at-once,Terminate:at-once,Reboot:at-once,Redeploy:at-once,"
		  "Freeze:at-once,Shutdown:at-once", NULL },
		/* Refused. */
		{ "sometimes", { A }, NULL,
		  "value 'sometimes' is not a list of after-hooks, at-once or never, each for every type "
		  "or as Type:policy" },
		{ "NEVER", { A }, NULL,
		  "value 'NEVER' is not a list of after-hooks, at-once or never, each for every type or as "
		  "Type:policy" },
		{ "Reboot:sometimes", { A }, NULL,
		  "value 'Reboot:sometimes' is not a list of after-hooks, at-once or never, each for every "
		  "type or as Type:policy" },
		{ "Reboot:", { A }, NULL,
		  "value 'Reboot:' is not a list of after-hooks, at-once or never, each for every type or "
		  "as Type:policy" },
		{ "Preempt:never:at-once", { A }, NULL,
		  "value 'Preempt:never:at-once' is not a list of after-hooks, at-once or never, each for "
		  "every type or as Type:policy" },
		{ "never,", { A }, NULL,
		  "value 'never,' is not a list of after-hooks, at-once or never, each for every type or "
		  "as Type:policy" },
		{ ",never", { A }, NULL,
		  "value ',never' is not a list of after-hooks, at-once or never, each for every type or "
		  "as Type:policy" },
		{ "never, ,at-once", { A }, NULL,
		  "value 'never, ,at-once' is not a list of after-hooks, at-once or never, each for every "
		  "type or as Type:policy" },
		{ "never,,at-once", { A }, NULL,
		  "value 'never,,at-once' is not a list of after-hooks, at-once or never, each for every "
		  "type or as Type:policy" },
		{ "Evict:never", { A }, NULL, "value 'Evict:never' names no event type in 'Evict'" },
		{ "reboot:never", { A }, NULL, "value 'reboot:never' names no event type in 'reboot'" },
		{ ":never", { A }, NULL, "value ':never' names no event type in ''" },
	};
	char *path = tmp_path("bool.conf");

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[128], want[512], *err = NULL, *out, *line;
		struct cmdline cl;
		struct config c;

		snprintf(text, sizeof(text), "approve-policy = %s\n", cases[i].text);
		write_file(path, text, strlen(text));
		if (!cases[i].printed) {
			assert_int_equal(load_file(path, &c, &err), -EINVAL);
			snprintf(want, sizeof(want), "spot-agent: %s:1: approve-policy: %s\n", path, cases[i].line);
			if (strcmp(err, want) != 0)
				fprintf(stderr, "case '%s': got %s", cases[i].text, err);
			assert_string_equal(err, want);
			free(err);

			/* The same line for the option. */
			assert_int_equal(PARSE(&cl, &err, "--approve-policy", cases[i].text), -EINVAL);
			snprintf(want, sizeof(want), "spot-agent: option --approve-policy: %s\n", cases[i].line);
			assert_string_equal(err, want);
			free(err);
			continue;
		}
		assert_int_equal(load_file(path, &c, &err), 0);
		assert_string_equal(err, "");
		free(err);
		for (int t = 0; t < _EVENT_TYPE_MAX; t++)
			if (c.ack_policy[t] != cases[i].want[t])
				fail_msg("case '%s': %s is %s", cases[i].text, event_type_to_string((enum event_type)t),
					 ack_policy_to_string(c.ack_policy[t]));
		out = print_config(&c);
		snprintf(want, sizeof(want), "\napprove-policy = %s\n", cases[i].printed);
		line = strstr(out, want);
		if (!line)
			fprintf(stderr, "case '%s': printed\n%s", cases[i].text, out);
		assert_non_null(line);
		free(out);
		round_trip(&c);
		config_done(&c);

		/* The command line gives the same. */
		assert_int_equal(PARSE(&cl, NULL, "-c", "/dev/null", "--approve-policy", cases[i].text), 0);
		assert_int_equal(load(&cl, &c, NULL), 0);
		for (int t = 0; t < _EVENT_TYPE_MAX; t++)
			assert_int_equal(c.ack_policy[t], cases[i].want[t]);
		config_done(&c);
		cmdline_done(&cl);
	}
	free(path);
#undef A
#undef O
#undef N
}

/* drain: seconds from 0 to 3600, 10 by default. */
static void test_drain(void **state)
{
	static const struct {
		const char *text;
		uint64_t want;
		const char *line;    /* NULL: accepted */
	} cases[] = {
		{ "0", 0, NULL },
		{ "10", 10, NULL },
		{ "3600", 3600, NULL },
		{ "3601", 0, "value '3601' is above the maximum 3600" },
		{ "-1", 0, "value '-1' is not a whole number" },
		{ "5s", 0, "value '5s' is not a whole number" },
	};
	char *path = tmp_path("bool.conf");

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[64], want[256], *err = NULL, *out;
		struct cmdline cl;
		struct config c;

		snprintf(text, sizeof(text), "drain = %s\n", cases[i].text);
		write_file(path, text, strlen(text));
		if (cases[i].line) {
			assert_int_equal(load_file(path, &c, &err), -EINVAL);
			snprintf(want, sizeof(want), "spot-agent: %s:1: drain: %s\n", path, cases[i].line);
			assert_string_equal(err, want);
			free(err);
			assert_int_equal(PARSE(&cl, &err, "--drain", cases[i].text), -EINVAL);
			snprintf(want, sizeof(want), "spot-agent: option --drain: %s\n", cases[i].line);
			assert_string_equal(err, want);
			free(err);
			continue;
		}
		assert_int_equal(load_file(path, &c, NULL), 0);
		assert_int_equal(c.drain_sec, cases[i].want);
		out = print_config(&c);
		snprintf(want, sizeof(want), "\ndrain = %s\n", cases[i].text);
		assert_non_null(strstr(out, want));
		free(out);
		round_trip(&c);
		config_done(&c);
	}
	free(path);
}

/* Every bad-X.conf must fail with exactly the lines of bad-X.expected and
 * leave the output untouched. */
static void test_bad_files(void **state)
{
	glob_t g;
	size_t n = 0;

	(void)state;
	assert_int_equal(glob(DATA "bad-*.conf", 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *conf = g.gl_pathv[i];
		char *exp_path, *expected, *err;
		struct config c, before;

		assert_true(asprintf(&exp_path, "%.*s.expected",
				     (int)(strlen(conf) - strlen(".conf")), conf) > 0);
		expected = read_path(exp_path);
		memset(&c, 0xa5, sizeof(c));
		before = c;
		assert_int_equal(load_file(conf, &c, &err), -EINVAL);
		if (strcmp(err, expected) != 0)
			fprintf(stderr, "%s: got\n%s", conf, err);
		assert_string_equal(err, expected);
		assert_memory_equal(&c, &before, sizeof(c));
		free(err);
		free(expected);
		free(exp_path);
		n++;
	}
	globfree(&g);
	assert_true(n >= 5);
}

/* A reload with a broken file leaves the running config as it was. */
static void test_reload_keeps_old(void **state)
{
	struct config c, copy;

	(void)state;
	assert_int_equal(load_file(DATA "good-full.conf", &c, NULL), 0);
	copy = c;
	assert_int_equal(load_file(DATA "bad-unknown-key.conf", &c, NULL), -EINVAL);
	assert_memory_equal(&c, &copy, sizeof(c));
	assert_string_equal(c.vm_name, "vm-42");
	config_done(&c);
}

static void test_limits(void **state)
{
	char *path = tmp_path("limits.conf");
	char *big, *err, *expected;
	struct config c;
	size_t n;

	(void)state;
	/* A line of CONFIG_LINE_MAX bytes is fine, one more is not. */
	big = malloc(2 * CONFIG_LINE_MAX + 64);
	assert_non_null(big);
	n = (size_t)snprintf(big, 64, "# comment\n");
	memset(big + n, '#', CONFIG_LINE_MAX);
	n += CONFIG_LINE_MAX;
	big[n++] = '\n';
	memset(big + n, '#', CONFIG_LINE_MAX + 1);
	n += CONFIG_LINE_MAX + 1;
	n += (size_t)sprintf(big + n, "\nmargin = 7\n");
	write_file(path, big, n);
	assert_int_equal(load_file(path, &c, &err), -EINVAL);
	assert_true(asprintf(&expected, "spot-agent: %s:3: line is longer than %d bytes\n",
			     path, CONFIG_LINE_MAX) > 0);
	assert_string_equal(err, expected);
	free(expected);
	free(err);
	free(big);

	/* A NUL byte. */
	{
		static const char nul[] = "margin = 3\nvm-name = a\0b\nfoo\n";

		write_file(path, nul, sizeof(nul) - 1);
	}
	assert_int_equal(load_file(path, &c, &err), -EINVAL);
	assert_true(asprintf(&expected, "spot-agent: %s:2: line contains a NUL byte\n"
			     "spot-agent: %s:3: expected 'key = value', got 'foo'\n", path, path) > 0);
	assert_string_equal(err, expected);
	free(expected);
	free(err);

	/* A file over CONFIG_FILE_MAX, even if it is all comments. */
	big = malloc(CONFIG_FILE_MAX + 1);
	assert_non_null(big);
	memset(big, '\n', CONFIG_FILE_MAX + 1);
	write_file(path, big, CONFIG_FILE_MAX + 1);
	assert_int_equal(load_file(path, &c, &err), -EINVAL);
	assert_true(asprintf(&expected, "spot-agent: cannot read config '%s': larger than %d bytes\n",
			     path, CONFIG_FILE_MAX) > 0);
	assert_string_equal(err, expected);
	free(expected);
	free(err);
	/* ... while exactly CONFIG_FILE_MAX is fine. */
	write_file(path, big, CONFIG_FILE_MAX);
	assert_int_equal(load_file(path, &c, NULL), 0);
	config_done(&c);
	free(big);

	/* Over-long values are refused without echoing them. */
	big = malloc(CONFIG_URL_MAX + 64);
	assert_non_null(big);
	n = (size_t)sprintf(big, "imds-url = http://");
	memset(big + n, 'a', CONFIG_URL_MAX);
	n += CONFIG_URL_MAX;
	big[n++] = '\n';
	write_file(path, big, n);
	assert_int_equal(load_file(path, &c, &err), -EINVAL);
	assert_true(asprintf(&expected, "spot-agent: %s:1: imds-url: value is longer than %d bytes\n",
			     path, CONFIG_URL_MAX) > 0);
	assert_string_equal(err, expected);
	free(expected);
	free(err);
	free(big);
	free(path);
}

/* ---- the command line ---- */

static void test_flags_win(void **state)
{
	struct cmdline cl;
	struct config c;
	char *err;

	(void)state;
	assert_int_equal(PARSE(&cl, &err, "-c", DATA "good-full.conf", "--poll-interval", "500",
			       "--approve", "--vm-name=other", "--events", "Redeploy,!Preempt",
			       "--hooks-lib-dir", "/opt/lib", "--listen=none", "--log-level", "warning",
			       "--imds-url", ""),
			 0);
	assert_string_equal(err, "");
	free(err);
	assert_true(cl.config_path_given);
	assert_string_equal(cl.config_path, DATA "good-full.conf");
	assert_int_equal(load(&cl, &c, &err), 0);
	assert_string_equal(err, "");
	free(err);
	assert_int_equal(c.poll_interval_ms, 500);
	assert_true(c.approve);
	assert_string_equal(c.vm_name, "other");
	assert_int_equal(c.events_mask, EV(EVENT_REDEPLOY));
	assert_string_equal(c.hooks_lib_dir, "/opt/lib");
	assert_string_equal(c.listen, "none");
	assert_int_equal(c.log_level, LOG_WARNING);
	assert_null(c.imds_url);
	/* What the flags did not name comes from the file. */
	assert_int_equal(c.provider, PROVIDER_AWS);
	assert_int_equal(c.margin_sec, 5);
	assert_int_equal(c.log_format, LOG_FORMAT_JSON);
	config_done(&c);
	cmdline_done(&cl);

	/* The last of repeated flags wins; --no-approve after --approve. */
	assert_int_equal(PARSE(&cl, NULL, "-c", "/dev/null", "--margin", "1", "--margin", "9",
			       "--approve", "--no-approve"), 0);
	assert_int_equal(load(&cl, &c, NULL), 0);
	assert_int_equal(c.margin_sec, 9);
	assert_false(c.approve);
	config_done(&c);
	cmdline_done(&cl);

	/* A flag does not rescue a broken file. */
	assert_int_equal(PARSE(&cl, NULL, "--config=" DATA "bad-unknown-key.conf",
			       "--poll-interval", "500"), 0);
	assert_int_equal(load(&cl, &c, &err), -EINVAL);
	assert_string_equal(err, "spot-agent: " DATA "bad-unknown-key.conf:7: unknown key 'pol-interval'\n");
	free(err);
	cmdline_done(&cl);
}

static void test_no_approve(void **state)
{
	struct cmdline cl;
	struct config c;

	(void)state;
	assert_int_equal(PARSE(&cl, NULL, "--no-approve", "-c", "/dev/null"), 0);
	assert_int_equal(cl.n_overrides, 1);
	assert_string_equal(cl.overrides[0], "approve=no");
	assert_int_equal(load(&cl, &c, NULL), 0);
	assert_false(c.approve);
	config_done(&c);
	cmdline_done(&cl);
}

/* Hooks run with cwd "/": relative directories must become absolute. */
static void test_relative_dirs_made_absolute(void **state)
{
	struct cmdline cl;
	struct config c;
	char cwd[PATH_MAX], *want;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(PARSE(&cl, NULL, "-c", "/dev/null", "--hooks-dir", "rel/hooks.d",
			       "--state-dir", "st", "--hooks-lib-dir", "none"), 0);
	assert_int_equal(load(&cl, &c, NULL), 0);
	want = xasprintf("%s/rel/hooks.d", cwd);
	assert_string_equal(c.hooks_dir, want);
	free(want);
	want = xasprintf("%s/st", cwd);
	assert_string_equal(c.state_dir, want);
	free(want);
	assert_string_equal(c.hooks_lib_dir, "");
	config_done(&c);
	cmdline_done(&cl);
}

static void test_commands(void **state)
{
	struct cmdline cl;
	char *err;

	(void)state;
	assert_int_equal(PARSE(&cl, NULL, "check"), 0);
	assert_int_equal(cl.command, COMMAND_CHECK);
	cmdline_done(&cl);

	assert_int_equal(PARSE(&cl, NULL, "check", "-c", "/x.conf", "--margin", "4"), 0);
	assert_int_equal(cl.command, COMMAND_CHECK);
	assert_string_equal(cl.config_path, "/x.conf");
	assert_true(cl.config_path_given);
	assert_int_equal(cl.n_overrides, 1);
	assert_string_equal(cl.overrides[0], "margin=4");
	cmdline_done(&cl);

	/* The subcommand may also follow the options. */
	assert_int_equal(PARSE(&cl, NULL, "-c", "/x.conf", "check"), 0);
	assert_int_equal(cl.command, COMMAND_CHECK);
	assert_string_equal(cl.config_path, "/x.conf");
	cmdline_done(&cl);

	assert_int_equal(PARSE(&cl, NULL, "--version"), 0);
	assert_int_equal(cl.command, COMMAND_VERSION);
	cmdline_done(&cl);
	assert_int_equal(PARSE(&cl, NULL, "--help"), 0);
	assert_int_equal(cl.command, COMMAND_HELP);
	cmdline_done(&cl);
	assert_int_equal(PARSE(&cl, NULL, "drill", "-h"), 0);
	assert_int_equal(cl.command, COMMAND_HELP);
	cmdline_done(&cl);

	/* Values that look like subcommands or options are values. */
	assert_int_equal(PARSE(&cl, &err, "--vm-name", "check", "--hooks-dir", "-x"), 0);
	assert_string_equal(err, "");
	free(err);
	assert_int_equal(cl.command, COMMAND_RUN);
	assert_string_equal(cl.overrides[0], "vm-name=check");
	assert_string_equal(cl.overrides[1], "hooks-dir=-x");
	cmdline_done(&cl);
}

static void test_drill(void **state)
{
	struct cmdline cl;

	(void)state;
	assert_int_equal(PARSE(&cl, NULL, "drill"), 0);
	assert_int_equal(cl.command, COMMAND_DRILL);
	assert_int_equal(cl.drill_type, EVENT_PREEMPT);
	assert_int_equal(cl.drill_notice_sec, 30);
	cmdline_done(&cl);

	assert_int_equal(PARSE(&cl, NULL, "drill", "--type", "Freeze", "--notice=90",
			       "--hooks-dir", "/srv/h"), 0);
	assert_int_equal(cl.command, COMMAND_DRILL);
	assert_int_equal(cl.drill_type, EVENT_FREEZE);
	assert_int_equal(cl.drill_notice_sec, 90);
	assert_int_equal(cl.n_overrides, 1);
	assert_string_equal(cl.overrides[0], "hooks-dir=/srv/h");
	cmdline_done(&cl);

	assert_int_equal(PARSE(&cl, NULL, "--type=Terminate", "--notice", "1", "drill"), 0);
	assert_int_equal(cl.command, COMMAND_DRILL);
	assert_int_equal(cl.drill_type, EVENT_TERMINATE);
	assert_int_equal(cl.drill_notice_sec, 1);
	cmdline_done(&cl);
}

/* Each bad command line: -EINVAL and exactly this one line. */
static void test_usage_errors(void **state)
{
	static const struct {
		const char *args[6];
		const char *line;
	} cases[] = {
		{ { "--poll-interval", "100" },
		  "option --poll-interval: value '100' is below the minimum 200 "
		  "(Azure IMDS allows about 5 requests per second)" },
		{ { "--poll-interval=199" },
		  "option --poll-interval: value '199' is below the minimum 200 "
		  "(Azure IMDS allows about 5 requests per second)" },
		{ { "--poll-interval", "1e3" }, "option --poll-interval: value '1e3' is not a whole number" },
		{ { "--margin", "99999999999999999999999" },
		  "option --margin: value '99999999999999999999999' is above the maximum 600" },
		{ { "--frobnicate" }, "unknown option '--frobnicate'" },
		{ { "--frobnicate=1" }, "unknown option '--frobnicate'" },
		{ { "-x" }, "unknown option '-x'" },
		{ { "--margin" }, "option --margin: missing value" },
		{ { "-c" }, "option --config: missing value" },
		{ { "--approve=no" }, "option --approve: takes no value" },
		{ { "--no-approve=yes" }, "option --no-approve: takes no value" },
		{ { "--version=2" }, "option --version: takes no value" },
		{ { "stray" }, "unexpected argument 'stray'" },
		{ { "check", "drill" }, "unexpected argument 'drill'" },
		{ { "check", "--margin", "1", "extra" }, "unexpected argument 'extra'" },
		{ { "--type", "Reboot" }, "option --type: only valid with 'drill'" },
		{ { "check", "--notice", "5" }, "option --notice: only valid with 'drill'" },
		{ { "drill", "--type", "preempt" },
		  "option --type: value 'preempt' is not one of Preempt, Terminate, Reboot, Redeploy, Freeze, Shutdown" },
		{ { "drill", "--notice", "0" }, "option --notice: value '0' is below the minimum 1" },
		{ { "drill", "--notice", "3601" }, "option --notice: value '3601' is above the maximum 3600" },
		{ { "--provider", "oracle" }, "option --provider: value 'oracle' is not one of azure, aws, gcp, auto" },
		{ { "--imds-url", "169.254.169.254" },
		  "option --imds-url: value '169.254.169.254' does not start with http:// or https://" },
		{ { "--imds-url", "http:///x" }, "option --imds-url: value 'http:///x' has no host" },
		{ { "--listen", "127.0.0.1" },
		  "option --listen: value '127.0.0.1' is not 'none', ADDR:PORT or [IPV6]:PORT" },
		{ { "--listen", "[::1]9470" },
		  "option --listen: value '[::1]9470' is not 'none', ADDR:PORT or [IPV6]:PORT" },
		{ { "--listen", "[::g]:1" }, "option --listen: value '[::g]:1' has an invalid IPv6 address '::g'" },
		{ { "--listen", "[::1]:0" }, "option --listen: value '[::1]:0' has an invalid port '0' (1 to 65535)" },
		{ { "--listen", "1.2.3.4:" }, "option --listen: value '1.2.3.4:' has an invalid port '' (1 to 65535)" },
		{ { "--events", "Preempt,Evict" },
		  "option --events: value 'Preempt,Evict' names an unknown event type 'Evict' "
		  "(known: Preempt, Terminate, Reboot, Redeploy, Freeze, Shutdown)" },
		{ { "--events", "Preempt," }, "option --events: value 'Preempt,' has an empty item" },
		{ { "--events=" }, "option --events: value is empty" },
		{ { "--hooks-dir", "" }, "option --hooks-dir: value is empty" },
		{ { "--vm-name", "a\nb" }, "option --vm-name: value 'a?b' contains a control character" },
		{ { "--vm-name", "a\"b" }, "option --vm-name: value 'a\"b' contains a double quote" },
		{ { "--log-format", "syslog" },
		  "option --log-format: value 'syslog' is not one of auto, text, json, journal" },
		{ { "--log-level", "crit" },
		  "option --log-level: value 'crit' is not one of debug, info, notice, warning, error" },
		{ { "--hook-timeout", "3601" }, "option --hook-timeout: value '3601' is above the maximum 3600" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[8], *err, expected[512];
		struct cmdline cl, before;
		int argc = 0, r;

		argv[argc++] = strdup("spot-agent");
		for (size_t k = 0; k < 6 && cases[i].args[k]; k++)
			argv[argc++] = strdup(cases[i].args[k]);
		argv[argc] = NULL;
		memset(&cl, 0x5a, sizeof(cl));
		before = cl;
		capture_begin();
		r = config_parse_args(argc, argv, &cl);
		err = capture_end();
		snprintf(expected, sizeof(expected), "spot-agent: %s\n", cases[i].line);
		if (r != -EINVAL || strcmp(err, expected) != 0)
			fprintf(stderr, "case %zu (%s): r=%d, got: %s", i, cases[i].args[0], r, err);
		assert_int_equal(r, -EINVAL);
		assert_string_equal(err, expected);
		assert_memory_equal(&cl, &before, sizeof(cl));
		free(err);
		for (int k = 0; k < argc; k++)
			free(argv[k]);
	}
}

/* Overrides are checked again at load time (a reload), naming the option. */
static void test_override_errors(void **state)
{
	char *ov[] = { "margin=601", "nosuch=1", "config=/x" };
	struct cmdline cl;
	struct config c;
	char *err;

	(void)state;
	cmdline_for(&cl, "/dev/null", true);
	cl.overrides = ov;
	cl.n_overrides = 3;
	memset(&c, 0, sizeof(c));
	assert_int_equal(load(&cl, &c, &err), -EINVAL);
	assert_string_equal(err, "spot-agent: option --margin: value '601' is above the maximum 600\n"
				 "spot-agent: unknown option '--nosuch'\n"
				 "spot-agent: unknown option '--config'\n");
	free(err);
	free(cl.config_path);
}

/* ---- output ---- */

static void round_trip(struct config *c)
{
	char *path = tmp_path("round-trip.conf");
	char *text = print_config(c), *text2, *err;
	struct config back;

	write_file(path, text, strlen(text));
	assert_int_equal(load_file(path, &back, &err), 0);
	assert_string_equal(err, "");
	free(err);
	assert_config_equal(c, &back);
	/* Printing again gives the same text but for the file name. */
	text2 = print_config(&back);
	assert_string_equal(strchr(text, '\n'), strchr(text2, '\n'));
	free(text2);
	config_done(&back);
	free(text);
	free(path);
}

static void test_round_trip(void **state)
{
	static const char *const files[] = { MISSING, DATA "good-full.conf", DATA "quoted.conf" };
	struct cmdline cl;
	struct config c;

	(void)state;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		cmdline_for(&cl, files[i], false);
		assert_int_equal(load(&cl, &c, NULL), 0);
		round_trip(&c);
		config_done(&c);
		cmdline_done(&cl);
	}

	/* Values that need quotes to survive the trip. */
	assert_int_equal(PARSE(&cl, NULL, "-c", "/dev/null", "--vm-name", " vm #1 ",
			       "--hooks-dir", "#hooks", "--state-dir", "/a b", "--hooks-lib-dir", "",
			       "--imds-url", "HTTPS://[fd00::1]:8443//", "--provider", "auto",
			       "--events", "Freeze,Redeploy,Reboot,Terminate,Preempt", "--log-format", "text",
			       "--log-level", "error", "--margin", "0", "--hook-timeout", "3600",
			       "--poll-interval", "60000", "--drain", "0",
			       "--approve-policy", "never,Preempt:after-hooks,Reboot:at-once"), 0);
	assert_int_equal(load(&cl, &c, NULL), 0);
	assert_string_equal(c.vm_name, " vm #1 ");
	assert_string_equal(c.hooks_lib_dir, "");
	assert_string_equal(c.imds_url, "HTTPS://[fd00::1]:8443");
	round_trip(&c);
	config_done(&c);
	cmdline_done(&cl);
}

/* remote-write-label: repeatable, a later name wins, "" empties, checked. */
static void test_labels(void **state)
{
	static const char text[] = "remote-write-url = http://127.0.0.1:9090/api/v1/write/\n"
				   "remote-write-label = team=ml\nremote-write-label = env=prod\n"
				   "remote-write-label = team=infra\npush-url = http://pg:9091\n";
	char *path = tmp_path("labels.conf"), *err;
	struct cmdline cl;
	struct config c;

	(void)state;
	write_file(path, text, sizeof(text) - 1);
	assert_int_equal(load_file(path, &c, &err), 0);
	assert_string_equal(err, "");
	free(err);
	assert_string_equal(c.remote_write_url, "http://127.0.0.1:9090/api/v1/write");
	assert_string_equal(c.push_url, "http://pg:9091");
	assert_int_equal(option_list_len(c.remote_write_labels), 2);
	assert_string_equal(c.remote_write_labels[0], "team=infra");
	assert_string_equal(c.remote_write_labels[1], "env=prod");
	assert_null(c.remote_write_bearer_token_file);
	round_trip(&c);
	config_done(&c);

	/* The command line adds to the file's, or empties them first. */
	assert_int_equal(PARSE(&cl, NULL, "-c", path, "--remote-write-label", "zone_x=a b"), 0);
	assert_int_equal(load(&cl, &c, NULL), 0);
	assert_int_equal(option_list_len(c.remote_write_labels), 3);
	assert_string_equal(c.remote_write_labels[2], "zone_x=a b");
	round_trip(&c);
	config_done(&c);
	cmdline_done(&cl);
	assert_int_equal(PARSE(&cl, NULL, "-c", path, "--remote-write-label", "", "--remote-write-label", "a=1"),
			 0);
	assert_int_equal(load(&cl, &c, NULL), 0);
	assert_int_equal(option_list_len(c.remote_write_labels), 1);
	assert_string_equal(c.remote_write_labels[0], "a=1");
	config_done(&c);
	cmdline_done(&cl);

	/* Refused: the record's own names, reserved ones, bad names, no value. */
	for (const char *const *bad = (const char *const[]){ "job=x", "instance=y", "__a=1", "1a=1", "a-b=1",
							     "noval=", "novalue", NULL };
	     *bad; bad++) {
		assert_int_equal(PARSE(&cl, &err, "-c", "/dev/null", "--remote-write-label", *bad), -EINVAL);
		assert_non_null(strstr(err, "option --remote-write-label: value '"));
		free(err);
	}
	/* At most 16. */
	{
		char big[2048] = "";

		for (int i = 0; i < 17; i++) {
			char line[64];

			(void)snprintf(line, sizeof(line), "remote-write-label = l%d=v\n", i);
			strcat(big, line);
		}
		write_file(path, big, strlen(big));
		assert_int_equal(load_file(path, &c, &err), -EINVAL);
		assert_non_null(strstr(err, "remote-write-label: more than 16 labels"));
		free(err);
	}
	free(path);
}

static void test_help(void **state)
{
	/* Every option of SPEC §2 plus the extra ones. */
	static const char *const words[] = {
		"-c, --config FILE", "--provider", "--imds-url", "--hooks-dir", "--hooks-lib-dir",
		"--state-dir", "--listen", "--poll-interval", "--vm-name", "--events", "--margin",
		"--hook-timeout", "--drain", "--approve-policy", "--approve", "--no-approve",
		"--log-format", "--log-level",
		"--type", "--notice", "-h, --help", "--version",
		"spot-agent check [OPTIONS]", "spot-agent drill [OPTIONS] [--type TYPE] [--notice SECONDS]",
		"spot-agent --version | --help", "for tests and packaging",
		"Preempt, Terminate, Reboot, Redeploy, Freeze, Shutdown", "azure, aws, gcp, auto",
		"(200 to 60000; Azure IMDS allows about 5 requests per second; default: 1000)", CONFIG_DEFAULT_LISTEN, CONFIG_DEFAULT_PATH,
		/* Keys a SIGHUP does not change, as agent_reload keeps them. */
		"(one of: azure, aws, gcp, auto; default: azure; needs a restart)",
		"(default: " CONFIG_DEFAULT_STATE "; needs a restart)",
		"(default: " CONFIG_DEFAULT_LISTEN "; needs a restart)",
		"asked from the metadata service (needs a restart)",
		"SIGHUP reloads the config file; options that need a restart keep their",
	};
	char *help = NULL, *flat, *q, *printed, *line;
	size_t n = 0;
	FILE *f = open_memstream(&help, &n);
	struct config c;
	struct cmdline cl;

	(void)state;
	assert_non_null(f);
	config_usage(f);
	fclose(f);
	/* Wrapped lines joined again, to look for phrases. */
	flat = strdup(help);
	assert_non_null(flat);
	q = flat;
	for (const char *p = help; *p; p++)
		if (*p == '\n' && p[1] == ' ') {
			*q++ = ' ';
			while (p[1] == ' ')
				p++;
		} else
			*q++ = *p;
	*q = '\0';
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (!strstr(flat, words[i]))
			fprintf(stderr, "help lacks '%s'\n", words[i]);
		assert_non_null(strstr(flat, words[i]));
	}
	/* Keys a reload applies carry no mark. */
	assert_non_null(strstr(flat, "(default: " CONFIG_DEFAULT_HOOKS ")"));
	assert_non_null(strstr(flat, "(0 to 600; default: 2)"));
	free(flat);
	/* No line wider than 79 columns. */
	for (char *p = help; *p;) {
		size_t len = strcspn(p, "\n");

		assert_true(len <= 79);
		p += len + (p[len] == '\n');
	}

	/* And every key config_print knows is an option in the help. */
	cmdline_for(&cl, MISSING, false);
	assert_int_equal(load(&cl, &c, NULL), 0);
	printed = print_config(&c);
	for (line = strtok(printed, "\n"); line; line = strtok(NULL, "\n")) {
		char opt[64];

		while (*line == '#' || *line == ' ')
			line++;
		if (!strstr(line, " ="))
			continue;
		snprintf(opt, sizeof(opt), "--%.*s ", (int)strcspn(line, " "), line);
		if (!strstr(help, opt)) {
			opt[strlen(opt) - 1] = ',';
			assert_non_null(strstr(help, opt));
		}
	}
	free(printed);
	config_done(&c);
	cmdline_done(&cl);
	free(help);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_missing_named_file),
		cmocka_unit_test(test_good_full),
		cmocka_unit_test(test_quoted),
		cmocka_unit_test(test_gcp_default_url),
		cmocka_unit_test(test_bool_spellings),
		cmocka_unit_test(test_events_forms),
		cmocka_unit_test(test_approve_policy_forms),
		cmocka_unit_test(test_drain),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_reload_keeps_old),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_flags_win),
		cmocka_unit_test(test_no_approve),
		cmocka_unit_test(test_relative_dirs_made_absolute),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_drill),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_override_errors),
		cmocka_unit_test(test_round_trip),
cmocka_unit_test(test_labels),
		cmocka_unit_test(test_help),
	};

	return cmocka_run_group_tests_name("config", tests, setup_tmpdir, teardown_tmpdir);
}
