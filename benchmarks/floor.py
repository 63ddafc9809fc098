"""GC r16 forward against its memory floor and one copy of x (gcnet only, no peer).

    /usr/bin/python3 benchmarks/floor.py --ours build-bench/benchmarks/gcnet_bench [--rounds 7]

Runs gcnet_bench's suite "floor" as a worker and, for each stage shape, alternates round by
round between the copy of x, the GC r16 forward and prepare_gc_floor's case (the forward's
memory traffic without its arithmetic, benchmarks/suite_blocks.cpp), each warm and back to back
(ITERS iterations per round). Prints the median over rounds of each round's median, and the
ratios: GC / copy is the issue's target, floor / copy what any implementation of this forward
pays on this machine, GC / floor what is left to gain.
"""
import argparse
import os
import statistics
import subprocess
import sys

SHAPES = ("256_56", "512_28", "1024_14", "2048_7")
KINDS = ("copy", "gc_r16", "floor_gc_r16")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", required=True, help="path of the gcnet_bench binary")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iters", type=int, default=31)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.Popen([args.ours, "--worker", "floor"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env, bufsize=1)

    def run(case):
        proc.stdin.write(f"run {case} fwd {args.iters}\n")
        proc.stdin.flush()
        words = proc.stdout.readline().split()
        if not words or words[0] != "ok":
            sys.exit(f"floor: gcnet_bench answered {' '.join(words) or 'nothing'} for {case}")
        return statistics.median(float(w) for w in words[1:])

    medians = {}
    try:
        for _ in range(args.rounds):
            for shape in SHAPES:
                for kind in KINDS:
                    medians.setdefault((kind, shape), []).append(run(f"{kind}_{shape}"))
    finally:
        proc.stdin.write("quit\n")
        proc.stdin.close()
        proc.wait(timeout=30)
    print(f"suite floor: {args.rounds} rounds x {args.iters} iterations, {args.threads} threads, medians in us")
    print("| shape | copy | GC r16 fwd | floor | GC / copy | floor / copy | GC / floor |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for shape in SHAPES:
        copy, gc, floor = (1000 * statistics.median(medians[(k, shape)]) for k in KINDS)
        c, s = shape.split("_")
        print(f"| {c}@{s} | {copy:.1f} | {gc:.1f} | {floor:.1f} | {gc / copy:.2f} | {floor / copy:.2f} | "
              f"{gc / floor:.2f} |")


if __name__ == "__main__":
    main()
