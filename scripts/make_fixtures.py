#!/usr/bin/python3
"""Make grid's model fixtures: small PyTorch models exported with torch.onnx.export.

How to run (from the repository root; Debian 12 packages, no pip):

    apt-get install -y python3-torch python3-onnx python3-sklearn
    /usr/bin/python3 scripts/make_fixtures.py [--out testdata]

It is deterministic: fixed seeds, one thread, fixed training steps. It writes,
under --out (default testdata/):

  seed.onnx           nn.Linear(2, 1) with weight [[2, 4]] and bias [1000],
                      exported with a 1-D input of 2 values: [5, 3] -> [1022].
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
All models are exported with a dynamic batch axis (except the seed's 1-D input).
"""

import argparse
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="testdata")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    out = lambda name: os.path.join(args.out, name)

    # The seed model.
    set_seed(0)
    seed = nn.Linear(2, 1)
    with torch.no_grad():
        seed.weight.copy_(torch.tensor([[2.0, 4.0]]))
        seed.bias.copy_(torch.tensor([1000.0]))
    seed.eval()
    assert seed(torch.tensor([5.0, 3.0])).item() == 1022.0
    export(seed, torch.tensor([5.0, 3.0]), out("seed.onnx"), 13, dynamic=False)

    digits = load_digits()
    x_all = digits.data.astype(np.float32)
    y_all = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x_all, y_all, test_size=360, random_state=0, stratify=y_all)
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
    make_variants(out("variants"))
    np.save(out("digits_sample.npy"), x_te[:4].astype(np.float32))
    np.save(out("digits_sample_cnn.npy"), x_te[:4].astype(np.float32).reshape(4, 1, 8, 8))


if __name__ == "__main__":
    main()
