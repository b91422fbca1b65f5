/* log.h - leveled logging to the journal, or text/JSON lines on stderr. */
#ifndef SPOT_LOG_H
#define SPOT_LOG_H

#include <syslog.h>

#include "util.h"

/* Where journald listens for native entries; libsystemd sends there and
 * drops an entry without a word when nothing is bound to it. */
#define LOG_JOURNAL_SOCKET "/run/systemd/journal/socket"
/* "2026-12-01T11:48:54.123Z" and its NUL, with room to spare. */
#define LOG_TIMESTAMP_MAX 32

enum log_format {
	LOG_FORMAT_AUTO,    /* journal under systemd, else text */
	LOG_FORMAT_TEXT,
	LOG_FORMAT_JSON,
	LOG_FORMAT_JOURNAL,
};

/* Chooses the back end and the most verbose syslog priority still shown.
 * AUTO is the journal when stderr is the stream systemd connected to it
 * (JOURNAL_STREAM names stderr's device and inode), else text. The journal
 * is used only when LOG_JOURNAL_SOCKET takes datagrams; without it the
 * records go to stderr as text, after one warning line (once, until the
 * journal is found again by a later call). */
void log_setup(enum log_format format, int max_priority);
int log_get_max_priority(void);
/* The back end in use: never AUTO, and TEXT after a journal fallback. */
enum log_format log_get_format(void);

int log_parse_format(const char *s, enum log_format *ret);
const char *log_format_to_string(enum log_format format);
int log_parse_level(const char *s, int *ret);
const char *log_level_to_string(int priority);

/* Formats a wall-clock time as RFC 3339 in UTC with milliseconds
 * ("2026-12-01T11:48:54.123Z"; the fraction is cut, not rounded) into buf
 * of n bytes (LOG_TIMESTAMP_MAX is enough). Returns buf; "" when it does
 * not fit. */
char *log_format_timestamp(char *buf, size_t n, uint64_t wall_usec);

/* Whether a datagram socket can connect to the journal socket at path:
 * 0 when it can, else -errno (-ENOENT when there is no socket, or
 * -ECONNREFUSED when nothing is bound to it any more). */
int log_journal_probe(const char *path);

/* Emits one record. event_id and hook may be NULL; they become the journal
 * fields SPOT_EVENT_ID and SPOT_HOOK (and keys of a JSON line). When error is
 * nonzero (a negative errno), its description is appended. Returns error, so
 * callers can write `return log_errno(r, ...)`. A text or JSON record is
 * one line: a line break in the message becomes a space (text) or "\n"
 * (JSON). */
int log_emit(int priority, int error, const char *event_id, const char *hook,
	     const char *fmt, ...) _printf_(5, 6);

/* The same as a catalogued record: message_id (32 hex digits, NULL for
 * none) and fields, a NULL-terminated list of "NAME=value" journal fields
 * (NAME in [A-Z0-9_], not starting with '_'; NULL for none). The journal
 * gets MESSAGE_ID and each field as it is; a JSON line gets "message_id"
 * and each field under its name in lower case, as a string; a text line
 * is the same line as log_emit's. */
int log_emit_fields(int priority, const char *message_id, const char *event_id, const char *hook,
		    const char *const *fields, const char *fmt, ...) _printf_(6, 7);

/* The noun that goes with a count: plural(n, "hook", "hooks"). */
static inline const char *plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

#define log_debug(...)   log_emit(LOG_DEBUG, 0, NULL, NULL, __VA_ARGS__)
#define log_info(...)    log_emit(LOG_INFO, 0, NULL, NULL, __VA_ARGS__)
#define log_notice(...)  log_emit(LOG_NOTICE, 0, NULL, NULL, __VA_ARGS__)
#define log_warning(...) log_emit(LOG_WARNING, 0, NULL, NULL, __VA_ARGS__)
#define log_error(...)   log_emit(LOG_ERR, 0, NULL, NULL, __VA_ARGS__)
#define log_errno(r, ...)         log_emit(LOG_ERR, (r), NULL, NULL, __VA_ARGS__)
#define log_warning_errno(r, ...) log_emit(LOG_WARNING, (r), NULL, NULL, __VA_ARGS__)
#define log_event(prio, id, ...)  log_emit((prio), 0, (id), NULL, __VA_ARGS__)
#define log_hook(prio, id, hook, ...) log_emit((prio), 0, (id), (hook), __VA_ARGS__)

#endif
