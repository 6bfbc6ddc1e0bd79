"""The main job: a real computation through cpcontroller with the real ipyparallel client.

Estimates pi by Monte Carlo on every engine, checks the engines' answers against a local run of
the same seeds, and shows a few other things a user does with a cluster.
"""
import sys
import time

import ipyparallel as ipp


def hits(samples, seed):
    import random

    rng = random.Random(seed)
    inside = 0
    for _ in range(samples):
        x, y = rng.random(), rng.random()
        inside += x * x + y * y <= 1.0
    return inside


def main():
    profile_dir, engines = sys.argv[1], int(sys.argv[2])
    rc = ipp.Client(profile_dir=profile_dir, timeout=30)
    rc.wait_for_engines(engines, timeout=60)
    print(f"connected: engines {rc.ids}")
    dv = rc[:]

    pids = dv.apply_sync(lambda: __import__("os").getpid())
    print(f"engine processes: {pids}")

    samples, chunks = 200_000, 4 * engines
    t0 = time.time()
    lview = rc.load_balanced_view()
    remote = lview.map_sync(hits, [samples] * chunks, range(chunks))
    elapsed = time.time() - t0
    local = [hits(samples, seed) for seed in range(chunks)]
    if remote != local:
        raise SystemExit(f"engines disagree with the local computation: {remote} != {local}")
    pi = 4.0 * sum(remote) / (samples * chunks)
    print(f"pi ~= {pi:.5f} from {samples * chunks:,} samples, load-balanced over {engines} "
          f"engines in {elapsed:.2f}s")

    dv.scatter("xs", list(range(32)), block=True)
    dv.execute("partial = sum(x * x for x in xs)", block=True)
    total = sum(dv.gather("partial", block=True))
    assert total == sum(x * x for x in range(32)), total
    print(f"scatter/execute/gather: sum of squares 0..31 = {total}")

    status = rc.queue_status()
    print(f"queue status: {status}")
    rc.shutdown(hub=True, block=True)
    print("engines and controller shut down")


if __name__ == "__main__":
    main()
