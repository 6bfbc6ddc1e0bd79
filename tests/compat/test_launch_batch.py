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
import os
import re
import shutil
import subprocess

import pytest

from cpcluster_helpers import Bed, CpCluster, wait_until

SGE_ENV = {"SGE_ROOT": "/var/lib/gridengine", "SGE_CELL": "default"}


@pytest.fixture(scope="module")
def beds():
    # the stop script stops what the start script started for this owner: a bed that was
    # already running when the module began is left running
    owner = {"CPAR_TESTBED_OWNER": "compat-%d" % os.getpid()}
    b = {name: Bed(name, env=dict(SLURM_SMOKE="0", SGE_SMOKE="0", **owner, **SGE_ENV),
                   stop_env=dict(owner, **SGE_ENV), why_root="its daemons are started as root")
         for name in ("slurm", "sge")}
    yield b
    for bed in b.values():
        bed.stop()


class BatchCluster(CpCluster):
    """A cpcluster-managed cluster in a fresh IPYTHONDIR, run from a scratch work directory."""

    def __init__(self, name):
        super().__init__(name, "cpar-batch-", **SGE_ENV)
        self.job_ids = []

    def engine_job_ids(self):
        data = self.cluster_file() or {}
        sets = (data.get("engines") or {}).get("sets") or {}
        return [str(s.get("job_id")) for s in sets.values() if s.get("job_id")]

    def controller_job_id(self):
        data = self.cluster_file() or {}
        return str(((data.get("controller") or {}).get("state") or {}).get("job_id") or "")

    def logs(self):
        return sorted(glob.glob(os.path.join(self.profile_dir, "log", "*.log")) +
                      glob.glob(os.path.join(self.tmp, "slurm-*.out")))

    def report(self):
        parts = [super().report()]
        for path in self.logs():
            try:
                with open(path, errors="replace") as f:
                    parts.append("---- %s\n%s" % (path, f.read()[-4000:]))
            except OSError:
                pass
        return "\n".join(parts)

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
    _run_and_stop(BatchCluster("slurm"), ["--engines=slurm", "--daemonize"], 2, "SLURM_JOB_ID",
                  lambda jid: squeue(jid) == "")


@pytest.mark.cpar_timeout(180)
def test_slurm_controller_and_engines(beds):
    beds["slurm"].up()
    _run_and_stop(BatchCluster("slurmctl"),
                  ["--controller=slurm", "--engines=slurm", "--daemonize"], 2, "SLURM_JOB_ID",
                  lambda jid: squeue(jid) == "")


@pytest.mark.cpar_timeout(150)
def test_slurm_job_cancelled_outside(beds):
    beds["slurm"].up()
    c = BatchCluster("slurmcxl")
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
    _run_and_stop(BatchCluster("sge"), ["--engines=sge", "--daemonize"], 2, "JOB_ID",
                  lambda jid: not qstat_knows(jid))
