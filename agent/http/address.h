/* address.h - the listen address (address.c): one parser for the endpoint
 * and for config validation. */
#ifndef SPOT_HTTP_ADDRESS_H
#define SPOT_HTTP_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* What is wrong with a listen address, in the order it is looked at. */
enum http_address_error {
	HTTP_ADDRESS_OK,
	HTTP_ADDRESS_FORM,       /* not ADDR:PORT or [IPV6]:PORT */
	HTTP_ADDRESS_BRACKETS,   /* an IPv6 address without its brackets */
	HTTP_ADDRESS_HOST,       /* ADDR is not an address literal (of family) */
	HTTP_ADDRESS_PORT,       /* PORT is not 0..65535 */
};

struct http_address {
	enum http_address_error error;
	int family;                  /* AF_INET or AF_INET6 once the form is known */
	/* Where the parts are in the string parsed (borrowed from it), for
	 * messages: the address without brackets, and the port. */
	const char *host;
	size_t host_len;
	const char *port;
	bool named;                  /* ADDR was "localhost", not a literal */
	/* On success: */
	struct sockaddr_storage ss;
	socklen_t len;
	uint16_t port_number;
};

/* Parses "ADDR:PORT" or "[IPV6]:PORT": ADDR an IPv4 literal or
 * "localhost" (127.0.0.1, resolved by no one), IPV6 an IPv6 literal
 * without a zone, PORT 0 to 65535 (0 = any free port; config asks for 1
 * or more, and a literal: ret->named tells). Returns 0, or -EINVAL with
 * ret->error and the parts found so far. *ret is always written. */
int http_address_parse(const char *s, struct http_address *ret);

/* http_address_parse's socket address only: 0 or -EINVAL; the outputs
 * are written only on success. */
int http_parse_listen(const char *listen, struct sockaddr_storage *ret, socklen_t *ret_len);

/* 127.0.0.0/8, ::1 and IPv4-mapped 127.0.0.0/8: the endpoint's private
 * face. */
bool http_sockaddr_is_loopback(const struct sockaddr_storage *ss);

/* True when listen parses to a loopback address; false for any other
 * address and for a string that does not parse ("none" included). */
bool http_listen_is_loopback(const char *listen);

#endif
