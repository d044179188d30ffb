#!/usr/bin/python3
"""Make grid's model fixtures: small PyTorch models exported with torch.onnx.export.

How to run (from the repository root; Debian 12 packages, no pip):

    apt-get install -y python3-torch python3-torchvision python3-onnx python3-sklearn
    /usr/bin/python3 scripts/make_fixtures.py [--out testdata] [--only GROUP,...]
    /usr/bin/python3 scripts/make_fixtures.py --full DIR [--full-models NAME,...]

It is deterministic: fixed seeds, one thread, fixed training steps (the
trained digits models and the last digit of some rounded outputs can still
differ between machines, so regenerate a group only when it changes: --only).
Groups (default: all of them): seed, digits, variants, matmul, families. It
writes, under --out (default testdata/):

  seed.onnx           the seed model served by "grid demo" and the e2e tests:
                      a copy of seed_matmul.onnx (the seed's model as it is
                      written), or of seed_linear.onnx with --seed-model
                      linear.
  seed_linear.onnx    nn.Linear(2, 1) with weight [[2, 4]] and bias [1000],
                      exported with a 1-D input of 2 values: [5, 3] -> [1022].
  seed_matmul.onnx    the seed's model as the seed writes it: a Module with
                      fc1 = [2, 4] and bias = [1000] (parameters) and
                      forward(x) = self.fc1.matmul(x) + self.bias, exported
                      as torch.onnx.export(model, torch.tensor([1.0, 2.0]),
                      f, opset_version=13): MatMul(fc1, x) (constant on the
                      LEFT), Add(bias); torch's default names (input
                      "onnx::MatMul_0"); [5, 3] -> [1022].
  matmul_left_*.onnx  W @ x with a constant W in every form torch exports
                      (1-D.1-D, 1-D.2-D, 2-D.1-D, 2-D.2-D, 2-D over a batch
                      of 3-D inputs, 3-D.3-D, addmm's Gemm with A constant,
                      a two-layer column MLP, and the seed verbatim with plain
                      tensor attributes, exported as Constant nodes);
                      weights and inputs are multiples of 1/16 so every
                      output is exact. matmul_left.json holds, per file
                      (seed_*.onnx too): the torch expression, x, x_shape, y,
                      y_shape and the op types.
  families/*.onnx     torchvision's classification families (torchvision
                      0.14), random init, eval mode, torch.onnx.export at
                      opset 13 with a dynamic batch (input "input", output
                      "logits"), 32x32 input (googlenet 64x64), in small
                      members of each family: the torchvision constructor
                      itself with every channel count divided by k (the
                      topology, op types and patterns of the named model,
                      see FAMILIES) or the family's own small knobs.
                      Calibrated on random inputs (see calibrate(): BN
                      statistics, or unit-variance Convs without BN), so
                      that BN is not the identity and activations are O(1).
                      families.json holds per family: file,
                      config, params, x (batch 2, multiples of 1/16 in
                      [-2, 2)), x_shape, y (float32 logits rounded to 6
                      decimals), y_shape, ops (sorted op types), op_counts,
                      attrs (distinct attribute settings per op type),
                      beyond (what grid did not support when this was
                      written: op types, and patterns such as
                      "Mul(secret,secret,broadcast)" or "Conv(depthwise)")
                      and public_ops (ops only on public shape values).
  digits_mlp.onnx     64-32-10 MLP with ReLU; input [batch, 64] of raw pixel
                      values (0..16), divided by 16 inside the model (Div by a
                      constant). Opset 13.
  digits_cnn.onnx     Conv 3x3 pad 1, ReLU, MaxPool 2, AveragePool 3 stride 1
                      pad 1 (count_include_pad=False), ZeroPad2d, AveragePool
                      (count_include_pad=True), Flatten, Linear. Input
                      [batch, 1, 8, 8]. Opset 17.
  digits_cnn_bn.onnx  exported with TrainingMode.PRESERVE on the eval-mode
                      model so that BatchNormalization nodes stay (plus
                      Identity nodes on initializers): a standalone
                      BatchNorm on the input, Conv+BatchNorm,
                      MaxPool with ceil_mode, asymmetric ZeroPad2d, strided
                      dilated Conv+BatchNorm, GlobalAveragePool,
                      x.view(x.size(0), -1) (a Shape/Gather/Unsqueeze/Concat
                      chain), Dropout, Linear+BatchNorm1d. Opset 9 (Pad with
                      attributes).
  conv13.onnx         an untrained small net of ops gonnx's runtime (opset 13)
                      evaluates: Sub by a constant, strided Conv, Relu, a
                      view(-1) reshape chain, Gemm, Mul by a constant. Used to
                      cross-check the importer against gonnx.
  digits_test.json    the held-out split (360 samples of sklearn's digits,
                      train_test_split(test_size=360, random_state=0,
                      stratify)): "x" [360][64] raw pixels, "labels" [360],
                      "logits" {model name: [360][10]} PyTorch's outputs
                      (float32, rounded to 6 decimals); "conv13_logits" for
                      conv13.onnx on the same inputs shaped [360, 1, 8, 8].
  digits_sample.npy   the first 4 held-out samples, float32 [4, 64].
  variants/           untrained small models (BatchNorm1d/2d, dilated and
                      grouped Conv, ceil-mode pools with and without
                      count_include_pad, F.pad with a value, 3-D Linear,
                      rsub, parameters added, view/reshape/flatten) exported
                      at opsets 9, 13 and 17 with a dynamic batch, at opset
                      11 with batch fixed to 1, and at 15 with BN kept;
                      variants/cases.json holds each one's input and
                      PyTorch's output (the whole batch, also for the
                      batch-1 exports).
  digits_sample_cnn.npy  the same, float32 [4, 1, 8, 8].
All models are exported with a dynamic batch axis (except the seed's 1-D input
and the fixed-shape matmul_left forms).

--full DIR writes the full-size models (default resnet18, mobilenet_v2,
squeezenet1_1; --full-models takes any of FAMILIES) at 64x64, 1000 classes,
opset 13, dynamic batch, to DIR (not under testdata: they are tens of MB),
with DIR/full.json: per model its file, params, x (batch 2), y, ops,
op_counts, beyond, and PyTorch's single-thread CPU time per inference
(torch.no_grad, eval; median of 20 runs after 3 warm-ups) at batch 1 and 8.
Given alone (without --only) it writes nothing under --out. Every file
written is checked with onnx.checker (full_check) and a table is printed:
model, file size, params, op types, PyTorch ms.
"""

import os

# One thread everywhere, set before numpy and torch load their libraries:
# Debian's torch calls OpenBLAS, whose pthread build otherwise runs its own
# threads beside torch.set_num_threads(1) (and spins them, which inflates the
# CPU times measured below).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import collections
import contextlib
import importlib
import json
import shutil
import statistics
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import onnx
import onnx.helper
import onnx.shape_inference
from onnx import numpy_helper


def set_seed(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = x / 16.0
        return self.fc2(torch.relu(self.fc1(x)))


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.pad = nn.ZeroPad2d(1)
        self.avg2 = nn.AvgPool2d(2, stride=2, padding=1, count_include_pad=True)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = x * 0.0625
        x = self.avg(self.pool(torch.relu(self.conv(x))))  # [8, 4, 4]
        x = self.avg2(self.pad(x))  # pad -> 6x6, avg k2 s2 p1 -> 4x4
        return self.fc(torch.flatten(x, 1))


class CNNBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn0 = nn.BatchNorm2d(1)
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # 8 -> 4
        self.pad = nn.ZeroPad2d((1, 0, 1, 0))  # left, right, top, bottom -> 5x5
        self.conv2 = nn.Conv2d(8, 16, 2, stride=1, dilation=2)  # 5 -> 3
        self.bn2 = nn.BatchNorm2d(16)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(16, 10)
        self.bn3 = nn.BatchNorm1d(10)

    def forward(self, x):
        x = self.bn0(x)
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(self.bn2(self.conv2(self.pad(x))))
        x = self.gap(x)
        x = x.view(x.size(0), -1)
        return self.bn3(self.fc(self.drop(x)))


class Conv13(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.conv(x - 8.0))
        x = x.view(x.size(0), -1)
        return self.fc(x) * 0.5


class V1(nn.Module):
    """MLP: bias-less Linear + BatchNorm1d, Dropout, Mul and Sub by constants."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(20, 16, bias=False)
        self.bn = nn.BatchNorm1d(16)
        self.drop = nn.Dropout(0.3)
        self.b = nn.Linear(16, 5)

    def forward(self, x):
        return self.b(self.drop(torch.relu(self.bn(self.a(x))))) * 2 - 1


class V2(nn.Module):
    """Strided dilated Conv + BN, ceil-mode MaxPool and AvgPool, adaptive pool, view."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=2, dilation=2)
        self.bn = nn.BatchNorm2d(6)
        self.mp = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.ap = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        x = self.ap(self.mp(torch.relu(self.bn(self.conv(x)))))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(x.view(x.size(0), -1))


class V3(nn.Module):
    """Grouped bias-less Conv + BN, residual Add, F.pad with a value, AvgPool counting pads."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, groups=2, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.ap = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=True)
        self.fc = nn.Linear(80, 3)

    def forward(self, x):
        y = x + torch.relu(self.bn(self.conv(x)))
        y = F.pad(y, (1, 2, 0, 1), value=0.5)  # 6x6 -> 7x9
        return self.fc(self.ap(y).reshape(-1, 80))  # -> 4x5


class V4(nn.Module):
    """Linear over a 3-D input (MatMul + Add), Div and Sub by constants."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(6, 4)
        self.l2 = nn.Linear(4, 2)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x / 3.0)) - 0.25)


class V5(nn.Module):
    """Constant minus input (rsub), Conv, torch.flatten."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 2)
        self.fc = nn.Linear(2 * 3 * 3, 2)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(1.0 - x)), 1))


class V6(nn.Module):
    """A parameter added per channel, functional pools, Tensor.flatten."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 2 * 2, 2)
        self.p = nn.Parameter(torch.randn(3, 1, 1))

    def forward(self, x):
        y = torch.relu(self.conv(x)) + self.p
        y = F.avg_pool2d(F.max_pool2d(y, 2), 2, stride=1)
        return self.fc(y.flatten(1))


class V7(nn.Module):
    """x.view(x.size(0), -1) straight from the input."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(x.view(x.size(0), -1))


def rnd_bn(m):
    """Give BatchNorm layers non-trivial statistics (the variants are untrained)."""
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-1, 1)


def make_variants(out_dir):
    """Untrained small models covering more of what torch.onnx.export emits,
    across opsets and export modes, with PyTorch's outputs on random inputs."""
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(5)
    models = [("mlp_bn", V1(), (5, 20)), ("cnn_pools", V2(), (4, 3, 9, 9)), ("cnn_group_pad", V3(), (3, 4, 6, 6)),
              ("linear3d", V4(), (2, 5, 6)), ("rsub_flatten", V5(), (3, 1, 4, 4)), ("param_add", V6(), (2, 2, 6, 6)),
              ("view", V7(), (3, 2, 4))]
    cases = {}
    for name, m, shape in models:
        rnd_bn(m)
        m.eval()
        x = torch.randn(*shape)
        with torch.no_grad():
            y = m(x)
        has_bn = any(isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)) for mod in m.modules())
        modes = [(9, "dyn"), (13, "dyn"), (17, "dyn"), (11, "fixed1")] + ([(15, "preserve")] if has_bn else [])
        for opset, mode in modes:
            fn = f"{name}_op{opset}_{mode}.onnx"
            ex = x[:1] if mode == "fixed1" else x
            kw = {}
            if mode != "fixed1":
                kw["dynamic_axes"] = {"input": {0: "batch"}, "out": {0: "batch"}}
            if mode == "preserve":
                kw["training"] = torch.onnx.TrainingMode.PRESERVE
            torch.onnx.export(m, ex, os.path.join(out_dir, fn), input_names=["input"], output_names=["out"],
                              opset_version=opset, **kw)
            # every variant is checked on the whole batch: a model exported
            # with batch 1 must still take any batch
            cases[fn] = {"x": [round(float(v), 6) for v in x.flatten()], "x_shape": list(x.shape),
                         "y": [round(float(v), 6) for v in y.flatten()], "y_shape": list(y.shape)}
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump(cases, f, separators=(",", ":"))


def train(model, x, y, steps, lr=0.01):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for step in range(steps):
        idx = torch.randint(0, x.shape[0], (64,))
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    model.eval()


def export(model, example, path, opset, dynamic=True, preserve=False):
    kwargs = {}
    if preserve:
        # keep BatchNormalization nodes (torch's eval export fuses Conv+BN
        # itself) so that the importer's folding is exercised
        kwargs["training"] = torch.onnx.TrainingMode.PRESERVE
    if dynamic:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "logits": {0: "batch"}}
    torch.onnx.export(model, example, path, input_names=["input"], output_names=["logits"],
                      opset_version=opset, do_constant_folding=True, **kwargs)


def rounded(t):
    return [[round(float(v), 6) for v in row] for row in t.detach().numpy()]


def make_seed(out, form):
    """seed_linear.onnx (nn.Linear), seed_matmul.onnx (the seed's model as
    written) and seed.onnx, a copy of the one named by form."""
    set_seed(0)
    seed = nn.Linear(2, 1)
    with torch.no_grad():
        seed.weight.copy_(torch.tensor([[2.0, 4.0]]))
        seed.bias.copy_(torch.tensor([1000.0]))
    seed.eval()
    assert seed(torch.tensor([5.0, 3.0])).item() == 1022.0
    export(seed, torch.tensor([5.0, 3.0]), out("seed_linear.onnx"), 13, dynamic=False)

    m = SeedNet().eval()
    assert m(torch.tensor([5.0, 3.0])).tolist() == [1022.0]
    # word for word what the seed does, at the opset of the other fixtures
    torch.onnx.export(m, torch.tensor([1.0, 2.0]), out("seed_matmul.onnx"), opset_version=13)
    ops = [n.op_type for n in onnx.load(out("seed_matmul.onnx")).graph.node]
    assert ops == ["MatMul", "Add"], ops
    shutil.copyfile(out(f"seed_{form}.onnx"), out("seed.onnx"))
    for fn in ("seed_linear.onnx", "seed_matmul.onnx", "seed.onnx"):
        check(out(fn))


def digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_all = digits.data.astype(np.float32)
    y_all = digits.target.astype(np.int64)
    return train_test_split(x_all, y_all, test_size=360, random_state=0, stratify=y_all)


def make_digits(out):
    x_tr, x_te, y_tr, y_te = digits_split()
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    xe = torch.from_numpy(x_te)
    img = lambda t: t.reshape(-1, 1, 8, 8)

    result = {"x": x_te.astype(int).tolist(), "labels": y_te.tolist(), "logits": {}, "accuracy": {}}

    def finish(name, model, inputs, example, opset, preserve=False):
        with torch.no_grad():
            logits = model(inputs)
        acc = float((logits.argmax(1).numpy() == y_te).mean())
        result["logits"][name] = rounded(logits)
        result["accuracy"][name] = acc
        export(model, example, out(name + ".onnx"), opset, preserve=preserve)
        print(f"{name}: test accuracy {acc:.3f}")

    set_seed(1)
    mlp = MLP()
    train(mlp, xt, yt, 1500)
    finish("digits_mlp", mlp, xe, xe[:2], 13)

    set_seed(2)
    cnn = CNN()
    train(cnn, img(xt), yt, 1500)
    finish("digits_cnn", cnn, img(xe), img(xe[:2]), 17)

    set_seed(3)
    cnnbn = CNNBN()
    train(cnnbn, img(xt / 16.0), yt, 1500)
    # BN on raw pixels: the model takes raw pixels too, fold the /16 into bn0
    with torch.no_grad():
        cnnbn.bn0.running_mean *= 16.0
        cnnbn.bn0.running_var *= 256.0
    finish("digits_cnn_bn", cnnbn, img(xe), img(xe[:2]), 9, preserve=True)

    set_seed(4)
    c13 = Conv13()
    c13.eval()
    with torch.no_grad():
        result["conv13_logits"] = rounded(c13(img(xe)))
    export(c13, img(xe[:2]), out("conv13.onnx"), 13)

    with open(out("digits_test.json"), "w") as f:
        json.dump(result, f, separators=(",", ":"))
    np.save(out("digits_sample.npy"), x_te[:4].astype(np.float32))
    np.save(out("digits_sample_cnn.npy"), x_te[:4].astype(np.float32).reshape(4, 1, 8, 8))


# ---------------------------------------------------------------------------
# Issue 10: the seed's model as written, W @ x forms, torchvision families.

GROUPS = ["seed", "digits", "variants", "matmul", "families"]

# What grid's importer and engine took when these fixtures were written
# (issue 10): anything else, or one of these in a form flagged by
# secret_patterns, is listed under "beyond".
SUPPORTED = {"Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Flatten", "Reshape", "Conv", "MaxPool",
             "AveragePool", "Pad", "GlobalAveragePool", "BatchNormalization", "Dropout", "Identity", "Squeeze",
             "Unsqueeze", "Cast", "Constant"}
# ops whose small constant operands analyse() shows beside their attributes
CONST_INPUTS_SHOWN = {"Clip", "Pad", "Slice", "Split", "ReduceMean", "ReduceSum", "Reshape", "Unsqueeze",
                      "Squeeze", "LeakyRelu", "PRelu", "HardSigmoid", "Resize", "Transpose"}
# ops folded when they only see public values (shapes, constants)
SHAPE_FOLDED = {"Shape", "Gather", "Concat", "Unsqueeze", "Squeeze", "Cast", "Constant", "Identity", "Reshape"}


class SeedNet(nn.Module):
    """The seed's model, word for word, with its two tensors as parameters."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Parameter(torch.tensor([2.0, 4.0]))
        self.bias = nn.Parameter(torch.tensor([1000.0]))

    def forward(self, x):
        return self.fc1.matmul(x) + self.bias


class SeedNetAttr(nn.Module):
    """The seed's text verbatim: plain tensor attributes (exported as Constant nodes)."""

    def __init__(self):
        super().__init__()
        self.fc1 = torch.tensor([2.0, 4.0])
        self.bias = torch.tensor([1000.0])

    def forward(self, x):
        return self.fc1.matmul(x) + self.bias


def sixteenths(*shape, lo=-32, hi=32):
    """Random multiples of 1/16 in [lo/16, hi/16): exact in float32 and in grid's fixed point."""
    return torch.randint(lo, hi, shape).float() / 16.0


class LeftMatMul(nn.Module):
    """forward(x) = W @ x (torch.matmul) with W a parameter of the given shape."""

    def __init__(self, w_shape):
        super().__init__()
        self.w = nn.Parameter(sixteenths(*w_shape))

    def forward(self, x):
        return torch.matmul(self.w, x)


class LeftAddmm(nn.Module):
    """torch.addmm(b, W, x): a Gemm whose A operand is the constant."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(sixteenths(3, 4))
        self.b = nn.Parameter(sixteenths(3, 5))

    def forward(self, x):
        return torch.addmm(self.b, self.w, x)


class ColumnMLP(nn.Module):
    """Column-vector MLP: W2 @ relu(W1 @ x + b1) + b2, x [features, samples]."""

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(sixteenths(6, 4))
        self.b1 = nn.Parameter(sixteenths(6, 1))
        self.w2 = nn.Parameter(sixteenths(3, 6))
        self.b2 = nn.Parameter(sixteenths(3, 1))

    def forward(self, x):
        return self.w2.matmul(torch.relu(self.w1.matmul(x) + self.b1)) + self.b2


# name: (module, x shape, dynamic axes of the input (None: fixed), expression)
def matmul_forms():
    return [
        ("matmul_left_seed_attr", SeedNetAttr(), (2,), None, "fc1.matmul(x) + bias, fc1 and bias plain attributes"),
        ("matmul_left_1d1d", LeftMatMul((4,)), (4,), None, "W[4] @ x[4] -> []"),
        ("matmul_left_1d2d", LeftMatMul((4,)), (4, 5), None, "W[4] @ x[4,5] -> [5]"),
        ("matmul_left_2d1d", LeftMatMul((3, 4)), (4,), None, "W[3,4] @ x[4] -> [3]"),
        ("matmul_left_2d2d", LeftMatMul((3, 4)), (4, 5), None, "W[3,4] @ x[4,5] -> [3,5]"),
        ("matmul_left_2d3d", LeftMatMul((3, 4)), (2, 4, 5), {0: "batch"}, "W[3,4] @ x[N,4,5] -> [N,3,5]"),
        ("matmul_left_3d3d", LeftMatMul((2, 3, 4)), (2, 4, 5), None, "W[2,3,4] @ x[2,4,5] -> [2,3,5]"),
        ("matmul_left_addmm", LeftAddmm(), (4, 5), None, "torch.addmm(b[3,5], W[3,4], x[4,5]) -> [3,5]"),
        ("matmul_left_colmlp", ColumnMLP(), (4, 5), None, "W2[3,6] @ relu(W1[6,4] @ x[4,5] + b1[6,1]) + b2[3,1]"),
    ]


def flat6(t):
    return [round(float(v), 6) for v in t.detach().reshape(-1)]


def make_matmul(out, report):
    cases = {}
    for fn, expr in [("seed_matmul.onnx", "fc1.matmul(x) + bias (parameters), the seed's model"),
                     ("seed_linear.onnx", "nn.Linear(2, 1), weight [[2, 4]], bias [1000]")]:
        if os.path.exists(out(fn)):
            cases[fn] = {"expr": expr, "x": [5.0, 3.0], "x_shape": [2], "y": [1022.0], "y_shape": [1],
                         "ops": sorted({n.op_type for n in onnx.load(out(fn)).graph.node})}
    torch.manual_seed(10)
    for name, m, shape, dyn, expr in matmul_forms():
        m.eval()
        x = sixteenths(*shape)
        if isinstance(m, SeedNetAttr):
            x = torch.tensor([5.0, 3.0])  # -> [1022]
        with torch.no_grad():
            y = m(x)
        fn = name + ".onnx"
        kw = {"dynamic_axes": {"input": dyn, "out": {0: "batch"}}} if dyn else {}
        torch.onnx.export(m, x, out(fn), input_names=["input"], output_names=["out"], opset_version=13, **kw)
        g = onnx.load(out(fn)).graph
        ops = [n.op_type for n in g.node]
        first = next(n for n in g.node if n.op_type in ("MatMul", "Gemm"))
        consts = {i.name for i in g.initializer} | {o for n in g.node if n.op_type == "Constant" for o in n.output}
        assert first.input[0] in consts and first.input[1] not in consts, (name, ops)
        cases[fn] = {"expr": expr, "x": flat6(x), "x_shape": list(x.shape), "y": flat6(y), "y_shape": list(y.shape),
                     "ops": sorted(set(ops))}
        report.append(describe(out(fn), fn, m, x))
    with open(out("matmul_left.json"), "w") as f:
        json.dump(cases, f, separators=(",", ":"))


@contextlib.contextmanager
def narrow(k):
    """Build torchvision models with every channel count c divided by k
    (c // k, at least 1), except 3 (the image) and 10 (the classes): nn.Conv2d,
    nn.BatchNorm2d and nn.Linear are swapped for subclasses while the model's
    own constructor runs, so its topology, init and op patterns are untouched.
    Concatenated and split channel counts stay consistent as long as k divides
    them, which FAMILIES' choices of k do (checked by running the model)."""
    conv, bn, lin = nn.Conv2d, nn.BatchNorm2d, nn.Linear
    f = lambda c: c if c in (3, 10) else max(1, c // k)

    class Conv2d(conv):
        def __init__(self, cin, cout, *a, groups=1, **kw):
            super().__init__(f(cin), f(cout), *a, groups=groups if groups == 1 else f(groups), **kw)

    class BatchNorm2d(bn):
        def __init__(self, n, *a, **kw):
            super().__init__(f(n), *a, **kw)

    class Linear(lin):
        def __init__(self, cin, cout, *a, **kw):
            super().__init__(f(cin), f(cout), *a, **kw)

    nn.Conv2d, nn.BatchNorm2d, nn.Linear = Conv2d, BatchNorm2d, Linear
    try:
        yield
    finally:
        nn.Conv2d, nn.BatchNorm2d, nn.Linear = conv, bn, lin


def tv(module):
    return importlib.import_module("torchvision.models." + module)


def efficientnet_b0_half_depth(**kw):
    ef = tv("efficientnet")
    setting, _ = ef._efficientnet_conf("efficientnet_b0", width_mult=1.0, depth_mult=0.5)
    return ef.EfficientNet(setting, 0.2, **kw)


# family: (small member for testdata, its description, input size,
#          full-size constructor for --full)
# The small members keep the named model's topology where the files allow it
# (narrow: same constructor, same depth, channels / k, so e.g. mobilenet_v2
# keeps exactly its 10 residual Adds, which width_mult=0.25 would change by
# rounding widths up to 8); densenet121 and shufflenet_v2 use their own
# constructors' knobs with fewer blocks, efficientnet_b0 half its depth
# (depth_mult=0.5, residual blocks kept): every op type and pattern of the
# full model is still there. googlenet gets 64x64 so that its last stages are
# 2x2, not 1x1.
FAMILIES = {
    "resnet18": (lambda: with_narrow(16, lambda: tv("resnet").resnet18(num_classes=10)),
                 "resnet18(num_classes=10), channels / 16 (4..32)", 32,
                 lambda: tv("resnet").resnet18()),
    "mobilenet_v2": (lambda: with_narrow(8, lambda: tv("mobilenetv2").mobilenet_v2(num_classes=10)),
                     "mobilenet_v2(num_classes=10), channels / 8 (2..160)", 32,
                     lambda: tv("mobilenetv2").mobilenet_v2()),
    "squeezenet1_1": (lambda: with_narrow(4, lambda: tv("squeezenet").squeezenet1_1(num_classes=10)),
                      "squeezenet1_1(num_classes=10), channels / 4 (4..128)", 32,
                      lambda: tv("squeezenet").squeezenet1_1()),
    "googlenet": (lambda: with_narrow(8, lambda: tv("googlenet").googlenet(num_classes=10, aux_logits=False,
                                                                          init_weights=True)),
                  "googlenet(num_classes=10, aux_logits=False, init_weights=True), channels / 8 (2..128)", 64,
                  lambda: tv("googlenet").googlenet(aux_logits=False, init_weights=True)),
    "densenet121": (lambda: tv("densenet").DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16,
                                                     num_classes=10),
                    "DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, num_classes=10)", 32,
                    lambda: tv("densenet").densenet121()),
    "shufflenet_v2_x0_5": (lambda: tv("shufflenetv2").ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=10),
                           "ShuffleNetV2(stages_repeats=[2, 2, 2], stages_out_channels=[8, 16, 32, 64, 128], "
                           "num_classes=10)", 32,
                           lambda: tv("shufflenetv2").shufflenet_v2_x0_5()),
    "mnasnet0_5": (lambda: with_narrow(4, lambda: tv("mnasnet").mnasnet0_5(num_classes=10)),
                   "mnasnet0_5(num_classes=10), channels / 4 (2..320)", 32,
                   lambda: tv("mnasnet").mnasnet0_5()),
    "efficientnet_b0": (lambda: with_narrow(8, lambda: efficientnet_b0_half_depth(num_classes=10)),
                        "EfficientNet(_efficientnet_conf('efficientnet_b0', width_mult=1.0, depth_mult=0.5), "
                        "num_classes=10), channels / 8 (1..160)", 32,
                        lambda: tv("efficientnet").efficientnet_b0()),
}
FULL_DEFAULT = ["resnet18", "mobilenet_v2", "squeezenet1_1"]


def with_narrow(k, build):
    with narrow(k):
        return build()


def calibrate(m, size, seed):
    """Calibrate a random-init model on random inputs, as training would,
    without changing its ops. With BatchNorm: realistic statistics (running
    mean/var averaged over random batches in train mode) and affine
    parameters jittered around 1 and 0, so that BN is not the identity.
    Without (squeezenet): each Conv's weight and bias are scaled so that its
    output has unit standard deviation (LSUV). A ReLU network is positively
    homogeneous, so this only rescales it; torchvision's init otherwise
    leaves narrow squeezenets with activations near 1e-3 and logits near
    1e-4 (the final conv is drawn from normal(0, 0.01)), under what grid's
    16-bit fixed point resolves to 1%."""
    g = torch.Generator().manual_seed(seed)
    bns = [mod for mod in m.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        m.eval()
        x = torch.randn(8, 3, size, size, generator=g)
        for conv in [mod for mod in m.modules() if isinstance(mod, nn.Conv2d)]:
            seen = []
            hook = conv.register_forward_hook(lambda mod, i, o: seen.append(o.std().item()))
            with torch.no_grad():
                m(x)
                hook.remove()
                conv.weight.div_(seen[0])
                if conv.bias is not None:
                    conv.bias.div_(seen[0])
        return
    saved = [b.momentum for b in bns]
    for b in bns:
        b.reset_running_stats()
        b.momentum = None  # cumulative average
    m.train()
    with torch.no_grad():
        for _ in range(4):
            m(torch.randn(8, 3, size, size, generator=g))
        for b, mom in zip(bns, saved):
            b.momentum = mom
            if b.affine:
                b.weight.mul_(0.75 + 0.5 * torch.rand(b.weight.shape, generator=g))
                b.bias.add_(0.5 * torch.rand(b.bias.shape, generator=g) - 0.25)
    m.eval()


def family_model(name, full, seed):
    small, config, size, big = FAMILIES[name]
    torch.manual_seed(seed)
    m = big() if full else small()
    if full:
        size, config = 64, f"torchvision.models.{name}() (1000 classes), random init, calibrated"
    calibrate(m, size, seed)
    m.eval()
    return m, config, size


def attr_string(node):
    parts = []
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, (list, tuple)):
            v = "x".join(str(int(e)) if isinstance(e, (int, np.integer)) else str(e) for e in v)
        elif isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, onnx.TensorProto):
            v = "tensor"
        parts.append(f"{a.name}={v}")
    return " ".join(sorted(parts))


def analyse(model):
    """Op types, counts, distinct attribute settings, and what grid did not
    support: tensors reachable from the graph input are secret (Shape's
    output is public), constants and shape arithmetic are public."""
    g = onnx.shape_inference.infer_shapes(model).graph
    shapes = {}
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        shapes[vi.name] = [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
    inits = {i.name: list(i.dims) for i in g.initializer}
    secret = {i.name for i in g.input if i.name not in inits}
    consts = {o: numpy_helper.to_array(a.t) for n in g.node if n.op_type == "Constant"
              for a in n.attribute if a.name == "value" for o in n.output}
    consts.update({i.name: numpy_helper.to_array(i) for i in g.initializer if np.prod(i.dims) <= 8})
    counts, attrs, beyond, public = collections.Counter(), {}, collections.Counter(), set()
    for n in g.node:
        op = n.op_type
        counts[op] += 1
        a = attr_string(n)
        if op in CONST_INPUTS_SHOWN:
            # small constant operands (Clip's bounds, Pad's pads, Slice's
            # starts/ends...) are part of the pattern
            a = " ".join([a] + [f"in{j}={np.round(consts[i], 6).tolist()}" for j, i in enumerate(n.input)
                                if j > 0 and i in consts and consts[i].size <= 8]).strip()
        if op != "Constant":
            attrs.setdefault(op, collections.Counter())[a] += 1
        ins = [i for i in n.input if i]
        sec = [i in secret for i in ins]
        if op != "Shape" and any(sec):
            secret.update(n.output)
        elif op not in ("Constant",):
            public.add(op)
            continue
        if not any(sec):
            continue
        nsec = sum(sec)
        tag = None
        if op in ("Add", "Sub", "Mul", "Div") and nsec == 2:
            bc = shapes.get(ins[0]) != shapes.get(ins[1])
            # residual Add/Sub of equal shapes ran already (resnet18, issue 10)
            if op == "Mul" or op == "Div" or bc:
                tag = f"{op}(secret,secret" + (",broadcast" if bc else "") + ")"
        elif op == "Div" and sec[1]:
            tag = "Div(by secret)"
        elif op in ("MatMul", "Gemm"):
            if nsec >= 2:
                tag = f"{op}(secret,secret)"
            elif not sec[0]:
                tag = f"{op}(constant left)"
        elif op == "Conv":
            w = inits.get(ins[1])
            group = next((x.i for x in n.attribute if x.name == "group"), 1)
            if w is not None and len(w) == 3:
                tag = "Conv(1-D)"
            if group > 1:
                tag = "Conv(depthwise)" if w is not None and w[1] == 1 else "Conv(group>1)"
        elif op == "Concat":
            tag = "Concat(secret)" if nsec == len(ins) else "Concat(secret,constant)"
        elif op == "Gather":
            tag = "Gather(secret)"
        elif op not in SUPPORTED:
            tag = op
        if tag:
            beyond[tag] += 1
    return {"ops": sorted(counts), "op_counts": dict(sorted(counts.items())),
            "attrs": {op: dict(sorted(c.items())) for op, c in sorted(attrs.items())},
            "beyond": dict(sorted(beyond.items())),
            "public_ops": sorted(public - SHAPE_FOLDED)}


def check(path):
    onnx.checker.check_model(onnx.load(path), full_check=True)


def torch_ms(m, x, runs=20, warm=3, wall=False):
    """Median over runs of one m(x) call, in ms: the process's CPU time (one
    thread, so it does not count time spent waiting for a busy CPU), or with
    wall=True the elapsed time."""
    clock = time.perf_counter if wall else time.process_time
    with torch.no_grad():
        for _ in range(warm):
            m(x)
        ts = []
        for _ in range(runs):
            t = clock()
            m(x)
            ts.append((clock() - t) * 1000)
    return round(statistics.median(ts), 3)


def describe(path, name, m, x):
    check(path)
    info = analyse(onnx.load(path))
    return {"name": name, "bytes": os.path.getsize(path), "params": sum(p.numel() for p in m.parameters()),
            "ops": info["ops"], "beyond": sorted(info["beyond"]), "ms": torch_ms(m, x[:1] if x.dim() == 4 else x)}


def family_case(name, path, full, seed):
    m, config, size = family_model(name, full, seed)
    x = sixteenths(2, 3, size, size)
    with torch.no_grad():
        y = m(x)
    export(m, x, path, 13)
    check(path)
    info = analyse(onnx.load(path))
    case = {"file": os.path.basename(path), "config": config, "opset": 13,
            "params": sum(p.numel() for p in m.parameters()),
            "x": flat6(x), "x_shape": list(x.shape), "y": flat6(y), "y_shape": list(y.shape), **info}
    return m, x, case


def make_families(out, report):
    os.makedirs(out("families"), exist_ok=True)
    cases = {}
    for i, name in enumerate(FAMILIES):
        m, x, case = family_case(name, out(os.path.join("families", name + ".onnx")), False, 100 + i)
        case["file"] = "families/" + case["file"]
        cases[name] = case
        report.append({"name": name, "bytes": os.path.getsize(out(case["file"])), "params": case["params"],
                       "ops": case["ops"], "beyond": sorted(case["beyond"]), "ms": torch_ms(m, x[:1])})
    with open(out("families.json"), "w") as f:
        json.dump(cases, f, separators=(",", ":"))


def make_full(dir_, names, report):
    os.makedirs(dir_, exist_ok=True)
    cases = {}
    for name in names:
        path = os.path.join(dir_, name + ".onnx")
        m, x, case = family_case(name, path, True, 200 + list(FAMILIES).index(name))
        x8 = sixteenths(8, 3, x.shape[2], x.shape[3])
        case["torch_ms"] = {"batch1": torch_ms(m, x[:1]), "batch8": torch_ms(m, x8),
                            "batch1_wall": torch_ms(m, x[:1], wall=True), "batch8_wall": torch_ms(m, x8, wall=True)}
        case["torch"] = {"version": torch.__version__, "threads": torch.get_num_threads(),
                         "note": "eager, eval, torch.no_grad; ms per call (batch8: the whole batch of 8), median "
                                 "of 20 runs after 3 warm-ups; batch1/batch8 CPU time, *_wall elapsed time"}
        cases[name] = case
        report.append({"name": name, "bytes": os.path.getsize(path), "params": case["params"], "ops": case["ops"],
                       "beyond": sorted(case["beyond"]), "ms": case["torch_ms"]["batch1"],
                       "ms8": case["torch_ms"]["batch8"]})
    with open(os.path.join(dir_, "full.json"), "w") as f:
        json.dump(cases, f, separators=(",", ":"))


def print_table(report):
    if not report:
        return
    print(f"\n{'model':24s} {'bytes':>10s} {'params':>9s} {'torch ms':>9s}  op types / beyond grid today")
    print(f"{'':46s}(PyTorch CPU ms per call, 1 thread, batch 1; b8: batch 8)")
    for r in report:
        ms = f"{r['ms']:.2f}" + (f" ({r['ms8']:.1f} b8)" if "ms8" in r else "")
        print(f"{r['name']:24s} {r['bytes']:10d} {r['params']:9d} {ms:>9s}  {' '.join(r['ops'])}")
        if r["beyond"]:
            print(f"{'':57s} beyond: {' '.join(r['beyond'])}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="testdata")
    ap.add_argument("--only", help="comma-separated groups to write: " + ",".join(GROUPS) + " (default: all)")
    ap.add_argument("--seed-model", choices=["linear", "matmul"], default="matmul",
                    help="which seed_*.onnx seed.onnx copies (default matmul: the seed's model as written)")
    ap.add_argument("--full", metavar="DIR", help="write the full-size models and full.json to DIR")
    ap.add_argument("--full-models", default=",".join(FULL_DEFAULT),
                    help="comma-separated, any of " + ",".join(FAMILIES))
    args = ap.parse_args()
    if args.only:
        groups = args.only.split(",")
    else:
        groups = [] if args.full else GROUPS
    for g in groups:
        if g not in GROUPS:
            ap.error(f"unknown group {g!r}")
    full = [n for n in args.full_models.split(",") if n] if args.full else []
    for n in full:
        if n not in FAMILIES:
            ap.error(f"unknown model {n!r}")
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.set_num_threads(1)
    out = lambda name: os.path.join(args.out, name)
    if groups:
        os.makedirs(args.out, exist_ok=True)
    report = []

    if "seed" in groups:
        make_seed(out, args.seed_model)
    if "digits" in groups:
        make_digits(out)
    if "variants" in groups:
        make_variants(out("variants"))
    if "matmul" in groups:
        make_matmul(out, report)
    if "families" in groups:
        make_families(out, report)
    if full:
        make_full(args.full, full, report)
    print_table(report)


if __name__ == "__main__":
    main()
