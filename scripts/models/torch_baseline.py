#!/usr/bin/env python3
"""PyTorch eager baseline for `netml bench infer --baseline FILE.csv` (GPU machine).

torch cannot load ONNX, so this rebuilds the same architectures as
``scripts/models/export.py`` (the torchvision layouts, or the ``--small``
variants with the same widths, blocks and input sizes), with random weights,
and times eager inference on CUDA the way the netml benchmark times its
engine: ``--warmup`` untimed batches, then ``--runs`` batches each timed on
the host around the forward pass plus a ``torch.cuda.synchronize()``.
``torch.backends.cudnn.benchmark = True``; fp16 runs the model with
``.half()`` weights and inputs. fp32 is true fp32, as netml's fp32 is: TF32
is off for convolutions and matmuls (PyTorch allows it for cuDNN convolutions
by default); precision ``tf32`` is the same fp32 model with TF32 allowed, as
its own rows, for comparison only.

    python3 scripts/models/torch_baseline.py --out torch-baseline.csv
    python3 scripts/models/torch_baseline.py --small --out torch-small.csv resnet50
    netml bench infer --backend gpu --baseline torch-baseline.csv ...

Writes one row per case: ``model,batch,precision,ms,p99_ms,max_ms,images_per_s``
where ``ms`` is the p50 ms per batch (what `netml bench infer` divides its
p50 by). Model names follow export.py's file stems (``resnet50`` or
``resnet50_small``), so the rows match the .onnx files it wrote.

The weights are random (not the exported ones): the time of a dense CNN does
not depend on the weight values.
"""

import argparse
import csv
import sys
import time

import torch
from torch import nn

MODELS = ["alexnet", "mobilenet_v2", "resnet50", "vgg19", "resnext50", "densenet121"]


def _divisible(v, d=8):
    new = max(d, int(v + d / 2) // d * d)
    if new < 0.9 * v:
        new += d
    return new


def alexnet(small):
    if small:
        c, fc, classes, size, spatial = [16, 32, 48, 32, 32], 128, 10, 96, 2
    else:
        c, fc, classes, size, spatial = [64, 192, 384, 256, 256], 4096, 1000, 224, 6
    m = nn.Sequential(
        nn.Conv2d(3, c[0], 11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Dropout(), nn.Linear(c[4] * spatial * spatial, fc), nn.ReLU(inplace=True),
        nn.Dropout(), nn.Linear(fc, fc), nn.ReLU(inplace=True),
        nn.Linear(fc, classes), nn.Softmax(dim=-1),
    )
    return m, size


def vgg19(small):
    if small:
        cfg = [8, 8, "M", 16, 16, "M", 32, 32, 32, 32, "M", 64, 64, 64, 64, "M",
               64, 64, 64, 64, "M"]
        fc, classes, size, spatial = 64, 10, 32, 1
    else:
        cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
               512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
        fc, classes, size, spatial = 4096, 1000, 224, 7
    layers, cin = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    layers += [
        nn.Flatten(),
        nn.Linear(cin * spatial * spatial, fc), nn.ReLU(inplace=True), nn.Dropout(),
        nn.Linear(fc, fc), nn.ReLU(inplace=True), nn.Dropout(),
        nn.Linear(fc, classes), nn.Softmax(dim=-1),
    ]
    return nn.Sequential(*layers), size


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv), as export.py builds it."""

    def __init__(self, cin, width, cout, stride, groups, project):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.short = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            if project else nn.Identity()
        )

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


def _resnet(small, groups, width_per_group):
    if small:
        stem, planes, blocks, classes, size = 8, [8, 16, 32, 64], [2, 2, 2, 2], 10, 32
    else:
        stem, planes, blocks, classes, size = 64, [64, 128, 256, 512], [3, 4, 6, 3], 1000, 224
    layers = [
        nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(stem),
        nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1),
    ]
    cin = stem
    for stage, (p, n) in enumerate(zip(planes, blocks)):
        width = int(p * (width_per_group / 64.0)) * groups
        for i in range(n):
            stride = 2 if (i == 0 and stage > 0) else 1
            layers.append(Bottleneck(cin, width, p * 4, stride, groups, project=(i == 0)))
            cin = p * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return layers, cin, classes, size


def resnet50(small):
    layers, cin, classes, size = _resnet(small, 1, 64)
    return nn.Sequential(*layers, nn.Linear(cin, classes)), size


def resnext50(small):
    layers, cin, classes, size = _resnet(small, 4, 32) if small else _resnet(small, 32, 4)
    return nn.Sequential(*layers, nn.Dropout(), nn.Linear(cin, classes)), size


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        layers = []
        if t != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def mobilenet_v2(small):
    if small:
        mult, last, classes, size = 0.25, 128, 10, 32
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2),
               (6, 96, 1, 1), (6, 160, 2, 2), (6, 320, 1, 1)]
    else:
        mult, last, classes, size = 1.0, 1280, 1000, 224
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    cin = _divisible(32 * mult)
    layers = [nn.Conv2d(3, cin, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(inplace=True)]
    for t, c, n, s in cfg:
        cout = _divisible(c * mult)
        for i in range(n):
            layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
            cin = cout
    layers += [
        nn.Conv2d(cin, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(), nn.Linear(last, classes),
    ]
    return nn.Sequential(*layers), size


class DenseBlock(nn.Module):
    """Pre-activation dense layers whose input is the concat of all earlier maps."""

    def __init__(self, c, n, growth, bn_size):
        super().__init__()
        self.layers = nn.ModuleList()
        for j in range(n):
            cin = c + growth * j
            self.layers.append(nn.Sequential(
                nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                nn.Conv2d(cin, bn_size * growth, 1, bias=False),
                nn.BatchNorm2d(bn_size * growth), nn.ReLU(inplace=True),
                nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False),
            ))

    def forward(self, x):
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return torch.cat(feats, 1)


def densenet121(small):
    if small:
        stem, growth, bn_size, blocks, classes, size = 8, 4, 2, [2, 2, 2, 2], 10, 64
    else:
        stem, growth, bn_size, blocks, classes, size = 64, 32, 4, [6, 12, 24, 16], 1000, 224
    layers = [
        nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(stem),
        nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1),
    ]
    c = stem
    for bi, n in enumerate(blocks):
        layers.append(DenseBlock(c, n, growth, bn_size))
        c += growth * n
        if bi != len(blocks) - 1:
            layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2, 2)]
            c //= 2
    layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(), nn.Linear(c, classes)]
    return nn.Sequential(*layers), size


BUILD = {
    "alexnet": alexnet, "mobilenet_v2": mobilenet_v2, "resnet50": resnet50,
    "vgg19": vgg19, "resnext50": resnext50, "densenet121": densenet121,
}


def percentile(sorted_ms, q):
    """Nearest rank, like `netml bench infer`: always a measured time."""
    k = max(1, min(len(sorted_ms), int(-(-q * len(sorted_ms) // 1))))
    return sorted_ms[k - 1]


@torch.inference_mode()
def time_case(model, size, batch, dtype, warmup, runs):
    x = torch.randn(batch, 3, size, size, device="cuda", dtype=dtype)
    for _ in range(warmup):
        model(x)
    torch.cuda.synchronize()
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        model(x)
        torch.cuda.synchronize()
        ms.append((time.perf_counter() - t) * 1e3)
    ms.sort()
    return ms


def set_tf32(allowed):
    """TF32 for cuDNN convolutions and cuBLAS matmuls: off for true fp32, on for `tf32`.

    PyTorch >= 2.9 has per-backend ``fp32_precision`` settings ("ieee" or "tf32") and
    deprecates ``allow_tf32`` (mixing the two APIs is an error there): the new one where it
    exists, else ``allow_tf32``.
    """
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        mode = "tf32" if allowed else "ieee"
        torch.backends.cudnn.conv.fp32_precision = mode
        torch.backends.cuda.matmul.fp32_precision = mode
    else:
        torch.backends.cudnn.allow_tf32 = allowed
        torch.backends.cuda.matmul.allow_tf32 = allowed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", help=f"subset of {', '.join(MODELS)}")
    ap.add_argument("--small", action="store_true", help="the small variants (export.py --small)")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--precision", default="fp32,fp16", help="fp32 (TF32 off), fp16, tf32")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--out", default="-", help="CSV file (default: stdout)")
    args = ap.parse_args(argv)
    names = args.models or MODELS
    unknown = [n for n in names if n not in BUILD]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose from {MODELS}")
    if not torch.cuda.is_available():
        sys.exit("torch_baseline.py: no CUDA device (this baseline is for the GPU machine)")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "tf32": torch.float32}
    precisions = [p.strip().lower() for p in args.precision.split(",")]
    bad = [p for p in precisions if p not in dtypes]
    if bad:
        ap.error(f"unknown precision(s) {bad}; choose from {list(dtypes)}")
    batches = [int(b) for b in args.batches.split(",")]

    out = sys.stdout if args.out == "-" else open(args.out, "w", newline="")
    w = csv.writer(out)
    w.writerow(["model", "batch", "precision", "ms", "p99_ms", "max_ms", "images_per_s"])
    for name in names:
        model, size = BUILD[name](args.small)
        stem = name + ("_small" if args.small else "")
        for p in precisions:
            set_tf32(p == "tf32")
            m = model.to("cuda", dtypes[p]).eval()
            for b in batches:
                ms = time_case(m, size, b, dtypes[p], args.warmup, args.runs)
                p50, p99 = percentile(ms, 0.50), percentile(ms, 0.99)
                mean = sum(ms) / len(ms)
                w.writerow([stem, b, p, f"{p50:.4f}", f"{p99:.4f}", f"{ms[-1]:.4f}", f"{b / (mean / 1e3):.1f}"])
                out.flush()
                print(f"{stem} batch {b} {p}: p50 {p50:.3f} ms, p99 {p99:.3f} ms", file=sys.stderr)
    if out is not sys.stdout:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
