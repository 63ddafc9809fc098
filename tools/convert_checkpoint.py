#!/usr/bin/python3
"""Convert PyTorch .pth checkpoints to gcnet's safetensors checkpoints and back.

    /usr/bin/python3 tools/convert_checkpoint.py IN.pth OUT.safetensors [--select=PREFIX] [--drop=PREFIX ...] [--torchvision-maskrcnn]
    /usr/bin/python3 tools/convert_checkpoint.py IN.safetensors OUT.pth [--mmcv] [--keep-optimizer] [--add-prefix=P]
    /usr/bin/python3 tools/convert_checkpoint.py self-test GCNET_TEST_EXE WORK_DIR
    /usr/bin/python3 tools/convert_checkpoint.py resnet50-test GCNET_TEST_EXE WORK_DIR

The direction follows the file extensions. A .pth may be a raw state dict (torchvision's model
zoo files), an mmdet/mmseg/mmcv checkpoint dict ({"state_dict": ..., "meta": ..., "optimizer": ...})
or a torchvision-references training checkpoint ({"model": ..., "optimizer": ..., "epoch": ...});
a "module." prefix (DataParallel) is stripped. Tensor names are kept as they are: torchvision's
ResNet/ResNeXt names already equal mmdet's (conv1, bn1, layerN.M.convK, downsample.0/1), and mmdet/
mmseg names are gcnet's, so the result loads into the gcnet model of the same architecture.
Key mapping: old mmdet/GCNet-repo DCN names "<block>.conv2_offset.{weight,bias}" become mmcv's
"<block>.conv2.conv_offset.{weight,bias}" (what mmcv's DeformConv2dPack does on load).
  --select=PREFIX   keep only the entries under PREFIX and strip it (a backbone out of a detector
                    or segmentor checkpoint: --select=backbone.)
  --drop=PREFIX     drop the entries under PREFIX (repeatable; e.g. --drop=fc. for a torchvision
                    classifier loaded as a backbone)
  --torchvision-maskrcnn  (to .safetensors) a torchvision Mask R-CNN state dict (maskrcnn_resnet50_fpn, or the
                    MaskRCNN class on a ResNet BackboneWithFPN): backbone.body.* -> backbone.*, backbone.fpn.* ->
                    neck.lateral_convs/fpn_convs.*, rpn.head.* -> rpn_head.rpn_conv/rpn_cls/rpn_reg.*,
                    roi_heads.box_head/box_predictor.* -> roi_head.bbox_head.shared_fcs.0/1, fc_cls, fc_reg.*,
                    roi_heads.mask_head/mask_predictor.* -> roi_head.mask_head.convs.K.conv, upsample,
                    conv_logits.*; BatchNorm num_batches_tracked dropped (the preset's norms are
                    FrozenBatchNorm2d); any other key is an error. The metadata records det_preset =
                    torchvision_maskrcnn and det_num_classes (without background), which gcnet's
                    load_mask_rcnn_checkpoint checks against the model.
  --add-prefix=P    (to .pth) prepend P to every name (e.g. backbone. to build a detector's dict) mmcv's meta "iter"/"epoch"/
"seed" become the metadata keys "iter"/"epoch"/"seed" (those gcnet's trainer writes); the whole meta is kept as JSON
in "mmcv_meta". The mmcv optimizer state is not converted (its entries are indexed by
parameter position, not by name); gcnet writes its own as "optimizer.<param>.momentum_buffer".
Dtypes: float32 -> F32, float64 -> F64, int64 -> I64, int32 -> I32, uint8 -> U8, bool -> BOOL;
float16/bfloat16 are widened to F32 (gcnet reads no half types).
Back to .pth: a raw state dict (or with --mmcv, {"state_dict", "meta"}); "optimizer.*"
entries are dropped unless --keep-optimizer.

self-test: the round trip ctest (docs/checkpoints.md). Exits 77 (skipped) without torch.
"""
import json
import os
import re
import struct
import subprocess
import sys

try:
    import torch
except ImportError:  # the self-test reports a skip; conversions need torch
    torch = None

ALIGN = 8
DTYPE_SIZE = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "U8": 1, "BOOL": 1}
TO_SAFETENSORS = {"torch.float32": "F32", "torch.float64": "F64", "torch.int64": "I64",
                  "torch.int32": "I32", "torch.uint8": "U8", "torch.bool": "BOOL"}
FROM_SAFETENSORS = {"F32": ("<f4", "float32"), "F64": ("<f8", "float64"), "I64": ("<i8", "int64"),
                    "I32": ("<i4", "int32"), "U8": ("|u1", "uint8"), "BOOL": ("|b1", "bool")}


def fail(msg):
    sys.exit(f"convert_checkpoint: {msg}")


# ---- safetensors I/O (without the safetensors package, which Debian does not ship) ----

def write_safetensors(path, tensors, metadata):
    """tensors: name -> torch tensor; metadata: str -> str. Written atomically."""
    items = []
    for name, t in tensors.items():
        t = t.detach().cpu()
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        dtype = TO_SAFETENSORS.get(str(t.dtype))
        if dtype is None:
            fail(f"{name}: unsupported dtype {t.dtype}")
        items.append((name, dtype, list(t.shape), t.contiguous().numpy().tobytes()))
    # Largest elements first so every tensor stays aligned without padding (as gcnet writes).
    items.sort(key=lambda it: (-DTYPE_SIZE[it[1]], it[0]))
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, dtype, shape, data in items:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % ALIGN)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(h)))
            f.write(h)
            for _, _, _, data in items:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_safetensors(path):
    """Returns (name -> torch tensor, metadata dict)."""
    import numpy as np
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        fail(f"{path}: truncated ({len(raw)} bytes)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        fail(f"{path}: truncated or corrupt header")
    try:
        header = json.loads(raw[8:8 + n])
    except ValueError as e:
        fail(f"{path}: corrupt header ({e})")
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, e in header.items():
        if e["dtype"] not in FROM_SAFETENSORS:
            fail(f"{path}: tensor '{name}' has unsupported dtype {e['dtype']}")
        b, en = e["data_offsets"]
        if not (0 <= b <= en <= len(data)):
            fail(f"{path}: tensor '{name}' lies outside the data section: file truncated?")
        np_dtype, _ = FROM_SAFETENSORS[e["dtype"]]
        arr = np.frombuffer(data[b:en], dtype=np.dtype(np_dtype)).reshape(e["shape"]).copy()
        tensors[name] = torch.from_numpy(arr)
    return tensors, metadata


# ---- .pth <-> safetensors ----

LEGACY_DCN = re.compile(r"^(.*)\.conv2_offset\.(weight|bias)$")

# torchvision's Mask R-CNN (maskrcnn_resnet50_fpn and the MaskRCNN class on a ResNet body with
# BackboneWithFPN, torchvision 0.13+ names) -> gcnet's MaskRCNN (det/mask_rcnn.hpp): mmdet's names.
# Older torchvision names (mask_head.mask_fcnK, fpn.inner_blocks.K.weight) are accepted too.
TV_MASKRCNN_PRESET = "torchvision_maskrcnn"
TV_MASKRCNN_RULES = [
    (re.compile(r"^backbone\.body\.(.*)$"), r"backbone.\1"),
    (re.compile(r"^backbone\.fpn\.inner_blocks\.(\d+)\.(?:0\.)?(weight|bias)$"), r"neck.lateral_convs.\1.conv.\2"),
    (re.compile(r"^backbone\.fpn\.layer_blocks\.(\d+)\.(?:0\.)?(weight|bias)$"), r"neck.fpn_convs.\1.conv.\2"),
    (re.compile(r"^rpn\.head\.conv\.(?:0\.0\.)?(weight|bias)$"), r"rpn_head.rpn_conv.\1"),
    (re.compile(r"^rpn\.head\.cls_logits\.(weight|bias)$"), r"rpn_head.rpn_cls.\1"),
    (re.compile(r"^rpn\.head\.bbox_pred\.(weight|bias)$"), r"rpn_head.rpn_reg.\1"),
    (re.compile(r"^roi_heads\.box_head\.fc6\.(weight|bias)$"), r"roi_head.bbox_head.shared_fcs.0.\1"),
    (re.compile(r"^roi_heads\.box_head\.fc7\.(weight|bias)$"), r"roi_head.bbox_head.shared_fcs.1.\1"),
    (re.compile(r"^roi_heads\.box_predictor\.cls_score\.(weight|bias)$"), r"roi_head.bbox_head.fc_cls.\1"),
    (re.compile(r"^roi_heads\.box_predictor\.bbox_pred\.(weight|bias)$"), r"roi_head.bbox_head.fc_reg.\1"),
    (re.compile(r"^roi_heads\.mask_head\.(\d+)\.0\.(weight|bias)$"),
     lambda m: f"roi_head.mask_head.convs.{m.group(1)}.conv.{m.group(2)}"),
    (re.compile(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$"),
     lambda m: f"roi_head.mask_head.convs.{int(m.group(1)) - 1}.conv.{m.group(2)}"),
    (re.compile(r"^roi_heads\.mask_predictor\.conv5_mask\.(weight|bias)$"), r"roi_head.mask_head.upsample.\1"),
    (re.compile(r"^roi_heads\.mask_predictor\.mask_fcn_logits\.(weight|bias)$"), r"roi_head.mask_head.conv_logits.\1"),
]


def map_torchvision_maskrcnn_key(name):
    """torchvision Mask R-CNN name -> gcnet name; None for entries gcnet has no counterpart of
    (BatchNorm2d's num_batches_tracked: the preset's backbone norms are FrozenBatchNorm2d, equal
    to a BatchNorm2d in eval mode, which is how torchvision runs them once trained)."""
    if name.endswith(".num_batches_tracked"):
        return None
    for pattern, repl in TV_MASKRCNN_RULES:
        m = pattern.match(name)
        if m:
            return m.expand(repl) if isinstance(repl, str) else repl(m)
    raise KeyError(name)


def torchvision_maskrcnn_metadata(tensors):
    """The preset and class count recorded with a converted torchvision Mask R-CNN (the C++ loader
    refuses it for a model of another preset or number of classes)."""
    cls = tensors.get("roi_head.bbox_head.fc_cls.weight")
    if cls is None:
        fail("torchvision Mask R-CNN: no roi_heads.box_predictor.cls_score.weight in the checkpoint")
    return {"det_preset": TV_MASKRCNN_PRESET, "det_num_classes": str(cls.shape[0] - 1)}


def map_key(name):
    """Checkpoint name -> gcnet (mmdet) name."""
    m = LEGACY_DCN.match(name)
    return f"{m.group(1)}.conv2.conv_offset.{m.group(2)}" if m else name


def pth_to_safetensors(src, dst, select=None, drop=(), torchvision_maskrcnn=False):
    ckpt = torch.load(src, map_location="cpu")
    meta = {}
    if isinstance(ckpt, dict) and "state_dict" in ckpt and isinstance(ckpt["state_dict"], dict):
        meta = ckpt.get("meta") or {}
        state = ckpt["state_dict"]
    elif isinstance(ckpt, dict) and "model" in ckpt and isinstance(ckpt["model"], dict):
        state = ckpt["model"]  # torchvision references' train.py checkpoints
        meta = {k: ckpt[k] for k in ("epoch",) if k in ckpt}
    elif isinstance(ckpt, dict):
        state = ckpt
    else:
        fail(f"{src}: not a state dict or an mmcv checkpoint (got {type(ckpt).__name__})")
    tensors, unknown = {}, []
    for k, v in state.items():
        name = k[len("module."):] if k.startswith("module.") else k
        if select is not None:
            if not name.startswith(select):
                continue
            name = name[len(select):]
        if any(name.startswith(d) for d in drop):
            continue
        if not torch.is_tensor(v):
            fail(f"{src}: entry '{k}' is not a tensor ({type(v).__name__})")
        if torchvision_maskrcnn:
            try:
                name = map_torchvision_maskrcnn_key(name)
            except KeyError:
                unknown.append(k)
                continue
            if name is None:
                continue
        else:
            name = map_key(name)
        if name in tensors:
            fail(f"{src}: '{name}' appears twice after stripping 'module.' / the selected prefix / renaming")
        tensors[name] = v
    if unknown:
        fail(f"{src}: {len(unknown)} entries are not part of a torchvision Mask R-CNN (MaskRCNN on a ResNet "
             f"BackboneWithFPN): {', '.join(unknown[:20])}" + (" ..." if len(unknown) > 20 else ""))
    if not tensors:
        fail(f"{src}: no tensors left" + (f" under '{select}'" if select is not None else ""))
    metadata = {"format": "pt", "converted_from": os.path.basename(src)}
    for ours, theirs in (("iter", "iter"), ("epoch", "epoch"), ("seed", "seed")):
        if theirs in meta and meta[theirs] is not None:
            metadata[ours] = str(meta[theirs])
    if meta:
        metadata["mmcv_meta"] = json.dumps(meta, default=str)
    if torchvision_maskrcnn:
        metadata.update(torchvision_maskrcnn_metadata(tensors))
    write_safetensors(dst, tensors, metadata)
    return len(tensors)


def safetensors_to_pth(src, dst, mmcv=False, keep_optimizer=False, add_prefix=""):
    tensors, metadata = read_safetensors(src)
    state = {add_prefix + k: v for k, v in sorted(tensors.items())
             if keep_optimizer or not k.startswith("optimizer.")}
    if mmcv:
        meta = json.loads(metadata["mmcv_meta"]) if "mmcv_meta" in metadata else {}
        for ours, theirs in (("iter", "iter"), ("epoch", "epoch"), ("seed", "seed")):
            if ours in metadata:
                meta[theirs] = int(metadata[ours])
        torch.save({"meta": meta, "state_dict": state}, dst)
    else:
        torch.save(state, dst)
    return len(state)


# ---- the round-trip test ----

def self_test(gcnet_test_exe, work):
    """torchvision Bottleneck state dict (as an mmcv checkpoint with a "module." prefix)
    -> safetensors -> gcnet make_composed_bottleneck_down -> saved by gcnet -> .pth -> compared."""
    if torch is None:
        print("SKIP: /usr/bin/python3 has no torch (install Debian's python3-torch)")
        sys.exit(77)
    try:
        from torchvision.models.resnet import Bottleneck
    except ImportError:
        Bottleneck = None
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    inplanes, planes, stride = 16, 4, 2
    down = torch.nn.Sequential(torch.nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                               torch.nn.BatchNorm2d(planes * 4))
    if Bottleneck is None:
        print("SKIP: torchvision is not installed")
        sys.exit(77)
    block = Bottleneck(inplanes, planes, stride, downsample=down)
    with torch.no_grad():  # non-trivial parameters and running statistics
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    block.train()
    for _ in range(3):
        block(torch.randn(4, inplanes, 8, 8))
    block.eval()
    x = torch.randn(2, inplanes, 8, 8)
    with torch.no_grad():
        y = block(x)
    original = {k: v.clone() for k, v in block.state_dict().items()}
    pth = os.path.join(work, "original.pth")
    torch.save({"meta": {"iter": 1234, "epoch": 3, "seed": 0},
                "state_dict": {"module." + k: v for k, v in original.items()}}, pth)
    pth_to_safetensors(pth, os.path.join(work, "converted.safetensors"))
    write_safetensors(os.path.join(work, "io.safetensors"), {"x": x, "y": y.double()},
                      {"planes": str(planes), "stride": str(stride), "iter": "1234"})
    env = dict(os.environ, GCNET_PTH_ROUNDTRIP_DIR=work)
    run = subprocess.run([gcnet_test_exe, "--no-skip", "--test-case=*converted PyTorch Bottleneck*"], env=env)
    if run.returncode != 0:
        fail(f"the gcnet step failed (exit {run.returncode})")
    back = os.path.join(work, "back.pth")
    safetensors_to_pth(os.path.join(work, "gcnet.safetensors"), back, mmcv=True)
    ckpt = torch.load(back)
    state = ckpt["state_dict"]
    errors = []
    if set(state) != set(original):
        errors.append(f"keys differ: only in original {sorted(set(original) - set(state))}, "
                      f"only in round trip {sorted(set(state) - set(original))}")
    for k in sorted(set(state) & set(original)):
        a, b = original[k], state[k]
        if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a, b):
            errors.append(f"{k}: original {a.dtype} {tuple(a.shape)}, round trip {b.dtype} {tuple(b.shape)}"
                          + ("" if a.shape != b.shape else f", max diff {(a.double() - b.double()).abs().max()}"))
    if ckpt["meta"].get("iter") != 1234:
        errors.append(f"meta iter {ckpt['meta'].get('iter')} != 1234")
    # The converted-back file loads into the torchvision block strictly.
    fresh = Bottleneck(inplanes, planes, stride, downsample=torch.nn.Sequential(
        torch.nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False), torch.nn.BatchNorm2d(planes * 4)))
    fresh.load_state_dict(state, strict=True)
    if errors:
        fail("round trip mismatch:\n  " + "\n  ".join(errors))
    print(f"round trip ok: {len(state)} tensors identical (dtypes, shapes, values), meta kept")


def resnet50_test(gcnet_test_exe, work):
    """A torchvision resnet50 state dict (random init, no download), saved the way torchvision's
    model zoo does (raw dict, with fc), converted with --drop=fc., loaded strictly into gcnet's
    ResNet-50 by test_backbone_parity, whose stage outputs must match torchvision's (eval)."""
    if torch is None:
        print("SKIP: /usr/bin/python3 has no torch (install Debian's python3-torch)")
        sys.exit(77)
    try:
        import torchvision
    except ImportError:
        print("SKIP: torchvision is not installed")
        sys.exit(77)
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    net = torchvision.models.resnet50()
    with torch.no_grad():  # non-trivial statistics (the defaults are 0 and 1)
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.uniform_(-0.2, 0.2)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 1.5)
    net.eval()
    pth = os.path.join(work, "resnet50.pth")
    torch.save(net.state_dict(), pth)
    st = os.path.join(work, "resnet50.safetensors")
    n = pth_to_safetensors(pth, st, drop=("fc.",))
    x = torch.randn(1, 3, 64, 64)
    outs = []
    with torch.no_grad():
        h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            h = layer(h)
            outs.append(h.double())
    write_safetensors(os.path.join(work, "io.safetensors"),
                      {"x": x, **{f"out.{k}": o for k, o in enumerate(outs)}}, {"tensors": str(n)})
    env = dict(os.environ, GCNET_RESNET50_IMPORT_DIR=work)
    run = subprocess.run([gcnet_test_exe, "--no-skip", "--test-case=*torchvision resnet50 checkpoint*"], env=env)
    if run.returncode != 0:
        fail(f"the gcnet step failed (exit {run.returncode})")
    print(f"resnet50 import ok: {n} tensors loaded strictly, stage outputs match torchvision")


def main(argv):
    if len(argv) >= 2 and argv[1] == "self-test":
        if len(argv) != 4:
            fail("usage: convert_checkpoint.py self-test GCNET_TEST_EXE WORK_DIR")
        return self_test(argv[2], argv[3])
    if len(argv) >= 2 and argv[1] == "resnet50-test":
        if len(argv) != 4:
            fail("usage: convert_checkpoint.py resnet50-test GCNET_TEST_EXE WORK_DIR")
        return resnet50_test(argv[2], argv[3])
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = {a for a in argv[1:] if a.startswith("--") and "=" not in a}
    valued = [a.split("=", 1) for a in argv[1:] if a.startswith("--") and "=" in a]
    unknown = flags - {"--mmcv", "--keep-optimizer", "--torchvision-maskrcnn"}
    unknown |= {k for k, _ in valued if k not in ("--select", "--drop", "--add-prefix")}
    select = next((v for k, v in valued if k == "--select"), None)
    drop = tuple(v for k, v in valued if k == "--drop")
    add_prefix = next((v for k, v in valued if k == "--add-prefix"), "")
    if len(args) != 2 or unknown or "-h" in argv:
        print(__doc__)
        return 2
    if torch is None:
        fail("needs PyTorch (Debian: apt install python3-torch; run with /usr/bin/python3)")
    src, dst = args
    if not os.path.isfile(src):
        fail(f"{src}: no such file")
    if src.endswith((".pth", ".pt")) and dst.endswith(".safetensors"):
        n = pth_to_safetensors(src, dst, select=select, drop=drop,
                               torchvision_maskrcnn="--torchvision-maskrcnn" in flags)
    elif src.endswith(".safetensors") and dst.endswith((".pth", ".pt")):
        n = safetensors_to_pth(src, dst, mmcv="--mmcv" in flags, keep_optimizer="--keep-optimizer" in flags,
                               add_prefix=add_prefix)
    else:
        fail("convert .pth/.pt -> .safetensors or .safetensors -> .pth/.pt")
    print(f"wrote {dst}: {n} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
