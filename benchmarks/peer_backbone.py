"""Suite "backbone" for the PyTorch peer (issue 6): torchvision's resnet50 and a plain-torch
mmdet GC-ResNet-50 (ContextBlock r16, att pooling, channel_add, after conv3 on c3-c5; the model
of tools/fixtures/backbones.py), both without avgpool/fc, returning the four stage outputs.

Cases (names as gcnet_bench's suite "backbone" must register them): MODEL_SIZE with MODEL in
resnet50, gc_resnet50 and SIZE in 224, 512.
  fwd      eval forward (BatchNorm on running statistics, no autograd) of 1x3xSIZExSIZE
  fwd+bwd  one training step at 2x3xSIZExSIZE: zero the gradients, forward in training mode
           (BatchNorm on batch statistics, running statistics updated), loss = sum over the four
           stage outputs of mean(out), backward, SGD update (lr 0.01, momentum 0.9, weight decay 1e-4).
           The issue's "training step at 2x3x224" is the _224 case.
Weights: PyTorch's default init, seeded; inputs random normal. PyTorch runs on GCNET_BENCH_THREADS
(2) threads, as peer_worker.py sets.

Peak memory: a process's peak RSS covers everything it ran, so it is measured per case and mode
in a fresh process:
    /usr/bin/python3 benchmarks/peer_backbone.py --measure [--case NAME] [--iters N] [--json PATH]
prints "| case | mode | PyTorch (ms) | peak RSS (MB) |" rows and writes records
{"suite": "backbone", "case", "mode", "peer_ms", "peer_peak_rss_mb"} (median of N timed runs after
one warm-up; peak RSS = getrusage ru_maxrss of that process, as gcnet's train/peak_memory.hpp).
"""
import os
import resource
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "fixtures"))

SIZES = (224, 512)
TRAIN_BATCH = 2


def build(model):
    """A module returning the list of the four stage outputs."""
    import backbones  # tools/fixtures/backbones.py: torchvision wrapper and the mmdet re-implementation
    import torchvision
    if model == "resnet50":
        return backbones.TorchvisionStages(torchvision.models.resnet50())
    if model == "gc_resnet50":
        net = backbones.ResNet(gc_ratio=(None, 1 / 16, 1 / 16, 1 / 16))
        for m in net.modules():  # mmcv's ContextBlock init: the last conv of the branch is zero
            if isinstance(m, backbones.ContextBlock):
                torch.nn.init.kaiming_normal_(m.conv_mask.weight, mode="fan_in", nonlinearity="relu")
                torch.nn.init.zeros_(m.conv_mask.bias)
                torch.nn.init.zeros_(m.channel_add_conv[-1].weight)
                torch.nn.init.zeros_(m.channel_add_conv[-1].bias)
        return net
    raise ValueError(f"unknown model '{model}'")


def prepare(model, size):
    torch.manual_seed(0)
    net = build(model)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    x_eval = torch.randn(1, 3, size, size)
    x_train = torch.randn(TRAIN_BATCH, 3, size, size)

    def fwd():
        net.eval()
        with torch.no_grad():
            net(x_eval)

    def train_step():
        net.train()
        opt.zero_grad(set_to_none=True)
        loss = sum(o.mean() for o in net(x_train))
        loss.backward()
        opt.step()

    return {"fwd": fwd, "fwd+bwd": train_step}


CASES = {f"{m}_{s}": (lambda m=m, s=s: prepare(m, s)) for m in ("resnet50", "gc_resnet50") for s in SIZES}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def measure_one(case, mode, iters):
    """In this process: time `iters` runs after one warm-up; print "ms rss"."""
    import statistics
    import time
    torch.set_num_threads(int(os.environ.get("GCNET_BENCH_THREADS", "2")))
    action = CASES[case]()[mode]
    action()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        action()
        times.append((time.perf_counter() - t0) * 1e3)
    print(f"{statistics.median(times):.4f} {peak_rss_mb():.1f}")


def measure(argv):
    import argparse
    import json
    import subprocess
    ap = argparse.ArgumentParser()
    ap.add_argument("--measure", action="store_true")
    ap.add_argument("--case", action="append")
    ap.add_argument("--mode", action="append")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    records = []
    print("| case | mode | PyTorch (ms) | peak RSS (MB) |")
    print("|---|---|---:|---:|")
    for case in args.case or list(CASES):
        for mode in args.mode or ("fwd", "fwd+bwd"):
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", case, mode, str(args.iters)],
                                 capture_output=True, text=True, check=True).stdout.split()
            rec = {"suite": "backbone", "case": case, "mode": mode, "peer_ms": float(out[0]),
                   "peer_peak_rss_mb": float(out[1])}
            records.append(rec)
            print(f"| {case} | {mode} | {rec['peer_ms']:.1f} | {rec['peer_peak_rss_mb']:.0f} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--one":
        measure_one(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif "--measure" in sys.argv:
        measure(sys.argv[1:])
    else:
        sys.exit(__doc__)
