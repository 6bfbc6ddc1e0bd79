/* msg.c - multipart messages as zmq_msg_t frames: receive, send, split, routing surgery, copy. */
#include "internal.h"

#include <cparallel/errors.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* zmq_msg_t values are moved with plain struct copies (what zmq_msg_move() itself does), so the
 * frame array may be realloc'd and shifted with memmove. */

void cpar_msg_init(cpar_msg_t *m)
{
    memset(m, 0, sizeof *m);
    m->delim = CPAR_NO_DELIM;
}

static void msg_drop_parsed(cpar_msg_t *m)
{
    json_decref(m->header);
    json_decref(m->parent);
    json_decref(m->metadata);
    json_decref(m->content);
    m->header = m->parent = m->metadata = m->content = NULL;
}

void cpar_msg_clear(cpar_msg_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        zmq_msg_close(&m->f[i]);
    m->n = 0;
    m->total = 0;
    m->delim = CPAR_NO_DELIM;
    msg_drop_parsed(m);
}

void cpar_msg_fini(cpar_msg_t *m)
{
    cpar_msg_clear(m);
    free(m->f);
    m->f = NULL;
    m->cap = 0;
}

int cpar_wire_reserve(cpar_msg_t *m, size_t n)
{
    size_t cap = m->cap ? m->cap : 8;
    zmq_msg_t *f;

    if (n <= m->cap)
        return 0;
    while (cap < n) {
        if (cap > SIZE_MAX / 2 / sizeof *f)
            return CPAR_ENOMEM;
        cap *= 2;
    }
    f = realloc(m->f, cap * sizeof *f);
    if (!f)
        return CPAR_ENOMEM;
    m->f = f;
    m->cap = cap;
    return 0;
}

/* Receive and discard what is left of a multipart message. */
static void msg_drain(void *sock)
{
    zmq_msg_t f;
    int more = 1;

    while (more) {
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            if (zmq_errno() == EINTR)
                continue;
            return;
        }
        more = zmq_msg_more(&f);
        zmq_msg_close(&f);
    }
}

int cpar_msg_recv(cpar_msg_t *m, void *sock, size_t max_bytes)
{
    cpar_msg_clear(m);
    for (;;) {
        zmq_msg_t *f;
        int more;

        if (m->n == m->cap && cpar_wire_reserve(m, m->n + 1) != 0) {
            cpar_msg_clear(m);
            msg_drain(sock);
            return CPAR_ENOMEM;
        }
        f = &m->f[m->n];
        zmq_msg_init(f);
        if (zmq_msg_recv(f, sock, ZMQ_DONTWAIT) < 0) {
            int err = zmq_errno();

            zmq_msg_close(f);
            if (err == EINTR)
                continue;
            if (err == EAGAIN && m->n == 0)
                return CPAR_EAGAIN;
            cpar_msg_clear(m);
            return CPAR_EIO;
        }
        m->n++;
        m->total += zmq_msg_size(f);
        more = zmq_msg_more(f);
        if (max_bytes && m->total > max_bytes) {
            cpar_msg_clear(m);
            if (more)
                msg_drain(sock);
            return CPAR_E2BIG;
        }
        if (!more)
            return 0;
    }
}

int cpar_msg_send(cpar_msg_t *m, void *sock)
{
    int rc = 0;

    if (m->n == 0)
        return CPAR_EINVAL;
    for (size_t i = 0; i < m->n && rc == 0; i++) {
        int flags = i + 1 < m->n ? ZMQ_SNDMORE : 0;

        while (zmq_msg_send(&m->f[i], sock, flags) < 0) {
            int err = zmq_errno();

            if (err == EINTR)
                continue;
            rc = err == EHOSTUNREACH ? CPAR_ENOENT : CPAR_EIO;
            break;
        }
    }
    cpar_msg_clear(m);
    return rc;
}

int cpar_msg_split(cpar_msg_t *m)
{
    m->delim = CPAR_NO_DELIM;
    for (size_t i = 0; i < m->n; i++) {
        if (zmq_msg_size(&m->f[i]) == CPAR_DELIM_LEN &&
            memcmp(zmq_msg_data(&m->f[i]), CPAR_DELIM, CPAR_DELIM_LEN) == 0) {
            if (m->n - i - 1 < CPAR_PART_CONTENT)
                return CPAR_EPROTO;
            m->delim = i;
            return 0;
        }
    }
    return CPAR_EPROTO;
}

cpar_bytes_t cpar_msg_frame(const cpar_msg_t *m, size_t i)
{
    cpar_bytes_t b = {NULL, 0};

    if (i < m->n) {
        zmq_msg_t *f = (zmq_msg_t *)&m->f[i];

        b.data = zmq_msg_data(f);
        b.len = zmq_msg_size(f);
    }
    return b;
}

int cpar_msg_swap_idents(cpar_msg_t *m)
{
    zmq_msg_t tmp;

    if (m->delim == CPAR_NO_DELIM || m->delim < 2)
        return CPAR_EINVAL;
    tmp = m->f[0];
    m->f[0] = m->f[1];
    m->f[1] = tmp;
    return 0;
}

/* A new frame holding a copy of data; made before m's array may move, since `data` may point
 * into one of m's own small frames, whose bytes live inside the array. */
static int msg_new_frame(zmq_msg_t *frame, const void *data, size_t len)
{
    if (!data && len)
        return CPAR_EINVAL;
    if (zmq_msg_init_size(frame, len) != 0)
        return CPAR_ENOMEM;
    if (len)
        memcpy(zmq_msg_data(frame), data, len);
    return 0;
}

int cpar_msg_prepend_ident(cpar_msg_t *m, const void *data, size_t len)
{
    zmq_msg_t frame;
    int rc = msg_new_frame(&frame, data, len);

    if (rc != 0)
        return rc;
    if (cpar_wire_reserve(m, m->n + 1) != 0) {
        zmq_msg_close(&frame);
        return CPAR_ENOMEM;
    }
    memmove(&m->f[1], &m->f[0], m->n * sizeof m->f[0]);
    m->f[0] = frame;
    m->n++;
    m->total += len;
    if (m->delim != CPAR_NO_DELIM)
        m->delim++;
    return 0;
}

int cpar_msg_drop_idents(cpar_msg_t *m, size_t count)
{
    if (m->delim == CPAR_NO_DELIM || count > m->delim)
        return CPAR_EINVAL;
    for (size_t i = 0; i < count; i++) {
        m->total -= zmq_msg_size(&m->f[i]);
        zmq_msg_close(&m->f[i]);
    }
    memmove(&m->f[0], &m->f[count], (m->n - count) * sizeof m->f[0]);
    m->n -= count;
    m->delim -= count;
    return 0;
}

int cpar_msg_append(cpar_msg_t *m, const void *data, size_t len)
{
    zmq_msg_t frame;
    int rc = msg_new_frame(&frame, data, len);

    if (rc != 0)
        return rc;
    if (cpar_wire_reserve(m, m->n + 1) != 0) {
        zmq_msg_close(&frame);
        return CPAR_ENOMEM;
    }
    m->f[m->n++] = frame;
    m->total += len;
    return 0;
}

int cpar_msg_append_move(cpar_msg_t *m, zmq_msg_t *frame)
{
    if (cpar_wire_reserve(m, m->n + 1) != 0)
        return CPAR_ENOMEM;
    zmq_msg_init(&m->f[m->n]);
    if (zmq_msg_move(&m->f[m->n], frame) != 0) {
        zmq_msg_close(&m->f[m->n]);
        return CPAR_EINVAL;
    }
    m->total += zmq_msg_size(&m->f[m->n]);
    m->n++;
    return 0;
}

int cpar_msg_copy_frames(cpar_msg_t *dst, const cpar_msg_t *src)
{
    if (dst == src)
        return CPAR_EINVAL;
    cpar_msg_clear(dst);
    if (cpar_wire_reserve(dst, src->n) != 0)
        return CPAR_ENOMEM;
    for (size_t i = 0; i < src->n; i++) {
        zmq_msg_init(&dst->f[i]);
        if (zmq_msg_copy(&dst->f[i], (zmq_msg_t *)&src->f[i]) != 0) {
            zmq_msg_close(&dst->f[i]);
            cpar_msg_clear(dst);
            return CPAR_ENOMEM;
        }
        dst->n++;
    }
    dst->total = src->total;
    dst->delim = src->delim;
    return 0;
}

int cpar_msg_copy(cpar_msg_t *dst, const cpar_msg_t *src)
{
    json_t *const *sparts[4] = {&src->header, &src->parent, &src->metadata, &src->content};
    json_t **dparts[4] = {&dst->header, &dst->parent, &dst->metadata, &dst->content};
    int rc = cpar_msg_copy_frames(dst, src);

    if (rc)
        return rc;
    for (int i = 0; i < 4; i++) {
        if (!*sparts[i])
            continue;
        *dparts[i] = json_deep_copy(*sparts[i]);
        if (!*dparts[i]) {
            cpar_msg_clear(dst);
            return CPAR_ENOMEM;
        }
    }
    return 0;
}
