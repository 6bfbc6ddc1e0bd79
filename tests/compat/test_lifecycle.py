"""Controller, engine and client lifecycles: start, files, shutdown, engine death and arrival.

Each test gets its own cluster (make_cluster), because each one ends something.
"""
import json
import os
import signal
import stat
import subprocess
import time

import pytest
import zmq
from jupyter_client.session import Session

import cparallel_testlib as tl
import ipyparallel as ipp
from ipyparallel import error

CLIENT_KEYS = {"ssh", "interface", "registration", "control", "mux", "task", "task_scheme",
               "iopub", "notification", "broadcast", "key", "signature_scheme", "pack", "unpack"}
ENGINE_KEYS = {"interface", "registration", "control", "mux", "task", "iopub", "hb_ping",
               "hb_pong", "broadcast", "key", "signature_scheme", "pack", "unpack", "location"}


def _wait_gone(rc, eid, timeout):
    deadline = time.monotonic() + timeout
    while eid in rc.ids and time.monotonic() < deadline:
        time.sleep(0.05)
    return eid not in rc.ids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_connection_files_and_clean_exit(sig):
    """The controller writes both connection files (0600, complete, same key and registration
    port), serves a client, and on SIGTERM/SIGINT exits 0 and removes the files."""
    c = tl.Cluster(name="files")
    try:
        c.start(n_engines=0)
        ctl = c.controller
        for path, keys in ((ctl.client_file, CLIENT_KEYS), (ctl.engine_file, ENGINE_KEYS)):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            assert mode == 0o600, "%s has mode %o" % (path, mode)
            with open(path) as f:
                info = json.load(f)
            assert keys <= set(info), "missing keys in %s: %s" % (path, keys - set(info))
            assert info["interface"] == "tcp://127.0.0.1"
        cinfo, einfo = ctl.connection_info("client"), ctl.connection_info("engine")
        assert cinfo["key"] and cinfo["key"] == einfo["key"]
        assert cinfo["registration"] == einfo["registration"]
        assert cinfo["signature_scheme"] == "hmac-sha256"
        assert isinstance(cinfo["broadcast"], int) and isinstance(einfo["broadcast"], list)
        rc = c.client()
        assert rc.ids == []
        assert rc.queue_status() == {"unassigned": 0}
        rc.close(linger=0)
        c.clients.remove(rc)
        ctl.proc.send_signal(sig)
        status = ctl.wait(10)
        assert status == 0, "exit status %r after %s\n%s" % (status, sig.name, ctl.log_tail())
        assert not c.leftover_files(), "connection files left: %s" % c.leftover_files()
    finally:
        c.stop()
        c.cleanup()


def test_engine_shutdown(make_cluster):
    c = make_cluster(n_engines=2)
    rc = c.client()
    rc.wait_for_engines(2, timeout=15)
    victim = rc.ids[0]
    survivor = rc.ids[1]
    proc = c.engine_by_id(rc, victim)
    rc.shutdown(targets=[victim], block=True)
    assert _wait_gone(rc, victim, 15), "engine %d still in rc.ids after 15 s" % victim
    assert proc.proc.wait(15) is not None  # the engine process really exits
    assert rc.ids == [survivor]
    assert rc[survivor].apply_sync(lambda: "still here") == "still here"
    # a fresh client sees the same thing
    rc2 = c.client()
    assert rc2.ids == [survivor]


def test_hub_shutdown(make_cluster):
    c = make_cluster(n_engines=2)
    rc = c.client()
    rc.wait_for_engines(2, timeout=15)
    other = c.client()  # a bystander client is told to close
    assert rc[:].apply_sync(lambda: 1) == [1, 1]
    rc.shutdown(hub=True, block=True)
    status = c.controller.wait(15)
    assert status == 0, "controller exit status %r after hub shutdown\n%s" % (
        status, c.controller.log_tail())
    assert not c.leftover_files(), "connection files left: %s" % c.leftover_files()
    for e in c.engines:  # engines were shut down first
        assert e.proc.wait(15) is not None
    tl.wait_for(lambda: other._closed, 10, what="the other client to be closed")
    c.stop()


def test_engine_killed_mid_task(make_cluster):
    c = make_cluster(n_engines=3)
    rc = c.client()
    rc.wait_for_engines(3, timeout=15)
    victim, others = rc.ids[0], rc.ids[1:]
    proc = c.engine_by_id(rc, victim)
    ar = rc[victim].apply_async(time.sleep, 10)
    busy = rc[others].apply_async(time.sleep, 0.5)
    time.sleep(0.5)  # let it start
    assert not ar.ready()
    t0 = time.monotonic()
    proc.kill(signal.SIGKILL)
    with pytest.raises(error.RemoteError) as exc:
        ar.get(timeout=15)
    assert exc.value.ename == "EngineError"
    assert time.monotonic() - t0 < 9, "EngineError only after the task would have finished"
    assert _wait_gone(rc, victim, 15)
    assert rc.ids == others
    assert busy.get(timeout=10) == [None, None]
    assert rc[others].apply_sync(lambda x: x + 1, 1) == [2, 2]
    # a client that connects now does not see the dead engine
    rc2 = c.client()
    assert rc2.ids == others


def test_engine_joins_later(make_cluster):
    c = make_cluster(n_engines=1)
    rc = c.client()
    rc.wait_for_engines(1, timeout=15)
    first = rc.ids
    events = []
    rc._registration_callbacks.append(events.append)  # what wait_for_engines listens to
    c.start_engines(1)
    rc.wait_for_engines(2, timeout=20)
    new = sorted(set(rc.ids) - set(first))
    assert len(new) == 1 and new[0] > max(first)
    # the client learnt it from a registration notification carrying the new id and uuid (the
    # first engine's may come again: cpcontroller repeats recent ones to each new subscriber)
    regs = [ev for ev in events if ev["event"] == "register" and ev["id"] not in first]
    assert [ev["id"] for ev in regs] == new
    assert regs[0]["uuid"] == rc._engines[new[0]]
    assert rc[new[0]].apply_sync(lambda: "new engine works") == "new engine works"
    assert rc[:].apply_sync(lambda: 3) == [3, 3]
    rc2 = c.client()
    assert rc2.ids == rc.ids


@pytest.mark.cpcontroller_only(
    "ipyparallel 7.1's hub announces a registration once, so a subscriber that arrives later "
    "never hears of it")
def test_late_subscriber_hears_recent_registration(make_cluster):
    """A client asks for the engine list and only then subscribes to the notifications; an
    engine that finishes registering in between must still reach it (else wait_for_engines
    times out). A subscriber arriving after a registration is told of it again."""
    c = make_cluster(n_engines=1)
    rc = c.client()
    rc.wait_for_engines(1, timeout=15)
    (eid,) = rc.ids
    info = c.controller.connection_info()
    events = []
    rc._registration_callbacks.append(events.append)
    sub = rc._context.socket(zmq.SUB)
    try:
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect("%s:%d" % (info["interface"], info["notification"]))
        assert sub.poll(10000), "no notification reached the late subscriber"
        # its own session: rc's would then refuse the same message as a replay
        session = Session(key=rc.session.key, signature_scheme=info["signature_scheme"])
        idents, frames = session.feed_identities(sub.recv_multipart(), copy=True)
        msg = session.deserialize(frames)  # checks the signature
    finally:
        sub.close(linger=0)
    assert msg["header"]["msg_type"] == "registration_notification"
    assert msg["content"] == {"id": eid, "uuid": rc._engines[eid]}
    # the client that already knew the engine keeps the same list
    tl.wait_for(lambda: events, 10, what="the repeat at the first client")
    assert rc.ids == [eid]
    assert rc[eid].apply_sync(lambda: 7) == 7


def test_ids_are_sequential(make_cluster):
    """A fresh cluster of n engines has ids 0..n-1 (ipyparallel's tests rely on it)."""
    c = make_cluster(n_engines=3)
    rc = c.client()
    rc.wait_for_engines(3, timeout=15)
    assert rc.ids == [0, 1, 2]
    uuids = set(rc._engines.values())
    assert len(uuids) == 3


@pytest.mark.cpcontroller_only(
    "the Python 7.1 hub keeps dead engines in queue_status() (protocol doc, section 7.1 quirk)")
def test_queue_status_forgets_dead_engines(make_cluster):
    c = make_cluster(n_engines=2)
    rc = c.client()
    rc.wait_for_engines(2, timeout=15)
    procs = {eid: c.engine_by_id(rc, eid) for eid in rc.ids}
    rc.shutdown(targets=[0], block=True)
    assert _wait_gone(rc, 0, 15)
    assert set(rc.queue_status()) == {1, "unassigned"}
    procs[1].kill(signal.SIGKILL)
    assert _wait_gone(rc, 1, 15)
    assert rc.queue_status() == {"unassigned": 0}


@pytest.mark.cpcontroller_only(
    "the Python 7.1 hub stores the stranded record without result_metadata, and the 7.1 client "
    "then fails parsing it (protocol doc, section 5.7)")
def test_direct_request_of_dead_engine_gets_engineerror_record(make_cluster):
    """After registration_timeout, the hub's record of a direct request that was running on an
    engine that died says EngineError, and another client can fetch that."""
    c = make_cluster(n_engines=2, controller_args=["--IPController.registration_timeout=2"])
    rc = c.client()
    rc.wait_for_engines(2, timeout=15)
    victim = c.engine_by_id(rc, 0)
    uuid0 = rc._engines[0]
    ar = rc[0].apply_async(time.sleep, 10)
    time.sleep(0.3)
    victim.kill(signal.SIGKILL)
    with pytest.raises(error.RemoteError) as exc:
        ar.get(timeout=15)
    assert exc.value.ename == "EngineError"
    msg_id = ar.msg_ids[0]
    other = c.client()
    tl.wait_for(lambda: other.result_status([msg_id])["completed"] == [msg_id], 10,
                what="the hub to fail the stranded request")
    with pytest.raises(error.RemoteError) as exc:
        other.result_status([msg_id], status_only=False)
    assert exc.value.ename == "EngineError"
    ahr = c.client().get_result(msg_id)
    with pytest.raises(error.RemoteError) as exc:
        ahr.get(timeout=10)
    assert exc.value.ename == "EngineError"
    assert ahr.engine_uuid == uuid0
    qs = rc.queue_status()
    assert set(qs) == {1, "unassigned"} and qs[1]["queue"] == 0


def test_profile_name_and_cluster_id(tmp_path):
    """--profile=NAME under IPYTHONDIR and a non-empty --cluster-id name the files as ipcontroller
    does (security/ipcontroller-<id>-{client,engine}.json), and an engine given the same
    profile and cluster id finds the controller."""
    ipython_dir = tmp_path / "ipython"
    env = tl._clean_env(str(ipython_dir))
    log = tmp_path / "controller.log"
    argv = tl.controller_command() + ["--profile=named", "--cluster-id", "abc-123",
                                      "--log-level=10", "--ping=250", "--dictdb"]
    security = ipython_dir / "profile_named" / "security"
    client_json = security / "ipcontroller-abc-123-client.json"
    engine_json = security / "ipcontroller-abc-123-engine.json"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=str(tmp_path), start_new_session=True)
    tl._STARTED.append(proc)
    engine = None
    rc = None
    try:
        tl.wait_for(lambda: client_json.exists() and engine_json.exists() or proc.poll() is not None,
                    15, what="connection files under profile_named")
        assert proc.poll() is None, tl.tail(str(log))
        assert not (security / "ipcontroller-client.json").exists()
        engine = tl.Engine(str(ipython_dir / "profile_named"), str(tmp_path / "engine.log"), env,
                           cluster_id="abc-123").start()
        rc = ipp.Client(profile="named", ipython_dir=str(ipython_dir), cluster_id="abc-123",
                        timeout=10)
        rc.wait_for_engines(1, timeout=20)
        assert rc[:].apply_sync(lambda: "ok") == ["ok"]
    finally:
        if rc is not None:
            rc.close(linger=0)
        if engine is not None:
            engine.stop()
        proc.send_signal(signal.SIGTERM)
        try:
            status = proc.wait(10)
        except subprocess.TimeoutExpired:
            tl.kill_group(proc, signal.SIGKILL)
            status = proc.wait(5)
    assert status == 0, tl.tail(str(log))
    assert not client_json.exists() and not engine_json.exists()
