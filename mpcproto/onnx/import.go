// Package onnx imports models exported by torch.onnx.export into a public
// plan (mpcproto/plan) and plaintext weights.
//
// The importer runs in the model owner's process, who knows the weights in
// plaintext, so it folds at import everything that does not need the client's
// input: constant subgraphs (including the Shape/Gather/Unsqueeze/Concat
// chains torch emits for x.view(x.size(0), -1)), weight transposes, Gemm's
// alpha and beta, BatchNormalization into the preceding Conv or Gemm, biases
// added after a MatMul or Conv, Identity and Dropout. The rest is rewritten
// into the canonical op set.
//
// # Covered
//
// Opsets 7 to 18 of the default domain (torch 1.13 to 2.x emit 9 to 17; the
// fixtures test 9, 13 and 17). Ops on activations: Gemm and MatMul (the
// weight on either side, 1-D to batched operands, or two activations),
// Add, Sub, Mul, Div (one side constant, or Add/Sub/Mul of two
// activations with broadcasting), Relu, Clip, LeakyRelu, PRelu,
// HardSigmoid, HardSwish, Sigmoid (Mul(x, Sigmoid(x)) becomes SiLU),
// Flatten, Reshape, Squeeze, Unsqueeze, Concat, Transpose, Slice, Split,
// Gather (constant indices), ReduceSum, ReduceMean, Conv (1-D and 2-D,
// grouped), MaxPool, AveragePool, GlobalAveragePool, Pad (constant mode),
// BatchNormalization (inference), Dropout, Identity, Cast to float, and a
// last Softmax or LogSoftmax (plan.Final, applied by the client). Ops
// folded over constants: Constant, ConstantOfShape, Shape, Gather,
// Unsqueeze, Squeeze, Concat, Slice, Reshape, Transpose, Cast, Flatten,
// Identity, Add, Sub, Mul, Div, Neg. Anything else is refused with its op
// and node name (SupportedOps lists them for "grid ops").
//
// Public and secret: Mul or Div by a constant becomes MulConst, so that
// constant is public in the plan; every other constant (weights, biases, added
// or subtracted constants, folded BatchNormalization) is a secret weight.
//
// # Batch dimension
//
// The plan's input shape starts with -1 (a free batch dimension) when the
// model's input has rank >= 2 and its leading dimension is dynamic (a
// dim_param, as torch.onnx.export's dynamic_axes writes) or fixed to 1. For an
// input fixed to 1 at export the importer tries to free the batch and falls
// back to a plan that takes batch 1 only when the graph mixes the batch into
// other dimensions. A rank-1 input (like the seed model's [2]) and a leading
// dimension fixed to more than 1 stay as they are. Every other dimension must
// be fixed.
//
// Shapes that depend on the batch are resolved by evaluating the graph's
// shapes under two batch sizes and comparing: a Reshape target element that
// follows the batch becomes 0 (copy the input's dimension) or -1.
package onnx

import (
	"errors"
	"fmt"
	"io"
	"math"

	pb "github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"github.com/gridmpc/grid/mpcproto/plan"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// MaxModelSize is the largest model file Import reads, in bytes.
const MaxModelSize = 256 << 20

// The range of opsets of the default domain Import accepts.
const (
	// MinOpset is the oldest opset accepted.
	MinOpset = 7
	// MaxOpset is the newest opset accepted.
	MaxOpset = 18
)

// probe batch sizes: a free batch dimension is bound to each in turn, so a
// shape value that differs between the two follows the batch.
var probe = [2]int{7, 11}

// Import reads an ONNX model (at most MaxModelSize bytes) and returns its
// plan and weights. See ImportBytes.
func Import(r io.Reader) (*plan.Plan, plan.Weights, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxModelSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read onnx model: %w", err)
	}
	return ImportBytes(b)
}

// ImportBytes decodes an ONNX model and converts it into a validated plan and
// its plaintext weights. It never returns a partial plan: on any error (a
// malformed file, an unsupported op, a missing initializer, a shape that
// cannot be fixed) both results are nil.
func ImportBytes(b []byte) (p *plan.Plan, w plan.Weights, err error) {
	if len(b) > MaxModelSize {
		return nil, nil, fmt.Errorf("onnx model is larger than %d bytes", MaxModelSize)
	}
	var mp pb.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		return nil, nil, fmt.Errorf("decode onnx model: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			p, w, err = nil, nil, fmt.Errorf("import onnx model: internal error: %v", r)
		}
	}()
	return importModel(&mp)
}

func importModel(mp *pb.ModelProto) (*plan.Plan, plan.Weights, error) {
	g := mp.GetGraph()
	if g == nil {
		return nil, nil, errors.New("onnx model has no graph")
	}
	opset, err := defaultOpset(mp)
	if err != nil {
		return nil, nil, err
	}
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	var inputs []*pb.ValueInfoProto
	for _, in := range g.GetInput() {
		if !inits[in.GetName()] {
			inputs = append(inputs, in)
		}
	}
	if len(inputs) != 1 {
		return nil, nil, fmt.Errorf("onnx model has %d inputs (besides initializers), want 1", len(inputs))
	}
	if len(g.GetOutput()) != 1 {
		return nil, nil, fmt.Errorf("onnx model has %d outputs, want 1", len(g.GetOutput()))
	}
	in := inputs[0]
	shape, err := inputShape(in)
	if err != nil {
		return nil, nil, err
	}
	free := shape[0] == -1 || (len(shape) >= 2 && shape[0] == 1)
	fromOne := shape[0] == 1 && free
	p, w, err := run(g, opset, in.GetName(), shape, free, fromOne)
	if err != nil && fromOne {
		// the graph fixes the batch to 1 somewhere: keep it fixed
		if p2, w2, err2 := run(g, opset, in.GetName(), shape, false, false); err2 == nil {
			return p2, w2, nil
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return p, w, nil
}

// defaultOpset is the opset of the default domain mp imports, when supported.
func defaultOpset(mp *pb.ModelProto) (int, error) {
	opset := 0
	for _, o := range mp.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			opset = int(min(max(o.GetVersion(), -1), math.MaxInt32))
		}
	}
	if opset == 0 {
		return 0, errors.New("onnx model imports no opset of the default domain")
	}
	if opset < MinOpset || opset > MaxOpset {
		return 0, fmt.Errorf("onnx opset %d is not supported (supported: %d to %d)", opset, MinOpset, MaxOpset)
	}
	return opset, nil
}

// inputShape checks the model's input, a float tensor whose dimensions are
// fixed but for a leading batch, and returns its shape, -1 for the batch when
// it is dynamic.
func inputShape(in *pb.ValueInfoProto) ([]int, error) {
	if in.GetName() == "" {
		return nil, errors.New("onnx model input has no name")
	}
	tt := in.GetType().GetTensorType()
	if tt == nil {
		return nil, fmt.Errorf("onnx model input %q is not a tensor", in.GetName())
	}
	if et := tt.GetElemType(); et != dtFloat && et != dtDouble {
		return nil, fmt.Errorf("onnx model input %q has element type %s, want float", in.GetName(), pb.TensorProto_DataType(et))
	}
	if tt.GetShape() == nil {
		return nil, fmt.Errorf("onnx model input %q has no shape", in.GetName())
	}
	dims := tt.GetShape().GetDim()
	if len(dims) == 0 || len(dims) > plan.MaxRank {
		return nil, fmt.Errorf("onnx model input %q has rank %d, want 1 to %d", in.GetName(), len(dims), plan.MaxRank)
	}
	shape := make([]int, len(dims))
	for i, d := range dims {
		v := d.GetDimValue()
		switch {
		case v > 0 && v <= plan.MaxDim:
			shape[i] = int(v)
		case v > plan.MaxDim:
			return nil, fmt.Errorf("onnx model input %q: dimension %d is %d, too large", in.GetName(), i, v)
		default:
			shape[i] = -1
		}
	}
	for i, d := range shape {
		if d == -1 && (i > 0 || len(shape) == 1) {
			return nil, fmt.Errorf("onnx model input %q has shape %s: dimension %d is dynamic; only a leading batch dimension of a rank >= 2 input may be (export with fixed sizes)",
				in.GetName(), dimString(dims), i)
		}
	}
	return shape, nil
}

func dimString(dims []*pb.TensorShapeProto_Dimension) string {
	s := "["
	for i, d := range dims {
		if i > 0 {
			s += " "
		}
		if d.GetDimParam() != "" {
			s += d.GetDimParam()
		} else if d.GetDimValue() > 0 {
			s += fmt.Sprint(d.GetDimValue())
		} else {
			s += "?"
		}
	}
	return s + "]"
}

// act is an activation: a value that depends on the client's input. name is
// its name in the plan; shape is its shape under each probe binding.
type act struct {
	name  string
	shape [2][]int
}

// importer is the state of one conversion.
type importer struct {
	opset   int
	free    bool
	fromOne bool
	batch   [2]int
	consts  map[string][2]*ctensor // ONNX name -> constant under each binding
	acts    map[string]*act        // ONNX name -> activation
	uses    map[string]int         // ONNX name -> number of readers
	p       *plan.Plan
	w       plan.Weights
	names   map[string]bool // plan value names taken
	shapes  [2]map[string][]int
	produce map[string]int // plan value name -> index of its node
	output  string         // the graph's output (ONNX name)
}

func run(g *pb.GraphProto, opset int, input string, shape []int, free, fromOne bool) (*plan.Plan, plan.Weights, error) {
	im, err := newImporter(opset, input, shape, free, fromOne)
	if err != nil {
		return nil, nil, err
	}
	if err := im.initializers(g, input); err != nil {
		return nil, nil, err
	}
	for _, n := range g.GetNode() {
		for _, x := range n.GetInput() {
			im.uses[x]++
		}
	}
	out := g.GetOutput()[0].GetName()
	im.uses[out]++
	im.output = out
	for i, n := range g.GetNode() {
		if err := im.node(i, n); err != nil {
			return nil, nil, err
		}
	}
	return im.finish(input, out)
}

// newImporter starts a conversion whose plan takes input of the given shape,
// with a free batch dimension when free.
func newImporter(opset int, input string, shape []int, free, fromOne bool) (*importer, error) {
	im := &importer{
		opset: opset, free: free, fromOne: fromOne,
		consts: map[string][2]*ctensor{}, acts: map[string]*act{}, uses: map[string]int{},
		p: &plan.Plan{Version: plan.Version, Input: plan.Value{Name: input, Shape: append([]int{}, shape...)}},
		w: plan.Weights{}, names: map[string]bool{input: true},
		shapes:  [2]map[string][]int{{}, {}},
		produce: map[string]int{},
	}
	if free {
		im.p.Input.Shape[0] = -1
		im.batch = probe
	} else {
		im.batch = [2]int{1, 1}
	}
	in := &act{name: input}
	for b := 0; b < 2; b++ {
		s, err := im.p.InputShape(im.batch[b])
		if err != nil {
			return nil, err
		}
		in.shape[b] = s
		im.shapes[b][input] = s
	}
	im.acts[input] = in
	return im, nil
}

// initializers records g's initializers as constants.
func (im *importer) initializers(g *pb.GraphProto, input string) error {
	for _, t := range g.GetInitializer() {
		if t.GetName() == "" {
			return errors.New("onnx model has an initializer with no name")
		}
		if _, ok := im.consts[t.GetName()]; ok || t.GetName() == input {
			return fmt.Errorf("initializer %q is defined twice", t.GetName())
		}
		c, err := readTensor(t)
		if err != nil {
			return fmt.Errorf("initializer %q: %w", t.GetName(), err)
		}
		im.consts[t.GetName()] = [2]*ctensor{c, c}
	}
	return nil
}

// finish makes the activation named out the plan's output and checks the
// plan, its batch dimension and its weights.
func (im *importer) finish(input, out string) (*plan.Plan, plan.Weights, error) {
	a, ok := im.acts[out]
	if !ok {
		if _, isConst := im.consts[out]; isConst {
			return nil, nil, fmt.Errorf("onnx model output %q is a constant: it does not depend on the input", out)
		}
		return nil, nil, fmt.Errorf("onnx model output %q is not produced by any node", out)
	}
	if a.name == input {
		var err error
		if a, err = im.emit("output", plan.Identity, []string{a.name}, plan.Attrs{}, out); err != nil {
			return nil, nil, err
		}
	}
	im.p.Output = a.name
	im.prune()
	if err := im.p.Validate(); err != nil {
		return nil, nil, fmt.Errorf("import produced an invalid plan: %w", err)
	}
	for b := 0; b < 2; b++ {
		shapes, err := im.p.Shapes(im.batch[b])
		if err != nil {
			return nil, nil, err
		}
		if s := shapes[a.name]; im.free && (len(s) == 0 || s[0] != im.batch[b]) {
			return nil, nil, fmt.Errorf("onnx model output %q has shape %v for a batch of %d: the batch dimension is not kept first (export with a dynamic batch axis and keep the batch in dimension 0)", out, s, im.batch[b])
		}
	}
	if err := plan.CheckWeights(im.p, im.w); err != nil {
		return nil, nil, fmt.Errorf("import produced inconsistent weights: %w", err)
	}
	return im.p, im.w, nil
}

// prune drops weights no node reads (left over by folding).
func (im *importer) prune() {
	used := map[string]bool{}
	for _, n := range im.p.Nodes {
		for _, in := range n.Inputs {
			used[in] = true
		}
	}
	kept := im.p.Weights[:0]
	for _, v := range im.p.Weights {
		if used[v.Name] {
			kept = append(kept, v)
		} else {
			delete(im.w, v.Name)
		}
	}
	im.p.Weights = kept
}

// unique returns base, or base with a numeric suffix, as an unused plan name.
func (im *importer) unique(base string) string {
	if base == "" {
		base = "v"
	}
	name := base
	for i := 1; im.names[name]; i++ {
		name = fmt.Sprintf("%s.%d", base, i)
	}
	im.names[name] = true
	return name
}

// weight adds a secret weight holding c's values and returns its plan name.
// Every use gets its own weight, so folding may change it in place.
func (im *importer) weight(base string, c *ctensor) (string, error) {
	if len(im.p.Weights) >= plan.MaxWeights {
		return "", fmt.Errorf("model has more than %d weights", plan.MaxWeights)
	}
	for _, v := range c.data {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "", fmt.Errorf("weight %s holds a non-finite value", base)
		}
	}
	name := im.unique(base)
	shape := append([]int{}, c.shape...)
	im.p.Weights = append(im.p.Weights, plan.Value{Name: name, Shape: shape})
	im.w[name] = &tensor.Dense[float64]{Shape: shape, Data: append([]float64{}, c.data...)}
	im.shapes[0][name], im.shapes[1][name] = shape, shape
	return name, nil
}

// emit appends a plan node reading the plan values inputs, its output named
// after out, and infers its shapes. The caller records the result under the
// ONNX name it stands for.
func (im *importer) emit(nodeName string, op plan.Op, inputs []string, a plan.Attrs, out string) (*act, error) {
	if len(im.p.Nodes) >= plan.MaxNodes {
		return nil, fmt.Errorf("model has more than %d nodes", plan.MaxNodes)
	}
	n := plan.Node{Name: nodeName, Op: op, Inputs: inputs, Output: im.unique(out), Attrs: a}
	if err := n.Check(); err != nil {
		return nil, err
	}
	res := &act{name: n.Output}
	for b := 0; b < 2; b++ {
		ins := make([][]int, len(inputs))
		for i, x := range inputs {
			s, ok := im.shapes[b][x]
			if !ok {
				return nil, fmt.Errorf("internal: value %q has no shape", x)
			}
			ins[i] = s
		}
		s, err := plan.NodeShape(&n, ins)
		if err != nil {
			return nil, err
		}
		if _, err := elements(s); err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
		res.shape[b] = s
		im.shapes[b][n.Output] = s
	}
	im.produce[n.Output] = len(im.p.Nodes)
	im.p.Nodes = append(im.p.Nodes, n)
	return res, nil
}
