/* output.c - a hook's output as log lines: bytes from its stdout and its
 * stderr cut into lines (at HOOK_LINE_MAX at the latest), control
 * characters made harmless, each line logged tagged with the hook and the
 * event (stdout at info, stderr at warning) and kept in the result's ring,
 * the log bounded per hook. A script's errors name the hook rather than
 * /dev/fd/3. It never reads a descriptor itself: run.c feeds it what it
 * read. */
#include "hooks/output.h"

#include <limits.h>
#include <string.h>

#include "log.h"

/* The name the kernel gives a script executed by descriptor (spawn.c puts
 * the checked file on 3): its interpreter sees it as $0 and reports errors
 * under it. */
#define SCRIPT_FD_NAME "/dev/fd/3"

void hook_output_init(struct hook_output *o, struct hook_result *res, const char *event_id,
		      const char *path, bool script)
{
	memset(o, 0, sizeof(*o));
	o->res = res;
	o->event_id = event_id;
	o->path = path;
	o->out.priority = LOG_INFO;
	o->err.priority = LOG_WARNING;
	o->err.names_fd = script && path && path[0];
}

/* line with every SCRIPT_FD_NAME that stands alone (not "/dev/fd/30", not
 * "/dev/fd/3/x") replaced by the hook's path, into buf. */
static const char *name_the_hook(const struct hook_output *o, const char *line, char *buf, size_t n)
{
	const size_t flen = strlen(SCRIPT_FD_NAME);
	const char *p = line, *hit;
	size_t len = 0;
	bool replaced = false;

	while ((hit = strstr(p, SCRIPT_FD_NAME))) {
		char next = hit[flen];
		size_t pre = (size_t)(hit - p);

		if ((next >= '0' && next <= '9') || next == '/') {
			pre += flen;
			if (len + pre >= n)
				break;
			memcpy(buf + len, p, pre);
			len += pre;
			p = hit + flen;
			continue;
		}
		if (len + pre + strlen(o->path) >= n)
			break;
		memcpy(buf + len, p, pre);
		len += pre;
		memcpy(buf + len, o->path, strlen(o->path));
		len += strlen(o->path);
		p = hit + flen;
		replaced = true;
	}
	if (!replaced)
		return line;
	(void)strscpy(buf + len, n - len, p);
	return buf;
}

/* Bytes below 0x20 other than tab become '?', so a hook cannot forge log
 * records or terminal escapes. Empty lines are dropped. */
static void emit_line(struct hook_output *o, struct hook_output_stream *s, char *line, size_t len)
{
	struct hook_result *r = o->res;
	char named[HOOK_LINE_MAX + 4 * PATH_MAX];
	const char *text;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return;
	line[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			line[i] = '?';
	text = s->names_fd ? name_the_hook(o, line, named, sizeof(named)) : line;
	if (o->logged_bytes < HOOK_LOG_BYTES_MAX) {
		log_hook(s->priority, o->event_id, r->name, "%s", text);
		o->logged_bytes += len + 1;
	} else if (!o->drop_noted) {
		log_hook(LOG_WARNING, o->event_id, r->name,
			 "hook '%s' wrote more than %d KiB, further output is counted but not logged",
			 r->name, HOOK_LOG_BYTES_MAX / 1024);
		o->drop_noted = true;
	}
	hook_result_add_line(r, text);
}

void hook_output_feed(struct hook_output *o, struct hook_output_stream *s, const char *buf, size_t n)
{
	o->res->output_bytes += n;
	while (n > 0) {
		const char *nl = memchr(buf, '\n', n);
		size_t take = nl ? (size_t)(nl - buf) : n;
		size_t room = HOOK_LINE_MAX - s->line_len;

		if (take > room)
			take = room;
		memcpy(s->line + s->line_len, buf, take);
		s->line_len += take;
		buf += take;
		n -= take;
		if (n > 0 && *buf == '\n') {
			buf++;
			n--;
			emit_line(o, s, s->line, s->line_len);
			s->line_len = 0;
		} else if (s->line_len == HOOK_LINE_MAX) {
			emit_line(o, s, s->line, s->line_len);
			s->line_len = 0;
		}
	}
}

void hook_output_flush(struct hook_output *o, struct hook_output_stream *s)
{
	if (s->line_len > 0)
		emit_line(o, s, s->line, s->line_len);
	s->line_len = 0;
}
