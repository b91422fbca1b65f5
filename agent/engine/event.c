/* event.c - the normalised eviction event: names of its enums, NotBefore
 * parsing, deadline arithmetic and its JSON form. Everything here is pure:
 * no I/O, no logging, no clock reads (callers pass "now"), and nothing
 * depends on the process locale or TZ, so the parsers can be fuzzed alone.
 * What enters an event is bounded here (times, text), so whatever the
 * agent holds it can write and read back. */
#include "engine/event.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base.h"

static const char *const type_names[_EVENT_TYPE_MAX] = {
	[EVENT_PREEMPT] = "Preempt",
	[EVENT_TERMINATE] = "Terminate",
	[EVENT_REBOOT] = "Reboot",
	[EVENT_REDEPLOY] = "Redeploy",
	[EVENT_FREEZE] = "Freeze",
	[EVENT_SHUTDOWN] = "Shutdown",
};

static const char *const status_names[_EVENT_STATUS_MAX] = {
	[EVENT_SCHEDULED] = "Scheduled",
	[EVENT_STARTED] = "Started",
};

static const char *const provider_names[_PROVIDER_MAX] = {
	[PROVIDER_AZURE] = "azure",
	[PROVIDER_AWS] = "aws",
	[PROVIDER_GCP] = "gcp",
	[PROVIDER_AUTO] = "auto",
};

void event_init(struct spot_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = EVENT_TYPE_INVALID;
	ev->status = EVENT_STATUS_INVALID;
	ev->duration_sec = -1;
	ev->provider = PROVIDER_AZURE;
}

void event_done(struct spot_event *ev)
{
	if (!ev)
		return;
	free(ev->resources);
	event_init(ev);
}

void event_copy(struct spot_event *dst, const struct spot_event *src)
{
	if (dst == src)
		return;
	free(dst->resources);
	*dst = *src;
	dst->resources = NULL;
	if (src->n_resources > 0) {
		dst->resources = xcalloc(src->n_resources, sizeof(*dst->resources));
		memcpy(dst->resources, src->resources, src->n_resources * sizeof(*dst->resources));
	}
}

void event_list_done(struct event_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n_events; i++)
		event_done(&l->events[i]);
	free(l->events);
	l->events = NULL;
	l->n_events = 0;
}

const char *event_type_to_string(enum event_type t)
{
	if (t < 0 || t >= _EVENT_TYPE_MAX)
		return NULL;
	return type_names[t];
}

enum event_type event_type_from_string(const char *s)
{
	if (s)
		for (int i = 0; i < _EVENT_TYPE_MAX; i++)
			if (strcmp(s, type_names[i]) == 0)
				return (enum event_type)i;
	return EVENT_TYPE_INVALID;
}

const char *event_status_to_string(enum event_status s)
{
	if (s < 0 || s >= _EVENT_STATUS_MAX)
		return NULL;
	return status_names[s];
}

enum event_status event_status_from_string(const char *s)
{
	if (s)
		for (int i = 0; i < _EVENT_STATUS_MAX; i++)
			if (strcmp(s, status_names[i]) == 0)
				return (enum event_status)i;
	return EVENT_STATUS_INVALID;
}

static const char *const feed_names[_EVENT_FEED_MAX] = {
	[FEED_AZURE_SCHEDULED] = "azure-scheduled-events",
	[FEED_AWS_SPOT] = "aws-spot",
	[FEED_AWS_LIFECYCLE] = "aws-lifecycle",
	[FEED_AWS_MAINTENANCE] = "aws-maintenance",
	[FEED_GCP_PREEMPTED] = "gcp-preempted",
	[FEED_GCP_MAINTENANCE] = "gcp-maintenance",
	[FEED_OS] = "os",
};

const char *event_feed_to_string(enum event_feed f)
{
	if ((int)f < 0 || f >= _EVENT_FEED_MAX)
		return NULL;
	return feed_names[f];
}

const char *provider_to_string(enum provider p)
{
	if ((int)p < 0 || p >= _PROVIDER_MAX)
		return NULL;
	return provider_names[p];
}

int provider_from_string(const char *s, enum provider *ret)
{
	if (s)
		for (int i = 0; i < _PROVIDER_MAX; i++)
			if (strcmp(s, provider_names[i]) == 0) {
				*ret = (enum provider)i;
				return 0;
			}
	return -EINVAL;
}

/* ASCII only: the C library's case functions follow LC_CTYPE, and a Turkish
 * locale must not change which VM an event names. */
static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool ascii_case_equal(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (ascii_lower(*a) != ascii_lower(*b))
			return false;
	return *a == *b;
}

static bool ascii_case_prefix(const char *s, const char *prefix)
{
	for (; *prefix; s++, prefix++)
		if (ascii_lower(*s) != ascii_lower(*prefix))
			return false;
	return true;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Reads between min_digits and max_digits decimal digits (no sign); when
 * more digits follow, only if run_on. */
static bool read_number(const char **p, int min_digits, int max_digits, bool run_on, int *ret)
{
	const char *s = *p;
	int v = 0, n = 0;

	while (n < max_digits && is_digit(s[n])) {
		v = v * 10 + (s[n] - '0');
		n++;
	}
	if (n < min_digits || (!run_on && is_digit(s[n])))
		return false;
	*p = s + n;
	*ret = v;
	return true;
}

static bool read_digits(const char **p, int min_digits, int max_digits, int *ret)
{
	return read_number(p, min_digits, max_digits, false, ret);
}

static bool read_char(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Leap years in [1, y]. */
static int64_t leaps_through(int64_t y)
{
	return y / 4 - y / 100 + y / 400;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian, y >= 1970). */
static int64_t days_since_epoch(int y, int m, int d)
{
	static const int before_month[12] = { 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334 };
	int64_t days;

	days = (int64_t)(y - 1970) * 365 + leaps_through(y - 1) - leaps_through(1969);
	days += before_month[m - 1] + (m > 2 && is_leap(y) ? 1 : 0);
	return days + d - 1;
}

struct civil_time {
	int year, month, day, hour, minute, second;
	int frac_usec;
	int offset_sec;    /* local time minus UTC */
};

static int civil_to_usec(const struct civil_time *t, uint64_t *ret)
{
	int64_t secs;

	if (t->month < 1 || t->month > 12 || t->day < 1 ||
	    t->day > days_in_month(t->year, t->month) || t->hour > 23 || t->minute > 59 ||
	    t->second > 59)
		return -EINVAL;
	if (t->year < 1970)
		return -ERANGE;   /* days_since_epoch counts from 1970 on */
	secs = days_since_epoch(t->year, t->month, t->day) * 86400 +
	       t->hour * 3600 + t->minute * 60 + t->second - t->offset_sec;
	/* Before the epoch, or past what the agent's JSON holds exactly. */
	if (secs < 0 || secs >= JSON_TIME_END_SEC)
		return -ERANGE;
	*ret = (uint64_t)secs * USEC_PER_SEC + (uint64_t)t->frac_usec;
	return 0;
}

/* "+hhmm" or, when colon, "+hh:mm" (the colon then optional). */
static bool read_offset(const char **p, bool colon, int *ret)
{
	int sign, hh, mm;

	if (**p == '+')
		sign = 1;
	else if (**p == '-')
		sign = -1;
	else
		return false;
	(*p)++;
	if (!read_number(p, 2, 2, true, &hh))
		return false;
	if (colon)
		(void)read_char(p, ':');
	if (!read_digits(p, 2, 2, &mm) || hh > 23 || mm > 59)
		return false;
	*ret = sign * (hh * 3600 + mm * 60);
	return true;
}

static bool read_clock(const char **p, struct civil_time *t)
{
	return read_digits(p, 2, 2, &t->hour) && read_char(p, ':') &&
	       read_digits(p, 2, 2, &t->minute) && read_char(p, ':') &&
	       read_digits(p, 2, 2, &t->second);
}

/* [Www, ]D[D] Mon YYYY HH:MM:SS (GMT|UTC|+hhmm) */
static int parse_rfc1123(const char *s, struct civil_time *t)
{
	static const char *const wdays[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	const char *p = s;

	if (!is_digit(*p)) {
		bool found = false;

		for (size_t i = 0; i < ELEMENTSOF(wdays) && !found; i++)
			found = ascii_case_prefix(p, wdays[i]);
		if (!found)
			return -EINVAL;
		p += 3;
		if (!read_char(&p, ',') || !read_char(&p, ' '))
			return -EINVAL;
	}
	if (!read_digits(&p, 1, 2, &t->day) || !read_char(&p, ' '))
		return -EINVAL;
	t->month = 0;
	for (size_t i = 0; i < ELEMENTSOF(months); i++)
		if (ascii_case_prefix(p, months[i])) {
			t->month = (int)i + 1;
			break;
		}
	if (t->month == 0)
		return -EINVAL;
	p += 3;
	if (!read_char(&p, ' ') || !read_digits(&p, 4, 4, &t->year) || !read_char(&p, ' ') ||
	    !read_clock(&p, t) || !read_char(&p, ' '))
		return -EINVAL;
	if (ascii_case_equal(p, "GMT") || ascii_case_equal(p, "UTC"))
		return 0;
	if (!read_offset(&p, false, &t->offset_sec) || *p != '\0')
		return -EINVAL;
	return 0;
}

/* YYYY-MM-DD(T|t| )HH:MM:SS[.f{1,9}](Z|z|+hh:mm|+hhmm) */
static int parse_iso8601(const char *s, struct civil_time *t)
{
	const char *p = s;

	if (!read_digits(&p, 4, 4, &t->year) || !read_char(&p, '-') ||
	    !read_digits(&p, 2, 2, &t->month) || !read_char(&p, '-') ||
	    !read_digits(&p, 2, 2, &t->day))
		return -EINVAL;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -EINVAL;
	p++;
	if (!read_clock(&p, t))
		return -EINVAL;
	if (read_char(&p, '.')) {
		int n = 0;

		for (; is_digit(*p); p++, n++) {
			if (n >= 9)
				return -EINVAL;
			if (n < 6)
				t->frac_usec = t->frac_usec * 10 + (*p - '0');
		}
		if (n == 0)
			return -EINVAL;
		for (; n < 6; n++)
			t->frac_usec *= 10;
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (!read_offset(&p, true, &t->offset_sec))
		return -EINVAL;
	return *p == '\0' ? 0 : -EINVAL;
}

int event_parse_time(const char *s, uint64_t *ret_wall_usec)
{
	struct civil_time t = { 0 };
	uint64_t usec;
	int r;

	if (!s)
		return -EINVAL;
	if (*s == '\0') {
		*ret_wall_usec = 0;
		return 0;
	}
	/* Only ISO 8601 starts with four digits and a dash. */
	if (is_digit(s[0]) && is_digit(s[1]) && is_digit(s[2]) && is_digit(s[3]) && s[4] == '-')
		r = parse_iso8601(s, &t);
	else
		r = parse_rfc1123(s, &t);
	if (r < 0)
		return r;
	r = civil_to_usec(&t, &usec);
	if (r < 0)
		return r;
	*ret_wall_usec = usec;
	return 0;
}

char *event_format_time(char *buf, size_t n, uint64_t wall_usec)
{
	if (wall_usec == 0) {
		if (n > 0)
			buf[0] = '\0';
		return buf;
	}
	return format_rfc3339_frac(buf, n, wall_usec, RFC3339_FRAC_TRIM);
}

bool event_names_resource(const struct spot_event *ev, const char *vm_name)
{
	if (!ev || !vm_name || vm_name[0] == '\0')
		return false;
	for (size_t i = 0; i < ev->n_resources; i++)
		if (ascii_case_equal(ev->resources[i], vm_name))
			return true;
	return false;
}

uint64_t event_margin_deadline(uint64_t not_before_usec, uint64_t now_wall_usec, uint64_t margin_usec)
{
	uint64_t left = not_before_usec > now_wall_usec ? not_before_usec - now_wall_usec : 0;

	/* Less notice than the margin: the hooks may use all of it. */
	if (left <= margin_usec)
		return not_before_usec;
	/* Less than twice the margin: the margin's length for the hooks, the
	 * rest kept; else a notice just over the margin would leave them
	 * nothing. */
	if (left - margin_usec < margin_usec)
		return now_wall_usec + margin_usec;
	return not_before_usec - margin_usec;
}

uint64_t event_deadline(const struct spot_event *ev, uint64_t now_wall_usec,
			uint64_t margin_usec, bool *ret_emergency)
{
	uint64_t budget = (uint64_t)EVENT_EMERGENCY_BUDGET_SEC * USEC_PER_SEC;
	uint64_t deadline;
	bool emergency = true;

	if (ev->status == EVENT_STARTED || ev->not_before_usec == 0 || now_wall_usec >= ev->not_before_usec) {
		/* The platform may act any moment: a short budget beats none. */
		deadline = now_wall_usec > UINT64_MAX - budget ? UINT64_MAX : now_wall_usec + budget;
	} else {
		deadline = event_margin_deadline(ev->not_before_usec, now_wall_usec, margin_usec);
		emergency = ev->not_before_usec - now_wall_usec <= margin_usec;
	}
	if (ret_emergency)
		*ret_emergency = emergency;
	return deadline;
}

bool event_id_valid(const char *id)
{
	size_t n;

	if (!id)
		return false;
	n = strnlen(id, EVENT_ID_MAX);
	if (n == 0 || n >= EVENT_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
			return false;
	return utf8_valid(id);
}

void event_set_text(char *dst, size_t n, const char *src)
{
	(void)utf8_copy(dst, n, src);
}

int event_add_resource(struct spot_event *ev, const char *name)
{
	size_t n = strnlen(name, EVENT_RESOURCE_MAX);

	if (n == 0 || n >= EVENT_RESOURCE_MAX)
		return -EINVAL;
	if (ev->n_resources >= EVENT_RESOURCES_MAX)
		return -E2BIG;
	ev->resources = xrealloc(ev->resources, (ev->n_resources + 1) * sizeof(*ev->resources));
	event_set_text(ev->resources[ev->n_resources], EVENT_RESOURCE_MAX, name);
	ev->n_resources++;
	return 0;
}

void event_set_note(struct spot_event *ev, const char *fmt, ...)
{
	char raw[EVENT_NOTE_MAX];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	/* One log line: nothing the service sent may break it. */
	for (char *p = raw; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	event_set_text(ev->note, sizeof(ev->note), raw);
}

bool event_equal(const struct spot_event *a, const struct spot_event *b)
{
	if (strcmp(a->id, b->id) != 0 || a->type != b->type || a->status != b->status ||
	    strcmp(a->source, b->source) != 0 || a->not_before_usec != b->not_before_usec ||
	    strcmp(a->description, b->description) != 0 || a->duration_sec != b->duration_sec ||
	    a->provider != b->provider || a->n_resources != b->n_resources)
		return false;
	for (size_t i = 0; i < a->n_resources; i++)
		if (strcmp(a->resources[i], b->resources[i]) != 0)
			return false;
	return true;
}

/* The fields of the event document, in the order they are written. */
