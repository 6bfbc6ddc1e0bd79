"""cpcluster with the pbs, lsf, htcondor and winhpc launchers, against command shims.

No real PBS, LSF, HTCondor or Windows HPC Server can run here. The shims of
tests/support/shims/<system>/ (qsub/qdel/qstat/qsig, bsub/bkill/bjobs,
condor_submit/condor_rm/condor_q/condor_history, job) print what those systems print, keep their
jobs in CPAR_SHIM_STATE_DIR, and run what was submitted on this machine: the default batch script
(python3 -m ipyparallel.engine ...), the HTCondor executable (ipengine), or the Windows HPC
tasks' command lines (ipengine.exe, run as ipengine). So the real engines of ipyparallel 7.1
start from the launchers' own files and register with cpcontroller.

Each test starts a cluster with `cpcluster start --daemonize`: the controller as a batch job and 2
engines through one launcher. It computes on them through the real client, checks that each
engine is its own array task, stops the cluster and checks that the jobs were deleted and no
process of the cluster is left.

cpcluster comes from CPAR_CPCLUSTER (set by CTest).
"""
import os
import shutil

import pytest

from cpcluster_helpers import SHIMS, CpCluster, wait_until


class ShimCluster(CpCluster):
    """A cpcluster-managed cluster whose batch commands are the shims of one system."""

    def __init__(self, system, controller=None):
        super().__init__(system, "cpar-shim-%s-" % system)
        self.system = system
        self.state_dir = os.path.join(self.tmp, "shim-state")
        self.env.update(CPAR_SHIM_STATE_DIR=self.state_dir,
                        PATH=os.pathsep.join([os.path.join(SHIMS, s) for s in {system, controller}
                                              if s] + [os.environ["PATH"]]))

    def shim_jobs(self):
        try:
            return sorted(d for d in os.listdir(self.state_dir) if d.isdigit())
        except OSError:
            return []

    def report(self):
        parts = [super().report()]
        for root, _dirs, files in os.walk(self.tmp):
            for name in sorted(files):
                if name.endswith((".log", ".out")):
                    path = os.path.join(root, name)
                    try:
                        with open(path, errors="replace") as f:
                            parts.append("---- %s\n%s" % (path, f.read()[-3000:]))
                    except OSError:
                        pass
        return "\n".join(parts)

    def our_processes(self):
        """Processes whose command line names this cluster or its directory."""
        return super().our_processes((self.cluster_id, self.tmp))

    def kill_leftovers(self):
        for pid in self.our_processes():
            try:
                os.kill(pid, 9)
            except OSError:
                pass


# engine launcher, controller launcher, the variable that numbers the engine tasks, the file the
# engine launcher writes. The controller runs as a batch job too (cpcontroller in the default
# script); HTCondor's and Windows HPC's default controller jobs run ipyparallel's ipcontroller
# by name (as 7.1's do), so their engines get a controller from the pbs launcher.
CASES = [
    ("pbs", "pbs", "PBS_ARRAYID", "pbs_engines"),
    ("lsf", "lsf", "LSB_JOBINDEX", "lsf_engines"),
    ("htcondor", "pbs", "CPAR_SHIM_PROCID", "htcondor_engines"),
    ("winhpc", "pbs", "CCP_TASKID", "ipengineset_job.xml"),
]


@pytest.mark.cpar_timeout(150)
@pytest.mark.parametrize("system,controller,index_var,script", CASES,
                         ids=[c[0] + "_shim" for c in CASES])
def test_engines_through_shims(system, controller, index_var, script):
    c = ShimCluster(system, controller)
    try:
        c.run("start", "-n", "2", "--engines=" + system, "--controller=" + controller,
              "--daemonize")
        rc = c.client(2)
        try:
            jobs = c.shim_jobs()
            assert len(jobs) == 2, "want a controller and an engine job, the shims have %s\n%s" % (
                jobs, c.report())
            indexes = rc[:].apply_sync(lambda k: __import__("os").environ.get(k), index_var)
            assert sorted(indexes) == ["1", "2"] or sorted(indexes) == ["0", "1"], (
                "engines are not the job's two tasks: %s=%s" % (index_var, indexes))
            squares = rc.load_balanced_view().map_sync(lambda x: x * x, range(8))
            assert squares == [x * x for x in range(8)]
        finally:
            rc.close()
        assert os.path.exists(os.path.join(c.tmp, script)) or any(
            os.path.exists(os.path.join(r, script)) for r, _d, _f in os.walk(c.tmp)), (
            "the launcher wrote no %s" % script)
        c.run("stop")
        for job in c.shim_jobs():
            assert os.path.exists(os.path.join(c.state_dir, job, "removed")), (
                "cpcluster stop did not delete job %s" % job)
        wait_until(lambda: not c.our_processes(), 30,
                   lambda: "the cluster's processes to end: %s" % c.our_processes())
        assert c.cluster_file() is None, "cluster file left after stop"
    except BaseException:
        c.run("stop", check=False)
        c.kill_leftovers()
        raise
    finally:
        shutil.rmtree(c.tmp, ignore_errors=True)


@pytest.mark.cpar_timeout(60)
def test_submit_failure_is_reported():
    """A qsub that fails: cpcluster says why, in one line with qsub's message, and exits non-zero."""
    c = ShimCluster("pbs")
    c.env["CPAR_SHIM_FAIL"] = "qsub: Unauthorized Request  MSG=group ACL is not satisfied"
    try:
        p = c.run("start", "-n", "2", "--engines=pbs", "--controller=pbs", "--daemonize",
                  check=False)
        assert p.returncode != 0, "cpcluster start succeeded with a failing qsub"
        assert "group ACL is not satisfied" in p.stderr + p.stdout, (
            "qsub's message is not shown:\n%s%s" % (p.stdout, p.stderr))
        assert c.shim_jobs() == []
    finally:
        c.run("stop", check=False)
        c.kill_leftovers()
        shutil.rmtree(c.tmp, ignore_errors=True)
