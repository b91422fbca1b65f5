/* journal.h - the eviction's record in the journal: one catalogued message
 * id per kind of eviction message (packaging/systemd/spot-agent.catalog
 * explains each, `journalctl -x` shows it) and the structured fields every
 * such record carries, for log_emit_fields. */
#ifndef SPOT_EVIDENCE_JOURNAL_H
#define SPOT_EVIDENCE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/event.h"
#include "util.h"

/* Fixed for good (systemd-id128 new): a catalogue and every query written
 * against them depend on these. */
#define EVIDENCE_MESSAGE_NOTICE        "01cf9bdfd9c241ec834a25a34773804f"  /* eviction notice seen */
#define EVIDENCE_MESSAGE_HOOK_FAILED   "fb3e2c091742475e9ecdc418288629bb"  /* a hook failed */
#define EVIDENCE_MESSAGE_HOOK_TIMEOUT  "a48d8c6d31494cbe8853e2d86155edd2"  /* a hook timed out */
#define EVIDENCE_MESSAGE_OVERRUN       "6dc18641d20e40f4afdad9864afe6706"  /* the chain ended after its deadline */
#define EVIDENCE_MESSAGE_APPROVED      "7969b69144d54da8900bd99e7d7a7e93"  /* acknowledged to the platform */
#define EVIDENCE_MESSAGE_CANCELLED     "7caf0620ed9d4654b26fd63c0f287c4c"  /* the platform called it off */
#define EVIDENCE_MESSAGE_RECOVERED     "d84f798d1c284285867a798ab4afc250"  /* the VM lives on after it */
#define EVIDENCE_MESSAGE_SHUTDOWN      "591f86927cce42028a99f57d905737f4"  /* the OS shuts down without a notice */

/* All of them, for the catalogue's test. */
extern const char *const evidence_message_ids[];
extern const size_t evidence_message_ids_n;

#define EVIDENCE_FIELDS_MAX 12
#define EVIDENCE_FIELD_MAX  192   /* "NAME=value" with the NUL; longer values are cut */

/* The fields of one record: filled by evidence_fields_init, added to by
 * evidence_fields_add, handed to log_emit_fields as f->v. */
struct evidence_fields {
	char text[EVIDENCE_FIELDS_MAX][EVIDENCE_FIELD_MAX];
	const char *v[EVIDENCE_FIELDS_MAX + 1];   /* NULL-terminated */
	size_t n;
};

/* The fields of every eviction record: SPOT_EVENT_TYPE, SPOT_PROVIDER,
 * SPOT_NOT_BEFORE_USEC and SPOT_DEADLINE_USEC (each time only when known,
 * wall-clock microseconds). SPOT_EVENT_ID and SPOT_HOOK come from
 * log_emit_fields' own arguments. */
void evidence_fields_init(struct evidence_fields *f, enum event_type type, const char *provider,
			  uint64_t not_before_usec, uint64_t deadline_usec);
/* Adds NAME=value (NAME as a journal field: SPOT_EXIT_STATUS, ...); ignored
 * once EVIDENCE_FIELDS_MAX are held. */
void evidence_fields_add(struct evidence_fields *f, const char *name, const char *fmt, ...) _printf_(3, 4);

#endif
