/* autoscaling.h - the EC2 Auto Scaling Query API as the agent speaks it:
 * form bodies, the signed request (libcurl computes SigV4), and the XML
 * answers and errors (read with libexpat). The AWS provider
 * (aws-lifecycle.c) decides which call to make and sends it. */
#ifndef SPOT_AUTOSCALING_H
#define SPOT_AUTOSCALING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clouds/aws.h"
#include "clouds/imds.h"

#define AUTOSCALING_VERSION      "2011-01-01"
/* A call leaves the machine, maybe through a proxy and a TLS handshake:
 * it gets longer than a link-local metadata request. */
#define AUTOSCALING_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define AUTOSCALING_URL_MAX      1100
#define AUTOSCALING_CODE_MAX     64
#define AUTOSCALING_MESSAGE_MAX  256

/* The form body of a Query API call: "Action=<action>&Version=2011-01-01"
 * and then "&<name>=<value>" for each pair of fields (a NULL-terminated
 * list of name, value, name, value, ...), every value escaped as
 * curl_easy_escape does (all but A-Z a-z 0-9 - . _ ~), as SigV4 wants.
 * Names are used as given. The caller frees the result; NULL only when out
 * of memory. */
char *autoscaling_form(const char *action, const char *const *fields);

/* The default endpoint of a region: https://autoscaling.REGION.amazonaws.com/
 * (.amazonaws.com.cn for cn-* regions) into buf. 0 or -EINVAL. */
int autoscaling_default_url(const char *region, char *buf, size_t n);

/* One signed POST, ready for imds_call on IMDS_SLOT_AUTOSCALING: call
 * points into the struct, which owns every string until
 * autoscaling_request_done (which wipes the secret). */
struct autoscaling_request {
	struct imds_call call;
	char *body;
	char *userpwd;                        /* "KEY:SECRET" */
	char *token_header;                   /* "X-Amz-Security-Token: ..." */
	char sigv4[64];                       /* "aws:amz:REGION:autoscaling" */
	const char *headers[3];
};
/* url: the endpoint (used as given); region and c sign the request (c's
 * session token goes into X-Amz-Security-Token when not ""); body as
 * autoscaling_form made it. 0 or -EINVAL (no region, no key). */
int autoscaling_request_init(struct autoscaling_request *q, const char *url, const char *region,
			     const struct aws_credentials *c, const char *body, uint64_t timeout_usec);
void autoscaling_request_done(struct autoscaling_request *q);

/* What an answer document says. Text is UTF-8, cut to fit. */
struct autoscaling_answer {
	char root[64];                        /* the document element's local name */
	bool error;                           /* an Error/Code was read (ErrorResponse, Response/Errors) */
	char code[AUTOSCALING_CODE_MAX];      /* Error/Code */
	char message[AUTOSCALING_MESSAGE_MAX];/* Error/Message, control characters as spaces */
	char request_id[64];
	/* DescribeAutoScalingInstances: the instances listed, and the first
	 * one's group, id and lifecycle state. */
	size_t n_instances;
	char group[AWS_GROUP_MAX];
	char instance_id[PROVIDER_NAME_MAX];
	char lifecycle_state[64];
};

/* Parses an Auto Scaling answer with libexpat (namespaces by local name;
 * no DTD, no entity declarations: a document with them is refused). 0, or
 * -EBADMSG when body is not such a document (not XML, empty, nested more
 * than 16 deep). */
int autoscaling_parse(const char *body, size_t len, struct autoscaling_answer *ret);

/* The outcome of a call as one line "<Action>: <Code>: <Message>" (the
 * error document's), or "<Action>: <transport error>" ("HTTP 503",
 * "timed out after 10.0 s") when the answer is not one; "" when OK. The
 * result: IMDS_RESULT_OK for a 2xx, IMDS_RESULT_THROTTLED for the code
 * Throttling, else the reply's. *ret_expired (may be NULL) tells whether
 * the code says the session token expired (ExpiredToken,
 * ExpiredTokenException). *ret_answer (may be NULL) gets the parsed
 * document, zeroed when there is none. */
enum imds_result autoscaling_outcome(const char *action, const struct imds_reply *r, char *line,
				     size_t n, bool *ret_expired, struct autoscaling_answer *ret_answer);

#endif
