"""cpcluster end to end, with real processes: the `local` launcher starting cpcontroller and the
real Python engines, the real Python client running work, and ipyparallel's own tools reading
the cluster file cpcluster writes (and cpcluster reading the one ipyparallel writes)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import cparallel_testlib as tl

pytestmark = pytest.mark.cpcontroller_only("cpcluster starts cpcontroller")


def _cpcluster():
    exe = os.environ.get("CPAR_CPCLUSTER")
    if not exe:
        exe = os.path.join(os.path.dirname(os.environ.get("CPAR_CONTROLLER", "")), "cpcluster")
    return exe


@pytest.fixture
def env(tmp_path):
    ipython_dir = str(tmp_path / "ipython")
    os.makedirs(ipython_dir)
    e = tl._clean_env(ipython_dir)
    return e


def profile_dir(env):
    return os.path.join(env["IPYTHONDIR"], "profile_default")


def cluster_file(env, cid):
    return os.path.join(profile_dir(env), "security", "cluster-%s.json" % cid)


def run(env, *args, timeout=90):
    exe = _cpcluster()
    if not os.access(exe, os.X_OK):
        pytest.fail("cpcluster not found at %r (set CPAR_CPCLUSTER)" % exe)
    p = subprocess.run([exe] + list(args), env=env, capture_output=True, text=True,
                       timeout=timeout, start_new_session=True)
    assert "Sanitizer" not in p.stderr, p.stderr  # a build with CPAR_SANITIZE found a fault
    return p


def pids_of(path):
    """Every pid the cluster file records (controller, each engine)."""
    with open(path) as f:
        d = json.load(f)
    pids = []

    def walk(o):
        if isinstance(o, dict):
            if isinstance(o.get("pid"), int) and o["pid"] > 0:
                pids.append(o["pid"])
            for v in o.values():
                walk(v)

    walk(d.get("controller", {}))
    walk(d.get("engines", {}))
    return pids


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state in ("Z", "X"):
        try:
            os.waitpid(pid, os.WNOHANG)
        except OSError:
            pass
        return False
    return True


def assert_gone(pids, timeout=20):
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in pids if alive(p)]
    tl.kill_pids(left)
    assert not left, "processes still running after stop: %s" % left


def no_orphans(before):
    left = tl.leftover_children(ignore=before, grace=10)
    tl.kill_pids(list(left))
    assert not left, "orphans: %s" % left


def client(env, cid, n):
    import ipyparallel as ipp

    rc = ipp.Client(profile_dir=profile_dir(env), cluster_id=cid, timeout=30)
    rc.wait_for_engines(n, timeout=60)
    return rc


def error_lines(p):
    return [l for l in p.stderr.splitlines() if l.strip()]


@pytest.mark.cpar_timeout(240)
def test_daemonize_client_list_from_file_engines_stop(env):
    import ipyparallel as ipp

    before = tl.snapshot_children()
    cid = "t1"
    path = cluster_file(env, cid)
    p = run(env, "start", "-n", "2", "--daemonize", "--cluster-id", cid, "--delay=0.2")
    assert p.returncode == 0, p.stderr
    assert "Leaving cluster running: %s" % path in p.stderr
    try:
        with open(path) as f:
            d = json.load(f)
        assert d["cluster"]["class"] == "ipyparallel.cluster.cluster.Cluster"
        assert d["cluster"]["cluster_id"] == cid
        assert d["controller"]["class"] == "local"
        assert d["engines"]["class"] == "local"
        (set_id, eset), = d["engines"]["sets"].items()
        assert eset["n"] == 2

        rc = client(env, cid, 2)
        assert rc[:].apply_sync(lambda: 6 * 7) == [42, 42]
        rc.close()

        # starting it again: already running (ipcluster's exit code 10)
        again = run(env, "start", "-n", "1", "--daemonize", "--cluster-id", cid)
        assert again.returncode == 10, again.stderr

        # list, text and json
        p = run(env, "list")
        assert p.returncode == 0, p.stderr
        rows = [l.split() for l in p.stdout.splitlines()]
        assert rows[0] == ["PROFILE", "CLUSTER", "ID", "RUNNING", "ENGINES", "LAUNCHER"]
        assert ["default", cid, "True", "2", "Local"] in rows[1:], p.stdout
        p = run(env, "list", "-o", "json")
        assert p.returncode == 0, p.stderr
        listed = json.loads(p.stdout)
        assert [c["cluster"]["cluster_id"] for c in listed] == [cid]

        # ipyparallel reads our file: Cluster.from_file, then its client, and `ipcluster list`
        cl = ipp.Cluster.from_file(path)
        assert cl.controller is not None and cl.controller.state == "running"
        assert list(cl.engines) == [set_id] and cl.engines[set_id].n == 2
        rc = cl.connect_client_sync()
        rc.wait_for_engines(2, timeout=30)
        assert len(rc.ids) == 2
        rc.close()
        ipc = subprocess.run([sys.executable, "-m", "ipyparallel.cluster", "list"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert ["default", cid, "True", "2", "Local"] in [l.split() for l in ipc.stdout.splitlines()], \
            ipc.stdout + ipc.stderr

        # add an engine set: the file gains it and keeps the first one and the controller
        p = run(env, "engines", "-n", "1", "--daemonize", "--cluster-id", cid)
        assert p.returncode == 0, p.stderr
        with open(path) as f:
            d = json.load(f)
        assert "controller" in d and len(d["engines"]["sets"]) == 2
        assert sorted(s["n"] for s in d["engines"]["sets"].values()) == [1, 2]
        rc = client(env, cid, 3)
        assert len(rc.ids) == 3
        rc.close()
        p = run(env, "list")
        assert ["default", cid, "True", "3", "Local"] in [l.split() for l in p.stdout.splitlines()]

        pids = pids_of(path)
        assert len(pids) == 4, pids
    finally:
        pids = pids_of(path) if os.path.exists(path) else []
        p = run(env, "stop", "--cluster-id", cid)
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(path)
    assert_gone(pids)
    sec = os.path.join(profile_dir(env), "security")
    assert not [f for f in os.listdir(sec) if f.startswith("ipcontroller-")]
    no_orphans(before)
    # stopping again: no cluster file (ipcluster's exit code 11)
    p = run(env, "stop", "--cluster-id", cid)
    assert p.returncode == 11, p.stderr


@pytest.mark.cpar_timeout(120)
def test_foreground_progress_and_sigint(env):
    before = tl.snapshot_children()
    cid = "fg"
    path = cluster_file(env, cid)
    exe = _cpcluster()
    proc = subprocess.Popen([exe, "start", "-n", "1", "--cluster-id", cid, "--delay=0.2"],
                            env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "1/1 engines registered" in line:
                break
        assert any("1/1 engines registered" in l for l in lines), "".join(lines)
        assert os.path.exists(path)
        # `engines` in the foreground beside it: its set is added to the file; SIGINT stops
        # that set only and takes it out of the file again
        eng = subprocess.Popen([exe, "engines", "-n", "1", "--cluster-id", cid], env=env,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            tl.wait_for(lambda: len(json.load(open(path))["engines"]["sets"]) == 2, 30,
                        what="a second engine set in the cluster file")
            added = set(pids_of(path))
            eng.send_signal(signal.SIGINT)
            err = eng.communicate(timeout=30)[1]
        finally:
            if eng.poll() is None:
                tl.kill_group(eng, signal.SIGKILL)
                eng.wait()
        assert eng.returncode == 0, err
        d = json.load(open(path))
        assert "controller" in d and len(d["engines"]["sets"]) == 1, d
        pids = pids_of(path)
        assert_gone(added - set(pids))
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            tl.kill_group(proc, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, "".join(lines) + rest
    assert "Sanitizer" not in rest and "Sanitizer" not in err, rest + err
    assert not os.path.exists(path)
    assert_gone(pids)
    no_orphans(before)


def _start_fails(env, cid, option, *words):
    """`cpcluster start` with `option` exits 1 with one error line that has all of `words`,
    and leaves no cluster file and no process behind."""
    before = tl.snapshot_children()
    p = run(env, "start", "-n", "1", "--daemonize", "--cluster-id", cid, option)
    assert p.returncode == 1
    lines = error_lines(p)
    assert len(lines) == 1, p.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert not os.path.exists(cluster_file(env, cid))
    no_orphans(before)


def test_unknown_launcher(env):
    _start_fails(env, "bad1", "--engines=nosuchlauncher", "nosuchlauncher", "searched")


def test_missing_controller_program(env):
    _start_fails(env, "bad3", "--Cluster.controller_cmd=['/nonexistent/cpcontroller']",
                 "/nonexistent/cpcontroller")


def test_corrupt_cluster_file(env):
    before = tl.snapshot_children()
    path = cluster_file(env, "bad2")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write('{"cluster": {"cluster_id": "bad2",\n')
    for args in (["stop"], ["start", "-n", "1", "--daemonize"], ["engines", "-n", "1", "--daemonize"]):
        p = run(env, *args, "--cluster-id", "bad2")
        assert p.returncode == 1, (args, p.stderr)
        lines = error_lines(p)
        assert len(lines) == 1, (args, p.stderr)
        assert path in lines[0] and "corrupt" in lines[0], lines[0]
    no_orphans(before)
    p = run(env, "clean", "--force")
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(path)


@pytest.mark.cpar_timeout(180)
def test_ipyparallel_cluster_with_cpcontroller_then_cpcluster_stop(env):
    """The interop recipe: ipyparallel's own Cluster starts cpcontroller through
    LocalControllerLauncher.controller_cmd; cpcluster lists and stops what it started."""
    import ipyparallel as ipp
    from traitlets.config import Config

    before = tl.snapshot_children()
    controller = os.path.join(os.path.dirname(_cpcluster()), "cpcontroller")
    cfg = Config()
    cfg.LocalControllerLauncher.controller_cmd = [controller]
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        cl = ipp.Cluster(config=cfg, n=1, cluster_id="io", profile_dir=profile_dir(env),
                         shutdown_atexit=False, delay=0.2)
        rc = cl.start_and_connect_sync()
        assert cl.controller.args[0] == controller
        assert rc[:].apply_sync(lambda: 1 + 1) == [2]
        rc.close()
        # from here on cpcluster owns it: keep this Cluster object's watchers from rewriting
        # the file when the processes it started stop
        cl.cluster_file = ""
    finally:
        os.environ.clear()
        os.environ.update(saved)
    path = cluster_file(env, "io")
    pids = pids_of(path)
    p = run(env, "list")
    assert ["default", "io", "True", "1", "Local"] in [l.split() for l in p.stdout.splitlines()], \
        p.stdout + p.stderr
    p = run(env, "stop", "--cluster-id", "io")
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(path)
    assert_gone(pids)
    no_orphans(before)


@pytest.mark.cpar_timeout(120)
def test_ipcluster_start_with_cpcontroller_then_cpcluster_stop(env):
    """The same recipe from ipcluster's command line."""
    before = tl.snapshot_children()
    controller = os.path.join(os.path.dirname(_cpcluster()), "cpcontroller")
    p = subprocess.run(
        [sys.executable, "-m", "ipyparallel.cluster", "start", "--daemonize", "--n=1",
         "--cluster-id=ic", "--Cluster.delay=0.2",
         "--LocalControllerLauncher.controller_cmd=%s" % json.dumps([controller])],
        env=env, capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr
    path = cluster_file(env, "ic")
    pids = pids_of(path)
    with open("/proc/%d/cmdline" % pids[0], "rb") as f:
        assert f.read().split(b"\0")[0].decode() == controller
    rc = client(env, "ic", 1)
    assert rc[:].apply_sync(lambda: 3 * 3) == [9]
    rc.close()
    p = run(env, "stop", "--cluster-id", "ic")
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(path)
    assert_gone(pids)
    no_orphans(before)


@pytest.mark.cpar_timeout(120)
def test_foreground_early_shutdown(env):
    """Engines that die at once: ipcluster's "Engines shutdown early" advice, exit 1, and the
    controller stopped with them."""
    before = tl.snapshot_children()
    p = run(env, "start", "-n", "1", "--cluster-id", "es", "--delay=0.2",
            "--Cluster.engine_cmd=['/bin/sh', '-c', 'echo engine-failed-here; exit 3']",
            timeout=60)
    assert p.returncode == 1, p.stderr
    assert "Engines shutdown early" in p.stderr
    assert "engine-failed-here" in p.stderr
    assert not os.path.exists(cluster_file(env, "es"))
    no_orphans(before)
