"""pytest glue for the SDK end-to-end test: the cluster's logs on any failure."""
import pytest

import cparallel_testlib as tl


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for i, c in enumerate(tl.ACTIVE_CLUSTERS):
            rep.sections.append(("cparallel cluster %d logs" % i, c.report()))
