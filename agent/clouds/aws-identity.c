/* aws-identity.c - what the Auto Scaling calls need to know of the
 * instance, read from its metadata: the region, the group's name, the
 * instance profile's role and its temporary credentials, with the rule of
 * which is asked next and when the credentials are renewed. Pure: the AWS
 * provider sends the requests; nothing here logs, and no secret is ever
 * put in an error line. */
#include "clouds/aws.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "clouds/provider-internal.h"
#include "util.h"

#define META "/latest/meta-data/"

void aws_credentials_wipe(struct aws_credentials *c)
{
	explicit_bzero(c, sizeof(*c));
}

/* body[0..len) without trailing whitespace: its length, or -EBADMSG when
 * that is 0 or more than max, or a byte is not allowed by ok(). */
static int trimmed(const char *body, size_t len, size_t max, bool (*ok)(unsigned char c))
{
	if (!body)
		return -EBADMSG;
	while (len > 0 && provider_trailing_space(body[len - 1]))
		len--;
	if (len == 0 || len > max)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++)
		if (!ok((unsigned char)body[i]))
			return -EBADMSG;
	return (int)len;
}

static int copy_out(const char *body, int k, char *ret, size_t n)
{
	if (k < 0 || (size_t)k >= n)
		return -EBADMSG;
	memcpy(ret, body, (size_t)k);
	ret[k] = '\0';
	return 0;
}

static bool region_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* IAM's own set for role names: they end up in a URL path. */
static bool role_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("+=,.@_-", c) != NULL);
}

/* A group name is any text; it only ever goes into a form value, escaped. */
static bool group_char(unsigned char c)
{
	return c >= 0x20 && c != 0x7f;
}

static bool key_id_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Secrets and session tokens go into a header or curl's user:password:
 * printable ASCII, no space. */
static bool secret_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

int aws_parse_region(const char *body, size_t len, char *ret, size_t n)
{
	return copy_out(body, trimmed(body, len, AWS_REGION_MAX - 1, region_char), ret, n);
}

int aws_parse_role(const char *body, size_t len, char *ret, size_t n)
{
	size_t first;

	if (!body)
		return -EBADMSG;
	/* The first line; the others (there is one role per profile) are
	 * not looked at. */
	for (first = 0; first < len && body[first] != '\n'; first++)
		;
	return copy_out(body, trimmed(body, first, AWS_ROLE_MAX - 1, role_char), ret, n);
}

int aws_parse_group_name(const char *body, size_t len, char *ret, size_t n)
{
	return copy_out(body, trimmed(body, len, AWS_GROUP_MAX - 1, group_char), ret, n);
}

/* A string member that passes trimmed() whole (no trailing space either). */
static int json_field(const cJSON *o, const char *key, size_t max, bool (*ok)(unsigned char c),
		      char *ret, size_t n)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	size_t len;

	if (!cJSON_IsString(v) || !v->valuestring)
		return -EBADMSG;
	len = strnlen(v->valuestring, max + 1);
	if (trimmed(v->valuestring, len, max, ok) != (int)len)
		return -EBADMSG;
	return copy_out(v->valuestring, (int)len, ret, n);
}

int aws_parse_document_region(const char *body, size_t len, char *ret, size_t n)
{
	char region[AWS_REGION_MAX];
	cJSON *root = provider_parse_json(body, len);
	int r = -EBADMSG;

	if (cJSON_IsObject(root) &&
	    json_field(root, "region", AWS_REGION_MAX - 1, region_char, region, sizeof(region)) == 0)
		r = copy_out(region, (int)strlen(region), ret, n);
	cJSON_Delete(root);
	return r;
}

int aws_parse_credentials(const char *body, size_t len, struct aws_credentials *ret)
{
	struct aws_credentials c;
	const cJSON *code, *expiration;
	cJSON *root = provider_parse_json(body, len);
	int r = -EBADMSG;

	memset(&c, 0, sizeof(c));
	if (!cJSON_IsObject(root))
		goto out;
	code = cJSON_GetObjectItemCaseSensitive(root, "Code");
	if (code && (!cJSON_IsString(code) || strcmp(code->valuestring, "Success") != 0))
		goto out;
	if (json_field(root, "AccessKeyId", AWS_KEY_ID_MAX - 1, key_id_char, c.key_id,
		       sizeof(c.key_id)) < 0 || strlen(c.key_id) < 16 ||
	    json_field(root, "SecretAccessKey", AWS_SECRET_MAX - 1, secret_char, c.secret,
		       sizeof(c.secret)) < 0 ||
	    json_field(root, "Token", AWS_SESSION_TOKEN_MAX - 1, secret_char, c.token,
		       sizeof(c.token)) < 0)
		goto out;
	expiration = cJSON_GetObjectItemCaseSensitive(root, "Expiration");
	if (!cJSON_IsString(expiration) ||
	    event_parse_time(expiration->valuestring, &c.expiration_wall_usec) < 0 ||
	    c.expiration_wall_usec == 0)
		goto out;
	*ret = c;
	r = 0;
out:
	aws_credentials_wipe(&c);
	/* The parsed tree holds the secret too. */
	if (root && cJSON_IsObject(root)) {
		cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "SecretAccessKey");

		if (cJSON_IsString(s) && s->valuestring)
			explicit_bzero(s->valuestring, strlen(s->valuestring));
	}
	cJSON_Delete(root);
	return r;
}

static const char *const item_names[_AWS_ITEM_MAX] = {
	[AWS_ITEM_NONE] = "",
	[AWS_ITEM_REGION] = "placement/region",
	[AWS_ITEM_DOCUMENT] = "dynamic/instance-identity/document",
	[AWS_ITEM_GROUP] = "tags/instance/aws:autoscaling:groupName",
	[AWS_ITEM_ROLE] = "iam/security-credentials/",
	[AWS_ITEM_CREDENTIALS] = "iam/security-credentials/ROLE",
};

const char *aws_item_name(enum aws_item item)
{
	if ((int)item < 0 || item >= _AWS_ITEM_MAX)
		return "";
	return item_names[item];
}

bool aws_item_404_is_answer(enum aws_item item)
{
	return item == AWS_ITEM_REGION || item == AWS_ITEM_GROUP;
}

static bool credentials_due(const struct aws_identity *id, uint64_t now_wall_usec)
{
	uint64_t exp = id->creds.expiration_wall_usec, margin = AWS_CREDENTIALS_MARGIN_SEC * USEC_PER_SEC;

	return !id->creds.key_id[0] || id->creds_stale || exp <= margin || now_wall_usec >= exp - margin;
}

bool aws_credentials_usable(const struct aws_identity *id, uint64_t now_wall_usec)
{
	return id->creds.key_id[0] && !id->creds_stale && now_wall_usec < id->creds.expiration_wall_usec;
}

enum aws_item aws_identity_next(const struct aws_identity *id, uint64_t now_wall_usec)
{
	if (!id->region[0])
		return id->region_from_document ? AWS_ITEM_DOCUMENT : AWS_ITEM_REGION;
	if (!id->group[0] && !id->tags_off)
		return AWS_ITEM_GROUP;
	if (!id->role[0])
		return AWS_ITEM_ROLE;
	if (credentials_due(id, now_wall_usec))
		return AWS_ITEM_CREDENTIALS;
	return AWS_ITEM_NONE;
}

unsigned aws_identity_missing(const struct aws_identity *id, uint64_t now_wall_usec)
{
	return !id->region[0] + (!id->group[0] && !id->tags_off) + !id->role[0] +
	       credentials_due(id, now_wall_usec);
}

int aws_item_path(const struct aws_identity *id, enum aws_item item, char *buf, size_t n)
{
	int k;

	switch (item) {
	case AWS_ITEM_REGION:
	case AWS_ITEM_GROUP:
	case AWS_ITEM_ROLE:
		k = snprintf(buf, n, META "%s", item_names[item]);
		break;
	case AWS_ITEM_DOCUMENT:
		k = snprintf(buf, n, "/latest/%s", item_names[item]);
		break;
	case AWS_ITEM_CREDENTIALS:
		if (!id->role[0])
			return -EINVAL;
		k = snprintf(buf, n, META "iam/security-credentials/%s", id->role);
		break;
	default:
		return -EINVAL;
	}
	return k < 0 || (size_t)k >= n ? -EINVAL : 0;
}

int aws_identity_take(struct aws_identity *id, enum aws_item item, const struct imds_reply *r)
{
	struct aws_credentials c;
	bool absent = r->status == 404;
	int k;

	switch (item) {
	case AWS_ITEM_REGION:
		/* Older instances lack the item: the identity document has it. */
		if (absent) {
			id->region_from_document = true;
			return 0;
		}
		return aws_parse_region(r->body, r->len, id->region, sizeof(id->region));
	case AWS_ITEM_DOCUMENT:
		return aws_parse_document_region(r->body, r->len, id->region, sizeof(id->region));
	case AWS_ITEM_GROUP:
		/* Instance metadata tags are off (or the instance is in no
		 * group): the Auto Scaling API will tell. */
		if (absent) {
			id->tags_off = true;
			return 0;
		}
		return aws_parse_group_name(r->body, r->len, id->group, sizeof(id->group));
	case AWS_ITEM_ROLE:
		return aws_parse_role(r->body, r->len, id->role, sizeof(id->role));
	case AWS_ITEM_CREDENTIALS:
		k = aws_parse_credentials(r->body, r->len, &c);
		if (k < 0)
			return k;
		aws_credentials_wipe(&id->creds);
		id->creds = c;
		id->creds_stale = false;
		aws_credentials_wipe(&c);
		return 0;
	default:
		return -EINVAL;
	}
}

void aws_identity_drop_credentials(struct aws_identity *id)
{
	aws_credentials_wipe(&id->creds);
	id->creds_stale = false;
	id->role[0] = '\0';
}

void aws_identity_done(struct aws_identity *id)
{
	if (!id)
		return;
	aws_credentials_wipe(&id->creds);
}

uint64_t aws_heartbeat_period_usec(uint64_t interval_sec, uint64_t timeout_sec)
{
	uint64_t sec;

	if (interval_sec > 0)
		return interval_sec * USEC_PER_SEC;
	if (timeout_sec == 0)
		timeout_sec = AWS_HEARTBEAT_TIMEOUT_DEFAULT_SEC;
	/* Three beats per timeout: one lost or late call still leaves two. */
	sec = timeout_sec / 3;
	if (sec < AWS_HEARTBEAT_MIN_SEC)
		sec = AWS_HEARTBEAT_MIN_SEC;
	if (sec > AWS_HEARTBEAT_MAX_SEC)
		sec = AWS_HEARTBEAT_MAX_SEC;
	return sec * USEC_PER_SEC;
}
