/* text.c - the plain-text and JSON answers the clouds share: a body that
 * is one JSON value, a token or a name of printable ASCII. Pure, bounded
 * by the length given (never by a NUL), no logging. */
#include "clouds/provider-internal.h"

#include <errno.h>
#include <string.h>

#include <cjson/cJSON.h>

cJSON *provider_parse_json(const char *body, size_t len)
{
	const char *end = NULL;
	cJSON *root;

	if (!body || len == 0)
		return NULL;
	root = cJSON_ParseWithLengthOpts(body, len, &end, false);
	if (!root)
		return NULL;
	if (!end || end < body || end > body + len)
		goto bad;
	for (; end < body + len; end++)
		if (!provider_trailing_space(*end))
			goto bad;
	return root;
bad:
	cJSON_Delete(root);
	return NULL;
}

bool provider_trailing_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int provider_parse_text(const char *body, size_t len, size_t max)
{
	if (!body)
		return -EBADMSG;
	while (len > 0 && provider_trailing_space(body[len - 1]))
		len--;
	if (len == 0 || len > max || len > INT32_MAX)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)body[i] <= 0x20 || (unsigned char)body[i] >= 0x7f)
			return -EBADMSG;
	return (int)len;
}

int provider_parse_name(const char *body, size_t len, char *ret, size_t n)
{
	int k = provider_parse_text(body, len, PROVIDER_NAME_MAX - 1);

	if (k < 0 || (size_t)k >= n)
		return -EBADMSG;
	memcpy(ret, body, (size_t)k);
	ret[k] = '\0';
	return 0;
}
