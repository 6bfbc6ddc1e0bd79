/*
 * internal.h - helpers shared by the files of core/wire; not for use outside it.
 */
#ifndef CPAR_WIRE_INTERNAL_H
#define CPAR_WIRE_INTERNAL_H

#include "wire.h"

/* Flags of every JSON encoding the wire layer does. */
#define CPAR_WIRE_JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)

/* Make room for at least `n` frames in m->f. 0 or CPAR_ENOMEM. */
int cpar_wire_reserve(cpar_msg_t *m, size_t n);

/* Initialise `frame` (not initialised yet) with the compact encoding of the object `v`.
 * 0, CPAR_EINVAL (not an object or not encodable), CPAR_ENOMEM. */
int cpar_wire_frame_json(zmq_msg_t *frame, const json_t *v);

/* Sign-side state of a session (sign.c): the prepared HMAC, the replay history and a scratch
 * message for cpar_session_send(). */
int cpar_wire_digests_new(cpar_session_t *s);
void cpar_wire_digests_free(cpar_digests_t *d);
cpar_msg_t *cpar_wire_scratch(cpar_session_t *s);

#endif
