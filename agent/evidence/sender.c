/* sender.c - the remote-write sender: one request at a time in the
 * evidence slot, oldest batch first, started from an idle-priority timer
 * so that it always follows the hook start or approval it accompanies.
 * A send the receiver may take later (5xx, 429, a timeout, a refused
 * connection) is kept and retried with a capped, jittered backoff; one it
 * refuses for good (another 4xx: "out of bounds", say) is dropped with one
 * log line naming the reason. It never blocks, and never logs a secret. */
#include "evidence/sender.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "evidence/remote-write.h"
#include "log.h"
#include "util.h"

/* A URL as logged: a config URL (at most 1024 bytes) and a little. */
#define URL_LOG_MAX 1100

struct evidence_sender {
	sd_event *event;
	struct imds *imds;             /* borrowed */
	char *url;
	char *authorization;           /* header line or NULL; a secret */
	struct evidence_queue queue;
	bool in_flight;                /* the first batch is being sent */
	unsigned failures;             /* in a row, for the backoff */
	sd_event_source *timer;        /* the next send (now, or after a backoff) */
	bool timer_armed;
	void (*queue_changed)(void *userdata);
	void *userdata;
};

uint64_t evidence_backoff_usec(unsigned failures, uint64_t random)
{
	uint64_t step = EVIDENCE_RETRY_FIRST_USEC;

	for (unsigned i = 1; i < failures && step < EVIDENCE_RETRY_MAX_USEC; i++)
		step *= 2;
	if (step > EVIDENCE_RETRY_MAX_USEC)
		step = EVIDENCE_RETRY_MAX_USEC;
	return step / 2 + random % (step / 2 + 1);
}

static uint64_t random_u64(void)
{
	uint64_t v = 0;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = now_usec(CLOCK_MONOTONIC) * UINT64_C(6364136223846793005);
	return v;
}

const char *evidence_url_for_log(const char *url, char *buf, size_t n)
{
	const char *scheme = strstr(url, "://");
	const char *host = scheme ? scheme + 3 : url;
	const char *at = strchr(host, '@');
	const char *slash = strchr(host, '/');

	if (at && (!slash || at < slash))
		(void)snprintf(buf, n, "%.*s%s", (int)(host - url), url, at + 1);
	else
		(void)snprintf(buf, n, "%s", url);
	return buf;
}

char *evidence_base64(const void *src, size_t n, bool url_alphabet)
{
	static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *a = url_alphabet ? url : std;
	const unsigned char *p = src;
	char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		*o++ = a[(v >> 18) & 63];
		*o++ = a[(v >> 12) & 63];
		*o++ = i + 1 < n ? a[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? a[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/* ---- credentials ---- */

/* Reads a small secret file; the last line break goes. */
static int read_secret(const char *path, char *buf, size_t n, char *why, size_t why_size)
{
	size_t len = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		(void)snprintf(why, why_size, "cannot open '%s': %s", path, strerror(-r));
		return r;
	}
	for (;;) {
		ssize_t k = read(fd, buf + len, n - 1 - len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			(void)snprintf(why, why_size, "cannot read '%s': %s", path, strerror(-r));
			goto out;
		}
		if (k == 0)
			break;
		len += (size_t)k;
		if (len == n - 1) {
			r = -EFBIG;
			(void)snprintf(why, why_size, "'%s' is larger than %zu bytes", path, n - 2);
			goto out;
		}
	}
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	if (len == 0 || memchr(buf, '\n', len) || memchr(buf, '\0', len) || memchr(buf, '\r', len)) {
		r = -EINVAL;
		(void)snprintf(why, why_size, "'%s' must hold one non-empty line", path);
	}
out:
	(void)close(fd);
	if (r < 0)
		explicit_bzero(buf, n);
	return r;
}

int evidence_authorization(const char *bearer_file, const char *basic_file, char **ret, char *why,
			   size_t why_size)
{
	char secret[EVIDENCE_SECRET_MAX + 2];
	char *b64;
	int r;

	*ret = NULL;
	if (bearer_file && bearer_file[0] && basic_file && basic_file[0]) {
		(void)snprintf(why, why_size, "set a bearer token file or a basic auth file, not both");
		return -EINVAL;
	}
	if (bearer_file && bearer_file[0]) {
		r = read_secret(bearer_file, secret, sizeof(secret), why, why_size);
		if (r < 0)
			return r;
		*ret = xasprintf("Authorization: Bearer %s", secret);
	} else if (basic_file && basic_file[0]) {
		r = read_secret(basic_file, secret, sizeof(secret), why, why_size);
		if (r < 0)
			return r;
		if (!strchr(secret, ':')) {
			explicit_bzero(secret, sizeof(secret));
			(void)snprintf(why, why_size, "'%s' must hold 'user:password'", basic_file);
			return -EINVAL;
		}
		b64 = evidence_base64(secret, strlen(secret), false);
		*ret = xasprintf("Authorization: Basic %s", b64);
		explicit_bzero(b64, strlen(b64));
		free(b64);
	}
	explicit_bzero(secret, sizeof(secret));
	return 0;
}

/* ---- sending ---- */

static void arm(struct evidence_sender *s, uint64_t at_mono_usec)
{
	int r = sd_event_source_set_time(s->timer, at_mono_usec);

	if (r >= 0)
		r = sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
	if (r < 0)
		log_warning_errno(r, "evidence: cannot arm the send timer, sending with the next batch");
	s->timer_armed = r >= 0;
}

static void changed(struct evidence_sender *s)
{
	if (s->queue_changed)
		s->queue_changed(s->userdata);
}

/* The first line of a receiver's answer, cut, for a log line. */
static void reason_of(const struct imds_reply *r, char *buf, size_t n)
{
	size_t len = r->body ? strcspn(r->body, "\r\n") : 0;

	if (len > 200)
		len = 200;
	if (len == 0)
		(void)snprintf(buf, n, "%s", r->error);
	else
		(void)snprintf(buf, n, "%s: %.*s", r->error, (int)len, r->body);
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = '?';
}

static void on_reply(const struct imds_reply *r, void *userdata)
{
	struct evidence_sender *s = userdata;
	uint64_t now = now_usec(CLOCK_MONOTONIC), wait;
	char reason[IMDS_ERROR_MAX + 256], url[URL_LOG_MAX];
	bool retry = r->result == IMDS_RESULT_THROTTLED || r->result == IMDS_RESULT_TIMEOUT ||
		     r->result == IMDS_RESULT_TRANSPORT ||
		     (r->result == IMDS_RESULT_HTTP_ERROR && r->status >= 500);

	s->in_flight = false;
	if (r->result == IMDS_RESULT_OK) {
		if (s->failures > 0)
			log_info("evidence: remote-write to '%s' works again after %u failed %s",
				 evidence_url_for_log(s->url, url, sizeof(url)), s->failures,
				 plural(s->failures, "send", "sends"));
		s->failures = 0;
		evidence_queue_pop(&s->queue);
		changed(s);
		if (s->queue.n > 0)
			arm(s, now);
		return;
	}
	reason_of(r, reason, sizeof(reason));
	if (!retry) {
		/* The receiver will never take this batch (bad labels, samples
		 * older than it accepts): retrying it would block the rest. */
		log_warning("evidence: remote-write to '%s' refused a batch of %zu %s for good (%s), dropping it",
			    evidence_url_for_log(s->url, url, sizeof(url)), s->queue.batches[0].n_series,
			    plural(s->queue.batches[0].n_series, "series", "series"), reason);
		s->failures = 0;
		evidence_queue_pop(&s->queue);
		changed(s);
		if (s->queue.n > 0)
			arm(s, now);
		return;
	}
	s->failures++;
	wait = evidence_backoff_usec(s->failures, random_u64());
	if (s->failures == 1)
		log_warning("evidence: remote-write to '%s' failed (%s), retrying in %.1f s; %zu %s queued",
			    evidence_url_for_log(s->url, url, sizeof(url)), reason, (double)wait / USEC_PER_SEC,
			    s->queue.n, plural(s->queue.n, "batch", "batches"));
	else
		log_debug("evidence: remote-write failed again (%s), retry %u in %.1f s", reason, s->failures,
			  (double)wait / USEC_PER_SEC);
	arm(s, now + wait);
}

static void send_first(struct evidence_sender *s)
{
	const char *headers[] = { EVIDENCE_RW_CONTENT_ENCODING, EVIDENCE_RW_CONTENT_TYPE, EVIDENCE_RW_VERSION,
				  s->authorization, NULL };
	struct imds_call call = {
		.method = "POST",
		.url = s->url,
		.headers = headers,
		.timeout_usec = EVIDENCE_SEND_TIMEOUT_USEC,
	};
	void *body = NULL;
	size_t len = 0;
	int r;

	if (s->in_flight || s->queue.n == 0)
		return;
	r = evidence_rw_encode(&s->queue.batches[0], &body, &len);
	if (r < 0) {
		log_warning_errno(r, "evidence: cannot encode a batch, dropping it");
		evidence_queue_pop(&s->queue);
		changed(s);
		if (s->queue.n > 0)
			arm(s, now_usec(CLOCK_MONOTONIC));
		return;
	}
	call.body = body;
	call.body_len = len;
	r = imds_call(s->imds, IMDS_SLOT_EVIDENCE, &call, on_reply, s);
	free(body);
	if (r < 0) {
		s->failures++;
		log_warning_errno(r, "evidence: cannot start a remote-write request, retrying");
		arm(s, now_usec(CLOCK_MONOTONIC) + evidence_backoff_usec(s->failures, random_u64()));
		return;
	}
	s->in_flight = true;
}

static int on_timer(sd_event_source *es, uint64_t usec, void *userdata)
{
	struct evidence_sender *s = userdata;

	s->timer_armed = false;
	send_first(s);
	return 0;
}

int evidence_sender_new(const struct evidence_sender_params *p, struct evidence_sender **ret)
{
	struct evidence_sender *s;
	int r;

	if (!p || !p->event || !p->imds || !p->url || !ret)
		return -EINVAL;
	s = xcalloc(1, sizeof(*s));
	s->event = sd_event_ref(p->event);
	s->imds = p->imds;
	s->url = xstrdup(p->url);
	s->authorization = p->authorization ? xstrdup(p->authorization) : NULL;
	s->queue_changed = p->queue_changed;
	s->userdata = p->userdata;
	r = sd_event_add_time(s->event, &s->timer, CLOCK_MONOTONIC, USEC_INFINITY, USEC_PER_MSEC, on_timer, s);
	if (r < 0) {
		evidence_sender_free(s);
		return r;
	}
	(void)sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(s->timer, "evidence");
	/* After everything else that is ready: a batch follows what it
	 * accompanies, and never goes before a poll, a hook or an approval. */
	(void)sd_event_source_set_priority(s->timer, SD_EVENT_PRIORITY_IDLE);
	*ret = s;
	return 0;
}

static void free_secret(char **p)
{
	if (*p) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

void evidence_sender_free(struct evidence_sender *s)
{
	if (!s)
		return;
	if (s->in_flight)
		imds_cancel(s->imds, IMDS_SLOT_EVIDENCE);
	sd_event_source_disable_unref(s->timer);
	evidence_queue_done(&s->queue);
	free(s->url);
	free_secret(&s->authorization);
	sd_event_unref(s->event);
	free(s);
}

void evidence_sender_set_target(struct evidence_sender *s, const char *url, const char *authorization)
{
	free(s->url);
	s->url = xstrdup(url);
	free_secret(&s->authorization);
	s->authorization = authorization ? xstrdup(authorization) : NULL;
}

void evidence_sender_kick(struct evidence_sender *s)
{
	if (!s->in_flight && !s->timer_armed && s->queue.n > 0)
		arm(s, now_usec(CLOCK_MONOTONIC));
}

void evidence_sender_add(struct evidence_sender *s, struct evidence_batch *b)
{
	size_t dropped = evidence_queue_push(&s->queue, b, s->in_flight);

	if (dropped > 0)
		log_warning("evidence: the remote-write queue is full, dropped the oldest %zu %s",
			    dropped, plural(dropped, "batch", "batches"));
	changed(s);
	evidence_sender_kick(s);
}

struct evidence_queue *evidence_sender_queue(struct evidence_sender *s)
{
	return &s->queue;
}

bool evidence_sender_busy(const struct evidence_sender *s)
{
	return s->in_flight || s->timer_armed;
}
