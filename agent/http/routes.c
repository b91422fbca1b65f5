/* routes.c - what the endpoint answers: the route table (/healthz, /readyz,
 * /v1/status, /metrics), the two faces (everything, or the probes plus
 * what is exposed), the health and readiness verdicts and the checks every
 * request passes first (length, method, no body). Every answer is made
 * from memory on the request's first callback. It never touches a socket,
 * a connection's bookkeeping or the loop: that is server.c's. */
#include "http/routes.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"
#include "store/json.h"
#include "util.h"

#define TEXT_PLAIN "text/plain; charset=utf-8"
#define ALLOWED_METHODS "GET, HEAD"

/* ---- health ---- */

/* Copies s into buf as one line: control characters become spaces. */
static void copy_one_line(char *buf, size_t n, const char *s)
{
	size_t i;

	if (n == 0)
		return;
	for (i = 0; s[i] && i + 1 < n; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
	buf[i] = '\0';
}

bool http_healthy(const struct agent_state *s, uint64_t now_mono_usec, char *buf, size_t n)
{
	const struct poll_stats *p = &s->poll;
	char error[STATUS_REASON_MAX];
	uint64_t failing;
	int k;

	/* Before the first answer the wait counts as failing too: a request
	 * that never ends is no better than one that fails. */
	if (p->ok == 0 && p->consecutive_failures == 0) {
		failing = now_mono_usec > s->started_mono_usec ? now_mono_usec - s->started_mono_usec : 0;
		if (failing <= HTTP_HEALTH_WINDOW_SEC * USEC_PER_SEC)
			return true;
		if (buf && n > 0 && snprintf(buf, n, "no answer from the metadata service in %" PRIu64 " s since "
					     "the start\n", failing / USEC_PER_SEC) < 0)
			buf[0] = '\0';
		return false;
	}
	if (p->consecutive_failures == 0)
		return true;
	failing = now_mono_usec > p->first_failure_mono_usec ?
		  now_mono_usec - p->first_failure_mono_usec : 0;
	if (failing <= HTTP_HEALTH_WINDOW_SEC * USEC_PER_SEC)
		return true;

	if (buf && n > 0) {
		copy_one_line(error, sizeof(error), p->last_error[0] ? p->last_error : "unknown error");
		k = snprintf(buf, n, "imds polls failing for %" PRIu64 " s: %s\n",
			     failing / USEC_PER_SEC, error);
		/* Cut short, it still ends the line. */
		if (k < 0)
			buf[0] = '\0';
		else if ((size_t)k >= n && n >= 2)
			buf[n - 2] = '\n';
	}
	return false;
}

/* ---- responses ---- */

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, const char *type,
			     struct MHD_Response *r)
{
	enum MHD_Result ret = MHD_NO;

	if (!r)
		return MHD_NO;
	if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
	    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff") != MHD_YES ||
	    MHD_add_response_header(r, MHD_HTTP_HEADER_SERVER, HTTP_SERVER_PRODUCT "/" SPOT_VERSION) != MHD_YES)
		goto out;
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
	    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, ALLOWED_METHODS) != MHD_YES)
		goto out;
	ret = MHD_queue_response(c, status, r);
out:
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	return queue(c, status, TEXT_PLAIN,
		     MHD_create_response_from_buffer(strlen(text), (void *)text,
						     MHD_RESPMEM_MUST_COPY));
}

static enum MHD_Result route_healthz(const struct http_routes *rt, struct MHD_Connection *c)
{
	char reason[STATUS_RELOAD_ERROR_MAX + 128];
	char error[STATUS_RELOAD_ERROR_MAX];

	if (!http_healthy(rt->state, now_usec(CLOCK_MONOTONIC), reason, sizeof(reason)))
		return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, reason);
	if (!rt->state->reload_error[0])
		return respond_text(c, MHD_HTTP_OK, "ok\n");
	/* Still healthy (it runs on the configuration before), but whoever
	 * reads the probe learns that the file on disk is broken. */
	copy_one_line(error, sizeof(error), rt->state->reload_error);
	(void)snprintf(reason, sizeof(reason), "ok, but the last config reload was refused: %s\n", error);
	return respond_text(c, MHD_HTTP_OK, reason);
}

static enum MHD_Result route_readyz(const struct http_routes *rt, struct MHD_Connection *c)
{
	const struct eviction *r = NULL;
	const struct notice *lead;
	char id[EVENT_ID_MAX], text[EVENT_ID_MAX + 64];

	if (status_ready(rt->state, now_usec(CLOCK_REALTIME), &r))
		return respond_text(c, MHD_HTTP_OK, "ready\n");
	lead = r ? eviction_lead_const(r) : NULL;
	if (r)
		copy_one_line(id, sizeof(id), r->id);
	(void)snprintf(text, sizeof(text), "evicting: %s %s\n",
		       lead ? event_type_to_string(lead->ev.type) : "unknown", r ? id : "unknown");
	return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, text);
}

/* What the status document says for the operator beyond the eviction:
 * the last reload's refusal, and the events not acted on. */
static enum MHD_Result route_status(const struct http_routes *rt, struct MHD_Connection *c)
{
	cJSON *j = status_to_json(rt->state, rt->version);
	char *printed;
	char *body;
	size_t len;

	printed = j ? cJSON_Print(j) : NULL;
	cJSON_Delete(j);
	if (!printed)
		return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render status\n");
	/* Pretty-printed and newline-terminated: people read this with curl. */
	len = strlen(printed);
	body = xmalloc(len + 2);
	memcpy(body, printed, len);
	body[len++] = '\n';
	body[len] = '\0';
	cJSON_free(printed);
	return queue(c, MHD_HTTP_OK, "application/json",
		     MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE));
}

static enum MHD_Result route_metrics(const struct http_routes *rt, struct MHD_Connection *c)
{
	char *text;
	size_t len;

	if (!rt->metrics)
		return respond_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
	text = metrics_render(rt->metrics, rt->state, rt->version, &len);
	return queue(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
		     MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE));
}

/* Who may see a route: everybody, or on the public face only when
 * exposed. */
enum route_face {
	FACE_BOTH,
	FACE_METRICS,
	FACE_STATUS,
};

static const struct route {
	const char *path;
	enum route_face face;
	enum MHD_Result (*handle)(const struct http_routes *rt, struct MHD_Connection *c);
} routes[] = {
	{ "/healthz", FACE_BOTH, route_healthz },
	{ "/readyz", FACE_BOTH, route_readyz },
	{ "/v1/status", FACE_STATUS, route_status },
	{ "/metrics", FACE_METRICS, route_metrics },
};

static bool route_shown(const struct http_face *face, const struct route *r)
{
	if (face->full)
		return true;
	switch (r->face) {
	case FACE_METRICS:
		return face->metrics;
	case FACE_STATUS:
		return face->status;
	default:
		return true;
	}
}

/* True when the request announces a body (any Content-Length but 0, or a
 * transfer coding). */
static enum MHD_Result note_body_header(void *userdata, enum MHD_ValueKind kind, const char *key,
					const char *value)
{
	bool *body = userdata;

	if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0 ||
	    (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0 && (!value || strcmp(value, "0") != 0)))
		*body = true;
	return MHD_YES;
}

/* Every Content-Length and Transfer-Encoding line counts, not only the
 * first: "Content-Length: 0" followed by "Content-Length: 4" announces a
 * body as well. */
static bool has_body(struct MHD_Connection *c)
{
	bool body = false;

	(void)MHD_get_connection_values(c, MHD_HEADER_KIND, note_body_header, &body);
	return body;
}

/* Every check of a request before its route, then the route. A route
 * hidden on this face answers as an unknown path does. */
enum MHD_Result http_routes_answer(const struct http_routes *rt, const struct http_face *face,
				   struct MHD_Connection *c, const char *url, const char *method,
				   bool uri_too_long)
{
	if (uri_too_long || strlen(url) > HTTP_URL_MAX)
		return respond_text(c, MHD_HTTP_URI_TOO_LONG, "URI too long\n");
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (has_body(c))
		return respond_text(c, MHD_HTTP_CONTENT_TOO_LARGE, "request bodies are not accepted\n");

	for (size_t i = 0; i < ELEMENTSOF(routes); i++)
		if (strcmp(url, routes[i].path) == 0 && route_shown(face, &routes[i]))
			return routes[i].handle(rt, c);
	return respond_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
}
