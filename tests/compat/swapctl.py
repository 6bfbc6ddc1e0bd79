"""pytest plugin: run ipyparallel's own test-suite against another controller.

Load it with ``-p swapctl`` (this directory on PYTHONPATH), e.g.::

    CPAR_CONTROLLER=/path/to/cpcontroller PYTHONPATH=tests/compat:tests/support \
        /usr/bin/python3 -m pytest -p swapctl -p no:cacheprovider \
        --pyargs ipyparallel.tests.test_view

It does two things:

* points ipyparallel's test harness at the controller command in ``CPAR_CONTROLLER``
  (a shell-quoted command line; unset means the Python ``ipcontroller``).  The 7.1 test
  package imports ``ipcontroller_cmd_argv`` by name, so the list is changed in place; the
  ``ControllerLauncher.controller_cmd`` trait got a copy at class creation, so its default
  is changed too.
* applies ``known_failures.txt`` (beside this file, or ``CPAR_KNOWN_FAILURES``) as
  ``xfail(strict=True)`` when the controller under test is cpcontroller: a listed test that
  passes fails the run, and so does any unlisted failure.  Against the Python controller
  the list is not applied (every test is expected to pass there), unless
  ``CPAR_APPLY_KNOWN_FAILURES=1``.
"""
import os
import sys

import pytest

_here = os.path.dirname(os.path.abspath(__file__))
_support = os.path.join(os.path.dirname(_here), "support")
if _support not in sys.path:
    sys.path.insert(0, _support)

import cparallel_testlib as tl  # noqa: E402


def _swap_controller():
    from ipyparallel.cluster import launcher

    cmd = tl.controller_command()
    launcher.ipcontroller_cmd_argv[:] = cmd
    launcher.ControllerLauncher.controller_cmd.default_value = list(cmd)
    return cmd


def pytest_configure(config):
    cmd = _swap_controller()
    config._cpar_controller_cmd = cmd
    config._cpar_known = {}
    apply = os.environ.get("CPAR_APPLY_KNOWN_FAILURES")
    if apply is None:
        apply = "1" if tl.controller_is_cpcontroller() else "0"
    if apply == "1":
        path = os.environ.get("CPAR_KNOWN_FAILURES") or os.path.join(_here, "known_failures.txt")
        config._cpar_known = tl.read_known_failures(path)
    tl.become_subreaper()  # so an engine's nanny that outlives its engine is still seen
    config._cpar_started_pids = tl.snapshot_children()


def pytest_report_header(config):
    cmd = getattr(config, "_cpar_controller_cmd", None)
    lines = ["cparallel controller under test: %s" % (" ".join(cmd) if cmd else "?")]
    lines.append("cparallel known failures applied: %d" % len(getattr(config, "_cpar_known", {})))
    return lines


def _short_id(item):
    """'test_view.py::TestView::test_x' for a test of ipyparallel/tests/test_view.py (the node id
    pytest makes for a file outside the rootdir has no usable path part)."""
    rest = item.nodeid.partition("::")[2]
    return "%s::%s" % (os.path.basename(str(item.fspath)), rest)


def pytest_collection_modifyitems(config, items):
    known = getattr(config, "_cpar_known", {})
    if not known:
        return
    seen = set()
    for item in items:
        key = _short_id(item)
        if key in known:
            seen.add(key)
            item.add_marker(pytest.mark.xfail(reason=known[key], strict=True, run=True))
    # A listed test that was not collected is a stale entry: report it loudly so the list
    # stays honest (only for modules that were collected at all).
    modules = {_short_id(i).split("::")[0] for i in items}
    stale = [k for k in known if k.split("::")[0] in modules and k not in seen]
    if stale:
        raise pytest.UsageError(
            "known_failures.txt lists tests that do not exist: %s" % ", ".join(sorted(stale))
        )


@pytest.hookimpl(trylast=True)  # after pytest has torn down the session's fixtures
def pytest_sessionfinish(session, exitstatus):
    # ipyparallel's own teardown SIGKILLs what it started; make sure nothing survived.
    leftovers = tl.leftover_children(getattr(session.config, "_cpar_started_pids", set()))
    if leftovers:
        tl.kill_pids(leftovers)
        sys.stderr.write("cparallel: processes left running by the test-suite: %s\n" % leftovers)
        session.exitstatus = 1
    elif exitstatus == 5:
        # "no tests collected" is a failure for us (a broken selection must not look green).
        session.exitstatus = 1
