"""Suite "detops" for the PyTorch peer: torchvision 0.14's CPU ops. Keep in sync with
benchmarks/suite_detops.cpp (same data generators, same options).

  roi_align_7x7_1000  torchvision.ops.roi_align(x, rois, 7, 0.25, sampling_ratio=0, aligned=True)
                      of 1000 RoIs on a 1x256x200x304 map; fwd+bwd backpropagates a fixed output
                      gradient to the input (x.grad reset to None each time).
The NMS cases live in peer_detops_nms.py (merged below when present).
"""
import torch
from torchvision.ops import roi_align

CHANNELS, HEIGHT, WIDTH, ROIS = 256, 200, 304, 1000
IMAGE_W, IMAGE_H, MIN_SIDE, MAX_SIDE = 1216.0, 800.0, 16.0, 128.0
MASK64 = (1 << 64) - 1


def lcg_uniform(seed):
    s = seed
    while True:
        s = (s * 6364136223846793005 + 1442695040888963407) & MASK64
        yield (s >> 11) * 2.0 ** -53


def hash_values(shape, offset):
    n = 1
    for d in shape:
        n *= d
    h = ((torch.arange(n, dtype=torch.int64) + offset) * 2654435761) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x45D9F3B) & 0xFFFFFFFF
    h ^= h >> 13
    return (h.double() * 2.0 ** -31 - 1.0).float().reshape(shape)


def bench_rois():
    g = lcg_uniform(2024)
    ratio = MAX_SIDE / MIN_SIDE
    rows = []
    for _ in range(ROIS):
        w = MIN_SIDE * ratio ** next(g)
        h = MIN_SIDE * ratio ** next(g)
        cx = next(g) * IMAGE_W
        cy = next(g) * IMAGE_H
        rows.append([0.0, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    return torch.tensor(rows, dtype=torch.float64).float()


def prepare_roi_align():
    x = hash_values((1, CHANNELS, HEIGHT, WIDTH), 0).requires_grad_(True)
    rois = bench_rois()
    dy = hash_values((ROIS, CHANNELS, 7, 7), 1 << 30)

    def run():
        return roi_align(x, rois, (7, 7), spatial_scale=0.25, sampling_ratio=0, aligned=True)

    def fwd():
        with torch.no_grad():
            run()

    def fwd_bwd():
        x.grad = None
        run().backward(dy)

    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


CASES = {"roi_align_7x7_1000": prepare_roi_align}

try:
    from peer_detops_nms import CASES as _NMS

    CASES.update(_NMS)
except ImportError:
    pass
