"""Benchmark driver: gcnet against PyTorch, interleaved in one run (scripts/bench).

Both programs start once as workers (gcnet_bench --worker SUITE, peer_worker.py SUITE)
that answer "run CASE MODE ITERS" with per-iteration times. For every case and mode the
driver warms both up, then alternates between them round by round (swapping who goes
first each round), so both sides see the same machine load. It reports medians,
speedup = peer_ms / ours_ms, and the geometric-mean speedup per mode.

With --memory it measures peak memory instead: for every case and mode a fresh pair of workers
runs the mode --iters times and reports its peak resident memory (VmHWM, the whole process:
PyTorch's includes its interpreter and libraries, gcnet's its binary).

A new suite needs no change here: register its cases in a benchmarks/suite_<name>.cpp
and a benchmarks/peer_<name>.py.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = ("fwd", "fwd+bwd")


class Worker:
    def __init__(self, label, argv, env):
        self.label = label
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     bufsize=1)

    def ask(self, line, errors_ok=False):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            sys.exit(f"bench: {self.label} worker exited (asked: {line})")
        words = reply.split()
        if words[0] == "error":
            if errors_ok:
                return None
            sys.exit(f"bench: {self.label}: {reply.strip()} (asked: {line})")
        return words[1:]

    def cases(self):
        return self.ask("list")

    def run(self, case, mode, iters):
        return [float(t) for t in self.ask(f"run {case} {mode} {iters}")]

    def has_mode(self, case, mode, warmup):
        """Runs the warm-up; False when the case does not register this mode (e.g. NMS: fwd only)."""
        return self.ask(f"run {case} {mode} {max(warmup, 1)}", errors_ok=True) is not None

    def peak_mb(self):
        return int(self.ask("peak")[0]) / 1024.0

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=30)


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suite")
    ap.add_argument("--ours", required=True, help="path of the gcnet_bench binary")
    ap.add_argument("--json", help="write the records here")
    ap.add_argument("--rounds", type=int, default=7, help="alternations per case and mode")
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per side and round")
    ap.add_argument("--warmup", type=int, default=2, help="untimed iterations per side before the rounds")
    ap.add_argument("--threads", type=int, default=2, help="threads for both sides")
    ap.add_argument("--case", action="append", help="only these cases (repeatable)")
    ap.add_argument("--pause", type=float, default=0.02,
                    help="seconds between requests, so one side's idle spinning threads have parked")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment for both workers (e.g. OMP_WAIT_POLICY=passive)")
    ap.add_argument("--memory", action="store_true",
                    help="measure each side's peak resident memory per case and mode (fresh workers each)")
    args = ap.parse_args()

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), GCNET_BENCH_THREADS=str(args.threads))
    for kv in args.env:
        key, _, value = kv.partition("=")
        env[key] = value
    if args.memory:
        return memory(args, env)
    ours = Worker("gcnet", [args.ours, "--worker", args.suite], env)
    peer = Worker("pytorch", ["/usr/bin/python3", os.path.join(HERE, "peer_worker.py"), args.suite], env)
    try:
        names = ours.cases()
        if not names:
            sys.exit(f"bench: gcnet_bench has no cases in suite '{args.suite}'")
        missing = sorted(set(names) ^ set(peer.cases()))
        if missing:
            sys.exit(f"bench: suite '{args.suite}': cases not registered on both sides: {' '.join(missing)}")
        if args.case:
            names = [n for n in names if n in args.case]

        records = []
        print(f"suite {args.suite}: {args.rounds} rounds x {args.iters} iterations per side, "
              f"{args.threads} threads, interleaved", flush=True)
        for name in names:
            for mode in MODES:
                samples = {"ours": [], "peer": []}
                sides = [("ours", ours), ("peer", peer)]
                present = []
                for key, w in sides:
                    present.append(w.has_mode(name, mode, args.warmup))
                    time.sleep(args.pause)
                if not any(present):
                    continue  # a case with one mode only
                if not all(present):
                    sys.exit(f"bench: suite '{args.suite}': case {name} has mode {mode} on one side only")
                for r in range(args.rounds):
                    for key, w in (sides if r % 2 == 0 else sides[::-1]):
                        samples[key] += w.run(name, mode, args.iters)
                        time.sleep(args.pause)
                o, p = statistics.median(samples["ours"]), statistics.median(samples["peer"])
                rec = {"suite": args.suite, "case": name, "mode": mode, "ours_ms": round(o, 4), "peer_ms": round(p, 4),
                       "speedup": round(p / o, 4)}
                records.append(rec)
                print(f"  {name:<24} {mode:<8} ours {o:9.3f} ms  peer {p:9.3f} ms  speedup {p / o:6.2f}", flush=True)
    finally:
        ours.close()
        peer.close()

    print()
    print(f"| case | mode | gcnet (ms) | PyTorch (ms) | speedup |")
    print(f"|---|---|---:|---:|---:|")
    for r in records:
        print(f"| {r['case']} | {r['mode']} | {r['ours_ms']:.3f} | {r['peer_ms']:.3f} | {r['speedup']:.2f} |")
    for mode in MODES:
        speedups = [r["speedup"] for r in records if r["mode"] == mode]
        if speedups:
            print(f"| **geometric mean** | {mode} | | | **{geomean(speedups):.2f}** |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
            f.write("\n")
        print(f"\nwrote {args.json}")


def memory(args, env):
    """Peak resident memory of each side, a fresh process per case and mode."""
    makers = {"ours": lambda: Worker("gcnet", [args.ours, "--worker", args.suite], env),
              "peer": lambda: Worker("pytorch", ["/usr/bin/python3", os.path.join(HERE, "peer_worker.py"), args.suite],
                                     env)}
    ours = makers["ours"]()
    names = ours.cases()
    ours.close()
    if args.case:
        names = [n for n in names if n in args.case]
    records = []
    print(f"suite {args.suite}: peak resident memory, {args.iters} iterations per case and mode", flush=True)
    for name in names:
        for mode in MODES:
            row = {}
            for key in ("ours", "peer"):
                w = makers[key]()
                try:
                    if w.ask(f"run {name} {mode} {args.iters}", errors_ok=True) is not None:
                        row[key] = w.peak_mb()
                finally:
                    w.close()
            if len(row) < 2:
                continue
            rec = {"suite": args.suite, "case": name, "mode": mode, "ours_peak_mb": round(row["ours"], 1),
                   "peer_peak_mb": round(row["peer"], 1), "ratio": round(row["ours"] / row["peer"], 3)}
            records.append(rec)
            print(f"  {name:<24} {mode:<8} ours {row['ours']:9.1f} MB  peer {row['peer']:9.1f} MB  "
                  f"ours/peer {rec['ratio']:.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
            f.write("\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
