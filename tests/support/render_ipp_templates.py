#!/usr/bin/python3
"""Render ipyparallel 7.1's default batch scripts with its own launcher classes, as golden files.

usage: render_ipp_templates.py [--out DIR] [--check] CLASS [CLASS ...]
       e.g. render_ipp_templates.py SlurmControllerLauncher SlurmEngineSetLauncher

For each class (a BatchSystemLauncher subclass of ipyparallel.cluster.launcher) two files are
written into DIR (default: tests/golden/launchers beside this script's tests/ directory):

  <CLASS>.txt        the default template rendered for n=4 (a controller renders n=1, as 7.1's
                     controllers always do), cluster id "abc", profile "/prof/profile_default"
  <CLASS>-queue.txt  the same with queue "q1" and, for the classes that have them, the Slurm
                     settings account "a1", qos "qos1" and timelimit "01:00:00"

The programs are fixed ("python3 -m ipyparallel.engine" / "... .controller") rather than the
interpreter that runs this script, so that the files do not depend on the machine. --check
compares instead of writing and exits 1 on any difference.
"""
import argparse
import os
import sys
import tempfile

from ipyparallel.cluster import launcher as L

N = 4
CLUSTER_ID = "abc"
PROFILE_DIR = "/prof/profile_default"
ENGINE_CMD = ["python3", "-m", "ipyparallel.engine"]
CONTROLLER_CMD = ["python3", "-m", "ipyparallel.controller"]
QUEUE = "q1"
EXTRA = {"account": "a1", "qos": "qos1", "timelimit": "01:00:00"}


def render(cls_name, queue):
    cls = getattr(L, cls_name, None)
    if cls is None or not (isinstance(cls, type) and issubclass(cls, L.BatchSystemLauncher)):
        raise SystemExit(f"{cls_name}: not a BatchSystemLauncher class of ipyparallel 7.1")
    controller = issubclass(cls, L.BatchControllerLauncher)
    with tempfile.TemporaryDirectory() as work:
        kw = dict(work_dir=work, profile_dir=PROFILE_DIR, cluster_id=CLUSTER_ID)
        if controller:
            kw["controller_cmd"] = list(CONTROLLER_CMD)
        else:
            kw["engine_cmd"] = list(ENGINE_CMD)
        if queue:
            kw["queue"] = QUEUE
            for name, value in EXTRA.items():
                if cls.class_traits().get(name) is not None:
                    kw[name] = value
        launcher = cls(**kw)
        launcher.write_batch_script(1 if controller else N)
        with open(launcher.batch_file, newline="") as f:
            return f.read()


def arg_parser(doc):
    """--out DIR (default: tests/golden/launchers) and --check, for the golden files' scripts."""
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", default=os.path.normpath(os.path.join(here, "..", "golden", "launchers")))
    ap.add_argument("--check", action="store_true")
    return ap


def write_or_check(path, text, check):
    """Write text to path (and print path), or with check compare them: 1 if they differ."""
    if not check:
        with open(path, "w", newline="") as f:
            f.write(text)
        print(path)
        return 0
    try:
        with open(path, newline="") as f:
            if f.read() == text:
                return 0
    except FileNotFoundError:
        pass
    print(f"differs: {path}")
    return 1


def main():
    ap = arg_parser(__doc__)
    ap.add_argument("classes", nargs="+")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    bad = 0
    for cls_name in args.classes:
        for suffix, queue in (("", False), ("-queue", True)):
            path = os.path.join(args.out, f"{cls_name}{suffix}.txt")
            bad |= write_or_check(path, render(cls_name, queue), args.check)
    return bad


if __name__ == "__main__":
    sys.exit(main())
