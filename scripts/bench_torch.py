#!/usr/bin/env python3
"""PyTorch's single-thread time for an ONNX model on a given input.

    /usr/bin/python3 scripts/bench_torch.py MODEL.onnx INPUT.npy [--runs 20]

torch cannot load ONNX, so this script evaluates the ONNX graph node by node
with the torch operators each ONNX op stands for (Conv -> F.conv2d, Gemm ->
torch.addmm, ...), on one thread, under torch.no_grad: what eager PyTorch
does for the module the ONNX file was exported from, op for op. It prints
one JSON line: {"ms": CPU ms per inference, "wall_ms": wall ms, "runs": N,
"output": the first 8 output values} (medians of --runs runs after 3
warm-ups; CPU time is the process's, as scripts/make_fixtures.py measures
it). cmd/grid-bench runs it next to grid's figures. Ops it does not know
fail with exit 2 naming them.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from onnx import numpy_helper  # noqa: E402


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def ints(t):
    return [int(v) for v in t.flatten().tolist()]


def pad_arg(pads):
    """ONNX pads (begins then ends, first axis first) -> F.pad's order."""
    n = len(pads) // 2
    out = []
    for i in reversed(range(n)):
        out += [pads[i], pads[i + n]]
    return out


def conv(x, w, b=None, a=None):
    p = a.get("pads", [0, 0, 0, 0])
    if p[0] != p[2] or p[1] != p[3]:
        x, p = F.pad(x, pad_arg(p)), [0, 0]
    return F.conv2d(x, w, b, a.get("strides", 1), p[:2], a.get("dilations", 1), a.get("group", 1))


def pool(kind, x, a):
    p = a.get("pads", [0, 0, 0, 0])
    if kind == "max":
        return F.max_pool2d(x, a["kernel_shape"], a.get("strides", 1), p[:2], ceil_mode=bool(a.get("ceil_mode", 0)))
    return F.avg_pool2d(x, a["kernel_shape"], a.get("strides", 1), p[:2], ceil_mode=bool(a.get("ceil_mode", 0)),
                        count_include_pad=bool(a.get("count_include_pad", 0)))


def gemm(x, w, b=None, a=None):
    if a.get("transA", 0):
        x = x.t()
    if a.get("transB", 0):
        w = w.t()
    y = (x @ w) * a.get("alpha", 1.0)
    return y if b is None else y + b * a.get("beta", 1.0)


def slice_(x, starts, ends, axes=None, steps=None):
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    for s, e, ax, st in zip(ints(starts), ints(ends), ints(torch.as_tensor(axes)), ints(torch.as_tensor(steps))):
        n = x.shape[ax]
        s, e = [v + n if v < 0 else v for v in (s, e)]
        lo = -1 if st < 0 else 0
        s, e = min(max(s, lo), n - 1 if st < 0 else n), min(max(e, lo), n - 1 if st < 0 else n)
        x = torch.index_select(x, ax, torch.tensor(list(range(s, e, st)), dtype=torch.int64))
    return x


def pad(x, pads, value=None, a=None):
    v = 0.0 if value is None else float(value)
    return F.pad(x, pad_arg(ints(pads)), mode=a.get("mode", b"constant").decode(), value=v)


OPS = {
    "Identity": lambda x, a: x,
    "Relu": lambda x, a: torch.relu(x),
    "Sigmoid": lambda x, a: torch.sigmoid(x),
    "Clip": lambda x, lo=None, hi=None, a=None: torch.clamp(x, None if lo is None else float(lo), None if hi is None else float(hi)),
    "Add": lambda x, y, a: x + y,
    "Sub": lambda x, y, a: x - y,
    "Mul": lambda x, y, a: x * y,
    "Div": lambda x, y, a: x / y,
    "MatMul": lambda x, y, a: x @ y,
    "Gemm": lambda x, w, b=None, a=None: gemm(x, w, b, a),
    "Conv": lambda x, w, b=None, a=None: conv(x, w, b, a),
    "MaxPool": lambda x, a: pool("max", x, a),
    "AveragePool": lambda x, a: pool("avg", x, a),
    "GlobalAveragePool": lambda x, a: F.adaptive_avg_pool2d(x, 1),
    "Flatten": lambda x, a: torch.flatten(x, a.get("axis", 1)),
    "Reshape": lambda x, s, a: x.reshape([x.shape[i] if v == 0 else v for i, v in enumerate(ints(s))]),
    "Concat": lambda *xs, a: torch.cat(xs, a["axis"]),
    "Transpose": lambda x, a: x.permute(*a["perm"]),
    "Softmax": lambda x, a: torch.softmax(x, a.get("axis", -1)),
    "Cast": lambda x, a: x.to(torch.int64) if a["to"] == onnx.TensorProto.INT64 else x.float(),
    "ConstantOfShape": lambda s, a: torch.full(ints(s), float(numpy_helper.to_array(a["value"]).flatten()[0])),
    "Slice": lambda x, *r, a: slice_(x, *r),
    "Pad": lambda x, p, v=None, a=None: pad(x, p, v, a),
    "Shape": lambda x, a: torch.tensor(list(x.shape)),
    "Gather": lambda x, i, a: torch.index_select(x, a.get("axis", 0), i.flatten()).reshape(list(i.shape) + list(x.shape[1:])) if i.dim() else x[int(i)],
    "Unsqueeze": lambda x, ax, a: x.reshape([*x.shape[:ints(ax)[0]], 1, *x.shape[ints(ax)[0]:]]),
    "BatchNormalization": lambda x, s, b, m, v, a: F.batch_norm(x, m, v, s, b, False, 0.0, a.get("epsilon", 1e-5)),
}


def prepare(model):
    """The weights and constants as tensors, and each node's attributes:
    what a torch module holds before it is called (not timed)."""
    consts = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        a = attrs(node)
        if node.op_type == "Constant":
            consts[node.output[0]] = torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
        else:
            nodes.append((OPS[node.op_type], list(node.input), node.output[0], a))
    return consts, nodes


def run(model, prepared, x):
    consts, nodes = prepared
    vals = dict(consts)
    vals[model.graph.input[0].name] = x
    for op, inputs, output, a in nodes:
        ins = [vals[i] if i else None for i in inputs]
        while ins and ins[-1] is None:
            ins.pop()
        vals[output] = op(*ins, a=a)
    return vals[model.graph.output[0].name]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    model = onnx.load(args.model)
    unknown = sorted({n.op_type for n in model.graph.node} - set(OPS) - {"Constant"})
    if unknown:
        print("bench_torch: ops not covered: " + ", ".join(unknown), file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(1)
    x = torch.from_numpy(np.load(args.input).astype(np.float32))
    prepared = prepare(model)
    cpu, wall = [], []
    with torch.no_grad():
        for i in range(3 + args.runs):
            c0, w0 = time.process_time(), time.perf_counter()
            y = run(model, prepared, x)
            if i >= 3:
                cpu.append((time.process_time() - c0) * 1e3)
                wall.append((time.perf_counter() - w0) * 1e3)
    print(json.dumps({"ms": round(statistics.median(cpu), 3), "wall_ms": round(statistics.median(wall), 3),
                      "runs": args.runs, "output": [round(float(v), 5) for v in y.flatten()[:8]]}))


if __name__ == "__main__":
    main()
