"""Suite "dcn" for the PyTorch peer: torchvision.ops.deform_conv2d (0.14, CPU) for DCNv1 and
DCNv2, 3x3, padding 1, batch 2, with input, offset, (mask,) weight and bias requiring grad.
Keep in sync with benchmarks/suite_dcn.cpp."""
import torch
from torchvision.ops import deform_conv2d

BATCH = 2
# name: (channels, size, modulated)
SHAPES = {
    "v1_3x3_256_28": (256, 28, False),
    "v1_3x3_512_14": (512, 14, False),
    "v2_3x3_256_28": (256, 28, True),
    "v2_3x3_512_14": (512, 14, True),
}


def prepare(c, size, modulated):
    torch.manual_seed(1)
    weight = (torch.randn(c, c, 3, 3) / (3 * c) ** 0.5).requires_grad_(True)
    bias = torch.zeros(c, requires_grad=True)
    x = torch.randn(BATCH, c, size, size, requires_grad=True)
    offset = (2 * torch.randn(BATCH, 18, size, size)).requires_grad_(True)
    mask = torch.rand(BATCH, 9, size, size, requires_grad=True) if modulated else None
    leaves = [x, offset, weight, bias] + ([mask] if modulated else [])

    def run():
        return deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)

    with torch.no_grad():
        dy = torch.randn_like(run())

    def fwd():
        with torch.no_grad():
            run()

    def fwd_bwd():
        for t in leaves:
            t.grad = None
        run().backward(dy)

    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


CASES = {name: (lambda s=s: prepare(*s)) for name, s in SHAPES.items()}
