"""cpcluster with the batch launchers on real schedulers: Slurm and Grid Engine.

Each test starts a cluster with `cpcluster start --daemonize` (engines, and in one test the
controller too, as batch jobs), runs work through the real Python client on the engines those
jobs started, and checks that `cpcluster stop` leaves no job in the queue and no process behind.
One more test cancels the engines' job from outside (scancel) and checks that `cpcluster list`
and the cluster's log report it.

The test beds (tests/support/testbeds/{slurm,sge}.sh) need root; each is started once for this
module and stopped at its end (the stop scripts stop only what the start scripts started). A bed
that cannot start fails the tests that need it, with the reason.

cpcluster comes from CPAR_CPCLUSTER (set by CTest).
"""
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTBEDS = os.path.join(os.path.dirname(HERE), "support", "testbeds")
SGE_ENV = {"SGE_ROOT": "/var/lib/gridengine", "SGE_CELL": "default"}


def _cpcluster():
    path = os.environ.get("CPAR_CPCLUSTER", "")
    if not path or not os.access(path, os.X_OK):
        pytest.fail("CPAR_CPCLUSTER does not name an executable cpcluster (got %r)" % path)
    return path


class Bed:
    """One test bed: started on first use, stopped at the end of the module."""

    def __init__(self, name):
        self.name = name
        self.state = None  # None: not tried; True: up; str: why it is not
        self.started = False
        # the stop script stops what the start script started for this owner: a bed that was
        # already running when the module began is left running
        self.owner = "compat-%d" % os.getpid()

    def up(self):
        if self.state is None:
            self.state = self._start()
        if self.state is not True:
            pytest.fail("%s test bed cannot start: %s" % (self.name, self.state))

    def _start(self):
        if os.geteuid() != 0:
            return "needs root (its daemons are started as root)"
        script = os.path.join(TESTBEDS, self.name + ".sh")
        env = dict(os.environ, SLURM_SMOKE="0", SGE_SMOKE="0", CPAR_TESTBED_OWNER=self.owner,
                   **SGE_ENV)
        try:
            p = subprocess.run(["bash", script], env=env, capture_output=True, text=True,
                               timeout=300)
        except subprocess.TimeoutExpired:
            return "%s did not finish within 300 s" % script
        self.started = True
        if p.returncode != 0:
            return "%s exited %d:\n%s%s" % (script, p.returncode, p.stdout[-2000:],
                                            p.stderr[-2000:])
        return True

    def stop(self):
        if self.started:
            subprocess.run(["bash", os.path.join(TESTBEDS, self.name + "-stop.sh")],
                           env=dict(os.environ, CPAR_TESTBED_OWNER=self.owner, **SGE_ENV),
                           capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def beds():
    b = {"slurm": Bed("slurm"), "sge": Bed("sge")}
    yield b
    for bed in b.values():
        bed.stop()


class CpCluster:
    """A cpcluster-managed cluster in a fresh IPYTHONDIR, run from a scratch work directory."""

    def __init__(self, name):
        self.tmp = tempfile.mkdtemp(prefix="cpar-batch-")
        self.ipython_dir = os.path.join(self.tmp, "ipython")
        self.profile_dir = os.path.join(self.ipython_dir, "profile_default")
        os.makedirs(os.path.join(self.profile_dir, "security"))
        os.makedirs(os.path.join(self.profile_dir, "log"))
        self.cluster_id = "%s-%s" % (name, uuid.uuid4().hex[:6])
        self.env = dict(os.environ, IPYTHONDIR=self.ipython_dir, PYTHONUNBUFFERED="1", **SGE_ENV)
        for k in list(self.env):
            if k.startswith("IPP_"):
                self.env.pop(k)
        self.job_ids = []

    def run(self, *args, timeout=120, check=True):
        argv = [_cpcluster()] + list(args) + ["--profile-dir=" + self.profile_dir,
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

    def engine_job_ids(self):
        data = self.cluster_file() or {}
        sets = (data.get("engines") or {}).get("sets") or {}
        return [str(s.get("job_id")) for s in sets.values() if s.get("job_id")]

    def controller_job_id(self):
        data = self.cluster_file() or {}
        return str(((data.get("controller") or {}).get("state") or {}).get("job_id") or "")

    def client(self, n, timeout=90):
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
            pytest.fail("engines did not register: %s\n%s" % (e, self.report()))
        return rc

    def logs(self):
        return sorted(glob.glob(os.path.join(self.profile_dir, "log", "*.log")) +
                      glob.glob(os.path.join(self.tmp, "slurm-*.out")))

    def report(self):
        parts = ["cluster file: %s" % json.dumps(self.cluster_file(), indent=1)]
        for path in self.logs():
            try:
                with open(path, errors="replace") as f:
                    parts.append("---- %s\n%s" % (path, f.read()[-4000:]))
            except OSError:
                pass
        return "\n".join(parts)

    def our_processes(self):
        """Processes whose command line names this cluster (engines, controller, cpcluster)."""
        found = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if self.cluster_id in cmd and int(pid) != os.getpid():
                found[int(pid)] = cmd
        return found

    def cleanup(self):
        home = os.path.expanduser("~")
        for jid in self.job_ids:  # Grid Engine writes job output to $HOME
            for path in glob.glob(os.path.join(home, "ip*.[eo]%s.*" % jid)):
                os.unlink(path)
        shutil.rmtree(self.tmp, ignore_errors=True)


def squeue(job_id):
    p = subprocess.run(["squeue", "-h", "-o", "%T", "-j", job_id], capture_output=True,
                       text=True, timeout=30)
    return p.stdout.strip()


def qstat_knows(job_id):
    p = subprocess.run(["qstat", "-j", job_id], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, **SGE_ENV))
    return p.returncode == 0


def wait_until(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.3)
    pytest.fail("timed out after %d s waiting for %s" % (timeout, what() if callable(what) else what))


def _run_and_stop(c, start_args, n, env_key, queue_gone):
    """`cpcluster start <start_args>` with n engines, compute on them, stop, check that nothing
    is left: no job in the queue, no process, no cluster file."""
    try:
        c.run("start", "-n", str(n), *start_args)
        if "--controller=slurm" in start_args:
            assert c.controller_job_id(), "no controller job id in the cluster file: %s" % (
                c.cluster_file())
        rc = c.client(n)
        try:
            job_ids = set(c.engine_job_ids())
            assert job_ids, "no engine job id in the cluster file\n%s" % c.report()
            c.job_ids.extend(job_ids)
            seen = rc[:].apply_sync(lambda k: __import__("os").environ.get(k), env_key)
            assert set(seen) <= job_ids, "engines not in the engines' job: %s vs %s" % (
                seen, job_ids)
            squares = rc.load_balanced_view().map_sync(lambda x: x * x, range(8))
            assert squares == [x * x for x in range(8)]
        finally:
            rc.close()
        jobs = list(job_ids) + ([c.controller_job_id()] if c.controller_job_id() else [])
        c.job_ids.extend(jobs)
        c.run("stop")
        for jid in jobs:
            wait_until(lambda: queue_gone(jid), 60, "job %s to leave the queue" % jid)
        wait_until(lambda: not c.our_processes(), 30,
                   lambda: "the cluster's processes to end: %s" % c.our_processes())
        assert c.cluster_file() is None, "cluster file left after stop"
    except BaseException:
        c.run("stop", check=False)
        raise
    finally:
        c.cleanup()


@pytest.mark.cpar_timeout(150)
def test_slurm_engines(beds):
    beds["slurm"].up()
    _run_and_stop(CpCluster("slurm"), ["--engines=slurm", "--daemonize"], 2, "SLURM_JOB_ID",
                  lambda jid: squeue(jid) == "")


@pytest.mark.cpar_timeout(180)
def test_slurm_controller_and_engines(beds):
    beds["slurm"].up()
    _run_and_stop(CpCluster("slurmctl"), ["--controller=slurm", "--engines=slurm", "--daemonize"],
                  2, "SLURM_JOB_ID", lambda jid: squeue(jid) == "")


@pytest.mark.cpar_timeout(150)
def test_slurm_job_cancelled_outside(beds):
    beds["slurm"].up()
    c = CpCluster("slurmcxl")
    try:
        c.run("start", "-n", "1", "--engines=slurm", "--daemonize")
        rc = c.client(1)
        rc.close()
        (jid,) = c.engine_job_ids()
        c.job_ids.append(jid)
        subprocess.run(["scancel", jid], check=True, timeout=30)
        wait_until(lambda: squeue(jid) == "", 60, "job %s to leave the queue" % jid)

        # `cpcluster list` asks Slurm, no longer counts the engines, and says why on its log
        # (stderr); the `cpcluster stop` that follows may be the one that says it
        seen = {"err": ""}

        def listed_gone():
            p = c.run("list", check=False)
            seen["out"] = p.stdout
            seen["err"] += p.stderr
            rows = [ln.split() for ln in p.stdout.splitlines() if c.cluster_id in ln]
            return len(rows) == 1 and rows[0][3] == "0"
        wait_until(listed_gone, 60,
                   lambda: "`cpcluster list` to count no engines: %s" % seen)
        seen["err"] += c.run("stop").stderr
        assert re.search(r"\b%s\b" % jid, seen["err"]) and re.search(
            r"(?i)no longer runs?|not running|cancelled|done", seen["err"]), (
            "the log does not report job %s ending:\n%s" % (jid, seen["err"]))
        wait_until(lambda: not c.our_processes(), 30, "the cluster's processes to end")
    except BaseException:
        c.run("stop", check=False)
        raise
    finally:
        c.cleanup()


@pytest.mark.cpar_timeout(180)
def test_sge_engines(beds):
    beds["sge"].up()
    _run_and_stop(CpCluster("sge"), ["--engines=sge", "--daemonize"], 2, "JOB_ID",
                  lambda jid: not qstat_knows(jid))
