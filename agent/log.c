/* log.c - the agent's only output channel for diagnostics. Under systemd it
 * writes structured journal entries (SPOT_EVENT_ID, SPOT_HOOK, PRIORITY);
 * otherwise one text or JSON line per record on stderr, each with its time
 * in UTC to the millisecond. Without a journal to write to it falls back to
 * text rather than lose the records. It never exits and never allocates on
 * a failure path it cannot recover from. */
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <systemd/sd-journal.h>

#include "engine/base.h"

#define LOG_MESSAGE_MAX 4096
/* A text line: the message, its time, level, event id and hook name. */
#define LOG_LINE_MAX (LOG_MESSAGE_MAX + 512)

static enum log_format log_format = LOG_FORMAT_TEXT;
static int log_max_priority = LOG_INFO;
/* The journal fallback has been announced; cleared when a journal is found. */
static bool journal_fallback_warned;

static const char *const level_names[] = {
	[LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
	[LOG_ERR] = "error", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

static const char *const format_names[] = {
	[LOG_FORMAT_AUTO] = "auto", [LOG_FORMAT_TEXT] = "text",
	[LOG_FORMAT_JSON] = "json", [LOG_FORMAT_JOURNAL] = "journal",
};

/* systemd sets JOURNAL_STREAM to "DEV:INODE" of the stream it connects
 * stdout/stderr to; a child whose stderr went elsewhere inherits it too,
 * so only a match with stderr itself counts. */
static bool stderr_is_journal_stream(void)
{
	const char *e = getenv("JOURNAL_STREAM"), *colon;
	char dev_text[32];
	uint64_t dev, ino;
	struct stat st;

	if (!e || !(colon = strchr(e, ':')) || (size_t)(colon - e) >= sizeof(dev_text))
		return false;
	memcpy(dev_text, e, (size_t)(colon - e));
	dev_text[colon - e] = '\0';
	if (parse_uint64(dev_text, 0, UINT64_MAX, &dev) < 0 || parse_uint64(colon + 1, 0, UINT64_MAX, &ino) < 0)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

int log_journal_probe(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r = 0;

	if (strscpy(sa.sun_path, sizeof(sa.sun_path), path) < 0)
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0)
		r = -errno;
	(void)close(fd);
	return r;
}

void log_setup(enum log_format format, int max_priority)
{
	int r;

	if (format == LOG_FORMAT_AUTO)
		format = stderr_is_journal_stream() ? LOG_FORMAT_JOURNAL : LOG_FORMAT_TEXT;
	log_max_priority = max_priority;
	if (format != LOG_FORMAT_JOURNAL) {
		log_format = format;
		return;
	}
	/* libsystemd drops entries without a word when the socket is missing
	 * (a container, a run by hand): text on stderr is better than nothing. */
	r = log_journal_probe(LOG_JOURNAL_SOCKET);
	if (r >= 0) {
		log_format = LOG_FORMAT_JOURNAL;
		journal_fallback_warned = false;
		return;
	}
	log_format = LOG_FORMAT_TEXT;
	if (!journal_fallback_warned) {
		journal_fallback_warned = true;
		log_warning_errno(r, "log: no journal at '%s', logging text to stderr instead", LOG_JOURNAL_SOCKET);
	}
}

enum log_format log_get_format(void)
{
	return log_format;
}

int log_get_max_priority(void)
{
	return log_max_priority;
}

int log_parse_format(const char *s, enum log_format *ret)
{
	for (size_t i = 0; i < ELEMENTSOF(format_names); i++)
		if (strcmp(s, format_names[i]) == 0) {
			*ret = (enum log_format)i;
			return 0;
		}
	return -EINVAL;
}

const char *log_format_to_string(enum log_format format)
{
	return (size_t)format < ELEMENTSOF(format_names) ? format_names[format] : "?";
}

int log_parse_level(const char *s, int *ret)
{
	for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
		if (strcmp(s, level_names[i]) == 0) {
			*ret = (int)i;
			return 0;
		}
	if (strcmp(s, "err") == 0) {
		*ret = LOG_ERR;
		return 0;
	}
	return -EINVAL;
}

const char *log_level_to_string(int priority)
{
	return priority >= 0 && (size_t)priority < ELEMENTSOF(level_names) ? level_names[priority] : "?";
}

char *log_format_timestamp(char *buf, size_t n, uint64_t wall_usec)
{
	return format_rfc3339_frac(buf, n, wall_usec, 3);
}

static void emit_text(int priority, const char *event_id, const char *hook, const char *msg)
{
	char line[LOG_LINE_MAX], ts[LOG_TIMESTAMP_MAX];
	const char *level = level_names[priority];
	size_t len;
	int k;

	(void)log_format_timestamp(ts, sizeof(ts), now_usec(CLOCK_REALTIME));
	if (hook)
		k = snprintf(line, sizeof(line), "%s spot-agent: %s: [%s %s] %s", ts, level,
			     event_id ? event_id : "-", hook, msg);
	else if (event_id)
		k = snprintf(line, sizeof(line), "%s spot-agent: %s: [%s] %s", ts, level, event_id, msg);
	else
		k = snprintf(line, sizeof(line), "%s spot-agent: %s: %s", ts, level, msg);
	if (k < 0)
		return;
	/* One record, one line, written at once: a cut line still ends. */
	len = (size_t)k < sizeof(line) - 1 ? (size_t)k : sizeof(line) - 2;
	for (size_t i = 0; i < len; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[len++] = '\n';
	(void)fwrite(line, 1, len, stderr);
}

/* cJSON writes a string's bytes as they are: what is not UTF-8 (a hook's
 * output, a file name) becomes U+FFFD first, as in /v1/status, so that
 * every line is JSON a strict parser takes. */
static void add_text(cJSON *o, const char *key, const char *s)
{
	char text[LOG_MESSAGE_MAX * 3 / 2];

	(void)utf8_copy(text, sizeof(text), s);
	cJSON_AddStringToObject(o, key, text);
}

/* A record's catalogue id and extra fields (log_emit_fields). */
struct log_extra {
	const char *message_id;
	const char *const *fields;
};

static void emit_json(int priority, const char *event_id, const char *hook, const char *msg,
		      const struct log_extra *x)
{
	char ts[LOG_TIMESTAMP_MAX], key[64];
	cJSON *o = cJSON_CreateObject();
	char *line;

	cJSON_AddStringToObject(o, "time", log_format_timestamp(ts, sizeof(ts), now_usec(CLOCK_REALTIME)));
	cJSON_AddStringToObject(o, "level", level_names[priority]);
	if (event_id)
		add_text(o, "event_id", event_id);
	if (hook)
		add_text(o, "hook", hook);
	if (x && x->message_id)
		cJSON_AddStringToObject(o, "message_id", x->message_id);
	for (size_t i = 0; x && x->fields && x->fields[i]; i++) {
		const char *eq = strchr(x->fields[i], '=');
		size_t n = eq ? (size_t)(eq - x->fields[i]) : 0;

		if (n == 0 || n >= sizeof(key))
			continue;
		for (size_t k = 0; k < n; k++)
			key[k] = (char)tolower((unsigned char)x->fields[i][k]);
		key[n] = '\0';
		add_text(o, key, eq + 1);
	}
	add_text(o, "message", msg);
	line = cJSON_PrintUnformatted(o);
	if (line)
		fprintf(stderr, "%s\n", line);
	else
		emit_text(priority, event_id, hook, msg);
	cJSON_free(line);
	cJSON_Delete(o);
}

/* The journal's native fields of a catalogued record, at most this many
 * beside MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, MESSAGE_ID, SPOT_EVENT_ID
 * and SPOT_HOOK. */
#define LOG_FIELDS_MAX 16

static int emit_journal_fields(int priority, const char *event_id, const char *hook, const char *msg,
			       const struct log_extra *x)
{
	char prio[16], *m = NULL, *mid = NULL, *eid = NULL, *h = NULL;
	struct iovec iov[6 + LOG_FIELDS_MAX];
	size_t n = 0;
	int r;

	m = xasprintf("MESSAGE=%s", msg);
	(void)snprintf(prio, sizeof(prio), "PRIORITY=%d", priority);
	iov[n++] = (struct iovec){ m, strlen(m) };
	iov[n++] = (struct iovec){ prio, strlen(prio) };
	iov[n++] = (struct iovec){ (char *)"SYSLOG_IDENTIFIER=spot-agent", strlen("SYSLOG_IDENTIFIER=spot-agent") };
	if (x->message_id) {
		mid = xasprintf("MESSAGE_ID=%s", x->message_id);
		iov[n++] = (struct iovec){ mid, strlen(mid) };
	}
	if (event_id) {
		eid = xasprintf("SPOT_EVENT_ID=%s", event_id);
		iov[n++] = (struct iovec){ eid, strlen(eid) };
	}
	if (hook) {
		h = xasprintf("SPOT_HOOK=%s", hook);
		iov[n++] = (struct iovec){ h, strlen(h) };
	}
	for (size_t i = 0; x->fields && x->fields[i] && i < LOG_FIELDS_MAX; i++)
		iov[n++] = (struct iovec){ (char *)x->fields[i], strlen(x->fields[i]) };
	r = sd_journal_sendv(iov, (int)n);
	free(m);
	free(mid);
	free(eid);
	free(h);
	return r;
}

static void emit_journal(int priority, const char *event_id, const char *hook, const char *msg,
			 const struct log_extra *x)
{
	int r;

	if (x) {
		if (emit_journal_fields(priority, event_id, hook, msg, x) < 0)
			emit_text(priority, event_id, hook, msg);
		return;
	}

	if (event_id && hook)
		r = sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority,
				    "SYSLOG_IDENTIFIER=spot-agent", "SPOT_EVENT_ID=%s", event_id,
				    "SPOT_HOOK=%s", hook, NULL);
	else if (event_id)
		r = sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority,
				    "SYSLOG_IDENTIFIER=spot-agent", "SPOT_EVENT_ID=%s", event_id, NULL);
	else if (hook)
		r = sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority,
				    "SYSLOG_IDENTIFIER=spot-agent", "SPOT_HOOK=%s", hook, NULL);
	else
		r = sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", priority,
				    "SYSLOG_IDENTIFIER=spot-agent", NULL);
	if (r < 0)
		emit_text(priority, event_id, hook, msg);
}

static int emitv(int priority, int error, const char *event_id, const char *hook, const struct log_extra *x,
		 const char *fmt, va_list ap) _printf_(6, 0);
static int emitv(int priority, int error, const char *event_id, const char *hook, const struct log_extra *x,
		 const char *fmt, va_list ap)
{
	char msg[LOG_MESSAGE_MAX];
	int saved_errno = errno;
	int n;

	if (priority > log_max_priority)
		return error;
	if (priority < 0 || priority > LOG_DEBUG)
		priority = LOG_ERR;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		msg[0] = '\0';
	if (error != 0 && n >= 0 && (size_t)n < sizeof(msg))
		(void)snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(error < 0 ? -error : error));

	switch (log_format) {
	case LOG_FORMAT_JSON:
		emit_json(priority, event_id, hook, msg, x);
		break;
	case LOG_FORMAT_JOURNAL:
		emit_journal(priority, event_id, hook, msg, x);
		break;
	default:
		emit_text(priority, event_id, hook, msg);
		break;
	}
	errno = saved_errno;
	return error;
}

int log_emit(int priority, int error, const char *event_id, const char *hook, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = emitv(priority, error, event_id, hook, NULL, fmt, ap);
	va_end(ap);
	return r;
}

int log_emit_fields(int priority, const char *message_id, const char *event_id, const char *hook,
		    const char *const *fields, const char *fmt, ...)
{
	struct log_extra x = { message_id, fields };
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = emitv(priority, 0, event_id, hook, &x, fmt, ap);
	va_end(ap);
	return r;
}
