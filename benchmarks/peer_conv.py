"""Suite "conv" for the PyTorch peer: torch.nn.Conv2d at batch 2 on the ResNet-50 shapes,
bias=False (oneDNN on the CPU). Keep in sync with benchmarks/suite_conv.cpp."""
import torch

BATCH = 2
# name: (in, out, size, kernel, stride, padding)
SHAPES = {
    "7x7s2_3to64_224": (3, 64, 224, 7, 2, 3),
    "1x1_256to64_56": (256, 64, 56, 1, 1, 0),
    "3x3_64to64_56": (64, 64, 56, 3, 1, 1),
    "3x3_128to128_28": (128, 128, 28, 3, 1, 1),
    "1x1_1024to256_14": (1024, 256, 14, 1, 1, 0),
    "3x3_512to512_7": (512, 512, 7, 3, 1, 1),
}


def prepare(cin, cout, size, k, stride, pad):
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False)
    x = torch.randn(BATCH, cin, size, size, requires_grad=True)
    with torch.no_grad():
        dy = torch.randn_like(conv(x))

    def fwd():
        with torch.no_grad():
            conv(x)

    def fwd_bwd():
        # Forward plus input and weight gradients, as gcnet's backward computes.
        x.grad = None
        conv.weight.grad = None
        conv(x).backward(dy)

    return {"fwd": fwd, "fwd+bwd": fwd_bwd}


CASES = {name: (lambda s=s: prepare(*s)) for name, s in SHAPES.items()}
