/* remote-write.c - encodes a batch as the remote-write 1.0 wire format:
 * the WriteRequest message built from the series as they are (labels
 * already sorted, one sample each), packed by protobuf-c and compressed
 * in snappy's block format. Nothing here is written by hand: the message
 * code is protoc-c's, compiled from remote-write.proto at build time. */
#include "evidence/remote-write.h"

#include <errno.h>
#include <stdlib.h>

#include <snappy-c.h>

#include "evidence/remote-write.pb-c.h"
#include "util.h"

int evidence_rw_encode(const struct evidence_batch *b, void **ret_body, size_t *ret_len)
{
	Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;
	Prometheus__TimeSeries *ts, **ts_ptrs;
	Prometheus__Sample *samples, **sample_ptrs;
	Prometheus__Label *labels, **label_ptrs;
	size_t n_labels = 0, k = 0, packed_len, out_len;
	uint8_t *packed;
	char *out;
	int r = 0;

	if (b->n_series == 0)
		return -E2BIG;
	for (size_t i = 0; i < b->n_series; i++)
		n_labels += b->series[i].n_labels;
	ts = xcalloc(b->n_series, sizeof(*ts));
	ts_ptrs = xcalloc(b->n_series, sizeof(*ts_ptrs));
	samples = xcalloc(b->n_series, sizeof(*samples));
	sample_ptrs = xcalloc(b->n_series, sizeof(*sample_ptrs));
	labels = xcalloc(n_labels, sizeof(*labels));
	label_ptrs = xcalloc(n_labels, sizeof(*label_ptrs));

	/* The message borrows the batch's strings: protobuf-c only reads them. */
	for (size_t i = 0; i < b->n_series; i++) {
		const struct evidence_series *s = &b->series[i];

		prometheus__time_series__init(&ts[i]);
		ts[i].labels = &label_ptrs[k];
		ts[i].n_labels = s->n_labels;
		for (size_t j = 0; j < s->n_labels; j++, k++) {
			prometheus__label__init(&labels[k]);
			labels[k].name = s->labels[j].name;
			labels[k].value = s->labels[j].value;
			label_ptrs[k] = &labels[k];
		}
		prometheus__sample__init(&samples[i]);
		samples[i].value = s->value;
		samples[i].timestamp = s->timestamp_ms;
		sample_ptrs[i] = &samples[i];
		ts[i].samples = &sample_ptrs[i];
		ts[i].n_samples = 1;
		ts_ptrs[i] = &ts[i];
	}
	req.timeseries = ts_ptrs;
	req.n_timeseries = b->n_series;

	packed_len = prometheus__write_request__get_packed_size(&req);
	packed = xmalloc(packed_len ? packed_len : 1);
	(void)prometheus__write_request__pack(&req, packed);
	out_len = snappy_max_compressed_length(packed_len);
	out = xmalloc(out_len);
	if (snappy_compress((const char *)packed, packed_len, out, &out_len) != SNAPPY_OK) {
		free(out);
		r = -ENOMEM;
	} else {
		*ret_body = out;
		*ret_len = out_len;
	}
	free(packed);
	free(ts);
	free(ts_ptrs);
	free(samples);
	free(sample_ptrs);
	free(labels);
	free(label_ptrs);
	return r;
}
