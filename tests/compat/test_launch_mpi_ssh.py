"""cpcluster with the mpi, ssh and sshproxy launchers, end to end.

Each test starts a cluster with `cpcluster start -n 2 --daemonize`, runs work through the real
Python client on the two engines, checks `cpcluster list`, then `cpcluster stop`, after which no
process of the cluster may be left:

  - mpi under Open MPI's mpiexec, with --mpi engines (mpi4py: each engine is the MPI rank of its
    id), the controller started by the local launcher;
  - mpi under MPICH's mpiexec (engine_mpi off: Debian's mpi4py is Open MPI's), with the controller
    started through mpiexec too (--controller=mpi, which ipyparallel 7.1 cannot do);
  - ssh: two engines on root@127.0.0.1:2222 from the engines dict, with a separate remote
    profile directory the connection files are copied to;
  - sshproxy: `cpcluster engines` run on the remote host, which starts the engines there.

The test beds come from tests/support/testbeds: mpi.sh (packages only) and ssh.sh (a private
sshd on 127.0.0.1:2222, stopped again by ssh-stop.sh at the end of the module). They need root;
a bed that cannot start fails the tests that need it, with the reason.

cpcluster comes from CPAR_CPCLUSTER (set by CTest).
"""
import json
import os
import shutil
import subprocess
import time

import pytest

from cpcluster_helpers import Bed, CpCluster, cpcluster

SSHD_DIR = os.environ.get("CPAR_SSHD_DIR", "/var/lib/cparallel-sshd")
SSHD_PORT = int(os.environ.get("CPAR_SSHD_PORT", "2222"))
PYTHON = "/usr/bin/python3"


def _sshd_running():
    try:
        with open(os.path.join(SSHD_DIR, "sshd.pid")) as f:
            os.kill(int(f.read().strip()), 0)
        return True
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="module")
def beds():
    why = "it installs packages and starts sshd as root"
    b = {"mpi": Bed("mpi", stop=False, env={"MPI_NP": "2"}, why_root=why),
         "ssh": Bed("ssh", env={"MPI_NP": "2"}, why_root=why, running=_sshd_running)}
    yield b
    for bed in b.values():
        bed.stop()


def _ssh_opts():
    return ["-i", os.path.join(SSHD_DIR, "id_ed25519"), "-o", "IdentitiesOnly=yes",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=no",
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]


class MpiSshCluster(CpCluster):
    """A cluster in a fresh profile directory, run from a scratch work directory."""

    def __init__(self, name):
        super().__init__(name, "cpar-mpissh-", profile="profile",
                         # Open MPI as root with more ranks than cores (batch-testbeds.md §7)
                         OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                         OMPI_MCA_rmaps_base_oversubscribe="1")
        self.remote_profile_dir = os.path.join(self.tmp, "remote-profile")

    def processes(self):
        """Processes whose command line names this cluster's directory."""
        p = subprocess.run(["pgrep", "-af", self.tmp], capture_output=True, text=True)
        return [l for l in p.stdout.splitlines() if "pgrep" not in l]

    def report(self):
        lines = ["--- cluster file:", json.dumps(self.cluster_file(), indent=1)]
        for d in (self.profile_dir, self.remote_profile_dir):
            logd = os.path.join(d, "log")
            for name in sorted(os.listdir(logd)) if os.path.isdir(logd) else []:
                with open(os.path.join(logd, name), errors="replace") as f:
                    lines.append("--- %s:\n%s" % (name, f.read()[-3000:]))
        lines.append("--- processes:\n" + "\n".join(self.processes()))
        return "\n".join(lines)

    def stop_and_check(self):
        self.run("stop", timeout=120)
        deadline = time.time() + 20
        while self.processes() and time.time() < deadline:
            time.sleep(0.5)
        left = self.processes()
        assert not left, "processes left after cpcluster stop:\n" + "\n".join(left)
        assert self.cluster_file() is None, "cluster file left after stop"

    def cleanup(self):
        for line in self.processes():  # only what this test started (its own directory)
            try:
                os.kill(int(line.split()[0]), 9)
            except (ValueError, OSError):
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def cluster(request):
    c = MpiSshCluster(request.node.name.replace("test_", "")[:12])
    yield c
    c.cleanup()


def _work(rc, n):
    """Some work on every engine: pids are distinct, a map gives the right answer."""
    assert sorted(rc.ids) == list(range(n))
    pids = rc[:].apply_sync(os.getpid)
    assert len(set(pids)) == n
    view = rc.load_balanced_view()
    # builtins only: the engines need not import this module
    assert view.map_sync(pow, range(10), [2] * 10) == [x * x for x in range(10)]
    return pids


def _listed(c, launcher):
    text = c.run("list").stdout
    line = [l for l in text.splitlines() if c.cluster_id in l]
    assert line and "True" in line[0] and launcher.lower() in line[0].lower(), text


def test_mpi_openmpi(beds, cluster):
    beds["mpi"].up()
    c = cluster
    c.run("start", "-n", "2", "--engines=mpi", "--daemonize",
          "--MPIEngineSetLauncher.mpi_cmd=['mpiexec.openmpi']")
    state = c.cluster_file()
    assert state["engines"]["class"] == "mpi"
    (eset,) = state["engines"]["sets"].values()
    assert eset["pid"] > 0 and eset["n"] == 2
    rc = c.client(2)
    try:
        _work(rc, 2)
        # --mpi engines: one MPI job of size 2; each engine's id is its rank
        dv = rc[:]
        dv.execute("from mpi4py import MPI; r = MPI.COMM_WORLD.Get_rank(); "
                   "s = MPI.COMM_WORLD.Get_size()", block=True)
        ranks, sizes = dv.pull("r", block=True), dv.pull("s", block=True)
        assert ranks == [0, 1] and sizes == [2, 2], (ranks, sizes)
    finally:
        rc.close()
    _listed(c, "mpi")
    c.stop_and_check()


def test_mpi_mpich_controller(beds, cluster):
    beds["mpi"].up()
    c = cluster
    c.run("start", "-n", "2", "--engines=mpi", "--controller=mpi", "--daemonize",
          "--MPILauncher.mpi_cmd=['mpiexec.mpich']",
          "--MPIEngineSetLauncher.engine_mpi=False")
    state = c.cluster_file()
    assert state["controller"]["class"] == "mpi"
    assert state["controller"]["state"]["n"] == 1
    rc = c.client(2)
    try:
        _work(rc, 2)
    finally:
        rc.close()
    _listed(c, "mpi")
    c.stop_and_check()


def _ssh_settings(c):
    opts = _ssh_opts()
    return ["--SSHLauncher.ssh_args=%r" % opts,
            "--SSHLauncher.scp_args=%r" % opts,
            "--SSHLauncher.remote_python=%s" % PYTHON,
            "--SSHLauncher.remote_profile_dir=%s" % c.remote_profile_dir]


def test_ssh(beds, cluster):
    beds["ssh"].up()
    c = cluster
    host = "root@127.0.0.1:%d" % SSHD_PORT
    c.run("start", "-n", "2", "--engines=ssh", "--daemonize",
          "--SSHEngineSetLauncher.engines={%r: 2}" % host, *_ssh_settings(c))
    (eset,) = c.cluster_file()["engines"]["sets"].values()
    engines = eset["engines"]
    assert len(engines) == 2
    for e in engines.values():
        assert e["hostname"] == "127.0.0.1" and e["user"] == "root" and e["pid"] > 0
        assert e["remote_profile_dir"] == c.remote_profile_dir
    # the connection files went to the remote profile, and the engines read them there
    assert os.path.exists(os.path.join(c.remote_profile_dir, "security",
                                       "ipcontroller-%s-engine.json" % c.cluster_id))
    rc = c.client(2)
    try:
        pids = _work(rc, 2)
        assert sorted(pids) == sorted(e["pid"] for e in engines.values())
    finally:
        rc.close()
    _listed(c, "ssh")
    c.stop_and_check()


def test_sshproxy(beds, cluster):
    beds["ssh"].up()
    c = cluster
    port = str(SSHD_PORT)
    opts = _ssh_opts()
    c.run("start", "-n", "2", "--engines=sshproxy", "--daemonize",
          "--SSHLauncher.hostname=127.0.0.1", "--SSHLauncher.user=root",
          "--SSHLauncher.ssh_args=%r" % (opts + ["-p", port]),
          "--SSHLauncher.scp_args=%r" % (opts + ["-P", port]),
          "--SSHLauncher.remote_python=%s" % PYTHON,
          "--SSHLauncher.remote_profile_dir=%s" % c.remote_profile_dir,
          # cpcluster is on the remote host too (the same machine here)
          "--SSHProxyEngineSetLauncher.ipcluster_cmd=%r" % [cpcluster()])
    (eset,) = c.cluster_file()["engines"]["sets"].values()
    assert eset["pid"] > 0 and eset["n"] == 2
    rc = c.client(2)
    try:
        _work(rc, 2)
    finally:
        rc.close()
    _listed(c, "sshproxy")
    c.stop_and_check()
