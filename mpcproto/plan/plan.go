// Package plan defines the public description of a model: its op graph, the
// shapes of its input and weights, and the attributes of each op (PySyft
// calls this a Plan). A plan holds no secret: the weights' values live apart
// (plaintext in Weights, secret-shared in the engine), so a plan can be put in
// a manifest, hashed and sent to every party.
//
// The op set is canonical and small; the ONNX importer (mpcproto/onnx)
// rewrites what torch.onnx.export emits into it, folding at import what the
// owner knows in plaintext (transposes of weights, Gemm's alpha and beta,
// BatchNormalization, constant subgraphs) so that the secure engine only
// evaluates the ops below.
package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/gridmpc/grid/mpcproto/tensor"
)

// Version is the plan format version written in every plan.
const Version = 1

// Op names a canonical operation. Values named in a Node's Inputs are the
// plan's input, a weight, or an earlier node's output. Unless said otherwise
// every input may be secret (an activation or a weight).
type Op string

// The canonical ops. Shapes follow ONNX: images are NCHW.
const (
	// MatMul: Inputs A, B and an optional bias [n]: A·B with numpy (ONNX
	// MatMul) semantics, A [..., m, k] times B [..., k, n] with the batch
	// dimensions broadcast, a 1-D A a row and a 1-D B a column (the added
	// dimension dropped); the bias is added along the output's last
	// dimension (n). Either operand may be a weight: X·W (a layer), W·x (a
	// weight on the left, as torch exports W @ x), or two activations.
	// Leading dims of A are flattened into rows when B has rank <= 2, so a
	// whole batch is one matrix product (MatMulGeometry).
	MatMul Op = "MatMul"
	// Conv: Inputs X [N, C, H, W], W [M, C/Group, kH, kW] and an optional
	// bias B [M]. Attrs: Strides [2], Pads [4] (h_begin, w_begin, h_end,
	// w_end), Dilations [2], Group.
	Conv Op = "Conv"
	// Add and Sub: two inputs with numpy (right-aligned) broadcasting.
	Add Op = "Add"
	Sub Op = "Sub"
	// Mul: elementwise product of two secret inputs, numpy broadcasting.
	Mul Op = "Mul"
	// MulConst: one input times the public constant Attrs.Const (a scalar or
	// a tensor broadcast against the input). Division by a constant is
	// MulConst by its inverse.
	MulConst Op = "MulConst"
	// Relu: max(x, 0) elementwise.
	Relu Op = "Relu"
	// MaxPool: Input [N, C, H, W]. Attrs: Kernel [2], Strides [2], Pads [4],
	// Dilations [2], CeilMode. Padding never wins the max (ONNX semantics).
	MaxPool Op = "MaxPool"
	// AveragePool: Input [N, C, H, W]. Attrs: Kernel, Strides, Pads,
	// CeilMode, CountIncludePad (whether padded zeros count in the divisor).
	AveragePool Op = "AveragePool"
	// GlobalAveragePool: [N, C, H, W] -> [N, C, 1, 1].
	GlobalAveragePool Op = "GlobalAveragePool"
	// Pad: constant padding. Attrs: Pads in ONNX layout (x1_begin, x2_begin,
	// ..., x1_end, x2_end, ...), one begin and one end per axis; Value is the
	// public constant written in the padding.
	Pad Op = "Pad"
	// Flatten: [d0, ..., dn] -> [d0*...*d(Axis-1), dAxis*...*dn]. Attrs: Axis.
	Flatten Op = "Flatten"
	// Reshape: Attrs.Shape in ONNX semantics (0 copies the input's dim, -1
	// is inferred). Batch-free plans use -1 or 0 for the batch dim.
	Reshape Op = "Reshape"
	// Identity: the input unchanged.
	Identity Op = "Identity"
	// Concat: one or more inputs of one rank joined along Attrs.Axis (>=
	// 0); their other dimensions agree. Inputs may be weights.
	Concat Op = "Concat"
	// Transpose: the input's axes permuted: output axis i is input axis
	// Attrs.Perm[i].
	Transpose Op = "Transpose"
	// Slice: along each axis Attrs.Axes[i], the elements Starts[i],
	// Starts[i] + Steps[i], ... before Ends[i] (Steps may be negative;
	// every element must lie inside the axis; the importer writes them
	// normalized). Other axes are kept whole.
	Slice Op = "Slice"
	// Gather: ONNX Gather along Attrs.Axis with the public constant
	// indices Attrs.Indices (>= 0) of shape Attrs.IndexShape: the output
	// is shape[:axis] + IndexShape + shape[axis+1:].
	Gather Op = "Gather"
	// ReduceSum: the sum over Attrs.Axes (distinct, >= 0), kept as
	// dimensions of 1 when Attrs.KeepDims. (ONNX ReduceMean imports as
	// ReduceSum then MulConst by 1/count.)
	ReduceSum Op = "ReduceSum"
	// Clip: min(max(x, Attrs.Min), Attrs.Max), either bound absent (nil)
	// but not both; Min < Max. ReLU6 is Clip(0, 6).
	Clip Op = "Clip"
	// LeakyRelu: x for x >= 0, Attrs.Alpha·x below.
	LeakyRelu Op = "LeakyRelu"
	// PRelu: x for x >= 0, slope·x below, the public slopes Attrs.Const
	// broadcast against the input.
	PRelu Op = "PRelu"
	// HardSigmoid: max(0, min(1, Attrs.Alpha·x + Attrs.Beta)).
	HardSigmoid Op = "HardSigmoid"
	// HardSwish: x·max(0, min(1, x/6 + 1/2)).
	HardSwish Op = "HardSwish"
	// Sigmoid: 1/(1 + e^-x); the secure engine evaluates an approximation
	// within SigmoidBound of it (PiecewiseOf).
	Sigmoid Op = "Sigmoid"
	// SiLU (Swish): x·sigmoid(x); the secure engine evaluates an
	// approximation within SiLUBound of it.
	SiLU Op = "SiLU"
)

// Ops lists every canonical op, in the order of the constants above.
var Ops = []Op{MatMul, Conv, Add, Sub, Mul, MulConst, Relu, MaxPool, AveragePool,
	GlobalAveragePool, Pad, Flatten, Reshape, Identity, Concat, Transpose, Slice, Gather, ReduceSum,
	Clip, LeakyRelu, PRelu, HardSigmoid, HardSwish, Sigmoid, SiLU}

// Value is a named tensor of the graph with its shape. In Plan.Input a
// leading -1 marks the free batch dimension.
type Value struct {
	Name  string `json:"name"`
	Shape []int  `json:"shape"`
}

// Const is a public constant tensor (the only numbers a plan carries).
type Const struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

// Attrs holds the attributes of every op; each op reads the fields its doc
// names and leaves the others zero. For Conv and the pools an empty Strides,
// Pads or Dilations means the ONNX default (1s, 0s, 1s) and Group 0 means 1;
// Attrs.Spatial and Attrs.Groups resolve them. The importer writes them all.
type Attrs struct {
	Strides         []int    `json:"strides,omitempty"`
	Pads            []int    `json:"pads,omitempty"`
	Dilations       []int    `json:"dilations,omitempty"`
	Kernel          []int    `json:"kernel,omitempty"`
	Group           int      `json:"group,omitempty"`
	CeilMode        bool     `json:"ceil_mode,omitempty"`
	CountIncludePad bool     `json:"count_include_pad,omitempty"`
	Axis            int      `json:"axis,omitempty"`
	Shape           []int    `json:"shape,omitempty"`
	Value           float64  `json:"value,omitempty"`
	Const           *Const   `json:"const,omitempty"`
	Perm            []int    `json:"perm,omitempty"`
	Axes            []int    `json:"axes,omitempty"`
	Starts          []int    `json:"starts,omitempty"`
	Ends            []int    `json:"ends,omitempty"`
	Steps           []int    `json:"steps,omitempty"`
	Indices         []int    `json:"indices,omitempty"`
	IndexShape      []int    `json:"index_shape,omitempty"`
	KeepDims        bool     `json:"keepdims,omitempty"`
	Min             *float64 `json:"min,omitempty"`
	Max             *float64 `json:"max,omitempty"`
	Alpha           float64  `json:"alpha,omitempty"`
	Beta            float64  `json:"beta,omitempty"`
}

// Node is one op of the graph. Name is the source node's name (ONNX node
// name), used in error messages.
type Node struct {
	Name   string   `json:"name"`
	Op     Op       `json:"op"`
	Inputs []string `json:"inputs"`
	Output string   `json:"output"`
	Attrs  Attrs    `json:"attrs"`
}

// Plan is a model's public op graph. Nodes are in topological order.
type Plan struct {
	Version int     `json:"version"`
	Input   Value   `json:"input"`
	Output  string  `json:"output"`
	Weights []Value `json:"weights"`
	Nodes   []Node  `json:"nodes"`
	// Final, when set, is an op the client applies to the output after
	// reconstructing it (the holders never compute it): a model's last
	// Softmax. See Finish.
	Final *Final `json:"final,omitempty"`
}

// Final is a client-side last op: Softmax or LogSoftmax over Axes (the
// trailing axes of the output, normalized jointly: one axis since ONNX
// opset 13, the axes from the attribute's on before).
type Final struct {
	Op   string `json:"op"`
	Axes []int  `json:"axes"`
}

// The client-side final ops.
const (
	FinalSoftmax    = "Softmax"
	FinalLogSoftmax = "LogSoftmax"
)

// Weights are a model's secret parameter values by name, in plaintext: what
// the owner holds before sharing and what the plaintext twin evaluates.
type Weights map[string]*tensor.Dense[float64]

// Marshal encodes the plan as JSON, its wire and storage form.
func (p *Plan) Marshal() ([]byte, error) { return json.Marshal(p) }

// Hash is the hex SHA-256 of the plan's encoding: what manifests name.
func (p *Plan) Hash() (string, error) {
	b, err := p.Marshal()
	if err != nil {
		return "", err
	}
	return HashBytes(b), nil
}

// HashBytes is the hex SHA-256 of a plan's encoding (Marshal): the plan
// hash a manifest names, a bundle carries and a holder stores.
func HashBytes(encoded []byte) string {
	sum := sha256.Sum256(encoded)
	return hex.EncodeToString(sum[:])
}

// VerifyHash checks that encoded, a plan's encoding, hashes to hash
// (HashBytes); the error states both hashes.
func VerifyHash(encoded []byte, hash string) error {
	if got := HashBytes(encoded); got != hash {
		return fmt.Errorf("plan hash %s does not match the plan (sha256 %s)", hash, got)
	}
	return nil
}
