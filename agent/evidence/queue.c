/* queue.c - the record's batches waiting for the receiver, in order and
 * bounded, and their JSON form. Pure: the sender owns the sending, the
 * state file the persistence. A queue read back is checked like any
 * input: a state file is not trusted to hold what we wrote. */
#include "evidence/queue.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void evidence_queue_done(struct evidence_queue *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->n; i++)
		evidence_batch_done(&q->batches[i]);
	free(q->batches);
	*q = (struct evidence_queue){ 0 };
}

static void drop_at(struct evidence_queue *q, size_t i)
{
	q->n_series -= q->batches[i].n_series;
	evidence_batch_done(&q->batches[i]);
	memmove(&q->batches[i], &q->batches[i + 1], (q->n - i - 1) * sizeof(*q->batches));
	q->n--;
}

void evidence_queue_pop(struct evidence_queue *q)
{
	if (q->n > 0)
		drop_at(q, 0);
}

size_t evidence_queue_push(struct evidence_queue *q, struct evidence_batch *b, bool keep_first)
{
	size_t dropped = 0;

	if (b->n_series == 0) {
		evidence_batch_done(b);
		return 0;
	}
	q->batches = xrealloc(q->batches, (q->n + 1) * sizeof(*q->batches));
	q->batches[q->n++] = *b;
	q->n_series += b->n_series;
	*b = (struct evidence_batch){ 0 };
	while ((q->n > EVIDENCE_QUEUE_MAX || q->n_series > EVIDENCE_QUEUE_SERIES_MAX)) {
		size_t victim = keep_first ? 1 : 0;

		if (victim >= q->n - 1)
			break;   /* only the kept first and the new one are left */
		drop_at(q, victim);
		dropped++;
	}
	return dropped;
}

/* ---- JSON ---- */

cJSON *evidence_queue_to_json(const struct evidence_queue *q)
{
	cJSON *root = json_object_new(), *batches = json_array_new();

	for (size_t i = 0; i < q->n; i++) {
		const struct evidence_batch *b = &q->batches[i];
		cJSON *bo = json_object_new(), *series = json_array_new();

		for (size_t j = 0; j < b->n_series; j++) {
			const struct evidence_series *s = &b->series[j];
			cJSON *so = json_object_new(), *labels = json_object_new();

			for (size_t k = 0; k < s->n_labels; k++)
				json_add(labels, s->labels[k].name, json_text_new(s->labels[k].value, 0));
			json_add(so, "labels", labels);
			json_add(so, "value", cJSON_CreateNumber(s->value));
			json_add_int(so, "timestamp_ms", s->timestamp_ms, 0, JSON_INT_MAX);
			json_append(series, so);
		}
		json_add(bo, "series", series);
		json_append(batches, bo);
	}
	json_add(root, "batches", batches);
	return root;
}

static int series_from_json(struct json_err *err, const cJSON *so, struct evidence_batch *b)
{
	static const char *const keys[] = { "labels", "value", "timestamp_ms" };
	const char *kv[2 * EVIDENCE_SERIES_LABELS_MAX];
	const cJSON *labels, *value, *l;
	const char *name = NULL;
	size_t n = 0;
	int64_t ts;
	int r;

	r = json_check_keys(err, so, keys, ELEMENTSOF(keys));
	if (r < 0)
		return r;
	labels = cJSON_GetObjectItemCaseSensitive(so, "labels");
	value = cJSON_GetObjectItemCaseSensitive(so, "value");
	if (!cJSON_IsObject(labels))
		return json_fail(err, "'labels' is not an object");
	if (!cJSON_IsNumber(value) || !isfinite(value->valuedouble))
		return json_fail(err, "'value' is not a finite number");
	r = json_get_int(err, so, "timestamp_ms", 0, JSON_INT_MAX, &ts);
	if (r < 0)
		return r;
	cJSON_ArrayForEach(l, labels) {
		if (!cJSON_IsString(l) || !l->string || !l->string[0] ||
		    strlen(l->string) >= EVIDENCE_LABEL_NAME_MAX || !utf8_valid(l->string))
			return json_fail(err, "a label name is empty, too long or not UTF-8");
		if (!l->valuestring[0] || strlen(l->valuestring) >= EVIDENCE_LABEL_VALUE_MAX ||
		    !utf8_valid(l->valuestring))
			return json_fail(err, "label '%s': the value is empty, too long or not UTF-8", l->string);
		if (strcmp(l->string, "__name__") == 0) {
			name = l->valuestring;
			continue;
		}
		if (n >= EVIDENCE_SERIES_LABELS_MAX - 1)
			return json_fail(err, "more than %d labels", EVIDENCE_SERIES_LABELS_MAX);
		kv[2 * n] = l->string;
		kv[2 * n + 1] = l->valuestring;
		n++;
	}
	if (!name)
		return json_fail(err, "a series without '__name__'");
	evidence_batch_add(b, name, kv, n, value->valuedouble, ts);
	return 0;
}

int evidence_queue_from_json(struct evidence_queue *q, const cJSON *o, struct json_err *err)
{
	static const char *const root_keys[] = { "batches" };
	static const char *const batch_keys[] = { "series" };
	struct evidence_queue read = { 0 };
	const cJSON *batches, *bo, *so;
	int r;

	r = json_check_keys(err, o, root_keys, ELEMENTSOF(root_keys));
	if (r < 0)
		return r;
	batches = cJSON_GetObjectItemCaseSensitive(o, "batches");
	if (!cJSON_IsArray(batches) || cJSON_GetArraySize(batches) > EVIDENCE_QUEUE_MAX)
		return json_fail(err, "'batches' is not an array of at most %d", EVIDENCE_QUEUE_MAX);
	cJSON_ArrayForEach(bo, batches) {
		struct evidence_batch b = { 0 };
		const cJSON *series;

		r = json_check_keys(err, bo, batch_keys, ELEMENTSOF(batch_keys));
		if (r < 0)
			goto fail;
		series = cJSON_GetObjectItemCaseSensitive(bo, "series");
		if (!cJSON_IsArray(series) || cJSON_GetArraySize(series) == 0 ||
		    cJSON_GetArraySize(series) > EVIDENCE_BATCH_SERIES_MAX) {
			r = json_fail(err, "'series' is not an array of 1 to %d", EVIDENCE_BATCH_SERIES_MAX);
			goto fail;
		}
		cJSON_ArrayForEach(so, series) {
			r = series_from_json(err, so, &b);
			if (r < 0) {
				evidence_batch_done(&b);
				goto fail;
			}
		}
		(void)evidence_queue_push(&read, &b, false);
	}
	for (size_t i = 0; i < read.n; i++)
		(void)evidence_queue_push(q, &read.batches[i], false);
	read.n = 0;
	evidence_queue_done(&read);
	return 0;
fail:
	evidence_queue_done(&read);
	return r;
}
