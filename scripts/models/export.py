#!/usr/bin/env python3
"""Write netml's seed CNNs as ONNX files, without downloading anything.

Every model is built node by node with ``onnx.helper`` (no torch), with seeded
random weights (He-style scaling so activations stay O(1) through the depth),
BatchNormalization layers with non-trivial mean/var/scale/bias (so that
BN folding in the engine is really exercised), Dropout nodes in the
classifiers, and a dynamic batch dimension ``N`` on the input and output.

    python3 scripts/models/export.py OUT_DIR                 # full size, 224x224
    python3 scripts/models/export.py --small OUT_DIR         # CI variants
    python3 scripts/models/export.py --small OUT_DIR resnet50 vgg19

Full size files are called ``<model>.onnx``; small ones ``<model>_small.onnx``.
The small variants keep each architecture's topology (stem, block structure,
shortcuts, grouped/depthwise convs, concats, classifier) with fewer channels,
fewer blocks and a 32x32..96x96 input, so the engine's CPU reference executor
runs each in well under a second in a debug build.

Models: alexnet, vgg19, resnet50, resnext50 (grouped conv), mobilenet_v2
(depthwise conv, ReLU6 as Clip), densenet121 (Concat, standalone BN).
Operators used: Conv, BatchNormalization, Relu, Clip, MaxPool, AveragePool,
GlobalAveragePool, Add, Gemm, MatMul, Flatten, Reshape, Dropout, Concat,
Softmax -- exactly the set netml-infer supports.
"""

import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


class Builder:
    """Accumulates nodes and initializers; tracks channel counts."""

    def __init__(self, name, seed):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.inits = []
        self.counter = {}

    def uid(self, prefix):
        n = self.counter.get(prefix, 0)
        self.counter[prefix] = n + 1
        return f"{prefix}{n}"

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, prefix=None, **attrs):
        name = self.uid(prefix or op.lower())
        out = name + "_out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    # -- layers -----------------------------------------------------------

    def conv(self, x, cin, cout, k, stride=1, pad=0, group=1, bias=False, gain=2.0):
        name = self.uid("conv")
        fan_in = (cin // group) * k * k
        w = self.rng.normal(0.0, np.sqrt(gain / fan_in), (cout, cin // group, k, k))
        inputs = [x, self.const(name + ".weight", w.astype(np.float32))]
        if bias:
            b = self.rng.normal(0.0, 0.1, (cout,)).astype(np.float32)
            inputs.append(self.const(name + ".bias", b))
        out = name + "_out"
        self.nodes.append(
            helper.make_node(
                "Conv",
                inputs,
                [out],
                name=name,
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
                dilations=[1, 1],
                group=group,
            )
        )
        return out

    def bn(self, x, c, gamma_scale=1.0):
        """BatchNormalization with deliberately non-trivial statistics."""
        name = self.uid("bn")
        r = self.rng
        gamma = (r.uniform(0.5, 1.5, c) * gamma_scale).astype(np.float32)
        beta = r.normal(0.0, 0.1, c).astype(np.float32)
        mean = r.normal(0.0, 0.2, c).astype(np.float32)
        var = r.uniform(0.5, 2.0, c).astype(np.float32)
        ins = [x]
        for suffix, arr in (("scale", gamma), ("bias", beta), ("mean", mean), ("var", var)):
            ins.append(self.const(f"{name}.{suffix}", arr))
        out = name + "_out"
        self.nodes.append(
            helper.make_node("BatchNormalization", ins, [out], name=name, epsilon=1e-5)
        )
        return out

    def relu(self, x):
        return self.node("Relu", [x])

    def relu6(self, x):
        name = self.uid("clip")
        lo = self.const(name + ".min", np.array(0.0, dtype=np.float32))
        hi = self.const(name + ".max", np.array(6.0, dtype=np.float32))
        out = name + "_out"
        self.nodes.append(helper.make_node("Clip", [x, lo, hi], [out], name=name))
        return out

    def maxpool(self, x, k, s, p=0):
        return self.node(
            "MaxPool", [x], kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p]
        )

    def avgpool(self, x, k, s, p=0):
        return self.node(
            "AveragePool", [x], kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p]
        )

    def gap(self, x):
        return self.node("GlobalAveragePool", [x])

    def flatten(self, x):
        return self.node("Flatten", [x], axis=1)

    def reshape_flat(self, x):
        shape = self.const(self.uid("shape"), np.array([0, -1], dtype=np.int64))
        return self.node("Reshape", [x, shape])

    def dropout(self, x):
        # Opset 13 Dropout takes its ratio as an optional input; tract 0.21
        # rejects a Dropout with more than one input, so the ratio is left
        # at its default (0.5). Inference ignores it either way.
        return self.node("Dropout", [x])

    def gemm(self, x, fin, fout, gain=2.0):
        name = self.uid("fc")
        w = self.rng.normal(0.0, np.sqrt(gain / fin), (fout, fin)).astype(np.float32)
        b = self.rng.normal(0.0, 0.1, (fout,)).astype(np.float32)
        out = name + "_out"
        self.nodes.append(
            helper.make_node(
                "Gemm",
                [x, self.const(name + ".weight", w), self.const(name + ".bias", b)],
                [out],
                name=name,
                alpha=1.0,
                beta=1.0,
                transB=1,
            )
        )
        return out

    def matmul_add(self, x, fin, fout, gain=2.0):
        """A classifier written as MatMul + Add (the other common export)."""
        name = self.uid("linear")
        w = self.rng.normal(0.0, np.sqrt(gain / fin), (fin, fout)).astype(np.float32)
        b = self.rng.normal(0.0, 0.1, (fout,)).astype(np.float32)
        mm = self.node("MatMul", [x, self.const(name + ".weight", w)])
        return self.node("Add", [mm, self.const(name + ".bias", b)])

    def add(self, a, b):
        return self.node("Add", [a, b])

    def concat(self, xs):
        return self.node("Concat", xs, axis=1)

    def softmax(self, x):
        return self.node("Softmax", [x], axis=-1)

    def finish(self, x, in_shape, out_dim, path):
        inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *in_shape])
        out = helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", out_dim])
        graph = helper.make_graph(self.nodes, self.name, [inp], [out], self.inits)
        model = helper.make_model(
            graph,
            producer_name="netml scripts/models/export.py",
            opset_imports=[helper.make_opsetid("", OPSET)],
        )
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, path)
        return model


# ---------------------------------------------------------------------------
# architectures


def alexnet(b, small):
    # torchvision AlexNet; full: 3x224x224 -> 256x6x6 -> 4096 -> 4096 -> 1000.
    # small: 3x96x96 -> 32x2x2 (spatial > 1 before the flatten, on purpose:
    # it exercises the NHWC flatten handling) -> 128 -> 128 -> 10.
    if small:
        c, fc, classes, size = [16, 32, 48, 32, 32], 128, 10, 96
    else:
        c, fc, classes, size = [64, 192, 384, 256, 256], 4096, 1000, 224
    x = "input"
    x = b.relu(b.conv(x, 3, c[0], 11, stride=4, pad=2, bias=True))
    x = b.maxpool(x, 3, 2)
    x = b.relu(b.conv(x, c[0], c[1], 5, pad=2, bias=True))
    x = b.maxpool(x, 3, 2)
    x = b.relu(b.conv(x, c[1], c[2], 3, pad=1, bias=True))
    x = b.relu(b.conv(x, c[2], c[3], 3, pad=1, bias=True))
    x = b.relu(b.conv(x, c[3], c[4], 3, pad=1, bias=True))
    x = b.maxpool(x, 3, 2)
    spatial = 2 if small else 6
    x = b.flatten(x)
    x = b.dropout(x)
    x = b.relu(b.gemm(x, c[4] * spatial * spatial, fc))
    x = b.dropout(x)
    x = b.relu(b.gemm(x, fc, fc))
    x = b.gemm(x, fc, classes, gain=1.0)
    x = b.softmax(x)
    return x, [3, size, size], classes


def vgg19(b, small):
    # torchvision VGG-19 (configuration E, no BN).
    if small:
        cfg = [8, 8, "M", 16, 16, "M", 32, 32, 32, 32, "M", 64, 64, 64, 64, "M",
               64, 64, 64, 64, "M"]
        fc, classes, size, spatial = 64, 10, 32, 1
    else:
        cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
               512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
        fc, classes, size, spatial = 4096, 1000, 224, 7
    x, cin = "input", 3
    for v in cfg:
        if v == "M":
            x = b.maxpool(x, 2, 2)
        else:
            x = b.relu(b.conv(x, cin, v, 3, pad=1, bias=True))
            cin = v
    x = b.flatten(x)
    x = b.relu(b.gemm(x, cin * spatial * spatial, fc))
    x = b.dropout(x)
    x = b.relu(b.gemm(x, fc, fc))
    x = b.dropout(x)
    x = b.gemm(x, fc, classes, gain=1.0)
    x = b.softmax(x)
    return x, [3, size, size], classes


def _resnet(b, small, groups, width_per_group):
    # torchvision ResNet v1.5 bottleneck (stride on the 3x3 conv).
    if small:
        stem, planes, blocks, classes, size = 8, [8, 16, 32, 64], [2, 2, 2, 2], 10, 32
    else:
        stem, planes, blocks, classes, size = 64, [64, 128, 256, 512], [3, 4, 6, 3], 1000, 224
    x = b.conv("input", 3, stem, 7, stride=2, pad=3)
    x = b.relu(b.bn(x, stem))
    x = b.maxpool(x, 3, 2, 1)
    cin = stem
    for stage, (p, n) in enumerate(zip(planes, blocks)):
        width = int(p * (width_per_group / 64.0)) * groups
        cout = p * 4
        for i in range(n):
            stride = 2 if (i == 0 and stage > 0) else 1
            identity = x
            y = b.relu(b.bn(b.conv(x, cin, width, 1), width))
            y = b.relu(b.bn(b.conv(y, width, width, 3, stride=stride, pad=1, group=groups), width))
            # small gamma on the last BN keeps the residual sum from growing
            y = b.bn(b.conv(y, width, cout, 1), cout, gamma_scale=0.5)
            if i == 0:
                identity = b.bn(b.conv(x, cin, cout, 1, stride=stride), cout, gamma_scale=0.5)
            x = b.relu(b.add(y, identity))
            cin = cout
    x = b.gap(x)
    return x, cin, classes, size


def resnet50(b, small):
    x, cin, classes, size = _resnet(b, small, groups=1, width_per_group=64)
    x = b.flatten(x)
    x = b.gemm(x, cin, classes, gain=1.0)
    return x, [3, size, size], classes


def resnext50(b, small):
    # ResNeXt-50 32x4d; small: 4 groups x 4 channels at the first stage.
    if small:
        x, cin, classes, size = _resnet(b, small, groups=4, width_per_group=32)
    else:
        x, cin, classes, size = _resnet(b, small, groups=32, width_per_group=4)
    x = b.reshape_flat(x)
    x = b.dropout(x)
    x = b.gemm(x, cin, classes, gain=1.0)
    return x, [3, size, size], classes


def _divisible(v, d=8):
    new = max(d, int(v + d / 2) // d * d)
    if new < 0.9 * v:
        new += d
    return new


def mobilenet_v2(b, small):
    # torchvision MobileNetV2 (inverted residuals, depthwise 3x3, ReLU6 as Clip).
    if small:
        mult, last, classes, size = 0.25, 128, 10, 32
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2),
               (6, 96, 1, 1), (6, 160, 2, 2), (6, 320, 1, 1)]
    else:
        mult, last, classes, size = 1.0, 1280, 1000, 224
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    cin = _divisible(32 * mult)
    x = b.relu6(b.bn(b.conv("input", 3, cin, 3, stride=2, pad=1), cin))
    for t, c, n, s in cfg:
        cout = _divisible(c * mult)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = x
            if t != 1:
                y = b.relu6(b.bn(b.conv(y, cin, hidden, 1), hidden))
            y = b.relu6(b.bn(b.conv(y, hidden, hidden, 3, stride=stride, pad=1, group=hidden), hidden))
            y = b.bn(b.conv(y, hidden, cout, 1, gain=1.0), cout)
            if stride == 1 and cin == cout:
                y = b.add(x, y)
            x, cin = y, cout
    x = b.relu6(b.bn(b.conv(x, cin, last, 1), last))
    x = b.gap(x)
    x = b.flatten(x)
    x = b.dropout(x)
    x = b.gemm(x, last, classes, gain=1.0)
    return x, [3, size, size], classes


def densenet121(b, small):
    # torchvision DenseNet-121: pre-activation dense layers (BN-ReLU-Conv)
    # whose input is the Concat of every earlier feature map of the block.
    if small:
        stem, growth, bn_size, blocks, classes, size = 8, 4, 2, [2, 2, 2, 2], 10, 64
    else:
        stem, growth, bn_size, blocks, classes, size = 64, 32, 4, [6, 12, 24, 16], 1000, 224
    x = b.conv("input", 3, stem, 7, stride=2, pad=3)
    x = b.relu(b.bn(x, stem))
    x = b.maxpool(x, 3, 2, 1)
    c = stem
    for bi, n in enumerate(blocks):
        feats = [x]
        for _ in range(n):
            inp = feats[0] if len(feats) == 1 else b.concat(feats)
            cin = c + growth * (len(feats) - 1)
            y = b.conv(b.relu(b.bn(inp, cin)), cin, bn_size * growth, 1)
            y = b.conv(b.relu(b.bn(y, bn_size * growth)), bn_size * growth, growth, 3, pad=1)
            feats.append(y)
        x = b.concat(feats)
        c = c + growth * n
        if bi != len(blocks) - 1:
            x = b.conv(b.relu(b.bn(x, c)), c, c // 2, 1)
            x = b.avgpool(x, 2, 2)
            c = c // 2
    x = b.relu(b.bn(x, c))
    x = b.gap(x)
    x = b.flatten(x)
    x = b.dropout(x)
    x = b.matmul_add(x, c, classes, gain=1.0)
    return x, [3, size, size], classes


MODELS = {
    "alexnet": alexnet,
    "mobilenet_v2": mobilenet_v2,
    "resnet50": resnet50,
    "vgg19": vgg19,
    "resnext50": resnext50,
    "densenet121": densenet121,
}


def export(name, out_dir, small, seed):
    b = Builder(name + ("_small" if small else ""), seed)
    x, in_shape, classes = MODELS[name](b, small)
    path = os.path.join(out_dir, f"{name}{'_small' if small else ''}.onnx")
    tmp = f"{path}.{os.getpid()}.tmp"
    model = b.finish(x, in_shape, classes, tmp)
    os.replace(tmp, path)
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    print(f"{path}: {len(model.graph.node)} nodes, {params} parameters, input N x {in_shape}")
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", help="directory to write the .onnx files into")
    ap.add_argument("models", nargs="*", help=f"subset of {', '.join(MODELS)}")
    ap.add_argument("--small", action="store_true", help="write the small CI variants")
    ap.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    args = ap.parse_args(argv)
    names = args.models or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    os.makedirs(args.out_dir, exist_ok=True)
    for i, name in enumerate(names):
        export(name, args.out_dir, args.small, args.seed * 1000 + list(MODELS).index(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
