"""Direct (mux/control/iopub) use of a controller by the real ipyparallel Client and engines.

One controller with two engines serves the whole module. Each test asserts what a user of
ipyparallel would notice: results, outputs, errors, metadata, hub queries.
"""
import datetime
import hashlib
import os
import time

import pytest

import ipyparallel as ipp
from ipyparallel import error

ENGINES = 2


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def test_execute(rc):
    dv = rc[:]
    ar = dv.execute("a = 6 * 7", block=False)
    ar.get(timeout=10)
    assert dv.pull("a", block=True) == [42] * len(rc.ids)
    # execute on one engine returns an ExecuteReply with an execution count
    reply = rc[rc.ids[0]].execute("a + 1", silent=False, block=True).get(timeout=10)
    assert reply.execution_count >= 1
    assert reply.execute_result["data"]["text/plain"] == "43"


def test_apply_sync_and_async(rc):
    dv = rc[:]
    assert dv.apply_sync(lambda x, y: x * y, 6, y=7) == [42, 42]
    ar = dv.apply_async(os.getpid)
    pids = ar.get(timeout=10)
    assert len(set(pids)) == 2 and os.getpid() not in pids
    assert ar.successful() and ar.ready()
    # single engine: a plain value, not a list
    single = rc[rc.ids[-1]]
    assert single.apply_sync(sum, [1, 2, 3]) == 6
    ar = single.apply_async(pow, 2, 10)
    assert ar.get(timeout=10) == 1024
    assert ar.engine_id == rc.ids[-1]


def test_push_pull_and_dict_access(rc):
    dv = rc[:]
    dv.block = True
    data = {"x": list(range(10)), "y": {"nested": (1, 2.5, "s")}, "z": "ünïcode"}
    dv.push(data)
    assert dv.pull("x") == [data["x"]] * 2
    assert dv.pull(("y", "z")) == [[data["y"], data["z"]]] * 2
    dv["a"] = 5
    assert dv["a"] == [5, 5]
    e = rc[rc.ids[0]]
    e["b"] = "only here"
    assert e["b"] == "only here"
    with pytest.raises(error.CompositeError) as exc:
        dv.pull("b")
    assert [x[0] for x in exc.value.elist] == ["NameError"]


def test_scatter_gather(rc):
    dv = rc[:]
    dv.block = True
    seq = list(range(17))
    dv.scatter("part", seq)
    parts = dv.pull("part")
    assert sorted(len(p) for p in parts) == [8, 9]
    assert sum(parts, []) == seq
    assert dv.gather("part") == seq
    ar = dv.gather("part", block=False)
    assert ar.get(timeout=10) == seq


def test_map_sync_and_async(rc):
    dv = rc[:]
    assert dv.map_sync(lambda x: x * x, range(11)) == [x * x for x in range(11)]
    amr = dv.map_async(lambda x: -x, range(9))
    assert isinstance(amr, ipp.AsyncMapResult)
    assert list(amr) == [-x for x in range(9)]
    assert amr.get(timeout=10) == [-x for x in range(9)]


def test_stdout_stderr_capture(rc):
    dv = rc[:]

    def speak(tag):
        import sys

        print("out", tag)
        print("err", tag, file=sys.stderr)
        return tag

    ar = dv.apply_async(speak, "T1")
    assert ar.get(timeout=10) == ["T1", "T1"]
    ar.wait_for_output(timeout=10)
    assert ar.stdout == ["out T1\n", "out T1\n"]
    assert ar.stderr == ["err T1\n", "err T1\n"]


def test_execute_result_and_display_outputs(rc, capsys):
    e = rc[rc.ids[0]]
    ar = e.execute("print('hello from the engine'); 6 * 7", silent=False, block=False)
    reply = ar.get(timeout=10)
    ar.wait_for_output(timeout=10)
    assert ar.stdout == "hello from the engine\n"
    assert ar.execute_result["data"]["text/plain"] == "42"
    assert reply.execute_result["data"]["text/plain"] == "42"
    capsys.readouterr()
    ar.display_outputs()
    assert capsys.readouterr().out == "hello from the engine\n"
    # several engines: outputs are republished with the engine id
    ar = rc[:].execute("print('id', 3 * 3)", block=False)
    ar.get(timeout=10)
    ar.wait_for_output(timeout=10)
    capsys.readouterr()
    ar.display_outputs(groupby="engine")
    out = capsys.readouterr().out
    for eid in rc.ids:
        assert "[stdout:%d]" % eid in out
    assert out.count("id 9\n") == len(rc.ids)


def test_remote_error_single(rc):
    e = rc[rc.ids[0]]
    ar = e.apply_async(lambda: 1 / 0)
    with pytest.raises(error.RemoteError) as exc:
        ar.get(timeout=10)
    assert exc.value.ename == "ZeroDivisionError"
    assert "division" in exc.value.evalue
    assert not ar.successful()
    with pytest.raises(error.RemoteError) as exc:
        e.execute("raise KeyError('nope')", block=True)
    assert exc.value.ename == "KeyError"


def test_composite_error(rc):
    dv = rc[:]

    def maybe_fail(i):
        if i:
            raise ValueError("engine %d failed" % i)
        return "fine"

    dv.scatter("i", [0, 1], flatten=True, block=True)
    ar = dv.apply_async(maybe_fail, ipp.Reference("i"))
    with pytest.raises(error.CompositeError) as exc:
        ar.get(timeout=10)
    assert [x[0] for x in exc.value.elist] == ["ValueError"]
    with pytest.raises(error.RemoteError) as exc2:
        exc.value.raise_exception()
    assert exc2.value.ename == "ValueError"
    assert len(exc.value.elist) == 1  # only the engine that raised


def test_metadata_timestamps(rc):
    before = _utcnow()
    e = rc[rc.ids[-1]]
    ar = e.apply_async(time.sleep, 0.2)
    ar.get(timeout=10)
    after = _utcnow()
    stamps = [ar.submitted, ar.started, ar.completed, ar.received]
    for s in stamps:
        assert isinstance(s, datetime.datetime)
        assert s.tzinfo is not None and s.utcoffset() == datetime.timedelta(0), s
    submitted, started, completed, received = stamps
    slack = datetime.timedelta(seconds=1)  # clock granularity between processes
    assert before - slack <= submitted <= started <= completed <= received <= after + slack
    assert completed - started >= datetime.timedelta(seconds=0.19)
    assert ar.engine_id == rc.ids[-1]
    assert ar.engine_uuid == rc._engines[rc.ids[-1]]
    assert 0.19 <= ar.wall_time < 10


def test_queue_status(rc):
    qs = rc.queue_status()
    assert set(k for k in qs if k != "unassigned") == set(rc.ids)
    assert qs["unassigned"] == 0
    done_before = {eid: qs[eid]["completed"] for eid in rc.ids}
    e = rc[rc.ids[0]]
    ars = [e.apply_async(time.sleep, 0.6) for _ in range(3)]
    # the hub counts them as pending on that engine (a Python hub learns it asynchronously)
    deadline = time.monotonic() + 0.5
    while rc.queue_status(targets=rc.ids[0])["queue"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rc.queue_status(targets=rc.ids[0])["queue"] >= 2
    for ar in ars:
        ar.get(timeout=10)

    def settled():
        q = rc.queue_status()
        return all(q[eid]["queue"] == 0 and q[eid]["tasks"] == 0 for eid in rc.ids) and q

    deadline = time.monotonic() + 5
    qs = None
    while time.monotonic() < deadline:
        qs = settled()
        if qs:
            break
        time.sleep(0.1)
    assert qs, "queue counts did not return to 0: %r" % rc.queue_status()
    assert qs[rc.ids[0]]["completed"] == done_before[rc.ids[0]] + 3
    verbose = rc.queue_status(targets=[rc.ids[0]], verbose=True)
    assert set(ar.msg_ids[0] for ar in ars) <= set(verbose[rc.ids[0]]["completed"])


def test_clear(rc):
    dv = rc[:]
    dv.block = True
    dv["keep_me"] = 1
    assert dv["keep_me"] == [1, 1]
    dv.clear(block=True)
    with pytest.raises(error.CompositeError) as exc:
        dv.pull("keep_me")
    assert {x[0] for x in exc.value.elist} == {"NameError"}


def test_abort_queued(rc):
    e = rc[rc.ids[0]]
    busy = e.apply_async(time.sleep, 1.5)
    queued = [e.apply_async(lambda i: i, i) for i in range(3)]
    e.abort(queued[:2], block=True)
    assert busy.get(timeout=10) is None
    for ar in queued[:2]:
        with pytest.raises(error.TaskAborted):
            ar.get(timeout=10)
    assert queued[2].get(timeout=10) == 2  # not aborted


def test_eight_mib_argument_roundtrip(rc):
    payload = os.urandom(8 * 1024 * 1024)
    digest = hashlib.sha256(payload).hexdigest()
    e = rc[rc.ids[0]]

    def digest_of(b):
        import hashlib

        return hashlib.sha256(b).hexdigest(), len(b)

    assert e.apply_sync(digest_of, payload) == (digest, len(payload))
    back = e.apply_sync(lambda b: b, payload)
    assert back == payload
    try:
        import numpy as np
    except ImportError:
        return
    arr = np.frombuffer(payload, dtype=np.uint8).copy()
    out = e.apply_sync(lambda a: a[::-1].copy(), arr)
    assert out.dtype == arr.dtype and (out == arr[::-1]).all()


def test_get_result_from_second_client(cluster, rc):
    e = rc[rc.ids[0]]
    ar = e.apply_async(lambda x: ("done", x), 7)
    assert ar.get(timeout=10) == ("done", 7)
    msg_id = ar.msg_ids[0]
    other = cluster.client()
    try:
        status = other.result_status([msg_id])  # status only
        assert status["completed"] == [msg_id] and status["pending"] == []
        assert msg_id not in status
        ahr = other.get_result(msg_id)  # not known locally: fetched from the hub
        assert isinstance(ahr, ipp.AsyncHubResult)
        assert ahr.get(timeout=10) == ("done", 7)
        assert ahr.engine_id == rc.ids[0]
        before = ar.submitted
        assert ahr.submitted == before
        assert ahr.received.utcoffset() == datetime.timedelta(0)
        assert ahr.submitted <= ahr.started <= ahr.completed
        assert abs(ahr.received - _utcnow()) < datetime.timedelta(seconds=60)
        third = cluster.client()
        try:
            status = third.result_status([msg_id], status_only=False)
            assert status["completed"] == [msg_id] and status["pending"] == []
            assert status[msg_id] == ("done", 7)
        finally:
            third.close(linger=0)
            cluster.clients.remove(third)
        with pytest.raises(error.RemoteError) as exc:
            other.result_status(["no-such-msg-id"])
        assert exc.value.ename == "KeyError"
    finally:
        other.close(linger=0)
        cluster.clients.remove(other)


def test_two_clients_at_once(cluster, rc):
    other = cluster.client()
    try:
        other.wait_for_engines(len(rc.ids), timeout=10)
        assert other.ids == rc.ids
        assert other._engines == rc._engines

        def loud(tag, n):
            import time

            for i in range(n):
                print(tag, i)
                time.sleep(0.02)
            return tag

        ar1 = rc[:].apply_async(loud, "first", 10)
        ar2 = other[:].apply_async(loud, "second", 10)
        assert ar1.get(timeout=15) == ["first", "first"]
        assert ar2.get(timeout=15) == ["second", "second"]
        ar1.wait_for_output(timeout=10)
        ar2.wait_for_output(timeout=10)
        expect1 = "".join("first %d\n" % i for i in range(10))
        expect2 = "".join("second %d\n" % i for i in range(10))
        assert ar1.stdout == [expect1, expect1]
        assert ar2.stdout == [expect2, expect2]
    finally:
        other.close(linger=0)
        cluster.clients.remove(other)


def test_hub_record_keeps_outputs(cluster, rc):
    """What an execute printed and returned is in the hub's record: another client sees it."""
    e = rc[rc.ids[-1]]
    code = "print('to stdout'); import sys; print('to stderr', file=sys.stderr); 6 * 7"
    ar = e.execute(code, silent=False, block=False)
    ar.get(timeout=10)
    ar.wait_for_output(timeout=10)
    bad = e.apply_async(lambda: {}["missing"])
    with pytest.raises(error.RemoteError):
        bad.get(timeout=10)
    other = cluster.client()
    try:
        def fetch(msg_id):
            # a Python hub records outputs asynchronously: poll until they are there
            deadline = time.monotonic() + 5
            while True:
                ahr = other.get_result(msg_id)
                try:
                    ahr.get(timeout=10)
                except error.RemoteError:
                    pass
                if ahr.stdout or ahr.error or time.monotonic() > deadline:
                    return ahr
                other.results.pop(msg_id, None)
                other.metadata.pop(msg_id, None)
                time.sleep(0.1)

        ahr = fetch(ar.msg_ids[0])
        reply = ahr.get(timeout=10)
        assert reply.execute_result["data"]["text/plain"] == "42"
        assert ahr.stdout == "to stdout\n"
        assert ahr.stderr == "to stderr\n"
        assert ahr.execute_input == code
        ahr = fetch(bad.msg_ids[0])
        with pytest.raises(error.RemoteError) as exc:
            ahr.get(timeout=10)
        assert exc.value.ename == "KeyError"
        assert ahr.error["ename"] == "KeyError"
    finally:
        other.close(linger=0)
        cluster.clients.remove(other)
