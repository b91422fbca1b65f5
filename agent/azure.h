/* azure.h - Azure Scheduled Events and instance metadata documents. */
#ifndef SPOT_AZURE_H
#define SPOT_AZURE_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define AZURE_API_VERSION_EVENTS  "2020-07-01"
#define AZURE_API_VERSION_COMPUTE "2021-02-01"
#define AZURE_EVENTS_PATH  "/metadata/scheduledevents?api-version=" AZURE_API_VERSION_EVENTS
#define AZURE_COMPUTE_PATH "/metadata/instance/compute?api-version=" AZURE_API_VERSION_COMPUTE
#define AZURE_DEFAULT_URL  "http://169.254.169.254"

/* Parses a Scheduled Events document. Every well-formed event is returned
 * (other VMs' too: filtering by name is the caller's); events with an
 * unknown EventType or EventStatus, or a missing/oversized EventId, are
 * dropped and counted in *ret_n_ignored (may be NULL). Unknown keys and any
 * key order are accepted; missing optional fields take their defaults
 * (Description "", EventSource "", DurationInSeconds -1).
 * Returns 0, or -EBADMSG when the body is not a document at all
 * (not JSON, no DocumentIncarnation number, Events not an array).
 * Details: body need not be NUL-terminated, and only whitespace may follow
 * the JSON value. DocumentIncarnation must be a whole number >= 0; a missing
 * Events counts as empty. An EventId is kept as sent (case preserved) and
 * must be a non-empty string < EVENT_ID_MAX without control characters.
 * EventType and EventStatus are case-sensitive. A NotBefore that is absent,
 * "" or unparsable gives not_before 0 (unknown: event_deadline then grants
 * the emergency budget). Resources: non-string, empty and oversized names
 * are skipped, at most EVENT_RESOURCES_MAX kept; a missing Resources gives
 * none. Description and EventSource are truncated on a UTF-8 boundary.
 * DurationInSeconds other than a whole number >= -1 gives -1. At most
 * EVENTS_MAX events are kept, in document order; further valid events are
 * counted as ignored. On success *ret (and the others) are overwritten and
 * the caller calls event_list_done; on error nothing is written. */
int azure_parse_events(const char *body, size_t len, uint64_t *ret_incarnation,
		       struct event_list *ret, size_t *ret_n_ignored);

/* Extracts compute.name from a /metadata/instance/compute document: a JSON
 * object whose "name" is a non-empty string shorter than 256 bytes without
 * control characters. Returns 0 and a string the caller frees, or -EBADMSG. */
int azure_parse_compute_name(const char *body, size_t len, char **ret_name);

/* The approval body {"StartRequests":[{"EventId":"<id>"}]}, JSON-escaped;
 * caller frees with free(). NULL only when event_id is NULL or out of memory. */
char *azure_approval_body(const char *event_id);

#endif
