"""The hub's task-database requests with the real ipyparallel Client and engines, per backend.

hub_history, db_query, get_result/result_status from another client, resubmit and purge, each
checked as a user of ipyparallel sees them, once per task-database backend: one test class per
backend, with its own controller (and two engines) shared by the tests of the class. The purges
come last in each class, because they take away what earlier tests made. The backends that keep
records (SQLite; MongoDB, here against a wire-compatible stand-in server) are also checked across
a controller restart: the earlier run's records are still there for db_query, get_result,
hub_history and resubmit.

Without CPAR_CONTROLLER these tests run against ipyparallel's own controller, which is how they
are checked; what fails there because of ipyparallel 7.1's defects is skipped with the reason.
"""
import datetime
import os
import subprocess
import time

import pytest

import ipyparallel as ipp
from ipyparallel import error
from ipyparallel.serialize import deserialize_object, unpack_apply_message

import cparallel_testlib as tl

UTC = datetime.timezone.utc

# Every key of a record that db_query shows by default (ipyparallel 7.1's TaskRecord without
# its buffers). A record may also hold display_data, once an engine published some.
DEFAULT_KEYS = {
    "msg_id", "header", "content", "metadata", "submitted", "client_uuid", "engine_uuid",
    "started", "completed", "resubmitted", "received", "result_header", "result_metadata",
    "result_content", "queue", "execute_input", "execute_result", "error", "stdout", "stderr",
}


# ---- run on the engines --------------------------------------------------------------------

def _ident(x):
    return x


def _random():
    import random

    return random.random()


def _sleep_then(seconds, value):
    import time

    time.sleep(seconds)
    return value


def _reverse(data):
    return data[::-1]


# ---- helpers -------------------------------------------------------------------------------

def _now():
    return datetime.datetime.now(UTC)


def _close(cluster, client):
    try:
        client.close(linger=0)
    except Exception:
        pass
    if client in cluster.clients:
        cluster.clients.remove(client)


def _wait_idle(rc, msg_ids=None, timeout=10):
    """Wait until the hub lists `msg_ids` (default: the client's whole history) and nothing is
    pending on any engine, as ipyparallel's own tests do before purging or resubmitting."""
    rc.wait(timeout=timeout)
    want = set(rc.history if msg_ids is None else msg_ids)
    tl.wait_for(lambda: not want.difference(rc.hub_history()), timeout,
                interval=0.1, what="the hub to list every request")

    def idle():
        qs = rc.queue_status()
        return not qs["unassigned"] and not any(
            qs[e]["tasks"] + qs[e]["queue"] for e in qs if e != "unassigned")

    tl.wait_for(idle, timeout, interval=0.1, what="the hub to be idle")


def _remote_error(call, *args, **kw):
    with pytest.raises(error.RemoteError) as exc:
        call(*args, **kw)
    return exc.value


def _query_raw(rc, msg_type, content):
    """Send one hub query as the client would and return the reply content (for requests the
    client checks locally first, such as purges of unknown engines)."""
    return rc._send_recv(rc._query_stream, msg_type, content=content)["content"]


def _python_backend(cls, backend):
    """The test runs against ipyparallel's own controller with this backend."""
    return cls.BACKEND == backend and not tl.controller_is_cpcontroller()


def _python_sqlite(cls):
    return _python_backend(cls, "sqlite")


# ipyparallel 7.1's MongoDB (pymongo 3) gives dates back naive, which the client then takes as
# local time, and to the millisecond.
_PY_MONGO_DATES = "ipyparallel 7.1's MongoDB backend returns naive millisecond dates"


def _new_cluster(request, cls, name):
    """A cluster for `cls`'s backend (not started): its controller arguments and profile."""
    c = tl.Cluster(name=name, controller_args=list(cls.CONTROLLER_ARGS))
    cls.prepare_profile(request, c)
    return c


@pytest.fixture(scope="class")
def db_cluster(request):
    """A controller with the test class's backend and two engines, shared by the class."""
    cls = request.cls
    c = _new_cluster(request, cls, cls.__name__.lower()[:20])
    c.start_or_fail(cls.ENGINES)
    yield c
    c.finish()


@pytest.fixture(scope="module")
def mongodb_uri():
    """A MongoDB server for the MongoDB backend: CPAR_TEST_MONGODB_URI when set (a real server),
    else the wire-compatible stand-in of tests/support/mongo_standin.py (not MongoDB), started
    for this module."""
    uri = os.environ.get("CPAR_TEST_MONGODB_URI", "").strip()
    if uri:
        yield uri
        return
    script = os.path.join(os.path.dirname(os.path.abspath(tl.__file__)), "mongo_standin.py")
    proc = subprocess.Popen([tl.python_executable(), script, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        line = proc.stdout.readline().decode("utf-8", "replace").strip()
        if " listening on " not in line:
            pytest.fail("the MongoDB stand-in did not start (%r, status %r)" % (line, proc.poll()))
        yield line.rpartition(" listening on ")[2]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()


# ---- the suite, once per backend -----------------------------------------------------------

class _DBSuite:
    BACKEND = None
    CONTROLLER_ARGS = ()
    ENGINES = 2

    @classmethod
    def prepare_profile(cls, request, cluster):
        """Settings the backend needs in the profile, before the controller starts."""

    @pytest.fixture
    def rc(self, db_cluster):
        client = db_cluster.client()
        client.wait_for_engines(self.ENGINES, timeout=15)
        yield client
        _close(db_cluster, client)

    @pytest.fixture
    def rc2(self, db_cluster):
        """A second client: it knows nothing of what the first one submitted."""
        client = db_cluster.client()
        yield client
        _close(db_cluster, client)

    # -- hub_history ----------------------------------------------------------------------

    def test_hub_history(self, rc):
        lv = rc.load_balanced_view()
        ars = [rc[:].apply_async(_ident, "direct"), lv.apply_async(_ident, "balanced"),
               rc[rc.ids[0]].execute("x = 1", block=False)]
        for ar in ars:
            ar.get(timeout=10)
        mine = [m for ar in ars for m in ar.msg_ids]
        _wait_idle(rc, mine)
        hist = rc.hub_history()
        assert len(hist) == len(set(hist))
        assert set(mine) <= set(hist)
        recs = {r["msg_id"]: r for r in rc.db_query({"msg_id": {"$in": hist}}, keys=["submitted"])}
        assert set(recs) == set(hist)
        submitted = [recs[m]["submitted"] for m in hist]
        assert None not in submitted
        assert submitted == sorted(submitted)
        # the newest request is the last entry
        ar = rc[rc.ids[-1]].apply_async(_ident, "last")
        ar.get(timeout=10)
        tl.wait_for(lambda: rc.hub_history()[-1:] == ar.msg_ids, 5, interval=0.1,
                    what="the newest request at the end of hub_history")

    # -- db_query -------------------------------------------------------------------------

    def test_db_query_by_msg_id(self, rc):
        started = _now()
        eid = rc.ids[0]
        ar = rc[eid].apply_async(_ident, "by id")
        lar = rc.load_balanced_view().apply_async(_ident, "balanced")
        assert ar.get(timeout=10) == "by id" and lar.get(timeout=10) == "balanced"
        _wait_idle(rc, ar.msg_ids + lar.msg_ids)
        msg_id = ar.msg_ids[0]
        (rec,) = rc.db_query({"msg_id": msg_id})
        assert set(rec) - {"display_data"} == DEFAULT_KEYS
        assert rec["msg_id"] == msg_id
        assert rec["header"]["msg_id"] == msg_id
        assert rec["header"]["msg_type"] == "apply_request"
        assert rec["header"]["session"] == rc.session.session
        assert rec["client_uuid"] == rc.session.session
        assert rec["engine_uuid"] == rc._engines[eid]
        assert rec["queue"] == "mux"
        assert rec["resubmitted"] is None
        assert rec["result_header"]["msg_type"] == "apply_reply"
        assert rec["result_content"]["status"] == "ok"
        assert rec["result_metadata"]["status"] == "ok"
        assert rec["stdout"] == "" and rec["stderr"] == ""
        for key in () if _python_backend(self, "mongodb") else (
                "submitted", "started", "completed", "received"):
            assert isinstance(rec[key], datetime.datetime), key
            assert rec[key].utcoffset() == datetime.timedelta(0), key
            # a clock read as local time would be hours off here (the tests run in IST)
            assert started - datetime.timedelta(seconds=5) < rec[key] < _now() + datetime.timedelta(seconds=5), key
        assert rec["submitted"] <= rec["started"] <= rec["completed"]
        if not _python_backend(self, "mongodb"):  # see _PY_MONGO_DATES
            assert rec["submitted"] == ar.submitted
        # several ids at once, exactly those
        ids = ar.msg_ids + lar.msg_ids
        found = rc.db_query({"msg_id": {"$in": ids}}, keys=["queue"])
        assert sorted(r["msg_id"] for r in found) == sorted(ids)
        assert {r["msg_id"]: r["queue"] for r in found} == {msg_id: "mux", lar.msg_ids[0]: "task"}
        assert rc.db_query({"msg_id": "no-such-msg-id"}) == []
        others = rc.db_query({"msg_id": {"$nin": ids}}, keys=["msg_id"])
        assert not set(ids) & {r["msg_id"] for r in others}

    def test_db_query_time_ranges(self, rc):
        if _python_backend(self, "mongodb"):
            pytest.skip(_PY_MONGO_DATES)
        ids = []
        for i in range(5):
            ar = rc[rc.ids[i % 2]].apply_async(_ident, i)
            ar.get(timeout=10)
            ids += ar.msg_ids
            time.sleep(0.02)
        _wait_idle(rc, ids)
        mine = {"$in": ids}
        recs = rc.db_query({"msg_id": mine}, keys=["submitted", "completed"])
        assert len(recs) == 5
        for field in ("submitted", "completed"):
            times = sorted(r[field] for r in recs)
            middle = times[2]
            before = rc.db_query({"msg_id": mine, field: {"$lt": middle}}, keys=[field])
            after = rc.db_query({"msg_id": mine, field: {"$gte": middle}}, keys=[field])
            assert len(before) + len(after) == 5
            assert all(r[field] < middle for r in before)
            assert all(r[field] >= middle for r in after)
            assert len(before) == 2
            upto = rc.db_query({"msg_id": mine, field: {"$lte": middle}}, keys=[field])
            assert len(upto) == 3
            same = rc.db_query({field: middle}, keys=[field])
            assert same and all(r[field] == middle for r in same)
            # a window on both sides
            inside = rc.db_query({"msg_id": mine, field: {"$gte": times[1], "$lt": times[3]}},
                                 keys=[field])
            assert sorted(r[field] for r in inside) == times[1:3]

    def test_db_query_completed(self, rc, rc2):
        done = rc[rc.ids[0]].apply_async(_ident, "done")
        done.get(timeout=10)
        _wait_idle(rc, done.msg_ids)
        slow = rc2.load_balanced_view().apply_async(_sleep_then, 3, "slow")
        tl.wait_for(lambda: slow.msg_ids[0] in rc.hub_history(), 5, interval=0.1,
                    what="the hub to see the slow task")
        finished = {r["msg_id"] for r in rc.db_query({"completed": {"$ne": None}}, keys=["completed"])}
        assert done.msg_ids[0] in finished
        assert slow.msg_ids[0] not in finished
        unfinished = rc.db_query({"completed": None}, keys=["completed", "queue"])
        assert slow.msg_ids[0] in {r["msg_id"] for r in unfinished}
        assert all(r["completed"] is None for r in unfinished)
        assert slow.get(timeout=15) == "slow"
        _wait_idle(rc2, slow.msg_ids)
        (rec,) = rc.db_query({"msg_id": slow.msg_ids[0]}, keys=["completed", "engine_uuid"])
        assert isinstance(rec["completed"], datetime.datetime)
        assert rec["engine_uuid"] in rc._engines.values()

    def test_db_query_keys_and_buffers(self, rc):
        payloads = [os.urandom(5000), os.urandom(3000)]
        ars = [rc[rc.ids[i]].apply_async(_reverse, p) for i, p in enumerate(payloads)]
        for ar, p in zip(ars, payloads):
            assert ar.get(timeout=10) == p[::-1]
        ids = [ar.msg_ids[0] for ar in ars]
        _wait_idle(rc, ids)
        # keys: exactly msg_id and the keys asked for
        for keys, want in (
            (["submitted", "completed"], {"msg_id", "submitted", "completed"}),
            (["msg_id"], {"msg_id"}),
            ("header", {"msg_id", "header"}),
            (["buffers"], {"msg_id", "buffers"}),
        ):
            recs = rc.db_query({"msg_id": {"$in": ids}}, keys=keys)
            assert len(recs) == 2
            assert all(set(r) == want for r in recs), (keys, [set(r) for r in recs])
        # no buffers unless asked for
        for rec in rc.db_query({"msg_id": {"$in": ids}}):
            assert "buffers" not in rec and "result_buffers" not in rec
        # buffers and result buffers, byte for byte, each with its own record
        recs = rc.db_query({"msg_id": {"$in": ids}},
                           keys=["buffers", "result_buffers", "result_content"])
        assert len(recs) == 2
        for rec in recs:
            p = payloads[ids.index(rec["msg_id"])]
            bufs = [bytes(b) for b in rec["buffers"]]
            rbufs = [bytes(b) for b in rec["result_buffers"]]
            assert p in bufs
            assert p[::-1] in rbufs
            f, args, kwargs = unpack_apply_message(list(rec["buffers"]), copy=True)
            assert args == (p,) and kwargs == {}
            assert f(*args) == p[::-1]
            value, rest = deserialize_object(list(rec["result_buffers"]))
            assert value == p[::-1] and not rest
            assert rec["result_content"]["status"] == "ok"
        # only the request buffers
        for rec in rc.db_query({"msg_id": {"$in": ids}}, keys=["buffers"]):
            assert payloads[ids.index(rec["msg_id"])] in [bytes(b) for b in rec["buffers"]]
        # only the result buffers
        for rec in rc.db_query({"msg_id": {"$in": ids}}, keys=["result_buffers"]):
            assert payloads[ids.index(rec["msg_id"])][::-1] in [bytes(b) for b in rec["result_buffers"]]

    def test_db_query_empty(self, rc):
        if _python_sqlite(self):
            pytest.skip("ipyparallel 7.1's SQLiteDB fails on {} and on an empty $in (SQL syntax)")
        ar = rc[rc.ids[0]].apply_async(_ident, 1)
        ar.get(timeout=10)
        _wait_idle(rc, ar.msg_ids)
        hist = rc.hub_history()
        everything = rc.db_query({}, keys=["submitted"])
        assert set(hist) <= {r["msg_id"] for r in everything}
        assert rc.db_query({"msg_id": {"$in": []}}) == []
        assert rc.db_query({"msg_id": {"$in": []}}, keys=["buffers"]) == []

    def test_db_query_bad_query(self, rc):
        ar = rc[rc.ids[0]].apply_async(_ident, 1)
        ar.get(timeout=10)
        _wait_idle(rc, ar.msg_ids)
        e = _remote_error(rc.db_query, {"msg_id": {"$bogus": 1}})
        # (ipyparallel's MongoDB passes the query on, and the server's OperationFailure back)
        assert e.ename == ("OperationFailure" if _python_backend(self, "mongodb") else "KeyError")
        assert "$bogus" in e.evalue
        if not _python_backend(self, "mongodb"):  # it projects an unknown key to nothing
            e = _remote_error(rc.db_query, {"msg_id": {"$ne": ""}}, keys=["no_such_key"])
            assert e.ename == "KeyError"
        # the controller still answers
        assert rc.db_query({"msg_id": ar.msg_ids[0]}, keys=["msg_id"]) == [{"msg_id": ar.msg_ids[0]}]

    # -- get_result / result_status from another client ---------------------------------

    def test_result_from_second_client(self, rc, rc2):
        eid = rc.ids[0]
        done = rc[eid].apply_async(_ident, "done")
        assert done.get(timeout=10) == "done"
        execute = rc[eid].execute("print('shown'); 6 * 7", silent=False, block=False)
        execute.get(timeout=10)
        _wait_idle(rc, done.msg_ids + execute.msg_ids)
        slow = rc.load_balanced_view().apply_async(_sleep_then, 2.5, "late")
        tl.wait_for(lambda: slow.msg_ids[0] in rc.hub_history(), 5, interval=0.1,
                    what="the hub to see the slow task")
        done_id, slow_id = done.msg_ids[0], slow.msg_ids[0]

        status = rc2.result_status([slow_id, done_id])
        assert status["completed"] == [done_id]
        assert status["pending"] == [slow_id]
        status = rc2.result_status([done_id, slow_id], status_only=False)
        assert status["completed"] == [done_id] and status["pending"] == [slow_id]
        assert status[done_id] == "done"
        # the hub answers each id once, in sorted order
        reply = _query_raw(rc2, "result_request",
                           {"msg_ids": [slow_id, done_id, slow_id, done_id], "status_only": True})
        assert reply["status"] == "ok"
        assert reply["completed"] == [done_id] and reply["pending"] == [slow_id]

        ahr = rc2.get_result(slow_id)  # still running: the client polls the hub
        assert isinstance(ahr, ipp.AsyncHubResult)
        assert ahr.get(timeout=15) == "late"
        assert rc2.result_status([slow_id])["completed"] == [slow_id]
        assert slow.get(timeout=10) == "late"

        # forget the cached result: get_result asks the hub again
        rc2.results.pop(done_id, None)
        rc2.metadata.pop(done_id, None)
        ahr = rc2.get_result(done_id)
        assert isinstance(ahr, ipp.AsyncHubResult)
        assert ahr.get(timeout=10) == "done"
        assert ahr.engine_id == eid

        reply = rc2.get_result(execute.msg_ids[0]).get(timeout=10)
        if not _python_sqlite(self):  # its SQLiteDB gives execute_result back as JSON text
            assert reply.execute_result["data"]["text/plain"] == "42"

        e = _remote_error(rc2.result_status, ["no-such-msg-id"])
        assert e.ename == "KeyError"
        assert "No such message: no-such-msg-id" in e.evalue
        e = _remote_error(rc2.result_status, [done_id, "no-such-msg-id"], status_only=False)
        assert e.ename == "KeyError"

    # -- resubmit ------------------------------------------------------------------------

    def test_resubmit(self, rc):
        lv = rc.load_balanced_view()
        lv.retries = 1
        ar = lv.apply_async(_random)
        r1 = ar.get(timeout=10)
        _wait_idle(rc, ar.msg_ids)
        ahr = rc.resubmit(ar.msg_ids)
        assert isinstance(ahr, ipp.AsyncHubResult)
        (r2,) = ahr.get(timeout=10)  # resubmit's results are always a list
        assert isinstance(r2, float) and r2 != r1
        old, new = ar.msg_ids[0], ahr.msg_ids[0]
        assert new != old
        _wait_idle(rc, [new])
        recs = {r["msg_id"]: r for r in rc.db_query({"msg_id": {"$in": [old, new]}})}
        assert recs[old]["resubmitted"] == new
        assert recs[new]["resubmitted"] is None
        assert isinstance(recs[new]["completed"], datetime.datetime)
        assert recs[new]["queue"] == "task"
        assert recs[new]["metadata"] == {}
        assert recs[new]["content"] == recs[old]["content"]
        assert recs[new]["result_content"]["status"] == "ok"
        h1, h2 = recs[old]["header"], recs[new]["header"]
        assert set(h1) == set(h2)
        for key in h1:
            if key in ("msg_id", "date"):
                assert h1[key] != h2[key], key
            else:
                assert h1[key] == h2[key], key
        assert h2["msg_id"] == new
        assert rc.hub_history()[-1] == new
        # the same buffers went again
        bufs = {r["msg_id"]: [bytes(b) for b in r["buffers"]]
                for r in rc.db_query({"msg_id": {"$in": [old, new]}}, keys=["buffers"])}
        assert bufs[old] == bufs[new]

    def test_resubmit_direct_chain_and_inflight(self, rc):
        # a direct request is resubmitted through the load balancer
        ar = rc[rc.ids[-1]].apply_async(_ident, "again")
        assert ar.get(timeout=10) == "again"
        _wait_idle(rc, ar.msg_ids)
        ahr = rc.resubmit(ar.msg_ids)
        assert ahr.get(timeout=10) == ["again"]
        # a resubmission resubmitted
        ahr2 = rc.resubmit(ahr.msg_ids)
        assert ahr2.get(timeout=10) == ["again"]
        _wait_idle(rc, ahr2.msg_ids)
        (rec,) = rc.db_query({"msg_id": ahr.msg_ids[0]}, keys=["resubmitted", "queue"])
        assert rec["resubmitted"] == ahr2.msg_ids[0] and rec["queue"] == "task"
        # several at once, one of them still running
        lv = rc.load_balanced_view()
        slow = lv.apply_async(_sleep_then, 1, "slow")
        quick = lv.apply_async(_ident, "quick")
        quick.get(timeout=10)
        tl.wait_for(lambda: slow.msg_ids[0] in rc.hub_history(), 5, interval=0.1,
                    what="the hub to see the slow task")
        both = rc.resubmit(slow.msg_ids + quick.msg_ids)
        assert len(both.msg_ids) == 2
        assert sorted(both.get(timeout=15)) == ["quick", "slow"]
        assert slow.get(timeout=10) == "slow"

    def test_resubmit_unknown(self, rc):
        e = _remote_error(rc.resubmit, ["no-such-msg-id"])
        assert e.ename == "KeyError"
        assert "No such msg(s)" in e.evalue and "no-such-msg-id" in e.evalue
        ar = rc[rc.ids[0]].apply_async(_ident, 1)
        ar.get(timeout=10)
        _wait_idle(rc, ar.msg_ids)
        e = _remote_error(rc.resubmit, ar.msg_ids + ["no-such-msg-id"])
        assert e.ename == "KeyError"
        assert ar.msg_ids[0] not in e.evalue
        (rec,) = rc.db_query({"msg_id": ar.msg_ids[0]}, keys=["resubmitted"])
        assert rec["resubmitted"] is None

    # -- purge (last: these take records away) ---------------------------------------------

    def test_purge_by_msg_id(self, rc, rc2):
        ars = [rc[rc.ids[i % 2]].apply_async(_ident, i) for i in range(3)]
        for ar in ars:
            ar.get(timeout=10)
        ids = [ar.msg_ids[0] for ar in ars]
        _wait_idle(rc, ids)
        hist = rc.hub_history()
        rc.purge_hub_results(ids[:2])
        newhist = rc.hub_history()
        assert newhist == [m for m in hist if m not in ids[:2]]
        assert [r["msg_id"] for r in rc.db_query({"msg_id": {"$in": ids}})] == ids[2:]
        e = _remote_error(rc2.result_status, ids[:1], status_only=False)
        assert e.ename == "KeyError"
        assert rc2.get_result(ids[2]).get(timeout=10) == 2
        # unknown ids are ignored
        rc.purge_hub_results(["no-such-msg-id"])
        assert rc.hub_history() == newhist

    def test_purge_pending_refused(self, rc):
        slow = rc.load_balanced_view().apply_async(_sleep_then, 2, "slow")
        tl.wait_for(lambda: slow.msg_ids[0] in rc.hub_history(), 5, interval=0.1,
                    what="the hub to see the slow task")
        e = _remote_error(rc.purge_hub_results, slow.msg_ids)
        assert e.ename == "IndexError"
        assert "msg pending" in e.evalue and slow.msg_ids[0] in e.evalue
        assert slow.msg_ids[0] in rc.hub_history()
        assert slow.get(timeout=10) == "slow"

    def test_purge_by_engine(self, rc):
        if not tl.controller_is_cpcontroller():
            pytest.skip("ipyparallel 7.1 purges nothing by engine: its DictDB tests engine_uuid "
                        "against the last query value, its SQLiteDB fails on the empty $in")
        e0, e1 = rc.ids[:2]
        ars0 = [rc[e0].apply_async(_ident, i) for i in range(3)]
        ars1 = [rc[e1].apply_async(_ident, i) for i in range(2)]
        for ar in ars0 + ars1:
            ar.get(timeout=10)
        ids0 = [ar.msg_ids[0] for ar in ars0]
        ids1 = [ar.msg_ids[0] for ar in ars1]
        _wait_idle(rc, ids0 + ids1)
        uuid0 = rc._engines[e0]
        assert rc.db_query({"engine_uuid": uuid0, "completed": {"$ne": None}}, keys=["msg_id"])
        rc.purge_hub_results(targets=[e0])
        assert rc.db_query({"engine_uuid": uuid0, "completed": {"$ne": None}}, keys=["msg_id"]) == []
        hist = rc.hub_history()
        assert not set(ids0) & set(hist)
        assert set(ids1) <= set(hist)
        # an engine the hub does not have (the client refuses it before asking)
        reply = _query_raw(rc, "purge_request", {"msg_ids": [], "engine_ids": [9999]})
        assert reply["status"] == "error"
        assert reply["ename"] == "IndexError"
        assert "No such engine: 9999" in reply["evalue"]
        assert set(ids1) <= set(rc.hub_history())
        # ids and an engine in one request
        ar = rc[e1].apply_async(_ident, "x")
        ar.get(timeout=10)
        _wait_idle(rc, ar.msg_ids)
        rc.purge_hub_results(ids1[:1], targets=[e0])
        assert not set(ids1[:1]) & set(rc.hub_history())
        assert ids1[1] in rc.hub_history()

    def test_purge_everything(self, rc, rc2):
        for _ in range(3):
            rc[:].apply_sync(_ident, 1)
        _wait_idle(rc)
        slow = rc2.load_balanced_view().apply_async(_sleep_then, 2, "slow")
        tl.wait_for(lambda: slow.msg_ids[0] in rc.hub_history(), 5, interval=0.1,
                    what="the hub to see the slow task")
        rc.purge_everything()
        assert len(rc.results) == 0 and len(rc.history) == 0
        # what has not finished is kept
        assert rc.hub_history() == slow.msg_ids
        assert slow.get(timeout=10) == "slow"
        _wait_idle(rc2, slow.msg_ids)
        rc.purge_hub_results("all")
        assert rc.hub_history() == []
        assert rc.db_query({"completed": {"$ne": None}}, keys=["msg_id"]) == []


class _PersistentSuite(_DBSuite):
    """Backends whose records outlive the controller."""

    @pytest.mark.cpar_timeout(180)
    def test_restart_keeps_records(self, request):
        """Stop the controller and start it again on the same profile: the earlier run's
        records are found by hub_history, db_query, get_result and resubmit."""
        if self.BACKEND == "sqlite" and not tl.controller_is_cpcontroller():
            pytest.skip("ipyparallel 7.1's SQLiteDB does not recognise its own table after a "
                        "restart and starts a new one")
        c = _new_cluster(request, type(self), "restart" + self.BACKEND)
        c.start_or_fail(2)
        try:
            self._restart_keeps_records(c)
        except BaseException:
            c.stop()
            c.cleanup()
            raise
        c.finish()

    def _restart_keeps_records(self, c):
        rc = c.client()
        rc.wait_for_engines(2, timeout=15)
        payload = os.urandom(2048)
        direct = rc[rc.ids[0]].apply_async(_reverse, payload)
        balanced = rc.load_balanced_view().apply_async(_ident, "balanced")
        execute = rc[rc.ids[1]].execute("print('before'); 6 * 7", silent=False, block=False)
        for ar in (direct, balanced, execute):
            ar.get(timeout=10)
        ids = direct.msg_ids + balanced.msg_ids + execute.msg_ids
        _wait_idle(rc, ids)
        hist1 = rc.hub_history()
        recs1 = {r["msg_id"]: r for r in rc.db_query({"msg_id": {"$in": ids}})}

        c.close_clients()
        for e in c.engines:
            e.stop()
        assert c.controller.stop() == 0, c.report()
        if self.BACKEND == "sqlite":
            assert os.path.isfile(os.path.join(c.profile_dir, "tasks.db"))
        c.controller.start()
        c.start_engines(1)
        rc = c.client()
        rc.wait_for_engines(1, timeout=30)

        hist2 = rc.hub_history()
        assert hist2[:len(hist1)] == hist1
        recs2 = {r["msg_id"]: r for r in rc.db_query({"msg_id": {"$in": ids}})}
        assert set(recs2) == set(ids)
        for m in ids:
            for key in ("submitted", "completed", "engine_uuid", "queue", "header",
                        "result_content", "stdout"):
                assert recs2[m][key] == recs1[m][key], (m, key)
        (rec,) = rc.db_query({"msg_id": direct.msg_ids[0]}, keys=["buffers", "result_buffers"])
        assert payload in [bytes(b) for b in rec["buffers"]]
        assert payload[::-1] in [bytes(b) for b in rec["result_buffers"]]
        done = rc.db_query({"completed": {"$ne": None}, "msg_id": {"$in": ids}}, keys=["msg_id"])
        assert sorted(r["msg_id"] for r in done) == sorted(ids)

        # (ipyparallel 7.1 fails here with NameError: it tests a record it never read)
        status = rc.result_status(ids, status_only=False)
        assert sorted(status["completed"]) == sorted(ids) and status["pending"] == []
        assert status[direct.msg_ids[0]] == payload[::-1]
        rc.results.clear()
        assert rc.get_result(balanced.msg_ids[0]).get(timeout=10) == "balanced"
        ahr = rc.get_result(execute.msg_ids[0])
        assert ahr.get(timeout=10).execute_result["data"]["text/plain"] == "42"
        assert ahr.stdout == "before\n"

        # an earlier run's task runs again in this one
        ahr = rc.resubmit(balanced.msg_ids)
        assert ahr.get(timeout=15) == ["balanced"]
        _wait_idle(rc, ahr.msg_ids)
        assert rc.hub_history()[-1] == ahr.msg_ids[0]
        (rec,) = rc.db_query({"msg_id": balanced.msg_ids[0]}, keys=["resubmitted"])
        assert rec["resubmitted"] == ahr.msg_ids[0]


class TestDictDB(_DBSuite):
    BACKEND = "dictdb"
    CONTROLLER_ARGS = ["--dictdb"]


class TestSQLiteDB(_PersistentSuite):
    BACKEND = "sqlite"
    CONTROLLER_ARGS = ["--sqlitedb"]

    def test_sqlite_file_in_profile(self, db_cluster, rc):
        ar = rc[rc.ids[0]].apply_async(_ident, 1)
        ar.get(timeout=10)
        assert os.path.isfile(os.path.join(db_cluster.profile_dir, "tasks.db"))


class TestMongoDBStandIn(_PersistentSuite):
    """The MongoDB backend against tests/support/mongo_standin.py, a wire-compatible stand-in
    built from mockupdb and mongomock (not MongoDB; CPAR_TEST_MONGODB_URI names a real server)."""
    BACKEND = "mongodb"
    CONTROLLER_ARGS = ["--mongodb"]

    @classmethod
    def prepare_profile(cls, request, cluster):
        uri = request.getfixturevalue("mongodb_uri")
        # one database per cluster (the restart test reuses its cluster's profile and database)
        database = "cpar-test-" + os.path.basename(cluster.tmp)
        with open(os.path.join(cluster.profile_dir, "ipcontroller_config.py"), "a") as f:
            f.write("c.MongoDB.connection_args = [%r]\n" % uri)
            f.write("c.MongoDB.database = %r\n" % database)
