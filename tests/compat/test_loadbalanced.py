"""Load-balanced (task) and broadcast scheduling through a controller, with every scheduler scheme.

Each scheme has a test class whose tests share one cluster: a controller started with
``--scheme=NAME`` and three engines. Tests that kill engines start a cluster of their own, so the
shared one keeps its three engines. What is asserted is what a user of ipyparallel notices:
results and their order, which engine ran what (``AsyncResult.engine_id`` and the engine's pid),
when it ran (``started``/``completed``), the errors the scheduler sends (ImpossibleDependency,
InvalidDependency, TaskTimeout, EngineError, RemoteError) and what the hub reports afterwards.

The connection file of a cpcontroller always advertises task_scheme "leastload", so with
``--scheme=pure`` the client does not refuse dependencies, targets, retries or timeouts itself;
cpcontroller refuses them with an immediate error reply. Those refusals are cpcontroller-only:
ipyparallel's own pure device silently ignores flags set on the view.
"""
import collections
import concurrent.futures
import os
import signal
import time

import pytest

import cparallel_testlib as tl
import ipyparallel as ipp
from ipyparallel import error

ENGINES = 3

# --------------------------------------------------------------------------------------------
# Functions run on the engines (they import what they use: engines run them by code, with this
# module's globals)


def whoami():
    import os

    return os.getpid()


def nap(seconds):
    import os
    import time

    time.sleep(seconds)
    return os.getpid()


def times_seven(x):
    return 7 * x


def value_and_pid(x):
    import os

    return x, os.getpid()


def nap_value(x, seconds):
    import time

    time.sleep(seconds)
    return x


def fail(seconds=0.0):
    import time

    time.sleep(seconds)
    raise ValueError("failed on purpose")


def touch(path):
    """Leave a mark that the task ran."""
    import os

    with open(path, "w") as f:
        f.write(str(os.getpid()))
    return os.getpid()


def fail_first_here(marks):
    """Fails on the first engine that runs it, and again on any engine where it failed before;
    succeeds (returning the pid) on any other engine."""
    import os

    mine = os.path.join(marks, str(os.getpid()))
    if os.path.exists(mine) or not os.listdir(marks):
        open(mine, "w").close()
        raise ValueError("first try fails")
    return os.getpid()


def fail_once_per_engine(marks):
    """Fails unless a mark for this engine exists, and leaves one: fails once on every engine."""
    import os

    mine = os.path.join(marks, str(os.getpid()))
    if not os.path.exists(mine):
        open(mine, "w").close()
        raise ValueError("no mark for this engine yet")
    return os.getpid()


def fail_everywhere(marks):
    import os

    open(os.path.join(marks, str(os.getpid())), "w").close()
    raise ValueError("always fails")


def sleep_marked(path, seconds):
    """Write the pid to `path`, then sleep."""
    import os
    import time

    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(path + ".tmp", path)
    time.sleep(seconds)
    return os.getpid()


def sleep_once(path, seconds):
    """The first run writes the pid to `path` and sleeps; a later run returns at once."""
    import os
    import time

    if os.path.exists(path):
        return "again", os.getpid()
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(path + ".tmp", path)
    time.sleep(seconds)
    return "first", os.getpid()


def fail_if_pid(pid, fail_after=0.0, ok_after=0.0):
    """Fails (after fail_after seconds) on the engine whose pid is `pid`; elsewhere returns the
    pid after ok_after seconds."""
    import os
    import time

    if os.getpid() == pid:
        time.sleep(fail_after)
        raise ValueError("this engine fails")
    time.sleep(ok_after)
    return os.getpid()


# --------------------------------------------------------------------------------------------
# Helpers


def _pids(rc):
    """{engine id: pid of that engine's process}."""
    return dict(zip(rc.ids, rc[rc.ids].apply_sync(os.getpid)))


def _remote_error(ar, ename, timeout=10):
    """Wait for `ar`; it must fail with a remote `ename`. Returns the RemoteError."""
    with pytest.raises(error.RemoteError) as exc:
        ar.get(timeout=timeout)
    assert exc.value.ename == ename, "expected %s, got %s: %s" % (
        ename, exc.value.ename, exc.value.evalue)
    return exc.value


def _timed_remote_error(ar, ename, within, t0=None):
    """As _remote_error, and the error must arrive within `within` seconds of t0 (default now)."""
    t0 = time.monotonic() if t0 is None else t0
    err = _remote_error(ar, ename, timeout=within + 10)
    elapsed = time.monotonic() - t0
    assert elapsed < within, "%s only after %.1f s (expected within %.1f s)" % (
        ename, elapsed, within)
    return err


def _round_robin(seq, n):
    """seq repeats a permutation of n distinct engines: seq[i] == seq[i % n]."""
    return len(set(seq[:n])) == n and all(seq[i] == seq[i % n] for i in range(len(seq)))


def _settled_queue_status(rc, timeout=10, pred=None):
    """queue_status() once two readings 0.2 s apart agree (a Python hub learns of results
    asynchronously) and pred(status) holds, if given."""
    deadline = time.monotonic() + timeout
    last = rc.queue_status()
    while True:
        time.sleep(0.2)
        now = rc.queue_status()
        if now == last and (pred is None or pred(now)):
            return now
        if time.monotonic() >= deadline:
            raise AssertionError("queue_status() did not settle%s within %s s; last: %r"
                                 % (" as expected" if pred else "", timeout, now))
        last = now


def _wait_queue_status(rc, pred, timeout, what):
    """Poll queue_status() until pred(status) holds; fail showing the last status."""
    deadline = time.monotonic() + timeout
    while True:
        q = rc.queue_status()
        if pred(q):
            return q
        if time.monotonic() >= deadline:
            raise AssertionError("no %s within %.1f s; queue_status(): %r" % (what, timeout, q))
        time.sleep(0.02)


def _no_tasks_anywhere(q):
    return q["unassigned"] == 0 and all(
        v["tasks"] == 0 and v["queue"] == 0 for k, v in q.items() if k != "unassigned")


@pytest.fixture
def rc(class_cluster):
    """A fresh client of the class's cluster (closed after the test)."""
    client = class_cluster.client()
    client.wait_for_engines(len(class_cluster.engines), timeout=15)
    yield client
    try:
        client.close(linger=0)
    except Exception:
        pass
    if client in class_cluster.clients:
        class_cluster.clients.remove(client)


@pytest.fixture
def lv(rc):
    return rc.load_balanced_view()


# --------------------------------------------------------------------------------------------
# What works with every scheme


class CommonTests:
    SCHEME = None
    ENGINES = ENGINES

    def test_apply_sync_and_async(self, rc, lv):
        pids = _pids(rc)
        assert lv.apply_sync(times_seven, 6) == 42
        assert lv.apply_sync(lambda x, y: x * y, 6, y=7) == 42
        ar = lv.apply_async(nap, 0.1)
        pid = ar.get(timeout=10)
        assert ar.successful() and ar.ready()
        assert ar.engine_id in rc.ids and pids[ar.engine_id] == pid
        assert ar.engine_uuid == rc._engines[ar.engine_id]
        assert ar.started <= ar.completed and ar.wall_time >= 0.09
        lv.block = True
        assert lv.apply(sum, [1, 2, 3]) == 6
        err = _remote_error(lv.apply_async(lambda: 1 / 0), "ZeroDivisionError")
        assert "division" in err.evalue

    def test_map_ordered_and_unordered(self, lv):
        assert lv.map_sync(times_seven, range(25)) == [7 * x for x in range(25)]
        minus = lv.map_sync(lambda a, b: a - b, range(10), range(0, 20, 2))
        assert minus == [-x for x in range(10)]
        xs = list(range(8, 0, -1))  # the first submitted sleeps longest
        secs = [0.04 * x for x in xs]
        amr = lv.map_async(nap_value, xs, secs)
        assert list(amr) == xs
        assert amr.get(timeout=15) == xs
        amr = lv.map_async(nap_value, xs, secs, ordered=False)
        got = list(amr)
        assert sorted(got) == sorted(xs)
        assert got != xs, "unordered iteration gave submission order: %s" % got
        assert amr.get(timeout=15) == xs  # get() is always in submission order

    def test_map_chunksize(self, rc, lv):
        pids = set(_pids(rc).values())
        amr = lv.map_async(value_and_pid, range(20), chunksize=4)
        out = amr.get(timeout=15)
        assert [v for v, _ in out] == list(range(20))
        assert len(amr.msg_ids) == 5  # one task per chunk
        for k in range(0, 20, 4):
            chunk_pids = {p for _, p in out[k:k + 4]}
            assert len(chunk_pids) == 1 and chunk_pids <= pids, out
        assert lv.map_sync(times_seven, range(7), chunksize=3) == [7 * x for x in range(7)]

    def test_imap(self, lv):
        assert list(lv.imap(times_seven, range(12))) == [7 * x for x in range(12)]
        got = list(lv.imap(times_seven, range(12), ordered=False))
        assert sorted(got) == [7 * x for x in range(12)]
        gen = (x for x in range(10))  # consumed lazily
        assert list(lv.imap(times_seven, gen, max_outstanding=2)) == [7 * x for x in range(10)]

    def test_executor(self, rc):
        ex = rc.executor()
        assert list(ex.map(times_seven, range(9))) == [7 * x for x in range(9)]
        fut = ex.submit(pow, 2, 10)
        assert fut.result(timeout=10) == 1024
        futs = [ex.submit(nap_value, i, 0.05) for i in range(6)]
        done, not_done = concurrent.futures.wait(futs, timeout=15)
        assert not not_done and sorted(f.result() for f in done) == list(range(6))
        bad = ex.submit(fail)
        with pytest.raises(error.RemoteError):
            bad.result(timeout=10)
        with rc.executor() as ex2:
            f2 = ex2.submit(times_seven, 3)
        assert f2.result(timeout=0) == 21  # shutdown(wait=True) waited

    def test_every_engine_used(self, rc, lv):
        """30 concurrent short tasks use all three engines; lru and leastload spread them
        evenly, pure in strict rotation; one task at a time rotates for lru/leastload/pure."""
        pids = _pids(rc)
        ars = [lv.apply_async(nap, 0.05) for _ in range(30)]
        for ar in ars:
            pid = ar.get(timeout=30)
            assert pids[ar.engine_id] == pid  # engine_id names the engine it ran on
        seq = [ar.engine_id for ar in ars]
        counts = collections.Counter(seq)
        assert set(counts) == set(rc.ids), "engines used: %s" % dict(counts)
        if self.SCHEME in ("lru", "leastload"):
            assert all(5 <= counts[e] <= 15 for e in rc.ids), dict(counts)
        if self.SCHEME == "pure":
            assert _round_robin(seq, 3), "pure did not rotate: %s" % seq
        if self.SCHEME in ("lru", "leastload", "pure"):
            one_by_one = []
            for _ in range(6):
                ar = lv.apply_async(whoami)
                ar.get(timeout=10)
                one_by_one.append(ar.engine_id)
            assert _round_robin(one_by_one, 3), \
                "one task at a time did not rotate over the engines: %s" % one_by_one

    # -- broadcast view ------------------------------------------------------------------------

    def test_broadcast_apply_in_target_order(self, rc):
        pids = _pids(rc)
        bv = rc.broadcast_view()
        assert bv.apply_sync(os.getpid) == [pids[e] for e in rc.ids]
        rev = list(reversed(rc.ids))
        ar = rc.broadcast_view(targets=rev).apply_async(os.getpid)
        assert ar.get(timeout=10) == [pids[e] for e in rev]
        assert ar.engine_id == rev
        ar = bv.apply_async(lambda x, y: x * y, 6, y=7)
        assert ar.get(timeout=10) == [42] * len(rc.ids)
        # one int target: the 7.1 client still gives a list for a broadcast view
        assert rc.broadcast_view(targets=rc.ids[1]).apply_sync(os.getpid) == [pids[rc.ids[1]]]

    def test_broadcast_coalescing_engine_ids(self, rc):
        pids = _pids(rc)
        by_pid = {p: e for e, p in pids.items()}
        bv = rc.broadcast_view(is_coalescing=True)
        ar = bv.apply_async(os.getpid)
        got = ar.get(timeout=10)
        assert len(got) == len(rc.ids) and sorted(got) == sorted(pids.values())
        assert [by_pid[p] for p in got] == list(ar.engine_id)
        assert [rc._engines[e] for e in ar.engine_id] == list(ar.engine_uuid)
        # several coalesced requests in flight at once do not mix
        ars = [bv.apply_async(nap_value, i, 0.05) for i in range(4)]
        assert [a.get(timeout=10) for a in ars] == [[i] * len(rc.ids) for i in range(4)]

    def test_broadcast_error_surfaces(self, rc):
        pids = _pids(rc)
        victim = rc.ids[1]
        ar = rc.broadcast_view().apply_async(fail_if_pid, pids[victim])
        with pytest.raises(error.CompositeError) as exc:
            ar.get(timeout=10)
        assert [x[0] for x in exc.value.elist] == ["ValueError"]
        assert ar.get(timeout=0, return_exceptions=True)[0] == pids[rc.ids[0]]
        # coalescing, the failing engine answering last
        ar = rc.broadcast_view(is_coalescing=True).apply_async(fail_if_pid, pids[victim], 0.4)
        _remote_error(ar, "ValueError")

    @pytest.mark.cpcontroller_only(
        "ipyparallel 7.1 keeps only the content of the last reply to arrive in a coalesced reply, "
        "so an earlier engine's error is lost")
    def test_broadcast_coalescing_keeps_early_error(self, rc):
        pids = _pids(rc)
        victim = rc.ids[0]
        ar = rc.broadcast_view(is_coalescing=True).apply_async(
            fail_if_pid, pids[victim], 0.0, 0.4)
        _remote_error(ar, "ValueError")

    @pytest.mark.cpcontroller_only(
        "ipyparallel 7.1 returns coalesced results in its relay tree's order (even engine ids "
        "first; its test_target_ordering is xfail); cpcontroller keeps the request's order")
    def test_broadcast_coalescing_keeps_target_order(self, rc):
        pids = _pids(rc)
        order = [rc.ids[1], rc.ids[0], rc.ids[2]]  # ipyparallel's tree gives 0, 2, 1
        ar = rc.broadcast_view(targets=order, is_coalescing=True).apply_async(os.getpid)
        assert ar.get(timeout=10) == [pids[e] for e in order]
        assert list(ar.engine_id) == order

    def test_broadcast_execute_push_pull(self, rc):
        bv = rc.broadcast_view()
        bv.execute("lbt_a = 6 * 7", block=True)
        assert bv.pull("lbt_a", block=True) == [42] * len(rc.ids)
        bv.push({"lbt_b": "through broadcast", "lbt_c": [1, 2]}, block=True)
        assert rc[:].pull("lbt_b", block=True) == ["through broadcast"] * len(rc.ids)
        both = bv.pull(("lbt_b", "lbt_c"), block=True)
        assert both == [["through broadcast", [1, 2]]] * len(rc.ids)
        cbv = rc.broadcast_view(is_coalescing=True)
        cbv.push({"lbt_d": 5}, block=True)
        assert cbv.pull("lbt_d", block=True) == [5] * len(rc.ids)
        assert rc[:].pull("lbt_d", block=True) == [5] * len(rc.ids)
        with pytest.raises(error.CompositeError) as exc:
            bv.execute("1 / 0", block=True)
        assert [x[0] for x in exc.value.elist] == ["ZeroDivisionError"] * len(rc.ids)

    # -- hub bookkeeping ------------------------------------------------------------------------

    def test_hub_bookkeeping(self, class_cluster, rc, lv):
        """The hub counts finished tasks per engine, lists none as outstanding, and gives their
        results to another client. (Counts are relative to the start of the test: ipyparallel's
        hub keeps stale entries after retries, which other tests of the class make.)"""
        before = _settled_queue_status(rc)
        ars = [lv.apply_async(nap_value, i, 0.02) for i in range(12)]
        bad = lv.apply_async(fail)
        assert [a.get(timeout=15) for a in ars] == list(range(12))
        _remote_error(bad, "ValueError")
        per_engine = collections.Counter(a.engine_id for a in ars + [bad])
        assert sum(per_engine.values()) == 13 and set(per_engine) <= set(rc.ids)

        def counted(q):
            return all(q[e]["completed"] - before[e]["completed"] == per_engine[e]
                       and q[e]["tasks"] == before[e]["tasks"] for e in rc.ids)

        after = _settled_queue_status(rc, pred=counted)
        assert after["unassigned"] == 0, after
        assert all(after[e]["queue"] == 0 for e in rc.ids), after
        ids = [a.msg_ids[0] for a in ars] + bad.msg_ids
        other = class_cluster.client()
        try:
            status = other.result_status(ids)
            assert sorted(status["completed"]) == sorted(ids) and status["pending"] == []
            for i, a in enumerate(ars):
                ahr = other.get_result(a.msg_ids[0])
                assert ahr.get(timeout=10) == i
                assert ahr.engine_id == a.engine_id
            ahr = other.get_result(bad.msg_ids[0])
            _remote_error(ahr, "ValueError")
            assert ahr.engine_id == bad.engine_id
        finally:
            other.close(linger=0)
            class_cluster.clients.remove(other)


# --------------------------------------------------------------------------------------------
# What every scheme but pure does: dependencies, timeouts, retries, targets, engine death


class SchedulerTests:
    def test_hwm1_one_task_per_engine(self, rc, lv):
        """With the default hwm=1 an engine gets a task only when idle: 5 tasks on 3 engines
        are 1 running on each and 2 unassigned, until the first ones finish."""
        before = _settled_queue_status(rc)
        ars = [lv.apply_async(nap, 0.8) for _ in range(5)]
        _wait_queue_status(
            rc, lambda q: q["unassigned"] == 2 and all(
                q[e]["tasks"] - before[e]["tasks"] == 1 for e in rc.ids),
            0.6, "1 task on each engine and 2 unassigned")
        pids = [a.get(timeout=10) for a in ars]
        assert set(pids[:3]) == set(_pids(rc).values())  # the first three ran at once
        for a in ars[3:]:  # the other two waited for an engine to finish
            assert min(b.completed for b in ars[:3]) <= a.started

    def test_after(self, lv):
        first = lv.apply_async(nap, 0.5)
        with lv.temp_flags(after=first):
            second = lv.apply_async(whoami)
        second.get(timeout=10)
        assert first.ready() and second.started >= first.completed
        # all=False: after any one of them
        slow, fast = lv.apply_async(nap, 1.2), lv.apply_async(nap, 0.1)
        with lv.temp_flags(after=ipp.Dependency([slow, fast], all=False)):
            third = lv.apply_async(whoami)
        third.get(timeout=10)
        assert not slow.ready(), "an any-dependency waited for all of them"
        assert third.started >= fast.completed
        slow.get(timeout=10)

    def test_follow(self, rc, lv):
        anchor = lv.apply_async(whoami)
        anchor_pid = anchor.get(timeout=10)
        with lv.temp_flags(follow=anchor):
            ars = [lv.apply_async(nap, 0.1) for _ in range(5)]
        assert [a.get(timeout=15) for a in ars] == [anchor_pid] * 5
        assert {a.engine_id for a in ars} == {anchor.engine_id}
        # tasks that ran on two engines cannot both be followed
        a1, a2 = lv.apply_async(nap, 0.3), lv.apply_async(nap, 0.3)
        a1.get(timeout=10), a2.get(timeout=10)
        assert a1.engine_id != a2.engine_id
        with lv.temp_flags(follow=[a1, a2]):
            _timed_remote_error(lv.apply_async(whoami), "ImpossibleDependency", 3)

    def test_impossible_after_failed_task(self, lv, tmp_path):
        bad = lv.apply_async(fail)
        _remote_error(bad, "ValueError")
        with lv.temp_flags(after=bad):
            ar = lv.apply_async(touch, str(tmp_path / "ran"))
        _timed_remote_error(ar, "ImpossibleDependency", 3)
        # depending on a task that fails later: fails when it does, never runs
        slow_bad = lv.apply_async(fail, 0.4)
        with lv.temp_flags(after=slow_bad):
            waiting = lv.apply_async(touch, str(tmp_path / "ran"))
        time.sleep(0.1)
        assert not waiting.ready()
        _remote_error(waiting, "ImpossibleDependency")
        _remote_error(slow_bad, "ValueError")
        assert not (tmp_path / "ran").exists()
        assert waiting.engine_id is None  # the scheduler answered, no engine

    def test_invalid_dependency(self, rc, lv):
        with lv.temp_flags(after="12345"):
            _timed_remote_error(lv.apply_async(whoami), "InvalidDependency", 3)
        with lv.temp_flags(follow=["no-such-msg-id"]):
            _timed_remote_error(lv.apply_async(whoami), "InvalidDependency", 3)
        direct = rc[rc.ids[0]].apply_async(whoami)
        direct.get(timeout=10)
        with lv.temp_flags(after=direct):  # a direct-view request is not a task
            _timed_remote_error(lv.apply_async(whoami), "InvalidDependency", 3)
        assert lv.apply_sync(times_seven, 2) == 14  # the scheduler is fine afterwards

    def test_follow_failed_task(self, lv, tmp_path):
        bad = lv.apply_async(fail)
        _remote_error(bad, "ValueError")
        with lv.temp_flags(follow=bad):
            ar = lv.apply_async(touch, str(tmp_path / "x"))
        _timed_remote_error(ar, "ImpossibleDependency", 3)
        assert not (tmp_path / "x").exists()
        # counting failures: runs where the failed task ran
        with lv.temp_flags(follow=ipp.Dependency(bad, success=False, failure=True)):
            ars = [lv.apply_async(nap, 0.05) for _ in range(3)]
        for a in ars:
            a.get(timeout=10)
        assert {a.engine_id for a in ars} == {bad.engine_id}

    def test_after_failure_only(self, lv, tmp_path):
        slow_bad = lv.apply_async(fail, 0.4)
        with lv.temp_flags(after=ipp.Dependency(slow_bad, success=False, failure=True)):
            ar = lv.apply_async(whoami)
        ar.get(timeout=10)
        assert slow_bad.ready() and ar.started >= slow_bad.completed
        _remote_error(slow_bad, "ValueError")
        # a dependency that succeeds makes a failure-only dependant impossible
        slow_ok = lv.apply_async(nap, 0.3)
        with lv.temp_flags(after=ipp.Dependency(slow_ok, success=False, failure=True)):
            never = lv.apply_async(touch, str(tmp_path / "ran"))
        _remote_error(never, "ImpossibleDependency")
        assert slow_ok.successful() and not (tmp_path / "ran").exists()

    def test_timeout_while_engines_busy(self, lv):
        busy = [lv.apply_async(nap, 1.5) for _ in range(ENGINES)]
        t0 = time.monotonic()
        with lv.temp_flags(timeout=0.3):
            late = lv.apply_async(whoami)
        _remote_error(late, "TaskTimeout", timeout=5)
        elapsed = time.monotonic() - t0
        assert 0.25 <= elapsed < 1.2, "TaskTimeout after %.2f s (timeout=0.3)" % elapsed
        assert not any(b.ready() for b in busy)
        assert late.engine_id is None
        for b in busy:
            b.get(timeout=10)

    def test_running_task_not_timed_out(self, lv):
        with lv.temp_flags(timeout=0.3):
            ar = lv.apply_async(nap, 0.8)
        ar.get(timeout=10)
        assert ar.successful()
        # a retry that runs longer than the timeout is not a timeout either
        with lv.temp_flags(retries=1, timeout=0.1):
            ar = lv.apply_async(fail, 0.4)
        _remote_error(ar, "ValueError")

    def test_retries(self, lv, tmp_path):
        marks = tmp_path / "first"
        marks.mkdir()
        with lv.temp_flags(retries=1):
            ar = lv.apply_async(fail_first_here, str(marks))
        pid = ar.get(timeout=10)
        failed_on = [int(p) for p in os.listdir(marks)]
        assert len(failed_on) == 1 and pid != failed_on[0], "retried on the engine that failed"
        marks = tmp_path / "noretry"
        marks.mkdir()
        _remote_error(lv.apply_async(fail_first_here, str(marks)), "ValueError")
        # fails once per engine: retries=2 tries three distinct engines, then gives the error
        marks = tmp_path / "each"
        marks.mkdir()
        with lv.temp_flags(retries=ENGINES - 1):
            _remote_error(lv.apply_async(fail_once_per_engine, str(marks)), "ValueError")
        assert len(os.listdir(marks)) == ENGINES
        # more retries than engines: blacklisted everywhere, it waits and times out
        marks = tmp_path / "all"
        marks.mkdir()
        with lv.temp_flags(retries=ENGINES, timeout=0.5):
            _remote_error(lv.apply_async(fail_everywhere, str(marks)), "TaskTimeout")
        assert len(os.listdir(marks)) == ENGINES

    def test_targets(self, rc, lv):
        pids = _pids(rc)
        one = rc.ids[1]
        with lv.temp_flags(targets=[one]):
            ars = [lv.apply_async(nap, 0.05) for _ in range(4)]
        assert [a.get(timeout=10) for a in ars] == [pids[one]] * 4
        assert {a.engine_id for a in ars} == {one}
        pair = [rc.ids[0], rc.ids[2]]
        lv2 = rc.load_balanced_view(targets=pair)
        ars = [lv2.apply_async(nap, 0.1) for _ in range(6)]
        assert {a.get(timeout=10) for a in ars} == {pids[e] for e in pair}
        assert {a.engine_id for a in ars} == set(pair)

    def test_hub_records_scheduler_failures(self, class_cluster, lv):
        with lv.temp_flags(after="not-a-task"):
            ar = lv.apply_async(whoami)
        _remote_error(ar, "InvalidDependency")
        other = class_cluster.client()
        try:
            status = other.result_status(ar.msg_ids)
            assert status["completed"] == ar.msg_ids and status["pending"] == []
            _remote_error(other.get_result(ar.msg_ids[0]), "InvalidDependency")
        finally:
            other.close(linger=0)
            class_cluster.clients.remove(other)

    @pytest.mark.cpcontroller_only(
        "ipyparallel 7.1's hub keeps a retried task listed under the engine that failed it "
        "(ipython/ipython#1801; schedulers doc, section 5.11)")
    def test_hub_forgets_retried_and_failed_tasks(self, rc, lv):
        """After a retried task, a timed-out one and one failed by the scheduler, queue_status()
        shows no task anywhere and only the final attempt counted as completed."""
        before = _settled_queue_status(rc)
        with lv.temp_flags(retries=1):
            retried = lv.apply_async(fail)
        _remote_error(retried, "ValueError")
        with lv.temp_flags(after="not-a-task"):
            _remote_error(lv.apply_async(whoami), "InvalidDependency")
        busy = [lv.apply_async(nap, 0.6) for _ in range(ENGINES)]
        with lv.temp_flags(timeout=0.1):
            _remote_error(lv.apply_async(whoami), "TaskTimeout")
        for b in busy:
            b.get(timeout=10)
        done = collections.Counter(a.engine_id for a in busy + [retried])
        after = _settled_queue_status(rc, pred=_no_tasks_anywhere)
        for e in rc.ids:
            assert after[e]["completed"] - before[e]["completed"] == done[e], (before, after)

    @pytest.mark.cpar_timeout(60)
    def test_engine_killed_mid_task(self, make_cluster, tmp_path):
        """SIGKILL two engines while they run 30 s tasks: the task without retries gets
        EngineError, the one with retries=1 completes on the third engine, and a task waiting
        for one of the dead engines (targets) gets ImpossibleDependency instead of hanging."""
        c = make_cluster(n_engines=3, controller_args=["--scheme=%s" % self.SCHEME])
        rc = c.client()
        rc.wait_for_engines(3, timeout=15)
        pids = _pids(rc)
        by_pid = {p: e for e, p in pids.items()}
        lv = rc.load_balanced_view()
        plain_mark, retry_mark = str(tmp_path / "plain"), str(tmp_path / "retried")
        plain = lv.apply_async(sleep_marked, plain_mark, 30)
        with lv.temp_flags(retries=1):
            retried = lv.apply_async(sleep_once, retry_mark, 30)
        tl.wait_for(lambda: os.path.exists(plain_mark) and os.path.exists(retry_mark), 10,
                    what="both tasks to start")
        victims = []
        for path in (plain_mark, retry_mark):
            with open(path) as f:
                victims.append(by_pid[int(f.read())])
        assert victims[0] != victims[1]
        survivor = (set(rc.ids) - set(victims)).pop()
        with lv.temp_flags(targets=[victims[0]]):
            stuck = lv.apply_async(whoami)  # its only target is busy: it waits
        time.sleep(0.3)
        assert not stuck.ready() and not plain.ready() and not retried.ready()
        t0 = time.monotonic()
        for eid in victims:
            for e in c.engines:
                if e.pid == pids[eid]:
                    e.kill(signal.SIGKILL)
        # cpcontroller fails it as soon as the engine is gone; ipyparallel 7.1 only at its 5 s
        # stranded-task pass
        _timed_remote_error(stuck, "ImpossibleDependency",
                            2 if tl.controller_is_cpcontroller() else 9, t0)
        _timed_remote_error(plain, "EngineError", 10, t0)
        assert retried.get(timeout=20) == ("again", pids[survivor])
        assert retried.engine_id == survivor
        tl.wait_for(lambda: rc.ids == [survivor], 10, what="the dead engines to leave rc.ids")
        assert lv.apply_sync(whoami) == pids[survivor]
        assert lv.map_sync(times_seven, range(4)) == [0, 7, 14, 21]


# --------------------------------------------------------------------------------------------
# pure: plain round robin, and no scheduler features


class PureTests:
    def test_round_robin_eager(self, rc, lv):
        ars = [lv.apply_async(nap, 0.3) for _ in range(9)]
        seq = []
        for a in ars:
            a.get(timeout=10)
            seq.append(a.engine_id)
        assert _round_robin(seq, 3), "pure did not rotate: %s" % seq

    @pytest.mark.cpcontroller_only(
        "ipyparallel's pure device ignores these flags when they are set on the view (the client "
        "only refuses them as call arguments); cpcontroller answers them with RuntimeError")
    @pytest.mark.parametrize("flag", ["after", "follow", "targets", "retries", "timeout"])
    def test_refuses_scheduler_features(self, rc, lv, tmp_path, flag):
        done = lv.apply_async(whoami)
        done.get(timeout=10)
        value = {"after": done, "follow": done, "targets": [rc.ids[1]], "retries": 1,
                 "timeout": 5.0}[flag]
        mark = tmp_path / "ran"
        with lv.temp_flags(**{flag: value}):
            ar = lv.apply_async(touch, str(mark))
        _timed_remote_error(ar, "RuntimeError", 3)
        assert ar.engine_id is None and not mark.exists()
        assert lv.apply_sync(times_seven, 3) == 21  # plain tasks still work


# --------------------------------------------------------------------------------------------
# One class (one cluster) per scheme


class TestLeastload(CommonTests, SchedulerTests):
    SCHEME = "leastload"
    CONTROLLER_ARGS = ["--scheme=leastload"]


class TestLru(CommonTests, SchedulerTests):
    SCHEME = "lru"
    CONTROLLER_ARGS = ["--scheme=lru"]


class TestPlainrandom(CommonTests, SchedulerTests):
    SCHEME = "plainrandom"
    CONTROLLER_ARGS = ["--scheme=plainrandom"]


class TestTwobin(CommonTests, SchedulerTests):
    SCHEME = "twobin"
    CONTROLLER_ARGS = ["--scheme=twobin"]


class TestWeighted(CommonTests, SchedulerTests):
    SCHEME = "weighted"
    CONTROLLER_ARGS = ["--scheme=weighted"]


class TestPure(CommonTests, PureTests):
    SCHEME = "pure"
    CONTROLLER_ARGS = ["--scheme=pure"]


class TestLeastloadNoHwm:
    """--hwm=0: every task is assigned at submission, leastload spreads them evenly."""
    ENGINES = ENGINES
    CONTROLLER_ARGS = ["--scheme=leastload", "--hwm=0"]

    def test_eager_spread(self, rc, lv):
        pids = _pids(rc)
        ars = [lv.apply_async(nap, 0.6) for _ in range(9)]
        _wait_queue_status(
            rc, lambda q: q["unassigned"] == 0 and all(q[e]["tasks"] == 3 for e in rc.ids),
            0.45, "9 tasks assigned at once, 3 per engine")  # before the first ones end
        for a in ars:
            pid = a.get(timeout=10)
            assert pids[a.engine_id] == pid
        counts = collections.Counter(a.engine_id for a in ars)
        assert sorted(counts.values()) == [3, 3, 3], dict(counts)
