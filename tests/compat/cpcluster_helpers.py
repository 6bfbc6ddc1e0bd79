"""Helpers shared by the compat tests that drive `cpcluster` with a launcher
(test_launch_batch.py, test_launch_shims.py, test_launch_mpi_ssh.py): the cpcluster program, a
root test bed of tests/support/testbeds started once per module, a cluster in a scratch
directory, and waiting for a condition.

cpcluster comes from CPAR_CPCLUSTER (set by CTest).
"""
import json
import os
import subprocess
import tempfile
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SUPPORT = os.path.join(os.path.dirname(HERE), "support")
TESTBEDS = os.path.join(SUPPORT, "testbeds")
SHIMS = os.path.join(SUPPORT, "shims")


def cpcluster():
    path = os.environ.get("CPAR_CPCLUSTER", "")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("CPAR_CPCLUSTER does not name an executable cpcluster (got %r)" % path)
    return path


def wait_until(pred, timeout, what):
    """Poll pred() until it is true; fail the test after `timeout` seconds, saying `what` (a
    string, or a callable that returns one) was waited for."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.3)
    pytest.fail("timed out after %d s waiting for %s" % (timeout, what() if callable(what) else what))


class Bed:
    """One test bed (tests/support/testbeds/<name>.sh): started on first use, and stopped with
    <name>-stop.sh by stop() (at the end of the module) when it has a stop and was started.

    env: variables for the start script; stop_env: for the stop script; why_root: the reason
    given when the tests do not run as root; running: a callable that says whether the bed is
    already up, someone else's, which is then left running."""

    def __init__(self, name, stop=True, env=None, stop_env=None, why_root="it needs root",
                 running=None):
        self.name = name
        self.has_stop = stop
        self.env = env or {}
        self.stop_env = stop_env or {}
        self.why_root = why_root
        self.running = running
        self.state = None  # None: not tried; True: up; str: why it is not
        self.started = False

    def up(self):
        if self.state is None:
            self.state = self._start()
        if self.state is not True:
            pytest.fail("%s test bed cannot start: %s" % (self.name, self.state))

    def _start(self):
        if os.geteuid() != 0:
            return "needs root (%s)" % self.why_root
        script = os.path.join(TESTBEDS, self.name + ".sh")
        if self.running and self.running():
            self.has_stop = False  # someone else's: leave it running
        try:
            p = subprocess.run(["bash", script], env=dict(os.environ, **self.env),
                               capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return "%s did not finish within 300 s" % script
        self.started = True
        if p.returncode != 0:
            return "%s exited %d:\n%s%s" % (script, p.returncode, p.stdout[-2000:],
                                            p.stderr[-2000:])
        return True

    def stop(self):
        if self.started and self.has_stop:
            subprocess.run(["bash", os.path.join(TESTBEDS, self.name + "-stop.sh")],
                           env=dict(os.environ, **self.stop_env), capture_output=True,
                           timeout=120)


class CpCluster:
    """A cpcluster-managed cluster in a scratch work directory `tmp` (made with `prefix`), with
    its profile directory at `tmp`/`profile` (security/ and log/ made), IPYTHONDIR `tmp`/ipython,
    and a cluster id <name>-<6 hex digits>. `env` adds to the environment of cpcluster, from
    which the IPP_ variables are removed. Subclasses say what report() shows."""

    def __init__(self, name, prefix, profile=os.path.join("ipython", "profile_default"), **env):
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.ipython_dir = os.path.join(self.tmp, "ipython")
        self.profile_dir = os.path.join(self.tmp, profile)
        os.makedirs(os.path.join(self.profile_dir, "security"))
        os.makedirs(os.path.join(self.profile_dir, "log"))
        self.cluster_id = "%s-%s" % (name, uuid.uuid4().hex[:6])
        self.env = dict(os.environ, IPYTHONDIR=self.ipython_dir, PYTHONUNBUFFERED="1", **env)
        for k in list(self.env):
            if k.startswith("IPP_"):
                self.env.pop(k)

    def report(self):
        return "cluster file: %s" % json.dumps(self.cluster_file(), indent=1)

    def run(self, *args, timeout=120, check=True):
        argv = [cpcluster()] + list(args) + ["--profile-dir=" + self.profile_dir,
                                            "--cluster-id=" + self.cluster_id]
        p = subprocess.run(argv, cwd=self.tmp, env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if check and p.returncode != 0:
            pytest.fail("%s exited %d\nstdout:\n%s\nstderr:\n%s\n%s" % (
                " ".join(argv), p.returncode, p.stdout, p.stderr, self.report()))
        return p

    def cluster_file(self):
        path = os.path.join(self.profile_dir, "security", "cluster-%s.json" % self.cluster_id)
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def client(self, n, timeout=90):
        """A client of the cluster once its connection file is there and n engines registered."""
        import ipyparallel as ipp

        deadline = time.time() + timeout
        cf = os.path.join(self.profile_dir, "security",
                          "ipcontroller-%s-client.json" % self.cluster_id)
        while not os.path.exists(cf):
            if time.time() > deadline:
                pytest.fail("no connection file %s after %d s\n%s" % (cf, timeout, self.report()))
            time.sleep(0.2)
        rc = ipp.Client(cf, timeout=max(5, deadline - time.time()))
        try:
            rc.wait_for_engines(n, timeout=max(5, deadline - time.time()))
        except Exception as e:
            rc.close()
            pytest.fail("%d engines did not register: %s\n%s" % (n, e, self.report()))
        return rc

    def our_processes(self, marks=None):
        """Processes (but this one) whose command line names one of `marks` (default: this
        cluster's id): engines, controller, cpcluster. {pid: command line}"""
        marks = marks or (self.cluster_id,)
        found = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(m in cmd for m in marks) and int(pid) != os.getpid():
                found[int(pid)] = cmd
        return found
