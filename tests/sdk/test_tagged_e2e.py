"""End to end: the example scheduler plugin (sdk/examples/tagged), built out of tree against the
installed SDK, schedules real ipyparallel tasks in the installed cpcontroller.

One controller with ``c.TaskScheduler.scheme_name = "tagged"`` and
``c.TaggedScheduler.tags = {"0": "cpu", "1": "gpu"}`` in its profile, two real ipyparallel
engines, and the real Python client, which tags tasks by putting "tag" into the request metadata
through its session (the way README.md of the example documents).

Environment (set by tests/sdk/CMakeLists.txt):
  CPAR_CONTROLLER    the installed cpcontroller
  CPAR_PLUGIN_PATH   the directory holding the example's cpar_scheduler_tagged.so
  CPAR_PYTHON        the interpreter for engines (one with ipyparallel)
"""
import contextlib
import os
import time

import pytest

import cparallel_testlib as tl

TAGS = {"0": "cpu", "1": "gpu"}
TIMEOUT = 30  # seconds for any batch of tasks


@contextlib.contextmanager
def task_tag(client, tag):
    """Tasks submitted inside the block carry "tag": tag in their request metadata.

    The client's Session adds its ``metadata`` dict to every message it builds, and a view
    builds its messages in the calling thread, so this works for apply, map and executors.
    """
    client.session.metadata["tag"] = tag
    try:
        yield
    finally:
        client.session.metadata.pop("tag", None)


def where(seconds=0.0):
    """Runs on an engine: the engine's process id, after a short nap that keeps it busy."""
    import os
    import time

    time.sleep(seconds)
    return os.getpid()


@pytest.fixture(scope="module")
def cluster():
    plugin = os.path.join(os.environ["CPAR_PLUGIN_PATH"], "cpar_scheduler_tagged.so")
    assert os.path.isfile(plugin), "the example plugin was not built: no %s" % plugin
    assert tl.controller_is_cpcontroller(), tl.controller_description()

    tl.become_subreaper()
    c = tl.Cluster(name="sdk-tagged")
    # What a site admin writes into the profile.
    with open(os.path.join(c.profile_dir, "ipcontroller_config.py"), "w") as f:
        f.write("c = get_config()\n"
                "c.TaskScheduler.scheme_name = 'tagged'\n"
                "c.TaggedScheduler.tags = %r\n" % (TAGS,))
    try:
        c.start(n_engines=2)
        yield c
    except BaseException:
        print(c.report())
        raise
    finally:
        status, leftover = c.stop()
        report = c.report()
        c.cleanup()
        tl.kill_all_started()
    # The controller unloads the plugin (fini) on its way out: it must still exit cleanly.
    assert status == 0 and not leftover, (
        "controller exit status %s, connection files left: %s\n%s" % (status, leftover, report))


@pytest.fixture(scope="module")
def rc(cluster):
    client = cluster.client()
    client.wait_for_engines(2, timeout=TIMEOUT)
    assert sorted(client.ids) == [0, 1]
    return client


@pytest.fixture(scope="module")
def pids(rc):
    """engine id -> the engine's process id, asked through direct views (no scheduler)."""
    return {eid: rc[eid].apply_sync(where) for eid in rc.ids}


def ran_on(ars, pids):
    """The engine ids that ran each task, checked two ways: the reply's engine and the pid the
    task saw."""
    by_pid = {pid: eid for eid, pid in pids.items()}
    ids = []
    for ar in ars:
        pid = ar.get(timeout=TIMEOUT)
        assert ar.engine_id == by_pid[pid], (ar.engine_id, pid, pids)
        ids.append(ar.engine_id)
    return ids


def test_controller_loaded_tagged_scheduler(cluster, rc):
    log = cluster.controller.log_text()
    # scheduler/tagged logs the tags it read in init: it was loaded, and read our profile.
    for eid, tag in TAGS.items():
        assert "scheduler/tagged: engine %s has tag '%s'" % (eid, tag) in log, (
            "the controller did not load scheduler/tagged with the tags of the profile;"
            " its log:\n" + cluster.controller.log_tail())


@pytest.mark.parametrize("tag,eid", [("gpu", 1), ("cpu", 0)])
def test_tagged_tasks_run_on_tagged_engine(rc, pids, tag, eid):
    # More tasks than engines, each keeping its engine busy for a while: with the default
    # high-water mark (1) a scheduler that ignores tags would give the other engine half of them.
    lview = rc.load_balanced_view()
    with task_tag(rc, tag):
        ars = [lview.apply_async(where, 0.1) for _ in range(10)]
    assert ran_on(ars, pids) == [eid] * 10


def test_tagged_map_runs_on_tagged_engine(rc, pids):
    lview = rc.load_balanced_view()
    with task_tag(rc, "gpu"):
        amr = lview.map_async(where, [0.05] * 8)
    by_pid = {pid: e for e, pid in pids.items()}
    assert [by_pid[p] for p in amr.get(timeout=TIMEOUT)] == [1] * 8
    assert amr.engine_id == [1] * 8


def test_untagged_tasks_use_both_engines(rc, pids):
    lview = rc.load_balanced_view()
    ars = [lview.apply_async(where, 0.3) for _ in range(6)]
    assert set(ran_on(ars, pids)) == {0, 1}


def test_unknown_tag_falls_back_to_least_load(rc, pids):
    lview = rc.load_balanced_view()
    with task_tag(rc, "tpu"):
        ars = [lview.apply_async(where, 0.3) for _ in range(6)]
    assert set(ran_on(ars, pids)) == {0, 1}


def test_untagged_tasks_run_while_tagged_ones_wait(rc, pids):
    # Tagged tasks queue up for the busy gpu engine; untagged tasks behind them are not held up
    # and the tagged ones still all land on their engine.
    lview = rc.load_balanced_view()
    with task_tag(rc, "gpu"):
        tagged = [lview.apply_async(where, 0.5) for _ in range(6)]
    untagged = [lview.apply_async(where, 0.0) for _ in range(4)]
    t0 = time.monotonic()
    ran_on(untagged, pids)
    untagged_done = time.monotonic() - t0
    assert ran_on(tagged, pids) == [1] * 6
    # The untagged ones could use the idle engine 0 at once: they need not wait for the gpu
    # queue (6 x 0.5 s on engine 1).
    assert untagged_done < 6 * 0.5 / 2, untagged_done
