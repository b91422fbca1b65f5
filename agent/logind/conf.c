/* logind-conf.c - the InhibitDelayMaxSec logind applies, read from its
 * configuration files the way logind reads them, for `spot-agent check`
 * (which must answer without a bus, and tell which file decided). It reads
 * files and nothing else: no bus, no logging, no state. Every input is
 * bounded: the number of drop-ins, the size of a file, the length of a
 * time span. */
#include "logind/logind.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* logind's search path, highest priority first. */
static const char *const conf_dirs[] = { "/etc", "/run", "/usr/local/lib", "/usr/lib" };

#define MAIN_FILE   "/systemd/logind.conf"
#define DROPIN_DIR  "/systemd/logind.conf.d"
#define SPAN_MAX    256
#define SPAN_PARTS_MAX 32

/* ---- time spans --------------------------------------------------------- */

struct span_unit {
	const char *name;
	uint64_t usec;
};

/* Matched longest first, so "ms" is not "m" followed by "s". */
static const struct span_unit span_units[] = {
	{ "us", 1 },
	{ "usec", 1 },
	{ "ms", USEC_PER_MSEC },
	{ "msec", USEC_PER_MSEC },
	{ "s", USEC_PER_SEC },
	{ "sec", USEC_PER_SEC },
	{ "second", USEC_PER_SEC },
	{ "seconds", USEC_PER_SEC },
	{ "m", 60 * USEC_PER_SEC },
	{ "min", 60 * USEC_PER_SEC },
	{ "minute", 60 * USEC_PER_SEC },
	{ "minutes", 60 * USEC_PER_SEC },
	{ "h", 3600 * USEC_PER_SEC },
	{ "hr", 3600 * USEC_PER_SEC },
	{ "hour", 3600 * USEC_PER_SEC },
	{ "hours", 3600 * USEC_PER_SEC },
	{ "d", 86400 * USEC_PER_SEC },
	{ "day", 86400 * USEC_PER_SEC },
	{ "days", 86400 * USEC_PER_SEC },
	{ "w", 7 * 86400 * USEC_PER_SEC },
	{ "week", 7 * 86400 * USEC_PER_SEC },
	{ "weeks", 7 * 86400 * USEC_PER_SEC },
	/* systemd's month and year: 30.44 and 365.25 days. */
	{ "M", 2629800 * USEC_PER_SEC },
	{ "month", 2629800 * USEC_PER_SEC },
	{ "months", 2629800 * USEC_PER_SEC },
	{ "y", 31557600 * USEC_PER_SEC },
	{ "year", 31557600 * USEC_PER_SEC },
	{ "years", 31557600 * USEC_PER_SEC },
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const struct span_unit *match_unit(const char *p)
{
	const struct span_unit *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < ELEMENTSOF(span_units); i++) {
		size_t len = strlen(span_units[i].name);

		if (len > best_len && strncmp(p, span_units[i].name, len) == 0) {
			best = &span_units[i];
			best_len = len;
		}
	}
	return best;
}

static int add_usec(uint64_t *sum, uint64_t v)
{
	if (v > UINT64_MAX - *sum)
		return -ERANGE;
	*sum += v;
	return 0;
}

/* One <number>[<unit>] at *pp; advances *pp past it. */
static int parse_span_part(const char **pp, uint64_t *ret_usec)
{
	const char *p = *pp, *frac = NULL;
	const struct span_unit *u;
	uint64_t whole = 0, mult = USEC_PER_SEC, v, cur;
	size_t n_frac = 0;
	bool digits = false;
	int r;

	while (isdigit((unsigned char)*p)) {
		if (whole > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		whole = whole * 10 + (uint64_t)(*p++ - '0');
		digits = true;
	}
	if (*p == '.') {
		frac = ++p;
		while (isdigit((unsigned char)*p))
			p++;
		n_frac = (size_t)(p - frac);
		if (n_frac == 0)
			return -EINVAL;
		digits = true;
	}
	if (!digits)
		return -EINVAL;
	while (is_space(*p))
		p++;
	u = match_unit(p);
	if (u) {
		p += strlen(u->name);
		mult = u->usec;
	}
	/* A unit runs up to a digit, a space or the end: "5mins" is no unit. */
	if (isalpha((unsigned char)*p))
		return -EINVAL;
	if (whole > UINT64_MAX / mult)
		return -ERANGE;
	v = whole * mult;
	/* Each decimal is worth a tenth of the one before; digits finer than
	 * a microsecond are dropped. */
	cur = mult;
	for (size_t i = 0; i < n_frac && cur > 0; i++) {
		cur /= 10;
		r = add_usec(&v, (uint64_t)(frac[i] - '0') * cur);
		if (r < 0)
			return r;
	}
	*pp = p;
	*ret_usec = v;
	return 0;
}

int logind_parse_sec(const char *s, uint64_t *ret_usec)
{
	const char *p = s, *end;
	uint64_t total = 0, v;
	unsigned parts = 0;
	int r;

	if (!s || strnlen(s, SPAN_MAX + 1) > SPAN_MAX)
		return -EINVAL;
	while (is_space(*p))
		p++;
	end = p + strlen(p);
	while (end > p && is_space(end[-1]))
		end--;
	if ((size_t)(end - p) == strlen("infinity") && strncmp(p, "infinity", 8) == 0) {
		*ret_usec = USEC_INFINITY;
		return 0;
	}
	while (p < end) {
		if (++parts > SPAN_PARTS_MAX)
			return -EINVAL;
		r = parse_span_part(&p, &v);
		if (r < 0)
			return r;
		r = add_usec(&total, v);
		if (r < 0)
			return r;
		while (p < end && is_space(*p))
			p++;
	}
	if (parts == 0)
		return -EINVAL;
	*ret_usec = total;
	return 0;
}

/* ---- files -------------------------------------------------------------- */

struct dropin {
	char name[NAME_MAX + 1];
	size_t dir;                /* index into conf_dirs */
};

struct conf_result {
	uint64_t usec;
	bool set;
	char *source;              /* the caller's buffer, or NULL */
	size_t n;
};

static void set_source(char *source, size_t n, const char *path)
{
	if (source && n > 0)
		(void)strscpy(source, n, path);
}

static int full_path(char *buf, size_t n, const char *root, const char *a, const char *b, const char *c)
{
	int k = snprintf(buf, n, "%s%s%s%s", root, a, b, c);

	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

static char *trim(char *s)
{
	char *e;

	while (is_space(*s))
		s++;
	e = s + strlen(s);
	while (e > s && is_space(e[-1]))
		*--e = '\0';
	return s;
}

/* One logical line (continuations already joined). */
static void parse_line(char *line, bool *in_login, struct conf_result *res, const char *path)
{
	char *eq, *key, *value;
	uint64_t usec;
	size_t len;

	line = trim(line);
	if (*line == '\0' || *line == '#' || *line == ';')
		return;
	if (*line == '[') {
		len = strlen(line);
		*in_login = len == strlen("[Login]") && strcmp(line, "[Login]") == 0;
		return;
	}
	/* logind ignores assignments outside a section, lines without '=' and
	 * values it cannot parse, keeping the earlier value: so do we. */
	eq = strchr(line, '=');
	if (!*in_login || !eq)
		return;
	*eq = '\0';
	key = trim(line);
	value = trim(eq + 1);
	if (strcmp(key, "InhibitDelayMaxSec") != 0 || logind_parse_sec(value, &usec) < 0)
		return;
	res->usec = usec;
	res->set = true;
	set_source(res->source, res->n, path);
}

static void parse_text(char *text, struct conf_result *res, const char *path)
{
	bool in_login = false, comment;
	char *line = text, *p, *nl;

	while (*line) {
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		/* As in logind, a comment does not go on in the next line. */
		comment = *p == '#' || *p == ';';
		/* Otherwise a line ending in a backslash does: the two are
		 * joined in place, the backslash and the newline turned into
		 * spaces. */
		for (p = line;; p = nl + 1) {
			nl = strchr(p, '\n');
			if (!nl)
				nl = p + strlen(p);
			if (comment || *nl == '\0' || nl == p || nl[-1] != '\\')
				break;
			nl[-1] = ' ';
			*nl = ' ';
		}
		if (*nl)
			*nl++ = '\0';
		parse_line(line, &in_login, res, path);
		line = nl;
	}
}

/* Reads root+path, if it exists, into res. A missing file is no error; a
 * file that is neither regular nor /dev/null (a mask) is skipped. */
static int parse_file(const char *root, const char *path, struct conf_result *res, bool *ret_found)
{
	char full[PATH_MAX];
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	ssize_t k;
	int fd = -1, r;

	*ret_found = false;
	r = full_path(full, sizeof(full), root, path, "", "");
	if (r < 0)
		goto fail;
	/* O_NONBLOCK: a FIFO planted here must not hang the check. */
	fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		r = -errno;
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto fail;
	}
	*ret_found = true;
	if (!S_ISREG(st.st_mode)) {
		r = 0;
		goto out;
	}
	if (st.st_size > LOGIND_CONF_FILE_MAX) {
		r = -EFBIG;
		goto fail;
	}
	text = xmalloc(LOGIND_CONF_FILE_MAX + 1);
	for (;;) {
		k = read(fd, text + len, LOGIND_CONF_FILE_MAX + 1 - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			goto fail;
		}
		if (k == 0)
			break;
		len += (size_t)k;
		if (len > LOGIND_CONF_FILE_MAX) {
			/* It grew while we read. */
			r = -EFBIG;
			goto fail;
		}
	}
	text[len] = '\0';
	/* A NUL ends the text: logind's parser would not read past it either. */
	parse_text(text, res, path);
	r = 0;
	goto out;
fail:
	set_source(res->source, res->n, path);
out:
	free(text);
	if (fd >= 0)
		(void)close(fd);
	return r;
}

static bool is_dev_null(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(1, 3);
}

static int cmp_dropin(const void *a, const void *b)
{
	return strcmp(((const struct dropin *)a)->name, ((const struct dropin *)b)->name);
}

/* Adds the *.conf of one drop-in directory that no earlier directory has. */
static int list_dir(const char *root, size_t dir, struct dropin *list, size_t *n, struct conf_result *res)
{
	char full[PATH_MAX], shown[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;
	size_t len, i;
	int r = 0;

	(void)snprintf(shown, sizeof(shown), "%s%s", conf_dirs[dir], DROPIN_DIR);
	if (full_path(full, sizeof(full), root, conf_dirs[dir], DROPIN_DIR, "") < 0) {
		set_source(res->source, res->n, shown);
		return -ENAMETOOLONG;
	}
	d = opendir(full);
	if (!d) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		set_source(res->source, res->n, shown);
		return -errno;
	}
	while ((de = readdir(d))) {
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= strlen(".conf") ||
		    strcmp(de->d_name + len - strlen(".conf"), ".conf") != 0)
			continue;
		/* Regular files and masks; dangling links and the rest are
		 * not configuration. */
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !(S_ISREG(st.st_mode) || is_dev_null(&st)))
			continue;
		for (i = 0; i < *n; i++)
			if (strcmp(list[i].name, de->d_name) == 0)
				break;
		if (i < *n)
			continue; /* A higher directory has this name. */
		if (*n >= LOGIND_CONF_DROPINS_MAX) {
			set_source(res->source, res->n, shown);
			r = -E2BIG;
			break;
		}
		(void)strscpy(list[*n].name, sizeof(list[*n].name), de->d_name);
		list[*n].dir = dir;
		(*n)++;
	}
	(void)closedir(d);
	return r;
}

int logind_read_delay_max_at(const char *root, uint64_t *ret_usec, char *source, size_t n)
{
	struct conf_result res = { .usec = LOGIND_DELAY_MAX_DEFAULT_USEC, .source = source, .n = n };
	struct dropin *list = NULL;
	char path[PATH_MAX];
	size_t n_list = 0;
	bool found = false;
	int r = 0;

	if (!root)
		root = "";
	set_source(source, n, "");
	/* The main file: the first that exists. */
	for (size_t i = 0; i < ELEMENTSOF(conf_dirs) && !found; i++) {
		(void)snprintf(path, sizeof(path), "%s%s", conf_dirs[i], MAIN_FILE);
		r = parse_file(root, path, &res, &found);
		if (r < 0)
			goto out;
	}
	/* The drop-ins: one list over all directories, by file name. */
	list = xcalloc(LOGIND_CONF_DROPINS_MAX, sizeof(*list));
	for (size_t i = 0; i < ELEMENTSOF(conf_dirs); i++) {
		r = list_dir(root, i, list, &n_list, &res);
		if (r < 0)
			goto out;
	}
	qsort(list, n_list, sizeof(*list), cmp_dropin);
	for (size_t i = 0; i < n_list; i++) {
		(void)snprintf(path, sizeof(path), "%s%s/%s", conf_dirs[list[i].dir], DROPIN_DIR, list[i].name);
		r = parse_file(root, path, &res, &found);
		if (r < 0)
			goto out;
	}
	if (!res.set)
		set_source(source, n, "");
	*ret_usec = res.usec;
	r = 0;
out:
	free(list);
	return r;
}

int logind_read_delay_max(uint64_t *ret_usec, char *source, size_t n)
{
	return logind_read_delay_max_at(NULL, ret_usec, source, n);
}
