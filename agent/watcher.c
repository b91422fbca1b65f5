/* watcher.c - the provider-neutral half of the AWS and GCP watchers: one
 * round in flight at a time, request URLs, the round's outcome handed to the
 * caller exactly once, and the small helpers both providers share. It never
 * logs and never blocks; what a round asks for is aws.c's and gcp.c's. */
#include "provider.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct watcher {
	const struct watcher_ops *ops;
	void *state;                 /* the provider's, ops->state_size bytes, owned */
	struct imds *imds;           /* borrowed for the watcher's lifetime */
	char *base_url;              /* owned, without trailing '/' */
	char *vm_name;               /* owned, NULL until known */
	bool rebalance_recommended;

	/* The round in flight. */
	bool busy;
	enum imds_slot slot;         /* of the request in flight */
	uint64_t timeout_usec;       /* per request */
	uint64_t start_mono_usec;
	watch_callback cb;
	void *userdata;
};

int watcher_new(enum provider p, struct imds *m, const char *base_url, struct watcher **ret)
{
	const struct watcher_ops *ops;
	struct watcher *w;
	size_t n;

	switch (p) {
	case PROVIDER_AWS:
		ops = &aws_watcher_ops;
		break;
	case PROVIDER_GCP:
		ops = &gcp_watcher_ops;
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (!m || !base_url || !ret)
		return -EINVAL;
	n = strlen(base_url);
	while (n > 0 && base_url[n - 1] == '/')
		n--;
	if (n == 0)
		return -EINVAL;

	w = xcalloc(1, sizeof(*w));
	w->ops = ops;
	w->state = xcalloc(1, ops->state_size > 0 ? ops->state_size : 1);
	w->imds = m;
	w->base_url = xstrndup(base_url, n);
	*ret = w;
	return 0;
}

void watcher_free(struct watcher *w)
{
	if (!w)
		return;
	if (w->busy)
		imds_cancel(w->imds, w->slot);
	if (w->ops->done_state)
		w->ops->done_state(w->state);
	free(w->state);
	free(w->base_url);
	free(w->vm_name);
	free(w);
}

int watcher_poll(struct watcher *w, uint64_t timeout_usec, watch_callback cb, void *userdata)
{
	int r;

	if (w->busy)
		return -EBUSY;
	w->busy = true;
	w->timeout_usec = timeout_usec;
	w->start_mono_usec = now_usec(CLOCK_MONOTONIC);
	w->cb = cb;
	w->userdata = userdata;
	r = w->ops->start_round(w, w->state);
	if (r < 0)
		w->busy = false;
	return r;
}

bool watcher_rebalance_recommended(const struct watcher *w)
{
	return w && w->rebalance_recommended;
}

void *watcher_state(struct watcher *w)
{
	return w->state;
}

const char *watcher_vm_name(const struct watcher *w)
{
	return w->vm_name;
}

void watcher_set_vm_name(struct watcher *w, const char *name)
{
	free(w->vm_name);
	w->vm_name = name ? xstrdup(name) : NULL;
}

void watcher_set_rebalance(struct watcher *w, bool recommended)
{
	w->rebalance_recommended = recommended;
}

int watcher_request(struct watcher *w, enum imds_slot slot, const char *method, const char *path,
		    const char *const *headers, imds_callback cb)
{
	char *url = xasprintf("%s%s", w->base_url, path);
	int r;

	r = imds_request(w->imds, slot, method, url, headers, method[0] == 'P' ? "" : NULL,
			 w->timeout_usec, cb, w);
	free(url);
	if (r >= 0)
		w->slot = slot;
	return r;
}

/* Hands the outcome to the caller. Everything the result points to is
 * copied to this frame first: the callback may free the watcher, or start
 * the next round, and neither may pull the result from under it. */
static void end_round(struct watcher *w, struct watch_result *res, struct event_list *events)
{
	char vm_name[WATCHER_NAME_MAX];
	watch_callback cb = w->cb;
	void *userdata = w->userdata;

	res->latency_usec = res->done_mono_usec > w->start_mono_usec ?
			    res->done_mono_usec - w->start_mono_usec : 0;
	res->vm_name = NULL;
	if (w->vm_name && strscpy(vm_name, sizeof(vm_name), w->vm_name) >= 0)
		res->vm_name = vm_name;
	w->busy = false;
	w->cb = NULL;
	w->userdata = NULL;
	if (cb)
		cb(res, userdata);
	event_list_done(events);
}

void watcher_fail(struct watcher *w, enum imds_result result, uint64_t done_mono_usec,
		  const char *fmt, ...)
{
	struct watch_result res = { .result = result };
	char error[IMDS_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(error, sizeof(error), fmt, ap);
	va_end(ap);
	/* Not "" on failure, whatever the provider passed. */
	res.error = error[0] ? error : "failed";
	if (res.result == IMDS_RESULT_OK)
		res.result = IMDS_RESULT_TRANSPORT;
	res.done_mono_usec = done_mono_usec ? done_mono_usec : now_usec(CLOCK_MONOTONIC);
	end_round(w, &res, NULL);
}

void watcher_finish(struct watcher *w, struct event_list *events, uint64_t done_mono_usec)
{
	struct watch_result res = { .result = IMDS_RESULT_OK, .error = "" };
	struct event_list list = { 0 };

	if (events) {
		list = *events;
		*events = (struct event_list){ 0 };
	}
	res.events = &list;
	res.done_mono_usec = done_mono_usec ? done_mono_usec : now_usec(CLOCK_MONOTONIC);
	end_round(w, &res, &list);
}

static bool is_trailing_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int watcher_parse_text(const char *body, size_t len, size_t max)
{
	if (!body)
		return -EBADMSG;
	while (len > 0 && is_trailing_space(body[len - 1]))
		len--;
	if (len == 0 || len > max || len > INT32_MAX)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)body[i] <= 0x20 || (unsigned char)body[i] >= 0x7f)
			return -EBADMSG;
	return (int)len;
}

int watcher_parse_name(const char *body, size_t len, char *ret, size_t n)
{
	int k = watcher_parse_text(body, len, WATCHER_NAME_MAX - 1);

	if (k < 0 || (size_t)k >= n)
		return -EBADMSG;
	memcpy(ret, body, (size_t)k);
	ret[k] = '\0';
	return 0;
}

uint64_t watcher_sighting_update(struct watcher_sighting *s, const char *key, uint64_t now_wall_usec)
{
	if (!key || !key[0]) {
		*s = (struct watcher_sighting){ 0 };
		return 0;
	}
	if (strncmp(s->key, key, sizeof(s->key) - 1) != 0 || !s->key[0]) {
		(void)strscpy(s->key, sizeof(s->key), key);
		s->first_wall_usec = now_wall_usec;
	}
	return s->first_wall_usec;
}
