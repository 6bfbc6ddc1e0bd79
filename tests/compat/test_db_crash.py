"""The SQLite task database survives kill -9 of the controller in the middle of a load.

A cluster with cpcontroller --sqlitedb and two real engines; a client keeps about 50 no-op
load-balanced tasks in flight and notes when each result arrives. While tasks are in flight, the
controller process is killed with SIGKILL. Then, before any controller touches the file again, a
copy of the database (with its write-ahead log) must pass SQLite's integrity check and hold, with
`completed` set, every task whose result the client had at least 20 ms before the kill. A new
controller started on the same profile must show those records through db_query and hub_history.
The kill lands at three different moments of the load.
"""
import os
import shutil
import signal
import sqlite3
import threading
import time

import pytest

import cparallel_testlib as tl

pytestmark = pytest.mark.cpcontroller_only(
    "a result is committed by the controller's next reactor turn only in cpcontroller's SQLite "
    "backend (ipyparallel 7.1's SQLiteDB commits every 2 s)")

IN_FLIGHT = 50
MARGIN = 0.020  # a result this long in the client before the kill must be in the file
TABLE = "ipython-tasks"


def _noop():
    return None


class _Load:
    """A thread submitting no-op tasks through a load-balanced view, ~IN_FLIGHT at a time."""

    def __init__(self, client):
        self.view = client.load_balanced_view()
        self.slots = threading.BoundedSemaphore(IN_FLIGHT)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.submitted = []  # msg_ids
        self.received = {}  # msg_id -> time.monotonic() when its result was in the client
        self.first = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, name="load", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _done(self, msg_id, ar):
        now = time.monotonic()  # at or after the moment the reply arrived
        if ar.exception() is None:
            with self.lock:
                self.received[msg_id] = now
            self.first.set()
        self.slots.release()

    def _run(self):
        try:
            while not self.stop.is_set():
                if not self.slots.acquire(timeout=0.05):
                    continue
                if self.stop.is_set():
                    return
                ar = self.view.apply_async(_noop)
                msg_id = ar.msg_ids[0]
                with self.lock:
                    self.submitted.append(msg_id)
                ar.add_done_callback(lambda f, m=msg_id: self._done(m, f))
        except Exception as e:  # reported by the test
            self.error = e

    def snapshot(self):
        with self.lock:
            return list(self.submitted), dict(self.received)


def _is_cpcontroller(pid):
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return False
    return os.path.basename(exe).startswith("cpcontroller")


def _copy_db(profile_dir, dest):
    """Copy tasks.db and its log as the crash left them (no shared-memory index: SQLite
    rebuilds it from the log)."""
    os.makedirs(dest)
    src = os.path.join(profile_dir, "tasks.db")
    for suffix in ("", "-wal"):
        if os.path.exists(src + suffix):
            shutil.copyfile(src + suffix, os.path.join(dest, "tasks.db" + suffix))
    return os.path.join(dest, "tasks.db")


def _completed_in_file(path, msg_ids):
    """PRAGMA integrity_check and {msg_id: completed} of those ids that have a record."""
    conn = sqlite3.connect(path)
    try:
        (check,) = conn.execute("PRAGMA integrity_check").fetchone()
        found = {}
        ids = list(msg_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows = conn.execute(
                'SELECT msg_id, completed FROM "%s" WHERE msg_id IN (%s)'
                % (TABLE, ",".join("?" * len(chunk))), chunk)
            found.update(rows)
        return check, found
    finally:
        conn.close()


def _stop_engines(cluster, preexisting):
    """The engines (and their nannies, which outlive them in sessions of their own) are gone."""
    for e in cluster.engines:
        e.stop()
    for e in cluster.engines:
        assert not e.alive(), "engine pid %d still runs" % e.pid
    left = tl.leftover_children(ignore=preexisting, grace=15)
    if left:
        tl.kill_pids(list(left))
    assert not left, "processes left after the engines were stopped: %s" % left


@pytest.mark.cpar_timeout(240)
@pytest.mark.parametrize("kill_after", [1.0, 1.43, 1.87])
def test_kill_mid_load_keeps_completed(request, kill_after):
    c = tl.Cluster(name="dbcrash", controller_args=["--sqlitedb"])
    load = None
    try:
        try:
            c.start(n_engines=2)
        except BaseException:
            pytest.fail("cluster did not start:\n%s" % c.report())
        ctl = c.controller
        assert _is_cpcontroller(ctl.proc.pid), (
            "pid %d is not a cpcontroller process: %s" % (ctl.proc.pid, " ".join(ctl.argv)))
        client = c.client()
        client.wait_for_engines(2, timeout=15)

        load = _Load(client).start()
        assert load.first.wait(30), "no result within 30 s\n%s" % c.report()
        time.sleep(kill_after)
        assert ctl.alive(), c.report()

        killed_at = time.monotonic()
        os.kill(ctl.proc.pid, signal.SIGKILL)
        load.stop.set()
        assert ctl.wait(10) == -signal.SIGKILL
        tl.kill_group(ctl.proc, signal.SIGKILL)
        submitted, received = load.snapshot()
        load.thread.join(10)
        assert not load.thread.is_alive()
        assert load.error is None, repr(load.error)

        must = sorted(m for m, t in received.items() if t <= killed_at - MARGIN)
        in_flight = len(submitted) - len(received)
        assert len(must) >= 100, "too little load before the kill: %d results" % len(must)
        assert in_flight > 0, "no task was in flight at the kill"

        c.close_clients()
        _stop_engines(c, request.config._cpar_preexisting)

        # the file as the crash left it, read by SQLite itself
        path = _copy_db(c.profile_dir, os.path.join(c.tmp, "copy"))
        check, found = _completed_in_file(path, submitted)
        assert check == "ok", "integrity_check: %s" % check
        lost = [m for m in must if found.get(m) is None]
        assert not lost, (
            "%d of %d results the client had >= %d ms before the kill have no completed record "
            "(first: %s); %d submitted, %d in flight"
            % (len(lost), len(must), MARGIN * 1000, lost[:5], len(submitted), in_flight))
        late = [m for m, t in received.items() if t > killed_at - MARGIN]
        print("kill after %.2f s: %d submitted, %d results (%d in the last %d ms, %d of those "
              "stored completed), %d in flight; %d records in the file"
              % (kill_after, len(submitted), len(received), len(late), MARGIN * 1000,
                 sum(1 for m in late if found.get(m) is not None), in_flight, len(found)))

        # a new controller on the same profile and file sees them
        for f in (ctl.client_file, ctl.engine_file):
            if os.path.exists(f):
                os.unlink(f)  # the killed controller could not remove its connection files
        ctl.start()
        client = c.client()
        recs = client.db_query({"msg_id": {"$in": must}}, keys=["msg_id", "completed"])
        assert sorted(r["msg_id"] for r in recs) == must
        assert all(r["completed"] is not None for r in recs)
        history = set(client.hub_history())
        assert not set(must) - history
    except BaseException:
        if load is not None:
            load.stop.set()
        report = c.report()
        c.stop()
        c.cleanup()
        print(report)
        raise
    rc, files = c.stop()
    report = c.report()
    c.cleanup()
    assert rc == 0, "controller exit status %r (expected 0 on SIGTERM)\n%s" % (rc, report)
    assert not files, "connection files left after controller exit: %s\n%s" % (files, report)
