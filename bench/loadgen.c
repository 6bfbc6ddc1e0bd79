/*
 * loadgen.c - cpar_loadgen: a protocol-level load generator for ipyparallel controllers.
 *
 * It reads a running controller's connection files, starts E fake engines and one client in
 * this process (one thread, one reactor, real ZeroMQ over tcp loopback), waits until the
 * controller lists all E engines, then keeps W requests in flight for N requests or S seconds
 * and prints one JSON line: tasks/s, round-trip latency percentiles, errors, and what it saw
 * of the heartbeat. With --registration-only it measures how long E engines take to register
 * and then watches the heartbeat for S seconds.
 *
 * The controller's own CPU and memory are measured from outside (bench/run.py); --events
 * prints {"event": ...} lines when measuring starts and ends so that the caller can sample them.
 */
#include "loadgen.h"

#include <cparallel/errors.h>

#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util/clock.h"

static const char usage[] =
    "cpar_loadgen - drive an ipyparallel controller with fake engines and a client\n"
    "\n"
    "Usage: cpar_loadgen --profile-dir DIR [options]\n"
    "\n"
    "  --profile-dir DIR       the controller's profile (connection files in DIR/security/)\n"
    "  --cluster-id ID         cluster id of the connection files\n"
    "  --engines E             fake engines to start (default 1)\n"
    "  --mode lb|direct        load-balanced (task socket) or direct (mux) requests (direct)\n"
    "  --window W              requests kept in flight (default 64)\n"
    "  --count N               measure N requests (default 10000)\n"
    "  --seconds S             measure for S seconds instead; with --registration-only, watch\n"
    "                          the heartbeat for S seconds after registration (default 10)\n"
    "  --warmup N              replies before measuring starts (default 2*W)\n"
    "  --registration-only     measure engine registration and heartbeat, no requests\n"
    "  --timeout S             give up when engines are not in, or no reply came, within S\n"
    "                          seconds (default 60)\n"
    "  --settle-ms MS          pause between 'all engines in' and the first request (200)\n"
    "  --no-unregister         exit without sending unregistration_request for each engine\n"
    "  --events                also print {\"event\": ...} lines at each phase: registered,\n"
    "                          load_start (first request), measure_start, measure_end\n"
    "  --hold                  after the result line, keep the engines up (answering pings and\n"
    "                          requests) until a line arrives on standard input, at most\n"
    "                          --timeout seconds; so a caller can sample the controller before\n"
    "                          the engines leave\n"
    "\n"
    "Prints one JSON line with the results. Exit status: 0 done; 1 bad usage or setup; 2 the run\n"
    "stopped early (timeout, stall, controller gone); 3 the controller broke the protocol (bad\n"
    "signatures, misrouted or unexpected replies).\n";

void lg_event(lg_t *lg, const char *name)
{
    if (!lg->opt.events)
        return;
    printf("{\"event\":\"%s\",\"t\":%.6f}\n", name,
           (double)(cpar_monotonic_us() - lg->t_start) / 1e6);
    fflush(stdout);
}

void lg_fail(lg_t *lg, const char *why)
{
    if (!lg->fail)
        lg->fail = why;
    lg->exit_code = 2;
    lg->phase = PH_DONE;
    cpar_loop_stop(lg->loop);
}

static void lg_finish(lg_t *lg)
{
    if (lg->phase == PH_DONE)
        return;
    lg->phase = PH_DONE;
    lg_event(lg, "measure_end");
    cpar_loop_stop(lg->loop);
}

void lg_reply_done(lg_t *lg)
{
    if (lg->phase == PH_DRAINING && lg->n_inflight == 0)
        lg_finish(lg);
}

static void lg_stop_sending(void *arg)
{
    lg_t *lg = arg;

    if (lg->phase != PH_RUNNING)
        return;
    lg->phase = PH_DRAINING;
    lg_reply_done(lg);
}

void lg_measure_start(lg_t *lg, int64_t now_us)
{
    lg->measuring = 1;
    lg->t_measure0 = now_us;
    lg->t_last_reply = now_us;
    lg->ok = lg->errors = 0;
    lg_event(lg, "measure_start");
    if (lg->opt.count == 0 &&
        cpar_loop_timer_once(lg->loop, (uint64_t)(lg->opt.seconds * 1000), lg_stop_sending, lg))
        lg_fail(lg, "out of memory");
}

static void lg_start_running(void *arg)
{
    lg_t *lg = arg;

    if (lg->phase != PH_SETTLING)
        return;
    lg->phase = PH_RUNNING;
    lg->t_progress = cpar_monotonic_us();
    lg_event(lg, "load_start");
    if (lg->warmup == 0)
        lg_measure_start(lg, lg->t_progress);
    lg_client_fill(lg);
}

static void lg_watch_over(void *arg)
{
    lg_finish(arg);
}

void lg_all_registered(lg_t *lg)
{
    lg->t_registered = cpar_monotonic_us();
    cpar_loop_timer_stop(lg->loop, lg->poll_timer);
    lg->poll_timer = NULL;
    lg_event(lg, "registered");
    if (lg->opt.mode == LG_REGISTRATION) {
        lg->phase = PH_RUNNING;
        lg_event(lg, "measure_start");
        if (cpar_loop_timer_once(lg->loop, (uint64_t)(lg->opt.seconds * 1000), lg_watch_over, lg))
            lg_fail(lg, "out of memory");
        return;
    }
    lg->phase = PH_SETTLING;
    if (lg_client_connect_work(lg) != 0 ||
        cpar_loop_timer_once(lg->loop, (uint64_t)lg->opt.settle_ms, lg_start_running, lg) != 0)
        lg_fail(lg, "cannot connect the client's mux and task sockets");
}

/* Every 250 ms while registering: ask again, and stop when an engine was refused. */
static void lg_poll(void *arg)
{
    lg_t *lg = arg;

    if (lg->phase != PH_REGISTERING)
        return;
    if (lg->n_failed > 0 && lg->n_up + lg->n_failed == lg->opt.engines) {
        lg_fail(lg, "the controller refused some registrations");
        return;
    }
    lg_client_query(lg);
}

/* Once a second: registration must finish within --timeout, and once requests flow, some reply
 * must come within --timeout. */
static void lg_watchdog(void *arg)
{
    lg_t *lg = arg;
    int64_t now = cpar_monotonic_us(), limit = (int64_t)(lg->opt.timeout * 1e6);

    switch (lg->phase) {
    case PH_REGISTERING:
        if (now - lg->t_reg0 > limit)
            lg_fail(lg, "not every engine was registered in time");
        break;
    case PH_RUNNING:
    case PH_DRAINING:
        if (lg->n_inflight > 0 && now - lg->t_progress > limit)
            lg_fail(lg, "no reply within the timeout: requests lost or the controller stalled");
        break;
    default:
        break;
    }
}

static void lg_on_stdin(void *arg)
{
    lg_t *lg = arg;
    char buf[256];

    (void)!read(0, buf, sizeof buf);
    cpar_loop_stop(lg->loop);
}

static void lg_hold_over(void *arg)
{
    lg_t *lg = arg;

    cpar_loop_stop(lg->loop);
}

/* --hold: serve on until the caller is done with us (a line on stdin) or the timeout. The
 * reactor polls stdin for POLLIN only, which a pipe's end of file alone does not raise. */
static void lg_hold(lg_t *lg)
{
    if (cpar_loop_add_fd(lg->loop, 0, lg_on_stdin, lg) != 0 ||
        cpar_loop_timer_once(lg->loop, (uint64_t)(lg->opt.timeout * 1000), lg_hold_over, lg) != 0)
        return;
    cpar_loop_run(lg->loop);
    cpar_loop_remove_fd(lg->loop, 0);
}

static void lg_on_signal(void *arg, int signo)
{
    (void)signo;
    lg_fail(arg, "interrupted");
}

/* ---- report ------------------------------------------------------------------------------- */

static int lg_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of the sorted v[n]. */
static json_t *lg_pct(const uint32_t *v, size_t n, double p)
{
    size_t rank;

    if (n == 0)
        return json_null();
    rank = (size_t)ceil(p / 100.0 * (double)n);
    return json_integer(v[rank ? rank - 1 : 0]);
}

static json_t *lg_seconds(int64_t from_us, int64_t to_us)
{
    return from_us && to_us >= from_us ? json_real((double)(to_us - from_us) / 1e6) : json_null();
}

static void lg_set(json_t *o, const char *k, json_t *v)
{
    json_object_set_new(o, k, v ? v : json_null());
}

static void lg_report(lg_t *lg)
{
    json_t *r = json_object();
    uint64_t missed = 0, pings = 0;
    int64_t max_gap = 0, max_gap_end = 0, reg_max = 0;
    uint32_t *reg = calloc((size_t)lg->opt.engines + 1, sizeof *reg);
    size_t nreg = 0;
    int problems;
    char *text;

    for (int i = 0; lg->engines && i < lg->opt.engines; i++) {
        lg_engine_t *e = &lg->engines[i];

        missed += e->missed;
        pings += e->pings;
        if (e->max_gap_us > max_gap) {
            max_gap = e->max_gap_us;
            max_gap_end = e->max_gap_end_us;
        }
        if (e->reg_reply_us && reg) {
            reg[nreg++] = (uint32_t)(e->reg_reply_us - e->reg_sent_us);
            if (e->reg_reply_us - e->reg_sent_us > reg_max)
                reg_max = e->reg_reply_us - e->reg_sent_us;
        }
    }
    problems = lg->bad_sig || lg->misrouted || lg->unknown || lg->wrong_type || lg->eng_bad ||
               lg->reg_bad_period;

    lg_set(r, "mode",
           json_string(lg->opt.mode == LG_DIRECT ? "direct"
                       : lg->opt.mode == LG_LB   ? "lb"
                                                 : "registration"));
    lg_set(r, "engines", json_integer(lg->opt.engines));
    lg_set(r, "status", json_string(lg->fail ? "failed" : problems ? "protocol_errors" : "ok"));
    lg_set(r, "fail", lg->fail ? json_string(lg->fail) : NULL);
    if (lg->opt.mode != LG_REGISTRATION) {
        double el = lg->t_last_reply > lg->t_measure0
                        ? (double)(lg->t_last_reply - lg->t_measure0) / 1e6
                        : 0.0;
        int64_t sum = 0;

        if (lg->nlat)
            qsort(lg->lat, lg->nlat, sizeof *lg->lat, lg_cmp_u32);
        for (size_t i = 0; i < lg->nlat; i++)
            sum += lg->lat[i];
        lg_set(r, "window", json_integer(lg->opt.window));
        lg_set(r, "warmup", json_integer(lg->warmup));
        lg_set(r, "sent", json_integer(lg->sent));
        lg_set(r, "requests", json_integer(lg->ok + lg->errors));
        lg_set(r, "ok", json_integer(lg->ok));
        lg_set(r, "errors", json_integer(lg->errors));
        lg_set(r, "error_sample", lg->error_sample[0] ? json_string(lg->error_sample) : NULL);
        lg_set(r, "elapsed_s", json_real(el));
        lg_set(r, "tasks_per_s", json_real(el > 0 ? (double)lg->ok / el : 0.0));
        lg_set(r, "replies_per_s", json_real(el > 0 ? (double)(lg->ok + lg->errors) / el : 0.0));
        lg_set(r, "lat_mean_us", lg->nlat ? json_integer(sum / (int64_t)lg->nlat) : NULL);
        lg_set(r, "lat_p50_us", lg_pct(lg->lat, lg->nlat, 50));
        lg_set(r, "lat_p90_us", lg_pct(lg->lat, lg->nlat, 90));
        lg_set(r, "lat_p99_us", lg_pct(lg->lat, lg->nlat, 99));
        lg_set(r, "lat_max_us", lg->nlat ? json_integer(lg->lat[lg->nlat - 1]) : NULL);
        lg_set(r, "lost", json_integer(lg->n_inflight));
        lg_set(r, "misrouted", json_integer(lg->misrouted));
        lg_set(r, "unknown_replies", json_integer(lg->unknown));
        lg_set(r, "wrong_reply_type", json_integer(lg->wrong_type));
    }
    lg_set(r, "bad_messages", json_integer(lg->bad_sig));
    lg_set(r, "engine_bad_requests", json_integer(lg->eng_bad));
    lg_set(r, "engine_unexpected", json_integer(lg->eng_unexpected));
    lg_set(r, "registration_s", lg_seconds(lg->t_reg0, lg->t_registered));
    lg_set(r, "reg_replies_s", lg_seconds(lg->t_reg0, lg->t_reg_replies));
    if (reg && nreg)
        qsort(reg, nreg, sizeof *reg, lg_cmp_u32);
    lg_set(r, "reg_reply_p50_ms", reg && nreg ? json_real(reg[(nreg - 1) / 2] / 1e3) : NULL);
    lg_set(r, "reg_reply_max_ms", json_real((double)reg_max / 1e3));
    lg_set(r, "engines_announced", json_integer(lg->n_announced));
    lg_set(r, "reg_errors", json_integer(lg->n_failed));
    lg_set(r, "reg_error", lg->reg_error[0] ? json_string(lg->reg_error) : NULL);
    lg_set(r, "reg_bad_hb_period", json_integer((json_int_t)lg->reg_bad_period));
    lg_set(r, "hb_period_ms", json_integer(lg->hb_period_ms));
    if (lg->opt.mode == LG_REGISTRATION)
        lg_set(r, "watch_s", lg_seconds(lg->t_registered, cpar_monotonic_us()));
    lg_set(r, "pings", json_integer((json_int_t)pings));
    lg_set(r, "missed_beats", json_integer((json_int_t)missed));
    lg_set(r, "max_ping_gap_ms", json_real((double)max_gap / 1e3));
    /* When that gap ended, counted from the first registration request. */
    lg_set(r, "max_ping_gap_end_s", lg_seconds(lg->t_reg0, max_gap_end));
    lg_set(r, "unregistered", json_integer((json_int_t)lg->unreg_ours));
    lg_set(r, "notified_registrations", json_integer((json_int_t)lg->notified_reg));
    free(reg);

    text = cpar_json_dumps(r);
    if (text) {
        printf("%s\n", text);
        fflush(stdout);
    }
    free(text);
    json_decref(r);
    if (lg->exit_code == 0 && problems)
        lg->exit_code = 3;
}

/* ---- options and main --------------------------------------------------------------------- */

static int lg_number(const char *text, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(text, &end);

    if (end == text || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int lg_options(lg_opts_t *o, int argc, char **argv)
{
    enum {
        O_PROFILE = 256,
        O_CLUSTER,
        O_ENGINES,
        O_MODE,
        O_WINDOW,
        O_COUNT,
        O_SECONDS,
        O_WARMUP,
        O_REGONLY,
        O_TIMEOUT,
        O_SETTLE,
        O_NOUNREG,
        O_EVENTS,
        O_HOLD,
        O_HELP
    };
    static const struct option longopts[] = {{"profile-dir", required_argument, NULL, O_PROFILE},
                                             {"cluster-id", required_argument, NULL, O_CLUSTER},
                                             {"engines", required_argument, NULL, O_ENGINES},
                                             {"mode", required_argument, NULL, O_MODE},
                                             {"window", required_argument, NULL, O_WINDOW},
                                             {"count", required_argument, NULL, O_COUNT},
                                             {"seconds", required_argument, NULL, O_SECONDS},
                                             {"warmup", required_argument, NULL, O_WARMUP},
                                             {"registration-only", no_argument, NULL, O_REGONLY},
                                             {"timeout", required_argument, NULL, O_TIMEOUT},
                                             {"settle-ms", required_argument, NULL, O_SETTLE},
                                             {"no-unregister", no_argument, NULL, O_NOUNREG},
                                             {"events", no_argument, NULL, O_EVENTS},
                                             {"hold", no_argument, NULL, O_HOLD},
                                             {"help", no_argument, NULL, O_HELP},
                                             {NULL, 0, NULL, 0}};
    int c, have_count = 0, have_seconds = 0;
    double v;

    *o = (lg_opts_t){.engines = 1,
                     .mode = LG_DIRECT,
                     .window = 64,
                     .count = 10000,
                     .seconds = 10,
                     .warmup = -1,
                     .timeout = 60,
                     .settle_ms = 200,
                     .unregister = 1};
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        const char *bad = NULL;

        switch (c) {
        case O_PROFILE:
            o->profile_dir = optarg;
            break;
        case O_CLUSTER:
            o->cluster_id = optarg;
            break;
        case O_ENGINES:
            if (lg_number(optarg, 1, 100000, &v) == 0)
                o->engines = (int)v;
            else
                bad = "--engines";
            break;
        case O_MODE:
            if (strcmp(optarg, "direct") == 0)
                o->mode = o->mode == LG_REGISTRATION ? LG_REGISTRATION : LG_DIRECT;
            else if (strcmp(optarg, "lb") == 0)
                o->mode = o->mode == LG_REGISTRATION ? LG_REGISTRATION : LG_LB;
            else
                bad = "--mode";
            break;
        case O_WINDOW:
            if (lg_number(optarg, 1, 1000000, &v) == 0)
                o->window = (int)v;
            else
                bad = "--window";
            break;
        case O_COUNT:
            if (lg_number(optarg, 1, 1e12, &v) == 0) {
                o->count = (int64_t)v;
                have_count = 1;
            } else {
                bad = "--count";
            }
            break;
        case O_SECONDS:
            if (lg_number(optarg, 0.001, 86400, &v) == 0) {
                o->seconds = v;
                have_seconds = 1;
            } else {
                bad = "--seconds";
            }
            break;
        case O_WARMUP:
            if (lg_number(optarg, 0, 1e12, &v) == 0)
                o->warmup = (int64_t)v;
            else
                bad = "--warmup";
            break;
        case O_REGONLY:
            o->mode = LG_REGISTRATION;
            break;
        case O_TIMEOUT:
            if (lg_number(optarg, 0.1, 86400, &v) == 0)
                o->timeout = v;
            else
                bad = "--timeout";
            break;
        case O_SETTLE:
            if (lg_number(optarg, 0, 600000, &v) == 0)
                o->settle_ms = (int)v;
            else
                bad = "--settle-ms";
            break;
        case O_NOUNREG:
            o->unregister = 0;
            break;
        case O_EVENTS:
            o->events = 1;
            break;
        case O_HOLD:
            o->hold = 1;
            break;
        case 'h':
        case O_HELP:
            fputs(usage, stdout);
            exit(0);
        default:
            return -1;
        }
        if (bad) {
            fprintf(stderr, "cpar_loadgen: bad value for %s: %s\n", bad, optarg);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cpar_loadgen: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    if (!o->profile_dir) {
        fprintf(stderr, "cpar_loadgen: --profile-dir is required\n");
        return -1;
    }
    if (have_count && have_seconds && o->mode != LG_REGISTRATION) {
        fprintf(stderr, "cpar_loadgen: give --count or --seconds, not both\n");
        return -1;
    }
    if (have_seconds && o->mode != LG_REGISTRATION)
        o->count = 0;
    return 0;
}

/* A thousand engines need about ten descriptors each: raise the soft limit to the hard one. */
static void lg_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int lg_setup(lg_t *lg)
{
    int max_sockets = 4 * lg->opt.engines + 64, rc;

    lg->zctx = zmq_ctx_new();
    if (!lg->zctx || zmq_ctx_set(lg->zctx, ZMQ_MAX_SOCKETS, max_sockets) != 0)
        return CPAR_EIO;
    rc = cpar_loop_new(&lg->loop);
    if (rc != 0)
        return rc;
    if (cpar_loop_add_signal(lg->loop, SIGINT, lg_on_signal, lg) != 0 ||
        cpar_loop_add_signal(lg->loop, SIGTERM, lg_on_signal, lg) != 0)
        return CPAR_EIO;
    rc = lg_conn_load(lg);
    if (rc != 0)
        return rc;
    lg->poll_timer = cpar_loop_timer_start(lg->loop, 250, 250, lg_poll, lg);
    lg->watchdog = cpar_loop_timer_start(lg->loop, 1000, 1000, lg_watchdog, lg);
    if (!lg->poll_timer || !lg->watchdog)
        return CPAR_ENOMEM;
    rc = lg_client_start(lg);
    if (rc == 0)
        rc = lg_engines_start(lg);
    return rc;
}

int main(int argc, char **argv)
{
    lg_t lg;
    int rc;

    memset(&lg, 0, sizeof lg);
    if (lg_options(&lg.opt, argc, argv) != 0) {
        fputs(usage, stderr);
        return 1;
    }
    lg.warmup = lg.opt.warmup >= 0 ? lg.opt.warmup : 2 * (int64_t)lg.opt.window;
    lg.t_start = cpar_monotonic_us();
    cpar_msg_init(&lg.in);
    cpar_msg_init(&lg.out);
    cpar_msg_init(&lg.eout);
    cpar_map_init(&lg.by_uuid);
    cpar_map_init(&lg.inflight);
    lg_raise_nofile();

    rc = lg_setup(&lg);
    if (rc != 0) {
        fprintf(stderr, "cpar_loadgen: setup failed: %s\n", cpar_strerror(rc));
        lg.exit_code = 1;
    } else if (cpar_loop_run(lg.loop) != 0) {
        lg_fail(&lg, "the reactor failed");
    }
    if (rc == 0) {
        lg_engines_finish_beats(&lg, cpar_monotonic_us());
        lg_report(&lg);
        if (lg.opt.hold && !lg.fail)
            lg_hold(&lg);
    }

    lg_engines_stop(&lg);
    lg_client_stop(&lg);
    cpar_msg_fini(&lg.in);
    cpar_msg_fini(&lg.out);
    cpar_msg_fini(&lg.eout);
    cpar_map_fini(&lg.by_uuid, NULL);
    cpar_map_fini(&lg.inflight, NULL);
    free(lg.conn.e_broadcast);
    if (lg.loop)
        cpar_loop_free(lg.loop);
    if (lg.zctx)
        zmq_ctx_term(lg.zctx);
    return lg.exit_code;
}
