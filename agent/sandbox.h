/* sandbox.h - `spot-agent drill --sandbox`: the drill inside the installed
 * unit's sandbox (sandbox.c). */
#ifndef SPOT_SANDBOX_H
#define SPOT_SANDBOX_H

#include <stdio.h>

/* The unit whose sandbox a drill borrows. */
#define SANDBOX_UNIT "spot-agent.service"

/* Runs this program's drill again (argv without --sandbox) as a transient
 * service through systemd-run --wait --pipe, with every sandbox property
 * of the installed SANDBOX_UNIT as systemctl show reports it (its
 * drop-ins included), so that the hooks meet the walls an eviction puts
 * them in. The report goes to out (the service's output is piped to ours).
 * Returns the exit status: the drill's (0 passed, 1 failed), or 2 when it
 * cannot run that way (no systemd, the unit not installed, systemd-run or
 * systemctl missing), after one line saying why. Blocks until the drill
 * ends: for the command line only, never the daemon. */
int sandbox_drill(int argc, char **argv, FILE *out);

#endif
