"""The PyTorch peer of gcnet_bench: the same line protocol on stdin/stdout.

    /usr/bin/python3 benchmarks/peer_worker.py SUITE
        list                    -> "cases NAME NAME ..."
        run CASE MODE ITERS     -> "ok MS MS ..."
        peak                    -> "ok KB" (the process's peak resident memory, VmHWM)
        quit

Cases come from benchmarks/peer_<SUITE>.py, a module with CASES = {name: prepare}, where
prepare() builds the module and tensors once and returns {mode: callable}. A case is
prepared (and each mode run once, untimed) on its first request. PyTorch runs on 2 threads.
"""
import importlib
import os
import sys
import time

import torch


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: peer_worker.py SUITE")
    suite = sys.argv[1]
    torch.set_num_threads(int(os.environ.get("GCNET_BENCH_THREADS", "2")))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    cases = importlib.import_module(f"peer_{suite}").CASES
    prepared, warm = {}, set()
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "quit":
                break
            if words[0] == "list":
                print("cases " + " ".join(cases), flush=True)
            elif words[0] == "peak":
                with open("/proc/self/status") as f:
                    kb = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
                print("ok " + kb, flush=True)
            elif words[0] == "run":
                name, mode, iters = words[1], words[2], int(words[3])
                if name not in cases:
                    raise KeyError(f"no case '{name}' in suite '{suite}'")
                if name not in prepared:
                    prepared[name] = cases[name]()
                action = prepared[name][mode]
                if (name, mode) not in warm:
                    action()
                    warm.add((name, mode))
                times = []
                for _ in range(iters):
                    t0 = time.perf_counter()
                    action()
                    times.append((time.perf_counter() - t0) * 1e3)
                print("ok " + " ".join(f"{t:.6f}" for t in times), flush=True)
            else:
                raise ValueError(f"unknown command '{words[0]}'")
        except Exception as e:  # report and keep serving
            print(f"error {type(e).__name__}: {e}", flush=True)


if __name__ == "__main__":
    main()
