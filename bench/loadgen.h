/*
 * loadgen.h - cpar_loadgen's state, shared by the files of bench/.
 *
 * One process, one thread, one reactor (core/loop) owning every socket: E fake engines and one
 * client, all talking real ZeroMQ over tcp loopback to the controller under test.
 */
#ifndef CPAR_BENCH_LOADGEN_H
#define CPAR_BENCH_LOADGEN_H

#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"
#include "util/ids.h"
#include "util/map.h"
#include "wire/wire.h"

/* Longest endpoint we build ("tcp://127.0.0.1:65535" and some room). */
#define LG_URL_LEN 80

typedef enum lg_mode { LG_DIRECT, LG_LB, LG_REGISTRATION } lg_mode_t;

typedef enum lg_phase {
    PH_REGISTERING, /* engines registering; the client waits for all E */
    PH_SETTLING,    /* all E announced; short pause so their shell connections are up */
    PH_RUNNING,     /* requests in flight (or, registration-only, watching the heartbeat) */
    PH_DRAINING,    /* no more sends; waiting for the replies still in flight */
    PH_DONE
} lg_phase_t;

/* What the connection files say (only what a client and an engine need). */
typedef struct lg_conn {
    char key[256];
    char scheme[64];
    /* client side */
    char c_registration[LG_URL_LEN], c_mux[LG_URL_LEN], c_task[LG_URL_LEN];
    char c_notification[LG_URL_LEN];
    /* engine side */
    char e_registration[LG_URL_LEN], e_mux[LG_URL_LEN], e_task[LG_URL_LEN];
    char e_hb_ping[LG_URL_LEN], e_hb_pong[LG_URL_LEN];
    char (*e_broadcast)[LG_URL_LEN];
    size_t n_broadcast;
} lg_conn_t;

typedef struct lg lg_t;

/* An engine socket watched through its ZMQ_FD in the engines' epoll set (engines.c). */
typedef struct lg_watch {
    void *sock;
    int fd;
    int active;
    cpar_io_cb cb;
    void *arg;
} lg_watch_t;

typedef struct lg_engine {
    lg_t *lg;
    int idx;                /* index in lg->engines */
    int id;                 /* id the controller gave; -1 until the registration reply */
    char uuid[CPAR_ID_LEN]; /* the ZeroMQ identity of every socket of this engine */
    cpar_session_t session; /* signs this engine's replies (header.session = uuid) */
    void *reg;              /* DEALER to registration */
    void *shell;            /* ROUTER to mux, task and broadcast[id % n] */
    void *hb_sub, *hb_dealer;
    lg_watch_t w_reg, w_shell, w_ping;
    int up;        /* registration reply received and sockets connected */
    int failed;    /* registration refused */
    int announced; /* listed in a connection_reply */
    int64_t reg_sent_us, reg_reply_us;
    int64_t last_ping_us; /* 0 until the first ping */
    int in_ping;          /* inside a multipart ping */
    uint64_t pings;
    uint64_t missed;                    /* beats missed, from the gaps between received pings */
    int64_t max_gap_us, max_gap_end_us; /* longest gap between pings, and when it ended */
    int64_t exec_count;
} lg_engine_t;

/* One request in flight. */
typedef struct lg_slot {
    int64_t sent_us;
    int target; /* engine index for direct requests, -1 for load-balanced ones */
    struct lg_slot *next_free;
} lg_slot_t;

typedef struct lg_opts {
    const char *profile_dir;
    const char *cluster_id;
    int engines;
    lg_mode_t mode;
    int window;
    int64_t count;  /* requests to measure (0 with --seconds) */
    double seconds; /* measuring time, or heartbeat watch time with --registration-only */
    int64_t warmup; /* replies before measuring starts (-1: default) */
    double timeout; /* bound on every wait */
    int settle_ms;
    int events;     /* print {"event": ...} lines at phase changes */
    int unregister; /* send unregistration_request for each engine at exit */
    int hold;       /* after the report, serve until stdin says stop */
} lg_opts_t;

struct lg {
    lg_opts_t opt;
    lg_conn_t conn;
    void *zctx;
    cpar_loop_t *loop;
    cpar_msg_t in;   /* receive buffer reused for every message */
    cpar_msg_t out;  /* requests are built here */
    cpar_msg_t eout; /* engine replies are built here */
    lg_phase_t phase;
    int exit_code;
    const char *fail; /* why the run stopped early (static string), or NULL */

    /* engines */
    lg_engine_t *engines;
    cpar_map_t by_uuid;        /* uuid -> lg_engine_t */
    int epfd;                  /* epoll set of the engines' sockets (one fd in the reactor) */
    cpar_session_t eng_verify; /* verifies what engines receive (one replay history for all) */
    int n_up, n_failed;
    int64_t hb_period_ms;    /* from the registration replies */
    uint64_t eng_bad;        /* requests engines rejected (bad signature, malformed) */
    uint64_t eng_unexpected; /* messages engines got that are not *_request */
    uint64_t reg_bad_period; /* registration replies whose hb_period is not a JSON integer */
    char reg_error[256];     /* first registration error */

    /* client */
    cpar_session_t client;
    void *query, *mux, *task, *notif;
    int conn_outstanding; /* a connection_request is waiting for its reply */
    int n_announced;      /* our engines listed by the latest connection_reply */
    uint64_t notified_reg, notified_unreg, unreg_ours;
    cpar_bytes_t req_bufs[3];

    /* requests */
    cpar_map_t inflight; /* msg_id -> lg_slot_t */
    lg_slot_t *slots, *free_slots;
    int n_inflight;
    int next_target;
    int64_t sent, replies;
    int64_t warmup;
    int measuring;
    int64_t ok, errors, bad_sig, misrouted, unknown, wrong_type;
    char error_sample[256];
    uint32_t *lat; /* latencies in microseconds of measured replies */
    size_t nlat, caplat;

    /* times (monotonic microseconds) */
    int64_t t_start, t_reg0, t_reg_replies, t_registered, t_measure0, t_last_reply;
    int64_t t_progress; /* last reply, for the stall watchdog */
    cpar_loop_timer_t *watchdog, *poll_timer, *phase_timer;
};

/* frames.c: a header text {msg_id, msg_type, username, session, date, version} from session s
 * (msg_id "<session>_<pid>_<counter>", counter then advanced) into out[size]; returns its length
 * or CPAR_E2BIG / CPAR_EINVAL (msg_type not [a-z_]). *msg_id (may be NULL) points at the msg_id
 * inside out, *msg_id_len its length. */
int lg_header(cpar_session_t *s, const char *msg_type, char *out, size_t size, char **msg_id,
              size_t *msg_id_len);
/* Build a signed message into out: idents, delimiter, signature of the four JSON texts in
 * parts (header, parent, metadata, content; copied), then the buffers (copied). 0 or a
 * negative CPAR_E* code (out left empty). */
int lg_build(cpar_session_t *s, cpar_msg_t *out, const cpar_bytes_t *idents, size_t nidents,
             const cpar_bytes_t parts[4], const cpar_bytes_t *bufs, size_t nbufs);

/* connfile.c: read both connection files of the profile, waiting up to opt.timeout for them.
 * 0 or a negative CPAR_E* code (the reason is printed on stderr). */
int lg_conn_load(lg_t *lg);

/* engines.c */
int lg_engines_start(lg_t *lg); /* create E engines and send their registration requests */
void lg_engines_stop(lg_t *lg); /* unregister (when asked) and close every engine socket */
/* Fold the time since each engine's last ping into its gap statistics (at the end). */
void lg_engines_finish_beats(lg_t *lg, int64_t now_us);

/* client.c */
int lg_client_start(lg_t *lg);        /* registration DEALER and notification SUB; first query */
int lg_client_connect_work(lg_t *lg); /* mux and task DEALERs, once the engines are in */
void lg_client_fill(lg_t *lg);        /* send until the window is full (or sending has stopped) */
void lg_client_stop(lg_t *lg);
void lg_client_query(lg_t *lg); /* send a connection_request unless one is outstanding */

/* loadgen.c: called by the client when every engine is announced, and when a reply arrives. */
void lg_all_registered(lg_t *lg);
void lg_measure_start(lg_t *lg, int64_t now_us); /* warm-up over: counters reset, clock on */
void lg_reply_done(lg_t *lg);
void lg_fail(lg_t *lg, const char *why);
void lg_event(lg_t *lg, const char *name);

#endif /* CPAR_BENCH_LOADGEN_H */
