/* samples.h - an eviction's facts as the series of its record: the
 * spot_eviction_* metrics with this instance's labels, each sample
 * stamped with the moment it describes. Pure: no I/O, no clock. */
#ifndef SPOT_EVIDENCE_SAMPLES_H
#define SPOT_EVIDENCE_SAMPLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/event.h"
#include "hooks/hooks.h"
#include "hooks/report.h"

#define EVIDENCE_JOB               "spot-agent"
#define EVIDENCE_LABEL_VALUE_MAX   256   /* bytes with the NUL; longer values are cut */
#define EVIDENCE_LABEL_NAME_MAX    64    /* bytes with the NUL of an operator's label name */
#define EVIDENCE_EXTRA_LABELS_MAX  16    /* operator's labels (remote-write-label) */
/* Labels of one series: __name__, ours (at most 11) and the operator's. */
#define EVIDENCE_SERIES_LABELS_MAX (12 + EVIDENCE_EXTRA_LABELS_MAX)
/* Series of one batch: every hook a record may hold (the plan's and those
 * that left it, as state.h's STATE_RECORD_HOOKS_MAX) and a dozen more. */
#define EVIDENCE_BATCH_SERIES_MAX  (2 * HOOKS_MAX + 16)

/* Where the record comes from. The caller fills what it knows; an empty
 * field is left out of the labels (Prometheus has no empty label). */
struct evidence_identity {
	char provider[16];                        /* "azure", "aws", "gcp" */
	char instance[EVIDENCE_LABEL_VALUE_MAX];  /* VM name (Azure, GCP), instance id (AWS) */
	char region[EVIDENCE_LABEL_VALUE_MAX];
	char zone[EVIDENCE_LABEL_VALUE_MAX];
	char vm_size[EVIDENCE_LABEL_VALUE_MAX];
	char group[EVIDENCE_LABEL_VALUE_MAX];     /* scale set, ASG or MIG; "" unknown */
};

/* One hook of the chain, as far as it got. */
struct evidence_hook {
	char name[HOOK_NAME_MAX];
	enum hook_outcome outcome;   /* only OK, FAILED, TIMEOUT and SKIPPED count */
	uint64_t start_wall_usec;    /* 0 when it never started */
	uint64_t end_wall_usec;      /* 0 when it never started */
};

enum evidence_recover_reason {
	EVIDENCE_RECOVER_CANCELLED,
	EVIDENCE_RECOVER_ENDED,
	EVIDENCE_RECOVER_BOOT,
	_EVIDENCE_RECOVER_MAX,
};
const char *evidence_recover_reason_to_string(enum evidence_recover_reason r);

/* An eviction's facts; every time is wall-clock microseconds, 0 when not
 * (yet) known. Borrowed pointers only. */
struct evidence_eviction {
	enum event_type type;
	const char *source;              /* the event's source ("Platform"); "" or NULL none */
	uint64_t detected_wall_usec;
	uint64_t not_before_wall_usec;
	uint64_t deadline_wall_usec;
	const struct evidence_hook *hooks; /* run order */
	size_t n_hooks;
	uint64_t chain_end_wall_usec;
	struct hook_report reported;     /* the sum of what the hooks reported */
	uint64_t ack_wall_usec;          /* acknowledgement confirmed */
	enum evidence_recover_reason recover_reason;
	uint64_t recover_wall_usec;      /* the recover step started */
	/* The acknowledgement, or else the last sign of life before the
	 * recovery (the last state save, say): time_to_recover starts here. */
	uint64_t alive_wall_usec;
};

/* Which part of the record a batch carries (a mask): each is sent once, at
 * its moment. */
enum {
	EVIDENCE_DETECTED  = 1u << 0,  /* detected, notice_seconds */
	EVIDENCE_CHAIN     = 1u << 1,  /* first hook, each hook, chain, overrun,
					* hooks failed, what hooks reported (and
					* approval_seconds, when acknowledged by then) */
	EVIDENCE_ACK       = 1u << 2,  /* approval_seconds alone */
	EVIDENCE_RECOVERED = 1u << 3,  /* recovered, time_to_recover_seconds */
};

struct evidence_label {
	char *name;    /* owned */
	char *value;   /* owned */
};

struct evidence_series {
	struct evidence_label *labels;   /* owned, sorted by name, "__name__" among them */
	size_t n_labels;
	double value;
	int64_t timestamp_ms;            /* the moment it describes */
};

struct evidence_batch {
	struct evidence_series *series;  /* owned */
	size_t n_series;
};

/* The series of the parts in mask, for identity id and the operator's
 * labels extra (NULL-terminated "NAME=VALUE" strings, checked by
 * evidence_label_check; one that fails it is left out). A part's series
 * whose facts are unknown are left out (a chain without hooks has no
 * first_hook_seconds). *ret is overwritten (not freed); the caller frees
 * it with evidence_batch_done. Returns the number of series. */
size_t evidence_samples(const struct evidence_identity *id, char *const *extra,
			const struct evidence_eviction *f, unsigned mask, struct evidence_batch *ret);

void evidence_batch_done(struct evidence_batch *b);
/* Moves src into dst (dst is freed first); src is left empty. */
void evidence_batch_move(struct evidence_batch *dst, struct evidence_batch *src);
/* Appends one series (labels copied and sorted; name becomes __name__). */
void evidence_batch_add(struct evidence_batch *b, const char *name, const char *const *labels,
			size_t n_labels, double value, int64_t timestamp_ms);
/* The value of label name of a series, NULL when it has none. */
const char *evidence_series_label(const struct evidence_series *s, const char *name);

/* Whether "NAME=VALUE" may be an operator's label: NAME matches
 * [a-zA-Z_][a-zA-Z0-9_]* within EVIDENCE_LABEL_NAME_MAX, does not start
 * with "__" and is none of the record's own labels (job, instance,
 * provider, region, zone, vm_size, group, type, source, hook, result,
 * reason); VALUE is non-empty UTF-8 within EVIDENCE_LABEL_VALUE_MAX.
 * Returns 0, or -EINVAL with the reason in why. */
int evidence_label_check(const char *name_value, char *why, size_t why_size);

#endif
