/* imds.c - the HTTP transport: libcurl's multi interface driven by the
 * agent's sd-event loop (sockets as io sources, curl's timer as one time
 * source), for the metadata service and the few calls that leave the
 * machine. It owns the easy handles and their capped receive buffers; it
 * knows nothing about providers or documents and never blocks or logs. */
#include "clouds/imds.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "util.h"

static const char *const imds_result_names[_IMDS_RESULT_MAX] = {
	[IMDS_RESULT_OK] = "ok",
	[IMDS_RESULT_HTTP_ERROR] = "http_error",
	[IMDS_RESULT_THROTTLED] = "throttled",
	[IMDS_RESULT_TIMEOUT] = "timeout",
	[IMDS_RESULT_TRANSPORT] = "transport",
	[IMDS_RESULT_BAD_DOCUMENT] = "bad_document",
};

const char *imds_result_to_string(enum imds_result r)
{
	if ((int)r < 0 || r >= _IMDS_RESULT_MAX)
		return NULL;
	return imds_result_names[r];
}

/* What a slot's handle was last set up with: a request like the one
 * before it (every poll) only changes what differs. Rebuilding the URL,
 * the header list and curl's options for each request is most of what an
 * idle poll costs in user space. */
struct imds_request {
	struct imds *owner;
	CURL *easy;                  /* kept across requests, never reset */
	CURLU *url;                  /* parsed url_text, handed to curl */
	char *url_text;              /* owned, NULL before the first request */
	char *headers_text;          /* the header lines of q->headers, joined; owned */
	struct curl_slist *headers;  /* owned, kept while requests repeat them */
	char method[8];              /* "" before the first request */
	long timeout_ms;
	bool busy;
	bool signed_last;            /* the last request carried AWS SigV4 options */
	bool answer_404;             /* this request takes a 404 for an answer */
	char *body;                  /* POST/PUT body, owned */
	char *buf;                   /* received body, capped at IMDS_BODY_MAX */
	size_t len;
	bool overflow;
	uint64_t start_mono_usec;
	imds_callback cb;
	void *userdata;
	char error[CURL_ERROR_SIZE];
};

struct imds {
	sd_event *event;
	CURLM *multi;
	sd_event_source *timer;
	/* Delivers answers curl completed while a request was being started,
	 * so no callback ever runs inside imds_request. */
	sd_event_source *defer;
	struct imds_observer observer;
	struct imds_request slots[_IMDS_SLOT_MAX];
	/* curl asked to be run again at once (a timeout of 0 ms) while
	 * run_curl had it running: done right after, not a loop iteration
	 * later through the timer. */
	bool in_curl;
	bool run_now;
};

/* Runs curl on fd (CURL_SOCKET_TIMEOUT: its timers), and again as long as
 * it asks for that at once -- it does so to finish a transfer whose
 * answer it has just read. Bounded, in case it kept asking. */
static int on_timer_change(CURLM *multi, long timeout_ms, void *userp);

#define IMDS_RUN_NOW_MAX 8
static void run_curl(struct imds *m, curl_socket_t fd, int action)
{
	int running;
	unsigned i;

	m->in_curl = true;
	m->run_now = false;
	(void)curl_multi_socket_action(m->multi, fd, action, &running);
	for (i = 0; m->run_now && i < IMDS_RUN_NOW_MAX; i++) {
		m->run_now = false;
		(void)curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	m->in_curl = false;
	if (m->run_now)   /* still asking: the timer takes it from here */
		(void)on_timer_change(m->multi, 0, m);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct imds_request *q = userdata;
	size_t n = size * nmemb;

	if (q->len + n > IMDS_BODY_MAX) {
		q->overflow = true;
		return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
	}
	q->buf = xrealloc(q->buf, q->len + n + 1);
	memcpy(q->buf + q->len, ptr, n);
	q->len += n;
	q->buf[q->len] = '\0';
	return n;
}

/* Copies the Metadata-Flavor response header into flavor ("" when none):
 * the handle is reset by the next request, which the callback may start. */
static void read_flavor(CURL *easy, char *flavor, size_t n)
{
	struct curl_header *h = NULL;

	flavor[0] = '\0';
	if (curl_easy_header(easy, "Metadata-Flavor", 0, CURLH_HEADER, -1, &h) == CURLHE_OK &&
	    h && h->value)
		(void)strscpy(flavor, n, h->value);
}

static void finish(struct imds *m, struct imds_request *q, CURLcode code)
{
	struct imds_reply r = { .body = q->buf ? q->buf : "", .len = q->len, .error = "" };
	imds_callback cb = q->cb;
	void *userdata = q->userdata;
	enum imds_slot slot = (enum imds_slot)(q - m->slots);
	char error[IMDS_ERROR_MAX], flavor[IMDS_FLAVOR_MAX];

	r.done_mono_usec = now_usec(CLOCK_MONOTONIC);
	r.latency_usec = r.done_mono_usec - q->start_mono_usec;
	(void)curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &r.status);
	read_flavor(q->easy, flavor, sizeof(flavor));
	r.metadata_flavor = flavor;

	if (q->overflow) {
		r.result = IMDS_RESULT_TRANSPORT;
		(void)snprintf(error, sizeof(error), "answer larger than %d bytes", IMDS_BODY_MAX);
		r.error = error;
	} else if (code == CURLE_OPERATION_TIMEDOUT) {
		r.result = IMDS_RESULT_TIMEOUT;
		(void)snprintf(error, sizeof(error), "timed out after %.1f s",
			       (double)r.latency_usec / USEC_PER_SEC);
		r.error = error;
	} else if (code != CURLE_OK) {
		r.result = IMDS_RESULT_TRANSPORT;
		(void)snprintf(error, sizeof(error), "%s", q->error[0] ? q->error : curl_easy_strerror(code));
		r.error = error;
	} else if (r.status == 404 && q->answer_404) {
		r.result = IMDS_RESULT_OK;
	} else if (r.status == 429) {
		r.result = IMDS_RESULT_THROTTLED;
		r.error = "HTTP 429 (throttled)";
	} else if (r.status < 200 || r.status > 299) {
		r.result = IMDS_RESULT_HTTP_ERROR;
		(void)snprintf(error, sizeof(error), "HTTP %ld", r.status);
		r.error = error;
	} else {
		r.result = IMDS_RESULT_OK;
	}

	(void)curl_multi_remove_handle(m->multi, q->easy);
	q->busy = false;
	/* The callback may start the next request in this very slot, so the
	 * slot is released before it runs and the buffer only after. */
	{
		char *buf = q->buf;

		q->buf = NULL;
		q->len = 0;
		free(q->body);
		q->body = NULL;
		if (m->observer.done)
			m->observer.done(m->observer.userdata, slot, r.result, r.latency_usec);
		if (cb)
			cb(&r, userdata);
		free(buf);
	}
}

static void check_done(struct imds *m)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(m->multi, &left))) {
		struct imds_request *q = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		(void)curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&q);
		if (q)
			finish(m, q, msg->data.result);
	}
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct imds *m = userdata;
	int action = 0;

	if (revents & (EPOLLIN | EPOLLHUP))
		action |= CURL_CSELECT_IN;
	if (revents & EPOLLOUT)
		action |= CURL_CSELECT_OUT;
	if (revents & EPOLLERR)
		action |= CURL_CSELECT_ERR;
	run_curl(m, fd, action);
	check_done(m);
	return 0;
}

static int on_defer(sd_event_source *s, void *userdata)
{
	check_done(userdata);
	return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	run_curl(userdata, CURL_SOCKET_TIMEOUT, 0);
	check_done(userdata);
	return 0;
}

/* CURLMOPT_SOCKETFUNCTION: mirror curl's interest in a socket as an io source. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct imds *m = userp;
	sd_event_source *io = socketp;
	uint32_t events = 0;
	int r;

	if (what == CURL_POLL_REMOVE) {
		if (io) {
			(void)sd_event_source_set_enabled(io, SD_EVENT_OFF);
			sd_event_source_unref(io);
			(void)curl_multi_assign(m->multi, fd, NULL);
		}
		return 0;
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= EPOLLIN;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= EPOLLOUT;

	if (io) {
		r = sd_event_source_set_io_events(io, events);
		if (r >= 0)
			r = sd_event_source_set_enabled(io, SD_EVENT_ON);
		return r < 0 ? -1 : 0;
	}
	r = sd_event_add_io(m->event, &io, fd, events, on_io, m);
	if (r < 0)
		return -1;
	(void)sd_event_source_set_description(io, "imds-socket");
	(void)curl_multi_assign(m->multi, fd, io);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one time source follows curl's single timeout. */
static int on_timer_change(CURLM *multi, long timeout_ms, void *userp)
{
	struct imds *m = userp;
	uint64_t when;
	int r;

	if (timeout_ms < 0)
		return sd_event_source_set_enabled(m->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
	if (timeout_ms == 0 && m->in_curl) {
		m->run_now = true;
		return sd_event_source_set_enabled(m->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
	}
	when = now_usec(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * USEC_PER_MSEC;
	r = sd_event_source_set_time(m->timer, when);
	if (r >= 0)
		r = sd_event_source_set_enabled(m->timer, SD_EVENT_ONESHOT);
	return r < 0 ? -1 : 0;
}

/* The options every request of a slot has, set once per handle. */
static int set_fixed_options(struct imds_request *q, bool metadata)
{
	CURL *c = q->easy;

	/* Metadata calls must never go through a proxy, whatever the
	 * environment says: "" disables proxies, "*" bypasses any left. */
	if (metadata && (curl_easy_setopt(c, CURLOPT_PROXY, "") != CURLE_OK ||
			 curl_easy_setopt(c, CURLOPT_NOPROXY, "*") != CURLE_OK))
		return -EIO;
	if (curl_easy_setopt(c, CURLOPT_CURLU, q->url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEDATA, q) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PRIVATE, q) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, q->error) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)IMDS_CONNECT_TIMEOUT_MS) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)IMDS_BODY_MAX) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK)
		return -EIO;
	return 0;
}

/* curl_slist_append, freeing the list when it fails. */
static struct curl_slist *curl_slist_append_checked(struct curl_slist *list, const char *line)
{
	struct curl_slist *l = curl_slist_append(list, line);

	if (!l)
		curl_slist_free_all(list);
	return l;
}

/* Parses url into the slot's CURLU unless it is the one parsed last. */
static int set_url(struct imds_request *q, const char *url)
{
	if (q->url_text && strcmp(q->url_text, url) == 0)
		return 0;
	free(q->url_text);
	q->url_text = NULL;
	if (curl_url_set(q->url, CURLUPART_URL, url, 0) != CURLUE_OK)
		return -EINVAL;
	/* Set again: curl takes the parts at this call. */
	if (curl_easy_setopt(q->easy, CURLOPT_CURLU, q->url) != CURLE_OK)
		return -EIO;
	q->url_text = xstrdup(url);
	return 0;
}

/* The request's header lines, with the ones every request carries; the
 * list is rebuilt only when they differ from the last request's. The
 * User-Agent is a header line rather than CURLOPT_USERAGENT, which curl
 * formats anew for every request. */
static int set_headers(struct imds_request *q, const char *const *headers)
{
	/* "Expect: 100-continue" would add a round trip to a short POST;
	 * "Accept:" drops curl's default Accept line, which nobody reads. */
	static const char *const fixed[] = { "Expect:", "Accept:", ("User-Agent: spot-agent/" SPOT_VERSION) };
	struct curl_slist *list = NULL;
	size_t len = 1;
	char *text, *p;

	for (size_t i = 0; headers && headers[i]; i++)
		len += strlen(headers[i]) + 1;
	text = p = xmalloc(len);
	for (size_t i = 0; headers && headers[i]; i++)
		p = stpcpy(stpcpy(p, headers[i]), "\n");
	*p = '\0';
	if (q->headers_text && strcmp(q->headers_text, text) == 0) {
		free(text);
		return 0;
	}
	for (size_t i = 0; i < ELEMENTSOF(fixed); i++)
		if (!(list = curl_slist_append_checked(list, fixed[i])))
			goto oom;
	for (size_t i = 0; headers && headers[i]; i++)
		if (!(list = curl_slist_append_checked(list, headers[i])))
			goto oom;
	if (curl_easy_setopt(q->easy, CURLOPT_HTTPHEADER, list) != CURLE_OK) {
		curl_slist_free_all(list);
		free(text);
		return -EIO;
	}
	curl_slist_free_all(q->headers);
	free(q->headers_text);
	q->headers = list;
	q->headers_text = text;
	return 0;
oom:
	free(text);
	return -ENOMEM;
}

int imds_new(sd_event *e, struct imds **ret)
{
	struct imds *m;
	int r;

	if (curl_global_init(CURL_GLOBAL_NOTHING) != CURLE_OK)
		return -EIO;
	m = xcalloc(1, sizeof(*m));
	m->event = sd_event_ref(e);
	m->multi = curl_multi_init();
	if (!m->multi) {
		r = -ENOMEM;
		goto fail;
	}
	/* Accuracy 1 us: curl often asks for "now", and sd-event's default
	 * accuracy would let that slip by up to 250 ms. */
	r = sd_event_add_time(e, &m->timer, CLOCK_MONOTONIC, USEC_INFINITY, 1, on_timer, m);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(m->timer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(m->timer, "imds-timer");
	r = sd_event_add_defer(e, &m->defer, on_defer, m);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(m->defer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(m->defer, "imds-done");

	if (curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m) != CURLM_OK ||
	    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timer_change) != CURLM_OK ||
	    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m) != CURLM_OK ||
	    curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)_IMDS_SLOT_MAX) != CURLM_OK) {
		r = -EIO;
		goto fail;
	}
	for (size_t i = 0; i < _IMDS_SLOT_MAX; i++) {
		m->slots[i].owner = m;
		m->slots[i].easy = curl_easy_init();
		m->slots[i].url = curl_url();
		if (!m->slots[i].easy || !m->slots[i].url) {
			r = -ENOMEM;
			goto fail;
		}
		r = set_fixed_options(&m->slots[i], imds_slot_is_metadata((enum imds_slot)i));
		if (r < 0)
			goto fail;
	}
	*ret = m;
	return 0;
fail:
	imds_free(m);
	return r;
}

void imds_cancel(struct imds *m, enum imds_slot slot)
{
	struct imds_request *q = &m->slots[slot];

	if (!q->busy)
		return;
	(void)curl_multi_remove_handle(m->multi, q->easy);
	free(q->body);
	q->body = NULL;
	free(q->buf);
	q->buf = NULL;
	q->len = 0;
	q->busy = false;
}

void imds_free(struct imds *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < _IMDS_SLOT_MAX; i++) {
		if (m->slots[i].easy) {
			imds_cancel(m, (enum imds_slot)i);
			curl_easy_cleanup(m->slots[i].easy);
		}
		curl_url_cleanup(m->slots[i].url);
		curl_slist_free_all(m->slots[i].headers);
		free(m->slots[i].headers_text);
		free(m->slots[i].url_text);
	}
	if (m->multi)
		(void)curl_multi_cleanup(m->multi);
	sd_event_source_disable_unref(m->timer);
	sd_event_source_disable_unref(m->defer);
	sd_event_unref(m->event);
	free(m);
}

void imds_set_observer(struct imds *m, const struct imds_observer *o)
{
	m->observer = o ? *o : (struct imds_observer){ 0 };
}

bool imds_busy(const struct imds *m, enum imds_slot slot)
{
	return m->slots[slot].busy;
}

/* SigV4 options for this request, or none: curl signs with them until told
 * otherwise, so a slot that signed once is cleared before a plain one. */
static int set_signing(struct imds_request *q, const struct imds_call *call)
{
	CURL *c = q->easy;
	bool sign = call->aws_sigv4 && call->userpwd;

	if (!sign && !q->signed_last)
		return 0;
	if (curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sign ? call->aws_sigv4 : NULL) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_USERPWD, sign ? call->userpwd : NULL) != CURLE_OK)
		return -EIO;
	q->signed_last = sign;
	return 0;
}

int imds_request(struct imds *m, enum imds_slot slot, const char *method, const char *url,
		 const char *const *headers, const char *body, uint64_t timeout_usec,
		 imds_callback cb, void *userdata)
{
	struct imds_call call = {
		.method = method,
		.url = url,
		.headers = headers,
		.body = body,
		.body_len = body ? strlen(body) : 0,
		.timeout_usec = timeout_usec,
	};

	return imds_call(m, slot, &call, cb, userdata);
}

int imds_call(struct imds *m, enum imds_slot slot, const struct imds_call *call, imds_callback cb,
	      void *userdata)
{
	struct imds_request *q = &m->slots[slot];
	CURL *c = q->easy;
	const char *method = call->method;
	bool put = strcmp(method, "PUT") == 0;
	bool del = strcmp(method, "DELETE") == 0;
	bool post = put || strcmp(method, "POST") == 0;
	long timeout_ms = (long)(call->timeout_usec / USEC_PER_MSEC);
	int r;

	if (q->busy)
		return -EBUSY;
	if (strlen(method) >= sizeof(q->method))
		return -EINVAL;

	r = set_url(q, call->url);
	if (r < 0)
		return r;
	r = set_headers(q, call->headers);
	if (r < 0)
		return r;
	r = set_signing(q, call);
	if (r < 0)
		return r;
	if (strcmp(q->method, method) != 0) {
		/* HTTPGET undoes an earlier POST; CUSTOMREQUEST NULL an earlier PUT. */
		if ((!post && curl_easy_setopt(c, CURLOPT_HTTPGET, 1L) != CURLE_OK) ||
		    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, put ? "PUT" : del ? "DELETE" : NULL) != CURLE_OK)
			return -EIO;
		(void)strscpy(q->method, sizeof(q->method), method);
	}
	if (post) {
		/* Copied: the caller's buffer may be gone before the transfer. */
		q->body = xmalloc(call->body_len + 1);
		if (call->body_len > 0)
			memcpy(q->body, call->body, call->body_len);
		q->body[call->body_len] = '\0';
		if (curl_easy_setopt(c, CURLOPT_POSTFIELDS, q->body) != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len) != CURLE_OK) {
			r = -EIO;
			goto fail;
		}
	}
	if (q->timeout_ms != timeout_ms) {
		if (curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK) {
			r = -EIO;
			goto fail;
		}
		q->timeout_ms = timeout_ms;
	}
	q->error[0] = '\0';
	q->answer_404 = call->answer_404;
	q->overflow = false;
	q->len = 0;
	q->cb = cb;
	q->userdata = userdata;

	q->start_mono_usec = now_usec(CLOCK_MONOTONIC);
	if (curl_multi_add_handle(m->multi, c) != CURLM_OK) {
		r = -EIO;
		goto fail;
	}
	q->busy = true;
	if (m->observer.sent)
		m->observer.sent(m->observer.userdata, slot, q->start_mono_usec);
	/* Start the transfer now rather than when curl's timer next fires: on
	 * a kept-alive connection the request is written before this returns.
	 * Whatever that completes is handed over from the loop (on_defer), not
	 * from here: the caller is still setting up and must not be called
	 * back from inside its own request. */
	run_curl(m, CURL_SOCKET_TIMEOUT, 0);
	(void)sd_event_source_set_enabled(m->defer, SD_EVENT_ONESHOT);
	return 0;
fail:
	free(q->body);
	q->body = NULL;
	return r;
}
