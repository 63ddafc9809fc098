"""Suite "detops", NMS cases, for the PyTorch peer (issue 17): torchvision.ops, float32, CPU.

  nms_1000           torchvision.ops.nms of 1000 boxes, IoU threshold 0.7
  nms_5000           torchvision.ops.nms of 5000 boxes, IoU threshold 0.7
  batched_nms_80cls  torchvision.ops.batched_nms of 5000 boxes in 80 classes, IoU threshold 0.5
                     (above 1000 boxes torchvision runs one nms per class)
Mode "fwd" only. The data is generated exactly as benchmarks/suite_detops_nms.cpp generates it (the
same 64-bit LCG, only exact double arithmetic, one rounding to float32), so both sides work on
identical boxes; see make_boxes. benchmarks/peer_detops.py (the suite's module) imports CASES.

Run alone (prints the median time of each case and the kept counts):
    /usr/bin/python3 benchmarks/peer_detops_nms.py
"""
import time

import torch
import torchvision

_A, _C, _MASK = 6364136223846793005, 1442695040888963407, (1 << 64) - 1


class _Lcg:
    def __init__(self, seed):
        self.s = seed & _MASK

    def next(self):
        self.s = (self.s * _A + _C) & _MASK
        return self.s >> 40


def make_boxes(n, seed=1, classes=0):
    """(boxes [n, 4], scores [n], classes [n]) exactly as suite_detops_nms.cpp's make_boxes."""
    g = _Lcg(seed)
    k = max(1, n // 16)
    objs = []
    for _ in range(k):
        ox = g.next() * 1216 / 2**24
        oy = g.next() * 800 / 2**24
        ow = 24 + g.next() % 233
        oh = 24 + g.next() % 233
        objs.append((ox, oy, ow, oh))
    boxes, scores, labels = [], [], []
    for i in range(n):
        ox, oy, w, h = objs[g.next() % k]
        jx = (g.next() - 2**23) * w / 2**26
        jy = (g.next() - 2**23) * h / 2**26
        sw = w * 3 / 4 + w * g.next() / 2**25
        sh = h * 3 / 4 + h * g.next() / 2**25
        cx, cy = ox + jx, oy + jy
        boxes.append([cx - sw / 2, cy - sh / 2, cx + sw / 2, cy + sh / 2])
        scores.append(((g.next() >> 13) * 8192 + i) / 2**24)
        c = g.next()
        labels.append(c % classes if classes else 0)
    return (torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32),
            torch.tensor(labels, dtype=torch.int64))


def _prepare(n, thr, classes):
    def prepare():
        boxes, scores, labels = make_boxes(n, 1, classes)
        if classes:
            return {"fwd": lambda: torchvision.ops.batched_nms(boxes, scores, labels, thr)}
        return {"fwd": lambda: torchvision.ops.nms(boxes, scores, thr)}
    return prepare


CASES = {
    "nms_1000": _prepare(1000, 0.7, 0),
    "nms_5000": _prepare(5000, 0.7, 0),
    "batched_nms_80cls": _prepare(5000, 0.5, 80),
}


if __name__ == "__main__":
    import os
    torch.set_num_threads(int(os.environ.get("GCNET_BENCH_THREADS", "2")))
    for name, prep in CASES.items():
        fwd = prep()["fwd"]
        keep = fwd()
        times = []
        for _ in range(21):
            t0 = time.perf_counter()
            fwd()
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        print(f"{name:<20} kept {len(keep):5d}  median {times[10]:8.3f} ms")
