/* provider-harness.h - shared by test-azure.c, test-aws.c and test-gcp.c:
 * a tiny metadata service with canned answers (libmicrohttpd on its own
 * threads, so the test's sd-event loop drives only the agent's side), the
 * imds observer that counts what was really sent, a capture that copies
 * what a round hands over, the round plumbing test against a refused port,
 * and the data-file case loader.
 *
 * The including file defines DATA_DIR, PLUMB_PROVIDER, PLUMB_FIRST_ITEM,
 * struct item (with a dir member) and struct data_case first, and includes
 * cmocka, provider.h and util.h. */
#ifndef SPOT_TEST_PROVIDER_HARNESS_H
#define SPOT_TEST_PROVIDER_HARNESS_H

#include <dirent.h>
#include <strings.h>
#include <pthread.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>
#include <systemd/sd-event.h>

/* ---- the fake metadata service ---- */

#define FAKE_ROUTES_MAX 24
#define FAKE_LOG_MAX    512

struct fake_route {
	char method[8];              /* exact */
	char path[160];              /* without the query */
	int status;
	char *body;                  /* owned */
	size_t len;
	int first_status;            /* the first first_n answers get this ... */
	char *first_body;            /* ... with this body (owned; NULL: "") */
	unsigned first_n;
	unsigned delay_ms;           /* before answering */
	char require[192];           /* "Name: value" the request must carry ... */
	int reject_status;           /* ... or it gets this, body "" */
	bool flavor;                 /* answers carry Metadata-Flavor: Google */
	/* What was seen. */
	unsigned hits;
	unsigned served;             /* hits that passed the require check */
	char last_headers[2048];     /* "name: value\n" each */
	char last_args[512];         /* "key=value&" each */
	char last_body[2048];
};

struct fake_imds {
	struct MHD_Daemon *daemon;
	pthread_mutex_t lock;
	struct fake_route routes[FAKE_ROUTES_MAX];
	size_t n_routes;
	char log[FAKE_LOG_MAX][200]; /* "METHOD /path" in arrival order */
	size_t n_log;
	char *url;                   /* http://127.0.0.1:PORT */
};

struct fake_request {
	char body[2048];
	size_t len;
};

struct fake_collect {
	char *buf;
	size_t n;
	const char *between, *after;   /* "name: value\n" or "key=value&" */
};

static enum MHD_Result fake_collect_value(void *cls, enum MHD_ValueKind kind, const char *key,
					  const char *value)
{
	struct fake_collect *c = cls;
	size_t used = strlen(c->buf);

	if (used < c->n)
		(void)snprintf(c->buf + used, c->n - used, "%s%s%s%s", key, c->between,
			       value ? value : "", c->after);
	return MHD_YES;
}

/* Must be called with the lock held. */
static struct fake_route *fake_find(struct fake_imds *f, const char *method, const char *path)
{
	for (size_t i = 0; i < f->n_routes; i++)
		if (strcmp(f->routes[i].method, method) == 0 && strcmp(f->routes[i].path, path) == 0)
			return &f->routes[i];
	return NULL;
}

static bool fake_has_header(struct MHD_Connection *c, const char *line)
{
	const char *colon = strchr(line, ':'), *value;
	char name[128];

	if (!colon || (size_t)(colon - line) >= sizeof(name))
		return false;
	memcpy(name, line, (size_t)(colon - line));
	name[colon - line] = '\0';
	value = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
	return value && strcmp(value, colon + 2) == 0;
}

static enum MHD_Result fake_handler(void *cls, struct MHD_Connection *c, const char *url,
				    const char *method, const char *version, const char *upload,
				    size_t *upload_size, void **req_cls)
{
	struct fake_imds *f = cls;
	struct fake_request *rq = *req_cls;
	struct MHD_Response *resp;
	struct fake_route *route;
	int status = 404;
	char *body = NULL;
	size_t len = 0;
	unsigned delay = 0;
	bool flavor = false;
	enum MHD_Result ret;

	if (!rq) {
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*req_cls = rq;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		size_t n = *upload_size;

		if (n > sizeof(rq->body) - 1 - rq->len)
			n = sizeof(rq->body) - 1 - rq->len;
		memcpy(rq->body + rq->len, upload, n);
		rq->len += n;
		*upload_size = 0;
		return MHD_YES;
	}

	pthread_mutex_lock(&f->lock);
	if (f->n_log < FAKE_LOG_MAX)
		(void)snprintf(f->log[f->n_log++], sizeof(f->log[0]), "%s %s", method, url);
	route = NULL;
	/* A form POST may have a route of its own per Action:
	 * "<path>?Action=<name>". */
	if (strcmp(method, "POST") == 0 && strncmp(rq->body, "Action=", 7) == 0) {
		char keyed[160];
		size_t n = strcspn(rq->body + 7, "&");

		(void)snprintf(keyed, sizeof(keyed), "%s?Action=%.*s", url, (int)n, rq->body + 7);
		route = fake_find(f, method, keyed);
	}
	if (!route)
		route = fake_find(f, method, url);
	if (route) {
		struct fake_collect h = { route->last_headers, sizeof(route->last_headers), ": ", "\n" };
		struct fake_collect a = { route->last_args, sizeof(route->last_args), "=", "&" };

		route->hits++;
		route->last_headers[0] = '\0';
		route->last_args[0] = '\0';
		(void)MHD_get_connection_values(c, MHD_HEADER_KIND, fake_collect_value, &h);
		(void)MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, fake_collect_value, &a);
		memcpy(route->last_body, rq->body, rq->len + 1);
		if (route->require[0] && !fake_has_header(c, route->require)) {
			status = route->reject_status;
		} else if (++route->served <= route->first_n) {
			status = route->first_status;
			if (route->first_body) {
				len = strlen(route->first_body);
				body = xstrdup(route->first_body);
			}
		} else {
			status = route->status;
			len = route->len;
			body = len ? xmalloc(len) : NULL;
			if (len)
				memcpy(body, route->body, len);
		}
		delay = route->delay_ms;
		flavor = route->flavor;
	}
	pthread_mutex_unlock(&f->lock);

	if (delay > 0) {
		struct timespec ts = { delay / 1000, (long)(delay % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	resp = MHD_create_response_from_buffer(len, body ? body : (void *)"", MHD_RESPMEM_MUST_COPY);
	free(body);
	if (!resp)
		return MHD_NO;
	if (flavor)
		(void)MHD_add_response_header(resp, "Metadata-Flavor", "Google");
	ret = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void fake_completed(void *cls, struct MHD_Connection *c, void **req_cls,
			   enum MHD_RequestTerminationCode toe)
{
	free(*req_cls);
	*req_cls = NULL;
}

_unused_ static void fake_start(struct fake_imds *f)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	const union MHD_DaemonInfo *info;

	memset(f, 0, sizeof(*f));
	assert_int_equal(pthread_mutex_init(&f->lock, NULL), 0);
	f->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
				     NULL, NULL, fake_handler, f,
				     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				     MHD_OPTION_NOTIFY_COMPLETED, fake_completed, f,
				     MHD_OPTION_END);
	assert_non_null(f->daemon);
	info = MHD_get_daemon_info(f->daemon, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	f->url = xasprintf("http://127.0.0.1:%u", (unsigned)info->port);
}

_unused_ static void fake_stop(struct fake_imds *f)
{
	MHD_stop_daemon(f->daemon);
	for (size_t i = 0; i < f->n_routes; i++) {
		free(f->routes[i].body);
		free(f->routes[i].first_body);
	}
	pthread_mutex_destroy(&f->lock);
	free(f->url);
	memset(f, 0, sizeof(*f));
}

/* Sets (or adds) what method on path answers; other settings of the route
 * stay. body NULL is "". */
_unused_ static void fake_set(struct fake_imds *f, const char *method, const char *path, int status,
			      const char *body)
{
	struct fake_route *r;

	pthread_mutex_lock(&f->lock);
	r = fake_find(f, method, path);
	if (!r) {
		assert_true(f->n_routes < FAKE_ROUTES_MAX);
		r = &f->routes[f->n_routes++];
		(void)strscpy(r->method, sizeof(r->method), method);
		(void)strscpy(r->path, sizeof(r->path), path);
	}
	r->status = status;
	free(r->body);
	r->len = body ? strlen(body) : 0;
	r->body = xmalloc(r->len + 1);
	memcpy(r->body, body ? body : "", r->len + 1);
	pthread_mutex_unlock(&f->lock);
}

/* The next n answers of the route get status and body (then it answers
 * as set again). */
_unused_ static void fake_set_first(struct fake_imds *f, const char *method, const char *path, unsigned n,
				    int status, const char *body);

/* Runs fn on the route (which must exist) with the lock held. */
#define FAKE_EDIT(f, method, path, stmt)                                    \
	do {                                                                \
		struct fake_route *route_;                                  \
		pthread_mutex_lock(&(f)->lock);                             \
		route_ = fake_find((f), (method), (path));                  \
		if (route_) {                                               \
			struct fake_route *R = route_;                      \
			stmt;                                               \
		}                                                           \
		pthread_mutex_unlock(&(f)->lock);                           \
		assert_non_null(route_);                                    \
	} while (0)

static void fake_set_first(struct fake_imds *f, const char *method, const char *path, unsigned n,
			   int status, const char *body)
{
	FAKE_EDIT(f, method, path,
		  free(R->first_body);
		  R->first_body = body ? xstrdup(body) : NULL;
		  R->first_status = status;
		  R->first_n = R->served + n);
}

_unused_ static unsigned fake_hits(struct fake_imds *f, const char *method, const char *path)
{
	unsigned n = 0;

	FAKE_EDIT(f, method, path, n = R->hits);
	return n;
}

/* Whether the last request to the route carried line ("name: value"; the
 * name as the server spells it, MHD keeps the client's spelling). */
_unused_ static bool fake_last_has(struct fake_imds *f, const char *method, const char *path,
				   const char *line)
{
	char want[256];
	bool found = false;

	(void)snprintf(want, sizeof(want), "%s\n", line);
	FAKE_EDIT(f, method, path, found = strstr(R->last_headers, want) != NULL);
	return found;
}

/* The value of header name in the last request to the route ("" when
 * absent), into buf. */
_unused_ static const char *fake_last_header(struct fake_imds *f, const char *method, const char *path,
					     const char *name, char *buf, size_t n)
{
	char want[128];

	buf[0] = '\0';
	(void)snprintf(want, sizeof(want), "%s: ", name);
	FAKE_EDIT(f, method, path, {
		const char *h = R->last_headers;

		while (h && *h) {
			if (strncasecmp(h, want, strlen(want)) == 0) {
				size_t k = strcspn(h + strlen(want), "\n");

				(void)snprintf(buf, n, "%.*s", (int)k, h + strlen(want));
				break;
			}
			h = strchr(h, '\n');
			if (h)
				h++;
		}
	});
	return buf;
}

/* The body of the last request to the route, into buf. */
_unused_ static const char *fake_last_body(struct fake_imds *f, const char *method, const char *path,
					   char *buf, size_t n)
{
	FAKE_EDIT(f, method, path, (void)snprintf(buf, n, "%s", R->last_body));
	return buf;
}

_unused_ static bool fake_last_arg(struct fake_imds *f, const char *method, const char *path,
				   const char *kv)
{
	char want[256];
	bool found = false;

	(void)snprintf(want, sizeof(want), "%s&", kv);
	FAKE_EDIT(f, method, path, found = strstr(R->last_args, want) != NULL);
	return found;
}

_unused_ static size_t fake_n_log(struct fake_imds *f)
{
	size_t n;

	pthread_mutex_lock(&f->lock);
	n = f->n_log;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* ---- the loop, the transport and what it sent ---- */

struct counter {
	unsigned sent[_IMDS_SLOT_MAX];
	unsigned done[_IMDS_SLOT_MAX];
	unsigned results[_IMDS_RESULT_MAX];   /* of done, as the observer saw them */
};

static void count_sent(void *userdata, enum imds_slot slot, uint64_t mono_usec)
{
	struct counter *c = userdata;

	assert_true(mono_usec > 0);
	c->sent[slot]++;
}

static void count_done(void *userdata, enum imds_slot slot, enum imds_result result,
		       uint64_t latency_usec)
{
	struct counter *c = userdata;

	c->done[slot]++;
	c->results[result]++;
}

_unused_ static unsigned counter_sent(const struct counter *c)
{
	unsigned n = 0;

	for (size_t i = 0; i < _IMDS_SLOT_MAX; i++)
		n += c->sent[i];
	return n;
}

_unused_ static unsigned counter_done(const struct counter *c)
{
	unsigned n = 0;

	for (size_t i = 0; i < _IMDS_SLOT_MAX; i++)
		n += c->done[i];
	return n;
}

struct world {
	sd_event *event;
	struct imds *imds;
	struct fake_imds fake;
	struct counter count;
};

_unused_ static void world_init(struct world *w)
{
	struct imds_observer o = { count_sent, count_done, &w->count };

	memset(w, 0, sizeof(*w));
	assert_true(sd_event_new(&w->event) >= 0);
	assert_int_equal(imds_new(w->event, &w->imds), 0);
	imds_set_observer(w->imds, &o);
	fake_start(&w->fake);
}

_unused_ static void world_done(struct world *w)
{
	imds_free(w->imds);
	sd_event_unref(w->event);
	fake_stop(&w->fake);
}

/* ---- what a round hands over ---- */

struct capture {
	int calls;
	enum imds_result result;
	char error[IMDS_ERROR_MAX];
	bool had_events;
	struct event_list events;        /* deep copies, owned */
	bool had_vm_name;
	char vm_name[PROVIDER_NAME_MAX];
	int64_t incarnation;
	size_t n_other;
	struct provider_drop drops[PROVIDER_DROPS_MAX];
	size_t n_drops;
	bool rebalance;
	char identity_error[IMDS_ERROR_MAX];
	uint64_t latency_usec;
	uint32_t feeds_answered;
	char optional_error[PROVIDER_OPTIONAL_ERROR_MAX];
	bool imds_v1;
	char imds_v1_change[IMDS_ERROR_MAX];
	struct provider_handle *free_me;        /* freed from inside the callback */
};

_unused_ static void capture_done(struct capture *c)
{
	event_list_done(&c->events);
}

static void on_round(const struct provider_round *r, void *userdata)
{
	struct capture *c = userdata;

	c->calls++;
	c->result = r->result;
	assert_non_null(r->error);
	assert_non_null(r->identity_error);
	assert_non_null(r->optional_error);
	assert_non_null(r->imds_v1_change);
	/* Feeds answer only on success, and optional failures only then. */
	assert_int_equal(r->feeds_answered != 0, r->result == IMDS_RESULT_OK);
	if (r->result != IMDS_RESULT_OK)
		assert_string_equal(r->optional_error, "");
	/* "" exactly when OK. */
	assert_int_equal(r->error[0] == '\0', r->result == IMDS_RESULT_OK);
	(void)strscpy(c->error, sizeof(c->error), r->error);
	c->had_events = r->events != NULL;
	assert_int_equal(r->events != NULL, r->result == IMDS_RESULT_OK);
	event_list_done(&c->events);
	if (r->events && r->events->n_events > 0) {
		assert_true(r->events->n_events <= EVENTS_MAX);
		c->events.events = xcalloc(r->events->n_events, sizeof(*c->events.events));
		for (size_t i = 0; i < r->events->n_events; i++) {
			event_init(&c->events.events[i]);
			event_copy(&c->events.events[i], &r->events->events[i]);
		}
		c->events.n_events = r->events->n_events;
	}
	c->had_vm_name = r->vm_name != NULL;
	(void)strscpy(c->vm_name, sizeof(c->vm_name), r->vm_name ? r->vm_name : "");
	c->incarnation = r->incarnation;
	c->n_other = r->n_other;
	c->n_drops = r->n_drops;
	memset(c->drops, 0, sizeof(c->drops));
	if (r->n_drops > 0)
		memcpy(c->drops, r->drops,
		       (r->n_drops < PROVIDER_DROPS_MAX ? r->n_drops : PROVIDER_DROPS_MAX) * sizeof(*r->drops));
	c->rebalance = r->rebalance;
	(void)strscpy(c->identity_error, sizeof(c->identity_error), r->identity_error);
	c->latency_usec = r->latency_usec;
	c->feeds_answered = r->feeds_answered;
	(void)strscpy(c->optional_error, sizeof(c->optional_error), r->optional_error);
	c->imds_v1 = r->imds_v1;
	(void)strscpy(c->imds_v1_change, sizeof(c->imds_v1_change), r->imds_v1_change);
	if (r->events)
		for (size_t i = 0; i < r->events->n_events; i++)
			assert_true(r->feeds_answered & (1u << r->events->events[i].feed));
	assert_true(r->done_mono_usec > 0);
	if (c->free_me) {
		provider_free(c->free_me);
		c->free_me = NULL;
	}
}

/* Runs the loop until the capture has seen calls rounds, for at most 10 s. */
static void run_until(sd_event *e, const struct capture *c, int calls)
{
	uint64_t end = now_usec(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC;

	while (c->calls < calls) {
		if (now_usec(CLOCK_MONOTONIC) > end)
			fail_msg("no round callback within 10 s");
		assert_true(sd_event_run(e, 100 * USEC_PER_MSEC) >= 0);
	}
}

/* One round, checked to cost what it said: *ret_sent gets the requests
 * the transport really sent. first_usec is the first-call timeout. */
_unused_ static void one_round_first(struct world *w, struct provider_handle *p, uint64_t timeout_usec,
				     uint64_t first_usec, struct capture *c, unsigned *ret_cost,
				     unsigned *ret_sent)
{
	unsigned before = counter_sent(&w->count), answered = counter_done(&w->count);
	unsigned calls = (unsigned)c->calls;

	*ret_cost = provider_round_cost(p);
	assert_int_equal(provider_poll(p, timeout_usec, first_usec, on_round, c), 0);
	assert_true(provider_busy(p));
	assert_int_equal(provider_poll(p, timeout_usec, first_usec, on_round, c), -EBUSY);
	run_until(w->event, c, (int)calls + 1);
	assert_false(provider_busy(p));
	*ret_sent = counter_sent(&w->count) - before;
	/* Every request the round sent was answered before it ended. */
	assert_int_equal(counter_done(&w->count) - answered, *ret_sent);
}

_unused_ static void one_round(struct world *w, struct provider_handle *p, uint64_t timeout_usec,
			       struct capture *c, unsigned *ret_cost, unsigned *ret_sent)
{
	one_round_first(w, p, timeout_usec, timeout_usec, c, ret_cost, ret_sent);
}

/* provider_new with the default config and base_url, vm_name. */
_unused_ static int new_provider(enum provider kind, struct imds *m, const char *base_url, const char *vm_name,
				 struct provider_handle **ret)
{
	struct provider_config cfg;

	provider_config_init(&cfg);
	cfg.base_url = base_url;
	cfg.vm_name = vm_name;
	return provider_new(kind, m, &cfg, ret);
}

/* A port on the loopback that nothing listens on: connections are refused
 * at once, so a round fails without any server or timing involved. */
static char *refused_url(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t n = sizeof(sa);
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &n), 0);
	close(fd);
	return xasprintf("http://127.0.0.1:%u//", (unsigned)ntohs(sa.sin_port));
}

/* The round plumbing without a metadata service: one callback per round,
 * failures named by their item, -EBUSY while in flight, and freeing or
 * cancelling the provider mid-round or freeing it from its callback is
 * safe. */
_unused_ static void test_round_plumbing(void **state)
{
	struct capture c = { 0 };
	struct provider_handle *p = NULL;
	struct imds *m;
	sd_event *e;
	char *url = refused_url();

	assert_true(sd_event_new(&e) >= 0);
	assert_int_equal(imds_new(e, &m), 0);

	assert_int_equal(new_provider(PROVIDER_AUTO, m, url, NULL, &p), -EOPNOTSUPP);
	assert_int_equal(new_provider(_PROVIDER_MAX, m, url, NULL, &p), -EINVAL);
	assert_int_equal(new_provider(PLUMB_PROVIDER, NULL, url, NULL, &p), -EINVAL);
	assert_int_equal(new_provider(PLUMB_PROVIDER, m, "", NULL, &p), -EINVAL);
	assert_int_equal(new_provider(PLUMB_PROVIDER, m, "//", NULL, &p), -EINVAL);
	assert_int_equal(new_provider(PLUMB_PROVIDER, m, url, "", &p), -EINVAL);
	assert_int_equal(provider_new(PLUMB_PROVIDER, m, NULL, &p), -EINVAL);
	{
		struct provider_config cfg;

		provider_config_init(&cfg);
		assert_int_equal(provider_new(PLUMB_PROVIDER, m, &cfg, &p), -EINVAL);   /* no base URL */
		cfg.base_url = url;
		cfg.aws_lifecycle_hook = "bad hook";
		assert_int_equal(provider_new(PLUMB_PROVIDER, m, &cfg, &p), -EINVAL);
	}
	assert_null(p);

	assert_int_equal(new_provider(PLUMB_PROVIDER, m, url, NULL, &p), 0);
	assert_int_equal(provider_kind(p), PLUMB_PROVIDER);
	assert_false(provider_busy(p));
	for (int round = 1; round <= 2; round++) {
		assert_int_equal(provider_poll(p, 5 * USEC_PER_SEC, 5 * USEC_PER_SEC, on_round, &c), 0);
		assert_int_equal(provider_poll(p, 5 * USEC_PER_SEC, 5 * USEC_PER_SEC, on_round, &c), -EBUSY);
		/* Never called back from inside provider_poll. */
		assert_int_equal(c.calls, round - 1);
		run_until(e, &c, round);
		assert_int_equal(c.calls, round);
		assert_int_equal(c.result, IMDS_RESULT_TRANSPORT);
		if (strncmp(c.error, PLUMB_FIRST_ITEM ": ", strlen(PLUMB_FIRST_ITEM) + 2) != 0)
			fail_msg("error '%s' does not name '%s'", c.error, PLUMB_FIRST_ITEM);
		assert_false(c.had_events);
		assert_false(c.had_vm_name);
		assert_int_equal(c.incarnation, -1);
	}

	/* Cancelled: the callback never comes, and the next round starts. */
	assert_int_equal(provider_poll(p, 5 * USEC_PER_SEC, 5 * USEC_PER_SEC, on_round, &c), 0);
	provider_cancel(p);
	assert_false(provider_busy(p));
	assert_false(imds_busy(m, IMDS_SLOT_POLL));
	assert_false(imds_busy(m, IMDS_SLOT_IDENTITY));
	assert_true(sd_event_run(e, 0) >= 0);
	provider_cancel(p);    /* nothing in flight: harmless */
	assert_int_equal(provider_poll(p, 5 * USEC_PER_SEC, 5 * USEC_PER_SEC, on_round, &c), 0);
	run_until(e, &c, 3);

	/* Freed with a round in flight: the callback never comes. */
	assert_int_equal(provider_poll(p, 5 * USEC_PER_SEC, 5 * USEC_PER_SEC, on_round, &c), 0);
	provider_free(p);
	assert_false(imds_busy(m, IMDS_SLOT_POLL));
	assert_false(imds_busy(m, IMDS_SLOT_IDENTITY));
	assert_true(sd_event_run(e, 0) >= 0);
	assert_int_equal(c.calls, 3);

	/* Freed from its own callback. */
	assert_int_equal(new_provider(PLUMB_PROVIDER, m, url, NULL, &p), 0);
	c.free_me = p;
	assert_int_equal(provider_poll(p, 5 * USEC_PER_SEC, 5 * USEC_PER_SEC, on_round, &c), 0);
	run_until(e, &c, 4);
	assert_null(c.free_me);
	provider_free(NULL);

	capture_done(&c);
	imds_free(m);
	sd_event_unref(e);
	free(url);
}

/* ---- data-file cases ---- */

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds a test per file of item's directory ending in ext; returns how many. */
_unused_ static size_t add_cases(struct CMUnitTest **tests, size_t *n, const struct item *item,
				 const char *ext, CMUnitTestFunction fn)
{
	char *dir = xasprintf("%s/%s", DATA_DIR, item->dir), **names = NULL;
	size_t n_names = 0;
	struct dirent *de;
	DIR *d;

	d = opendir(dir);
	if (!d) {
		fprintf(stderr, "cannot open '%s' (run from the top directory): %s\n", dir,
			strerror(errno));
		exit(EXIT_FAILURE);
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !str_endswith(de->d_name, ext))
			continue;
		names = xrealloc(names, (n_names + 1) * sizeof(*names));
		names[n_names++] = xasprintf("%s/%s", dir, de->d_name);
	}
	closedir(d);
	qsort(names, n_names, sizeof(*names), compare_names);

	*tests = xrealloc(*tests, (*n + n_names) * sizeof(**tests));
	for (size_t i = 0; i < n_names; i++) {
		struct data_case *c = xmalloc(sizeof(*c));

		c->path = names[i];
		c->item = item;
		(*tests)[(*n)++] = (struct CMUnitTest){
			.name = names[i],
			.test_func = fn,
			.initial_state = c,
		};
	}
	free(names);  /* the strings live on in the cases */
	free(dir);
	return n_names;
}

/* Frees what add_cases made for tests[first..n). */
_unused_ static void free_cases(struct CMUnitTest *tests, size_t first, size_t n)
{
	for (size_t i = first; i < n; i++) {
		struct data_case *c = (void *)tests[i].initial_state;

		free(c->path);
		free(c);
	}
	free(tests);
}

#endif
