/* shutdown-lock.c - the life of the logind delay lock as a pure state machine:
 * when to ask for the lock, when to let it go, what the owner is told. It
 * does no I/O, not even the close of the lock fd (that is an action), and
 * knows nothing of sd-bus: logind/lock.c feeds it and carries its actions out.
 *
 * The rules:
 * - the lock is asked for once the bus is up and PrepareForShutdown is
 *   watched, never before: a lock nobody listens for only delays shutdowns;
 * - PrepareForShutdown(true) tells the owner its budget, InhibitDelayMaxUSec
 *   if we hold the lock at that moment, 0 if not (logind does not wait);
 * - the lock is closed on the owner's release and otherwise held through the
 *   shutdown, whatever happens to the bus meanwhile;
 * - after PrepareForShutdown(false) the lock is taken again;
 * - a lock that arrives when it is no longer wanted is closed at once;
 * - "unavailable" is told once, and again only after a lock was held. */
#include "engine/shutdown-lock.h"

#include <stdlib.h>
#include <string.h>

void logind_sm_init(struct logind_sm *sm)
{
	memset(sm, 0, sizeof(*sm));
	sm->fd = -1;
}

static struct logind_action *push(struct logind_sm *sm, enum logind_action_kind kind)
{
	struct logind_action *a;

	if (sm->n_queued >= LOGIND_SM_QUEUE_MAX)
		abort(); /* The glue does not take its actions: a bug. */
	a = &sm->queue[(sm->first + sm->n_queued++) % LOGIND_SM_QUEUE_MAX];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->fd = -1;
	return a;
}

static void push_close(struct logind_sm *sm, int fd)
{
	push(sm, LOGIND_CLOSE_LOCK)->fd = fd;
}

static void report_unavailable(struct logind_sm *sm, const char *why)
{
	if (sm->reported)
		return;
	sm->reported = true;
	(void)strscpy(push(sm, LOGIND_UNAVAILABLE)->why, LOGIND_WHY_MAX, why ? why : "logind unavailable");
}

/* Asks for the lock when it is wanted and not held or asked for already. The
 * delay is read again each time: logind may have been reconfigured. */
static void take_lock(struct logind_sm *sm)
{
	if (sm->bus != LOGIND_BUS_UP || sm->stopped)
		return;
	if (sm->lock == LOGIND_LOCK_HELD || sm->lock == LOGIND_LOCK_REQUESTED)
		return;
	push(sm, LOGIND_READ_DELAY);
	push(sm, LOGIND_TAKE_LOCK);
	sm->lock = LOGIND_LOCK_REQUESTED;
}

static void drop_lock(struct logind_sm *sm)
{
	if (sm->lock == LOGIND_LOCK_HELD)
		push_close(sm, sm->fd);
	sm->fd = -1;
	sm->lock = LOGIND_LOCK_NONE;
}

void logind_sm_bus_up(struct logind_sm *sm)
{
	if (sm->bus != LOGIND_BUS_UNKNOWN)
		return;
	sm->bus = LOGIND_BUS_UP;
	take_lock(sm);
}

void logind_sm_bus_down(struct logind_sm *sm, const char *why)
{
	if (sm->bus == LOGIND_BUS_DOWN)
		return;
	sm->bus = LOGIND_BUS_DOWN;
	/* During a shutdown the bus goes away as services stop: expected, and
	 * the lock still buys the owner its time, so both stay as they are. A
	 * REQUESTED lock is still answered (by an error, when the connection
	 * closed): the answer is handled then. */
	if (sm->shutdown)
		return;
	if (sm->lock == LOGIND_LOCK_HELD)
		drop_lock(sm);
	report_unavailable(sm, why);
}

void logind_sm_inhibit_answered(struct logind_sm *sm, int fd)
{
	if (fd < 0)
		return;
	if (sm->lock != LOGIND_LOCK_REQUESTED) {
		/* Not asked for (a stale answer): not ours to keep. */
		push_close(sm, fd);
		return;
	}
	if (sm->stopped || (sm->shutdown && sm->released) ||
	    (sm->bus == LOGIND_BUS_DOWN && !sm->shutdown)) {
		/* The owner let go while the answer was on its way, or nobody
		 * would hear the shutdown this lock delays. */
		push_close(sm, fd);
		sm->lock = LOGIND_LOCK_NONE;
		return;
	}
	/* Held even when a shutdown was announced before the answer: it cannot
	 * delay that shutdown, but it is in place if the shutdown is cancelled. */
	sm->lock = LOGIND_LOCK_HELD;
	sm->fd = fd;
	sm->reported = false;
}

void logind_sm_inhibit_failed(struct logind_sm *sm, const char *why)
{
	if (sm->lock != LOGIND_LOCK_REQUESTED)
		return;
	sm->lock = LOGIND_LOCK_FAILED;
	/* logind refuses a delay lock while the shutdown it would delay is
	 * already running: no news, the owner was told with budget 0. */
	if (!sm->shutdown && !sm->stopped)
		report_unavailable(sm, why);
}

void logind_sm_prepare_for_shutdown(struct logind_sm *sm, bool active)
{
	struct logind_action *a;

	if (active) {
		if (sm->shutdown)
			return; /* Said twice: one shutdown. */
		sm->shutdown = true;
		sm->released = false;
		a = push(sm, LOGIND_SHUTDOWN_STARTED);
		if (sm->lock != LOGIND_LOCK_HELD)
			a->budget_usec = 0;
		else if (sm->delay_known)
			a->budget_usec = sm->delay_max_usec;
		else
			a->budget_usec = LOGIND_DELAY_MAX_DEFAULT_USEC;
		return;
	}
	if (sm->shutdown) {
		sm->shutdown = false;
		sm->released = false;
		push(sm, LOGIND_SHUTDOWN_CANCELLED);
	}
	/* Also after a cancel whose start we never saw: the lock is wanted. */
	take_lock(sm);
	if (sm->bus == LOGIND_BUS_DOWN) {
		/* The bus went away during the shutdown (the glue hears no more
		 * signals then, but a caller may say so): as for bus_down. */
		drop_lock(sm);
		report_unavailable(sm, "the system bus went away during a shutdown");
	}
}

void logind_sm_delay_max(struct logind_sm *sm, uint64_t usec)
{
	sm->delay_known = true;
	sm->delay_max_usec = usec;
}

void logind_sm_release(struct logind_sm *sm)
{
	if (sm->shutdown)
		sm->released = true;
	else
		sm->stopped = true;
	if (sm->lock == LOGIND_LOCK_HELD)
		drop_lock(sm);
	/* A REQUESTED lock is closed when its answer comes (see above). */
}

bool logind_sm_next_action(struct logind_sm *sm, struct logind_action *ret)
{
	if (sm->n_queued == 0)
		return false;
	*ret = sm->queue[sm->first];
	sm->first = (sm->first + 1) % LOGIND_SM_QUEUE_MAX;
	sm->n_queued--;
	return true;
}

bool logind_sm_holding(const struct logind_sm *sm)
{
	return sm->lock == LOGIND_LOCK_HELD;
}

uint64_t logind_sm_delay_max_usec(const struct logind_sm *sm)
{
	return sm->delay_known ? sm->delay_max_usec : 0;
}
