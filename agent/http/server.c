/* server.c - the local read-only HTTP endpoint on the agent's loop:
 * libmicrohttpd without threads, its epoll fd and timeout driven by
 * sd-event, the listening socket (bound here or passed by systemd), the
 * face a connection gets, and the limits that keep a probe answered:
 * connections capped in number, memory, idle time and time to a complete
 * request, the ones waiting longest shed near the cap. What each path
 * answers is routes.c's. It must never block the loop or make a hook or a
 * poll wait: bodies are refused before they are read. */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <microhttpd.h>
#include <systemd/sd-daemon.h>

#include "http/routes.h"
#include "log.h"
#include "util.h"

/* Below the loop's default, so that when hooks, polls and HTTP are all ready
 * the HTTP sources are dispatched last. */
#define HTTP_EVENT_PRIORITY (SD_EVENT_PRIORITY_NORMAL + 10)

/* One open TCP connection, known from libmicrohttpd's connection
 * notifications; kept to enforce the request deadline and to shed the
 * connections that wait longest when the limit comes near. */
struct http_conn {
	struct MHD_Connection *c;    /* libmicrohttpd's, valid until its CLOSED notice */
	uint64_t since_usec;         /* CLOCK_MONOTONIC: opened, or its last answer sent */
	bool answering;              /* a request head is in, its answer not yet sent */
	bool local_loopback;         /* it arrived on a loopback address of ours */
	bool shed;                   /* shut down by us, not yet closed by libmicrohttpd */
	struct http_conn *prev, *next;
};

struct http_server {
	sd_event *event;                    /* referenced */
	sd_event_source *io;                /* libmicrohttpd's epoll fd */
	sd_event_source *timer;             /* libmicrohttpd's next timeout */
	struct MHD_Daemon *daemon;
	struct http_routes routes;          /* what the answers are made from */
	int port;
	char address[INET6_ADDRSTRLEN + 8]; /* the bound one, for log lines */
	bool public_face;                   /* bound to an address that is not loopback */
	bool expose_metrics, expose_status; /* on the public face */
	unsigned conn_limit;                /* libmicrohttpd's connection limit */
	/* Owned list, ordered by since_usec: oldest first. */
	struct http_conn *head, *tail;
	unsigned n_conns;                   /* on the list */
	unsigned n_shed;                    /* of which shut down by us */
	uint64_t shed_crowded;              /* ever shed to make room */
	bool started;                       /* a connection opened in this MHD_run */
	bool closed;                        /* a connection closed in this MHD_run */
};

/* Per-request markers set by the URI callback (the request's con_cls). */
static char request_tag;
static char request_too_long_tag;

/* Our record of libmicrohttpd's connection c, or NULL. */
static struct http_conn *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return info ? info->socket_context : NULL;
}

/* Whether connection c arrived on a loopback address: the local end of the
 * accepted socket, never the client's address (which a peer on the
 * network does not choose freely, but which is not where it connected).
 * On a wildcard listen address this gives 127.0.0.1 and ::1 the private
 * face. */
static bool connection_is_local(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (!info || info->connect_fd < 0 || getsockname(info->connect_fd, (struct sockaddr *)&ss, &len) < 0)
		return false;
	return http_sockaddr_is_loopback(&ss);
}

/* The access handler. Every request is answered on its first call, when the
 * headers are in and no byte of a body has been read: libmicrohttpd then
 * never reads (or buffers) the body and closes the connection after the
 * answer instead. url is the path as sent (see unescape_none), without the
 * query, which no route looks at. A route hidden on this face answers as an
 * unknown path does. */
static enum MHD_Result handle_request(void *userdata, struct MHD_Connection *c, const char *url,
				      const char *method, _unused_ const char *version,
				      _unused_ const char *upload_data, size_t *upload_data_size,
				      void **req)
{
	struct http_server *h = userdata;
	struct http_conn *conn = conn_of(c);
	const struct http_face face = {
		.full = !h->public_face || (conn ? conn->local_loopback : connection_is_local(c)),
		.metrics = h->expose_metrics, .status = h->expose_status,
	};

	if (*upload_data_size != 0)
		return MHD_NO;
	if (conn)
		conn->answering = true;
	return http_routes_answer(&h->routes, &face, c, url, method, *req == &request_too_long_tag);
}

/* Paths are matched byte for byte as sent: no %XX is decoded (in the path or
 * in the query), so "/healthz%00.json" or "/%68ealthz" is no route. No route
 * has a byte that needs escaping, so no client escapes one. (A raw NUL byte
 * in the request line, which no client can send from a URL, still ends the
 * path for us: libmicrohttpd hands it over as a C string. The face is
 * applied to what is left.) */
static size_t unescape_none(_unused_ void *userdata, _unused_ struct MHD_Connection *c, char *s)
{
	return strlen(s);
}

/* Sees the whole request target (with its query) before it is parsed. */
static void *uri_logged(_unused_ void *userdata, const char *uri,
			_unused_ struct MHD_Connection *c)
{
	return strlen(uri) > HTTP_URL_MAX ? &request_too_long_tag : &request_tag;
}

static _printf_(2, 0) void mhd_log(_unused_ void *userdata, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	log_debug("http: %s", line);
}

/* ---- connections and the loop ---- */

static void conn_append(struct http_server *h, struct http_conn *conn)
{
	conn->prev = h->tail;
	conn->next = NULL;
	if (h->tail)
		h->tail->next = conn;
	else
		h->head = conn;
	h->tail = conn;
}

static void conn_unlink(struct http_server *h, struct http_conn *conn)
{
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		h->head = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	else
		h->tail = conn->prev;
	conn->prev = conn->next = NULL;
}

static void connection_notify(void *userdata, struct MHD_Connection *c,
			      void **socket_context, enum MHD_ConnectionNotificationCode code)
{
	struct http_server *h = userdata;
	struct http_conn *conn;

	switch (code) {
	case MHD_CONNECTION_NOTIFY_STARTED:
		conn = xcalloc(1, sizeof(*conn));
		conn->c = c;
		conn->since_usec = now_usec(CLOCK_MONOTONIC);
		/* Asked once per connection, and only where it matters. */
		conn->local_loopback = h->public_face && connection_is_local(c);
		conn_append(h, conn);
		h->n_conns++;
		h->started = true;
		*socket_context = conn;
		break;
	case MHD_CONNECTION_NOTIFY_CLOSED:
		conn = *socket_context;
		if (!conn)
			break;
		conn_unlink(h, conn);
		h->n_conns--;
		if (conn->shed)
			h->n_shed--;
		h->closed = true;
		*socket_context = NULL;
		free(conn);
		break;
	}
}

/* An answer is out: the connection waits for its next request from now on,
 * so it goes to the young end of the list. */
static void request_completed(_unused_ void *userdata, struct MHD_Connection *c,
			      _unused_ void **req, _unused_ enum MHD_RequestTerminationCode code)
{
	struct http_server *h = userdata;
	struct http_conn *conn = conn_of(c);

	if (!conn || conn->shed)
		return;
	conn->answering = false;
	conn->since_usec = now_usec(CLOCK_MONOTONIC);
	conn_unlink(h, conn);
	conn_append(h, conn);
}

/* Closes a connection from our side: shutdown(2) wakes libmicrohttpd's
 * epoll set with an end of stream, and its next run closes the connection
 * (and notifies CLOSED) as if the client had gone. The fd stays
 * libmicrohttpd's. */
static void shed(struct http_server *h, struct http_conn *conn)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(conn->c, MHD_CONNECTION_INFO_CONNECTION_FD);

	if (!info || info->connect_fd < 0)
		return;
	(void)shutdown(info->connect_fd, SHUT_RDWR);
	conn->shed = true;
	h->n_shed++;
}

/* The first connection that waits for a request and has not been shed: the
 * one with the earliest request deadline. */
static struct http_conn *first_waiting(const struct http_server *h)
{
	struct http_conn *conn = h->head;

	while (conn && (conn->shed || conn->answering))
		conn = conn->next;
	return conn;
}

/* Sheds, oldest first, every connection past its request deadline and, with
 * fewer than HTTP_CONNECTIONS_SPARE slots left, as many waiting connections
 * as it takes to free them: idle and slow ones lose their place to a new
 * one, which is then never refused. Runs between MHD_run calls, when every
 * connection on the list is fully set up and not yet cleaned up. Walks only
 * the connections it sheds and the few being answered. */
static void shed_connections(struct http_server *h, uint64_t now)
{
	unsigned keep = h->conn_limit - HTTP_CONNECTIONS_SPARE;
	struct http_conn *conn, *next;

	for (conn = first_waiting(h); conn; conn = next) {
		bool expired, crowded;

		next = conn->next;
		if (conn->shed || conn->answering)
			continue;
		expired = now - conn->since_usec >= HTTP_REQUEST_DEADLINE_SEC * USEC_PER_SEC;
		crowded = h->n_conns - h->n_shed > keep;
		/* The list is ordered: everything after is younger. */
		if (!expired && !crowded)
			break;
		if (!expired)
			h->shed_crowded++;
		shed(h, conn);
	}
}

/* Arms the timer for the earlier of libmicrohttpd's next deadline and the
 * next request deadline, or disables it when there is none; now_too forces
 * an immediate run. */
static void arm_timer(struct http_server *h, bool now_too)
{
	MHD_UNSIGNED_LONG_LONG ms;
	struct http_conn *conn = first_waiting(h);
	uint64_t now, when = USEC_INFINITY;
	int r;

	r = sd_event_now(h->event, CLOCK_MONOTONIC, &now);
	if (r < 0)
		goto out;
	if (now_too)
		when = now;
	else if (MHD_get_timeout(h->daemon, &ms) == MHD_YES)
		when = ms >= (USEC_INFINITY - now) / USEC_PER_MSEC ? USEC_INFINITY - 1 :
		       now + ms * USEC_PER_MSEC;
	if (conn && conn->since_usec + HTTP_REQUEST_DEADLINE_SEC * USEC_PER_SEC < when)
		when = conn->since_usec + HTTP_REQUEST_DEADLINE_SEC * USEC_PER_SEC;
	if (when == USEC_INFINITY) {
		r = sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
		goto out;
	}
	r = sd_event_source_set_time(h->timer, when);
	if (r >= 0)
		r = sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT);
out:
	if (r < 0)
		log_warning_errno(r, "http: cannot arm the connection timer, ignoring");
}

/* One loop turn of the endpoint. A pass that accepted connections is
 * followed by another, which reads and answers what they have already sent:
 * a request is answered in the turn that accepts its connection. */
static void run_daemon(struct http_server *h)
{
	for (unsigned i = 0; i < HTTP_RUNS_PER_TURN; i++) {
		h->started = false;
		h->closed = false;
		if (MHD_run(h->daemon) != MHD_YES) {
			log_debug("http: MHD_run failed, ignoring");
			break;
		}
		if (!h->started)
			break;
	}
	shed_connections(h, now_usec(CLOCK_MONOTONIC));
	/* At the connection limit libmicrohttpd takes its listen socket out of
	 * its epoll set and puts it back only at the start of a later run,
	 * which nothing would trigger: after closing connections, run again
	 * at once. */
	arm_timer(h, h->closed);
}

static int on_io(_unused_ sd_event_source *s, _unused_ int fd, _unused_ uint32_t revents,
		 void *userdata)
{
	run_daemon(userdata);
	return 0;
}

static int on_timer(_unused_ sd_event_source *s, _unused_ uint64_t usec, void *userdata)
{
	run_daemon(userdata);
	return 0;
}

/* ---- listening ---- */

/* The first listening stream socket handed over by systemd, duplicated so
 * the original stays open for a server created again after a reload.
 * Returns 1 with *ret_fd set, 0 when there is none, or -errno. */
static int listen_socket_activated(int *ret_fd)
{
	int n = sd_listen_fds(0), fd;

	if (n <= 0)
		return n;
	for (int i = 0; i < n; i++) {
		if (sd_is_socket(SD_LISTEN_FDS_START + i, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
			continue;
		fd = fcntl(SD_LISTEN_FDS_START + i, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			return -errno;
		*ret_fd = fd;
		return 1;
	}
	return -ENOTSOCK;
}

static int listen_socket_open(const char *listen_addr, int *ret_fd)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, r;

	r = http_parse_listen(listen_addr, &ss, &len);
	if (r < 0)
		return r;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (ss.ss_family == AF_INET6) {
		/* [::] means both stacks, as for most daemons; a specific
		 * address means just that one. */
		int v6only = !IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr);

		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)
			goto fail;
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		goto fail;
	if (listen(fd, HTTP_LISTEN_BACKLOG) < 0)
		goto fail;
	*ret_fd = fd;
	return 0;
fail:
	r = -errno;
	(void)close(fd);
	return r;
}

/* The bound address of fd, for the face and the log lines. A non-IP socket
 * (AF_UNIX from systemd) is local: the private face. */
static void describe_socket(struct http_server *h, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "";

	(void)strscpy(h->address, sizeof(h->address), "a passed socket");
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	h->public_face = (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) &&
			 !http_sockaddr_is_loopback(&ss);
	if (ss.ss_family == AF_INET) {
		h->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		(void)inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
		(void)snprintf(h->address, sizeof(h->address), "%s:%d", host, h->port);
	} else if (ss.ss_family == AF_INET6) {
		h->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		(void)inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
		(void)snprintf(h->address, sizeof(h->address), "[%s]:%d", host, h->port);
	}
}

/* Makes room for HTTP_CONNECTIONS_MAX connections under RLIMIT_NOFILE,
 * raising the soft limit as far as that needs (not further: hooks inherit
 * it), at most to the hard one. Returns the connection limit that fits. */
static unsigned fit_connection_limit(void)
{
	const rlim_t want = (rlim_t)HTTP_CONNECTIONS_MAX + HTTP_FD_RESERVE;
	struct rlimit rl;
	unsigned limit;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return HTTP_CONNECTIONS_MIN;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		struct rlimit raised = rl;

		raised.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
			rl = raised;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
		return HTTP_CONNECTIONS_MAX;
	limit = rl.rlim_cur > (rlim_t)HTTP_FD_RESERVE + HTTP_CONNECTIONS_MIN ?
		(unsigned)(rl.rlim_cur - HTTP_FD_RESERVE) : HTTP_CONNECTIONS_MIN;
	log_warning("http: the open file limit (%llu) leaves room for %u connections, not %u; "
		    "serving at most %u", (unsigned long long)rl.rlim_cur, limit, HTTP_CONNECTIONS_MAX,
		    limit);
	return limit;
}

int http_server_new(sd_event *e, const char *listen_addr, const struct agent_state *state,
		    const struct metrics *metrics, const char *version, struct http_server **ret)
{
	struct http_server *h = NULL;
	const union MHD_DaemonInfo *info;
	int fd = -1, r;

	if (!e || !state || !ret)
		return -EINVAL;

	r = listen_socket_activated(&fd);
	if (r == 0)
		r = listen_socket_open(listen_addr, &fd);
	if (r < 0)
		goto out;

	h = xcalloc(1, sizeof(*h));
	h->event = sd_event_ref(e);
	h->routes.state = state;
	h->routes.metrics = metrics;
	h->routes.version = version ? version : "";
	describe_socket(h, fd);
	h->conn_limit = fit_connection_limit();

	h->daemon = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
				     handle_request, h,
				     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
				     MHD_OPTION_LISTEN_SOCKET, fd,
				     MHD_OPTION_CONNECTION_LIMIT, h->conn_limit,
				     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_CONNECTION_TIMEOUT_SEC,
				     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_HEADERS_MAX_BYTES,
				     MHD_OPTION_URI_LOG_CALLBACK, uri_logged, h,
				     MHD_OPTION_UNESCAPE_CALLBACK, unescape_none, h,
				     MHD_OPTION_NOTIFY_CONNECTION, connection_notify, h,
				     MHD_OPTION_NOTIFY_COMPLETED, request_completed, h,
				     MHD_OPTION_END);
	/* From here on the socket is the daemon's (or, on failure, left to
	 * whatever libmicrohttpd did with it: never closed twice). */
	fd = -1;
	if (!h->daemon) {
		r = -EIO;
		goto out;
	}

	info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || info->epoll_fd < 0) {
		r = -EIO;
		goto out;
	}
	r = sd_event_add_io(e, &h->io, info->epoll_fd, EPOLLIN, on_io, h);
	if (r < 0)
		goto out;
	r = sd_event_add_time(e, &h->timer, CLOCK_MONOTONIC, 0, USEC_PER_MSEC, on_timer, h);
	if (r < 0)
		goto out;
	r = sd_event_source_set_priority(h->io, HTTP_EVENT_PRIORITY);
	if (r >= 0)
		r = sd_event_source_set_priority(h->timer, HTTP_EVENT_PRIORITY);
	if (r < 0)
		goto out;
	(void)sd_event_source_set_description(h->io, "http-io");
	(void)sd_event_source_set_description(h->timer, "http-timer");
	arm_timer(h, false);

	*ret = h;
	h = NULL;
	r = 0;
out:
	if (fd >= 0)
		(void)close(fd);
	http_server_free(h);
	return r;
}

int http_server_port(const struct http_server *h)
{
	return h ? h->port : 0;
}

unsigned http_server_connection_limit(const struct http_server *h)
{
	return h ? h->conn_limit : 0;
}

uint64_t http_server_shed_count(const struct http_server *h)
{
	return h ? h->shed_crowded : 0;
}

bool http_server_is_public(const struct http_server *h)
{
	return h && h->public_face;
}

void http_server_expose(struct http_server *h, bool metrics, bool status)
{
	if (!h)
		return;
	h->expose_metrics = metrics;
	h->expose_status = status;
	if (h->public_face)
		log_info("http: %s is not a loopback address: a connection that arrives on a loopback "
			 "address gets every path, any other /healthz, /readyz%s%s; other paths answer 404",
			 h->address, metrics ? ", /metrics" : "", status ? ", /v1/status" : "");
}

void http_server_free(struct http_server *h)
{
	if (!h)
		return;
	/* The sources go before the daemon closes the fd they watch. */
	h->io = sd_event_source_disable_unref(h->io);
	h->timer = sd_event_source_disable_unref(h->timer);
	/* Stopping notifies CLOSED for every connection, emptying the list. */
	if (h->daemon)
		MHD_stop_daemon(h->daemon);
	while (h->head) {
		struct http_conn *next = h->head->next;

		free(h->head);
		h->head = next;
	}
	sd_event_unref(h->event);
	free(h);
}
