/* shutdown-lock.h - the life of logind's delay inhibitor lock as a pure
 * state machine (shutdown-lock.c): inputs in, actions out, no I/O. The
 * sd-bus glue that feeds it and carries its actions out is logind/lock.c. */
#ifndef SPOT_ENGINE_SHUTDOWN_LOCK_H
#define SPOT_ENGINE_SHUTDOWN_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base.h"

/* logind's compiled-in InhibitDelayMaxSec. */
#define LOGIND_DELAY_MAX_DEFAULT_USEC (5 * USEC_PER_SEC)
/* Room for a reason of LOGIND_UNAVAILABLE, truncated beyond. */
#define LOGIND_WHY_MAX 256

enum logind_action_kind {
	/* Effects, for the glue to carry out. */
	LOGIND_READ_DELAY,        /* read InhibitDelayMaxUSec, answer with
				   * logind_sm_delay_max */
	LOGIND_TAKE_LOCK,         /* call Inhibit(shutdown, delay), answer with
				   * logind_sm_inhibit_answered/_failed */
	LOGIND_CLOSE_LOCK,        /* close fd: the lock is let go */
	/* Reports, for the owner (struct logind_ops). */
	LOGIND_SHUTDOWN_STARTED,  /* budget_usec */
	LOGIND_SHUTDOWN_CANCELLED,
	LOGIND_UNAVAILABLE,       /* why */
	_LOGIND_ACTION_MAX,
};

struct logind_action {
	enum logind_action_kind kind;
	int fd;                    /* CLOSE_LOCK */
	uint64_t budget_usec;      /* SHUTDOWN_STARTED */
	char why[LOGIND_WHY_MAX];  /* UNAVAILABLE */
};

enum logind_bus_state {
	LOGIND_BUS_UNKNOWN,        /* not connected yet */
	LOGIND_BUS_UP,             /* connected, PrepareForShutdown watched */
	LOGIND_BUS_DOWN,           /* none, or lost: nothing more happens */
};

enum logind_lock_state {
	LOGIND_LOCK_NONE,          /* not held, not asked for */
	LOGIND_LOCK_REQUESTED,     /* Inhibit sent, no answer yet */
	LOGIND_LOCK_HELD,          /* fd is the lock */
	LOGIND_LOCK_FAILED,        /* Inhibit refused; asked again after a
				    * cancelled shutdown */
};

/* Every input queues at most 3 actions and the glue takes them all after
 * each input, so this never fills (an overflow aborts). */
#define LOGIND_SM_QUEUE_MAX 8

struct logind_sm {
	enum logind_bus_state bus;
	enum logind_lock_state lock;
	int fd;                    /* the lock while HELD, else -1; owned by
				    * the glue, which closes it on CLOSE_LOCK */
	bool shutdown;             /* PrepareForShutdown(true) seen, not
				    * cancelled since */
	bool released;             /* the owner released during this shutdown */
	bool stopped;              /* the owner released outside a shutdown:
				    * the lock is never taken again */
	bool reported;             /* UNAVAILABLE told, no lock held since */
	bool delay_known;
	uint64_t delay_max_usec;   /* InhibitDelayMaxUSec, when delay_known */
	struct logind_action queue[LOGIND_SM_QUEUE_MAX];
	size_t first, n_queued;
};

void logind_sm_init(struct logind_sm *sm);

/* The bus is connected and PrepareForShutdown is watched: read the delay,
 * take the lock. */
void logind_sm_bus_up(struct logind_sm *sm);
/* No system bus, or it went away (why for the log). A lock held outside a
 * shutdown is closed: nobody would hear the shutdown it delays. */
void logind_sm_bus_down(struct logind_sm *sm, const char *why);
/* Inhibit answered with the lock fd (ours from now on: it comes back in a
 * CLOSE_LOCK). */
void logind_sm_inhibit_answered(struct logind_sm *sm, int fd);
/* Inhibit failed (why for the log). */
void logind_sm_inhibit_failed(struct logind_sm *sm, const char *why);
/* PrepareForShutdown(active). */
void logind_sm_prepare_for_shutdown(struct logind_sm *sm, bool active);
/* InhibitDelayMaxUSec is known. */
void logind_sm_delay_max(struct logind_sm *sm, uint64_t usec);
/* The owner's logind_release. */
void logind_sm_release(struct logind_sm *sm);

/* Takes the oldest action not yet taken: false when there is none. */
bool logind_sm_next_action(struct logind_sm *sm, struct logind_action *ret);

bool logind_sm_holding(const struct logind_sm *sm);
uint64_t logind_sm_delay_max_usec(const struct logind_sm *sm);

#endif
