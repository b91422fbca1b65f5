/* http.h - the local read-only HTTP endpoint on the agent's event loop. */
#ifndef SPOT_HTTP_H
#define SPOT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "http/address.h"
#include "http/metrics.h"
#include "http/status.h"

/* Open connections at most. Each holds one fd and up to
 * HTTP_HEADERS_MAX_BYTES of libmicrohttpd's memory (16 MiB in all). Well
 * above what an idle or slow flood from one host needs to be answered
 * behind: see HTTP_CONNECTIONS_SPARE. */
#define HTTP_CONNECTIONS_MAX     2048
/* File descriptors kept for everything but the endpoint (hooks' pipes, IMDS
 * sockets, the state file, the bus, the journal) when the connection limit
 * is fitted to RLIMIT_NOFILE. */
#define HTTP_FD_RESERVE          128
/* The connection limit never goes below this, whatever RLIMIT_NOFILE says. */
#define HTTP_CONNECTIONS_MIN     64
/* Shedding: with the connection limit less this many open, the connections
 * that have waited longest for a complete request are closed, so a new
 * connection is always accepted at once and never queued or refused. */
#define HTTP_CONNECTIONS_SPARE   32
#define HTTP_CONNECTION_TIMEOUT_SEC 5   /* idle: no byte either way */
/* A connection must deliver a complete request head this long after it was
 * opened or its previous request was answered, trickled bytes or not. */
#define HTTP_REQUEST_DEADLINE_SEC 10
#define HTTP_URL_MAX             1024
#define HTTP_HEADERS_MAX_BYTES   8192    /* libmicrohttpd's per-connection memory */
/* /healthz turns 503 once polls have failed without a break for this long. */
#define HTTP_HEALTH_WINDOW_SEC   30
/* Accept queue of our own listen socket: deep enough that a burst of
 * connections waits for the next loop turn instead of having the kernel drop
 * SYNs (whose retries back off to seconds). */
#define HTTP_LISTEN_BACKLOG      1024
/* libmicrohttpd passes at most this many times per loop turn, so that
 * connections it accepts are also read and answered in that turn. */
#define HTTP_RUNS_PER_TURN       4
/* Every answer carries "Server: spot-agent/VERSION": 'spot-agent check'
 * tells a running agent on the listen address from another program. */
#define HTTP_SERVER_PRODUCT      "spot-agent"

struct http_server;

/* Starts listening on listen ("ADDR:PORT", "[IPV6]:PORT"), or on the socket
 * passed by systemd socket activation when there is one (the first
 * listening stream socket; a duplicate is used, so the passed fd survives
 * http_server_free and a new server finds it again). "none" is not
 * passed here: the caller skips the endpoint. state, metrics and version are
 * borrowed for the server's lifetime. Raises the soft RLIMIT_NOFILE towards
 * the hard one when the connection limit needs it (the first and only place
 * that does). Returns 0 or -errno: -EINVAL for a bad address, the errno of
 * bind(2) (-EADDRINUSE, -EADDRNOTAVAIL, -EACCES ...) for one that cannot be
 * bound. */
int http_server_new(sd_event *e, const char *listen, const struct agent_state *state,
		    const struct metrics *metrics, const char *version, struct http_server **ret);
void http_server_free(struct http_server *h);

/* The two faces of the endpoint, chosen per connection from the address
 * it arrived on (the accepted socket's local end, never the client's): on
 * a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104; also any
 * connection to a loopback listen address, or to a non-IP socket from
 * systemd) every route is served. On any other, which only a listen
 * address that is not loopback (a wildcard included) can receive, only
 * /healthz and /readyz, plus /metrics when metrics is true and /v1/status
 * when status is true; other paths answer 404 as unknown ones do. Both
 * start false; the agent calls this at start and on every reload. h may
 * be NULL (no endpoint). */
void http_server_expose(struct http_server *h, bool metrics, bool status);
/* True when the server listens on an address that is not loopback: some
 * connections may get the public face. */
bool http_server_is_public(const struct http_server *h);

/* The TCP port the server listens on (the chosen one when listen asked for
 * port 0), or 0 for a non-IP socket handed over by systemd. */
int http_server_port(const struct http_server *h);

/* The connection limit in force: HTTP_CONNECTIONS_MAX, or what
 * RLIMIT_NOFILE leaves room for after HTTP_FD_RESERVE (at least
 * HTTP_CONNECTIONS_MIN). */
unsigned http_server_connection_limit(const struct http_server *h);

/* Connections closed so far to keep HTTP_CONNECTIONS_SPARE slots free (not
 * those that missed their request deadline). */
uint64_t http_server_shed_count(const struct http_server *h);

/* The /healthz verdict for the given state at monotonic time now: unhealthy
 * iff poll.consecutive_failures > 0 and the streak (now -
 * poll.first_failure_mono_usec) is longer than HTTP_HEALTH_WINDOW_SEC. On
 * false, buf (may be NULL) gets a one-line reason ending in "\n", e.g.
 * "imds polls failing for 42 s: <last_error>\n", cut to n bytes. */
bool http_healthy(const struct agent_state *s, uint64_t now_mono_usec, char *buf, size_t n);

#endif
