/* address.c - the listen address: "ADDR:PORT" or "[IPV6]:PORT" parsed into
 * a socket address, and whether an address is loopback. The one rule for
 * both the endpoint (server.c) and config validation (config/values.c),
 * which words its own messages from what is reported here. It parses
 * strings and socket addresses only; it never binds, resolves a name or
 * logs. */
#include "http/address.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "util.h"

int http_address_parse(const char *s, struct http_address *ret)
{
	struct http_address a = { .error = HTTP_ADDRESS_FORM };
	char host[INET6_ADDRSTRLEN];
	const char *port_str;
	uint64_t port;

	if (!s || !ret)
		return -EINVAL;
	if (s[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;
		const char *end = strchr(s, ']');

		if (!end || end[1] != ':')
			goto out;
		a.family = AF_INET6;
		a.host = s + 1;
		a.host_len = (size_t)(end - a.host);
		a.port = port_str = end + 2;
		a.error = HTTP_ADDRESS_HOST;
		if (a.host_len == 0 || a.host_len >= sizeof(host))
			goto out;
		memcpy(host, a.host, a.host_len);
		host[a.host_len] = '\0';
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			goto out;
		sin6->sin6_family = AF_INET6;
		a.len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;
		const char *colon = strrchr(s, ':');

		if (!colon)
			goto out;
		a.family = AF_INET;
		a.host = s;
		a.host_len = (size_t)(colon - s);
		a.port = port_str = colon + 1;
		/* A bare IPv6 address is ambiguous with its port: brackets. */
		a.error = HTTP_ADDRESS_BRACKETS;
		if (memchr(s, ':', a.host_len))
			goto out;
		a.error = HTTP_ADDRESS_HOST;
		if (a.host_len == 0 || a.host_len >= sizeof(host))
			goto out;
		memcpy(host, a.host, a.host_len);
		host[a.host_len] = '\0';
		/* The one name taken: it needs no resolver. */
		if (strcmp(host, "localhost") == 0) {
			(void)strscpy(host, sizeof(host), "127.0.0.1");
			a.named = true;
		}
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			goto out;
		sin->sin_family = AF_INET;
		a.len = sizeof(*sin);
	}

	a.error = HTTP_ADDRESS_PORT;
	if (parse_uint64(port_str, 0, 65535, &port) < 0)
		goto out;
	a.port_number = (uint16_t)port;
	if (a.family == AF_INET6)
		((struct sockaddr_in6 *)&a.ss)->sin6_port = htons(a.port_number);
	else
		((struct sockaddr_in *)&a.ss)->sin_port = htons(a.port_number);
	a.error = HTTP_ADDRESS_OK;
out:
	*ret = a;
	return a.error == HTTP_ADDRESS_OK ? 0 : -EINVAL;
}

int http_parse_listen(const char *listen_addr, struct sockaddr_storage *ret, socklen_t *ret_len)
{
	struct http_address a;

	if (!ret || !ret_len || http_address_parse(listen_addr, &a) < 0)
		return -EINVAL;
	*ret = a.ss;
	*ret_len = a.len;
	return 0;
}

bool http_sockaddr_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

bool http_listen_is_loopback(const char *listen_addr)
{
	struct sockaddr_storage ss;
	socklen_t len;

	return http_parse_listen(listen_addr, &ss, &len) == 0 && http_sockaddr_is_loopback(&ss);
}
