"""Suite "det" for the PyTorch peer (issue 18): torchvision 0.14's Mask R-CNN R50-FPN, float32.
Keep in sync with benchmarks/suite_det.cpp.

The model is maskrcnn_resnet50_fpn's structure as torchvision builds it for pretrained weights:
ResNet-50 with FrozenBatchNorm2d, layers 2-4 trainable (conv1 and layer1 frozen), FPN 256 with
the max-pool P6, 91 classes (background 0). Weights: torchvision's own init, seeded; the
classifier's bias of class 1 is raised to 6 so that every image gets its full 100 detections
(with a random classifier every score is about 1/91 < 0.05 and the box and mask post-processing
would never run): inference pays for NMS, 100 masks and their pasting, as with trained weights.

One case, maskrcnn_r50_fpn:
  fwd      inference of one 3x800x1216 image (values in [0, 1]) under no_grad, eval mode,
           min_size 800 / max_size 1333 (so the transform normalises and pads, no resize):
           boxes, scores, labels and masks pasted at 800x1216
  fwd+bwd  one training step at 2x3x512x512 without the optimizer step (min_size = max_size =
           512: no resize): zero the gradients, forward in training mode with 3 GT instances
           per image (boxes and 512x512 masks), sum of the five losses, backward
"""
import math

import torch
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.mask_rcnn import MaskRCNN
from torchvision.models.resnet import resnet50
from torchvision.ops.misc import FrozenBatchNorm2d

INFER_H, INFER_W = 800, 1216
TRAIN_BATCH, TRAIN_SIZE = 2, 512
NUM_CLASSES = 91
# GT instances of the training images (x1, y1, x2, y2, label), the same for both images.
GT = [(40.0, 60.0, 260.0, 300.0, 1), (280.0, 100.0, 480.0, 260.0, 5), (120.0, 320.0, 400.0, 500.0, 17)]


def build(min_size, max_size):
    backbone = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(backbone, 3)
    model = MaskRCNN(backbone, num_classes=NUM_CLASSES, min_size=min_size, max_size=max_size)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias[1] = 6.0
    return model


def image(c, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((c, h, w), generator=g)


def targets():
    out = []
    for _ in range(TRAIN_BATCH):
        boxes = torch.tensor([g[:4] for g in GT], dtype=torch.float32)
        labels = torch.tensor([g[4] for g in GT], dtype=torch.int64)
        masks = torch.zeros((len(GT), TRAIN_SIZE, TRAIN_SIZE), dtype=torch.uint8)
        for i, (x1, y1, x2, y2, _) in enumerate(GT):  # an ellipse inside each box
            yy, xx = torch.meshgrid(torch.arange(TRAIN_SIZE) + 0.5, torch.arange(TRAIN_SIZE) + 0.5, indexing="ij")
            cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
            masks[i] = (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1).to(torch.uint8)
        out.append({"boxes": boxes, "labels": labels, "masks": masks})
    return out


def prepare():
    torch.manual_seed(0)
    infer_model = build(INFER_H, 1333).eval()
    torch.manual_seed(0)
    train_model = build(TRAIN_SIZE, TRAIN_SIZE).train()
    x_infer = [image(3, INFER_H, INFER_W, 1)]
    x_train = [image(3, TRAIN_SIZE, TRAIN_SIZE, 2 + i) for i in range(TRAIN_BATCH)]
    gt = targets()
    checked = {"fwd": False, "fwd+bwd": False}

    def infer():
        with torch.no_grad():
            out = infer_model(x_infer)[0]
        if not checked["fwd"]:
            print(f"torch det: inference {out['boxes'].shape[0]} detections, masks {tuple(out['masks'].shape)}",
                  file=__import__("sys").stderr)
            checked["fwd"] = True

    def train_step():
        train_model.zero_grad(set_to_none=True)
        losses = train_model(x_train, gt)
        total = sum(losses.values())
        total.backward()
        if not checked["fwd+bwd"]:
            for k, v in losses.items():
                assert math.isfinite(float(v)), f"{k} = {float(v)} is not finite"
            print("torch det: first training step " + " ".join(f"{k}={float(v):.4f}" for k, v in losses.items()),
                  file=__import__("sys").stderr)
            checked["fwd+bwd"] = True

    return {"fwd": infer, "fwd+bwd": train_step}


CASES = {"maskrcnn_r50_fpn": prepare}
