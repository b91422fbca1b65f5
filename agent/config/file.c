/* file.c - the config file: "key = value" lines and "#" comments, every
 * error reported as "FILE:LINE: message" and parsing going on to report
 * them all; a file with any error is refused whole, nothing half-applied. */
#include "config/options.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/samples.h"
#include "log.h"

struct file_parser {
	const char *path;
	struct config *config;
	unsigned seen[OPTIONS_MAX];   /* line where each key was set, 0 = not yet */
	unsigned errors;
	char *first_error;            /* NULL, or gets the first error line */
	size_t first_error_size;
};

/* Logs one error line and keeps the first for the caller. */
static void config_error(struct file_parser *p, const char *fmt, ...) _printf_(2, 3);
static void config_error(struct file_parser *p, const char *fmt, ...)
{
	char msg[PATH_MAX + ERR_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("%s", msg);
	if (p->errors++ == 0 && p->first_error && p->first_error_size > 0)
		(void)strscpy(p->first_error, p->first_error_size, msg);
}

static void file_error(struct file_parser *p, unsigned line, const char *fmt, ...) _printf_(3, 4);
static void file_error(struct file_parser *p, unsigned line, const char *fmt, ...)
{
	char msg[ERR_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	config_error(p, "%s:%u: %s", p->path, line, msg);
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
		file_error(p, lineno, "expected 'key = value', got '%s'", option_echo(key, e1, sizeof(e1)));
		return;
	}
	*eq = '\0';
	trim_end(key);
	if (*key == '\0') {
		file_error(p, lineno, "missing key before '='");
		return;
	}
	o = option_find(key);
	if (!o || o->type == OPT_HELP || o->type == OPT_VERSION) {
		file_error(p, lineno, "unknown key '%s'", option_echo(key, e1, sizeof(e1)));
		return;
	}
	if (o->flags & OPT_CMDLINE) {
		file_error(p, lineno, "key '%s' is only valid on the command line", o->name);
		return;
	}
	idx = (size_t)(o - option_table);
	if (p->seen[idx] && o->type != OPT_LIST) {
		file_error(p, lineno, "duplicate key '%s', first set on line %u", o->name, p->seen[idx]);
		return;
	}
	p->seen[idx] = lineno;
	if (split_value(eq + 1, &value, &serr) < 0) {
		file_error(p, lineno, "%s: %s", o->name, serr);
		return;
	}
	if (option_parse_value(o, value, &v, err, sizeof(err)) < 0) {
		file_error(p, lineno, "%s: %s", o->name, err);
		return;
	}
	option_store_value(o, p->config, &v);
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
	return config_load_report(cl, ret, NULL, 0);
}

int config_load_report(const struct cmdline *cl, struct config *ret, char *first_error, size_t n)
{
	struct file_parser p = { .first_error = first_error, .first_error_size = n };
	struct config c;
	char *buf = NULL;
	size_t len = 0;
	int r;

	if (first_error && n > 0)
		first_error[0] = '\0';
	option_defaults(&c);
	p.config = &c;

	r = cl->config_path ? read_config(cl->config_path, &buf, &len) : -ENOENT;
	if (r == -ENOENT && !cl->config_path_given)
		r = 0; /* no file at the default place: the defaults */
	else if (r < 0) {
		if (r == -EFBIG)
			config_error(&p, "cannot read config '%s': larger than %d bytes", cl->config_path,
				     CONFIG_FILE_MAX);
		else
			config_error(&p, "cannot read config '%s': %s", cl->config_path,
				     r == -EBADF ? "not a regular file" : strerror(-r));
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
		const struct option_def *o = key ? option_find(key) : NULL;
		char err[ERR_MAX];
		union value v;

		if (!o || (o->flags & OPT_CMDLINE) || !eq) {
			char e1[ECHO_MAX + 1];

			config_error(&p, "unknown option '--%s'",
				     option_echo(key ? key : cl->overrides[i], e1, sizeof(e1)));
		} else if (option_parse_value(o, eq + 1, &v, err, sizeof(err)) < 0) {
			config_error(&p, "option --%s: %s", o->name, err);
		} else
			option_store_value(o, &c, &v);
		free(key);
	}

	free(buf);
	if (option_list_len(c.remote_write_labels) > EVIDENCE_EXTRA_LABELS_MAX) {
		log_error("remote-write-label: more than %d labels", EVIDENCE_EXTRA_LABELS_MAX);
		p.errors++;
	}
	if (p.errors > 0) {
		if (p.errors > 1 && first_error && n > 0) {
			char more[64];

			(void)snprintf(more, sizeof(more), " (and %u more %s)", p.errors - 1,
				       p.errors == 2 ? "error" : "errors");
			/* Cut the line, not the count, when it is long. */
			if (strlen(first_error) + strlen(more) >= n && n > strlen(more))
				first_error[n - 1 - strlen(more)] = '\0';
			option_str_append(first_error, n, more);
		}
		config_done(&c);
		return -EINVAL;
	}
	*ret = c;
	return 0;
}
