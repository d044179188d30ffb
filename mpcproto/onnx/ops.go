package onnx

import (
	"fmt"

	pb "github.com/advancedclimatesystems/gonnx/onnx"

	"github.com/gridmpc/grid/mpcproto/plan"
)

// This file holds the conversion of one ONNX node: the tables of folders
// and converters by op, and what they share (reading inputs, emitting plan
// nodes, folding over constants). The ops themselves are in files by family:
// constant.go, elementwise.go, linear.go, conv.go and shape.go.

// nodeConv is the conversion of one ONNX node: the node, its attributes and
// inputs, and the importer whose state it reads and extends.
type nodeConv struct {
	im    *importer
	n     *pb.NodeProto
	name  string // the node's name, or op_index when it has none
	attrs attrs
	in    []string // ONNX input names; "" for an absent optional input
}

// node converts one ONNX node: folds it, rewrites it into plan nodes, or
// refuses it.
func (im *importer) node(i int, n *pb.NodeProto) error {
	op := n.GetOpType()
	name := n.GetName()
	if name == "" {
		name = fmt.Sprintf("%s_%d", op, i)
	}
	if d := n.GetDomain(); d != "" && d != "ai.onnx" {
		return fmt.Errorf("unsupported op %s of domain %s (node %s)", op, d, name)
	}
	if len(n.GetOutput()) == 0 {
		return fmt.Errorf("node %s (%s): has no output", name, op)
	}
	for _, o := range n.GetOutput() {
		if o == "" {
			continue
		}
		if _, ok := im.consts[o]; ok {
			return fmt.Errorf("node %s (%s): output %q is defined twice", name, op, o)
		}
		if _, ok := im.acts[o]; ok {
			return fmt.Errorf("node %s (%s): output %q is defined twice", name, op, o)
		}
	}
	m, err := nodeAttrs(n)
	if err != nil {
		return fmt.Errorf("node %s (%s): %w", name, op, err)
	}
	c := &nodeConv{im: im, n: n, name: name, attrs: m, in: n.GetInput()}
	allConst := true
	for _, x := range c.in {
		if x == "" {
			continue
		}
		_, isConst := im.consts[x]
		_, isAct := im.acts[x]
		if !isConst && !isAct {
			return fmt.Errorf("node %s (%s): input %q is not defined (no initializer, Constant or earlier node produces it)", name, op, x)
		}
		if !isConst {
			allConst = false
		}
	}
	if f, ok := folders[op]; ok && (allConst || op == "Shape") {
		err = c.fold(f)
	} else if finalOnly[op] && !c.isFinal() {
		return fmt.Errorf("unsupported op %s (node %s): only as the model's last op (the client applies it)", op, name)
	} else {
		conv, ok := converters[op]
		if !ok {
			return fmt.Errorf("unsupported op %s (node %s)", op, name)
		}
		err = conv(c)
	}
	if err != nil {
		return fmt.Errorf("node %s (%s): %w", name, op, err)
	}
	return nil
}

// A folder evaluates an op over constants under one probe binding: ins holds
// the node's inputs (nil where an input is absent or, for Shape, an
// activation) and arity is how many leading inputs must be present.
type folder struct {
	arity int
	eval  func(c *nodeConv, ins []*ctensor, b int) (*ctensor, error)
}

// folders lists the ops the importer evaluates at import when all their
// inputs are constants (Shape also when its input is an activation).
var folders = map[string]folder{
	"Constant":        {0, (*nodeConv).evalConstant},
	"ConstantOfShape": {1, (*nodeConv).evalConstantOfShape},
	"Identity":        {1, (*nodeConv).evalIdentity},
	"Dropout":         {1, (*nodeConv).evalIdentity},
	"Cast":            {1, (*nodeConv).evalCast},
	"Shape":           {1, (*nodeConv).evalShape},
	"Gather":          {2, (*nodeConv).evalGather},
	"Unsqueeze":       {1, (*nodeConv).evalSqueeze},
	"Squeeze":         {1, (*nodeConv).evalSqueeze},
	"Concat":          {0, (*nodeConv).evalConcat},
	"Slice":           {1, (*nodeConv).evalSlice},
	"Reshape":         {2, (*nodeConv).evalReshape},
	"Transpose":       {1, (*nodeConv).evalTranspose},
	"Flatten":         {1, (*nodeConv).evalFlatten},
	"Add":             {2, (*nodeConv).evalArith},
	"Sub":             {2, (*nodeConv).evalArith},
	"Mul":             {2, (*nodeConv).evalArith},
	"Div":             {2, (*nodeConv).evalArith},
	"Neg":             {1, (*nodeConv).evalNeg},
}

// converters rewrite ONNX ops over activations into plan nodes.
var converters = map[string]func(*nodeConv) error{
	"Identity":           (*nodeConv).alias,
	"Dropout":            (*nodeConv).dropout,
	"Cast":               (*nodeConv).cast,
	"Relu":               (*nodeConv).relu,
	"Add":                (*nodeConv).arith,
	"Sub":                (*nodeConv).arith,
	"Mul":                (*nodeConv).arith,
	"Div":                (*nodeConv).arith,
	"MatMul":             (*nodeConv).matmul,
	"Gemm":               (*nodeConv).gemm,
	"Conv":               (*nodeConv).conv,
	"MaxPool":            (*nodeConv).pool,
	"AveragePool":        (*nodeConv).pool,
	"GlobalAveragePool":  (*nodeConv).gap,
	"Pad":                (*nodeConv).pad,
	"Flatten":            (*nodeConv).flatten,
	"Reshape":            (*nodeConv).reshape,
	"Squeeze":            (*nodeConv).squeeze,
	"Unsqueeze":          (*nodeConv).squeeze,
	"BatchNormalization": (*nodeConv).batchnorm,
	"Concat":             (*nodeConv).concat,
	"Transpose":          (*nodeConv).transpose,
	"Slice":              (*nodeConv).slice,
	"Split":              (*nodeConv).split,
	"Gather":             (*nodeConv).gather,
	"ReduceSum":          (*nodeConv).reduce,
	"ReduceMean":         (*nodeConv).reduce,
	"Clip":               (*nodeConv).clip,
	"LeakyRelu":          (*nodeConv).leakyRelu,
	"PRelu":              (*nodeConv).prelu,
	"HardSigmoid":        (*nodeConv).hardSigmoid,
	"HardSwish":          (*nodeConv).unary,
	"Sigmoid":            (*nodeConv).unary,
	"Softmax":            (*nodeConv).softmax,
	"LogSoftmax":         (*nodeConv).softmax,
}

// finalOnly are the ops imported only as the model's last op, which the
// client applies after reconstructing the output (plan.Final).
var finalOnly = map[string]bool{"Softmax": true, "LogSoftmax": true}

// input returns input i as a constant (under both bindings) or an
// activation; both nil when the optional input is absent.
func (c *nodeConv) input(i int) (*[2]*ctensor, *act) {
	if i >= len(c.in) || c.in[i] == "" {
		return nil, nil
	}
	if k, ok := c.im.consts[c.in[i]]; ok {
		return &k, nil
	}
	return nil, c.im.acts[c.in[i]]
}

// act returns input i, which must be an activation.
func (c *nodeConv) act(i int) (*act, error) {
	k, a := c.input(i)
	if a == nil {
		if k != nil {
			return nil, fmt.Errorf("input %d (%q) is a constant where the input's data is expected", i, c.in[i])
		}
		return nil, fmt.Errorf("input %d is missing", i)
	}
	return a, nil
}

// constant returns input i, which must be a constant that does not depend on
// the batch size.
func (c *nodeConv) constant(i int, what string) (*ctensor, error) {
	k, a := c.input(i)
	if a != nil {
		return nil, fmt.Errorf("%s (input %q) must be a constant, it depends on the model's input", what, c.in[i])
	}
	if k == nil {
		return nil, fmt.Errorf("%s is missing", what)
	}
	if !k[0].equal(k[1]) {
		return nil, fmt.Errorf("%s (input %q) depends on the batch size", what, c.in[i])
	}
	return k[0], nil
}

// optConst is constant for an optional input: nil when absent.
func (c *nodeConv) optConst(i int, what string) (*ctensor, error) {
	if i >= len(c.in) || c.in[i] == "" {
		return nil, nil
	}
	return c.constant(i, what)
}

func (c *nodeConv) inputCount(lo, hi int) error {
	n := len(c.in)
	for n > 0 && c.in[n-1] == "" {
		n--
	}
	if n < lo || n > hi {
		if lo == hi {
			return fmt.Errorf("takes %d inputs, got %d", lo, n)
		}
		return fmt.Errorf("takes %d to %d inputs, got %d", lo, hi, n)
	}
	for i := 0; i < lo; i++ {
		if c.in[i] == "" {
			return fmt.Errorf("input %d is missing", i)
		}
	}
	return nil
}

// data checks that the node has lo to hi inputs and returns input 0, the
// data it transforms, which must be an activation.
func (c *nodeConv) data(lo, hi int) (*act, error) {
	if err := c.inputCount(lo, hi); err != nil {
		return nil, err
	}
	return c.act(0)
}

// onlyFirstOutput refuses a node whose extra outputs (masks, indices,
// running statistics) are read.
func (c *nodeConv) onlyFirstOutput() error {
	for _, o := range c.n.GetOutput()[1:] {
		if o != "" && c.im.uses[o] > 0 {
			return fmt.Errorf("output %q is used; only the first output is supported", o)
		}
	}
	return nil
}

func (c *nodeConv) out() string { return c.n.GetOutput()[0] }

func (c *nodeConv) set(a *act) { c.im.acts[c.out()] = a }

func (c *nodeConv) emit(op plan.Op, inputs []string, a plan.Attrs) error {
	res, err := c.im.emit(c.name, op, inputs, a, c.out())
	if err != nil {
		return err
	}
	c.set(res)
	return nil
}

// emitWeighted emits op over x and the secret weights of w (input 1) and of
// the optional bias (input 2, named what), after bias, when not nil, has
// rewritten it.
func (c *nodeConv) emitWeighted(op plan.Op, x *act, w *ctensor, what string, bias func(*ctensor) (*ctensor, error), a plan.Attrs) error {
	wn, err := c.im.weight(c.in[1], w)
	if err != nil {
		return err
	}
	inputs := []string{x.name, wn}
	b, err := c.optConst(2, what)
	if err != nil {
		return err
	}
	if b != nil {
		if bias != nil {
			if b, err = bias(b); err != nil {
				return err
			}
		}
		bn, err := c.im.weight(c.in[2], b)
		if err != nil {
			return err
		}
		inputs = append(inputs, bn)
	}
	return c.emit(op, inputs, a)
}

// producer returns the plan node that produced activation a when the read
// in this node is a's only read (through any alias), so that the node may be
// changed in place.
func (c *nodeConv) producer(a *act) *plan.Node {
	idx, ok := c.im.produce[a.name]
	if !ok {
		return nil
	}
	reads := 0
	for name, b := range c.im.acts {
		if b == a {
			reads += c.im.uses[name]
		}
	}
	if reads != 1 {
		return nil
	}
	return &c.im.p.Nodes[idx]
}

// aliasTo makes this node's output the activation a read from input i: the
// read moves to the readers of the output.
func (c *nodeConv) aliasTo(i int, a *act) {
	c.im.uses[c.in[i]]--
	c.set(a)
}

// fold evaluates the node with f under each probe binding and records the
// result as a constant.
func (c *nodeConv) fold(f folder) error {
	if err := c.onlyFirstOutput(); err != nil {
		return err
	}
	var res [2]*ctensor
	for b := 0; b < 2; b++ {
		ins := make([]*ctensor, len(c.in))
		for i, x := range c.in {
			if k, ok := c.im.consts[x]; ok {
				ins[i] = k[b]
			}
		}
		err := c.need(ins, f.arity)
		if err != nil {
			return err
		}
		if res[b], err = f.eval(c, ins, b); err != nil {
			return err
		}
	}
	c.im.consts[c.out()] = res
	return nil
}

// need checks that the first k of the folded inputs ins are present (Shape
// reads only its input's shape, so an activation there will do).
func (c *nodeConv) need(ins []*ctensor, k int) error {
	if len(ins) < k {
		return fmt.Errorf("takes %d inputs, got %d", k, len(ins))
	}
	for i := 0; i < k; i++ {
		if c.in[i] == "" || (ins[i] == nil && c.n.GetOpType() != "Shape") {
			return fmt.Errorf("input %d is missing", i)
		}
	}
	return nil
}
