/* logind.c - the sd-bus side of the logind delay lock: connects to the system
 * bus on the caller's sd-event loop, watches PrepareForShutdown, asks for the
 * lock and the InhibitDelayMaxUSec property, and carries out what the state
 * machine (logind-sm.c) decides. Every bus call is asynchronous: nothing here
 * waits, and a missing bus or logind is reported once, never fatal. It does
 * not log; the owner does, from its ops. */
#include "logind/logind.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#define LOGIND_SERVICE   "org.freedesktop.login1"
#define LOGIND_PATH      "/org/freedesktop/login1"
#define LOGIND_MANAGER   "org.freedesktop.login1.Manager"

struct logind {
	sd_event *event;              /* borrowed */
	sd_event_source *start;       /* the connection, on the first iteration */
	sd_bus *bus;                  /* NULL without a system bus */
	sd_bus_slot *watch_slot;      /* PrepareForShutdown */
	sd_bus_slot *lost_slot;       /* the bus connection's end */
	sd_bus_slot *inhibit_slot;    /* the Inhibit call in flight */
	sd_bus_slot *delay_slot;      /* the property read in flight */
	const struct logind_ops *ops; /* borrowed */
	void *userdata;
	struct logind_sm sm;
};

static void read_delay(struct logind *l);
static void take_lock(struct logind *l);

/* Carries out the machine's actions, oldest first. Reentrant: an ops
 * callback that calls logind_release drains the queue further. */
static void dispatch(struct logind *l)
{
	struct logind_action a;

	while (logind_sm_next_action(&l->sm, &a)) {
		switch (a.kind) {
		case LOGIND_READ_DELAY:
			read_delay(l);
			break;
		case LOGIND_TAKE_LOCK:
			take_lock(l);
			break;
		case LOGIND_CLOSE_LOCK:
			if (a.fd >= 0)
				(void)close(a.fd);
			break;
		case LOGIND_SHUTDOWN_STARTED:
			if (l->ops && l->ops->shutdown_started)
				l->ops->shutdown_started(a.budget_usec, l->userdata);
			break;
		case LOGIND_SHUTDOWN_CANCELLED:
			if (l->ops && l->ops->shutdown_cancelled)
				l->ops->shutdown_cancelled(l->userdata);
			break;
		case LOGIND_UNAVAILABLE:
			if (l->ops && l->ops->unavailable)
				l->ops->unavailable(a.why, l->userdata);
			break;
		case _LOGIND_ACTION_MAX:
			break;
		}
	}
}

static void bus_down(struct logind *l, const char *fmt, ...) _printf_(2, 3);
static void bus_down(struct logind *l, const char *fmt, ...)
{
	char why[LOGIND_WHY_MAX];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	logind_sm_bus_down(&l->sm, why);
}

static const char *error_text(const sd_bus_error *e)
{
	if (e && e->message)
		return e->message;
	if (e && e->name)
		return e->name;
	return "unknown error";
}

/* Without the property, logind's configuration files say the same unless
 * logind was not restarted since they changed; without those, its default. */
static void delay_from_config(struct logind *l)
{
	char source[256];
	uint64_t usec;

	if (logind_read_delay_max(&usec, source, sizeof(source)) < 0)
		usec = LOGIND_DELAY_MAX_DEFAULT_USEC;
	logind_sm_delay_max(&l->sm, usec);
}

static int on_delay(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct logind *l = userdata;
	uint64_t usec;

	l->delay_slot = sd_bus_slot_unref(l->delay_slot);
	if (sd_bus_message_is_method_error(m, NULL) ||
	    sd_bus_message_read(m, "v", "t", &usec) < 0)
		delay_from_config(l);
	else
		logind_sm_delay_max(&l->sm, usec);
	dispatch(l);
	return 0;
}

static void read_delay(struct logind *l)
{
	int r;

	l->delay_slot = sd_bus_slot_unref(l->delay_slot);
	r = sd_bus_call_method_async(l->bus, &l->delay_slot, LOGIND_SERVICE, LOGIND_PATH,
				     "org.freedesktop.DBus.Properties", "Get", on_delay, l,
				     "ss", LOGIND_MANAGER, "InhibitDelayMaxUSec");
	if (r < 0)
		delay_from_config(l);
}

static int on_inhibit(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct logind *l = userdata;
	const sd_bus_error *e;
	char why[LOGIND_WHY_MAX];
	int fd, r;

	l->inhibit_slot = sd_bus_slot_unref(l->inhibit_slot);
	if (sd_bus_message_is_method_error(m, NULL)) {
		e = sd_bus_message_get_error(m);
		if (sd_bus_error_has_name(e, SD_BUS_ERROR_SERVICE_UNKNOWN) ||
		    sd_bus_error_has_name(e, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
			(void)snprintf(why, sizeof(why), "no logind on the system bus (%s)", error_text(e));
		else
			(void)snprintf(why, sizeof(why), "logind refused the delay lock: %s", error_text(e));
		logind_sm_inhibit_failed(&l->sm, why);
		goto out;
	}
	r = sd_bus_message_read(m, "h", &fd);
	if (r < 0) {
		(void)snprintf(why, sizeof(why), "logind's Inhibit answer is unreadable: %s", strerror(-r));
		logind_sm_inhibit_failed(&l->sm, why);
		goto out;
	}
	/* The message owns fd and closes it with itself. */
	fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		(void)snprintf(why, sizeof(why), "cannot keep the lock fd: %s", strerror(errno));
		logind_sm_inhibit_failed(&l->sm, why);
		goto out;
	}
	logind_sm_inhibit_answered(&l->sm, fd);
out:
	dispatch(l);
	return 0;
}

static void take_lock(struct logind *l)
{
	char why[LOGIND_WHY_MAX];
	int r;

	l->inhibit_slot = sd_bus_slot_unref(l->inhibit_slot);
	r = sd_bus_call_method_async(l->bus, &l->inhibit_slot, LOGIND_SERVICE, LOGIND_PATH,
				     LOGIND_MANAGER, "Inhibit", on_inhibit, l, "ssss",
				     "shutdown", "spot-agent", "run eviction hooks", "delay");
	if (r < 0) {
		(void)snprintf(why, sizeof(why), "cannot ask logind for the delay lock: %s", strerror(-r));
		logind_sm_inhibit_failed(&l->sm, why);
	}
}

static int on_prepare(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct logind *l = userdata;
	int active;

	if (sd_bus_message_read(m, "b", &active) < 0)
		return 0;
	logind_sm_prepare_for_shutdown(&l->sm, active);
	dispatch(l);
	return 0;
}

static int on_watching(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct logind *l = userdata;

	if (sd_bus_message_is_method_error(m, NULL))
		bus_down(l, "cannot watch logind's PrepareForShutdown: %s",
			 error_text(sd_bus_message_get_error(m)));
	else
		logind_sm_bus_up(&l->sm);
	dispatch(l);
	return 0;
}

static int on_lost(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
	struct logind *l = userdata;

	logind_sm_bus_down(&l->sm, "the system bus connection was lost");
	dispatch(l);
	return 0;
}

static int on_start(sd_event_source *s, void *userdata)
{
	struct logind *l = userdata;
	int r;

	r = sd_bus_open_system(&l->bus);
	if (r < 0) {
		l->bus = NULL;
		bus_down(l, "no system bus: %s", strerror(-r));
		goto out;
	}
	r = sd_bus_attach_event(l->bus, l->event, SD_EVENT_PRIORITY_NORMAL);
	if (r < 0) {
		bus_down(l, "cannot attach the system bus to the loop: %s", strerror(-r));
		goto out;
	}
	/* sd-bus says a connection's end with this local signal. */
	r = sd_bus_match_signal_async(l->bus, &l->lost_slot, "org.freedesktop.DBus.Local",
				      "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
				      "Disconnected", on_lost, NULL, l);
	if (r < 0) {
		bus_down(l, "cannot watch the system bus connection: %s", strerror(-r));
		goto out;
	}
	/* The lock is asked for only once the match is in place (on_watching). */
	r = sd_bus_match_signal_async(l->bus, &l->watch_slot, LOGIND_SERVICE, LOGIND_PATH,
				      LOGIND_MANAGER, "PrepareForShutdown", on_prepare, on_watching, l);
	if (r < 0)
		bus_down(l, "cannot watch logind's PrepareForShutdown: %s", strerror(-r));
out:
	dispatch(l);
	return 0;
}

int logind_new(sd_event *e, const struct logind_ops *ops, void *userdata, struct logind **ret)
{
	struct logind *l;
	int r;

	l = xcalloc(1, sizeof(*l));
	l->event = e;
	l->ops = ops;
	l->userdata = userdata;
	logind_sm_init(&l->sm);
	/* Connecting from the loop keeps every report out of this call. */
	r = sd_event_add_defer(e, &l->start, on_start, l);
	if (r < 0) {
		free(l);
		return r;
	}
	*ret = l;
	return 0;
}

void logind_release(struct logind *l)
{
	if (!l)
		return;
	logind_sm_release(&l->sm);
	dispatch(l);
}

void logind_free(struct logind *l)
{
	struct logind_action a;

	if (!l)
		return;
	l->start = sd_event_source_disable_unref(l->start);
	/* Unreferenced slots are disconnected: no callback comes after this. */
	l->inhibit_slot = sd_bus_slot_unref(l->inhibit_slot);
	l->delay_slot = sd_bus_slot_unref(l->delay_slot);
	l->watch_slot = sd_bus_slot_unref(l->watch_slot);
	l->lost_slot = sd_bus_slot_unref(l->lost_slot);
	while (logind_sm_next_action(&l->sm, &a))
		if (a.kind == LOGIND_CLOSE_LOCK && a.fd >= 0)
			(void)close(a.fd);
	if (l->sm.lock == LOGIND_LOCK_HELD && l->sm.fd >= 0)
		(void)close(l->sm.fd);
	/* Closed, not flushed: flushing would wait for the peer. */
	l->bus = sd_bus_close_unref(l->bus);
	free(l);
}

bool logind_holding(const struct logind *l)
{
	return l && logind_sm_holding(&l->sm);
}

uint64_t logind_delay_max_usec(const struct logind *l)
{
	return l ? logind_sm_delay_max_usec(&l->sm) : 0;
}
