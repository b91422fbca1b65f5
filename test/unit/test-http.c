/* test-http.c - the HTTP endpoint on a real sd-event loop. The parent runs
 * the loop with the server; a forked child makes the requests (libcurl or
 * raw sockets) and reports through its exit status, so the loop is never
 * blocked by the client. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "http/http.h"
#include "http/metrics.h"
#include "http/status.h"
#include "record-util.h"
#include "util.h"

#define VERSION "9.9.9"
#define CHILD_GUARD_USEC (90 * USEC_PER_SEC)  /* a hung child fails the test */
#define EVENT_ID "602d9444-d2cd-49c7-8624-8643e7171297"

struct fixture {
	sd_event *e;
	struct agent_state s;
	struct records recs;          /* s.records */
	struct engine engine;         /* s.engine once an eviction is set */
	bool has_engine;
	struct metrics *m;
	struct http_server *h;
	int port;
	const char *host;     /* URL host part */
};

/* ---- child side: no cmocka here, a failed check exits non-zero ---- */

#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond)) {                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,   \
				__LINE__, #cond);                                \
			return 1;                                                \
		}                                                                \
	} while (0)

struct reply {
	long status;
	char body[256 * 1024];
	size_t len;
	char headers[8192];
	size_t hlen;
};

static size_t on_body(char *p, size_t size, size_t n, void *userdata)
{
	struct reply *r = userdata;
	size_t k = size * n;

	if (k > sizeof(r->body) - 1 - r->len)
		return 0;
	memcpy(r->body + r->len, p, k);
	r->len += k;
	r->body[r->len] = '\0';
	return k;
}

static size_t on_header(char *p, size_t size, size_t n, void *userdata)
{
	struct reply *r = userdata;
	size_t k = size * n;

	if (k > sizeof(r->headers) - 1 - r->hlen)
		return 0;
	memcpy(r->headers + r->hlen, p, k);
	r->hlen += k;
	r->headers[r->hlen] = '\0';
	return k;
}

/* Returns the curl result; *r gets status, body and headers. */
static int request(const struct fixture *f, const char *method, const char *path,
		   const char *body, size_t body_len, struct reply *r)
{
	char url[32 * 1024];
	CURL *c = curl_easy_init();
	CURLcode rc;

	if (!c)
		return -1;
	memset(r, 0, sizeof(*r));
	(void)snprintf(url, sizeof(url), "http://%s:%d%s", f->host, f->port, path);
	(void)curl_easy_setopt(c, CURLOPT_URL, url);
	(void)curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	(void)curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	(void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	(void)curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	(void)curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	(void)curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	if (strcmp(method, "HEAD") == 0)
		(void)curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0 || body)
		(void)curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		(void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		(void)curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
	}
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		fprintf(stderr, "%s %.60s: %s\n", method, path, curl_easy_strerror(rc));
	(void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(c);
	return (int)rc;
}

static bool has_header(const struct reply *r, const char *line)
{
	const char *p = r->headers;
	size_t n = strlen(line);

	while ((p = strcasestr(p, line))) {
		if (p > r->headers && p[-1] == '\n' && p[n] == '\r')
			return true;
		p++;
	}
	return false;
}

static int get_ok(const struct fixture *f, const char *path, const char *type, struct reply *r)
{
	char ct[128];

	CHECK(request(f, "GET", path, NULL, 0, r) == CURLE_OK);
	CHECK(r->status == 200);
	(void)snprintf(ct, sizeof(ct), "Content-Type: %s", type);
	CHECK(has_header(r, ct));
	CHECK(has_header(r, "Cache-Control: no-store"));
	return 0;
}

static int head_ok(const struct fixture *f, const char *path, long status)
{
	struct reply *r = xcalloc(1, sizeof(*r));
	int ok;

	ok = request(f, "HEAD", path, NULL, 0, r) == CURLE_OK && r->status == status &&
	     r->len == 0 && strcasestr(r->headers, "Content-Length: ") &&
	     has_header(r, "Cache-Control: no-store");
	if (!ok)
		fprintf(stderr, "HEAD %s: status %ld, %zu body bytes\n%s", path, r->status, r->len,
			r->headers);
	free(r);
	return ok ? 0 : 1;
}

static const char *const near_misses[] = {
	"/healthz%00.json", "/healthz%00", "/%68ealthz", "/healthz%2F", "/healthz.json",
	"/healthzz", "/HEALTHZ", "//healthz", "/healthz;x", "/v1/status%00", "/v1//status",
	"/metrics/", "/readyz%20",
};

static int client_routes(const struct fixture *f)
{
	struct reply *r = xcalloc(1, sizeof(*r));
	cJSON *j;

	CHECK(get_ok(f, "/healthz", "text/plain; charset=utf-8", r) == 0);
	CHECK(strcmp(r->body, "ok\n") == 0);
	CHECK(head_ok(f, "/healthz", 200) == 0);

	CHECK(get_ok(f, "/readyz", "text/plain; charset=utf-8", r) == 0);
	CHECK(strcmp(r->body, "ready\n") == 0);
	CHECK(head_ok(f, "/readyz", 200) == 0);

	CHECK(get_ok(f, "/v1/status", "application/json", r) == 0);
	CHECK(r->len > 0 && r->body[r->len - 1] == '\n');
	j = cJSON_ParseWithLength(r->body, r->len);
	CHECK(j);
	CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "version")), VERSION) == 0);
	CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "state")), "idle") == 0);
	CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "provider")), "azure") == 0);
	cJSON_Delete(j);
	CHECK(head_ok(f, "/v1/status", 200) == 0);

	CHECK(get_ok(f, "/metrics", "text/plain; version=0.0.4; charset=utf-8", r) == 0);
	CHECK(strstr(r->body, "\nspot_agent_build_info{version=\"" VERSION "\",provider=\"azure\"} 1\n"));
	CHECK(strstr(r->body, "\nspot_agent_eviction_pending 0\n"));
	CHECK(head_ok(f, "/metrics", 200) == 0);

	/* A query string does not change the route, whatever it holds. */
	CHECK(get_ok(f, "/healthz?verbose=1", "text/plain; charset=utf-8", r) == 0);
	CHECK(get_ok(f, "/healthz?x=%00&y", "text/plain; charset=utf-8", r) == 0);

	/* Paths match byte for byte: an escaped NUL, an escaped letter, a
	 * suffix or a different case is no route. */
	for (size_t i = 0; i < ELEMENTSOF(near_misses); i++) {
		CHECK(request(f, "GET", near_misses[i], NULL, 0, r) == CURLE_OK);
		if (r->status != 404)
			fprintf(stderr, "GET %s: %ld\n", near_misses[i], r->status);
		CHECK(r->status == 404);
		CHECK(strcmp(r->body, "not found\n") == 0);
	}

	CHECK(request(f, "GET", "/nope", NULL, 0, r) == CURLE_OK);
	CHECK(r->status == 404);
	CHECK(has_header(r, "Cache-Control: no-store"));
	CHECK(request(f, "GET", "/", NULL, 0, r) == CURLE_OK);
	CHECK(r->status == 404);
	CHECK(request(f, "GET", "/healthz/", NULL, 0, r) == CURLE_OK);
	CHECK(r->status == 404);
	CHECK(head_ok(f, "/nope", 404) == 0);
	free(r);
	return 0;
}

/* The public face: bodies of what is refused are those of an unknown path. */
static int public_hidden(const struct fixture *f, const char *path, struct reply *r)
{
	char unknown[sizeof(r->body)];

	CHECK(request(f, "GET", "/nope", NULL, 0, r) == CURLE_OK);
	CHECK(r->status == 404);
	memcpy(unknown, r->body, r->len + 1);
	CHECK(request(f, "GET", path, NULL, 0, r) == CURLE_OK);
	CHECK(r->status == 404);
	CHECK(strcmp(r->body, unknown) == 0);
	CHECK(head_ok(f, path, 404) == 0);
	return 0;
}

static int client_public_probes(const struct fixture *f)
{
	struct reply *r = xcalloc(1, sizeof(*r));

	CHECK(get_ok(f, "/healthz", "text/plain; charset=utf-8", r) == 0);
	CHECK(strcmp(r->body, "ok\n") == 0);
	CHECK(head_ok(f, "/healthz", 200) == 0);
	CHECK(get_ok(f, "/readyz", "text/plain; charset=utf-8", r) == 0);
	CHECK(strcmp(r->body, "ready\n") == 0);
	CHECK(head_ok(f, "/readyz", 200) == 0);
	/* Other methods answer as on the private face: nothing told apart. */
	CHECK(request(f, "POST", "/v1/status", NULL, 0, r) == CURLE_OK);
	CHECK(r->status == 405);
	free(r);
	return 0;
}

static int client_public_closed(const struct fixture *f)
{
	struct reply *r = xcalloc(1, sizeof(*r));

	CHECK(client_public_probes(f) == 0);
	CHECK(public_hidden(f, "/v1/status", r) == 0);
	CHECK(public_hidden(f, "/metrics", r) == 0);
	CHECK(public_hidden(f, "/v1/status?x=1", r) == 0);
	free(r);
	return 0;
}

static int client_public_metrics(const struct fixture *f)
{
	struct reply *r = xcalloc(1, sizeof(*r));

	CHECK(client_public_probes(f) == 0);
	CHECK(get_ok(f, "/metrics", "text/plain; version=0.0.4; charset=utf-8", r) == 0);
	CHECK(strstr(r->body, "\nspot_agent_eviction_pending 0\n"));
	CHECK(public_hidden(f, "/v1/status", r) == 0);
	free(r);
	return 0;
}

static int client_public_all(const struct fixture *f)
{
	struct reply *r = xcalloc(1, sizeof(*r));

	CHECK(client_public_probes(f) == 0);
	CHECK(get_ok(f, "/metrics", "text/plain; version=0.0.4; charset=utf-8", r) == 0);
	CHECK(get_ok(f, "/v1/status", "application/json", r) == 0);
	CHECK(strstr(r->body, "\"" VERSION "\""));
	free(r);
	return 0;
}

static int client_public_status(const struct fixture *f)
{
	struct reply *r = xcalloc(1, sizeof(*r));

	CHECK(client_public_probes(f) == 0);
	CHECK(get_ok(f, "/v1/status", "application/json", r) == 0);
	CHECK(public_hidden(f, "/metrics", r) == 0);
	free(r);
	return 0;
}

static int client_methods(const struct fixture *f)
{
	static const char *const methods[] = { "POST", "PUT", "DELETE", "PATCH", "OPTIONS" };
	struct reply *r = xcalloc(1, sizeof(*r));
	size_t big_len = 100 * 1024;
	char *big = xmalloc(big_len);

	memset(big, 'x', big_len);
	for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
		CHECK(request(f, methods[i], "/healthz", NULL, 0, r) == CURLE_OK);
		CHECK(r->status == 405);
		CHECK(has_header(r, "Allow: GET, HEAD"));
		CHECK(request(f, methods[i], "/nope", NULL, 0, r) == CURLE_OK);
		CHECK(r->status == 405);
	}
	/* Bodies are refused without being read. */
	CHECK(request(f, "POST", "/healthz", "a=1", 3, r) == CURLE_OK);
	CHECK(r->status == 405);
	CHECK(has_header(r, "Allow: GET, HEAD"));
	CHECK(request(f, "POST", "/v1/status", big, big_len, r) == CURLE_OK);
	CHECK(r->status == 405);
	CHECK(request(f, "GET", "/healthz", "a=1", 3, r) == CURLE_OK);
	CHECK(r->status == 413);
	CHECK(request(f, "GET", "/metrics", big, big_len, r) == CURLE_OK);
	CHECK(r->status == 413);
	/* And the server goes on. */
	CHECK(get_ok(f, "/healthz", "text/plain; charset=utf-8", r) == 0);
	free(big);
	free(r);
	return 0;
}

static int client_long_url(const struct fixture *f)
{
	struct reply *r = xcalloc(1, sizeof(*r));
	char *path = xmalloc(20 * 1024 + 1);
	int rc;

	/* Longer than the connection's memory: refused by libmicrohttpd. */
	path[0] = '/';
	memset(path + 1, 'a', 20 * 1024 - 1);
	path[20 * 1024] = '\0';
	rc = request(f, "GET", path, NULL, 0, r);
	CHECK(rc == CURLE_OK);
	CHECK(r->status == 414 || r->status == 400);

	/* Longer than HTTP_URL_MAX but within memory: refused by us. */
	path[HTTP_URL_MAX + 10] = '\0';
	CHECK(request(f, "GET", path, NULL, 0, r) == CURLE_OK);
	CHECK(r->status == 414);
	memcpy(path, "/healthz?", 9);
	CHECK(request(f, "GET", path, NULL, 0, r) == CURLE_OK);
	CHECK(r->status == 414);

	/* The next request is served. */
	CHECK(get_ok(f, "/healthz", "text/plain; charset=utf-8", r) == 0);
	CHECK(strcmp(r->body, "ok\n") == 0);
	free(path);
	free(r);
	return 0;
}

static int client_big_header(const struct fixture *f)
{
	struct reply *r = xcalloc(1, sizeof(*r));
	struct curl_slist *hdrs = NULL;
	char *h = xmalloc(16 * 1024);
	char url[128];
	CURL *c;

	(void)snprintf(h, 16 * 1024, "X-Junk: ");
	memset(h + 8, 'j', 16 * 1024 - 9);
	h[16 * 1024 - 1] = '\0';
	hdrs = curl_slist_append(hdrs, h);
	(void)snprintf(url, sizeof(url), "http://%s:%d/healthz", f->host, f->port);
	c = curl_easy_init();
	CHECK(c);
	(void)curl_easy_setopt(c, CURLOPT_URL, url);
	(void)curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	(void)curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	(void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	(void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	(void)curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	CHECK(curl_easy_perform(c) == CURLE_OK);
	(void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	CHECK(r->status == 431 || r->status == 413 || r->status == 400);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);

	CHECK(get_ok(f, "/healthz", "text/plain; charset=utf-8", r) == 0);
	free(h);
	free(r);
	return 0;
}

/* The "state" /v1/status shows while evicting. */
static const char *evicting_phase = "pending";

static int client_evicting(const struct fixture *f)
{
	struct reply *r = xcalloc(1, sizeof(*r));
	cJSON *j;

	CHECK(request(f, "GET", "/readyz", NULL, 0, r) == CURLE_OK);
	CHECK(r->status == 503);
	CHECK(strcmp(r->body, "evicting: Preempt " EVENT_ID "\n") == 0);
	CHECK(has_header(r, "Cache-Control: no-store"));
	CHECK(head_ok(f, "/readyz", 503) == 0);
	/* Health is about polling, not about the eviction. */
	CHECK(get_ok(f, "/healthz", "text/plain; charset=utf-8", r) == 0);
	CHECK(get_ok(f, "/metrics", "text/plain; version=0.0.4; charset=utf-8", r) == 0);
	CHECK(strstr(r->body, "\nspot_agent_eviction_pending 1\n"));
	CHECK(!strstr(r->body, EVENT_ID));
	CHECK(get_ok(f, "/v1/status", "application/json", r) == 0);
	j = cJSON_ParseWithLength(r->body, r->len);
	CHECK(j);
	CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "state")), evicting_phase) == 0);
	CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "ready")));
	CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "id")), EVENT_ID) == 0);
	CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "event")));
	cJSON_Delete(j);
	free(r);
	return 0;
}

static int client_unhealthy(const struct fixture *f)
{
	struct reply *r = xcalloc(1, sizeof(*r));

	CHECK(request(f, "GET", "/healthz", NULL, 0, r) == CURLE_OK);
	CHECK(r->status == 503);
	CHECK(strncmp(r->body, "imds polls failing for 4", 24) == 0);
	CHECK(strstr(r->body, " s: HTTP 500 from imds\n"));
	CHECK(strchr(r->body, '\n') == r->body + r->len - 1);
	CHECK(head_ok(f, "/healthz", 503) == 0);
	CHECK(get_ok(f, "/metrics", "text/plain; version=0.0.4; charset=utf-8", r) == 0);
	CHECK(strstr(r->body, "\nspot_agent_imds_up 0\n"));
	/* Ready still: /readyz is about evictions. */
	CHECK(get_ok(f, "/readyz", "text/plain; charset=utf-8", r) == 0);
	free(r);
	return 0;
}

static int client_ready(const struct fixture *f)
{
	struct reply *r = xcalloc(1, sizeof(*r));
	cJSON *j;

	CHECK(get_ok(f, "/readyz", "text/plain; charset=utf-8", r) == 0);
	CHECK(strcmp(r->body, "ready\n") == 0);
	CHECK(get_ok(f, "/v1/status", "application/json", r) == 0);
	j = cJSON_ParseWithLength(r->body, r->len);
	CHECK(j);
	CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ready")));
	CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "state")), "idle") == 0);
	cJSON_Delete(j);
	CHECK(get_ok(f, "/metrics", "text/plain; version=0.0.4; charset=utf-8", r) == 0);
	CHECK(strstr(r->body, "\nspot_agent_eviction_pending 0\n"));
	free(r);
	return 0;
}

static int client_healthy(const struct fixture *f)
{
	struct reply *r = xcalloc(1, sizeof(*r));

	CHECK(get_ok(f, "/healthz", "text/plain; charset=utf-8", r) == 0);
	CHECK(strcmp(r->body, "ok\n") == 0);
	free(r);
	return 0;
}

/* Opens n connections to the server on 127.0.0.1 (the fixtures listen on
 * 127.0.0.1 or a wildcard), each sending head (may be NULL: idle). */
static int open_connections(const struct fixture *f, int *fds, size_t n, const char *head)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };

	sin.sin_port = htons((uint16_t)f->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (size_t i = 0; i < n; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CHECK(fds[i] >= 0);
		CHECK(connect(fds[i], (struct sockaddr *)&sin, sizeof(sin)) == 0);
		if (head)
			CHECK(send(fds[i], head, strlen(head), MSG_NOSIGNAL) == (ssize_t)strlen(head));
	}
	return 0;
}

static void close_all(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		(void)close(fds[i]);
}

/* Waits (up to 30 s) for the server to end the connection. */
static bool ended(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c;

	return poll(&pfd, 1, timeout_ms) == 1 && recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

/* The client's own descriptors: as many as the hard limit allows. */
static int raise_nofile(void)
{
	struct rlimit rl;

	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	rl.rlim_cur = rl.rlim_max;
	CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	return 0;
}

#define FLOOD_IDLE 1000
#define FLOOD_SLOW 20
#define SLOW_HEAD "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "

/* A thousand connections that say nothing and some that send half a
 * request head, all open at once: well within the connection limit, none is
 * shed and the probes are answered behind them. */
static int client_idle_flood(const struct fixture *f)
{
	struct reply *r = xcalloc(1, sizeof(*r));
	int *idle = xcalloc(FLOOD_IDLE, sizeof(int)), slow[FLOOD_SLOW];

	CHECK(raise_nofile() == 0);
	CHECK(open_connections(f, idle, FLOOD_IDLE, NULL) == 0);
	CHECK(open_connections(f, slow, FLOOD_SLOW, SLOW_HEAD) == 0);
	CHECK(get_ok(f, "/healthz", "text/plain; charset=utf-8", r) == 0);
	CHECK(strcmp(r->body, "ok\n") == 0);
	CHECK(get_ok(f, "/readyz", "text/plain; charset=utf-8", r) == 0);
	CHECK(strcmp(r->body, "ready\n") == 0);
	/* Nothing had to go to make room. */
	CHECK(!ended(idle[0], 0));
	CHECK(!ended(slow[0], 0));
	close_all(idle, FLOOD_IDLE);
	close_all(slow, FLOOD_SLOW);
	CHECK(get_ok(f, "/healthz", "text/plain; charset=utf-8", r) == 0);
	free(idle);
	free(r);
	return 0;
}

/* The shedding test's server gets room for this many connections. */
#define SHED_LIMIT 128
#define SHED_SLOW 4
#define SHED_IDLE (3 * SHED_LIMIT)

/* More connections than the limit: the oldest (slow ones first, then idle
 * ones) are closed as new ones come, the probes get in, the youngest stay
 * until their idle timeout. */
static int client_shedding(const struct fixture *f)
{
	struct reply *r = xcalloc(1, sizeof(*r));
	int slow[SHED_SLOW], idle[SHED_IDLE];

	CHECK(open_connections(f, slow, SHED_SLOW, SLOW_HEAD) == 0);
	CHECK(open_connections(f, idle, SHED_IDLE, NULL) == 0);
	CHECK(get_ok(f, "/healthz", "text/plain; charset=utf-8", r) == 0);
	CHECK(get_ok(f, "/readyz", "text/plain; charset=utf-8", r) == 0);
	/* Shed before the probes were accepted: their ends are here already. */
	for (size_t i = 0; i < SHED_SLOW; i++)
		CHECK(ended(slow[i], 0));
	for (size_t i = 0; i < SHED_IDLE - SHED_LIMIT; i++)
		CHECK(ended(idle[i], 0));
	CHECK(!ended(idle[SHED_IDLE - 1], 0));
	/* The server's timer closes idle connections without any traffic. */
	CHECK(ended(idle[SHED_IDLE - 1], 30 * 1000));
	close_all(slow, SHED_SLOW);
	close_all(idle, SHED_IDLE);
	CHECK(get_ok(f, "/healthz", "text/plain; charset=utf-8", r) == 0);
	free(r);
	return 0;
}

/* ---- parent side ---- */

struct child_wait {
	pid_t pid;
	int code;     /* si_code */
	int status;   /* si_status */
	bool timed_out;
	bool done;
};

static int on_child(_unused_ sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct child_wait *w = userdata;

	w->code = si->si_code;
	w->status = si->si_status;
	w->done = true;
	return 0;
}

static int on_guard(_unused_ sd_event_source *s, _unused_ uint64_t usec, void *userdata)
{
	struct child_wait *w = userdata;

	w->timed_out = true;
	(void)kill(w->pid, SIGKILL);
	return 0;
}

/* Runs the loop until the client pid exits (or the guard kills it).
 * Returns 0 when it exited 0. */
static int wait_client(struct fixture *f, pid_t pid)
{
	struct child_wait w = { .pid = pid };
	sd_event_source *child = NULL, *guard = NULL;
	uint64_t now;
	int r;

	r = sd_event_add_child(f->e, &child, w.pid, WEXITED, on_child, &w);
	if (r >= 0)
		r = sd_event_now(f->e, CLOCK_MONOTONIC, &now);
	if (r >= 0)
		r = sd_event_add_time(f->e, &guard, CLOCK_MONOTONIC, now + CHILD_GUARD_USEC, 0,
				      on_guard, &w);
	/* Iterations rather than sd_event_loop: the same loop serves several
	 * clients in turn. */
	while (r >= 0 && !w.done)
		r = sd_event_run(f->e, UINT64_MAX);
	sd_event_source_unref(child);
	sd_event_source_unref(guard);
	if (r < 0) {
		fprintf(stderr, "loop failed: %s\n", strerror(-r));
		return r;
	}
	if (w.timed_out)
		fprintf(stderr, "client did not finish in time\n");
	return !w.timed_out && w.code == CLD_EXITED && w.status == 0 ? 0 : 1;
}

/* Forks a client running fn and runs the loop until it exits. Returns 0
 * when the client exited 0. No cmocka asserts: also used in a child. */
static int run_client_status(struct fixture *f, int (*fn)(const struct fixture *f))
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		_exit(fn(f) == 0 ? 0 : 1);
	}
	return wait_client(f, pid);
}

/* As run_client_status, but the client is forked before start(f) sets up
 * the server (and may lower this process's limits, which the client then
 * does not share); it learns the port through a pipe. */
static int run_client_first(struct fixture *f, int (*start)(struct fixture *f),
			    int (*fn)(const struct fixture *f))
{
	int p[2], r;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int port = 0;

		(void)close(p[1]);
		if (read(p[0], &port, sizeof(port)) != (ssize_t)sizeof(port) || port <= 0)
			_exit(1);
		f->port = port;
		curl_global_init(CURL_GLOBAL_DEFAULT);
		_exit(fn(f) == 0 ? 0 : 1);
	}
	(void)close(p[0]);
	r = start(f);
	if (r == 0 && write(p[1], &f->port, sizeof(f->port)) != (ssize_t)sizeof(f->port))
		r = -EIO;
	(void)close(p[1]);
	if (r < 0) {
		(void)kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		return r;
	}
	return wait_client(f, pid);
}

static void run_client(struct fixture *f, int (*fn)(const struct fixture *f))
{
	assert_int_equal(run_client_status(f, fn), 0);
}

static int fixture_start(struct fixture *f, const char *listen_addr, const char *host)
{
	int r;

	memset(f, 0, sizeof(*f));
	assert_int_equal(sd_event_new(&f->e), 0);
	agent_state_init(&f->s);
	records_init(&f->recs);
	f->s.records = &f->recs;
	f->s.provider = xstrdup("azure");
	f->s.started_mono_usec = now_usec(CLOCK_MONOTONIC);
	f->m = metrics_new();
	f->host = host;
	r = http_server_new(f->e, listen_addr, &f->s, f->m, VERSION, &f->h);
	if (r < 0)
		return r;
	f->port = http_server_port(f->h);
	assert_true(f->port > 0);
	return 0;
}

static void fixture_stop(struct fixture *f)
{
	http_server_free(f->h);
	metrics_free(f->m);
	if (f->has_engine)
		engine_done(&f->engine);
	records_done(&f->recs);
	agent_state_done(&f->s);
	sd_event_unref(f->e);
}

/* The fixture's records: one eviction in state, its NotBefore an hour
 * ahead (future) or passed, and an engine started on it, as the agent has
 * after a restart. */
static void set_eviction(struct fixture *f, enum lifecycle state, bool future)
{
	uint64_t now = now_usec(CLOCK_REALTIME);
	struct eviction *r;

	if (f->has_engine)
		engine_done(&f->engine);
	records_done(&f->recs);
	records_init(&f->recs);
	r = add_eviction(&f->recs, EVENT_ID, state);
	(void)strscpy(r->boot, sizeof(r->boot), "boot-1");
	r->detected_wall_usec = now - 5 * USEC_PER_SEC;
	r->notices[0].first_seen_wall_usec = r->detected_wall_usec;
	r->notices[0].ev.not_before_usec = future ? now + 3600 * USEC_PER_SEC : now - 2 * USEC_PER_SEC;
	r->deadline_wall_usec = r->notices[0].ev.not_before_usec - 2 * USEC_PER_SEC;
	r->notices[0].deadline_wall_usec = r->deadline_wall_usec;
	r->drain_until_wall_usec = now + 3000 * USEC_PER_SEC;
	add_hook(r, "10-a", state == LC_DETECTED ? HOOK_PENDING : HOOK_OK);
	if (state == LC_RUNNING)
		add_hook(r, "20-b", HOOK_PENDING);
	start_engine(&f->engine, &f->recs);
	f->has_engine = true;
	f->s.engine = &f->engine;
	assert_int_equal(f->recs.items[0].state, state);
}

static void test_routes(_unused_ void **unused)
{
	struct fixture f;

	assert_int_equal(fixture_start(&f, "127.0.0.1:0", "127.0.0.1"), 0);
	assert_false(http_server_is_public(f.h));
	run_client(&f, client_routes);
	fixture_stop(&f);
}

static void test_methods_and_bodies(_unused_ void **unused)
{
	struct fixture f;

	assert_int_equal(fixture_start(&f, "127.0.0.1:0", "127.0.0.1"), 0);
	run_client(&f, client_methods);
	fixture_stop(&f);
}

static void test_long_requests(_unused_ void **unused)
{
	struct fixture f;

	assert_int_equal(fixture_start(&f, "localhost:0", "127.0.0.1"), 0);
	run_client(&f, client_long_url);
	run_client(&f, client_big_header);
	fixture_stop(&f);
}

/* /readyz answers 503 from an eviction's detection until it is over, as
 * the engine says: detected, running, done while its NotBefore is ahead;
 * ready again once it passed, and when the eviction is closed. */
static void test_readyz_evicting(_unused_ void **unused)
{
	struct fixture f;

	assert_int_equal(fixture_start(&f, "127.0.0.1:0", "127.0.0.1"), 0);
	set_eviction(&f, LC_DETECTED, true);
	evicting_phase = "pending";
	run_client(&f, client_evicting);
	set_eviction(&f, LC_RUNNING, true);
	evicting_phase = "running";
	run_client(&f, client_evicting);
	set_eviction(&f, LC_DONE, true);
	evicting_phase = "done";
	run_client(&f, client_evicting);

	set_eviction(&f, LC_DONE, false);
	run_client(&f, client_ready);
	set_eviction(&f, LC_CLOSED, true);
	run_client(&f, client_ready);
	fixture_stop(&f);
}

static void test_healthz_failing(_unused_ void **unused)
{
	struct fixture f;
	uint64_t now = now_usec(CLOCK_MONOTONIC);

	assert_int_equal(fixture_start(&f, "127.0.0.1:0", "127.0.0.1"), 0);
	/* Failing, but not for longer than the window yet. */
	f.s.poll.consecutive_failures = 2;
	f.s.poll.first_failure_mono_usec = now - 5 * USEC_PER_SEC;
	(void)strscpy(f.s.poll.last_error, sizeof(f.s.poll.last_error), "HTTP 500\nfrom imds");
	run_client(&f, client_healthy);

	f.s.poll.consecutive_failures = 40;
	f.s.poll.first_failure_mono_usec = now - 42 * USEC_PER_SEC;
	run_client(&f, client_unhealthy);

	/* Recovered. */
	f.s.poll.consecutive_failures = 0;
	f.s.poll.first_failure_mono_usec = 0;
	f.s.poll.last_error[0] = '\0';
	run_client(&f, client_healthy);
	fixture_stop(&f);
}

static void test_idle_flood(_unused_ void **unused)
{
	struct fixture f;

	assert_int_equal(fixture_start(&f, "127.0.0.1:0", "127.0.0.1"), 0);
	assert_true(http_server_connection_limit(f.h) > FLOOD_IDLE + FLOOD_SLOW + HTTP_CONNECTIONS_SPARE);
	run_client(&f, client_idle_flood);
	assert_int_equal(http_server_shed_count(f.h), 0);
	fixture_stop(&f);
}

/* Runs fn in a child process (limits set there stay there); the test
 * passes when it exits 0. */
static void in_child(int (*fn)(void))
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn() == 0 ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* A server whose open file limit leaves room for SHED_LIMIT connections. */
static int start_shedding_server(struct fixture *f)
{
	struct rlimit rl = { HTTP_FD_RESERVE + SHED_LIMIT, HTTP_FD_RESERVE + SHED_LIMIT };

	CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	CHECK(http_server_new(f->e, "127.0.0.1:0", &f->s, f->m, VERSION, &f->h) == 0);
	CHECK(http_server_connection_limit(f->h) == SHED_LIMIT);
	f->port = http_server_port(f->h);
	return 0;
}

static int shedding_server(void)
{
	struct fixture f = { .host = "127.0.0.1" };

	CHECK(sd_event_new(&f.e) >= 0);
	agent_state_init(&f.s);
	f.s.provider = xstrdup("azure");
	f.m = metrics_new();
	CHECK(run_client_first(&f, start_shedding_server, client_shedding) == 0);
	/* At least every connection beyond the limit went to make room. */
	CHECK(http_server_shed_count(f.h) >= SHED_IDLE + SHED_SLOW - SHED_LIMIT);
	fixture_stop(&f);
	return 0;
}

static void test_shedding(_unused_ void **unused)
{
	in_child(shedding_server);
}

/* A soft limit too low for the connection limit is raised as far as it
 * needs, within the hard one. */
static int low_soft_limit(void)
{
	const rlim_t want = HTTP_CONNECTIONS_MAX + HTTP_FD_RESERVE;
	struct fixture f = { .host = "127.0.0.1" };
	struct rlimit rl;
	rlim_t hard;

	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	hard = rl.rlim_max;
	rl.rlim_cur = 256;
	CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	CHECK(sd_event_new(&f.e) >= 0);
	agent_state_init(&f.s);
	f.s.provider = xstrdup("azure");
	CHECK(http_server_new(f.e, "127.0.0.1:0", &f.s, NULL, VERSION, &f.h) == 0);
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	CHECK(rl.rlim_max == hard);
	if (hard == RLIM_INFINITY || hard >= want) {
		CHECK(rl.rlim_cur == want);
		CHECK(http_server_connection_limit(f.h) == HTTP_CONNECTIONS_MAX);
	} else {
		CHECK(rl.rlim_cur == hard);
		CHECK(http_server_connection_limit(f.h) ==
		      (hard > HTTP_FD_RESERVE + HTTP_CONNECTIONS_MIN ? hard - HTTP_FD_RESERVE :
		       HTTP_CONNECTIONS_MIN));
	}
	f.port = http_server_port(f.h);
	CHECK(run_client_status(&f, client_healthy) == 0);
	fixture_stop(&f);
	return 0;
}

static void test_fd_limit(_unused_ void **unused)
{
	in_child(low_soft_limit);
}

/* An IPv4 address of this machine that is not loopback (the primary
 * interface's), as text in buf; false when it has none. */
static bool local_other_address(char *buf, size_t n)
{
	struct ifaddrs *ifa, *i;
	bool found = false;

	if (getifaddrs(&ifa) < 0)
		return false;
	for (i = ifa; i && !found; i = i->ifa_next) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)i->ifa_addr;

		if (!sin || sin->sin_family != AF_INET || (ntohl(sin->sin_addr.s_addr) >> 24) == 127)
			continue;
		found = inet_ntop(AF_INET, &sin->sin_addr, buf, (socklen_t)n) != NULL;
	}
	freeifaddrs(ifa);
	return found;
}

static void test_public_face(_unused_ void **unused)
{
	char other[INET_ADDRSTRLEN], listen_addr[INET_ADDRSTRLEN + 8];
	struct fixture f;
	int r;

	/* The face follows the connection's local address, never the
	 * client's: on a wildcard, a connection that arrived on 127.0.0.1
	 * gets everything, exposed or not ... */
	assert_int_equal(fixture_start(&f, "0.0.0.0:0", "127.0.0.1"), 0);
	assert_true(http_server_is_public(f.h));
	http_server_expose(f.h, false, false);
	run_client(&f, client_routes);
	fixture_stop(&f);

	/* ... and one that arrived on another address of this machine the
	 * probes, plus what is exposed. */
	if (!local_other_address(other, sizeof(other))) {
		fprintf(stderr, "test-http: no address but loopback here, skipping the public face\n");
	} else {
		assert_int_equal(fixture_start(&f, "0.0.0.0:0", other), 0);
		run_client(&f, client_public_closed);
		http_server_expose(f.h, true, false);
		run_client(&f, client_public_metrics);
		http_server_expose(f.h, false, true);
		run_client(&f, client_public_status);
		http_server_expose(f.h, true, true);
		run_client(&f, client_public_all);
		/* As a reload turns them off again. */
		http_server_expose(f.h, false, false);
		run_client(&f, client_public_closed);
		fixture_stop(&f);

		/* Bound to that address itself: public to every connection. */
		(void)snprintf(listen_addr, sizeof(listen_addr), "%s:0", other);
		assert_int_equal(fixture_start(&f, listen_addr, other), 0);
		assert_true(http_server_is_public(f.h));
		run_client(&f, client_public_closed);
		fixture_stop(&f);
	}

	/* The private face ignores the exposure settings. */
	assert_int_equal(fixture_start(&f, "127.0.0.1:0", "127.0.0.1"), 0);
	assert_false(http_server_is_public(f.h));
	http_server_expose(f.h, false, false);
	run_client(&f, client_routes);
	fixture_stop(&f);
	http_server_expose(NULL, true, true);
	assert_false(http_server_is_public(NULL));

	/* Both stacks on [::]: ::1 and IPv4-mapped 127.0.0.1 are loopback. */
	r = fixture_start(&f, "[::]:0", "[::1]");
	if (r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT) {
		fixture_stop(&f);
		return;
	}
	assert_int_equal(r, 0);
	assert_true(http_server_is_public(f.h));
	run_client(&f, client_routes);
	fixture_stop(&f);
	assert_int_equal(fixture_start(&f, "[::]:0", "127.0.0.1"), 0);
	run_client(&f, client_routes);
	fixture_stop(&f);
}

static void test_listen_loopback(_unused_ void **unused)
{
	static const char *const loopback[] = {
		"127.0.0.1:9470", "127.0.0.1:0", "127.255.1.2:80", "localhost:9470", "[::1]:9470",
		"[::ffff:127.0.0.1]:9470", "[0:0:0:0:0:0:0:1]:1",
	};
	static const char *const other[] = {
		"0.0.0.0:9470", "[::]:9470", "192.0.2.1:9470", "10.0.0.1:80", "128.0.0.1:80",
		"126.255.255.255:80", "[::ffff:10.0.0.1]:80", "[2001:db8::1]:80", "[::2]:80",
		"none", "", "127.0.0.1", "[::1]", "127.0.0.1:99999", "localhost", NULL,
	};

	for (size_t i = 0; i < ELEMENTSOF(loopback); i++)
		if (!http_listen_is_loopback(loopback[i])) {
			print_error("'%s' is loopback\n", loopback[i]);
			fail();
		}
	for (size_t i = 0; i < ELEMENTSOF(other); i++)
		if (http_listen_is_loopback(other[i])) {
			print_error("'%s' is not loopback\n", other[i] ? other[i] : "(null)");
			fail();
		}
}

static void test_ipv6(_unused_ void **unused)
{
	struct fixture f;
	int r;

	r = fixture_start(&f, "[::1]:0", "[::1]");
	if (r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT) {
		fixture_stop(&f);
		skip();
	}
	assert_int_equal(r, 0);
	run_client(&f, client_healthy);
	fixture_stop(&f);
}

static void test_new_errors(_unused_ void **unused)
{
	struct fixture f;
	struct http_server *h = NULL;
	char addr[64];

	assert_int_equal(fixture_start(&f, "127.0.0.1:0", "127.0.0.1"), 0);
	(void)snprintf(addr, sizeof(addr), "127.0.0.1:%d", f.port);
	assert_int_equal(http_server_new(f.e, addr, &f.s, f.m, VERSION, &h), -EADDRINUSE);
	assert_null(h);
	assert_int_equal(http_server_new(f.e, "127.0.0.1", &f.s, f.m, VERSION, &h), -EINVAL);
	assert_int_equal(http_server_new(f.e, "none", &f.s, f.m, VERSION, &h), -EINVAL);
	assert_int_equal(http_server_new(f.e, "127.0.0.1:0", NULL, f.m, VERSION, &h), -EINVAL);
	assert_null(h);
	/* No metrics: /metrics is simply absent. */
	assert_int_equal(http_server_new(f.e, "127.0.0.1:0", &f.s, NULL, VERSION, &h), 0);
	http_server_free(h);
	http_server_free(NULL);
	fixture_stop(&f);
}

/* In a child: a listening socket at fd 3 with LISTEN_PID/LISTEN_FDS, as
 * systemd passes it; the listen address given is then not used. */
static int activated_server(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	struct fixture f = { .host = "127.0.0.1" };
	char pid[32];
	int fd, r;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	CHECK(listen(fd, 16) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	if (fd != 3) {
		CHECK(dup2(fd, 3) == 3);
		(void)close(fd);
	}
	(void)snprintf(pid, sizeof(pid), "%d", (int)getpid());
	CHECK(setenv("LISTEN_PID", pid, 1) == 0);
	CHECK(setenv("LISTEN_FDS", "1", 1) == 0);

	CHECK(sd_event_new(&f.e) >= 0);
	agent_state_init(&f.s);
	f.s.provider = xstrdup("azure");
	f.m = metrics_new();
	r = http_server_new(f.e, "127.0.0.1:1", &f.s, f.m, VERSION, &f.h);
	CHECK(r == 0);
	f.port = http_server_port(f.h);
	CHECK(f.port == ntohs(sin.sin_port));
	CHECK(run_client_status(&f, client_healthy) == 0);
	/* The handed-over socket itself stays open for a later server. */
	http_server_free(f.h);
	CHECK(sd_is_socket(3, AF_INET, SOCK_STREAM, 1) > 0);
	CHECK(http_server_new(f.e, "127.0.0.1:1", &f.s, f.m, VERSION, &f.h) == 0);
	CHECK(run_client_status(&f, client_ready) == 0);
	http_server_free(f.h);
	metrics_free(f.m);
	agent_state_done(&f.s);
	sd_event_unref(f.e);
	return 0;
}

static void test_socket_activation(_unused_ void **unused)
{
	in_child(activated_server);
}

static void test_parse_listen(_unused_ void **unused)
{
	static const char *const bad[] = {
		"", "none", "127.0.0.1", "127.0.0.1:", ":9470", "127.0.0.1:65536",
		"127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:80x", "127.0.0.1: 80", " 127.0.0.1:80",
		"::1:9470", "[::1]9470", "[::1]", "[::1", "[]:80", "[127.0.0.1]:80",
		"300.1.1.1:80", "1.2.3:80", "host.example:80", "[fe80::1%eth0]:80",
		"127.0.0.1:99999999999999999999",
		"[0000:0000:0000:0000:0000:0000:0000:0000:0000]:1",
	};
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len = 0;
	char buf[INET6_ADDRSTRLEN];

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		if (http_parse_listen(bad[i], &ss, &len) != -EINVAL) {
			print_error("accepted '%s'\n", bad[i]);
			fail();
		}
	}
	assert_int_equal(http_parse_listen(NULL, &ss, &len), -EINVAL);

	assert_int_equal(http_parse_listen("127.0.0.1:9470", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(sin->sin_port), 9470);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);

	assert_int_equal(http_parse_listen("localhost:1", &ss, &len), 0);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(ntohs(sin->sin_port), 1);

	assert_int_equal(http_parse_listen("0.0.0.0:65535", &ss, &len), 0);
	assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(ntohs(sin->sin_port), 65535);

	assert_int_equal(http_parse_listen("[::1]:9470", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(sin6->sin6_port), 9470);
	assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));

	assert_int_equal(http_parse_listen("[2001:db8::5]:0", &ss, &len), 0);
	assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
	assert_string_equal(buf, "2001:db8::5");
	assert_int_equal(ntohs(sin6->sin6_port), 0);
}

static void test_healthy_rule(_unused_ void **unused)
{
	struct agent_state s;
	uint64_t now = 1000 * USEC_PER_SEC, window = HTTP_HEALTH_WINDOW_SEC * USEC_PER_SEC;
	char buf[STATUS_REASON_MAX + 64], tiny[16];

	agent_state_init(&s);
	assert_true(http_healthy(&s, now, buf, sizeof(buf)));

	s.poll.consecutive_failures = 1;
	s.poll.first_failure_mono_usec = now - window;
	assert_true(http_healthy(&s, now, buf, sizeof(buf)));       /* exactly the window */
	s.poll.first_failure_mono_usec = now - window - 1;
	assert_false(http_healthy(&s, now, buf, sizeof(buf)));
	assert_string_equal(buf, "imds polls failing for 30 s: unknown error\n");

	(void)strscpy(s.poll.last_error, sizeof(s.poll.last_error), "timeout\r\nafter 2000 ms");
	s.poll.first_failure_mono_usec = now - 42 * USEC_PER_SEC;
	assert_false(http_healthy(&s, now, buf, sizeof(buf)));
	assert_string_equal(buf, "imds polls failing for 42 s: timeout  after 2000 ms\n");
	assert_false(http_healthy(&s, now, NULL, 0));
	assert_false(http_healthy(&s, now, tiny, sizeof(tiny)));
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	assert_int_equal(tiny[sizeof(tiny) - 2], '\n');

	/* A streak that starts in the future (clock confusion) is not old. */
	s.poll.first_failure_mono_usec = now + USEC_PER_SEC;
	assert_true(http_healthy(&s, now, buf, sizeof(buf)));

	s.poll.consecutive_failures = 0;
	s.poll.first_failure_mono_usec = now - 3600 * USEC_PER_SEC;
	assert_true(http_healthy(&s, now, buf, sizeof(buf)));
	agent_state_done(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_listen),
		cmocka_unit_test(test_healthy_rule),
		cmocka_unit_test(test_new_errors),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_methods_and_bodies),
		cmocka_unit_test(test_long_requests),
		cmocka_unit_test(test_readyz_evicting),
		cmocka_unit_test(test_healthz_failing),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_socket_activation),
		cmocka_unit_test(test_idle_flood),
		cmocka_unit_test(test_shedding),
		cmocka_unit_test(test_fd_limit),
		cmocka_unit_test(test_public_face),
		cmocka_unit_test(test_listen_loopback),
	};
	sigset_t mask;

	/* sd_event_add_child needs SIGCHLD blocked before any child exists. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	/* A client that gives up must not kill the server with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
