/*
 * controller.h - cpcontroller's state, shared by the files of core/controller/.
 *
 * One process, one thread, one reactor: the hub (registration, queries, notifications, task
 * records), the heartbeat, the mux/control/iopub relays and the task and broadcast front ends
 * are plain function calls on this one struct.
 */
#ifndef CPAR_CONTROLLER_H
#define CPAR_CONTROLLER_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "loop/loop.h"
#include "plugins/db.h"
#include "plugins/host.h"
#include "plugins/sched.h"
#include "util/map.h"
#include "wire/wire.h"

/* Channels, for logs and for the per-socket receive loop. */
typedef enum ctl_chan {
    CHAN_QUERY,        /* registration / query ROUTER (clients and engines) */
    CHAN_MUX_CLIENT,   /* mux ROUTER, client side */
    CHAN_MUX_ENGINE,   /* mux ROUTER, engine side ("mux_out") */
    CHAN_CTL_CLIENT,   /* control ROUTER, client side */
    CHAN_CTL_ENGINE,   /* control ROUTER, engine side ("control_out") */
    CHAN_TASK_CLIENT,  /* task ROUTER, client side */
    CHAN_TASK_ENGINE,  /* task ROUTER, engine side ("task_out") */
    CHAN_BC_CLIENT,    /* broadcast ROUTER, client side */
    CHAN_BC_ENGINE,    /* broadcast ROUTER, engine side (all leaf ports) */
    CHAN_IOPUB_ENGINE, /* iopub SUB, engine side */
    CHAN_IOPUB_CLIENT, /* iopub PUB, client side (send only) */
    CHAN_NOTIFY,       /* notification XPUB: publishes; reads only new subscriptions */
    CHAN_HB_PING,      /* heartbeat PUB (send only) */
    CHAN_HB_PONG,      /* heartbeat ROUTER */
    CHAN_COUNT
} ctl_chan_t;

/* A request the hub is tracking until its reply (direct requests and, later, tasks). */
typedef struct ctl_pending {
    char *msg_id;
    struct ctl_engine *engine; /* where it runs; NULL when unassigned or the engine died */
    int assigned;              /* a task given to an engine (else counted in ctl->unassigned) */
    int is_task;
} ctl_pending_t;

/* A growable list of owned strings. */
typedef struct ctl_strlist {
    char **v;
    size_t n, cap;
} ctl_strlist_t;

typedef struct ctl_engine {
    int id;
    char *uuid;              /* NUL-terminated; also the ZeroMQ identity of its sockets */
    size_t uuidlen;
    int registered;          /* 0: waiting for the first pong */
    int64_t reg_started_ms;  /* monotonic, when the registration reply was sent */
    int64_t registered_ms;   /* monotonic, when its registration was announced */
    int beat;                /* answered the current ping */
    int misses;              /* consecutive missed pings */
    cpar_map_t queue;        /* pending direct msg_ids -> ctl_pending_t (owned by ctl->pending) */
    cpar_map_t tasks;        /* pending task msg_ids assigned here */
    uint64_t completed;      /* requests it finished (not aborted); their ids live in the DB */
    cpar_sched_engine_t se;  /* what the scheduler plugin sees */
    int64_t lru_seq;         /* order of last assignment; new engines lowest */
    int in_avail;            /* listed in ctl->avail */
} ctl_engine_t;

typedef struct ctl_settings {
    char *profile_dir;
    char *cluster_id;
    char *ip;
    char *location;
    char *transport;
    char *key;
    char *signature_scheme;
    char *db_class;
    char *ssh_server;
    char *engine_ssh_server;
    char *scheme_name;
    int64_t hb_period_ms;
    int64_t max_misses;
    int64_t registration_timeout_s;
    int64_t bcast_depth;
    int64_t hwm;
    int64_t max_message_size;
    int reuse_files;
    int restore_engines;
    int64_t *ports; /* the --ports pool, tried in order; then random ports */
    size_t nports, next_port;
    int64_t regport;
} ctl_settings_t;

typedef struct ctl {
    cpar_config_t *cfg;
    ctl_settings_t set;
    cpar_loop_t *loop;
    cpar_plughost_t *plughost;
    cpar_db_t *db;
    cpar_session_t session;
    void *zctx;
    void *sock[CHAN_COUNT];
    int port[CHAN_COUNT];
    int *bc_ports; /* engine-side broadcast leaf ports */
    size_t nbc_ports;
    char *client_file, *engine_file;
    int files_written;

    /* engines */
    cpar_map_t by_uuid; /* uuid -> ctl_engine_t (registered and pending) */
    cpar_map_t by_id;   /* decimal id -> ctl_engine_t (registered and pending) */
    int next_id;
    cpar_map_t dead;    /* uuids of unregistered engines, so late heart news is quiet */

    /* heartbeat */
    cpar_loop_timer_t *hb_timer;
    cpar_loop_timer_t *hb_quick;  /* re-pings while registrations wait for their first pong */
    cpar_loop_timer_t *state_timer; /* a pending write of the engine state file */
    char ping_cur[32], ping_prev[32];
    int64_t hb_start_us;

    /* requests */
    cpar_map_t pending; /* msg_id -> ctl_pending_t */
    size_t unassigned;

    /* task scheduler (tasks.c) */
    cpar_sched_t *sched;
    int64_t task_hwm;
    cpar_map_t tasks;                /* msg_id -> ctl_task_t, until its final reply */
    cpar_map_t done;                 /* msg_id -> done_t of recently finished tasks */
    struct done **done_ring;         /* the same, oldest first, for eviction */
    size_t done_ring_cap, done_ring_n, done_ring_head;
    cpar_map_t dep_waiters;          /* unfinished msg_id -> ctl_strlist_t of waiting tasks */
    cpar_sched_engine_t **avail;     /* engines under hwm, least recently assigned first */
    size_t navail, capavail;
    cpar_sched_engine_t **cand;      /* scratch for filtered candidates */
    size_t ncand_cap;
    struct ctl_task *ready_head, *ready_tail;
    size_t nready;
    int scanning, rescan;
    int64_t lru_front, lru_back;
    uint64_t task_seq;
    struct stranded_tasks *stranded_tasks;

    /* broadcast (bcast.c) */
    cpar_map_t bcasts; /* original msg_id -> coalescing request waiting for replies */

    struct stranded *stranded; /* dead engines' direct requests waiting for EngineError */

    cpar_msg_t in;      /* receive buffer reused for every message */
    char in_type[128];  /* its header's msg_type and msg_id, scanned by ctl_recv */
    char in_id[512];
    char *scratch[3];   /* NUL-terminated copies of frames for records (records.c) */
    size_t scratch_cap[3];
    ProtobufCBinaryData *bufviews; /* the buffers of one message as record fields (records.c) */
    size_t nbufviews;
    int shutting_down;
    int exit_code;
} ctl_t;

/* Receive-side plumbing (sockets.c) */
int ctl_sockets_open(ctl_t *ctl);
void ctl_sockets_close(ctl_t *ctl);
/* Receive the next message on `chan` into ctl->in, split and (unless `raw`) verify it. Returns
 * 0, CPAR_EAGAIN when nothing more is waiting, or CPAR_EPROTO for a message that was dropped
 * (already logged with its channel, peer and reason). */
int ctl_recv(ctl_t *ctl, ctl_chan_t chan);
/* Log one dropped message (channel, peer identity, reason). */
void ctl_drop(ctl_t *ctl, ctl_chan_t chan, const cpar_msg_t *m, const char *reason);
const char *ctl_chan_name(ctl_chan_t chan);

/* Connection files (connfile.c) */
int ctl_connfiles_write(ctl_t *ctl);
void ctl_connfiles_remove(ctl_t *ctl);
int ctl_connfiles_reuse(ctl_t *ctl);
json_t *ctl_engine_connection_info(ctl_t *ctl);
/* Rewrite log/engines<id>.json soon (writes within 200 ms are gathered into one). */
void ctl_save_engine_state(ctl_t *ctl);
/* Rewrite it now, if a write is pending (at exit). */
void ctl_flush_engine_state(ctl_t *ctl);
int ctl_restore_engines(ctl_t *ctl);

/* Engines and heartbeat (engines.c, heartbeat.c) */
ctl_engine_t *ctl_engine_by_uuid(ctl_t *ctl, const void *uuid, size_t len);
ctl_engine_t *ctl_engine_by_id(ctl_t *ctl, int id);
/* A new pending engine entered in both maps; NULL on allocation failure. */
ctl_engine_t *ctl_engine_new(ctl_t *ctl, int id, const char *uuid, size_t len);
void ctl_engines_free(ctl_t *ctl);
void ctl_handle_registration(ctl_t *ctl, cpar_msg_t *m);
void ctl_handle_unregistration(ctl_t *ctl, cpar_msg_t *m);
void ctl_on_notify_subscribe(void *arg);
void ctl_finish_registration(ctl_t *ctl, ctl_engine_t *e, int notify);
void ctl_unregister_engine(ctl_t *ctl, ctl_engine_t *e, const char *why);
int ctl_heartbeat_start(ctl_t *ctl);
void ctl_heartbeat_stop(ctl_t *ctl);
/* A registration is waiting for its first pong: re-send the current ping soon and often. */
void ctl_heartbeat_hurry(ctl_t *ctl);
void ctl_on_pong(void *arg);
/* Registered engines sorted by id; caller frees the array. */
ctl_engine_t **ctl_engines_sorted(ctl_t *ctl, size_t *n);

/* Hub queries (hub.c) */
void ctl_on_query(void *arg);
void ctl_notify(ctl_t *ctl, const char *msg_type, json_t *content, json_t *parent);
void ctl_shutdown(ctl_t *ctl);
/* Reply on the query socket to the first identity of `req`. */
void ctl_reply(ctl_t *ctl, cpar_msg_t *req, const char *msg_type, json_t *content,
               const cpar_bytes_t *bufs, size_t nbufs);

/* Relays (relay.c) */
void ctl_on_mux_client(void *arg);
void ctl_on_mux_engine(void *arg);
void ctl_on_ctl_client(void *arg);
void ctl_on_ctl_engine(void *arg);
void ctl_on_iopub(void *arg);
void ctl_on_task_client(void *arg);
void ctl_on_task_engine(void *arg);
void ctl_on_bc_client(void *arg);
void ctl_on_bc_engine(void *arg);

/* Task scheduler (tasks.c) */
int ctl_tasks_init(ctl_t *ctl, char *err, size_t errlen);
void ctl_tasks_fini(ctl_t *ctl);
void ctl_tasks_engine_added(ctl_t *ctl, ctl_engine_t *e);
void ctl_tasks_engine_removed(ctl_t *ctl, ctl_engine_t *e);
void ctl_tasks_scan(ctl_t *ctl);
/*
 * Submit a task: a client's request from the task socket, or one the hub built (a resubmission)
 * as if a client had sent it. `m` is split and verified, with one routing identity (where the
 * reply goes; an identity no peer has makes the reply vanish, as ipyparallel's hub discards
 * replies to its resubmit socket) and header msg_id `msg_id`. The task takes m's frames over
 * and leaves m empty. The hub records it as pending.
 */
void ctl_tasks_submit(ctl_t *ctl, cpar_msg_t *m, const char *msg_id);

/* Broadcast scheduler (bcast.c) */
void ctl_bcast_engine_removed(ctl_t *ctl, ctl_engine_t *e);
void ctl_bcast_fini(ctl_t *ctl);

/*
 * The fields of a reply's metadata that the task scheduler and the records read, scanned in one
 * walk (ctl_reply_md_keys, in this order) by whoever reads the reply first. The values are raw
 * JSON spans into the message's frames: valid until the message is sent or cleared.
 */
enum { CTL_MD_STATUS, CTL_MD_ENGINE, CTL_MD_STARTED, CTL_MD_DEPS_MET, CTL_MD_NKEYS };
extern const char *const ctl_reply_md_keys[CTL_MD_NKEYS];

/* Task records (records.c). `e` NULL in ctl_record_request: a task not yet assigned; in
 * ctl_record_reply: a reply the controller made (scheduler error, dead engine). `parent_id`:
 * the msg_id of the request a reply answers when the caller knows it, else NULL (read from the
 * reply's parent header). `md`: the reply's metadata values when the caller has scanned them
 * (see ctl_reply_md_keys), else NULL. */
void ctl_record_request(ctl_t *ctl, cpar_msg_t *m, const char *msg_id, ctl_engine_t *e,
                        const char *queue);
void ctl_record_reply(ctl_t *ctl, cpar_msg_t *m, const char *parent_id, ctl_engine_t *e,
                      const cpar_bytes_t *md);
void ctl_record_assignment(ctl_t *ctl, const char *msg_id, ctl_engine_t *e);
void ctl_record_unassign(ctl_t *ctl, const char *msg_id, ctl_engine_t *e);
void ctl_record_iopub(ctl_t *ctl, cpar_msg_t *m);
void ctl_strand_engine(ctl_t *ctl, ctl_engine_t *e);
void ctl_stranded_free_all(ctl_t *ctl);
void ctl_pending_free(void *p);

/* String list helpers */
int ctl_strlist_push(ctl_strlist_t *l, const char *s);
void ctl_strlist_free(ctl_strlist_t *l);

#endif /* CPAR_CONTROLLER_H */
