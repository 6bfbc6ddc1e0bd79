#!/usr/bin/env python3
"""Side-by-side benchmark: cparallel's cpcontroller against ipyparallel's Python controller.

Every workload runs through both controllers in the same run, each on a fresh controller in a
temporary profile, and the results are reported as ratios. Three suites:

  matrix        cpar_loadgen's fake engines and client: tasks/s, latency, controller CPU per
                10k tasks and peak RSS, for several engine counts, load-balanced and direct
  registration  1000 fake engines registering, then heartbeating for a while
  real          the real Python client and real Python engines (LoadBalancedView.apply_async,
                LoadBalancedView.map, direct apply_async)

With no suite named, all three run. Run it with the Python that has ipyparallel (the Python
controller, engines and client are started with this same interpreter). See README.md.
"""

import argparse
import datetime
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
KINDS = ("python", "cparallel")
# The ZeroMQ floor (cpar_zmqfloor): a frame relay with no controller logic, run in the matrix
# beside the two controllers unless --no-floor.
FLOOR = "floor"
LABEL = {"python": "Python", "cparallel": "cparallel", FLOOR: "ZMQ floor"}


# ---- /proc: CPU and memory of a process tree --------------------------------------------------


def _stat(pid):
    """(ppid, utime+stime in ticks) of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); ppid is field 4, utime 14, stime 15.
    return int(fields[1]), int(fields[11]) + int(fields[12])


def tree_pids(root):
    """root and every live descendant of it."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st:
                children.setdefault(st[0], []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu(root):
    """CPU seconds (user + system) used so far by root and its live descendants."""
    total = 0
    for pid in tree_pids(root):
        st = _stat(pid)
        if st:
            total += st[1]
    return total / CLK_TCK


def _status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_hwm_kb(root):
    """Peak resident memory (VmHWM) summed over root and its live descendants, in KiB."""
    return sum(_status_kb(pid, "VmHWM") for pid in tree_pids(root))


def tree_pss_kb(root):
    """Proportional set size summed over the tree (shared pages split between their users, so
    forked children do not count the parent's pages again), in KiB."""
    total = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def machine_busy():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + cpu[4]
    return sum(cpu) - idle, sum(cpu)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wait_quiet(pid, limit=120.0, step=0.25, idle=0.01):
    """Wait until the process tree has (almost) stopped using CPU: the Python hub keeps working
    through its backlog of monitor messages after the last reply went out, and that work belongs
    to the workload. Returns the seconds waited."""
    t0 = time.monotonic()
    prev, quiet = tree_cpu(pid), 0
    while time.monotonic() - t0 < limit:
        time.sleep(step)
        cur = tree_cpu(pid)
        quiet = quiet + 1 if cur - prev <= idle * step + 1.0 / CLK_TCK else 0
        prev = cur
        if quiet >= 4:
            return time.monotonic() - t0 - quiet * step
    return time.monotonic() - t0


# ---- processes ----------------------------------------------------------------------------------


def _stop_group(proc, grace=5.0):
    """SIGTERM the process group we started proc in, then SIGKILL what is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass


class Controller:
    """One controller (either kind) in its own temporary profile and process group."""

    def __init__(self, kind, args, workdir, tag, db=None):
        self.kind = kind
        self.dir = Path(workdir) / f"{kind}-{tag}"
        self.profile = self.dir / "profile"
        self.env = dict(os.environ, IPYTHONDIR=str(self.dir / "ipython"))
        self.env.pop("IPP_PROFILE_DIR", None)
        self.env.pop("IPP_CLUSTER_ID", None)
        self.env.pop("IPP_SESSION_KEY", None)
        if kind == FLOOR:
            self.argv = [str(args.floor_bin), "--profile-dir", str(self.profile),
                         "--hwm", str(args.floor_hwm)]
            self.proc = None
            self.log = None
            return
        if kind == "python":
            argv = [args.python, "-m", "ipyparallel.controller"]
        else:
            argv = [str(args.cpcontroller)]
        argv += [f"--profile-dir={self.profile}", f"--ping={args.ping}", "--log-level=30",
                 "--ip=127.0.0.1"]
        if args.hwm is not None:
            argv.append(f"--hwm={args.hwm}")
        if db:
            argv.append(f"--{db}")
            if db == "mongodb":
                # The same server for both; the Python controller takes pymongo's arguments.
                argv.append(f"--MongoDB.url={args.mongodb_url}" if kind == "cparallel" else
                            f"--MongoDB.connection_args=['{args.mongodb_url}']")
                argv.append(f"--MongoDB.database=bench-{kind}-{tag}")
        self.argv = argv
        self.proc = None
        self.log = None

    def start(self, timeout=60.0):
        self.dir.mkdir(parents=True)
        self.log = open(self.dir / "controller.log", "wb")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        files = [self.profile / "security" / f"ipcontroller-{s}.json" for s in ("client", "engine")]
        t0 = time.monotonic()
        while not all(f.exists() for f in files):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} controller exited with {self.proc.returncode}; "
                                   f"see {self.dir / 'controller.log'}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{self.kind} controller wrote no connection files in "
                                   f"{timeout:.0f} s")
            time.sleep(0.05)
        # The Python controller writes the files before its schedulers are up; let it settle
        # so that start-up CPU does not count as work.
        wait_quiet(self.proc.pid, limit=20)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc:
            _stop_group(self.proc)
        if self.log:
            self.log.close()

    def log_tail(self, n=5):
        try:
            lines = (self.dir / "controller.log").read_text(errors="replace").splitlines()
        except OSError:
            return []
        return lines[-n:]


class LineReader:
    """Lines from a child's stdout as soon as they are written, with an overall deadline (the
    children bound their own waits; this is the last line of defence). Reads the pipe's fd
    directly: a buffered readline() after select() could leave lines in Python's buffer while
    select() waits for more."""

    def __init__(self, proc, deadline):
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.deadline = deadline
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.fd, selectors.EVENT_READ)

    def __iter__(self):
        buf = b""
        while True:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line.decode(errors="replace")
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("child produced no output in time")
            if not self.sel.select(timeout=min(left, 1.0)):
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                if buf:
                    yield buf.decode(errors="replace")
                return
            buf += chunk


# ---- the matrix: cpar_loadgen against each controller -----------------------------------------


def run_loadgen(args, ctl, lg_args, deadline_s, quiesce=True):
    """Run cpar_loadgen against ctl; returns its JSON result plus what we measured from outside.
    The controller's CPU is counted from the first request (or, registration-only, from the
    start of the heartbeat watch) until it went idle again, or, without `quiesce`, until the
    result line (a controller with 1000 heartbeating engines is never idle)."""
    cmd = [str(args.loadgen), "--profile-dir", str(ctl.profile), "--events", "--hold"] + lg_args
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    out = {"controller": ctl.kind}
    cpu0 = lg0 = busy0 = None
    t_load = None
    try:
        for line in LineReader(proc, time.monotonic() + deadline_s):
            try:
                d = json.loads(line)
            except ValueError:
                continue
            ev = d.get("event")
            if ev == "registered":
                out["cpu_at_registered_s"] = tree_cpu(ctl.pid)
            elif ev in ("load_start",) or (ev == "measure_start" and cpu0 is None):
                cpu0, lg0, busy0 = tree_cpu(ctl.pid), tree_cpu(proc.pid), machine_busy()
                t_load = time.monotonic()
            elif ev is None:
                out.update(d)
                break
        if "status" in out and out["status"] != "failed" and cpu0 is not None:
            t_result = time.monotonic()
            out["backlog_s"] = wait_quiet(ctl.pid) if quiesce else 0.0
            cpu1, lg1, busy1 = tree_cpu(ctl.pid), tree_cpu(proc.pid), machine_busy()
            wall = time.monotonic() - t_load
            busy_s = t_result - t_load + out["backlog_s"]
            # Requests per second until the controller had finished all its work for them.
            out["sustained_per_s"] = out.get("sent", 0) / busy_s if busy_s > 0 else None
            out["controller_cpu_s"] = cpu1 - cpu0
            out["loadgen_cpu_s"] = lg1 - lg0
            other = (busy1[0] - busy0[0]) / CLK_TCK - out["controller_cpu_s"] - out["loadgen_cpu_s"]
            out["other_cpu_cores"] = max(0.0, other / wall) if wall > 0 else None
            out["controller_hwm_kb"] = tree_hwm_kb(ctl.pid)
            out["controller_pss_kb"] = tree_pss_kb(ctl.pid)
            out["controller_procs"] = len(tree_pids(ctl.pid))
    except TimeoutError as e:
        out.setdefault("status", "failed")
        out["fail"] = str(e)
    finally:
        try:  # --hold ends at a line on stdin (the end of file alone is not seen by its poll)
            proc.stdin.write("\n")
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
        err = proc.stderr.read()
        proc.stderr.close()
        proc.stdout.close()
    if "status" not in out:
        out["status"] = "failed"
        out["fail"] = f"cpar_loadgen exited {proc.returncode}: {err.strip()[-300:]}"
    if err.strip():
        out["loadgen_stderr"] = err.strip()[-500:]
    if not ctl.alive():
        out["controller_died"] = True
        out["controller_log_tail"] = ctl.log_tail()
    return out


def timed_load(args, ctl, engines, mode, window):
    """Start ctl, run the loadgen for args.seconds with `engines` fake engines, `mode` (lb or
    direct) and `window` requests in flight, stop ctl; the result, or a failed one."""
    try:
        ctl.start()
        return run_loadgen(args, ctl, ["--engines", str(engines), "--mode", mode,
                                       "--window", str(window), "--seconds",
                                       str(args.seconds), "--timeout", str(args.timeout)],
                           deadline_s=args.timeout * 3 + args.seconds + 60)
    except (RuntimeError, OSError) as e:
        return {"controller": ctl.kind, "status": "failed", "fail": str(e)}
    finally:
        ctl.stop()


def matrix(args, workdir, note):
    configs = [(e, m, args.window) for e in args.engines for m in args.modes]
    if not args.quick:
        configs += [(4, m, 1) for m in args.modes]  # unloaded round trip
    results = []
    for i, (engines, mode, window) in enumerate(configs):
        runs = {}
        for rep in range(args.repeat):
            # Alternate which controller goes first, so that slow drifts in the machine's
            # background load hit both alike.
            order = args.kinds if (i + rep) % 2 == 0 else tuple(reversed(args.kinds))
            if args.floor:
                order += (FLOOR,)
            for kind in order:
                tag = f"m{i}r{rep}"
                ctl = Controller(kind, args, workdir, tag)
                note(f"matrix: {LABEL[kind]:9s} E={engines:<3d} {mode:6s} W={window:<3d} "
                     + (f"({rep + 1}/{args.repeat}) " if args.repeat > 1 else "") + "...")
                r = timed_load(args, ctl, engines, mode, window)
                r.update(suite="matrix", engines=engines, mode=mode, window=window)
                runs.setdefault(kind, []).append(r)
                note("   " + short(r))
        for kind, rs in runs.items():
            results.append(median_run(rs))
    return results


def median_run(runs):
    """The run with the median tasks/s (of those that succeeded) stands for the cell; every
    run's tasks/s and CPU are kept beside it. One run: itself."""
    if len(runs) == 1:
        return runs[0]
    ok = sorted((r for r in runs if r.get("status") == "ok" and r.get("tasks_per_s")),
                key=lambda r: r["tasks_per_s"])
    pick = dict(ok[(len(ok) - 1) // 2] if ok else runs[0])
    pick["runs_tasks_per_s"] = [r.get("tasks_per_s") for r in runs]
    pick["runs_controller_cpu_s"] = [r.get("controller_cpu_s") for r in runs]
    pick["runs"] = len(runs)
    return pick


DB_FLAGS = ("dictdb", "sqlitedb", "nodb", "mongodb")


def databases(args, workdir, note):
    """The same load-balanced workload through each task database, both controllers."""
    results = []
    for i, db in enumerate(args.dbs):
        order = args.kinds if i % 2 == 0 else tuple(reversed(args.kinds))
        for kind in order:
            ctl = Controller(kind, args, workdir, f"db{i}", db=db)
            note(f"databases: {LABEL[kind]:9s} --{db:8s} E={args.db_engines} lb W={args.window} ...")
            r = timed_load(args, ctl, args.db_engines, "lb", args.window)
            r.update(suite="databases", db=db, engines=args.db_engines, mode="lb",
                     window=args.window)
            results.append(r)
            note("   " + short(r))
    return results


def registration(args, workdir, note):
    results = []
    for kind in args.kinds:
        ctl = Controller(kind, args, workdir, "reg")
        note(f"registration: {LABEL[kind]} with {args.reg_engines} engines ...")
        try:
            ctl.start()
            cpu_start = tree_cpu(ctl.pid)
            r = run_loadgen(args, ctl, ["--registration-only", "--engines", str(args.reg_engines),
                                        "--seconds", str(args.reg_watch), "--timeout",
                                        str(max(args.timeout, 120))],
                            deadline_s=max(args.timeout, 120) * 2 + args.reg_watch + 60,
                            quiesce=False)
            if "cpu_at_registered_s" in r:
                r["registration_cpu_s"] = r["cpu_at_registered_s"] - cpu_start
            if "controller_cpu_s" in r and r.get("watch_s"):
                # Heartbeat upkeep while nothing else happens: CPU share of one core.
                r["heartbeat_cpu_pct"] = 100.0 * r["controller_cpu_s"] / r["watch_s"]
        except (RuntimeError, OSError) as e:
            r = {"controller": kind, "status": "failed", "fail": str(e)}
        finally:
            ctl.stop()
        r.update(suite="registration", engines=args.reg_engines)
        results.append(r)
        note("   " + short(r))
    return results


# ---- real client and engines ---------------------------------------------------------------------

REAL_WORKLOADS = ("lb_apply", "lb_map", "direct_apply")


def real_client(argv):
    """Run inside a child process: the real ipyparallel Client against a running cluster. Prints
    {"event":"start"|"end", ...} around each workload and waits for a line on stdin after each,
    so that the parent can sample the controller; then one result line."""
    p = argparse.ArgumentParser()
    p.add_argument("--profile-dir", required=True)
    p.add_argument("--engines", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--window", type=int, required=True)
    a = p.parse_args(argv)
    import ipyparallel as ipp  # imported here: the parent process does not need it
    from collections import deque

    def emit(**d):
        print(json.dumps(d), flush=True)

    def go():
        sys.stdin.readline()

    c = ipp.Client(profile_dir=a.profile_dir, timeout=30)
    c.wait_for_engines(a.engines, timeout=120)
    lview = c.load_balanced_view()
    views = [c[i] for i in c.ids]

    def noop():
        return None

    def ident(x):
        return x

    for v in views:  # warm up: every engine has run one task
        v.apply_sync(noop)
    results = {}

    def timed(name, body):
        emit(event="start", name=name)
        go()
        t0 = time.perf_counter()
        r = body()
        r["seconds"] = time.perf_counter() - t0
        r["tasks_per_s"] = r["ok"] / r["seconds"] if r["seconds"] > 0 else 0.0
        results[name] = r
        emit(event="end", name=name)
        go()

    def windowed(submit):
        def body():
            r = {"ok": 0, "errors": 0, "error_sample": None, "lat_ms": []}
            q = deque()

            def collect(ar):
                try:
                    ar.get(timeout=60)
                    r["ok"] += 1
                    md = ar.metadata
                    if md.get("submitted") and md.get("received"):
                        r["lat_ms"].append(
                            (md["received"] - md["submitted"]).total_seconds() * 1e3)
                except ipp.TimeoutError:
                    raise
                except Exception as e:  # a remote error reply: counted, not thrown
                    r["errors"] += 1
                    if r["error_sample"] is None:
                        r["error_sample"] = f"{type(e).__name__}: {e}"[:200]

            for i in range(a.count):
                if len(q) >= a.window:
                    collect(q.popleft())
                q.append(submit(i))
            while q:
                collect(q.popleft())
            lat = sorted(r.pop("lat_ms"))
            if lat:
                r["lat_p50_ms"] = lat[len(lat) // 2]
                r["lat_p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            return r
        return body

    def lb_map():
        r = {"ok": 0, "errors": 0, "error_sample": None}
        try:
            out = lview.map_async(ident, range(a.count)).get(timeout=300)
            r["ok"] = len(out)
        except ipp.TimeoutError:
            raise
        except Exception as e:
            r["errors"] = a.count
            r["error_sample"] = f"{type(e).__name__}: {e}"[:200]
        return r

    try:
        timed("lb_apply", windowed(lambda i: lview.apply_async(noop)))
        timed("lb_map", lb_map)
        timed("direct_apply", windowed(lambda i: views[i % len(views)].apply_async(noop)))
    except ipp.TimeoutError as e:
        emit(status="failed", fail=f"timeout: {e}", workloads=results)
        return 2
    emit(status="ok", workloads=results)
    c.close()
    return 0


def real(args, workdir, note):
    results = []
    for kind in args.kinds:
        ctl = Controller(kind, args, workdir, "real")
        engines = []
        note(f"real: {LABEL[kind]} with {args.real_engines} Python engines ...")
        r = {"controller": kind, "suite": "real", "engines": args.real_engines,
             "window": args.real_window, "count": args.real_count}
        try:
            ctl.start()
            for i in range(args.real_engines):
                log = open(ctl.dir / f"engine{i}.log", "wb")
                engines.append((subprocess.Popen(
                    [args.python, "-m", "ipyparallel.engine", f"--profile-dir={ctl.profile}",
                     "--log-level=30"], env=ctl.env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True), log))
            client = subprocess.Popen(
                [args.python, str(Path(__file__).resolve()), "--_real-client", "--profile-dir",
                 str(ctl.profile), "--engines", str(args.real_engines), "--count",
                 str(args.real_count), "--window", str(args.real_window)],
                env=ctl.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, start_new_session=True)
            cpu = {}
            try:
                for line in LineReader(client, time.monotonic() + 600):
                    try:
                        d = json.loads(line)
                    except ValueError:
                        continue
                    if d.get("event") == "start":
                        wait_quiet(ctl.pid, limit=20)
                        cpu[d["name"]] = tree_cpu(ctl.pid)
                    elif d.get("event") == "end":
                        wait_quiet(ctl.pid)
                        cpu[d["name"]] = tree_cpu(ctl.pid) - cpu[d["name"]]
                    elif "status" in d:
                        r.update(d)
                        break
                    else:
                        continue
                    client.stdin.write("\n")
                    client.stdin.flush()
            finally:
                try:
                    client.stdin.close()
                except OSError:
                    pass
                try:
                    client.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    _stop_group(client)
                err = client.stderr.read()
                client.stdout.close()
                client.stderr.close()
            if "status" not in r:
                r["status"] = "failed"
                r["fail"] = f"client exited {client.returncode}: {err.strip()[-300:]}"
            for name, w in r.get("workloads", {}).items():
                if name in cpu:
                    w["controller_cpu_s"] = cpu[name]
            r["controller_hwm_kb"] = tree_hwm_kb(ctl.pid)
            r["controller_pss_kb"] = tree_pss_kb(ctl.pid)
        except (RuntimeError, OSError, TimeoutError) as e:
            r.update(status="failed", fail=str(e))
        finally:
            for proc, log in engines:
                _stop_group(proc)
                log.close()
            ctl.stop()
        results.append(r)
        note("   " + json.dumps({k: r.get(k) for k in ("controller", "status", "fail")}))
    return results


# ---- reporting ---------------------------------------------------------------------------------


def short(r):
    keys = ("status", "fail", "tasks_per_s", "errors", "lat_p50_us", "controller_cpu_s", "sent",
            "backlog_s", "registration_s", "reg_replies_s", "unregistered", "missed_beats")
    return json.dumps({k: (round(r[k], 3) if isinstance(r.get(k), float) else r.get(k))
                       for k in keys if k in r})


def usable(r):
    """Why a result gives no throughput figure, or None when it does."""
    if r is None:
        return "not run"
    if r.get("status") == "failed":
        return "failed"
    if r.get("errors"):
        return "n/a (errors)"
    if r.get("status") == "protocol_errors":
        return "protocol errors"
    return None


def fmt(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def ratio(a, b, digits=2):
    if not a or not b:
        return "–"
    return f"{a / b:.{digits}f}×"


def cpu10k(r):
    if usable(r) or not r.get("sent") or r.get("controller_cpu_s") is None:
        return None
    return r["controller_cpu_s"] / r["sent"] * 1e4


def mb(kb):
    return kb / 1024 if kb else None


def _sep(head):
    return "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"


def matrix_tables(results):
    py, c = KINDS
    rows = {}
    for r in results:
        rows.setdefault((r["engines"], r["mode"], r["window"]), {})[r["controller"]] = r

    def tps(r, key="tasks_per_s"):
        why = usable(r)
        return why if why else fmt(r.get(key))

    def num(r, key):
        return None if usable(r) else r.get(key)

    def lat(r):
        if usable(r) or r.get("lat_p50_us") is None:
            return "–"
        return f"{r['lat_p50_us'] / 1e3:.2f} / {r['lat_p99_us'] / 1e3:.2f}"

    def any_(r, key):
        return r.get(key) if r else None

    head1 = ("| E | mode | W | Python tasks/s | cparallel tasks/s | ratio c/Py | "
             "Python sustained/s | cparallel sustained/s | ratio c/Py | Python p50 / p99 ms | "
             "cparallel p50 / p99 ms | ZMQ floor tasks/s | other load (cores) |")
    t1 = [head1, _sep(head1)]
    head2 = ("| E | mode | W | Python CPU s/10k | cparallel CPU s/10k | ratio Py/c | "
             "ZMQ floor CPU s/10k | Python peak RSS MB | cparallel peak RSS MB | Python PSS MB | "
             "cparallel PSS MB | Python backlog s | loadgen CPU s/10k (Py run / c run) |")
    t2 = [head2, _sep(head2)]
    for (e, mode, w), by in rows.items():
        a, b, f = by.get(py), by.get(c), by.get(FLOOR)
        bg = [x for x in (any_(a, "other_cpu_cores"), any_(b, "other_cpu_cores")) if x is not None]
        t1.append(f"| {e} | {mode} | {w} | {tps(a)} | {tps(b)} "
                  f"| {ratio(num(b, 'tasks_per_s'), num(a, 'tasks_per_s'))} "
                  f"| {tps(a, 'sustained_per_s')} | {tps(b, 'sustained_per_s')} "
                  f"| {ratio(num(b, 'sustained_per_s'), num(a, 'sustained_per_s'))} "
                  f"| {lat(a)} | {lat(b)} | {tps(f) if f else '–'} "
                  f"| {fmt(max(bg), 2) if bg else '–'} |")
        ca, cb = cpu10k(a), cpu10k(b)

        def lg10k(r):
            if usable(r) or not r.get("sent") or r.get("loadgen_cpu_s") is None:
                return "–"
            return fmt(r["loadgen_cpu_s"] / r["sent"] * 1e4, 2)

        t2.append(f"| {e} | {mode} | {w} | {fmt(ca, 2)} | {fmt(cb, 2)} | {ratio(ca, cb, 1)} "
                  f"| {fmt(cpu10k(f), 2)} "
                  f"| {fmt(mb(any_(a, 'controller_hwm_kb')), 1)} "
                  f"| {fmt(mb(any_(b, 'controller_hwm_kb')), 1)} "
                  f"| {fmt(mb(any_(a, 'controller_pss_kb')), 1)} "
                  f"| {fmt(mb(any_(b, 'controller_pss_kb')), 1)} "
                  f"| {fmt(any_(a, 'backlog_s'), 1)} | {lg10k(a)} / {lg10k(b)} |")
    return t1, t2


def spread_table(results):
    """With --repeat: every run's tasks/s per cell, which the median stands for."""
    rows = {}
    for r in results:
        if r.get("runs_tasks_per_s"):
            rows.setdefault((r["engines"], r["mode"], r["window"]), {})[r["controller"]] = r
    if not rows:
        return []
    head = "| E | mode | W | Python runs tasks/s | cparallel runs tasks/s | ZMQ floor runs tasks/s |"
    t = [head, _sep(head)]
    for (e, mode, w), by in rows.items():
        cells = [", ".join(fmt(x) for x in by[k]["runs_tasks_per_s"]) if k in by else "–"
                 for k in KINDS + (FLOOR,)]
        t.append(f"| {e} | {mode} | {w} | " + " | ".join(cells) + " |")
    return t


def databases_table(results):
    py, c = KINDS
    by = {}
    for r in results:
        by.setdefault(r["db"], {})[r["controller"]] = r
    base = {k: by.get("dictdb", {}).get(k) for k in KINDS}

    def tps(r):
        why = usable(r)
        return why if why else fmt(r.get("tasks_per_s"))

    def num(r):
        return None if usable(r) else r.get("tasks_per_s")

    head = ("| backend | Python tasks/s | cparallel tasks/s | ratio c/Py | Python CPU s/10k | "
            "cparallel CPU s/10k | Python: share of its DictDB tasks/s | "
            "cparallel: share of its DictDB tasks/s |")
    lines = [head, _sep(head)]
    for db, rs in by.items():
        a, b = rs.get(py), rs.get(c)
        share = []
        for k, r in ((py, a), (c, b)):
            x, y = num(r), num(base[k])
            share.append(f"{100 * x / y:.0f} %" if x and y else "–")
        lines.append(f"| {db} | {tps(a)} | {tps(b)} | {ratio(num(b), num(a))} "
                     f"| {fmt(cpu10k(a), 2)} | {fmt(cpu10k(b), 2)} | {share[0]} | {share[1]} |")
    return lines


def registration_table(results):
    head = ("| controller | engines | all registration replies s | all engines listed s | "
            "refused | unregistered | missed beats | max ping gap ms | CPU to register s | "
            "heartbeat CPU % | peak RSS MB | PSS MB |")
    lines = [head, _sep(head)]
    for r in results:
        if r.get("status") == "failed":
            lines.append(f"| {LABEL[r['controller']]} | {r['engines']} | failed: "
                         f"{r.get('fail')} | | | | | | | | | |")
            continue
        lines.append(
            f"| {LABEL[r['controller']]} | {r['engines']} | {fmt(r.get('reg_replies_s'), 2)} "
            f"| {fmt(r.get('registration_s'), 2)} | {r.get('reg_errors')} "
            f"| {r.get('unregistered')} | {r.get('missed_beats')} "
            f"| {fmt(r.get('max_ping_gap_ms'), 0)} | {fmt(r.get('registration_cpu_s'), 2)} "
            f"| {fmt(r.get('heartbeat_cpu_pct'), 1)} | {fmt(mb(r.get('controller_hwm_kb')), 1)} "
            f"| {fmt(mb(r.get('controller_pss_kb')), 1)} |")
    return lines


def real_table(results):
    by = {r["controller"]: r for r in results}
    py, c = KINDS
    head = ("| workload | Python tasks/s | cparallel tasks/s | ratio c/Py | Python p50 / p99 ms | "
            "cparallel p50 / p99 ms | Python CPU s/10k | cparallel CPU s/10k | ratio Py/c |")
    lines = [head, _sep(head)]
    for name in REAL_WORKLOADS:
        ws = {}
        for k in (py, c):
            r = by.get(k, {})
            w = r.get("workloads", {}).get(name)
            ws[k] = (w, r)

        def tps(k):
            w, r = ws[k]
            if w is None:
                return "failed" if r.get("status") == "failed" else "not run"
            if w.get("errors"):
                return "n/a (errors)"
            return fmt(w.get("tasks_per_s"))

        def num(k, key):
            w, _ = ws[k]
            return None if w is None or w.get("errors") else w.get(key)

        def lat(k):
            a, b = num(k, "lat_p50_ms"), num(k, "lat_p99_ms")
            return "–" if a is None else f"{a:.2f} / {b:.2f}"

        def c10k(k):
            w, _ = ws[k]
            if w is None or w.get("errors") or not w.get("ok") or w.get("controller_cpu_s") is None:
                return None
            return w["controller_cpu_s"] / w["ok"] * 1e4

        lines.append(f"| {name} | {tps(py)} | {tps(c)} | "
                     f"{ratio(num(c, 'tasks_per_s'), num(py, 'tasks_per_s'))} | {lat(py)} | "
                     f"{lat(c)} | {fmt(c10k(py), 2)} | {fmt(c10k(c), 2)} | "
                     f"{ratio(c10k(py), c10k(c), 1)} |")
    return lines


def git_rev():
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked=no"],
                               capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def report(args, meta, res):
    out = [f"# cparallel vs Python controller ({meta['date']})", "",
           f"cparallel {meta['rev']}, ipyparallel {meta['ipyparallel']}, {meta['cores']} cores, "
           f"load average {meta['load_before']:.2f} before / {meta['load_after']:.2f} after, "
           f"--ping={args.ping}" + (f", --hwm={args.hwm}" if args.hwm is not None else "") +
           f", {meta['minutes']:.1f} min.", ""]
    if res.get("matrix"):
        t1, t2 = matrix_tables(res["matrix"])
        runs = (f", the median of {args.repeat} runs per controller and cell (by tasks/s)"
                if args.repeat > 1 else "")
        out += [f"## Fake engines (cpar_loadgen), {args.seconds:g} s per run{runs}", "",
                "### Throughput and latency", ""] + t1 + [""]
        out += ["tasks/s: successful replies per second while W requests were kept in flight "
                "(a run whose replies were errors shows n/a). sustained/s: requests divided by "
                "the time from the first request until the controller went idle again, which "
                "includes the Python hub's backlog. p50/p99: send-to-reply round trip. ZMQ "
                "floor: the same load through cpar_zmqfloor, which only relays frames (no "
                "signature check, parsing, scheduling or records) and holds each engine to "
                f"--hwm={args.floor_hwm} as the controllers do (0: no limit), so what ZeroMQ "
                "and the generator allow on this machine. Other load: cores used by other processes on "
                "the machine meanwhile.", ""]
        out += ["### Controller CPU and memory", ""] + t2 + [""]
        out += ["CPU s/10k: controller CPU seconds (whole process tree) per 10,000 requests, "
                "from the first request until the controller went idle. Peak RSS: VmHWM summed "
                "over the process tree (counts pages shared by the Python controller's forked "
                "processes once per process). PSS: proportional set size summed over the tree "
                "at the end of the run. Backlog: seconds the Python controller kept working "
                "after the last reply.", ""]
        spread = spread_table(res["matrix"])
        if spread:
            out += ["### Every run of each cell", ""] + spread + [
                "", "In the order they ran; the tables above show the median run's numbers.", ""]
    if res.get("databases"):
        out += [f"## Task databases: E={args.db_engines}, load-balanced, W={args.window}, "
                f"{args.seconds:g} s per run", ""]
        out += databases_table(res["databases"])
        out += ["", "Each backend as selected by its flag (--dictdb, --sqlitedb, --nodb, "
                "--mongodb); the SQLite file lives in the run's temporary profile. The last "
                "two columns compare each controller with itself on DictDB.", ""]
    if res.get("registration"):
        out += [f"## Registration of {args.reg_engines} fake engines, then {args.reg_watch:g} s "
                "of heartbeat", ""]
        out += registration_table(res["registration"])
        out += [""]
    if res.get("real"):
        out += [f"## Real client and {args.real_engines} real engines, {args.real_count} tasks "
                f"per workload, W={args.real_window}", ""]
        out += real_table(res["real"])
        out += [""]
    return "\n".join(out)


# ---- main --------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--matrix", action="store_true", help="run the fake-engine matrix")
    p.add_argument("--registration", action="store_true", help="run the registration suite")
    p.add_argument("--real", action="store_true", help="run the real client/engines suite")
    p.add_argument("--databases", action="store_true",
                   help="run the task-database suite (--dbs)")
    p.add_argument("--dbs", default="dictdb,sqlitedb,nodb",
                   help="backends of the database suite, as controller flags "
                        "(dictdb, sqlitedb, nodb, mongodb)")
    p.add_argument("--db-engines", type=int, default=16, help="engines of the database suite")
    p.add_argument("--mongodb-url",
                   help="mongodb:// URI of a server for --dbs=...,mongodb (both controllers)")
    p.add_argument("--quick", action="store_true",
                   help="smaller everything (E=1,16; 2 s runs; 200 engines registering)")
    p.add_argument("--build", type=Path, default=Path(os.environ.get("CPAR_BUILD_DIR",
                                                                     REPO / "build")),
                   help="cparallel build tree (bin/cpcontroller, bin/cpar_loadgen)")
    p.add_argument("--cpcontroller", type=Path, help="cpcontroller to test")
    p.add_argument("--loadgen", type=Path, help="cpar_loadgen to use")
    p.add_argument("--python", default=sys.executable,
                   help="Python with ipyparallel, for the Python controller, engines and client")
    p.add_argument("--only", choices=KINDS, help="run one controller only")
    p.add_argument("--no-floor", dest="floor", action="store_false",
                   help="leave the ZeroMQ floor (cpar_zmqfloor) out of the matrix")
    p.add_argument("--engines", default="1,4,16,64", help="engine counts of the matrix")
    p.add_argument("--modes", default="lb,direct", help="modes of the matrix")
    p.add_argument("--window", type=int, default=64, help="requests in flight (matrix)")
    p.add_argument("--seconds", type=float, default=3.0, help="measured seconds per matrix run")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per matrix cell and controller; the median (by tasks/s) is shown")
    p.add_argument("--timeout", type=float, default=60.0, help="loadgen --timeout")
    p.add_argument("--ping", type=int, default=3000, help="controllers' --ping (ms)")
    p.add_argument("--hwm", type=int, help="controllers' --hwm (default: theirs, 1)")
    p.add_argument("--floor-hwm", type=int,
                   help="the ZeroMQ floor's --hwm (default: the controllers', 1)")
    p.add_argument("--reg-engines", type=int, default=1000)
    p.add_argument("--reg-watch", type=float, default=20.0,
                   help="seconds of heartbeat after registration")
    p.add_argument("--real-engines", type=int, default=4)
    p.add_argument("--real-count", type=int, default=2000, help="tasks per real workload")
    p.add_argument("--real-window", type=int, default=16)
    p.add_argument("--markdown", type=Path, help="also write the tables to this file")
    p.add_argument("--json", type=Path, help="also write every raw result to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary profiles and logs")
    a = p.parse_args(argv)
    a.cpcontroller = a.cpcontroller or a.build / "bin" / "cpcontroller"
    a.loadgen = a.loadgen or a.build / "bin" / "cpar_loadgen"
    a.floor_bin = a.loadgen.parent / "cpar_zmqfloor"
    if a.floor_hwm is None:
        a.floor_hwm = a.hwm if a.hwm is not None else 1
    if a.repeat < 1:
        p.error("--repeat must be 1 or more")
    a.engines = [int(x) for x in a.engines.split(",") if x]
    a.modes = [x for x in a.modes.split(",") if x]
    if a.quick:
        if a.engines == [1, 4, 16, 64]:
            a.engines = [1, 16]
        a.seconds = min(a.seconds, 2.0)
        a.reg_engines = min(a.reg_engines, 200)
        a.reg_watch = min(a.reg_watch, 5.0)
        a.real_count = min(a.real_count, 300)
    if not (a.matrix or a.registration or a.real or a.databases):
        a.matrix = a.registration = a.real = a.databases = True
    a.dbs = [x for x in a.dbs.split(",") if x]
    for d in a.dbs:
        if d not in DB_FLAGS:
            p.error(f"unknown database {d} (one of {', '.join(DB_FLAGS)})")
    if "mongodb" in a.dbs and not a.mongodb_url:
        p.error("--dbs=mongodb needs --mongodb-url")
    a.kinds = (a.only,) if a.only else KINDS
    for m in a.modes:
        if m not in ("lb", "direct"):
            p.error(f"unknown mode {m}")
    return a


def main(argv):
    if argv[:1] == ["--_real-client"]:
        return real_client(argv[1:])
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the controllers and generators we started are stopped.
    signal.signal(signal.SIGTERM, lambda signo, frame: sys.exit(128 + signo))
    need = [args.loadgen] if (args.matrix or args.registration or args.databases) else []
    if "cparallel" in args.kinds:
        need.append(args.cpcontroller)
    if args.matrix and args.floor:
        need.append(args.floor_bin)
    for path in need:
        if not os.access(path, os.X_OK):
            sys.exit(f"run.py: {path} is not there; build it first (see bench/README.md)")

    def note(text):
        print(text, file=sys.stderr, flush=True)

    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "rev": git_rev(),
            "cores": os.cpu_count(), "load_before": loadavg()}
    try:
        meta["ipyparallel"] = subprocess.run(
            [args.python, "-c", "import ipyparallel; print(ipyparallel.__version__)"],
            capture_output=True, text=True, timeout=60).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        meta["ipyparallel"] = "?"
    t0 = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="cpar-bench-")
    res = {}
    try:
        if args.matrix:
            res["matrix"] = matrix(args, workdir, note)
        if args.databases:
            res["databases"] = databases(args, workdir, note)
        if args.registration:
            res["registration"] = registration(args, workdir, note)
        if args.real:
            res["real"] = real(args, workdir, note)
    finally:
        if args.keep:
            note(f"profiles and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    meta["load_after"] = loadavg()
    meta["minutes"] = (time.monotonic() - t0) / 60
    text = report(args, meta, res)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "results": res}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
