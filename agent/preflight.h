/* preflight.h - what the agent needs from the machine before it starts,
 * checked alike by 'spot-agent check' and by the daemon at start. */
#ifndef SPOT_PREFLIGHT_H
#define SPOT_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>

#define PREFLIGHT_MSG_MAX           (2 * 4096 + 256) /* two paths and the words around them */
#define PREFLIGHT_PROBE_TIMEOUT_MSEC 2000      /* the whole /healthz probe of a busy address */
#define PREFLIGHT_ANSWER_MAX        4096       /* bytes of that answer read */

/* Each check returns 0 when the agent can start, with one line in msg
 * saying what was found (for check's output), or -errno with one line in
 * msg saying what is wrong (for stderr). msg never ends in a newline and
 * names the key the operator has to fix. */

/* The hook directory must exist and be readable (an empty one is fine);
 * the packaged directory may be missing ("" = none), but one that exists
 * must be readable. */
int preflight_hooks_dirs(const char *hooks_dir, const char *lib_dir, char *msg, size_t n);

/* The state directory must be a writable directory, or not exist in a
 * writable parent directory: then create makes it (mode 0700), as the
 * daemon does; without create it is only reported. */
int preflight_state_dir(const char *state_dir, bool create, char *msg, size_t n);

/* listen ("ADDR:PORT", "[V6]:PORT" or "none") must be bindable: a socket
 * is bound with SO_REUSEADDR and closed. When the address is in use, it is
 * asked for /healthz, and an answer whose Server header starts with
 * HTTP_SERVER_PRODUCT "/" is a running spot-agent: fine. Anything else
 * holding it, or any other bind error, is refused. Blocks for at most
 * PREFLIGHT_PROBE_TIMEOUT_MSEC: for 'check', never for the daemon's loop. */
int preflight_listen(const char *listen, char *msg, size_t n);

#endif
