#!/usr/bin/python3
"""Write ipyparallel 7.1's Windows HPC job files, with its own classes, as golden files.

usage: render_ipp_winhpc.py [--out DIR] [--check]

Writes WindowsHPCControllerLauncher.xml (one task) and WindowsHPCEngineSetLauncher.xml (n=4)
for cluster id "abc" and profile "/prof/profile_default" into DIR (default:
tests/golden/launchers). Each task's output file names hold a fresh uuid; they are replaced by
the text UUID, which the C test also does to the plugin's files before comparing. USERNAME and
USERDOMAIN are removed from the environment first, so the job has no UserName or Owner.
--check compares instead of writing and exits 1 on any difference.
"""
import os
import re
import sys
import tempfile

os.environ.pop("USERNAME", None)
os.environ.pop("USERDOMAIN", None)
from ipyparallel.cluster import launcher as L  # noqa: E402 (after the environment is set)
from render_ipp_templates import arg_parser, write_or_check  # noqa: E402

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def render(cls, n):
    with tempfile.TemporaryDirectory() as work:
        launcher = cls(work_dir=work, profile_dir="/prof/profile_default", cluster_id="abc")
        launcher.write_job_file(n)
        with open(launcher.job_file, newline="") as f:
            return UUID.sub("UUID", f.read())


def main():
    args = arg_parser(__doc__).parse_args()
    bad = 0
    for cls, n in ((L.WindowsHPCControllerLauncher, 1), (L.WindowsHPCEngineSetLauncher, 4)):
        bad |= write_or_check(os.path.join(args.out, cls.__name__ + ".xml"), render(cls, n),
                              args.check)
    return bad


if __name__ == "__main__":
    sys.exit(main())
