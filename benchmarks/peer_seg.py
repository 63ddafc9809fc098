"""Suite "seg" for the PyTorch peer (issue 15): mmseg's GCNet R50-D8 in plain torch, float32.

  backbone  ResNetV1c-50 D8: deep stem (32, 32, 64), strides 1,2,1,1, dilations 1,1,2,4 with
            contract_dilation (tools/fixtures/backbones.py's ResNet, nn.BatchNorm2d)
  decode    GCHead on c5: convs[0] (3x3, 2048 -> 512) -> ContextBlock (ratio 1/4, att pooling,
            channel_add) -> convs[1] (3x3) -> conv_cat(cat[x, out]) (3x3, 2560 -> 512) ->
            Dropout2d(0.1) -> conv_seg (1x1, 19 classes)
  auxiliary FCNHead on c4: one 3x3 conv (1024 -> 256), no concat -> Dropout2d(0.1) -> conv_seg,
            loss weight 0.4, training only
ConvModule = conv (no bias) + BatchNorm2d + ReLU(inplace), as mmcv's.

One case, gcnet_r50_d8 (as gcnet_bench's suite "seg" registers it):
  fwd      whole-image inference of 1x3x512x512 under no_grad: eval forward (BatchNorm on running
           statistics), the decode logits resized (bilinear, align_corners False) to the image
  fwd+bwd  one training iteration at 2x3x256x256 without the optimizer step: zero the gradients,
           forward in training mode, mmseg's loss_by_feat per head (logits resized to the label
           size, cross entropy with ignore_index 255, mean over all pixels, aux weight 0.4) and
           the decode head's acc_seg, backward (no input gradient)
Weights: PyTorch's default init (mmcv's for the ContextBlock), seeded; inputs random normal;
labels uniform in [0, 19) with about 5% ignored (255). PyTorch runs on GCNET_BENCH_THREADS (2)
threads, as peer_worker.py sets. The first training iteration and inference are checked (finite
losses, the logits' shape) and reported once on stderr.
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "fixtures"))

NUM_CLASSES = 19
IGNORE = 255
INFER_SIZE = 512
TRAIN_BATCH, TRAIN_SIZE = 2, 256


class ConvModule(nn.Module):
    """mmcv ConvModule: conv (no bias), BatchNorm2d, ReLU(inplace)."""

    def __init__(self, cin, cout, k):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.activate(self.bn(self.conv(x)))


class FCNHead(nn.Module):
    """mmseg FCNHead; gc_ratio makes it GCHead (the ContextBlock between convs[0] and convs[1])."""

    def __init__(self, in_channels, channels, num_convs=2, concat_input=True, gc_ratio=None, dropout=0.1,
                 loss_weight=1.0):
        super().__init__()
        import backbones  # tools/fixtures/backbones.py: mmcv's ContextBlock in plain torch
        self.convs = nn.Sequential(*[ConvModule(in_channels if i == 0 else channels, channels, 3)
                                     for i in range(num_convs)])
        self.gc_block = None
        if gc_ratio is not None:
            self.gc_block = backbones.ContextBlock(channels, gc_ratio)
            nn.init.kaiming_normal_(self.gc_block.conv_mask.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(self.gc_block.conv_mask.bias)
            nn.init.zeros_(self.gc_block.channel_add_conv[-1].weight)  # mmcv's last_zero_init
            nn.init.zeros_(self.gc_block.channel_add_conv[-1].bias)
        self.conv_cat = ConvModule(in_channels + channels, channels, 3) if concat_input else None
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, NUM_CLASSES, 1)
        self.loss_weight = loss_weight

    def forward(self, x):
        out = self.convs[0](x)
        if self.gc_block is not None:
            out = self.gc_block(out)
        for conv in list(self.convs)[1:]:
            out = conv(out)
        if self.conv_cat is not None:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.conv_seg(self.dropout(out))

    def loss(self, logits, labels):
        """mmseg loss_by_feat (avg_non_ignore False): mean over all pixels, ignored ones count 0."""
        up = F.interpolate(logits, size=labels.shape[1:], mode="bilinear", align_corners=False)
        loss = self.loss_weight * F.cross_entropy(up, labels, ignore_index=IGNORE, reduction="none").mean()
        return loss, up


class EncoderDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        import backbones
        self.backbone = backbones.ResNet(blocks=(3, 4, 6, 3), strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4),
                                         deep_stem=True, contract_dilation=True, stem_channels=64,
                                         base_channels=64)
        self.decode_head = FCNHead(2048, 512, num_convs=2, concat_input=True, gc_ratio=1 / 4)
        self.auxiliary_head = FCNHead(1024, 256, num_convs=1, concat_input=False, loss_weight=0.4)

    def forward(self, x):
        feats = self.backbone(x)
        return self.decode_head(feats[3]), (self.auxiliary_head(feats[2]) if self.training else None)


def accuracy(up, labels):
    """mmseg's acc_seg (top-1, ignore_index), in percent."""
    valid = labels != IGNORE
    correct = (up.argmax(dim=1) == labels) & valid
    return 100.0 * correct.sum() / valid.sum().clamp(min=1)


def prepare():
    torch.manual_seed(0)
    net = EncoderDecoder()
    x_infer = torch.randn(1, 3, INFER_SIZE, INFER_SIZE)
    x_train = torch.randn(TRAIN_BATCH, 3, TRAIN_SIZE, TRAIN_SIZE)
    labels = torch.randint(0, NUM_CLASSES, (TRAIN_BATCH, TRAIN_SIZE, TRAIN_SIZE))
    labels[torch.rand(labels.shape) < 0.05] = IGNORE
    checked = set()

    def infer():
        net.eval()
        with torch.no_grad():
            decode, _ = net(x_infer)
            logits = F.interpolate(decode, size=x_infer.shape[2:], mode="bilinear", align_corners=False)
        if "infer" not in checked:
            want = (1, NUM_CLASSES, INFER_SIZE, INFER_SIZE)
            assert tuple(logits.shape) == want, f"inference logits have shape {tuple(logits.shape)}, expected {want}"
            print(f"pytorch seg: inference logits {list(logits.shape)}", file=sys.stderr, flush=True)
            checked.add("infer")

    def train_iteration():
        net.train()
        net.zero_grad(set_to_none=True)
        decode, aux = net(x_train)
        loss_decode, up = net.decode_head.loss(decode, labels)
        loss_aux, _ = net.auxiliary_head.loss(aux, labels)
        with torch.no_grad():
            acc = accuracy(up, labels)
        (loss_decode + loss_aux).backward()
        if "train" not in checked:
            values = {"decode.loss_ce": loss_decode.item(), "aux.loss_ce": loss_aux.item(), "decode.acc_seg": acc.item()}
            bad = [k for k, v in values.items() if not torch.isfinite(torch.tensor(v))]
            assert not bad, f"not finite: {bad}"
            print("pytorch seg: first training iteration " + " ".join(f"{k}={v:.6g}" for k, v in values.items()),
                  file=sys.stderr, flush=True)
            checked.add("train")

    return {"fwd": infer, "fwd+bwd": train_iteration}


CASES = {"gcnet_r50_d8": prepare}

if __name__ == "__main__":
    sys.exit(__doc__)
