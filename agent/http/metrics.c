/* metrics.c - the agent's counters and histograms and their Prometheus text
 * exposition (format 0.0.4). It owns only numbers: gauges about the current
 * eviction and poll health are derived from the state at render time, so
 * they can never disagree with /v1/status. It never logs, never blocks and
 * never puts an event id into a label: label sets stay bounded. */
#include "http/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define HISTOGRAM_BUCKETS_MAX 16
#define OTHER_HOOK_NAME "_other"

/* Bucket bounds in microseconds with their exact "le" spelling, so the
 * rendered text does not depend on floating-point formatting. */
struct bucket_bound {
	uint64_t usec;
	const char *le;
};

struct histogram_spec {
	const struct bucket_bound *bounds;
	size_t n_bounds;
};

struct histogram {
	uint64_t counts[HISTOGRAM_BUCKETS_MAX + 1]; /* per bucket, last = above all bounds */
	uint64_t count;
	uint64_t sum_usec;
};

static const struct bucket_bound imds_duration_bounds[] = {
	{ 1000, "0.001" }, { 2500, "0.0025" }, { 5000, "0.005" }, { 10000, "0.01" },
	{ 25000, "0.025" }, { 50000, "0.05" }, { 100000, "0.1" }, { 250000, "0.25" },
	{ 500000, "0.5" }, { 1000000, "1" }, { 2500000, "2.5" }, { 5000000, "5" },
	{ 10000000, "10" },
};

static const struct bucket_bound notice_bounds[] = {
	{ 5 * USEC_PER_SEC, "5" }, { 10 * USEC_PER_SEC, "10" }, { 15 * USEC_PER_SEC, "15" },
	{ 20 * USEC_PER_SEC, "20" }, { 30 * USEC_PER_SEC, "30" }, { 45 * USEC_PER_SEC, "45" },
	{ 60 * USEC_PER_SEC, "60" }, { 120 * USEC_PER_SEC, "120" }, { 300 * USEC_PER_SEC, "300" },
	{ 600 * USEC_PER_SEC, "600" }, { 900 * USEC_PER_SEC, "900" },
	{ 1800 * USEC_PER_SEC, "1800" },
};

static const struct bucket_bound first_hook_bounds[] = {
	{ 500, "0.0005" }, { 1000, "0.001" }, { 2000, "0.002" }, { 5000, "0.005" },
	{ 10000, "0.01" }, { 25000, "0.025" }, { 50000, "0.05" }, { 100000, "0.1" },
	{ 500000, "0.5" }, { 1000000, "1" },
};

static const struct bucket_bound hook_duration_bounds[] = {
	{ 100000, "0.1" }, { 250000, "0.25" }, { 500000, "0.5" }, { 1000000, "1" },
	{ 2500000, "2.5" }, { 5 * USEC_PER_SEC, "5" }, { 10 * USEC_PER_SEC, "10" },
	{ 15 * USEC_PER_SEC, "15" }, { 20 * USEC_PER_SEC, "20" }, { 30 * USEC_PER_SEC, "30" },
	{ 60 * USEC_PER_SEC, "60" }, { 120 * USEC_PER_SEC, "120" },
	{ 300 * USEC_PER_SEC, "300" },
};

#define SPEC(b) { (b), ELEMENTSOF(b) }
static const struct histogram_spec imds_duration_spec = SPEC(imds_duration_bounds);
static const struct histogram_spec notice_spec = SPEC(notice_bounds);
static const struct histogram_spec first_hook_spec = SPEC(first_hook_bounds);
static const struct histogram_spec hook_duration_spec = SPEC(hook_duration_bounds);

/* The hook outcomes that are counted, with their label values. Pending and
 * running are not results. */
enum hook_result_label {
	HOOK_LABEL_OK,
	HOOK_LABEL_FAILED,
	HOOK_LABEL_TIMEOUT,
	HOOK_LABEL_SKIPPED,
	_HOOK_LABEL_MAX,
};

static const char *const hook_label_names[_HOOK_LABEL_MAX] = {
	[HOOK_LABEL_OK] = "ok",
	[HOOK_LABEL_FAILED] = "failed",
	[HOOK_LABEL_TIMEOUT] = "timeout",
	[HOOK_LABEL_SKIPPED] = "skipped",
};

/* Label values of spot_agent_events_total; fixed here rather than taken from
 * the wire parser so the exposition stays stable whatever a provider sends. */
static const char *const event_type_names[_EVENT_TYPE_MAX] = {
	[EVENT_PREEMPT] = "Preempt",
	[EVENT_TERMINATE] = "Terminate",
	[EVENT_REBOOT] = "Reboot",
	[EVENT_REDEPLOY] = "Redeploy",
	[EVENT_FREEZE] = "Freeze",
	[EVENT_SHUTDOWN] = "Shutdown",
};

struct hook_metrics {
	char name[HOOK_NAME_MAX];
	uint64_t runs[_HOOK_LABEL_MAX];
	struct histogram duration;
};

struct metrics {
	uint64_t start_wall_usec;
	uint64_t imds_requests[_IMDS_RESULT_MAX];
	struct histogram imds_duration;
	uint64_t events[_EVENT_TYPE_MAX];
	uint64_t events_ignored[_EVENT_TYPE_MAX];
	struct histogram notice;
	struct histogram first_hook;
	/* Sorted bytewise by name, at most METRICS_HOOKS_MAX; owned. */
	struct hook_metrics *hooks;
	size_t n_hooks;
	/* Shared by every hook name beyond METRICS_HOOKS_MAX; shown once used. */
	struct hook_metrics other;
	bool other_used;
	uint64_t chain_overruns;
	uint64_t approvals_ok;
	uint64_t approvals_failed;
};

struct metrics *metrics_new(void)
{
	struct metrics *m = xcalloc(1, sizeof(*m));

	m->start_wall_usec = now_usec(CLOCK_REALTIME);
	(void)strscpy(m->other.name, sizeof(m->other.name), OTHER_HOOK_NAME);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	free(m->hooks);
	free(m);
}

static void histogram_observe(struct histogram *h, const struct histogram_spec *spec,
			      uint64_t value_usec)
{
	size_t i;

	for (i = 0; i < spec->n_bounds; i++)
		if (value_usec <= spec->bounds[i].usec)
			break;
	h->counts[i]++;
	h->count++;
	h->sum_usec += value_usec;
}

void metrics_imds_request(struct metrics *m, enum imds_result r, uint64_t latency_usec)
{
	if (!m || (int)r < 0 || r >= _IMDS_RESULT_MAX)
		return;
	m->imds_requests[r]++;
	histogram_observe(&m->imds_duration, &imds_duration_spec, latency_usec);
}

void metrics_event_detected(struct metrics *m, enum event_type t, uint64_t notice_usec)
{
	if (!m || (int)t < 0 || t >= _EVENT_TYPE_MAX)
		return;
	m->events[t]++;
	/* An unknown or exhausted notice is observed as 0: "no time left" is
	 * exactly what this histogram is there to show. */
	histogram_observe(&m->notice, &notice_spec, notice_usec);
}

void metrics_event_ignored(struct metrics *m, enum event_type t)
{
	if (!m || (int)t < 0 || t >= _EVENT_TYPE_MAX)
		return;
	m->events_ignored[t]++;
}

void metrics_first_hook(struct metrics *m, uint64_t usec)
{
	if (!m)
		return;
	histogram_observe(&m->first_hook, &first_hook_spec, usec);
}

/* The entry for hook name: found, inserted in order, or the shared overflow
 * entry once METRICS_HOOKS_MAX names are tracked. */
static struct hook_metrics *hook_metrics_get(struct metrics *m, const char *name)
{
	char key[HOOK_NAME_MAX];
	size_t lo = 0, hi = m->n_hooks;

	(void)strscpy(key, sizeof(key), name);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->hooks[mid].name, key);

		if (c == 0)
			return &m->hooks[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (m->n_hooks >= METRICS_HOOKS_MAX) {
		m->other_used = true;
		return &m->other;
	}
	m->hooks = xrealloc(m->hooks, (m->n_hooks + 1) * sizeof(*m->hooks));
	memmove(&m->hooks[lo + 1], &m->hooks[lo], (m->n_hooks - lo) * sizeof(*m->hooks));
	m->n_hooks++;
	memset(&m->hooks[lo], 0, sizeof(m->hooks[lo]));
	memcpy(m->hooks[lo].name, key, sizeof(key));
	return &m->hooks[lo];
}

void metrics_hook_done(struct metrics *m, const char *hook, enum hook_outcome o, uint64_t duration_usec)
{
	enum hook_result_label label;
	struct hook_metrics *h;

	if (!m || !hook)
		return;
	switch (o) {
	case HOOK_OK:
		label = HOOK_LABEL_OK;
		break;
	case HOOK_FAILED:
		label = HOOK_LABEL_FAILED;
		break;
	case HOOK_TIMEOUT:
		label = HOOK_LABEL_TIMEOUT;
		break;
	case HOOK_SKIPPED:
		label = HOOK_LABEL_SKIPPED;
		break;
	default:
		return;
	}
	h = hook_metrics_get(m, hook);
	h->runs[label]++;
	/* A skipped hook never ran: its zero duration would only blur the
	 * histogram of the hooks that did. */
	if (label != HOOK_LABEL_SKIPPED)
		histogram_observe(&h->duration, &hook_duration_spec, duration_usec);
}

void metrics_chain_overran(struct metrics *m)
{
	if (m)
		m->chain_overruns++;
}

void metrics_approval(struct metrics *m, bool ok)
{
	if (!m)
		return;
	if (ok)
		m->approvals_ok++;
	else
		m->approvals_failed++;
}

/* ---- rendering ---- */

/* A growing text buffer; every append keeps it NUL-terminated. */
struct dynbuf {
	char *p;
	size_t len;
	size_t cap;
};

static void buf_reserve(struct dynbuf *b, size_t more)
{
	size_t need = b->len + more + 1;

	if (need <= b->cap)
		return;
	if (b->cap == 0)
		b->cap = 4096;
	while (b->cap < need)
		b->cap *= 2;
	b->p = xrealloc(b->p, b->cap);
}

static void buf_append(struct dynbuf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_puts(struct dynbuf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

static _printf_(2, 3) void buf_printf(struct dynbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	(void)vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* A label value with \, " and newline escaped as the exposition format
 * requires. */
static void buf_label_value(struct dynbuf *b, const char *s)
{
	for (; *s; s++)
		switch (*s) {
		case '\\':
			buf_puts(b, "\\\\");
			break;
		case '"':
			buf_puts(b, "\\\"");
			break;
		case '\n':
			buf_puts(b, "\\n");
			break;
		default:
			buf_append(b, s, 1);
		}
}

/* Microseconds as decimal seconds, exact and without trailing zeros. */
static void buf_seconds(struct dynbuf *b, uint64_t usec)
{
	char frac[8];
	uint64_t f = usec % USEC_PER_SEC;
	int n;

	buf_printf(b, "%" PRIu64, usec / USEC_PER_SEC);
	if (f == 0)
		return;
	n = snprintf(frac, sizeof(frac), "%06" PRIu64, f);
	while (n > 0 && frac[n - 1] == '0')
		frac[--n] = '\0';
	buf_printf(b, ".%s", frac);
}

static void family(struct dynbuf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One histogram's bucket, sum and count lines. labels is "" or a rendered
 * label list without braces ("hook=\"x\""). */
static void histogram_render(struct dynbuf *b, const char *name, const char *labels,
			     const struct histogram *h, const struct histogram_spec *spec)
{
	const char *sep = labels[0] ? "," : "";
	uint64_t cumulative = 0;

	for (size_t i = 0; i < spec->n_bounds; i++) {
		cumulative += h->counts[i];
		buf_printf(b, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n",
			   name, labels, sep, spec->bounds[i].le, cumulative);
	}
	buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep, h->count);
	if (labels[0])
		buf_printf(b, "%s_sum{%s} ", name, labels);
	else
		buf_printf(b, "%s_sum ", name);
	buf_seconds(b, h->sum_usec);
	if (labels[0])
		buf_printf(b, "\n%s_count{%s} %" PRIu64 "\n", name, labels, h->count);
	else
		buf_printf(b, "\n%s_count %" PRIu64 "\n", name, h->count);
}

/* "hook=\"<escaped name>\"" into a separate buffer, for reuse in every line
 * of one hook. */
static char *hook_label(const char *name)
{
	struct dynbuf l = { 0 };

	buf_puts(&l, "hook=\"");
	buf_label_value(&l, name);
	buf_puts(&l, "\"");
	return l.p;
}

static void render_hooks(struct dynbuf *b, const struct metrics *m)
{
	size_t n = m->n_hooks + (m->other_used ? 1 : 0);
	char **labels = xcalloc(n ? n : 1, sizeof(char *));

	for (size_t i = 0; i < n; i++)
		labels[i] = hook_label(i < m->n_hooks ? m->hooks[i].name : m->other.name);

	family(b, "spot_agent_hook_runs_total", "counter",
	       "Hook runs by hook and result (ok, failed, timeout, skipped).");
	for (size_t i = 0; i < n; i++) {
		const struct hook_metrics *h = i < m->n_hooks ? &m->hooks[i] : &m->other;

		for (size_t r = 0; r < _HOOK_LABEL_MAX; r++)
			buf_printf(b, "spot_agent_hook_runs_total{%s,result=\"%s\"} %" PRIu64 "\n",
				   labels[i], hook_label_names[r], h->runs[r]);
	}

	family(b, "spot_agent_hook_duration_seconds", "histogram",
	       "Wall time of hooks that ran (skipped hooks are not observed).");
	for (size_t i = 0; i < n; i++) {
		const struct hook_metrics *h = i < m->n_hooks ? &m->hooks[i] : &m->other;

		histogram_render(b, "spot_agent_hook_duration_seconds", labels[i],
				 &h->duration, &hook_duration_spec);
	}

	for (size_t i = 0; i < n; i++)
		free(labels[i]);
	free(labels);
}

char *metrics_render(const struct metrics *m, const struct agent_state *s,
		     const char *version, size_t *ret_len)
{
	struct dynbuf b = { 0 };
	const struct eviction *current = NULL;
	bool evicting = s && !status_ready(s, now_usec(CLOCK_REALTIME), &current);

	buf_reserve(&b, 16 * 1024);

	family(&b, "spot_agent_build_info", "gauge",
	       "Always 1; the labels name the agent version and the cloud provider.");
	buf_puts(&b, "spot_agent_build_info{version=\"");
	buf_label_value(&b, version ? version : "");
	buf_puts(&b, "\",provider=\"");
	buf_label_value(&b, s && s->provider ? s->provider : "");
	buf_puts(&b, "\"} 1\n");

	family(&b, "spot_agent_start_time_seconds", "gauge",
	       "Start time of the agent since the Unix epoch in seconds.");
	buf_puts(&b, "spot_agent_start_time_seconds ");
	buf_seconds(&b, m->start_wall_usec);
	buf_puts(&b, "\n");

	family(&b, "spot_agent_imds_requests_total", "counter",
	       "Metadata service requests by result.");
	for (size_t i = 0; i < _IMDS_RESULT_MAX; i++)
		buf_printf(&b, "spot_agent_imds_requests_total{result=\"%s\"} %" PRIu64 "\n",
			   imds_result_to_string((enum imds_result)i), m->imds_requests[i]);

	family(&b, "spot_agent_imds_request_duration_seconds", "histogram",
	       "Latency of metadata service requests.");
	histogram_render(&b, "spot_agent_imds_request_duration_seconds", "",
			 &m->imds_duration, &imds_duration_spec);

	/* A plain signal: the last poll succeeded (or none failed yet). The
	 * windowed /healthz verdict is for probes; alert rules apply their own
	 * "for:" duration to this gauge. */
	family(&b, "spot_agent_imds_up", "gauge",
	       "1 when the last metadata poll succeeded (or none has failed yet), else 0.");
	buf_printf(&b, "spot_agent_imds_up %d\n",
		   s && s->poll.consecutive_failures > 0 ? 0 : 1);

	family(&b, "spot_agent_imds_consecutive_failures", "gauge",
	       "Metadata polls failed in a row since the last success.");
	buf_printf(&b, "spot_agent_imds_consecutive_failures %" PRIu64 "\n",
		   s ? s->poll.consecutive_failures : 0);

	family(&b, "spot_agent_imds_last_success_timestamp_seconds", "gauge",
	       "Time of the last successful metadata poll since the Unix epoch, 0 if never.");
	buf_puts(&b, "spot_agent_imds_last_success_timestamp_seconds ");
	buf_seconds(&b, s ? s->poll.last_ok_wall_usec : 0);
	buf_puts(&b, "\n");

	family(&b, "spot_agent_events_total", "counter",
	       "Evictions for this VM detected, by event type.");
	for (size_t i = 0; i < _EVENT_TYPE_MAX; i++)
		buf_printf(&b, "spot_agent_events_total{type=\"%s\"} %" PRIu64 "\n",
			   event_type_names[i], m->events[i]);

	family(&b, "spot_agent_events_ignored_total", "counter",
	       "Events for this VM not acted on because their type is not in 'events', by event type.");
	for (size_t i = 0; i < _EVENT_TYPE_MAX; i++)
		buf_printf(&b, "spot_agent_events_ignored_total{type=\"%s\"} %" PRIu64 "\n",
			   event_type_names[i], m->events_ignored[i]);

	family(&b, "spot_agent_eviction_pending", "gauge",
	       "1 from the detection of an eviction for this VM until its hooks are done and the "
	       "metadata service no longer lists it (while /readyz answers 503), else 0.");
	buf_printf(&b, "spot_agent_eviction_pending %d\n", evicting ? 1 : 0);

	family(&b, "spot_agent_eviction_deadline_timestamp_seconds", "gauge",
	       "Deadline of the hook chain of the current eviction since the Unix epoch, 0 when idle.");
	buf_puts(&b, "spot_agent_eviction_deadline_timestamp_seconds ");
	buf_seconds(&b, current ? current->deadline_wall_usec : 0);
	buf_puts(&b, "\n");

	family(&b, "spot_agent_notice_seconds", "histogram",
	       "Time left before NotBefore when an eviction was detected (0 when none).");
	histogram_render(&b, "spot_agent_notice_seconds", "", &m->notice, &notice_spec);

	family(&b, "spot_agent_detection_to_first_hook_seconds", "histogram",
	       "Time from detecting an eviction to starting its first hook.");
	histogram_render(&b, "spot_agent_detection_to_first_hook_seconds", "",
			 &m->first_hook, &first_hook_spec);

	render_hooks(&b, m);

	family(&b, "spot_agent_chain_overruns_total", "counter",
	       "Hook chains that ended after their deadline.");
	buf_printf(&b, "spot_agent_chain_overruns_total %" PRIu64 "\n", m->chain_overruns);

	family(&b, "spot_agent_approvals_total", "counter",
	       "Event approvals sent to the platform, by result.");
	buf_printf(&b, "spot_agent_approvals_total{result=\"ok\"} %" PRIu64 "\n", m->approvals_ok);
	buf_printf(&b, "spot_agent_approvals_total{result=\"failed\"} %" PRIu64 "\n",
		   m->approvals_failed);

	family(&b, "spot_agent_rebalance_recommended", "gauge",
	       "1 while the platform recommends moving work off this VM (AWS rebalance recommendation), else 0.");
	buf_printf(&b, "spot_agent_rebalance_recommended %d\n", s && s->rebalance_recommended ? 1 : 0);

	family(&b, "spot_agent_config_reload_failed", "gauge",
	       "1 when the last configuration reload was refused (the agent runs on the configuration "
	       "before it; /v1/status config.reload_error says why), else 0.");
	buf_printf(&b, "spot_agent_config_reload_failed %d\n", s && s->reload_error[0] ? 1 : 0);

	if (ret_len)
		*ret_len = b.len;
	return b.p;
}
