/* azure.h - Azure Scheduled Events and instance metadata documents: the pure
 * parsers behind the Azure provider (azure.c implements provider.h's
 * interface for Azure; nothing else needs to know Azure's dialect). */
#ifndef SPOT_AZURE_H
#define SPOT_AZURE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/event.h"
#include "clouds/provider.h"

#define AZURE_API_VERSION_EVENTS  "2020-07-01"
#define AZURE_API_VERSION_COMPUTE "2021-02-01"
#define AZURE_EVENTS_PATH  "/metadata/scheduledevents?api-version=" AZURE_API_VERSION_EVENTS
#define AZURE_COMPUTE_PATH "/metadata/instance/compute?api-version=" AZURE_API_VERSION_COMPUTE
#define AZURE_DEFAULT_URL  "http://169.254.169.254"

/* A Scheduled Events document as it concerns one VM. */
struct azure_document {
	int64_t incarnation;          /* DocumentIncarnation, >= 0 */
	struct event_list events;     /* owned: azure_document_done; events NULL when none */
	size_t n_other;               /* well-formed events that do not name the VM */
	struct provider_drop drops[PROVIDER_DROPS_MAX];  /* the first drops, in document order */
	size_t n_drops;               /* events dropped in all */
};

void azure_document_done(struct azure_document *d);

/* Parses a Scheduled Events document for the VM vm_name.
 *
 * The filter comes before the cap: an event whose Resources do not name
 * vm_name (ASCII case-insensitive, event_names_resource) is counted in
 * n_other and takes no room, so the events of a whole availability set
 * cannot crowd out this VM's own. Of the events that name vm_name (every
 * well-formed event when vm_name is NULL), the first EVENTS_MAX are kept in
 * document order; further ones are dropped ("over the limit of 32 events").
 *
 * An event is dropped, with its real defect in a provider_drop, when it is
 * not an object, its EventId is missing, not a string, empty, longer than
 * EVENT_ID_MAX - 1 bytes or has control characters, its EventType or
 * EventStatus is missing, not a string or unknown (case-sensitive:
 * "unknown EventType 'Hibernate'"), or its Resources is missing or not an
 * array. drops[].id is the EventId when it is usable, else "".
 *
 * Unknown keys and any key order are accepted; missing optional fields take
 * their defaults (Description "", EventSource "", DurationInSeconds -1).
 * A NotBefore that is absent, "" or unparsable gives not_before 0 (unknown:
 * event_deadline then grants the emergency budget). Resources: non-string,
 * empty and oversized names are skipped, at most EVENT_RESOURCES_MAX kept;
 * when vm_name is listed beyond those, it replaces the last one kept, so a
 * kept event always names the VM. Description and EventSource are truncated
 * on a UTF-8 boundary. DurationInSeconds other than a whole number >= -1
 * gives -1. An EventId is kept as sent (case preserved).
 *
 * Returns 0, or -EBADMSG when the body is not a document at all (not JSON,
 * trailing bytes other than whitespace, no whole DocumentIncarnation >= 0,
 * Events present but not an array; a missing Events counts as empty). body
 * need not be NUL-terminated. On success *ret is overwritten (call
 * azure_document_done); on error nothing is written. */
int azure_parse_events(const char *body, size_t len, const char *vm_name, struct azure_document *ret);

/* Extracts compute.name from a /metadata/instance/compute document: a JSON
 * object whose "name" is a non-empty string shorter than PROVIDER_NAME_MAX
 * bytes without control characters. Returns 0 and a string the caller
 * frees, or -EBADMSG. */
int azure_parse_compute_name(const char *body, size_t len, char **ret_name);

/* The approval body {"StartRequests":[{"EventId":"<id>"}]}, JSON-escaped;
 * caller frees with free(). NULL only when event_id is NULL or out of memory. */
char *azure_approval_body(const char *event_id);

#endif
