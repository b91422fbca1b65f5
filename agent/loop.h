/* loop.h - the one event loop: sd-event with signals and the watchdog. */
#ifndef SPOT_LOOP_H
#define SPOT_LOOP_H

#include <systemd/sd-event.h>

/* Creates the loop: blocks the signals it will deliver as events (TERM,
 * INT, HUP, CHLD), ignores SIGPIPE, and turns on WATCHDOG=1 pings when
 * systemd asked for them. Returns 0 or -errno. */
int loop_new(sd_event **ret);

/* Delivers sig through handler on the loop. */
int loop_add_signal(sd_event *e, int sig, sd_event_signal_handler_t handler, void *userdata);

/* Runs until sd_event_exit; returns its exit code, or a negative errno. */
int loop_run(sd_event *e);

#endif
