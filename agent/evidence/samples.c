/* samples.c - the record of an eviction as Prometheus series: which
 * spot_eviction_* series a moment of the eviction yields, their labels
 * (this instance's, sorted by name as remote-write wants them) and their
 * values, each stamped with the moment it describes. Pure: it reads no
 * clock and sends nothing; an event id never becomes a label. */
#include "evidence/samples.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/json.h"
#include "util.h"

static const char *const recover_names[_EVIDENCE_RECOVER_MAX] = {
	[EVIDENCE_RECOVER_CANCELLED] = "cancelled",
	[EVIDENCE_RECOVER_ENDED] = "ended",
	[EVIDENCE_RECOVER_BOOT] = "boot",
};

const char *evidence_recover_reason_to_string(enum evidence_recover_reason r)
{
	return (unsigned)r < _EVIDENCE_RECOVER_MAX ? recover_names[r] : NULL;
}

/* The record's own label names, which an operator's label may not take. */
static const char *const own_labels[] = {
	"job", "instance", "provider", "region", "zone", "vm_size", "group", "type",
	"source", "hook", "result", "reason",
};

int evidence_label_check(const char *name_value, char *why, size_t why_size)
{
	const char *eq = strchr(name_value, '=');
	size_t len = eq ? (size_t)(eq - name_value) : 0;

	if (!eq || len == 0) {
		(void)snprintf(why, why_size, "not NAME=VALUE");
		return -EINVAL;
	}
	if (len >= EVIDENCE_LABEL_NAME_MAX) {
		(void)snprintf(why, why_size, "the name is longer than %d bytes", EVIDENCE_LABEL_NAME_MAX - 1);
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		char c = name_value[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (i > 0 && c >= '0' && c <= '9');

		if (!ok) {
			(void)snprintf(why, why_size, "the name '%.*s' does not match [a-zA-Z_][a-zA-Z0-9_]*",
				       (int)len, name_value);
			return -EINVAL;
		}
	}
	if (len >= 2 && name_value[0] == '_' && name_value[1] == '_') {
		(void)snprintf(why, why_size, "the name '%.*s' starts with '__', which Prometheus reserves",
			       (int)len, name_value);
		return -EINVAL;
	}
	for (size_t i = 0; i < ELEMENTSOF(own_labels); i++)
		if (strlen(own_labels[i]) == len && memcmp(own_labels[i], name_value, len) == 0) {
			(void)snprintf(why, why_size, "'%s' is a label of the record itself", own_labels[i]);
			return -EINVAL;
		}
	if (eq[1] == '\0') {
		(void)snprintf(why, why_size, "the value is empty");
		return -EINVAL;
	}
	if (strlen(eq + 1) >= EVIDENCE_LABEL_VALUE_MAX) {
		(void)snprintf(why, why_size, "the value is longer than %d bytes", EVIDENCE_LABEL_VALUE_MAX - 1);
		return -EINVAL;
	}
	if (!utf8_valid(eq + 1)) {
		(void)snprintf(why, why_size, "the value is not UTF-8");
		return -EINVAL;
	}
	return 0;
}

/* ---- batches ---- */

static void series_done(struct evidence_series *s)
{
	for (size_t i = 0; i < s->n_labels; i++) {
		free(s->labels[i].name);
		free(s->labels[i].value);
	}
	free(s->labels);
}

void evidence_batch_done(struct evidence_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n_series; i++)
		series_done(&b->series[i]);
	free(b->series);
	b->series = NULL;
	b->n_series = 0;
}

void evidence_batch_move(struct evidence_batch *dst, struct evidence_batch *src)
{
	evidence_batch_done(dst);
	*dst = *src;
	*src = (struct evidence_batch){ 0 };
}

static int label_cmp(const void *a, const void *b)
{
	return strcmp(((const struct evidence_label *)a)->name, ((const struct evidence_label *)b)->name);
}

void evidence_batch_add(struct evidence_batch *b, const char *name, const char *const *labels,
			size_t n_labels, double value, int64_t timestamp_ms)
{
	struct evidence_series *s;

	b->series = xrealloc(b->series, (b->n_series + 1) * sizeof(*b->series));
	s = &b->series[b->n_series++];
	s->labels = xcalloc(n_labels + 1, sizeof(*s->labels));
	s->labels[0] = (struct evidence_label){ xstrdup("__name__"), xstrdup(name) };
	for (size_t i = 0; i < n_labels; i++)
		s->labels[i + 1] = (struct evidence_label){ xstrdup(labels[2 * i]), xstrdup(labels[2 * i + 1]) };
	s->n_labels = n_labels + 1;
	qsort(s->labels, s->n_labels, sizeof(*s->labels), label_cmp);
	s->value = value;
	s->timestamp_ms = timestamp_ms;
}

const char *evidence_series_label(const struct evidence_series *s, const char *name)
{
	for (size_t i = 0; i < s->n_labels; i++)
		if (strcmp(s->labels[i].name, name) == 0)
			return s->labels[i].value;
	return NULL;
}

/* ---- the record's series ---- */

/* The labels of every series of one record, as name/value pairs, and room
 * for a series' own. */
struct labels {
	const char *kv[2 * EVIDENCE_SERIES_LABELS_MAX];
	size_t n;           /* pairs */
	size_t common;      /* pairs every series has */
	char extra[EVIDENCE_EXTRA_LABELS_MAX][EVIDENCE_LABEL_NAME_MAX];
};

static void labels_put(struct labels *l, const char *name, const char *value)
{
	if (!value || !value[0] || l->n >= EVIDENCE_SERIES_LABELS_MAX)
		return;
	l->kv[2 * l->n] = name;
	l->kv[2 * l->n + 1] = value;
	l->n++;
}

static void labels_init(struct labels *l, const struct evidence_identity *id, char *const *extra,
			enum event_type type)
{
	size_t n_extra = 0;
	char why[128];

	l->n = 0;
	labels_put(l, "job", EVIDENCE_JOB);
	labels_put(l, "instance", id->instance);
	labels_put(l, "provider", id->provider);
	labels_put(l, "region", id->region);
	labels_put(l, "zone", id->zone);
	labels_put(l, "vm_size", id->vm_size);
	labels_put(l, "group", id->group);
	labels_put(l, "type", event_type_to_string(type));
	for (size_t i = 0; extra && extra[i] && n_extra < EVIDENCE_EXTRA_LABELS_MAX; i++) {
		const char *eq = strchr(extra[i], '=');
		bool dup = false;

		if (evidence_label_check(extra[i], why, sizeof(why)) < 0)
			continue;
		/* A later label of the same name wins (the command line after the file). */
		for (size_t j = i + 1; extra[j] && !dup; j++)
			dup = strncmp(extra[j], extra[i], (size_t)(eq - extra[i]) + 1) == 0;
		if (dup)
			continue;
		memcpy(l->extra[n_extra], extra[i], (size_t)(eq - extra[i]));
		l->extra[n_extra][eq - extra[i]] = '\0';
		labels_put(l, l->extra[n_extra], eq + 1);
		n_extra++;
	}
	l->common = l->n;
}

/* Adds a series with the common labels and up to two of its own. */
static void add(struct evidence_batch *b, struct labels *l, const char *name, double value,
		uint64_t at_wall_usec, const char *k1, const char *v1, const char *k2, const char *v2)
{
	l->n = l->common;
	if (k1)
		labels_put(l, k1, v1);
	if (k2)
		labels_put(l, k2, v2);
	evidence_batch_add(b, name, l->kv, l->n, value, (int64_t)(at_wall_usec / USEC_PER_MSEC));
}

static double seconds_between(uint64_t from_usec, uint64_t to_usec)
{
	return to_usec >= from_usec ? (double)(to_usec - from_usec) / (double)USEC_PER_SEC
				    : -((double)(from_usec - to_usec) / (double)USEC_PER_SEC);
}

static void add_detected(struct evidence_batch *b, struct labels *l, const struct evidence_eviction *f)
{
	if (!f->detected_wall_usec)
		return;
	add(b, l, "spot_eviction_detected", 1, f->detected_wall_usec, "source", f->source, NULL, NULL);
	if (f->not_before_wall_usec)
		add(b, l, "spot_eviction_notice_seconds", seconds_between(f->detected_wall_usec, f->not_before_wall_usec),
		    f->detected_wall_usec, NULL, NULL, NULL, NULL);
}

static void add_approval(struct evidence_batch *b, struct labels *l, const struct evidence_eviction *f)
{
	if (f->ack_wall_usec && f->chain_end_wall_usec)
		add(b, l, "spot_eviction_approval_seconds", seconds_between(f->chain_end_wall_usec, f->ack_wall_usec),
		    f->ack_wall_usec, NULL, NULL, NULL, NULL);
}

static void add_chain(struct evidence_batch *b, struct labels *l, const struct evidence_eviction *f)
{
	uint64_t end = f->chain_end_wall_usec, first = 0;
	unsigned failed = 0;

	if (!end || !f->detected_wall_usec)
		return;
	for (size_t i = 0; i < f->n_hooks; i++)
		if (f->hooks[i].start_wall_usec && (!first || f->hooks[i].start_wall_usec < first))
			first = f->hooks[i].start_wall_usec;
	if (first)
		add(b, l, "spot_eviction_first_hook_seconds", seconds_between(f->detected_wall_usec, first), first,
		    NULL, NULL, NULL, NULL);
	for (size_t i = 0; i < f->n_hooks; i++) {
		const struct evidence_hook *h = &f->hooks[i];
		bool ran = h->start_wall_usec && h->end_wall_usec >= h->start_wall_usec;

		switch (h->outcome) {
		case HOOK_OK:
		case HOOK_FAILED:
		case HOOK_TIMEOUT:
			failed += h->outcome != HOOK_OK;
			/* One that could not start took no time, at the chain's end. */
			add(b, l, "spot_eviction_hook_duration_seconds",
			    ran ? seconds_between(h->start_wall_usec, h->end_wall_usec) : 0, ran ? h->end_wall_usec : end,
			    "hook", h->name, "result", hook_outcome_to_string(h->outcome));
			break;
		case HOOK_SKIPPED:
			add(b, l, "spot_eviction_hook_duration_seconds", 0, end, "hook", h->name, "result", "skipped");
			break;
		default:
			break;
		}
	}
	add(b, l, "spot_eviction_chain_seconds", seconds_between(f->detected_wall_usec, end), end, NULL, NULL, NULL,
	    NULL);
	if (f->deadline_wall_usec)
		add(b, l, "spot_eviction_chain_overrun_seconds",
		    end > f->deadline_wall_usec ? seconds_between(f->deadline_wall_usec, end) : 0, end, NULL, NULL,
		    NULL, NULL);
	add(b, l, "spot_eviction_hooks_failed", failed, end, NULL, NULL, NULL, NULL);
	if (f->reported.has_lost_work)
		add(b, l, "spot_eviction_lost_work_seconds", (double)f->reported.lost_work_seconds, end, NULL, NULL,
		    NULL, NULL);
	if (f->reported.has_checkpoint_bytes)
		add(b, l, "spot_eviction_checkpoint_bytes", (double)f->reported.checkpoint_bytes, end, NULL, NULL,
		    NULL, NULL);
	if (f->reported.has_jobs_requeued)
		add(b, l, "spot_eviction_jobs_requeued", (double)f->reported.jobs_requeued, end, NULL, NULL, NULL,
		    NULL);
}

static void add_recovered(struct evidence_batch *b, struct labels *l, const struct evidence_eviction *f)
{
	const char *reason = evidence_recover_reason_to_string(f->recover_reason);

	if (!f->recover_wall_usec || !reason)
		return;
	add(b, l, "spot_eviction_recovered", 1, f->recover_wall_usec, "reason", reason, NULL, NULL);
	if (f->alive_wall_usec)
		add(b, l, "spot_eviction_time_to_recover_seconds",
		    seconds_between(f->alive_wall_usec, f->recover_wall_usec), f->recover_wall_usec, "reason", reason,
		    NULL, NULL);
}

size_t evidence_samples(const struct evidence_identity *id, char *const *extra,
			const struct evidence_eviction *f, unsigned mask, struct evidence_batch *ret)
{
	struct evidence_batch b = { 0 };
	struct labels l;

	labels_init(&l, id, extra, f->type);
	if (mask & EVIDENCE_DETECTED)
		add_detected(&b, &l, f);
	if (mask & EVIDENCE_CHAIN) {
		add_chain(&b, &l, f);
		if (!(mask & EVIDENCE_ACK))
			add_approval(&b, &l, f);
	}
	if (mask & EVIDENCE_ACK)
		add_approval(&b, &l, f);
	if (mask & EVIDENCE_RECOVERED)
		add_recovered(&b, &l, f);
	*ret = b;
	return b.n_series;
}
