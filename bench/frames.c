/*
 * frames.c - build signed messages from ready-made JSON texts.
 *
 * The wire layer's builder makes every part from jansson objects, which is right for a
 * controller but makes the generator spend most of its time in JSON. The generator's own
 * messages have fixed shapes, so it prints them with snprintf and only signs through the wire
 * layer; the receiving side cannot tell the difference (the signature covers the bytes sent).
 */
#include "loadgen.h"

#include <cparallel/errors.h>

#include <inttypes.h>
#include <stdio.h>

#include "util/clock.h"

int lg_header(cpar_session_t *s, const char *msg_type, char *out, size_t size, char **msg_id,
              size_t *msg_id_len)
{
    static const char prefix[] = "{\"msg_id\":\"";
    char date[CPAR_ISO_LEN], id[sizeof s->session + 48];
    int n, idlen;

    for (const char *p = msg_type; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || *p == '_'))
            return CPAR_EINVAL;
    }
    idlen = snprintf(id, sizeof id, "%s_%lu_%" PRIu64, s->session, s->pid, s->counter);
    cpar_iso_format(cpar_now_us(), date);
    n = snprintf(out, size,
                 "%s%s\",\"msg_type\":\"%s\",\"username\":\"%s\",\"session\":\"%s\","
                 "\"date\":\"%s\",\"version\":\"" CPAR_PROTOCOL_VERSION "\"}",
                 prefix, id, msg_type, s->username, s->session, date);
    if (n < 0 || (size_t)n >= size)
        return CPAR_E2BIG;
    s->counter++;
    if (msg_id)
        *msg_id = out + sizeof prefix - 1;
    if (msg_id_len)
        *msg_id_len = (size_t)idlen;
    return n;
}

int lg_build(cpar_session_t *s, cpar_msg_t *out, const cpar_bytes_t *idents, size_t nidents,
             const cpar_bytes_t parts[4], const cpar_bytes_t *bufs, size_t nbufs)
{
    int rc = 0;

    cpar_msg_clear(out);
    for (size_t i = 0; rc == 0 && i < nidents; i++)
        rc = cpar_msg_append(out, idents[i].data, idents[i].len);
    if (rc == 0)
        rc = cpar_msg_append(out, CPAR_DELIM, CPAR_DELIM_LEN);
    if (rc == 0)
        rc = cpar_msg_append(out, NULL, 0);
    for (size_t i = 0; rc == 0 && i < 4; i++)
        rc = cpar_msg_append(out, parts[i].data, parts[i].len);
    for (size_t i = 0; rc == 0 && i < nbufs; i++)
        rc = cpar_msg_append(out, bufs[i].data, bufs[i].len);
    if (rc == 0)
        rc = cpar_msg_split(out);
    if (rc == 0)
        rc = cpar_session_sign(s, out);
    if (rc != 0)
        cpar_msg_clear(out);
    return rc;
}
