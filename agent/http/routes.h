/* routes.h - the endpoint's paths and their answers (routes.c), for the
 * server (server.c). */
#ifndef SPOT_HTTP_ROUTES_H
#define SPOT_HTTP_ROUTES_H

#include <stdbool.h>

#include <microhttpd.h>

#include "http/metrics.h"
#include "http/status.h"

/* What the answers are made from; all borrowed for the server's lifetime. */
struct http_routes {
	const struct agent_state *state;
	const struct metrics *metrics;   /* may be NULL: /metrics is 404 */
	const char *version;
};

/* Which routes a connection sees: every one (full), or /healthz and
 * /readyz plus /metrics and /v1/status when exposed. */
struct http_face {
	bool full;
	bool metrics;
	bool status;
};

/* Answers one request on its first call, from memory: 414 when the
 * request target was longer than HTTP_URL_MAX (uri_too_long, or url
 * itself), 405 for a method other than GET and HEAD, 413 when a body is
 * announced, the route's answer when url (as sent: no %XX decoded, no
 * query) is a route this face shows, else 404. */
enum MHD_Result http_routes_answer(const struct http_routes *rt, const struct http_face *face,
				   struct MHD_Connection *c, const char *url, const char *method,
				   bool uri_too_long);

#endif
