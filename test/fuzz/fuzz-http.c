/* fuzz-http.c - libFuzzer target for the local HTTP endpoint: the real
 * server (http_server_new, libmicrohttpd on an sd-event loop) on a loopback
 * port, fed each input as the bytes of one client connection. The first
 * input byte picks the agent's state (bit 0: polls failing for long, bits
 * 1-2: the eviction's lifecycle, closed, detected, running or done before
 * its NotBefore, which the engine shows as the phase idle, pending, running
 * or done); the rest is sent as is, then the client half-closes and
 * reads until the server closes. Nothing may crash, hang or leak a
 * connection (the server has HTTP_CONNECTIONS_MAX slots, so a leak soon
 * hangs a later input, which the guard timer reports). The first answer
 * must be what the route table decides for the first request line:
 * 414 for a long target, 405 for another method than GET and HEAD, 413 for
 * an announced body, else the route's answer (/readyz 503 exactly while an
 * eviction is handled, /healthz 503 exactly while polls fail, /v1/status
 * JSON that parses and shows that phase and readiness, 404 for anything
 * else); answers libmicrohttpd makes
 * itself (a malformed request) are errors, never 2xx. */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "fuzz-util.h"
#include "http/http.h"
#include "log.h"
#include "http/metrics.h"
#include "http/status.h"
#include "engine/engine.h"
#include "engine/record.h"
#include "util.h"

#define RESPONSE_MAX   (256 * 1024)   /* more than any answer of the agent */
#define GUARD_SEC      10             /* an input not done by then is a hang */

static sd_event *loop;
static struct http_server *server;
static struct agent_state state;
static struct records records;
static struct engine engine;
/* The lifecycle bits 1-2 of the state byte give the eviction, and the
 * phase /v1/status shows for it. */
static const enum lifecycle lifecycles[4] = { LC_CLOSED, LC_DETECTED, LC_RUNNING, LC_DONE };
static const char *const phases[4] = { "idle", "pending", "running", "done" };
static unsigned phase_bits;
static struct metrics *metrics;
static struct sockaddr_in server_addr;

/* One input's client connection. */
struct client {
	const uint8_t *data;
	size_t size, sent;
	char *response;
	size_t len;
	bool shut;       /* the client has half-closed */
	bool done;
	bool hung;
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct engine_config cfg = { .margin_usec = 2 * USEC_PER_SEC, .events_mask = ~0u, .approve = true };
	struct eviction rec;
	struct notice *n;
	int port;

	log_setup(LOG_FORMAT_TEXT, LOG_ERR);
	fuzz_assert(sd_event_new(&loop) >= 0);
	agent_state_init(&state);
	state.provider = xstrdup("azure");
	state.vm_name = xstrdup("vm-fuzz");
	records_init(&records);
	eviction_init(&rec);
	(void)strscpy(rec.id, sizeof(rec.id), "6B2F6E4A-1C2D-4E5F-8A9B-0C1D2E3F4A5B");
	rec.state = LC_CLOSED;
	rec.detected_wall_usec = UINT64_C(1795761030000000);
	rec.deadline_wall_usec = UINT64_C(1795761058000000);
	rec.notices = xcalloc(1, sizeof(*rec.notices));
	rec.n_notices = 1;
	n = &rec.notices[0];
	notice_init(n);
	(void)strscpy(n->ev.id, sizeof(n->ev.id), rec.id);
	n->ev.type = EVENT_PREEMPT;
	n->ev.status = EVENT_SCHEDULED;
	n->ev.provider = PROVIDER_AZURE;
	/* NotBefore in 2199: done, it is not over. */
	n->ev.not_before_usec = JSON_TIME_MAX_USEC;
	n->deadline_wall_usec = rec.deadline_wall_usec;
	fuzz_assert(event_add_resource(&n->ev, "vm-fuzz") == 0);
	(void)records_add(&records, &rec);
	/* The engine reads the eviction's lifecycle as set_state leaves it. */
	engine_init(&engine, &cfg, &records);
	engine_start(&engine, now_usec(CLOCK_REALTIME));
	state.records = &records;
	state.engine = &engine;
	metrics = metrics_new();
	metrics_imds_request(metrics, IMDS_RESULT_OK, 1000);
	fuzz_assert(http_server_new(loop, "127.0.0.1:0", &state, metrics, "fuzz", &server) == 0);
	port = http_server_port(server);
	fuzz_assert(port > 0);
	server_addr.sin_family = AF_INET;
	server_addr.sin_port = htons((uint16_t)port);
	server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return 0;
}

/* The state byte: bit 0 polls failing for long, bits 1-2 the lifecycle. */
static void set_state(uint8_t b)
{
	phase_bits = (b >> 1) & 3;
	records.items[0].state = lifecycles[phase_bits];
	if (b & 1) {
		state.poll.consecutive_failures = 3;
		state.poll.first_failure_mono_usec = 1;   /* long before now */
		(void)strscpy(state.poll.last_error, sizeof(state.poll.last_error),
			      "scheduledevents: timeout\n\x01 after 2 s");
	} else {
		state.poll.consecutive_failures = 0;
		state.poll.first_failure_mono_usec = 0;
		state.poll.last_error[0] = '\0';
	}
}

static int on_client(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct client *c = userdata;
	ssize_t k;

	if ((revents & EPOLLOUT) && c->sent < c->size) {
		k = send(fd, c->data + c->sent, c->size - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k > 0)
			c->sent += (size_t)k;
		else if (k < 0 && errno != EAGAIN && errno != EINTR)
			c->sent = c->size;   /* the server hung up: read what it said */
		if (c->sent == c->size)
			fuzz_assert(sd_event_source_set_io_events(s, EPOLLIN) >= 0);
	}
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		char buf[16384];

		k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (k > 0) {
			fuzz_assert(c->len + (size_t)k <= RESPONSE_MAX);
			memcpy(c->response + c->len, buf, (size_t)k);
			c->len += (size_t)k;
		} else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
			c->done = true;
		}
	}
	return 0;
}

static int on_guard(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct client *c = userdata;

	c->hung = true;
	return 0;
}

/* ---- the model: what the first answer must be ---- */

struct request {
	char method[16];
	char target[HTTP_URL_MAX + 2];   /* cut one past the limit */
	size_t target_len;               /* uncut */
	bool plain;                      /* the model knows the answer */
	bool body;                       /* Content-Length other than "0", or Transfer-Encoding */
	unsigned n_length;               /* Content-Length headers */
};

/* A header line's value as libmicrohttpd keeps it: without the blanks
 * around it. */
static void header_value(const char *p, const char *end, char *buf, size_t n)
{
	size_t k;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	k = (size_t)(end - p) < n - 1 ? (size_t)(end - p) : n - 1;
	memcpy(buf, p, k);
	buf[k] = '\0';
}

/* Reads the first request: "METHOD SP TARGET SP HTTP/1.x CRLF", then CRLF-
 * ended header lines "Name: value" up to an empty line. plain is false for
 * anything the model leaves to libmicrohttpd (other line ends, folded
 * lines, escapes or a query in the target, headers it may refuse). */
static void parse_request(const char *p, size_t n, struct request *rq)
{
	const char *end = p + n, *sp, *eol;
	size_t k;

	memset(rq, 0, sizeof(*rq));
	sp = memchr(p, ' ', n);
	if (!sp || sp == p || (size_t)(sp - p) >= sizeof(rq->method))
		return;
	memcpy(rq->method, p, (size_t)(sp - p));
	for (const char *q = p; q < sp; q++)
		if (*q < 'A' || *q > 'Z')
			return;
	p = sp + 1;
	eol = NULL;
	for (const char *q = p; q + 1 < end; q++)
		if (q[0] == '\r' && q[1] == '\n') {
			eol = q;
			break;
		}
	if (!eol)
		return;
	sp = memchr(p, ' ', (size_t)(eol - p));
	if (!sp || sp == p || (size_t)(eol - sp - 1) != 8 ||
	    (memcmp(sp + 1, "HTTP/1.1", 8) != 0 && memcmp(sp + 1, "HTTP/1.0", 8) != 0))
		return;
	rq->target_len = (size_t)(sp - p);
	k = rq->target_len < sizeof(rq->target) - 1 ? rq->target_len : sizeof(rq->target) - 1;
	memcpy(rq->target, p, k);
	rq->target[k] = '\0';
	for (const char *q = p; q < sp; q++)
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f || *q == '%' || *q == '?' ||
		    *q == '#')
			return;
	if (rq->target[0] != '/')
		return;

	for (p = eol + 2;;) {
		const char *colon;
		char value[64];

		eol = NULL;
		for (const char *q = p; q + 1 < end; q++)
			if (q[0] == '\r' && q[1] == '\n') {
				eol = q;
				break;
			}
		if (!eol)
			return;   /* incomplete: libmicrohttpd's to answer, or not */
		if (eol == p)
			break;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p || *p == ' ' || *p == '\t')
			return;
		for (const char *q = p; q < eol; q++)
			if ((unsigned char)*q < 0x20 || *q == 0x7f || (unsigned char)*q >= 0x80 ||
			    (q < colon && (*q == ' ' || *q == '\t')))
				return;
		header_value(colon + 1, eol, value, sizeof(value));
		if ((size_t)(colon - p) == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
			/* libmicrohttpd checks the number itself (400 when bad). */
			for (const char *v = value; *v; v++)
				if (*v < '0' || *v > '9')
					return;
			if (!value[0] || strlen(value) > 10)
				return;
			if (strcmp(value, "0") != 0)
				rq->body = true;
			rq->n_length++;
		}
		if ((size_t)(colon - p) == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
			if (strcasecmp(value, "chunked") != 0)
				return;
			rq->body = true;
		}
		if ((size_t)(colon - p) == 6 && strncasecmp(p, "Expect", 6) == 0)
			return;
		p = eol + 2;
	}
	rq->plain = true;
}

/* The status the route table gives rq, with the agent in its current state. */
static unsigned expected_status(const struct request *rq)
{
	if (rq->target_len > HTTP_URL_MAX)
		return 414;
	if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "HEAD") != 0)
		return 405;
	if (rq->body)
		return 413;
	if (strcmp(rq->target, "/healthz") == 0)
		return state.poll.consecutive_failures > 0 ? 503 : 200;
	if (strcmp(rq->target, "/readyz") == 0)
		return lifecycles[phase_bits] == LC_CLOSED ? 200 : 503;
	if (strcmp(rq->target, "/v1/status") == 0 || strcmp(rq->target, "/metrics") == 0)
		return 200;
	return 404;
}

/* The value of header name in the head [p, end), or NULL. */
static const char *find_header(const char *p, const char *end, const char *name, size_t *ret_len)
{
	size_t n = strlen(name);

	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);

		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > n + 1 && strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1;

			while (v < eol && *v == ' ')
				v++;
			*ret_len = (size_t)(eol - v);
			return v;
		}
		p = eol + 2;
	}
	return NULL;
}

static void check_response(const struct client *c, const char *req, size_t req_len)
{
	const char *p = c->response, *end = p + c->len, *head_end, *v;
	struct request rq;
	unsigned status;
	size_t n;
	bool ours;

	/* Interim 1xx answers first, if any. */
	for (;;) {
		if (c->len == 0)
			return;   /* closed without an answer: a malformed request */
		fuzz_assert((size_t)(end - p) >= 13);
		fuzz_assert(memcmp(p, "HTTP/1.1 ", 9) == 0 || memcmp(p, "HTTP/1.0 ", 9) == 0);
		fuzz_assert(p[9] >= '1' && p[9] <= '5' && p[10] >= '0' && p[10] <= '9' &&
			    p[11] >= '0' && p[11] <= '9' && p[12] == ' ');
		status = (unsigned)((p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0'));
		head_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		fuzz_assert(head_end);
		if (status >= 200)
			break;
		p = head_end + 4;
		if (p == end)
			return;
	}
	head_end += 2;
	/* The agent's answers, and only they, carry these. */
	ours = find_header(p, head_end, "X-Content-Type-Options", &n) != NULL;
	if (ours) {
		v = find_header(p, head_end, "Cache-Control", &n);
		fuzz_assert(v && n == 8 && memcmp(v, "no-store", 8) == 0);
	} else {
		fuzz_assert(status >= 400);
	}

	parse_request(req, req_len, &rq);
	if (ours && rq.plain)
		fuzz_assert(status == expected_status(&rq));
	if (ours && status == 405) {
		v = find_header(p, head_end, "Allow", &n);
		fuzz_assert(v && n == 9 && memcmp(v, "GET, HEAD", 9) == 0);
	}
	if (ours && rq.plain && status == 200 && strcmp(rq.method, "GET") == 0 &&
	    strcmp(rq.target, "/v1/status") == 0) {
		const char *body = head_end + 2, *phase;
		cJSON *j;

		v = find_header(p, head_end, "Content-Length", &n);
		fuzz_assert(v);
		n = strtoul(v, NULL, 10);
		fuzz_assert((size_t)(end - body) >= n);
		j = cJSON_ParseWithLength(body, n);
		fuzz_assert(cJSON_IsObject(j));
		phase = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "state"));
		fuzz_assert(phase && strcmp(phase, phases[phase_bits]) == 0);
		fuzz_assert(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(j, "ready")));
		fuzz_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ready")) ==
			    (lifecycles[phase_bits] == LC_CLOSED));
		cJSON_Delete(j);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct client c = { 0 };
	sd_event_source *io = NULL, *guard = NULL;
	int fd;

	if (size < 1)
		return 0;
	set_state(data[0]);
	c.data = data + 1;
	c.size = size - 1;
	c.response = xmalloc(RESPONSE_MAX);

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	fuzz_assert(fd >= 0);
	fuzz_assert(connect(fd, (struct sockaddr *)&server_addr, sizeof(server_addr)) == 0 ||
		    errno == EINPROGRESS);
	fuzz_assert(sd_event_add_io(loop, &io, fd, c.size ? EPOLLOUT | EPOLLIN : EPOLLIN,
				    on_client, &c) >= 0);
	fuzz_assert(sd_event_add_time(loop, &guard, CLOCK_MONOTONIC,
				      now_usec(CLOCK_MONOTONIC) + GUARD_SEC * USEC_PER_SEC,
				      0, on_guard, &c) >= 0);
	/* The half-close waits until the server has read everything: its
	 * epoll set is edge-triggered, and an end of stream that arrives with
	 * the last bytes of an incomplete request is only noticed when the
	 * connection times out. */
	while (!c.done && !c.hung) {
		bool sent = c.sent == c.size;
		int r = sd_event_run(loop, sent && !c.shut ? 0 : UINT64_MAX);

		fuzz_assert(r >= 0);
		if (r == 0 && sent && !c.shut) {
			(void)shutdown(fd, SHUT_WR);
			c.shut = true;
		}
	}
	fuzz_assert(!c.hung);
	sd_event_source_disable_unref(io);
	sd_event_source_disable_unref(guard);
	close(fd);

	check_response(&c, (const char *)c.data, c.size);
	free(c.response);
	return 0;
}
