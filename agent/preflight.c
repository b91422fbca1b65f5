/* preflight.c - the checks that turn a machine the agent cannot work on
 * into one clear line before it starts, instead of a surprise during an
 * eviction: a hook directory that is not there, a state directory where
 * state.json cannot be saved, a listen address something else holds. It
 * looks and never changes anything, except for creating the state
 * directory when the daemon asks it to; it does not log. */
#include "preflight.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/http.h"
#include "store/state-file.h"
#include "util.h"

/* ---- hook directories ---- */

/* Opens dir as a directory we may list and search. 0 or -errno. */
static int check_dir_readable(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	(void)close(fd);
	/* Opening needs read permission; stat'ing the files needs search. */
	if (faccessat(AT_FDCWD, dir, X_OK, AT_EACCESS) < 0)
		return -errno;
	return 0;
}

int preflight_hooks_dirs(const char *hooks_dir, const char *lib_dir, char *msg, size_t n)
{
	int r = check_dir_readable(hooks_dir);

	if (r == -ENOENT) {
		(void)snprintf(msg, n, "hooks-dir '%s' does not exist: create it (an empty directory "
			       "runs no hooks) or set hooks-dir", hooks_dir);
		return r;
	}
	if (r == -ENOTDIR) {
		(void)snprintf(msg, n, "hooks-dir '%s' is not a directory", hooks_dir);
		return r;
	}
	if (r < 0) {
		(void)snprintf(msg, n, "hooks-dir '%s' cannot be read: %s", hooks_dir, strerror(-r));
		return r;
	}
	if (!lib_dir || !lib_dir[0]) {
		(void)snprintf(msg, n, "hooks-dir '%s' is readable; hooks-lib-dir is none", hooks_dir);
		return 0;
	}
	r = check_dir_readable(lib_dir);
	if (r == -ENOENT) {
		/* No package has installed a hook: nothing to merge. */
		(void)snprintf(msg, n, "hooks-dir '%s' is readable; hooks-lib-dir '%s' does not exist "
			       "(no packaged hooks)", hooks_dir, lib_dir);
		return 0;
	}
	if (r == -ENOTDIR) {
		(void)snprintf(msg, n, "hooks-lib-dir '%s' is not a directory", lib_dir);
		return r;
	}
	if (r < 0) {
		(void)snprintf(msg, n, "hooks-lib-dir '%s' cannot be read: %s", lib_dir, strerror(-r));
		return r;
	}
	(void)snprintf(msg, n, "hooks-dir '%s' and hooks-lib-dir '%s' are readable", hooks_dir, lib_dir);
	return 0;
}

/* ---- the state directory ---- */

/* Writes the parent directory of path (trailing slashes ignored) to buf. */
static void parent_dir(const char *path, char *buf, size_t n)
{
	size_t len = strlen(path);

	while (len > 1 && path[len - 1] == '/')
		len--;
	while (len > 0 && path[len - 1] != '/')
		len--;
	while (len > 1 && path[len - 1] == '/')
		len--;
	if (len == 0) {
		(void)strscpy(buf, n, ".");
		return;
	}
	if (len >= n)
		len = n - 1;
	memcpy(buf, path, len);
	buf[len] = '\0';
}

int preflight_state_dir(const char *state_dir, bool create, char *msg, size_t n)
{
	char parent[PATH_MAX];
	struct stat st;
	int r;

	if (stat(state_dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			(void)snprintf(msg, n, "state-dir '%s' is not a directory", state_dir);
			return -ENOTDIR;
		}
		/* Root passes permission bits, not a read-only mount or an
		 * immutable directory: access(2) reports all three. */
		if (faccessat(AT_FDCWD, state_dir, W_OK | X_OK, AT_EACCESS) < 0) {
			r = -errno;
			(void)snprintf(msg, n, "state-dir '%s' is not writable (%s), so '%s/%s' cannot be "
				       "saved", state_dir, strerror(-r), state_dir, STATE_FILE_NAME);
			return r;
		}
		(void)snprintf(msg, n, "state-dir '%s' is writable", state_dir);
		return 0;
	}
	r = -errno;
	if (r != -ENOENT) {
		(void)snprintf(msg, n, "state-dir '%s' cannot be used: %s", state_dir, strerror(-r));
		return r;
	}

	parent_dir(state_dir, parent, sizeof(parent));
	r = stat(parent, &st) < 0 ? -errno : !S_ISDIR(st.st_mode) ? -ENOTDIR : 0;
	if (r < 0) {
		(void)snprintf(msg, n, "state-dir '%s' does not exist and cannot be created: its parent "
			       "'%s' %s", state_dir, parent,
			       r == -ENOENT ? "does not exist either" : r == -ENOTDIR ? "is not a directory" :
			       strerror(-r));
		return r;
	}
	if (faccessat(AT_FDCWD, parent, W_OK | X_OK, AT_EACCESS) < 0) {
		r = -errno;
		(void)snprintf(msg, n, "state-dir '%s' does not exist and cannot be created in '%s': %s",
			       state_dir, parent, strerror(-r));
		return r;
	}
	if (!create) {
		(void)snprintf(msg, n, "state-dir '%s' does not exist yet; the agent creates it (mode 0700)",
			       state_dir);
		return 0;
	}
	if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		(void)snprintf(msg, n, "state-dir '%s' cannot be created: %s", state_dir, strerror(-r));
		return r;
	}
	(void)snprintf(msg, n, "state-dir '%s' created", state_dir);
	return 0;
}

/* ---- the listen address ---- */

/* Milliseconds left until deadline_usec (monotonic), 0 when past. */
static int msec_left(uint64_t deadline_usec)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC);

	return now >= deadline_usec ? 0 : (int)((deadline_usec - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC);
}

/* Waits for events on fd until the deadline: 0 when ready, -ETIMEDOUT, or -errno. */
static int wait_fd(int fd, short events, uint64_t deadline_usec)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		int k = poll(&p, 1, msec_left(deadline_usec));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		return k == 0 ? -ETIMEDOUT : 0;
	}
}

/* True when the headers of an HTTP answer (NUL-terminated) carry a Server
 * header starting with HTTP_SERVER_PRODUCT "/". */
static bool answer_is_agent(const char *answer)
{
	const char *line = strstr(answer, "\r\n");
	const size_t plen = strlen(HTTP_SERVER_PRODUCT "/");

	if (strncmp(answer, "HTTP/1.", 7) != 0)
		return false;
	while (line && strncmp(line, "\r\n\r\n", 4) != 0) {
		const char *v;

		line += 2;
		if (strncasecmp(line, "Server:", 7) == 0) {
			for (v = line + 7; *v == ' ' || *v == '\t'; v++)
				;
			if (strncmp(v, HTTP_SERVER_PRODUCT "/", plen) == 0)
				return true;
		}
		line = strstr(line, "\r\n");
	}
	return false;
}

/* Asks what holds the address for /healthz. 1 when it answers as the
 * agent, 0 when it answers otherwise, -errno when it cannot be asked. */
static int probe_agent(const struct sockaddr_storage *bound, socklen_t len)
{
	static const char request[] = "GET /healthz HTTP/1.0\r\nHost: spot-agent\r\n"
				      "User-Agent: spot-agent-check\r\n\r\n";
	uint64_t deadline = now_usec(CLOCK_MONOTONIC) + PREFLIGHT_PROBE_TIMEOUT_MSEC * USEC_PER_MSEC;
	struct sockaddr_storage ss = *bound;
	char answer[PREFLIGHT_ANSWER_MAX + 1];
	size_t got = 0;
	socklen_t elen = sizeof(int);
	int fd, r, soerr = 0;

	/* A wildcard address is reached on loopback. */
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
			sin6->sin6_addr = in6addr_loopback;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		if (sin->sin_addr.s_addr == htonl(INADDR_ANY))
			sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	}

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		if (errno != EINPROGRESS) {
			r = -errno;
			goto out;
		}
		r = wait_fd(fd, POLLOUT, deadline);
		if (r < 0)
			goto out;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &elen) < 0 || soerr != 0) {
			r = soerr ? -soerr : -errno;
			goto out;
		}
	}
	/* The request is far smaller than any socket buffer. */
	if (send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(request) - 1)) {
		r = -errno;
		goto out;
	}
	while (got < PREFLIGHT_ANSWER_MAX) {
		ssize_t k;

		r = wait_fd(fd, POLLIN, deadline);
		if (r < 0)
			break; /* judge what came so far */
		k = recv(fd, answer + got, PREFLIGHT_ANSWER_MAX - got, 0);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
		answer[got] = '\0';
		if (strstr(answer, "\r\n\r\n"))
			break; /* the headers are in */
	}
	answer[got] = '\0';
	r = got > 0 ? answer_is_agent(answer) : r < 0 ? r : -ECONNRESET;
out:
	(void)close(fd);
	return r;
}

int preflight_listen(const char *listen, char *msg, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, r;

	if (strcmp(listen, "none") == 0) {
		(void)snprintf(msg, n, "listen = none: no HTTP endpoint");
		return 0;
	}
	r = http_parse_listen(listen, &ss, &len);
	if (r < 0) {
		(void)snprintf(msg, n, "listen '%s' is not ADDR:PORT or [IPV6]:PORT", listen);
		return r;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		(void)snprintf(msg, n, "listen '%s': cannot create a socket: %s", listen, strerror(-r));
		return r;
	}
	/* As the daemon binds it (http.c): SO_REUSEADDR, and [::] for both stacks. */
	r = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (r == 0 && ss.ss_family == AF_INET6) {
		int v6only = !IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr);

		r = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	}
	if (r == 0)
		r = bind(fd, (struct sockaddr *)&ss, len);
	r = r < 0 ? -errno : 0;
	(void)close(fd);
	if (r == 0) {
		(void)snprintf(msg, n, "listen '%s' can be bound", listen);
		return 0;
	}
	if (r != -EADDRINUSE) {
		(void)snprintf(msg, n, "listen '%s' cannot be bound: %s", listen, strerror(-r));
		return r;
	}
	r = probe_agent(&ss, len);
	if (r > 0) {
		(void)snprintf(msg, n, "listen '%s' is in use by a running spot-agent", listen);
		return 0;
	}
	if (r == 0)
		(void)snprintf(msg, n, "listen '%s' is in use by another program (it does not answer "
			       "/healthz as spot-agent): stop it or set listen", listen);
	else
		(void)snprintf(msg, n, "listen '%s' is in use, and what holds it does not answer "
			       "/healthz (%s): stop it or set listen", listen, strerror(-r));
	return -EADDRINUSE;
}
