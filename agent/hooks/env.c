/* env.c - a hook's environment: nothing of the agent's own, only PATH,
 * LANG, TZ and the SPOT_* variables of SPEC section 4, built from the event
 * and, per run, its timeout and path. It builds string vectors; it never
 * reads the agent's environment, runs or logs anything. */
#include "hooks/hooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

char **hooks_env_new(const struct spot_event *ev, const char *vm_name,
		     uint64_t deadline_wall_usec, bool drill, const struct hook_phase *phase)
{
	char not_before[RFC3339_MAX];
	char deadline[32] = "";
	char **v = xcalloc(20, sizeof(char *));
	size_t n = 0;

	(void)format_rfc3339(not_before, sizeof(not_before), ev->not_before_usec);
	if (deadline_wall_usec > 0)
		(void)snprintf(deadline, sizeof(deadline), "%llu",
			       (unsigned long long)(deadline_wall_usec / USEC_PER_SEC));

	v[n++] = xstrdup("PATH=" HOOK_PATH_ENV);
	v[n++] = xstrdup("LANG=C.UTF-8");
	v[n++] = xstrdup("TZ=UTC");
	v[n++] = xasprintf("SPOT_EVENT_ID=%s", ev->id);
	v[n++] = xasprintf("SPOT_EVENT_TYPE=%s", str_or_empty(event_type_to_string(ev->type)));
	v[n++] = xasprintf("SPOT_EVENT_STATUS=%s", str_or_empty(event_status_to_string(ev->status)));
	v[n++] = xasprintf("SPOT_EVENT_SOURCE=%s", ev->source);
	v[n++] = xasprintf("SPOT_NOT_BEFORE=%s", not_before);
	v[n++] = xasprintf("SPOT_DEADLINE=%s", deadline);
	v[n++] = xasprintf("SPOT_PROVIDER=%s", str_or_empty(provider_to_string(ev->provider)));
	v[n++] = xasprintf("SPOT_VM_NAME=%s", str_or_empty(vm_name));
	v[n++] = xstrdup(drill ? "SPOT_DRILL=1" : "SPOT_DRILL=0");
	v[n++] = xasprintf("SPOT_PHASE=%s", phase && phase->recover ? "recover" : "evict");
	if (phase && phase->recover) {
		v[n++] = xasprintf("SPOT_RECOVER_REASON=%s", str_or_empty(phase->recover_reason));
		v[n++] = xasprintf("SPOT_DOWNTIME=%llu", (unsigned long long)phase->downtime_sec);
	}
	v[n] = NULL;
	return v;
}

char **hooks_env_for_run(char **base, uint64_t budget_usec, const char *path, const char *report)
{
	uint64_t secs = budget_usec == USEC_INFINITY ? 0 : budget_usec / USEC_PER_SEC;
	size_t n = 0, k = 0;
	char **v;

	if (secs == 0 && budget_usec != USEC_INFINITY)
		secs = 1;
	while (base && base[n])
		n++;
	v = xcalloc(n + 4, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		if (strncmp(base[i], "SPOT_HOOK_TIMEOUT=", 18) != 0 &&
		    strncmp(base[i], "SPOT_HOOK_PATH=", 15) != 0 && strncmp(base[i], "SPOT_REPORT=", 12) != 0)
			v[k++] = xstrdup(base[i]);
	v[k++] = xasprintf("SPOT_HOOK_TIMEOUT=%llu", (unsigned long long)secs);
	v[k++] = xasprintf("SPOT_HOOK_PATH=%s", path);
	if (report && report[0])
		v[k++] = xasprintf("SPOT_REPORT=%s", report);
	v[k] = NULL;
	return v;
}
