"""Suite "blocks" for the PyTorch peer: the global-context family in plain torch, equal to
mmcv ContextBlock (att pooling, channel_add; ratio 1/16 and 1/4), mmdet SELayer (ratio 16),
mmcv NonLocal2d (embedded_gaussian, reduction 2, use_scale, no sub_sample) and the paper's
simplified NL (att pooling + one C->C 1x1 conv, added), at batch 2 on the ResNet-50 stage
shapes; plus "copy" cases (x.clone()), the memory floor the GC forward is compared with.
Keep in sync with benchmarks/suite_blocks.cpp (the driver checks the names match).

    /usr/bin/python3 benchmarks/peer_blocks.py --summary blocks.json
prints the geometric-mean speedup per block kind and the GC-forward / copy ratios from the
records `scripts/bench blocks --json blocks.json` wrote.
"""
import torch
from torch import nn

BATCH = 2
# (channels, size): the inputs of ResNet-50's stages c2-c5.
SHAPES = ((256, 56), (512, 28), (1024, 14), (2048, 7))


class ContextBlock(nn.Module):
    """mmcv ContextBlock(C, ratio, pooling_type='att', fusion_types=('channel_add',)), mmcv's init."""

    def __init__(self, channels, ratio):
        super().__init__()
        planes = int(channels * ratio)
        self.conv_mask = nn.Conv2d(channels, 1, 1)
        self.softmax = nn.Softmax(dim=2)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(channels, planes, 1), nn.LayerNorm([planes, 1, 1]), nn.ReLU(inplace=True),
            nn.Conv2d(planes, channels, 1))
        nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.conv_mask.bias)
        nn.init.zeros_(self.channel_add_conv[-1].weight)
        nn.init.zeros_(self.channel_add_conv[-1].bias)

    def spatial_pool(self, x):
        n, c, h, w = x.shape
        input_x = x.view(n, c, h * w).unsqueeze(1)
        mask = self.softmax(self.conv_mask(x).view(n, 1, h * w)).unsqueeze(-1)
        return torch.matmul(input_x, mask).view(n, c, 1, 1)

    def forward(self, x):
        return x + self.channel_add_conv(self.spatial_pool(x))


class SELayer(nn.Module):
    """mmdet SELayer(C, ratio=16): avg pool, ConvModule(C, int(C/ratio)) + ReLU, ConvModule -> C
    + Sigmoid, scale; ConvModule's init (kaiming normal fan_out, bias 0)."""

    def __init__(self, channels, ratio=16):
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = nn.Conv2d(channels, int(channels / ratio), 1)
        self.conv2 = nn.Conv2d(int(channels / ratio), channels, 1)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def forward(self, x):
        out = torch.relu(self.conv1(self.global_avgpool(x)))
        return x * torch.sigmoid(self.conv2(out))


class NonLocal2d(nn.Module):
    """mmcv NonLocal2d(C, reduction=2, use_scale=True, mode='embedded_gaussian', sub_sample=False),
    init_weights(std=0.01, zeros_init=True)."""

    def __init__(self, channels, reduction=2):
        super().__init__()
        self.inter = max(channels // reduction, 1)
        self.g = nn.Conv2d(channels, self.inter, 1)
        self.theta = nn.Conv2d(channels, self.inter, 1)
        self.phi = nn.Conv2d(channels, self.inter, 1)
        self.conv_out = nn.Conv2d(self.inter, channels, 1)
        for conv in (self.g, self.theta, self.phi):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x):
        n, _, h, w = x.shape
        g_x = self.g(x).view(n, self.inter, -1).permute(0, 2, 1)
        theta_x = self.theta(x).view(n, self.inter, -1).permute(0, 2, 1)
        phi_x = self.phi(x).view(n, self.inter, -1)
        pairwise = torch.matmul(theta_x, phi_x)
        pairwise = pairwise / theta_x.shape[-1] ** 0.5  # use_scale
        pairwise = pairwise.softmax(dim=-1)
        y = torch.matmul(pairwise, g_x).permute(0, 2, 1).contiguous().reshape(n, self.inter, h, w)
        return x + self.conv_out(y)


class SimplifiedNL(nn.Module):
    """The paper's SNL: z = x + W_v sum_j softmax(W_k x)_j x_j (W_k: C->1, W_v: C->C, 1x1 convs
    with bias; PyTorch's default init)."""

    def __init__(self, channels):
        super().__init__()
        self.conv_mask = nn.Conv2d(channels, 1, 1)
        self.transform = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        mask = self.conv_mask(x).view(n, 1, h * w).softmax(dim=2).unsqueeze(-1)
        context = torch.matmul(x.view(n, c, h * w).unsqueeze(1), mask).view(n, c, 1, 1)
        return x + self.transform(context)


class Copy(nn.Module):
    """The memory floor: one plain copy of x."""

    def forward(self, x):
        return x.clone()


def prepare(make, channels, size):
    torch.manual_seed(1)
    block = make(channels)
    x = torch.randn(BATCH, channels, size, size, requires_grad=True)
    with torch.no_grad():
        dy = torch.randn_like(block(x))
    params = list(block.parameters())

    def fwd():
        with torch.no_grad():
            block(x)

    def fwd_bwd():
        # Forward plus input and parameter gradients, as gcnet's backward computes.
        x.grad = None
        for p in params:
            p.grad = None
        block(x).backward(dy)

    def copy_fwd_bwd():
        # An identity's forward and backward: y = copy of x, dx = copy of dy.
        with torch.no_grad():
            x.clone()
            dy.clone()

    if isinstance(block, Copy):
        return {"fwd": fwd, "fwd+bwd": copy_fwd_bwd}
    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


KINDS = {
    "gc_r16": lambda c: ContextBlock(c, 1 / 16),
    "gc_r4": lambda c: ContextBlock(c, 1 / 4),
    "se_r16": lambda c: SELayer(c, 16),
    "nl": lambda c: NonLocal2d(c, 2),
    "snl": SimplifiedNL,
    "copy": lambda c: Copy(),
}

# Names as in suite_blocks.cpp: KIND_C_SIZE, e.g. gc_r16_256_56.
CASES = {f"{kind}_{c}_{s}": (lambda make=make, c=c, s=s: prepare(make, c, s))
         for kind, make in KINDS.items() for c, s in SHAPES}


def geomean(values):
    import math
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def summary(path):
    """Per-kind geometric means and GC-forward / copy ratios from a driver JSON file."""
    import json
    with open(path) as f:
        records = json.load(f)
    kind_of = lambda case: case.rsplit("_", 2)[0]
    print("| block | geomean speedup fwd | geomean speedup fwd+bwd |")
    print("|---|---:|---:|")
    for kind in KINDS:
        if kind == "copy" or not any(kind_of(r["case"]) == kind for r in records):
            continue
        g = [geomean([r["speedup"] for r in records if kind_of(r["case"]) == kind and r["mode"] == m])
             for m in ("fwd", "fwd+bwd")]
        print(f"| {kind} | {g[0]:.2f} | {g[1]:.2f} |")
    ours = {(r["case"], r["mode"]): r["ours_ms"] for r in records}
    peer = {(r["case"], r["mode"]): r["peer_ms"] for r in records}
    print()
    print("| shape | copy (ms) | GC r16 fwd (ms) | GC r16 fwd / copy | PyTorch: clone, GC r16 fwd (ms), ratio |")
    print("|---|---:|---:|---:|---|")
    for c, s in SHAPES:
        key_copy, key_gc = (f"copy_{c}_{s}", "fwd"), (f"gc_r16_{c}_{s}", "fwd")
        if key_copy in ours and key_gc in ours:
            print(f"| {c}@{s} | {ours[key_copy]:.3f} | {ours[key_gc]:.3f} | {ours[key_gc] / ours[key_copy]:.2f} | "
                  f"{peer[key_copy]:.3f}, {peer[key_gc]:.3f}, {peer[key_gc] / peer[key_copy]:.2f} |")


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "--summary":
        summary(sys.argv[2])
    else:
        sys.exit("usage: peer_blocks.py --summary BLOCKS.json")
