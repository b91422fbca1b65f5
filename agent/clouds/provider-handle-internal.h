/* provider-handle-internal.h - the provider handle itself, between the
 * two files of the provider-neutral half: provider.c (the config, the
 * handle's life, acknowledgements and heartbeats) and provider-round.c (a
 * round, its requests, its outcome). Not for the clouds: they reach the
 * handle through provider-internal.h's functions only. */
#ifndef SPOT_PROVIDER_HANDLE_INTERNAL_H
#define SPOT_PROVIDER_HANDLE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "clouds/provider-internal.h"

/* One request slot of the provider: what its answer goes to. */
struct provider_slot {
	struct provider_handle *owner;
	provider_reply_cb cb;
	bool busy;
};

struct provider_handle {
	const struct provider_ops *ops;
	void *state;                 /* the cloud's, ops->state_size bytes, owned */
	struct imds *imds;           /* borrowed for the provider's lifetime */
	char *base_url;              /* owned, without trailing '/' */
	char *vm_name;               /* owned, NULL until known */
	bool vm_name_override;       /* vm_name came from provider_new */
	struct provider_slot slots[_IMDS_SLOT_MAX];
	/* The config; its strings point to the owned copies below. */
	struct provider_config cfg;
	char *lifecycle_hook;        /* owned, "" when unset */
	char *autoscaling_url;       /* owned, "" when unset */

	/* The round in flight (the timeouts stay for the next calls). */
	bool busy;
	uint64_t timeout_usec;       /* per request */
	uint64_t first_timeout_usec; /* a service's first call */
	uint64_t start_mono_usec;
	provider_round_cb cb;
	void *userdata;
	char identity_error[IMDS_ERROR_MAX];
	char optional_error[PROVIDER_OPTIONAL_ERROR_MAX];
	/* AWS: the mode, and a change not yet reported with a round. */
	bool imds_v1;
	char imds_v1_change[IMDS_ERROR_MAX];

	/* The acknowledgement in flight. */
	bool approving;
	char approve_id[EVENT_ID_MAX];
	provider_approve_cb approve_cb;
	void *approve_userdata;

	/* The heartbeat in flight. */
	bool heartbeating;
	provider_heartbeat_cb heartbeat_cb;
	void *heartbeat_userdata;
};

/* ---- provider-round.c ---- */

/* Cancels the provider's request in slot, if any (its cb is not called). */
void cancel_slot(struct provider_handle *p, enum imds_slot slot);

#endif
