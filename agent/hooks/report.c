/* report.c - a hook's report file: created empty before the hook starts,
 * read and parsed strictly once it has ended, removed. The parser is pure
 * and refuses a report whole, naming the line and the key, so a hook
 * author sees the mistake rather than half a report; only the runner's
 * two hook points (hook_report_begin/_end) log, with the hook's name. */
#include "hooks/report.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "store/json.h"
#include "util.h"

enum report_field {
	FIELD_LOST_WORK,
	FIELD_CHECKPOINT_BYTES,
	FIELD_JOBS_REQUEUED,
	FIELD_ABANDON,
	_FIELD_MAX,
};

static const char *const key_names[_FIELD_MAX] = {
	[FIELD_LOST_WORK] = "lost_work_seconds",
	[FIELD_CHECKPOINT_BYTES] = "checkpoint_bytes",
	[FIELD_JOBS_REQUEUED] = "jobs_requeued",
	[FIELD_ABANDON] = "abandon",
};

_printf_(3, 4) static int refuse(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;

	if (why && n > 0) {
		va_start(ap, fmt);
		(void)vsnprintf(why, n, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

/* Copies s (len bytes) for a message, cut, control bytes as '?'. */
static const char *echo(const char *s, size_t len, char *buf, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < len && k + 4 < n; i++)
		buf[k++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	if (len > k)
		memcpy(buf + k, "...", 4);
	else
		buf[k] = '\0';
	return buf;
}

static int parse_line(const char *line, size_t len, unsigned lineno, struct hook_report *r,
		      bool seen[_FIELD_MAX], char *why, size_t n)
{
	const char *eq = memchr(line, '=', len);
	char e1[48], e2[48], value[32];
	size_t klen, vlen;
	uint64_t v;
	int k;

	if (!eq)
		return refuse(why, n, "line %u: '%s' is not key=value", lineno, echo(line, len, e1, sizeof(e1)));
	klen = (size_t)(eq - line);
	vlen = len - klen - 1;
	for (k = 0; k < _FIELD_MAX; k++)
		if (strlen(key_names[k]) == klen && memcmp(key_names[k], line, klen) == 0)
			break;
	if (k == _FIELD_MAX)
		return refuse(why, n, "line %u: unknown key '%s' (known: lost_work_seconds, "
			      "checkpoint_bytes, jobs_requeued, abandon)", lineno, echo(line, klen, e1, sizeof(e1)));
	if (seen[k])
		return refuse(why, n, "line %u: '%s' is given twice", lineno, key_names[k]);
	seen[k] = true;
	if (k == FIELD_ABANDON) {
		if (vlen != 1 || (eq[1] != '0' && eq[1] != '1'))
			return refuse(why, n, "line %u: 'abandon': '%s' is not 0 or 1", lineno,
				      echo(eq + 1, vlen, e2, sizeof(e2)));
		r->abandon = eq[1] == '1';
		return 0;
	}
	/* Digits only: parse_uint64 refuses signs and spaces too, but says
	 * nothing of a value cut to fit the buffer. */
	for (size_t i = 0; i < vlen; i++)
		if (eq[1 + i] < '0' || eq[1 + i] > '9')
			goto bad_number;
	if (vlen == 0 || vlen >= sizeof(value))
		goto bad_number;
	memcpy(value, eq + 1, vlen);
	value[vlen] = '\0';
	if (parse_uint64(value, 0, (uint64_t)JSON_INT_MAX, &v) < 0)
		goto bad_number;
	switch (k) {
	case FIELD_LOST_WORK:
		r->has_lost_work = true;
		r->lost_work_seconds = v;
		break;
	case FIELD_CHECKPOINT_BYTES:
		r->has_checkpoint_bytes = true;
		r->checkpoint_bytes = v;
		break;
	default:
		r->has_jobs_requeued = true;
		r->jobs_requeued = v;
		break;
	}
	return 0;
bad_number:
	return refuse(why, n, "line %u: '%s': '%s' is not a whole number from 0 to %lld", lineno,
		      key_names[k], echo(eq + 1, len - klen - 1, e2, sizeof(e2)), (long long)JSON_INT_MAX);
}

int hook_report_parse(const char *text, size_t len, struct hook_report *ret, char *why, size_t why_size)
{
	struct hook_report r = { 0 };
	bool seen[_FIELD_MAX] = { false };
	unsigned lineno = 0;
	size_t pos = 0;
	int k;

	if (len > HOOK_REPORT_FILE_MAX) {
		(void)refuse(why, why_size, "larger than %d bytes", HOOK_REPORT_FILE_MAX);
		return -EFBIG;
	}
	while (pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;

		lineno++;
		pos += n + 1;
		if (memchr(line, '\0', n))
			return refuse(why, why_size, "line %u: a NUL byte", lineno);
		if (n > HOOK_REPORT_LINE_MAX)
			return refuse(why, why_size, "line %u: longer than %d bytes", lineno, HOOK_REPORT_LINE_MAX);
		if (n == 0 || line[0] == '#')
			continue;
		k = parse_line(line, n, lineno, &r, seen, why, why_size);
		if (k < 0)
			return k;
	}
	*ret = r;
	return 0;
}

static uint64_t add_capped(uint64_t a, uint64_t b)
{
	return a > (uint64_t)JSON_INT_MAX - b ? (uint64_t)JSON_INT_MAX : a + b;
}

void hook_report_add(struct hook_report *sum, const struct hook_report *add)
{
	if (add->has_lost_work) {
		sum->lost_work_seconds = add_capped(sum->has_lost_work ? sum->lost_work_seconds : 0,
						    add->lost_work_seconds);
		sum->has_lost_work = true;
	}
	if (add->has_checkpoint_bytes) {
		sum->checkpoint_bytes = add_capped(sum->has_checkpoint_bytes ? sum->checkpoint_bytes : 0,
						   add->checkpoint_bytes);
		sum->has_checkpoint_bytes = true;
	}
	if (add->has_jobs_requeued) {
		sum->jobs_requeued = add_capped(sum->has_jobs_requeued ? sum->jobs_requeued : 0,
						add->jobs_requeued);
		sum->has_jobs_requeued = true;
	}
	sum->abandon = sum->abandon || add->abandon;
}

/* ---- the file ---- */

/* <state_dir>/reports, created 0700 when missing; it must be a directory
 * of ours that nobody else can write (a file in it is handed to a hook by
 * name). */
static int ensure_dir(const char *state_dir, char *buf, size_t n)
{
	struct stat st;

	if (snprintf(buf, n, "%s/%s", state_dir, HOOK_REPORT_DIR_NAME) >= (int)n)
		return -ENAMETOOLONG;
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(buf, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (st.st_uid != geteuid() || (st.st_mode & 0022))
		return -EPERM;
	return 0;
}

int hook_report_file_create(struct hook_report_file *f, const char *state_dir, const char *name)
{
	char dir[PATH_MAX], safe[NAME_MAX + 1];
	size_t k = 0;
	int fd, r;

	f->path[0] = '\0';
	if (!state_dir || !state_dir[0] || !name || !name[0])
		return -EINVAL;
	r = ensure_dir(state_dir, dir, sizeof(dir));
	if (r < 0)
		return r;
	for (; name[k] && k < sizeof(safe) - 1; k++) {
		char c = name[k];

		safe[k] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '_' || c == '-' ? c : '_';
	}
	safe[k] = '\0';
	if (safe[0] == '.')
		safe[0] = '_';
	if (snprintf(f->path, sizeof(f->path), "%s/%s", dir, safe) >= (int)sizeof(f->path)) {
		f->path[0] = '\0';
		return -ENAMETOOLONG;
	}
	/* A file left by a run the agent did not see end. */
	(void)unlink(f->path);
	fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0) {
		r = -errno;
		f->path[0] = '\0';
		return r;
	}
	(void)close(fd);
	return 0;
}

int hook_report_file_read(struct hook_report_file *f, struct hook_report *ret, char *why, size_t why_size)
{
	char buf[HOOK_REPORT_FILE_MAX + 1];
	size_t len = 0;
	struct stat st;
	int fd, r;

	if (why && why_size)
		why[0] = '\0';
	if (!f->path[0]) {
		*ret = (struct hook_report){ 0 };
		return 0;
	}
	/* By name: a hook may have put a new file in its place (write, then
	 * rename), which counts as well. */
	fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		hook_report_file_done(f);
		if (r == -ENOENT) {
			*ret = (struct hook_report){ 0 };
			return 0;
		}
		(void)snprintf(why, why_size, "cannot open it: %s", strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		(void)snprintf(why, why_size, "cannot look at it: %s", strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		r = -EPERM;
		(void)snprintf(why, why_size, "not a regular file of the agent's user");
		goto out;
	}
	for (;;) {
		ssize_t k = read(fd, buf + len, sizeof(buf) - len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			(void)snprintf(why, why_size, "cannot read it: %s", strerror(errno));
			goto out;
		}
		if (k == 0 || (len += (size_t)k) == sizeof(buf))
			break;
	}
	r = hook_report_parse(buf, len, ret, why, why_size);
out:
	(void)close(fd);
	hook_report_file_done(f);
	return r;
}

void hook_report_file_done(struct hook_report_file *f)
{
	if (!f || !f->path[0])
		return;
	(void)unlink(f->path);
	f->path[0] = '\0';
}

void hook_report_begin(struct hook_report_file *f, const char *state_dir, const char *event_id,
		       const char *name)
{
	int r;

	f->path[0] = '\0';
	if (!state_dir)
		return;
	r = hook_report_file_create(f, state_dir, name);
	if (r < 0)
		log_hook(LOG_WARNING, event_id, name, "hook '%s': cannot create its report file in '%s/%s': %s, "
			 "running it without SPOT_REPORT", name, state_dir, HOOK_REPORT_DIR_NAME, strerror(-r));
}

void hook_report_end(struct hook_report_file *f, const char *event_id, const char *name,
		     struct hook_report *ret)
{
	char why[HOOK_REPORT_WHY_MAX];

	if (hook_report_file_read(f, ret, why, sizeof(why)) < 0) {
		log_hook(LOG_WARNING, event_id, name, "hook '%s': its report is refused: %s, ignoring it", name,
			 why);
		*ret = (struct hook_report){ 0 };
	}
}
