/* SPDX-License-Identifier: ISC */
/*
 * cancel: the keys pgmux hands to clients in BackendKeyData and the routing
 * of a CancelRequest to the server the client is using at that moment, over
 * a new connection that never blocks the loop.
 */
#ifndef PGMUX_CANCEL_H
#define PGMUX_CANCEL_H

#include "pgmux.h"

/* Give a client a fresh random key and index it. */
bool cancel_register(struct pgsock *c);
void cancel_unregister(struct pgsock *c);

/* A CancelRequest arrived with this key. */
void cancel_handle(const uint8_t key[8]);


#endif
