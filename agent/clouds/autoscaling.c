/* autoscaling.c - the EC2 Auto Scaling Query API as the agent speaks it:
 * form bodies with values escaped by libcurl, the request signed by
 * libcurl's SigV4 with the role's key and session token, and the XML
 * answers read with libexpat, never by hand. It sends nothing itself (the
 * AWS provider does), never logs, and never puts a secret in an error. */
#include "clouds/autoscaling.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <expat.h>

#include "util.h"

char *autoscaling_form(const char *action, const char *const *fields)
{
	char *body = xasprintf("Action=%s&Version=" AUTOSCALING_VERSION, action);

	for (size_t i = 0; fields && fields[i] && fields[i + 1]; i += 2) {
		/* The handle is not used by curl_easy_escape. */
		char *v = curl_easy_escape(NULL, fields[i + 1], 0), *joined;

		if (!v) {
			free(body);
			return NULL;
		}
		joined = xasprintf("%s&%s=%s", body, fields[i], v);
		curl_free(v);
		free(body);
		body = joined;
	}
	return body;
}

int autoscaling_default_url(const char *region, char *buf, size_t n)
{
	int k;

	if (!region || !region[0])
		return -EINVAL;
	k = snprintf(buf, n, "https://autoscaling.%s.amazonaws.com%s/", region,
		     strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
	return k < 0 || (size_t)k >= n ? -EINVAL : 0;
}

int autoscaling_request_init(struct autoscaling_request *q, const char *url, const char *region,
			     const struct aws_credentials *c, const char *body, uint64_t timeout_usec)
{
	size_t h = 0;

	memset(q, 0, sizeof(*q));
	if (!url || !region || !region[0] || !c || !c->key_id[0] || !body)
		return -EINVAL;
	if (snprintf(q->sigv4, sizeof(q->sigv4), "aws:amz:%s:autoscaling", region) >= (int)sizeof(q->sigv4))
		return -EINVAL;
	q->body = xstrdup(body);
	q->userpwd = xasprintf("%s:%s", c->key_id, c->secret);
	q->headers[h++] = "Content-Type: application/x-www-form-urlencoded; charset=utf-8";
	if (c->token[0]) {
		q->token_header = xasprintf("X-Amz-Security-Token: %s", c->token);
		q->headers[h++] = q->token_header;
	}
	q->headers[h] = NULL;
	q->call = (struct imds_call){
		.method = "POST",
		.url = url,
		.headers = q->headers,
		.body = q->body,
		.body_len = strlen(q->body),
		.timeout_usec = timeout_usec,
		.aws_sigv4 = q->sigv4,
		.userpwd = q->userpwd,
	};
	return 0;
}

static void free_wiped(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

void autoscaling_request_done(struct autoscaling_request *q)
{
	if (!q)
		return;
	free(q->body);
	free_wiped(q->userpwd);
	free_wiped(q->token_header);
	memset(q, 0, sizeof(*q));
}

/* ---- the XML answers ---- */

#define XML_DEPTH_MAX 16
#define XML_NAME_MAX  64
#define XML_TEXT_MAX  1024

struct xml_state {
	XML_Parser parser;
	struct autoscaling_answer *ans;
	char names[XML_DEPTH_MAX][XML_NAME_MAX];  /* local names from the root down */
	int depth;
	char text[XML_TEXT_MAX];                  /* of the element being read */
	size_t text_len;
	bool bad;
};

/* The local name of an element: what follows the namespace URI. */
static const char *local_name(const XML_Char *name)
{
	const char *sp = strrchr(name, ' ');

	return sp ? sp + 1 : name;
}

static void refuse(struct xml_state *x)
{
	x->bad = true;
	(void)XML_StopParser(x->parser, XML_FALSE);
}

static void on_start(void *userdata, const XML_Char *name, const XML_Char **attrs)
{
	struct xml_state *x = userdata;

	if (x->bad)
		return;
	if (x->depth >= XML_DEPTH_MAX) {
		refuse(x);
		return;
	}
	(void)strscpy(x->names[x->depth], XML_NAME_MAX, local_name(name));
	if (x->depth == 0)
		(void)strscpy(x->ans->root, sizeof(x->ans->root), x->names[0]);
	x->depth++;
	x->text_len = 0;
	x->text[0] = '\0';
}

static void on_text(void *userdata, const XML_Char *s, int len)
{
	struct xml_state *x = userdata;
	size_t n = len > 0 ? (size_t)len : 0;

	if (x->bad)
		return;
	if (n > sizeof(x->text) - 1 - x->text_len)
		n = sizeof(x->text) - 1 - x->text_len;
	memcpy(x->text + x->text_len, s, n);
	x->text_len += n;
	x->text[x->text_len] = '\0';
}

/* The element's text as a field: UTF-8, cut to fit, control characters as
 * spaces, no space at either end. */
static void set_field(char *dst, size_t n, const char *text)
{
	size_t a = 0, b;

	event_set_text(dst, n, text);
	for (char *p = dst; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	while (dst[a] == ' ')
		a++;
	b = strlen(dst);
	while (b > a && dst[b - 1] == ' ')
		b--;
	memmove(dst, dst + a, b - a);
	dst[b - a] = '\0';
}

static bool is(const struct xml_state *x, int level, const char *name)
{
	return level >= 0 && level < x->depth && strcmp(x->names[level], name) == 0;
}

static void on_end(void *userdata, const XML_Char *name)
{
	struct xml_state *x = userdata;
	struct autoscaling_answer *a = x->ans;
	int d;

	if (x->bad || x->depth == 0)
		return;
	d = x->depth - 1;   /* the element that ends */
	if (is(x, d - 1, "Error") && is(x, d, "Code")) {
		set_field(a->code, sizeof(a->code), x->text);
		a->error = a->code[0] != '\0';
	} else if (is(x, d - 1, "Error") && is(x, d, "Message")) {
		set_field(a->message, sizeof(a->message), x->text);
	} else if (is(x, d, "RequestId") && !a->request_id[0]) {
		set_field(a->request_id, sizeof(a->request_id), x->text);
	} else if (is(x, d - 2, "AutoScalingInstances") && is(x, d - 1, "member") && a->n_instances == 0) {
		if (is(x, d, "AutoScalingGroupName"))
			set_field(a->group, sizeof(a->group), x->text);
		else if (is(x, d, "InstanceId"))
			set_field(a->instance_id, sizeof(a->instance_id), x->text);
		else if (is(x, d, "LifecycleState"))
			set_field(a->lifecycle_state, sizeof(a->lifecycle_state), x->text);
	} else if (is(x, d - 1, "AutoScalingInstances") && is(x, d, "member")) {
		a->n_instances++;
	}
	x->depth--;
	x->text_len = 0;
	x->text[0] = '\0';
}

/* AWS never sends a DTD; one here is not an answer of theirs, and entity
 * tricks are refused outright. */
static void on_doctype(void *userdata, const XML_Char *name, const XML_Char *sysid,
		       const XML_Char *pubid, int has_internal_subset)
{
	refuse(userdata);
}

static void on_entity(void *userdata, const XML_Char *name, int parameter, const XML_Char *value,
		      int value_len, const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
		      const XML_Char *notation)
{
	refuse(userdata);
}

int autoscaling_parse(const char *body, size_t len, struct autoscaling_answer *ret)
{
	struct autoscaling_answer a;
	struct xml_state x;
	int r = -EBADMSG;

	if (!body || len == 0 || len > INT_MAX)
		return -EBADMSG;
	memset(&a, 0, sizeof(a));
	memset(&x, 0, sizeof(x));
	x.ans = &a;
	x.parser = XML_ParserCreateNS(NULL, ' ');
	if (!x.parser)
		return -ENOMEM;
	XML_SetUserData(x.parser, &x);
	XML_SetElementHandler(x.parser, on_start, on_end);
	XML_SetCharacterDataHandler(x.parser, on_text);
	XML_SetStartDoctypeDeclHandler(x.parser, on_doctype);
	XML_SetEntityDeclHandler(x.parser, on_entity);
	if (XML_Parse(x.parser, body, (int)len, XML_TRUE) == XML_STATUS_OK && !x.bad && a.root[0]) {
		*ret = a;
		r = 0;
	}
	XML_ParserFree(x.parser);
	return r;
}

enum imds_result autoscaling_outcome(const char *action, const struct imds_reply *r, char *line,
				     size_t n, bool *ret_expired, struct autoscaling_answer *ret_answer)
{
	struct autoscaling_answer a;
	bool parsed = r->len > 0 && autoscaling_parse(r->body, r->len, &a) == 0;
	enum imds_result result = r->result;

	if (ret_expired)
		*ret_expired = false;
	if (!parsed)
		memset(&a, 0, sizeof(a));
	if (ret_answer)
		*ret_answer = a;
	if (r->result == IMDS_RESULT_OK) {
		line[0] = '\0';
		return IMDS_RESULT_OK;
	}
	if (parsed && a.error && a.code[0]) {
		if (ret_expired)
			*ret_expired = strcmp(a.code, "ExpiredToken") == 0 ||
				       strcmp(a.code, "ExpiredTokenException") == 0;
		if (strcmp(a.code, "Throttling") == 0)
			result = IMDS_RESULT_THROTTLED;
		(void)snprintf(line, n, "%s: %s: %s", action, a.code, a.message[0] ? a.message : "(no message)");
	} else {
		(void)snprintf(line, n, "%s: %s", action, r->error && r->error[0] ? r->error : "failed");
	}
	return result == IMDS_RESULT_OK ? IMDS_RESULT_TRANSPORT : result;
}
