"""Fixtures for cparallel's compat tests: real controller, real ipyparallel engines and clients.

The controller under test comes from CPAR_CONTROLLER (see tests/support/cparallel_testlib.py);
without it the Python ipcontroller is used, which is how the tests themselves are validated.
"""
import os
import signal
import sys

import pytest

_here = os.path.dirname(os.path.abspath(__file__))
_support = os.path.join(os.path.dirname(_here), "support")
if _support not in sys.path:
    sys.path.insert(0, _support)

import cparallel_testlib as tl  # noqa: E402

DEFAULT_TIMEOUT = 120


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cpar_timeout(seconds): fail the test body after this many seconds"
    )
    config.addinivalue_line(
        "markers", "cpcontroller_only(reason): cparallel-specific behaviour, skipped with that reason "
        "when the controller under test is not cpcontroller"
    )
    tl.become_subreaper()
    # engines unpickle functions defined in these test modules by importing them
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([_here, _support] + ([path] if path else []))
    config._cpar_preexisting = tl.snapshot_children()


def pytest_report_header(config):
    return ["cparallel controller under test: %s" % tl.controller_description()]


def pytest_collection_modifyitems(config, items):
    if tl.controller_is_cpcontroller():
        return
    for item in items:
        m = item.get_closest_marker("cpcontroller_only")
        if m:
            why = m.args[0] if m.args else "cparallel-specific behaviour"
            item.add_marker(pytest.mark.skip(
                reason="%s; the controller under test is not cpcontroller: %s"
                % (why, " ".join(tl.controller_command()))))


class _TestTimeout(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    m = item.get_closest_marker("cpar_timeout")
    seconds = int(m.args[0]) if m else DEFAULT_TIMEOUT

    def on_alarm(signum, frame):
        raise _TestTimeout("test body did not finish within %d s" % seconds)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and tl.ACTIVE_CLUSTERS:
        for i, c in enumerate(tl.ACTIVE_CLUSTERS):
            rep.sections.append(("cparallel cluster %d logs" % i, c.report()))


@pytest.hookimpl(trylast=True)  # after pytest has torn down the session's fixtures
def pytest_sessionfinish(session, exitstatus):
    leftovers = tl.leftover_children(getattr(session.config, "_cpar_preexisting", set()))
    tl.kill_all_started()  # whatever is left of the process groups we made
    if leftovers:
        tl.kill_pids(list(leftovers))
        sys.stderr.write(
            "\ncparallel: processes started by the tests were still running at the end:\n%s\n"
            % "\n".join("  %d %s" % kv for kv in leftovers.items())
        )
        session.exitstatus = 1
    elif exitstatus == 5:
        session.exitstatus = 1  # no tests collected is a failure for us


@pytest.fixture(scope="module")
def cluster(request):
    """A controller with two engines, shared by the tests of one module."""
    n = getattr(request.module, "ENGINES", 2)
    c = tl.Cluster(name=request.module.__name__.rpartition(".")[2].replace("_", ""))
    c.start_or_fail(n)
    yield c
    c.finish()


@pytest.fixture(scope="class")
def class_cluster(request):
    """A controller started with the test class's CONTROLLER_ARGS (default: none) and ENGINES
    engines (default 2), shared by the tests of that class (e.g. one class per scheduler scheme)."""
    cls = request.cls
    c = tl.Cluster(name=cls.__name__.lower()[:20],
                   controller_args=list(getattr(cls, "CONTROLLER_ARGS", ())))
    c.start_or_fail(getattr(cls, "ENGINES", 2))
    yield c
    c.finish()


@pytest.fixture
def rc(cluster):
    """A fresh client of the module cluster (closed after the test)."""
    client = cluster.client()
    client.wait_for_engines(len(cluster.engines), timeout=15)
    yield client
    try:
        client.close(linger=0)
    except Exception:
        pass
    if client in cluster.clients:
        cluster.clients.remove(client)


@pytest.fixture
def make_cluster(request):
    """Factory for clusters private to one test; all are torn down (and checked) after it.
    A test that stops a cluster itself keeps its own assertions about that."""
    made = []

    def factory(n_engines=2, **kw):
        c = tl.Cluster(name=request.node.name.split("[")[0].replace("_", "")[:20], **kw)
        made.append(c)
        c.start(n_engines=n_engines)
        return c

    yield factory
    errors = []
    for c in made:
        if c.stopped:
            c.stop()
            c.cleanup()
            continue
        try:
            c.finish()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n\n".join(errors))
