/* logind.h - the logind "delay" inhibitor lock for shutdown.
 *
 * While the agent holds the lock, a shutdown (GCP's ACPI soft-off at
 * preemption, `systemctl poweroff`, the end of an AWS spot notice) waits
 * until the agent lets go of it, or at most InhibitDelayMaxSec, so the
 * eviction hooks get their time. The module has three parts:
 * - engine/shutdown-lock.c: the lock's life as a pure state machine (inputs in, actions
 *   out, no I/O), which the unit tests drive with a fake bus;
 * - logind/lock.c: the sd-bus glue on the caller's sd-event loop (no blocking
 *   bus call anywhere) that carries the actions out and feeds the answers in;
 * - logind/conf.c: InhibitDelayMaxSec as logind's configuration files set
 *   it, read without the bus, for `spot-agent check`. */
#ifndef SPOT_LOGIND_H
#define SPOT_LOGIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "engine/shutdown-lock.h"
#include "util.h"


/* ---- The daemon's interface (logind/lock.c) ---------------------------------- */

/* What the owner is told, always from the loop (never from inside a logind_*
 * call). Any of the three may be NULL. */
struct logind_ops {
	/* logind announced a shutdown (PrepareForShutdown(true)). budget_usec is
	 * how long it waits for us, counted from now: InhibitDelayMaxUSec while
	 * we hold the lock (USEC_INFINITY when logind waits for ever), 0 when we
	 * held none (the shutdown does not wait for us). The owner calls
	 * logind_release once its hooks are done or the budget is spent. */
	void (*shutdown_started)(uint64_t budget_usec, void *userdata);
	/* The shutdown was called off (PrepareForShutdown(false)), after a
	 * shutdown_started; the lock is being taken again. */
	void (*shutdown_cancelled)(void *userdata);
	/* No lock can be had: no system bus, no logind, Inhibit refused, the bus
	 * went away. why is a sentence for the log (borrowed for the call); told
	 * once, and again only after a lock was held in between. The agent goes
	 * on without the lock. */
	void (*unavailable)(const char *why, void *userdata);
};

struct logind;

/* Starts on e: connects to the system bus, watches PrepareForShutdown,
 * reads InhibitDelayMaxUSec and takes the lock, all asynchronously, from
 * the loop's first iteration on. ops and userdata are borrowed for the
 * object's lifetime. A missing bus or logind is not an error here: it is
 * reported through ops->unavailable. Returns 0 or -errno (-ENOMEM). */
int logind_new(sd_event *e, const struct logind_ops *ops, void *userdata, struct logind **ret);

/* The owner is done with the current shutdown (its hooks ended, or the budget
 * is spent): the lock is closed so the shutdown proceeds, and taken again
 * only if this shutdown is cancelled. Outside a shutdown it gives the lock up
 * for good (the agent is stopping). A second call does nothing. May be
 * called from an ops callback. */
void logind_release(struct logind *l);

/* Closes the lock if held and the bus connection, without waiting. NULL is
 * fine. Not from an ops callback. */
void logind_free(struct logind *l);

/* True while the lock is held. */
bool logind_holding(const struct logind *l);
/* InhibitDelayMaxUSec as logind grants it (or its configuration says, when
 * the property could not be read); 0 until known, USEC_INFINITY for
 * "infinity". */
uint64_t logind_delay_max_usec(const struct logind *l);

/* ---- InhibitDelayMaxSec without the bus (logind/conf.c) ----------------- */

/* Computes the InhibitDelayMaxSec logind applies, from its files read the way
 * logind reads them: the main file (the first that exists of
 * {/etc,/run,/usr/local/lib,/usr/lib}/systemd/logind.conf), then every
 * *.conf file in systemd/logind.conf.d/ of those four directories, in one
 * list sorted by file name (of two files with one name, the one in the
 * earlier directory replaces the other; a link to /dev/null masks), the last
 * assignment in [Login] winning. Values logind would ignore (not a time
 * span) are ignored too. Without any assignment: logind's default,
 * LOGIND_DELAY_MAX_DEFAULT_USEC.
 * *ret_usec gets the value (USEC_INFINITY for "infinity"); source (size n,
 * may be NULL) gets the file that set it, "" for the default. root prefixes
 * every path (NULL or "" for /; tests use a temporary directory); the paths
 * written to source omit it. Returns 0, or -errno when a file or directory
 * exists but cannot be read, there are more than LOGIND_CONF_DROPINS_MAX
 * drop-ins, or a file is over LOGIND_CONF_FILE_MAX; source then names the
 * culprit. */
#define LOGIND_CONF_DROPINS_MAX 256
#define LOGIND_CONF_FILE_MAX    (1024 * 1024)
int logind_read_delay_max_at(const char *root, uint64_t *ret_usec, char *source, size_t n);
int logind_read_delay_max(uint64_t *ret_usec, char *source, size_t n);

/* Parses a systemd time span as logind's InhibitDelayMaxSec= takes it:
 * "infinity", or one or more <number>[<unit>] with optional spaces ("30",
 * "30s", "2min", "1min 30s", "1.5h"); a number without a unit is seconds.
 * Units: us usec ms msec s sec second seconds m min minute minutes h hr hour
 * hours d day days w week weeks M month months y year years. At most 256
 * characters. Returns 0, -EINVAL or -ERANGE. */
int logind_parse_sec(const char *s, uint64_t *ret_usec);

#endif
