/* probe.c - provider 'auto': asks each dialect's identity item in turn
 * (Azure's, AWS's, then GCP's) and tells which one answered in its own
 * dialect, through the ops of the clouds (azure.c, aws.c, gcp.c). One
 * request per step, never a round of any cloud; it never logs and never
 * blocks. */
#include "clouds/provider-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const struct provider_ops *const probe_order[] = {
	&azure_provider_ops, &aws_provider_ops, &gcp_provider_ops,
};

struct provider_probe {
	struct imds *imds;           /* borrowed */
	char *base_url;              /* owned, without trailing '/' */
	size_t step;                 /* index into probe_order of the next dialect */
	bool busy;
	provider_probe_cb cb;
	void *userdata;
};

int provider_probe_new(struct imds *m, const char *base_url, struct provider_probe **ret)
{
	struct provider_probe *pr;
	size_t n;

	if (!m || !base_url || !ret)
		return -EINVAL;
	n = provider_base_len(base_url);
	if (n == 0)
		return -EINVAL;
	pr = xcalloc(1, sizeof(*pr));
	pr->imds = m;
	pr->base_url = xstrndup(base_url, n);
	*ret = pr;
	return 0;
}

void provider_probe_free(struct provider_probe *pr)
{
	if (!pr)
		return;
	if (pr->busy)
		imds_cancel(pr->imds, IMDS_SLOT_IDENTITY);
	free(pr->base_url);
	free(pr);
}

static void on_probe_reply(const struct imds_reply *r, void *userdata)
{
	struct provider_probe *pr = userdata;
	const struct provider_ops *ops = probe_order[pr->step];
	const char *name = provider_to_string(ops->kind);
	provider_probe_cb cb = pr->cb;
	void *cb_userdata = pr->userdata;
	char line[IMDS_ERROR_MAX];
	enum imds_result result;
	enum provider found = PROVIDER_AUTO;

	pr->busy = false;
	pr->cb = NULL;
	pr->userdata = NULL;
	if (r->result == IMDS_RESULT_OK && ops->probe_accept(r)) {
		found = ops->kind;
		result = IMDS_RESULT_OK;
		line[0] = '\0';
		pr->step = 0;
	} else if (r->result == IMDS_RESULT_THROTTLED || (r->status >= 500 && r->status <= 599)) {
		/* A throttled or failing service may well be this one: ask it
		 * again later rather than take the next dialect's refusal for
		 * an answer. */
		result = r->result;
		(void)snprintf(line, sizeof(line), "%s: %s", name, r->error);
	} else if (pr->step + 1 < ELEMENTSOF(probe_order)) {
		result = IMDS_RESULT_OK;
		(void)snprintf(line, sizeof(line), "%s: %s", name,
			       r->result == IMDS_RESULT_OK ? "not its dialect" : r->error);
		pr->step++;
	} else {
		result = r->result == IMDS_RESULT_OK ? IMDS_RESULT_BAD_DOCUMENT : r->result;
		(void)snprintf(line, sizeof(line),
			       "no metadata service answered as azure, aws or gcp (%s: %s)", name,
			       r->result == IMDS_RESULT_OK ? "not its dialect" : r->error);
		pr->step = 0;
	}
	if (cb)
		cb(found, result, line, cb_userdata);
}

int provider_probe_step(struct provider_probe *pr, uint64_t timeout_usec, provider_probe_cb cb,
			void *userdata)
{
	const struct provider_ops *ops = probe_order[pr->step];
	bool put = strcmp(ops->probe_method, "PUT") == 0;
	char *url;
	int r;

	if (pr->busy)
		return -EBUSY;
	url = xasprintf("%s%s", pr->base_url, ops->probe_path);
	pr->cb = cb;
	pr->userdata = userdata;
	r = imds_request(pr->imds, IMDS_SLOT_IDENTITY, ops->probe_method, url, ops->probe_headers,
			 put ? "" : NULL, timeout_usec, on_probe_reply, pr);
	free(url);
	if (r < 0) {
		pr->cb = NULL;
		pr->userdata = NULL;
		return r;
	}
	pr->busy = true;
	return 0;
}
