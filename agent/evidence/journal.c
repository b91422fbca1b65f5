/* journal.c - the structured fields of the eviction's journal records. The
 * message ids are journal.h's; what each means to an operator is in the
 * catalogue (packaging/systemd/spot-agent.catalog). */
#include "evidence/journal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

const char *const evidence_message_ids[] = {
	EVIDENCE_MESSAGE_NOTICE, EVIDENCE_MESSAGE_HOOK_FAILED, EVIDENCE_MESSAGE_HOOK_TIMEOUT,
	EVIDENCE_MESSAGE_OVERRUN, EVIDENCE_MESSAGE_APPROVED, EVIDENCE_MESSAGE_CANCELLED,
	EVIDENCE_MESSAGE_RECOVERED, EVIDENCE_MESSAGE_SHUTDOWN,
};
const size_t evidence_message_ids_n = ELEMENTSOF(evidence_message_ids);

void evidence_fields_add(struct evidence_fields *f, const char *name, const char *fmt, ...)
{
	char *t;
	va_list ap;
	int k;

	if (f->n >= EVIDENCE_FIELDS_MAX)
		return;
	t = f->text[f->n];
	k = snprintf(t, EVIDENCE_FIELD_MAX, "%s=", name);
	if (k < 0 || k >= EVIDENCE_FIELD_MAX)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(t + k, EVIDENCE_FIELD_MAX - (size_t)k, fmt, ap);
	va_end(ap);
	f->v[f->n++] = t;
	f->v[f->n] = NULL;
}

void evidence_fields_init(struct evidence_fields *f, enum event_type type, const char *provider,
			  uint64_t not_before_usec, uint64_t deadline_usec)
{
	const char *t = event_type_to_string(type);

	f->n = 0;
	f->v[0] = NULL;
	if (t)
		evidence_fields_add(f, "SPOT_EVENT_TYPE", "%s", t);
	if (provider && provider[0])
		evidence_fields_add(f, "SPOT_PROVIDER", "%s", provider);
	if (not_before_usec)
		evidence_fields_add(f, "SPOT_NOT_BEFORE_USEC", "%" PRIu64, not_before_usec);
	if (deadline_usec)
		evidence_fields_add(f, "SPOT_DEADLINE_USEC", "%" PRIu64, deadline_usec);
}
