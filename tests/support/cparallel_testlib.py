"""Shared helpers for cparallel's compat tests: real controllers, real engines, real clients.

Nothing here mocks anything. A ``Cluster`` is a temporary IPython dir with one profile, a
controller process started with ipcontroller's command line, and ipyparallel engine processes,
each in its own process group with its output in a log file of the temporary dir.

Environment:
  CPAR_CONTROLLER   controller command line (shell quoting); default: the Python ipcontroller
                    run by this interpreter (``<python> -m ipyparallel.controller``).
  CPAR_CONTROLLER_KIND  "c" or "python" to override the guess made from CPAR_CONTROLLER.
  CPAR_PYTHON       interpreter for engines; default: the one running the tests.
  CPAR_KEEP_TMP     set to 1 to keep the temporary dirs (their paths are printed).
"""
import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# --------------------------------------------------------------------------------------------
# What is under test


def python_executable():
    return os.environ.get("CPAR_PYTHON") or sys.executable


def controller_command():
    """The controller command as an argv list (without ipcontroller options)."""
    raw = os.environ.get("CPAR_CONTROLLER", "").strip()
    if raw:
        return shlex.split(raw)
    return [python_executable(), "-m", "ipyparallel.controller"]


def controller_is_cpcontroller():
    kind = os.environ.get("CPAR_CONTROLLER_KIND", "").strip().lower()
    if kind:
        return kind in ("c", "cpcontroller")
    return any(os.path.basename(tok).startswith("cpcontroller") for tok in controller_command())


def controller_description():
    return "%s (%s)" % (
        " ".join(controller_command()),
        "cpcontroller" if controller_is_cpcontroller() else "not cpcontroller",
    )


# The cparallel trait that caps one message's size; tests run cpcontroller with a small cap so
# that "too large" can be provoked while an 8 MiB argument still goes through.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024

# --------------------------------------------------------------------------------------------
# Process bookkeeping: every process we start, and every orphan of theirs, stays ours.

_STARTED = []  # Popen objects of every controller/engine started by this process


def become_subreaper():
    """Make orphaned descendants (e.g. an engine's nanny) re-parent to this process, so the
    session-end check can see and reap them. Linux only; a no-op elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except Exception:
        pass


def _proc_children(pid):
    """Direct children of pid as {pid: (state, cmdline)} from /proc (no psutil needed)."""
    kids = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return kids
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        # "pid (comm) state ppid ..." where comm may contain spaces and parens
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) < 2 or int(rest[1]) != pid:
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            cmd = "?"
        kids[int(name)] = (rest[0], cmd)
    return kids


def snapshot_children():
    """Children of this process that exist before the tests start (not ours to judge)."""
    return set(_proc_children(os.getpid()))


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


def leftover_children(ignore=(), grace=10.0):
    """Live (non-zombie) children of this process that are not in `ignore`, after waiting up
    to `grace` seconds for them to finish on their own. Zombies are reaped. Returns
    {pid: cmdline}."""
    deadline = time.time() + grace
    while True:
        live = {}
        for pid, (state, cmd) in _proc_children(os.getpid()).items():
            if pid in ignore:
                continue
            if state in ("Z", "X"):
                _reap(pid)
                continue
            live[pid] = cmd
        if not live or time.time() >= deadline:
            return live
        time.sleep(0.2)


def kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.2)
    for pid in pids:
        _reap(pid)


def kill_group(proc, sig):
    """Signal the process group of a Popen started with start_new_session=True."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all_started():
    """Last-resort cleanup of every process group we started."""
    for p in list(_STARTED):
        if p.poll() is None:
            kill_group(p, signal.SIGKILL)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        else:
            # the group may still hold children
            kill_group(p, signal.SIGKILL)


# --------------------------------------------------------------------------------------------
# Small utilities


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """Poll predicate() until it is truthy; return its value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def tail(path, lines=60):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


def read_known_failures(path):
    """Parse known_failures.txt: '<nodeid>  # issue <N>: <reason>' per line; '#' lines are
    comments. Returns {nodeid: 'issue N: reason'}; a line without a reason is an error."""
    known = {}
    if not os.path.exists(path):
        return known
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            nodeid, sep, reason = line.partition("#")
            nodeid, reason = nodeid.strip(), reason.strip()
            if not sep or not re.match(r"issue \d+: \S", reason):
                raise ValueError(
                    "%s:%d: expected '<nodeid>  # issue <N>: <reason>', got %r" % (path, lineno, line)
                )
            known[nodeid] = reason
    return known


# --------------------------------------------------------------------------------------------
# Controller, engines, cluster


def _clean_env(ipython_dir):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("IPP_") or k in ("CPAR_CONTROLLER", "CPAR_CONTROLLER_KIND"):
            env.pop(k)
    env["IPYTHONDIR"] = ipython_dir
    env["PYTHONUNBUFFERED"] = "1"
    # a zone far from UTC, so a controller writing local time as "...Z" shows up in timestamps
    env["TZ"] = "IST-5:30"
    return env


class Controller:
    """One controller process for a profile dir, with its log in `log_path`."""

    def __init__(self, profile_dir, log_path, env, cluster_id="", extra_args=(), ping=250):
        self.profile_dir = profile_dir
        self.cluster_id = cluster_id
        self.log_path = log_path
        self.env = env
        self.is_c = controller_is_cpcontroller()
        args = [
            "--profile-dir", profile_dir,
            "--cluster-id", cluster_id,
            "--log-level=10",
            "--ping=%d" % ping,
            "--dictdb",
        ]
        if self.is_c:
            args.append("--IPController.max_message_size=%d" % MAX_MESSAGE_SIZE)
        self.argv = controller_command() + args + list(extra_args)
        self.proc = None
        self.returncode = None

    @property
    def _infix(self):
        return "-" + self.cluster_id if self.cluster_id else ""

    @property
    def client_file(self):
        return os.path.join(self.profile_dir, "security", "ipcontroller%s-client.json" % self._infix)

    @property
    def engine_file(self):
        return os.path.join(self.profile_dir, "security", "ipcontroller%s-engine.json" % self._infix)

    def start(self, timeout=15):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.env, cwd=os.path.dirname(self.log_path), start_new_session=True,
            )
        finally:
            log.close()
        _STARTED.append(self.proc)
        self.wait_for_files(timeout)
        return self

    def wait_for_files(self, timeout=15):
        deadline = time.monotonic() + timeout
        while True:
            if os.path.exists(self.client_file) and os.path.exists(self.engine_file):
                # a file that exists must already be complete JSON (written atomically)
                with open(self.client_file) as f:
                    json.load(f)
                with open(self.engine_file) as f:
                    json.load(f)
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "controller exited with status %s before writing its connection files;"
                    " log:\n%s" % (self.proc.returncode, self.log_tail())
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "controller wrote no connection files within %s s; log:\n%s"
                    % (timeout, self.log_tail())
                )
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def connection_info(self, which="client"):
        with open(self.client_file if which == "client" else self.engine_file) as f:
            return json.load(f)

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=80):
        return tail(self.log_path, lines)

    def wait(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal the controller (the process, not its group) and wait. Returns its exit status,
        or None when it had to be SIGKILLed. Whatever is left of its group is killed after."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            rc = self.wait(timeout)
            if rc is None:
                kill_group(self.proc, signal.SIGKILL)
                self.proc.wait(5)
                self.returncode = None
                kill_group(self.proc, signal.SIGKILL)
                return None
        self.returncode = self.proc.returncode
        kill_group(self.proc, signal.SIGKILL)  # stray children of the controller, if any
        return self.returncode


class Engine:
    """One real ipyparallel engine process (own process group, log file)."""

    def __init__(self, profile_dir, log_path, env, cluster_id="", extra_args=()):
        self.log_path = log_path
        self.argv = [
            python_executable(), "-m", "ipyparallel.engine",
            "--profile-dir", profile_dir,
            "--log-level=20",
        ]
        if cluster_id:
            self.argv += ["--cluster-id", cluster_id]
        self.argv += list(extra_args)
        self.env = env
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.env, cwd=os.path.dirname(self.log_path), start_new_session=True,
            )
        finally:
            log.close()
        _STARTED.append(self.proc)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        """Signal the engine process itself (its nanny notices and tells the controller)."""
        try:
            self.proc.send_signal(sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout=5):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            kill_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        kill_group(self.proc, signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def log_tail(self, lines=40):
        return tail(self.log_path, lines)


ACTIVE_CLUSTERS = []  # clusters currently running, for log tails on failure


class Cluster:
    """A temporary IPython dir + profile, one controller, n engines and clients."""

    def __init__(self, name="compat", controller_args=(), ping=250, cluster_id=""):
        self.tmp = tempfile.mkdtemp(prefix="cpar-%s-" % name)
        self.ipython_dir = os.path.join(self.tmp, "ipython")
        self.profile_dir = os.path.join(self.ipython_dir, "profile_%s" % name)
        os.makedirs(self.profile_dir)
        self.env = _clean_env(self.ipython_dir)
        self.cluster_id = cluster_id
        self.controller = Controller(
            self.profile_dir, os.path.join(self.tmp, "controller.log"), self.env,
            cluster_id=cluster_id, extra_args=controller_args, ping=ping,
        )
        self.engines = []
        self.clients = []
        self.stopped = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, n_engines=2, timeout=30):
        ACTIVE_CLUSTERS.append(self)
        self.controller.start()
        if n_engines:
            self.start_engines(n_engines)
            rc = self.client()
            rc.wait_for_engines(n_engines, timeout=timeout)
        return self

    def start_or_fail(self, n_engines=2):
        """start(), for a fixture: when it fails, tear down and fail the test with the report."""
        try:
            return self.start(n_engines=n_engines)
        except BaseException:
            report = self.report()
            self.stop()
            self.cleanup()
            import pytest

            pytest.fail("cluster did not start:\n%s" % report)

    def start_engines(self, n):
        new = []
        for _ in range(n):
            i = len(self.engines)
            e = Engine(self.profile_dir, os.path.join(self.tmp, "engine%d.log" % i), self.env,
                       cluster_id=self.cluster_id)
            e.start()
            self.engines.append(e)
            new.append(e)
        return new

    def client(self, **kw):
        import ipyparallel as ipp

        kw.setdefault("timeout", 10)
        rc = ipp.Client(self.controller.client_file, **kw)
        self.clients.append(rc)
        # The client's iopub SUB connects in the background, and a PUB drops what it publishes
        # before the subscription arrives (ZeroMQ's slow joiner; the same with the Python
        # controller). A test that sends at once and then waits for output (execute with
        # block=True waits for the engines' idle status on iopub) could wait forever.
        time.sleep(0.1)
        return rc

    def engine_by_id(self, rc, eid):
        """The Engine whose process registered as `eid` (matched through the engine's pid)."""
        pid = rc[eid].apply_sync(os.getpid)
        for e in self.engines:
            if e.pid == pid:
                return e
        raise LookupError("no engine process with pid %s" % pid)

    def close_clients(self):
        for rc in self.clients:
            try:
                rc.close(linger=0)
            except Exception:
                pass
        self.clients = []

    def stop(self):
        """Tear down: clients, engines (SIGTERM then SIGKILL), controller (SIGTERM).
        Returns (controller exit status, connection files still present)."""
        if self.stopped:
            return self.controller.returncode, self.leftover_files()
        self.stopped = True
        self.close_clients()
        for e in self.engines:
            if e.alive():
                kill_group(e.proc, signal.SIGTERM)
        for e in self.engines:
            e.stop()
        rc = self.controller.stop()
        if self in ACTIVE_CLUSTERS:
            ACTIVE_CLUSTERS.remove(self)
        return rc, self.leftover_files()

    def finish(self):
        """Stop, clean up and check what a user sees: controller exits 0, files are gone."""
        rc, files = self.stop()
        report = self.report()
        self.cleanup()
        assert rc == 0, "controller exit status %r (expected 0 on SIGTERM)\n%s" % (rc, report)
        assert not files, "connection files left after controller exit: %s\n%s" % (files, report)

    def leftover_files(self):
        return [p for p in (self.controller.client_file, self.controller.engine_file)
                if os.path.exists(p)]

    def cleanup(self):
        if os.environ.get("CPAR_KEEP_TMP") == "1":
            sys.stderr.write("cparallel: keeping %s\n" % self.tmp)
            return
        shutil.rmtree(self.tmp, ignore_errors=True)

    def report(self, lines=80):
        parts = ["controller %s (log %s, %s):\n%s" % (
            " ".join(self.controller.argv), self.controller.log_path,
            "running" if self.controller.alive() else "exit status %s" % (
                self.controller.proc.returncode if self.controller.proc else "not started"),
            self.controller.log_tail(lines))]
        for i, e in enumerate(self.engines):
            parts.append("engine process %d (pid %s, %s):\n%s" % (
                i, e.pid if e.proc else "-",
                "running" if e.alive() else "exit status %s" % (e.proc.returncode if e.proc else "-"),
                e.log_tail(15)))
        return "\n\n".join(parts)
