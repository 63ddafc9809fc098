"""A/B of two builds of gcnet: two gcnet_bench workers (e.g. the previous commit's and this one's)
on the same cases, interleaved round by round (the side that goes first alternates), so both see
the same machine load. Prints the median and the minimum per side and their ratio (prev / new:
above 1, the new build is faster), then the geometric mean of the minimum ratios per mode.

  git worktree add /tmp/prev HEAD~1 && cmake -S /tmp/prev -B /tmp/prev/build-bench -DCMAKE_BUILD_TYPE=Release \
      -DGCNET_BUILD_BENCHMARKS=ON -DGCNET_BUILD_TESTS=OFF -DGCNET_BUILD_EXAMPLES=OFF -DGCNET_CUDA=OFF
  cmake --build /tmp/prev/build-bench --target gcnet_bench
  AB_ROUNDS=5 AB_ITERS=2 /usr/bin/python3 benchmarks/ab_compare.py /tmp/prev/build-bench/benchmarks/gcnet_bench \
      build-bench/benchmarks/gcnet_bench SUITE [CASE,CASE,...]
Environment: AB_ROUNDS (11), AB_ITERS (5), AB_THREADS (2).
"""
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from driver import Worker  # noqa: E402


def main():
    prev_bin, new_bin, suite = sys.argv[1], sys.argv[2], sys.argv[3]
    cases = sys.argv[4].split(",") if len(sys.argv) > 4 else None
    rounds, iters = int(os.environ.get("AB_ROUNDS", "11")), int(os.environ.get("AB_ITERS", "5"))
    threads = os.environ.get("AB_THREADS", "2")
    env = dict(os.environ, OMP_NUM_THREADS=threads, GCNET_BENCH_THREADS=threads)
    prev = Worker("prev", [prev_bin, "--worker", suite], env)
    new = Worker("new", [new_bin, "--worker", suite], env)
    ratios = {"fwd": [], "fwd+bwd": []}
    for name in cases or prev.cases():
        for mode in ("fwd", "fwd+bwd"):
            times = {"prev": [], "new": []}
            sides = [("prev", prev), ("new", new)]
            for _, worker in sides:  # warm-up
                worker.run(name, mode, 2)
                time.sleep(0.02)
            for r in range(rounds):
                for side, worker in (sides if r % 2 == 0 else sides[::-1]):
                    times[side] += worker.run(name, mode, iters)
                    time.sleep(0.02)
            p, n = statistics.median(times["prev"]), statistics.median(times["new"])
            pm, nm = min(times["prev"]), min(times["new"])
            ratios[mode].append(pm / nm)
            print(f"{name:<20} {mode:<8} median prev {p:8.3f} new {n:8.3f} ({p / n:4.2f})   "
                  f"min prev {pm:8.3f} new {nm:8.3f} ({pm / nm:4.2f})", flush=True)
    for mode, r in ratios.items():
        if r:
            print(f"geomean of min prev/new {mode}: {math.exp(sum(map(math.log, r)) / len(r)):.3f}")
    prev.close()
    new.close()


if __name__ == "__main__":
    main()
