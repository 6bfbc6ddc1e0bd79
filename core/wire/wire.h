/*
 * wire.h - Jupyter/ipyparallel messages on ZeroMQ: framing, signing, verification, building.
 *
 * A message on the wire is
 *
 *   [ident_0 .. ident_k-1, "<IDS|MSG>", signature, header, parent_header, metadata, content,
 *    buffer_0 .. buffer_n-1]
 *
 * with the four JSON parts signed by HMAC(key, header || parent || metadata || content) in
 * lowercase hex (empty key: empty signature, nothing checked).
 *
 * cpar_msg_t holds the frames as zmq_msg_t so that relaying moves them without copying or
 * re-encoding: only routing frames change, and a relayed message keeps its sender's signature.
 * JSON parts are parsed only on demand.
 *
 * Not thread-safe; each program uses these from its reactor thread.
 */
#ifndef CPAR_WIRE_WIRE_H
#define CPAR_WIRE_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>
#include <jansson.h>

#define CPAR_DELIM "<IDS|MSG>"
#define CPAR_DELIM_LEN 9
#define CPAR_NO_DELIM ((size_t)-1)
#define CPAR_PROTOCOL_VERSION "5.3"

/* Offsets from the delimiter of the parts that follow it. */
enum { CPAR_PART_SIG = 1, CPAR_PART_HEADER = 2, CPAR_PART_PARENT = 3, CPAR_PART_METADATA = 4,
       CPAR_PART_CONTENT = 5, CPAR_PART_BUFFERS = 6 };

/* Bits for cpar_msg_parse(). */
enum { CPAR_PARSE_HEADER = 1, CPAR_PARSE_PARENT = 2, CPAR_PARSE_METADATA = 4,
       CPAR_PARSE_CONTENT = 8, CPAR_PARSE_ALL = 15 };

/* A borrowed byte string. */
typedef struct cpar_bytes {
    const void *data;
    size_t len;
} cpar_bytes_t;

typedef struct cpar_msg {
    zmq_msg_t *f;   /* frames, f[0..n-1] initialised */
    size_t n, cap;
    size_t delim;   /* index of the delimiter; CPAR_NO_DELIM until cpar_msg_split() found one */
    size_t total;   /* bytes in all frames */
    /* Parsed parts (owned references), NULL until cpar_msg_parse() parsed them. */
    json_t *header, *parent, *metadata, *content;
} cpar_msg_t;

void cpar_msg_init(cpar_msg_t *m);
/* Close every frame and drop parsed parts; m stays usable (empty) and keeps its frame array for
 * the next message. */
void cpar_msg_clear(cpar_msg_t *m);
/* cpar_msg_clear() and free the frame array; m may be reused only after cpar_msg_init(). */
void cpar_msg_fini(cpar_msg_t *m);

/*
 * Receive one whole multipart message from `sock` without blocking into m (cleared first).
 * Returns 0; CPAR_EAGAIN when nothing is waiting; CPAR_E2BIG when the message's total size
 * exceeds max_bytes (0 = no limit): the rest is received and discarded, m holds nothing, and the
 * socket is left at the next message; CPAR_ENOMEM when the frame array cannot grow (the message
 * is discarded the same way); CPAR_EIO on another zmq error.
 */
int cpar_msg_recv(cpar_msg_t *m, void *sock, size_t max_bytes);

/*
 * Send all frames of m on `sock` as one multipart message (ZMQ_DONTWAIT not set: relay sockets
 * have no HWM). The frames are moved out: m is left empty (as after cpar_msg_clear) whether or not
 * it succeeded. 0 or CPAR_EIO; CPAR_EINVAL when m has no frame (m is left as it was); CPAR_ENOENT
 * when a ROUTER with ZMQ_ROUTER_MANDATORY has no peer of that identity. A ROUTER without
 * ZMQ_ROUTER_MANDATORY dropping an unroutable message is not an error.
 */
int cpar_msg_send(cpar_msg_t *m, void *sock);

/*
 * Find the delimiter. 0 when there is one with at least the 5 frames (signature and four JSON
 * parts) after it; CPAR_EPROTO otherwise.
 */
int cpar_msg_split(cpar_msg_t *m);

static inline size_t cpar_msg_nidents(const cpar_msg_t *m)
{
    return m->delim == CPAR_NO_DELIM ? 0 : m->delim;
}
/* The frame `part` (CPAR_PART_*) after the delimiter; m must be split. */
static inline zmq_msg_t *cpar_msg_part(cpar_msg_t *m, int part)
{
    return &m->f[m->delim + (size_t)part];
}
/* Buffers after the content part; m must be split. */
static inline size_t cpar_msg_nbuffers(const cpar_msg_t *m)
{
    return m->n - m->delim - CPAR_PART_BUFFERS;
}
/* Bytes of frame i ({NULL, 0} when i >= m->n); valid until m changes. */
cpar_bytes_t cpar_msg_frame(const cpar_msg_t *m, size_t i);

/*
 * Parse the JSON parts named by `parts` (CPAR_PARSE_* bits) that are not parsed yet. Each must be
 * a JSON object in valid UTF-8. 0, or CPAR_EPROTO (and the part stays NULL). An unsplit m is split
 * first (CPAR_EPROTO when that fails).
 * Strings may contain "\u0000" (use json_string_length() for their full length). A part with an
 * integer beyond json_int_t is still accepted, but then every number in that part is a json_real.
 */
int cpar_msg_parse(cpar_msg_t *m, unsigned parts);

/* header.msg_type / header.msg_id / parent_header.msg_id as borrowed strings, or NULL. The
 * header (or parent) must have been parsed. */
const char *cpar_msg_type(const cpar_msg_t *m);
const char *cpar_msg_id(const cpar_msg_t *m);
const char *cpar_msg_parent_id(const cpar_msg_t *m);

/* Routing-frame surgery; m must be split. Each returns 0 or CPAR_ENOMEM/CPAR_EINVAL (fewer than
 * 2 idents to swap, or than `count` to drop). Prepending also works on an unsplit m. The JSON
 * frames are not touched, so the signature stays valid. */
int cpar_msg_swap_idents(cpar_msg_t *m);                          /* frames 0 and 1 */
int cpar_msg_prepend_ident(cpar_msg_t *m, const void *data, size_t len);
int cpar_msg_drop_idents(cpar_msg_t *m, size_t count);           /* remove the first `count` */
/* Append a frame (a buffer) at the end. */
int cpar_msg_append(cpar_msg_t *m, const void *data, size_t len);
/* Append a frame moved from `frame` (which is left empty). */
int cpar_msg_append_move(cpar_msg_t *m, zmq_msg_t *frame);

/*
 * Replace JSON part `part` (CPAR_PART_HEADER..CONTENT) with the compact encoding of `value`
 * (borrowed); the parsed copy in m becomes a new reference to `value`. The signature is stale
 * until cpar_session_sign(). 0; CPAR_EINVAL when m is not split, `part` is not a JSON part or
 * `value` is not an object; CPAR_ENOMEM.
 */
int cpar_msg_set_part(cpar_msg_t *m, int part, json_t *value);

/* Copy every frame of src into dst (cleared first) sharing data where zmq allows; the split
 * position is kept and parsed parts are deep-copied, so dst can be changed without touching src.
 * 0, CPAR_ENOMEM (dst left empty), CPAR_EINVAL when dst == src. */
int cpar_msg_copy(cpar_msg_t *dst, const cpar_msg_t *src);
/* The same for the frames only (shared where zmq allows); dst has no parsed parts. */
int cpar_msg_copy_frames(cpar_msg_t *dst, const cpar_msg_t *src);

/* ---- sessions ---------------------------------------------------------------------------- */

/* Prepared HMAC, replay history and a scratch message; private to the wire layer (sign.c). */
typedef struct cpar_digests cpar_digests_t;

typedef struct cpar_session {
    unsigned char *key; /* HMAC key; keylen 0 = unsigned messages */
    size_t keylen;
    const void *md;     /* EVP_MD of the signature scheme */
    size_t siglen;      /* hex digits in a signature */
    char session[64];   /* this side's session id (header.session) */
    char username[64];
    unsigned long pid;
    uint64_t counter;   /* msg_id = "<session>_<pid>_<counter>" */
    cpar_digests_t *digests;
    size_t digest_limit; /* signatures remembered for replay protection (65536, FIFO; 0 = none;
                            at most 2^28; may be changed between calls, the newest are kept) */
} cpar_session_t;

/*
 * Set up a session. `key` may be "" or NULL (unsigned). `scheme` is "hmac-<hash>" with any
 * fixed-size hash OpenSSL knows by that name or by Python hashlib's ("sha3_256"); "hmac-sha256" is
 * ipyparallel's default; NULL means hmac-sha256. `session_id` NULL makes a fresh one; `username`
 * NULL means "username"; both are copied and must be valid UTF-8 of at most 63 bytes.
 * 0, CPAR_EINVAL (unknown scheme, bad id or username), CPAR_ENOMEM. On failure s holds nothing;
 * cpar_session_fini() is still safe to call.
 */
int cpar_session_init(cpar_session_t *s, const char *key, const char *scheme,
                      const char *session_id, const char *username);
void cpar_session_fini(cpar_session_t *s);

/*
 * Check an incoming split message: its signature (constant-time compare) and that the signature
 * was not seen before (then remember it). Unsigned sessions accept every split message.
 * 0, or CPAR_EPROTO with *why set to a static reason: "malformed message" (m not split),
 * "unsigned message", "invalid signature", "duplicate signature"; rarely CPAR_ENOMEM ("out of
 * memory", the history could not be allocated) or CPAR_EINTERNAL ("HMAC failure"). `why` may be
 * NULL. Only genuine signatures enter the history.
 */
int cpar_session_verify(cpar_session_t *s, const cpar_msg_t *m, const char **why);

/* Recompute the signature frame of a split message from its four JSON frames ("" when
 * unsigned). 0, CPAR_EINVAL (m not split), CPAR_ENOMEM, CPAR_EINTERNAL. */
int cpar_session_sign(cpar_session_t *s, cpar_msg_t *m);

/*
 * A new header object {msg_id, msg_type, username, session, date, version} from this session:
 * msg_id "<session>_<pid>_<counter>" (counter from 0), date now in "...Z" form, version "5.3".
 * New reference; NULL on ENOMEM or when msg_type is NULL or not UTF-8.
 */
json_t *cpar_session_header(cpar_session_t *s, const char *msg_type);

/*
 * Build a complete signed message into `out` (cleared first):
 *   idents (nidents frames), delimiter, signature, a fresh header of `msg_type`,
 *   parent (borrowed; NULL = {}), metadata (borrowed; NULL = {}), content (borrowed; NULL = {}),
 *   buffers (nbufs, copied).
 * The parsed parts of `out` are set (parent, metadata and content as new references to the
 * arguments). 0, CPAR_ENOMEM, CPAR_EINVAL (a JSON argument not an object, a bad msg_type);
 * on failure out is left empty.
 */
int cpar_session_build(cpar_session_t *s, cpar_msg_t *out, const cpar_bytes_t *idents,
                       size_t nidents, const char *msg_type, json_t *parent, json_t *metadata,
                       json_t *content, const cpar_bytes_t *bufs, size_t nbufs);

/* cpar_session_build() then cpar_msg_send() on `sock`, through a message kept in the session
 * (so no per-call frame array). Returns what the failing step returned. */
int cpar_session_send(cpar_session_t *s, void *sock, const cpar_bytes_t *idents, size_t nidents,
                      const char *msg_type, json_t *parent, json_t *metadata, json_t *content,
                      const cpar_bytes_t *bufs, size_t nbufs);

/*
 * ipyparallel's wrap_exception() shape for errors the controller makes:
 * {"status":"error","ename":ename,"evalue":evalue,"traceback":["<ename>: <evalue>"],
 *  "engine_info":{}}. ename NULL means "Exception", evalue NULL "". New reference; NULL on ENOMEM
 * or when a string is not UTF-8.
 */
json_t *cpar_error_content(const char *ename, const char *evalue);

/* ---- scanning single fields (scan.c) ----------------------------------------------------- */

/*
 * Find the top-level `key` in the JSON object text s[0..n) without building a tree or allocating:
 * (*val, *vlen) span the raw text of its value (a string keeps its quotes). The whole top level is
 * walked, so text that is not one object there is refused. 0, CPAR_ENOENT (no such key) or
 * CPAR_EPROTO (not an object).
 */
int cpar_json_scan(const char *s, size_t n, const char *key, const char **val, size_t *vlen);
/*
 * The same for a string value, decoded (escapes, \u with surrogate pairs) into buf as UTF-8 and
 * NUL-terminated. CPAR_EINVAL when the value is not a string or holds a NUL, CPAR_E2BIG when it
 * does not fit.
 */
int cpar_json_scan_str(const char *s, size_t n, const char *key, char *buf, size_t buflen);
/*
 * Several keys in one walk: vals[i] spans the raw value of keys[i], or is {NULL, 0} when the
 * object has no such key. 0 or CPAR_EPROTO.
 */
int cpar_json_scan_keys(const char *s, size_t n, const char *const *keys, size_t nkeys,
                        cpar_bytes_t *vals);
/* Decode a raw string value (as spanned by the scanners) like cpar_json_scan_str; CPAR_ENOENT
 * for an absent value ({NULL, 0}). */
int cpar_json_str(cpar_bytes_t raw, char *buf, size_t buflen);
/* The scanners above on JSON part `part` (CPAR_PART_HEADER..CONTENT) of a split message. */
int cpar_msg_scan_keys(const cpar_msg_t *m, int part, const char *const *keys, size_t nkeys,
                       cpar_bytes_t *vals);
int cpar_msg_scan(const cpar_msg_t *m, int part, const char *key, const char **val, size_t *vlen);
int cpar_msg_scan_str(const cpar_msg_t *m, int part, const char *key, char *buf, size_t buflen);

/* Compact JSON encoding (no spaces; UTF-8, no ASCII escaping, keys in insertion order) of any
 * JSON value. Jupyter writes ", " and ": " separators, but peers parse either, and signatures cover
 * the bytes as sent. malloc'd (free()); NULL on ENOMEM. */
char *cpar_json_dumps(const json_t *value);

#endif /* CPAR_WIRE_WIRE_H */
