package onnx

import (
	"errors"
	"fmt"
	"math"
	"slices"

	pb "github.com/advancedclimatesystems/gonnx/onnx"

	"github.com/gridmpc/grid/mpcproto/plan"
)

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
}

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

// ---- folding ----

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

func (c *nodeConv) evalConstant([]*ctensor, int) (*ctensor, error) {
	return constantValue(c.attrs)
}

func (c *nodeConv) evalIdentity(ins []*ctensor, _ int) (*ctensor, error) {
	return ins[0], nil
}

func (c *nodeConv) evalNeg(ins []*ctensor, _ int) (*ctensor, error) {
	return foldBinary("Sub", &ctensor{shape: []int{}, data: []float64{0}, isInt: ins[0].isInt}, ins[0])
}

func (c *nodeConv) evalArith(ins []*ctensor, _ int) (*ctensor, error) {
	return foldBinary(c.n.GetOpType(), ins[0], ins[1])
}

func (c *nodeConv) evalCast(ins []*ctensor, _ int) (*ctensor, error) {
	to, err := c.attrs.int("to", 0)
	if err != nil {
		return nil, err
	}
	return foldCast(ins[0], int64(to))
}

// evalShape is Shape of a constant or of an activation's shape under binding b.
func (c *nodeConv) evalShape(ins []*ctensor, b int) (*ctensor, error) {
	var shape []int
	if ins[0] != nil {
		shape = ins[0].shape
	} else {
		shape = c.im.acts[c.in[0]].shape[b]
	}
	r := len(shape)
	start, err := c.attrs.int("start", 0)
	if err != nil {
		return nil, err
	}
	end, err := c.attrs.int("end", r)
	if err != nil {
		return nil, err
	}
	if start < 0 {
		start += r
	}
	if end < 0 {
		end += r
	}
	start, end = max(0, min(start, r)), max(0, min(end, r))
	if end < start {
		end = start
	}
	return intsC(shape[start:end]), nil
}

func (c *nodeConv) evalConstantOfShape(ins []*ctensor, _ int) (*ctensor, error) {
	shape, err := ins[0].ints()
	if err != nil {
		return nil, fmt.Errorf("shape: %w", err)
	}
	val := &ctensor{shape: []int{1}, data: []float64{0}}
	if a, ok := c.attrs["value"]; ok {
		if val, err = readTensor(a.GetT()); err != nil {
			return nil, fmt.Errorf("value: %w", err)
		}
		if len(val.data) != 1 {
			return nil, errors.New("value must hold one element")
		}
	}
	out, err := newC(shape, val.isInt)
	if err != nil {
		return nil, err
	}
	for i := range out.data {
		out.data[i] = val.data[0]
	}
	return out, nil
}

func (c *nodeConv) evalGather(ins []*ctensor, _ int) (*ctensor, error) {
	axis, err := c.attrs.int("axis", 0)
	if err != nil {
		return nil, err
	}
	return foldGather(ins[0], ins[1], axis)
}

// evalSqueeze folds Squeeze and Unsqueeze.
func (c *nodeConv) evalSqueeze(ins []*ctensor, _ int) (*ctensor, error) {
	axes, have, err := c.axes(ins)
	if err != nil {
		return nil, err
	}
	if c.n.GetOpType() == "Unsqueeze" {
		if !have {
			return nil, errors.New("axes are missing")
		}
		return foldUnsqueeze(ins[0], axes)
	}
	shape, err := squeezeShape(ins[0].shape, axes, have)
	if err != nil {
		return nil, err
	}
	return &ctensor{shape: shape, data: ins[0].data, isInt: ins[0].isInt}, nil
}

func (c *nodeConv) evalConcat(ins []*ctensor, _ int) (*ctensor, error) {
	axis, err := c.attrs.int("axis", 0)
	if err != nil {
		return nil, err
	}
	var parts []*ctensor
	for _, x := range ins {
		if x != nil {
			parts = append(parts, x)
		}
	}
	return foldConcat(parts, axis)
}

// evalSlice folds Slice: starts, ends and axes are attributes before opset
// 10, inputs (with steps) since.
func (c *nodeConv) evalSlice(ins []*ctensor, _ int) (*ctensor, error) {
	var lists [4][]int // starts, ends, axes, steps
	if c.im.opset < 10 {
		for i, name := range []string{"starts", "ends", "axes"} {
			var err error
			if lists[i], _, err = c.attrs.ints(name); err != nil {
				return nil, err
			}
		}
	} else {
		if err := c.need(ins, 3); err != nil {
			return nil, err
		}
		for i := 1; i < len(ins) && i < 5; i++ {
			if ins[i] == nil {
				continue
			}
			v, err := ins[i].ints()
			if err != nil {
				return nil, fmt.Errorf("slice input %d: %w", i, err)
			}
			lists[i-1] = v
		}
	}
	return foldSlice(ins[0], lists[0], lists[1], lists[2], lists[3])
}

func (c *nodeConv) evalReshape(ins []*ctensor, _ int) (*ctensor, error) {
	target, err := ins[1].ints()
	if err != nil {
		return nil, fmt.Errorf("shape: %w", err)
	}
	allowZero, err := c.attrs.int("allowzero", 0)
	if err != nil {
		return nil, err
	}
	shape, err := reshapeTarget(ins[0].shape, target, allowZero != 0)
	if err != nil {
		return nil, err
	}
	return &ctensor{shape: shape, data: ins[0].data, isInt: ins[0].isInt}, nil
}

func (c *nodeConv) evalFlatten(ins []*ctensor, _ int) (*ctensor, error) {
	axis, err := c.attrs.int("axis", 1)
	if err != nil {
		return nil, err
	}
	r := len(ins[0].shape)
	if axis < 0 {
		axis += r
	}
	if axis < 0 || axis > r {
		return nil, fmt.Errorf("axis out of range for rank %d", r)
	}
	return &ctensor{shape: []int{sizeOf(ins[0].shape[:axis]), sizeOf(ins[0].shape[axis:])}, data: ins[0].data, isInt: ins[0].isInt}, nil
}

func (c *nodeConv) evalTranspose(ins []*ctensor, _ int) (*ctensor, error) {
	perm, _, err := c.attrs.ints("perm")
	if err != nil {
		return nil, err
	}
	return foldTranspose(ins[0], perm)
}

// axes reads Squeeze/Unsqueeze's axes: an attribute before opset 13, the
// second input since.
func (c *nodeConv) axes(ins []*ctensor) ([]int, bool, error) {
	if c.im.opset < 13 {
		return c.attrs.ints("axes")
	}
	if len(ins) < 2 || ins[1] == nil {
		return nil, false, nil
	}
	v, err := ins[1].ints()
	if err != nil {
		return nil, false, fmt.Errorf("axes: %w", err)
	}
	return v, true, nil
}

// ---- conversions ----

func (c *nodeConv) alias() error {
	if err := c.inputCount(1, 1); err != nil {
		return err
	}
	a, err := c.act(0)
	if err != nil {
		return err
	}
	c.aliasTo(0, a)
	return nil
}

func (c *nodeConv) dropout() error {
	if err := c.inputCount(1, 3); err != nil {
		return err
	}
	if err := c.onlyFirstOutput(); err != nil {
		return err
	}
	if t, err := c.optConst(2, "training_mode"); err != nil {
		return err
	} else if t != nil && len(t.data) == 1 && t.data[0] != 0 {
		return errors.New("dropout in training mode is not supported (export the model in eval mode)")
	}
	a, err := c.act(0)
	if err != nil {
		return err
	}
	c.aliasTo(0, a)
	return nil
}

func (c *nodeConv) cast() error {
	to, err := c.attrs.int("to", 0)
	if err != nil {
		return err
	}
	if to != dtFloat && to != dtDouble {
		return fmt.Errorf("cast of the model's data to %s is not supported", pb.TensorProto_DataType(to))
	}
	return c.alias()
}

func (c *nodeConv) relu() error {
	if err := c.inputCount(1, 1); err != nil {
		return err
	}
	a, err := c.act(0)
	if err != nil {
		return err
	}
	return c.emit(plan.Relu, []string{a.name}, plan.Attrs{})
}

// arith converts Add, Sub, Mul and Div where at least one side is an
// activation.
func (c *nodeConv) arith() error {
	op := c.n.GetOpType()
	if err := c.inputCount(2, 2); err != nil {
		return err
	}
	_, a0 := c.input(0)
	_, a1 := c.input(1)
	if a0 != nil && a1 != nil {
		switch op {
		case "Add":
			return c.emit(plan.Add, []string{a0.name, a1.name}, plan.Attrs{})
		case "Sub":
			return c.emit(plan.Sub, []string{a0.name, a1.name}, plan.Attrs{})
		case "Mul":
			return c.emit(plan.Mul, []string{a0.name, a1.name}, plan.Attrs{})
		}
		return errors.New("division by a value that depends on the input is not supported")
	}
	constFirst := a0 == nil
	x, ki := a1, 0
	if !constFirst {
		x, ki = a0, 1
	}
	k, err := c.constant(ki, "operand")
	if err != nil {
		return err
	}
	switch {
	case op == "Add" || (op == "Sub" && !constFirst):
		if op == "Sub" {
			if k, err = foldBinary("Sub", &ctensor{shape: []int{}, data: []float64{0}}, k); err != nil {
				return err
			}
		}
		if ok, err := c.foldBias(x, k, 1-ki); ok || err != nil {
			return err
		}
		w, err := c.im.weight(c.in[ki], k)
		if err != nil {
			return err
		}
		return c.emit(plan.Add, []string{x.name, w}, plan.Attrs{})
	case op == "Sub":
		w, err := c.im.weight(c.in[ki], k)
		if err != nil {
			return err
		}
		return c.emit(plan.Sub, []string{w, x.name}, plan.Attrs{})
	case op == "Mul":
		return c.emitMulConst(x, k)
	case op == "Div" && !constFirst:
		inv := &ctensor{shape: k.shape, data: make([]float64, len(k.data))}
		for i, v := range k.data {
			if v == 0 {
				return errors.New("division by a constant holding 0")
			}
			inv.data[i] = 1 / v
		}
		return c.emitMulConst(x, inv)
	}
	return errors.New("division by a value that depends on the input is not supported")
}

func (c *nodeConv) emitMulConst(x *act, k *ctensor) error {
	for _, v := range k.data {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.New("constant factor is not finite")
		}
	}
	cst := &plan.Const{Shape: append([]int{}, k.shape...), Data: append([]float64{}, k.data...)}
	return c.emit(plan.MulConst, []string{x.name}, plan.Attrs{Const: cst})
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

// foldBias adds constant k to the bias of the MatMul or Conv producing x
// when k is constant along everything but the output channel; it reports
// whether it did.
func (c *nodeConv) foldBias(x *act, k *ctensor, xi int) (bool, error) {
	pn := c.producer(x)
	if pn == nil || (pn.Op != plan.MatMul && pn.Op != plan.Conv) {
		return false, nil
	}
	out := x.shape[0]
	ch := len(out) - 1
	if pn.Op == plan.Conv {
		ch = 1
	}
	if len(k.shape) > len(out) {
		return false, nil
	}
	n := out[ch]
	per := -1 // k's axis aligned with the channel, or -1 if broadcast
	for i, d := range k.shape {
		j := len(out) - len(k.shape) + i
		switch {
		case d == 1:
		case j == ch && d == n:
			per = i
		default:
			return false, nil
		}
	}
	bias := make([]float64, n)
	for j := range bias {
		if per >= 0 {
			bias[j] = k.data[j]
		} else {
			bias[j] = k.data[0]
		}
	}
	return true, c.addBias(pn, bias, x, xi)
}

// addBias adds bias (one value per output channel) to node pn's bias,
// creating it when absent, and makes this node's output an alias of x.
func (c *nodeConv) addBias(pn *plan.Node, bias []float64, x *act, xi int) error {
	if len(pn.Inputs) == 3 {
		t := c.im.w[pn.Inputs[2]]
		if t == nil || len(t.Data) != len(bias) {
			return fmt.Errorf("internal: bias of %s", pn.Name)
		}
		for i := range bias {
			t.Data[i] += bias[i]
		}
	} else {
		w, err := c.im.weight(pn.Name+".bias", &ctensor{shape: []int{len(bias)}, data: bias})
		if err != nil {
			return err
		}
		pn.Inputs = append(pn.Inputs, w)
	}
	c.aliasTo(xi, x)
	return nil
}

func (c *nodeConv) matmul() error {
	if err := c.inputCount(2, 2); err != nil {
		return err
	}
	k0, a0 := c.input(0)
	_, a1 := c.input(1)
	switch {
	case a0 == nil && a1 == nil:
		return errors.New("MatMul of two constants is not supported")
	case a0 != nil && a1 != nil:
		return errors.New("MatMul of two values that depend on the input is not supported")
	case k0 != nil:
		return errors.New("MatMul with a constant left operand is not supported (export x @ W, not W @ x)")
	}
	w, err := c.constant(1, "weight")
	if err != nil {
		return err
	}
	switch len(w.shape) {
	case 2:
		name, err := c.im.weight(c.in[1], w)
		if err != nil {
			return err
		}
		return c.emit(plan.MatMul, []string{a0.name, name}, plan.Attrs{})
	case 1:
		// x @ w with a 1-D w: multiply by the column [k, 1], then drop the
		// last dimension
		col := &ctensor{shape: []int{w.shape[0], 1}, data: w.data}
		name, err := c.im.weight(c.in[1], col)
		if err != nil {
			return err
		}
		mm, err := c.im.emit(c.name, plan.MatMul, []string{a0.name, name}, plan.Attrs{}, c.out()+"/col")
		if err != nil {
			return err
		}
		var target [2][]int
		for b := 0; b < 2; b++ {
			target[b] = mm.shape[b][:len(mm.shape[b])-1]
		}
		res, err := c.im.reshapeTo(c.name+"/squeeze", mm, target, c.out())
		if err != nil {
			return err
		}
		c.set(res)
		return nil
	}
	return fmt.Errorf("MatMul with a constant of rank %d is not supported (want 1 or 2)", len(w.shape))
}

func (c *nodeConv) gemm() error {
	if err := c.inputCount(2, 3); err != nil {
		return err
	}
	m := c.attrs
	alpha, err := m.float("alpha", 1)
	if err != nil {
		return err
	}
	beta, err := m.float("beta", 1)
	if err != nil {
		return err
	}
	transA, err := m.int("transA", 0)
	if err != nil {
		return err
	}
	transB, err := m.int("transB", 0)
	if err != nil {
		return err
	}
	x, err := c.act(0)
	if err != nil {
		return err
	}
	if transA != 0 {
		return errors.New("transA on the model's data is not supported")
	}
	if len(x.shape[0]) != 2 {
		return fmt.Errorf("input shape %v: Gemm wants rank 2", x.shape[0])
	}
	b, err := c.constant(1, "weight B")
	if err != nil {
		return err
	}
	if len(b.shape) != 2 {
		return fmt.Errorf("weight B has shape %v, want rank 2", b.shape)
	}
	if transB != 0 {
		if b, err = foldTranspose(b, nil); err != nil {
			return err
		}
	}
	w := &ctensor{shape: b.shape, data: make([]float64, len(b.data))}
	for i, v := range b.data {
		w.data[i] = alpha * v
	}
	name, err := c.im.weight(c.in[1], w)
	if err != nil {
		return err
	}
	inputs := []string{x.name, name}
	bias, err := c.optConst(2, "bias C")
	if err != nil {
		return err
	}
	if bias != nil {
		n := w.shape[1]
		ok := len(bias.shape) <= 2
		for i, d := range bias.shape {
			last := i == len(bias.shape)-1
			if d != 1 && !(last && d == n) {
				ok = false
			}
		}
		if !ok {
			return fmt.Errorf("bias C of shape %v is not a per-column bias for %d columns", bias.shape, n)
		}
		v := &ctensor{shape: []int{n}, data: make([]float64, n)}
		for j := range v.data {
			if len(bias.data) == n {
				v.data[j] = beta * bias.data[j]
			} else {
				v.data[j] = beta * bias.data[0]
			}
		}
		bn, err := c.im.weight(c.in[2], v)
		if err != nil {
			return err
		}
		inputs = append(inputs, bn)
	}
	return c.emit(plan.MatMul, inputs, plan.Attrs{})
}

// window reads the attributes shared by Conv and the pools and resolves
// auto_pad against the input's spatial shape.
func (c *nodeConv) window(x *act, kernel []int) (plan.Attrs, error) {
	m := c.attrs
	var a plan.Attrs
	var err error
	get := func(name string, def []int) ([]int, error) {
		v, ok, err := m.ints(name)
		if err != nil {
			return nil, err
		}
		if !ok {
			return def, nil
		}
		if len(v) != len(def) {
			return nil, fmt.Errorf("%s must have %d values, got %d", name, len(def), len(v))
		}
		return v, nil
	}
	if a.Strides, err = get("strides", []int{1, 1}); err != nil {
		return a, err
	}
	if a.Dilations, err = get("dilations", []int{1, 1}); err != nil {
		return a, err
	}
	if a.Pads, err = get("pads", []int{0, 0, 0, 0}); err != nil {
		return a, err
	}
	autoPad, err := m.str("auto_pad", "NOTSET")
	if err != nil {
		return a, err
	}
	switch autoPad {
	case "NOTSET", "":
	case "VALID":
		a.Pads = []int{0, 0, 0, 0}
	case "SAME_UPPER", "SAME_LOWER":
		for i := 0; i < 2; i++ {
			in, s := x.shape[0][2+i], a.Strides[i]
			if s <= 0 {
				return a, fmt.Errorf("strides %v must be positive", a.Strides)
			}
			ext := a.Dilations[i]*(kernel[i]-1) + 1
			total := max(((in+s-1)/s-1)*s+ext-in, 0)
			lo := total / 2
			if autoPad == "SAME_LOWER" {
				lo = total - total/2
			}
			a.Pads[i], a.Pads[2+i] = lo, total-lo
		}
	default:
		return a, fmt.Errorf("auto_pad %q is not supported", autoPad)
	}
	return a, nil
}

func (c *nodeConv) conv() error {
	if err := c.inputCount(2, 3); err != nil {
		return err
	}
	x, err := c.act(0)
	if err != nil {
		return err
	}
	if len(x.shape[0]) != 4 {
		return fmt.Errorf("input shape %v: only 2-D convolutions (NCHW) are supported", x.shape[0])
	}
	w, err := c.constant(1, "weight")
	if err != nil {
		return err
	}
	if len(w.shape) != 4 {
		return fmt.Errorf("weight shape %v: want rank 4", w.shape)
	}
	if k, ok, err := c.attrs.ints("kernel_shape"); err != nil {
		return err
	} else if ok && (len(k) != 2 || k[0] != w.shape[2] || k[1] != w.shape[3]) {
		return fmt.Errorf("kernel_shape %v does not match weight shape %v", k, w.shape)
	}
	a, err := c.window(x, w.shape[2:])
	if err != nil {
		return err
	}
	group, err := c.attrs.int("group", 1)
	if err != nil {
		return err
	}
	if group < 1 {
		return fmt.Errorf("group %d must be positive", group)
	}
	a.Group = group
	wn, err := c.im.weight(c.in[1], w)
	if err != nil {
		return err
	}
	inputs := []string{x.name, wn}
	b, err := c.optConst(2, "bias")
	if err != nil {
		return err
	}
	if b != nil {
		bn, err := c.im.weight(c.in[2], b)
		if err != nil {
			return err
		}
		inputs = append(inputs, bn)
	}
	return c.emit(plan.Conv, inputs, a)
}

func (c *nodeConv) pool() error {
	op := c.n.GetOpType()
	if err := c.inputCount(1, 1); err != nil {
		return err
	}
	if err := c.onlyFirstOutput(); err != nil {
		return err
	}
	x, err := c.act(0)
	if err != nil {
		return err
	}
	if len(x.shape[0]) != 4 {
		return fmt.Errorf("input shape %v: only 2-D pooling (NCHW) is supported", x.shape[0])
	}
	kernel, ok, err := c.attrs.ints("kernel_shape")
	if err != nil {
		return err
	}
	if !ok || len(kernel) != 2 {
		return fmt.Errorf("kernel_shape must have 2 values, got %v", kernel)
	}
	a, err := c.window(x, kernel)
	if err != nil {
		return err
	}
	a.Kernel = kernel
	ceil, err := c.attrs.int("ceil_mode", 0)
	if err != nil {
		return err
	}
	a.CeilMode = ceil != 0
	if op == "MaxPool" {
		if so, err := c.attrs.int("storage_order", 0); err != nil || so != 0 {
			if err == nil {
				err = errors.New("storage_order 1 is not supported")
			}
			return err
		}
		return c.emit(plan.MaxPool, []string{x.name}, a)
	}
	cip, err := c.attrs.int("count_include_pad", 0)
	if err != nil {
		return err
	}
	a.CountIncludePad = cip != 0
	return c.emit(plan.AveragePool, []string{x.name}, a)
}

func (c *nodeConv) gap() error {
	if err := c.inputCount(1, 1); err != nil {
		return err
	}
	x, err := c.act(0)
	if err != nil {
		return err
	}
	if len(x.shape[0]) != 4 {
		return fmt.Errorf("input shape %v: only NCHW inputs are supported", x.shape[0])
	}
	return c.emit(plan.GlobalAveragePool, []string{x.name}, plan.Attrs{})
}

func (c *nodeConv) pad() error {
	mode, err := c.attrs.str("mode", "constant")
	if err != nil {
		return err
	}
	if mode != "constant" {
		return fmt.Errorf("pad mode %q is not supported (only constant)", mode)
	}
	x, err := c.act(0)
	if err != nil {
		return err
	}
	r := len(x.shape[0])
	var pads []int
	value := 0.0
	if c.im.opset < 11 {
		if err := c.inputCount(1, 1); err != nil {
			return err
		}
		var ok bool
		if pads, ok, err = c.attrs.ints("pads"); err != nil {
			return err
		} else if !ok {
			return errors.New("pads are missing")
		}
		if value, err = c.attrs.float("value", 0); err != nil {
			return err
		}
	} else {
		if err := c.inputCount(2, 4); err != nil {
			return err
		}
		pc, err := c.constant(1, "pads")
		if err != nil {
			return err
		}
		if pads, err = pc.ints(); err != nil {
			return fmt.Errorf("pads: %w", err)
		}
		v, err := c.optConst(2, "constant_value")
		if err != nil {
			return err
		}
		if v != nil {
			if len(v.data) != 1 {
				return fmt.Errorf("constant_value has %d values, want 1", len(v.data))
			}
			value = v.data[0]
		}
		ax, err := c.optConst(3, "axes")
		if err != nil {
			return err
		}
		if ax != nil {
			axes, err := ax.ints()
			if err != nil {
				return fmt.Errorf("axes: %w", err)
			}
			if len(pads) != 2*len(axes) {
				return fmt.Errorf("pads %v: want 2 values per axis of %v", pads, axes)
			}
			full := make([]int, 2*r)
			for i, a := range axes {
				ai, err := normAxis(a, r)
				if err != nil {
					return err
				}
				full[ai], full[r+ai] = pads[i], pads[len(axes)+i]
			}
			pads = full
		}
	}
	if len(pads) != 2*r {
		return fmt.Errorf("pads %v: want %d values for input shape %v", pads, 2*r, x.shape[0])
	}
	zero := true
	for _, p := range pads {
		if p < 0 {
			return fmt.Errorf("pads %v: negative pads (cropping) are not supported", pads)
		}
		zero = zero && p == 0
	}
	if c.im.free && (pads[0] != 0 || pads[r] != 0) {
		return fmt.Errorf("pads %v pad the batch dimension", pads)
	}
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return errors.New("pad value is not finite")
	}
	if zero {
		c.aliasTo(0, x)
		return nil
	}
	return c.emit(plan.Pad, []string{x.name}, plan.Attrs{Pads: pads, Value: value})
}

func (c *nodeConv) flatten() error {
	if err := c.inputCount(1, 1); err != nil {
		return err
	}
	x, err := c.act(0)
	if err != nil {
		return err
	}
	axis, err := c.attrs.int("axis", 1)
	if err != nil {
		return err
	}
	return c.emit(plan.Flatten, []string{x.name}, plan.Attrs{Axis: axis})
}

func (c *nodeConv) reshape() error {
	if err := c.inputCount(2, 2); err != nil {
		return err
	}
	x, err := c.act(0)
	if err != nil {
		return err
	}
	k, _ := c.input(1)
	if k == nil {
		return errors.New("shape must be a constant (or fold to one), it depends on the model's input")
	}
	allowZero, err := c.attrs.int("allowzero", 0)
	if err != nil {
		return err
	}
	var target [2][]int
	for b := 0; b < 2; b++ {
		t, err := k[b].ints()
		if err != nil {
			return fmt.Errorf("shape: %w", err)
		}
		if c.im.fromOne && len(t) > 0 && t[0] == 1 && x.shape[b][0] == c.im.batch[b] {
			t[0] = c.im.batch[b] // a batch of 1 fixed at export
		}
		if target[b], err = reshapeTarget(x.shape[b], t, allowZero != 0); err != nil {
			return err
		}
	}
	return c.reshapeOut(x, target)
}

func (c *nodeConv) squeeze() error {
	op := c.n.GetOpType()
	if err := c.inputCount(1, 2); err != nil {
		return err
	}
	x, err := c.act(0)
	if err != nil {
		return err
	}
	if _, a := c.input(1); a != nil {
		return errors.New("axes must be a constant, they depend on the model's input")
	}
	var ins []*ctensor
	for i := range c.in {
		k, _ := c.input(i)
		if k != nil {
			if !k[0].equal(k[1]) {
				return errors.New("axes depend on the batch size")
			}
			ins = append(ins, k[0])
		} else {
			ins = append(ins, nil)
		}
	}
	axes, have, err := c.axes(ins)
	if err != nil {
		return err
	}
	var target [2][]int
	for b := 0; b < 2; b++ {
		if op == "Unsqueeze" {
			if !have {
				return errors.New("axes are missing")
			}
			target[b], err = unsqueezeShape(x.shape[b], axes)
		} else {
			target[b], err = squeezeShape(x.shape[b], axes, have)
		}
		if err != nil {
			return err
		}
	}
	return c.reshapeOut(x, target)
}

// reshapeOut makes the node's output x reshaped to target[b] under each
// probe binding: x itself when the shape does not change, else a Reshape.
func (c *nodeConv) reshapeOut(x *act, target [2][]int) error {
	res, err := c.im.reshapeTo(c.name, x, target, c.out())
	if err != nil {
		return err
	}
	if res == x {
		c.aliasTo(0, x)
	} else {
		c.set(res)
	}
	return nil
}

// reshapeTo emits a Reshape of x whose output has shape target[b] under each
// probe binding; elements that follow the batch are written as 0 (copy the
// input's dimension) or -1 (inferred).
func (im *importer) reshapeTo(nodeName string, x *act, target [2][]int, out string) (*act, error) {
	if len(target[0]) != len(target[1]) {
		return nil, fmt.Errorf("output rank depends on the batch size (%v and %v)", target[0], target[1])
	}
	shape := make([]int, len(target[0]))
	inferred := false
	for i := range shape {
		t0, t1 := target[0][i], target[1][i]
		switch {
		case t0 == t1 && !(i < len(x.shape[0]) && x.shape[0][i] != x.shape[1][i] && t0 == x.shape[0][i]):
			shape[i] = t0
		case i < len(x.shape[0]) && t0 == x.shape[0][i] && t1 == x.shape[1][i]:
			shape[i] = 0
		case !inferred:
			shape[i] = -1
			inferred = true
		default:
			return nil, fmt.Errorf("reshape to %v (batch %d) and %v (batch %d) depends on the batch size in a way a plan cannot express",
				target[0], im.batch[0], target[1], im.batch[1])
		}
	}
	if slices.Equal(x.shape[0], target[0]) && slices.Equal(x.shape[1], target[1]) {
		return x, nil
	}
	res, err := im.emit(nodeName, plan.Reshape, []string{x.name}, plan.Attrs{Shape: shape}, out)
	if err != nil {
		return nil, err
	}
	for b := 0; b < 2; b++ {
		if !slices.Equal(res.shape[b], target[b]) {
			return nil, fmt.Errorf("reshape to %v cannot be expressed with a free batch dimension", target[b])
		}
	}
	return res, nil
}

func (c *nodeConv) batchnorm() error {
	if err := c.inputCount(5, 5); err != nil {
		return err
	}
	if err := c.onlyFirstOutput(); err != nil {
		return err
	}
	if tm, err := c.attrs.int("training_mode", 0); err != nil {
		return err
	} else if tm != 0 {
		return errors.New("training mode is not supported (export the model in eval mode)")
	}
	if sp, err := c.attrs.int("spatial", 1); err != nil {
		return err
	} else if sp != 1 {
		return errors.New("spatial=0 is not supported")
	}
	eps, err := c.attrs.float("epsilon", 1e-5)
	if err != nil {
		return err
	}
	x, err := c.act(0)
	if err != nil {
		return err
	}
	xs := x.shape[0]
	if len(xs) < 2 {
		return fmt.Errorf("input shape %v: want rank >= 2", xs)
	}
	ch := xs[1]
	var p [4]*ctensor
	for i, what := range []string{"scale", "bias", "mean", "var"} {
		if p[i], err = c.constant(1+i, what); err != nil {
			return err
		}
		if len(p[i].data) != ch {
			return fmt.Errorf("%s has shape %v, want [%d] for input shape %v", what, p[i].shape, ch, xs)
		}
	}
	s := make([]float64, ch) // y = x*s + t
	t := make([]float64, ch)
	for j := 0; j < ch; j++ {
		v := p[3].data[j] + eps
		if !(v > 0) {
			return fmt.Errorf("variance + epsilon is %v for channel %d", v, j)
		}
		s[j] = p[0].data[j] / math.Sqrt(v)
		t[j] = p[1].data[j] - p[2].data[j]*s[j]
	}
	// fold into the producing Conv or MatMul
	if pn := c.producer(x); pn != nil && (pn.Op == plan.Conv || pn.Op == plan.MatMul) {
		wt := c.im.w[pn.Inputs[1]]
		switch {
		case pn.Op == plan.Conv && wt != nil && wt.Shape[0] == ch:
			per := len(wt.Data) / ch
			for m := 0; m < ch; m++ {
				for i := 0; i < per; i++ {
					wt.Data[m*per+i] *= s[m]
				}
			}
			return c.foldBNBias(pn, s, t, x)
		case pn.Op == plan.MatMul && wt != nil && len(xs) == 2 && len(wt.Shape) == 2 && wt.Shape[1] == ch:
			for k := 0; k < wt.Shape[0]; k++ {
				for j := 0; j < ch; j++ {
					wt.Data[k*ch+j] *= s[j]
				}
			}
			return c.foldBNBias(pn, s, t, x)
		}
	}
	// standalone: x*s (public) + t (secret), along axis 1
	shape := make([]int, len(xs)-1)
	shape[0] = ch
	for i := 1; i < len(shape); i++ {
		shape[i] = 1
	}
	scaled, err := c.im.emit(c.name, plan.MulConst, []string{x.name},
		plan.Attrs{Const: &plan.Const{Shape: shape, Data: s}}, c.out()+"/scaled")
	if err != nil {
		return err
	}
	tn, err := c.im.weight(c.name+".shift", &ctensor{shape: shape, data: t})
	if err != nil {
		return err
	}
	res, err := c.im.emit(c.name+"/shift", plan.Add, []string{scaled.name, tn}, plan.Attrs{}, c.out())
	if err != nil {
		return err
	}
	c.set(res)
	return nil
}

// foldBNBias turns pn's bias b into b*s + t (t alone when pn had none).
func (c *nodeConv) foldBNBias(pn *plan.Node, s, t []float64, x *act) error {
	if len(pn.Inputs) == 3 {
		b := c.im.w[pn.Inputs[2]]
		if b == nil || len(b.Data) != len(s) {
			return fmt.Errorf("internal: bias of %s", pn.Name)
		}
		for j := range b.Data {
			b.Data[j] *= s[j]
		}
	}
	return c.addBias(pn, t, x, 0)
}
