/* push.c - the Pushgateway client: renders the latest eviction's series in
 * the text format and PUTs them as one group per instance, or DELETEs the
 * group, one request at a time in its own slot. Only the newest wish
 * counts: a push waiting behind a request in flight is replaced by a newer
 * one. A failure it may retry is retried a few times with the sender's
 * backoff; it never holds up anything else. */
#include "evidence/push.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "evidence/sender.h"
#include "log.h"
#include "util.h"

/* ---- text ---- */

char *evidence_push_group_url(const char *base, const char *instance)
{
	bool plain = instance[0] != '\0';
	char *b64, *url;

	for (const char *c = instance; *c && plain; c++)
		plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
			*c == '.' || *c == '_' || *c == '~' || *c == '-';
	if (plain)
		return xasprintf("%s/metrics/job/%s/instance/%s", base, EVIDENCE_JOB, instance);
	b64 = evidence_base64(instance, strlen(instance), true);
	/* The Pushgateway reads "=" as the empty value's base64. */
	url = xasprintf("%s/metrics/job/%s/instance@base64/%s", base, EVIDENCE_JOB, b64[0] ? b64 : "=");
	free(b64);
	return url;
}

struct text {
	char *buf;
	size_t len, cap;
};

static void put(struct text *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->buf = xrealloc(t->buf, t->cap);
	}
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

static void puts_(struct text *t, const char *s)
{
	put(t, s, strlen(s));
}

static void put_escaped(struct text *t, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			puts_(t, "\\\\");
		else if (*s == '"')
			puts_(t, "\\\"");
		else if (*s == '\n')
			puts_(t, "\\n");
		else
			put(t, s, 1);
	}
}

/* The shortest form that reads back the same double. */
static void put_value(struct text *t, double v)
{
	char buf[32];

	(void)snprintf(buf, sizeof(buf), "%.15g", v);
	if (strtod(buf, NULL) != v)
		(void)snprintf(buf, sizeof(buf), "%.17g", v);
	puts_(t, buf);
}

char *evidence_push_text(const struct evidence_batch *b)
{
	struct text t = { 0 };
	bool *done = xcalloc(b->n_series + 1, sizeof(bool));

	puts_(&t, "");
	/* Grouped by metric, in the order each first appears. */
	for (size_t i = 0; i < b->n_series; i++) {
		const char *name = evidence_series_label(&b->series[i], "__name__");

		if (done[i] || !name)
			continue;
		puts_(&t, "# TYPE ");
		puts_(&t, name);
		puts_(&t, " gauge\n");
		for (size_t j = i; j < b->n_series; j++) {
			const struct evidence_series *s = &b->series[j];
			const char *n = evidence_series_label(s, "__name__");
			bool first = true;

			if (done[j] || !n || strcmp(n, name) != 0)
				continue;
			done[j] = true;
			puts_(&t, name);
			for (size_t k = 0; k < s->n_labels; k++) {
				const char *ln = s->labels[k].name;

				if (strcmp(ln, "__name__") == 0 || strcmp(ln, "job") == 0 || strcmp(ln, "instance") == 0)
					continue;
				puts_(&t, first ? "{" : ",");
				first = false;
				puts_(&t, ln);
				puts_(&t, "=\"");
				put_escaped(&t, s->labels[k].value);
				puts_(&t, "\"");
			}
			puts_(&t, first ? " " : "} ");
			put_value(&t, s->value);
			puts_(&t, "\n");
		}
	}
	free(done);
	return t.buf;
}

/* ---- requests ---- */

struct push_req {
	bool set;
	bool del;           /* DELETE, else PUT */
	char *url;
	char *body;
};

struct evidence_push {
	sd_event *event;
	struct imds *imds;
	char *url;
	struct push_req current;   /* in flight or waiting for its retry */
	struct push_req next;      /* wished while current was under way */
	bool in_flight;
	unsigned tries;
	sd_event_source *timer;
};

static void req_clear(struct push_req *q)
{
	free(q->url);
	free(q->body);
	*q = (struct push_req){ 0 };
}

static void start(struct evidence_push *p);

static void arm(struct evidence_push *p, uint64_t at)
{
	if (sd_event_source_set_time(p->timer, at) < 0 ||
	    sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT) < 0)
		log_warning("evidence: cannot arm the Pushgateway timer, the push waits for the next one");
}

static void take_next(struct evidence_push *p)
{
	req_clear(&p->current);
	p->tries = 0;
	if (p->next.set) {
		p->current = p->next;
		p->next = (struct push_req){ 0 };
		arm(p, now_usec(CLOCK_MONOTONIC));
	}
}

static void on_reply(const struct imds_reply *r, void *userdata)
{
	struct evidence_push *p = userdata;
	bool retry = r->result == IMDS_RESULT_THROTTLED || r->result == IMDS_RESULT_TIMEOUT ||
		     r->result == IMDS_RESULT_TRANSPORT ||
		     (r->result == IMDS_RESULT_HTTP_ERROR && r->status >= 500);
	uint64_t v = 0;

	p->in_flight = false;
	if (r->result == IMDS_RESULT_OK || (!retry && p->current.del && r->status == 404)) {
		take_next(p);
		return;
	}
	if (retry && !p->next.set && p->tries < EVIDENCE_PUSH_TRIES) {
		if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
			v = now_usec(CLOCK_MONOTONIC);
		arm(p, now_usec(CLOCK_MONOTONIC) + evidence_backoff_usec(p->tries, v));
		return;
	}
	{
		size_t n = r->body ? strcspn(r->body, "\r\n") : 0;

		log_warning("evidence: Pushgateway %s of '%s' failed (%s%s%.*s), %s",
			    p->current.del ? "DELETE" : "PUT", p->current.url, r->error, n ? ": " : "",
			    (int)(n < 200 ? n : 200), r->body ? r->body : "",
			    p->next.set ? "sending the newer one" : "giving up");
	}
	take_next(p);
}

static void start(struct evidence_push *p)
{
	static const char *const text_headers[] = { "Content-Type: text/plain; version=0.0.4", NULL };
	struct imds_call call = {
		.method = p->current.del ? "DELETE" : "PUT",
		.url = p->current.url,
		.headers = p->current.del ? NULL : text_headers,
		.body = p->current.body,
		.body_len = p->current.body ? strlen(p->current.body) : 0,
		.timeout_usec = EVIDENCE_SEND_TIMEOUT_USEC,
	};
	int r;

	if (p->in_flight || !p->current.set)
		return;
	p->tries++;
	r = imds_call(p->imds, IMDS_SLOT_PUSH, &call, on_reply, p);
	if (r < 0) {
		log_warning_errno(r, "evidence: cannot send to the Pushgateway, giving up on this push");
		take_next(p);
		return;
	}
	p->in_flight = true;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	start(userdata);
	return 0;
}

static void wish(struct evidence_push *p, bool del, const char *instance, char *body)
{
	struct push_req q = { .set = true, .del = del, .url = evidence_push_group_url(p->url, instance),
			      .body = body };

	if (p->current.set) {
		req_clear(&p->next);
		p->next = q;
		/* Waiting for a retry: the newer wish goes at once. */
		if (!p->in_flight)
			take_next(p);
		return;
	}
	p->current = q;
	p->tries = 0;
	/* From the loop, after what the push accompanies. */
	arm(p, now_usec(CLOCK_MONOTONIC));
}

int evidence_push_new(sd_event *e, struct imds *imds, const char *url, struct evidence_push **ret)
{
	struct evidence_push *p = xcalloc(1, sizeof(*p));
	int r;

	p->event = sd_event_ref(e);
	p->imds = imds;
	p->url = xstrdup(url);
	r = sd_event_add_time(e, &p->timer, CLOCK_MONOTONIC, USEC_INFINITY, USEC_PER_MSEC, on_timer, p);
	if (r < 0) {
		evidence_push_free(p);
		return r;
	}
	(void)sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
	(void)sd_event_source_set_priority(p->timer, SD_EVENT_PRIORITY_IDLE);
	(void)sd_event_source_set_description(p->timer, "push");
	*ret = p;
	return 0;
}

void evidence_push_free(struct evidence_push *p)
{
	if (!p)
		return;
	if (p->in_flight)
		imds_cancel(p->imds, IMDS_SLOT_PUSH);
	sd_event_source_disable_unref(p->timer);
	req_clear(&p->current);
	req_clear(&p->next);
	free(p->url);
	sd_event_unref(p->event);
	free(p);
}

void evidence_push_set_url(struct evidence_push *p, const char *url)
{
	free(p->url);
	p->url = xstrdup(url);
}

void evidence_push_put(struct evidence_push *p, const char *instance, const struct evidence_batch *b)
{
	if (b->n_series > 0)
		wish(p, false, instance, evidence_push_text(b));
}

void evidence_push_delete(struct evidence_push *p, const char *instance)
{
	wish(p, true, instance, NULL);
}
