/* remote-write.h - a batch of series as a Prometheus remote-write 1.0
 * request body: the WriteRequest protobuf (remote-write.proto), snappy
 * block compressed, and the header lines that go with it. */
#ifndef SPOT_EVIDENCE_REMOTE_WRITE_H
#define SPOT_EVIDENCE_REMOTE_WRITE_H

#include <stddef.h>

#include "evidence/samples.h"

/* The header lines of every remote-write request (the transport adds
 * User-Agent: spot-agent/VERSION). */
#define EVIDENCE_RW_CONTENT_ENCODING "Content-Encoding: snappy"
#define EVIDENCE_RW_CONTENT_TYPE     "Content-Type: application/x-protobuf"
#define EVIDENCE_RW_VERSION          "X-Prometheus-Remote-Write-Version: 0.1.0"

/* The body of b: packed with protobuf-c, then compressed with snappy.
 * *ret_body (allocated, the caller frees it) holds *ret_len bytes.
 * Returns 0, or -ENOMEM when snappy fails, -E2BIG for an empty batch. */
int evidence_rw_encode(const struct evidence_batch *b, void **ret_body, size_t *ret_len);

#endif
