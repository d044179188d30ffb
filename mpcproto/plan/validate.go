package plan

import (
	"errors"
	"fmt"
	"math"
)

// Limits on what a plan may describe. They bound the memory a plan from the
// network can make a party allocate before any weight arrives.
const (
	// MaxRank is the largest rank of any value.
	MaxRank = 8
	// MaxDim is the largest single dimension.
	MaxDim = 1 << 24
	// MaxElements is the largest number of elements of any value.
	MaxElements = 1 << 28
	// MaxNodes is the largest number of nodes in a plan.
	MaxNodes = 1 << 12
	// MaxWeights is the largest number of weights in a plan.
	MaxWeights = 1 << 12
	// MaxConcat is the largest number of inputs of a Concat.
	MaxConcat = 1 << 10
)

// arity is the number of inputs each op takes: [min, max].
var arity = map[Op][2]int{
	MatMul:            {2, 3},
	Conv:              {2, 3},
	Add:               {2, 2},
	Sub:               {2, 2},
	Mul:               {2, 2},
	MulConst:          {1, 1},
	Relu:              {1, 1},
	MaxPool:           {1, 1},
	AveragePool:       {1, 1},
	GlobalAveragePool: {1, 1},
	Pad:               {1, 1},
	Flatten:           {1, 1},
	Reshape:           {1, 1},
	Identity:          {1, 1},
	Concat:            {1, MaxConcat},
	Transpose:         {1, 1},
	Slice:             {1, 1},
	Gather:            {1, 1},
	ReduceSum:         {1, 1},
	Clip:              {1, 1},
	LeakyRelu:         {1, 1},
	PRelu:             {1, 1},
	HardSigmoid:       {1, 1},
	HardSwish:         {1, 1},
	Sigmoid:           {1, 1},
	SiLU:              {1, 1},
}

// Known reports whether op is a canonical op.
func Known(op Op) bool {
	_, ok := arity[op]
	return ok
}

// NodeError is an error about one node of a plan; its message names the node
// and its op: "node /Conv_3 (Conv): pads must have 4 values, got 2".
type NodeError struct {
	Index int    // position of the node in Plan.Nodes
	Name  string // the node's name, may be empty
	Op    Op
	Err   error
}

// Error names the node (or its index when it has no name) and its op.
func (e *NodeError) Error() string {
	name := e.Name
	if name == "" {
		name = fmt.Sprintf("#%d", e.Index)
	}
	return fmt.Sprintf("node %s (%s): %v", name, e.Op, e.Err)
}

// Unwrap returns the underlying error.
func (e *NodeError) Unwrap() error { return e.Err }

func nodeErr(i int, n *Node, format string, args ...any) error {
	return &NodeError{Index: i, Name: n.Name, Op: n.Op, Err: fmt.Errorf(format, args...)}
}

// Spatial returns the strides, pads (h_begin, w_begin, h_end, w_end) and
// dilations of a Conv or pooling node with the ONNX defaults filled in: an
// empty Strides or Dilations means 1s, an empty Pads means 0s. Call it on a
// validated plan; on malformed attrs it returns the defaults.
func (a Attrs) Spatial() (strides [2]int, pads [4]int, dilations [2]int) {
	strides, dilations = [2]int{1, 1}, [2]int{1, 1}
	if len(a.Strides) == 2 {
		copy(strides[:], a.Strides)
	}
	if len(a.Pads) == 4 {
		copy(pads[:], a.Pads)
	}
	if len(a.Dilations) == 2 {
		copy(dilations[:], a.Dilations)
	}
	return strides, pads, dilations
}

// Groups returns Conv's group count, 1 when Group is unset.
func (a Attrs) Groups() int {
	if a.Group <= 0 {
		return 1
	}
	return a.Group
}

// Validate checks that the plan is well formed: a known version, an input
// whose only free dimension is a leading -1, unique value names, known ops
// with the right number of inputs, inputs defined before use, attrs well
// formed for each op, and one defined output. Errors about a node name it
// (see NodeError). Shape agreement between values is checked by Shapes.
func (p *Plan) Validate() error {
	if p == nil {
		return errors.New("plan is nil")
	}
	if p.Version != Version {
		return fmt.Errorf("unsupported plan version %d (want %d)", p.Version, Version)
	}
	if p.Input.Name == "" {
		return errors.New("plan input has no name")
	}
	if err := checkShape(p.Input.Shape, true); err != nil {
		return fmt.Errorf("plan input %q: %w", p.Input.Name, err)
	}
	if len(p.Input.Shape) == 0 {
		return fmt.Errorf("plan input %q: shape is empty", p.Input.Name)
	}
	if len(p.Weights) > MaxWeights {
		return fmt.Errorf("plan has %d weights, more than %d", len(p.Weights), MaxWeights)
	}
	if len(p.Nodes) > MaxNodes {
		return fmt.Errorf("plan has %d nodes, more than %d", len(p.Nodes), MaxNodes)
	}
	defined := map[string]bool{p.Input.Name: true}
	for _, w := range p.Weights {
		if w.Name == "" {
			return errors.New("plan has a weight with no name")
		}
		if defined[w.Name] {
			return fmt.Errorf("weight %q: name already used", w.Name)
		}
		if err := checkShape(w.Shape, false); err != nil {
			return fmt.Errorf("weight %q: %w", w.Name, err)
		}
		defined[w.Name] = true
	}
	for i := range p.Nodes {
		n := &p.Nodes[i]
		if err := n.Check(); err != nil {
			return &NodeError{Index: i, Name: n.Name, Op: n.Op, Err: err}
		}
		for _, in := range n.Inputs {
			if !defined[in] {
				return nodeErr(i, n, "input %q is not defined before use", in)
			}
		}
		if defined[n.Output] {
			return nodeErr(i, n, "output %q: name already used", n.Output)
		}
		defined[n.Output] = true
	}
	if p.Output == "" {
		return errors.New("plan has no output")
	}
	if err := p.Final.check(); err != nil {
		return err
	}
	if !defined[p.Output] {
		return fmt.Errorf("plan output %q is not defined", p.Output)
	}
	return nil
}

// checkShape checks a declared shape: rank, positive dims (a leading -1 when
// free is set) and element count.
func checkShape(shape []int, free bool) error {
	if len(shape) > MaxRank {
		return fmt.Errorf("rank %d exceeds %d", len(shape), MaxRank)
	}
	n := 1
	for i, d := range shape {
		if d == -1 && i == 0 && free {
			continue
		}
		if d <= 0 || d > MaxDim {
			return fmt.Errorf("shape %v: dimension %d is %d", shape, i, d)
		}
		n *= d
		if n > MaxElements {
			return fmt.Errorf("shape %v holds more than %d elements", shape, MaxElements)
		}
	}
	return nil
}

func checkInts(name string, v []int, want, min int) error {
	if len(v) == 0 {
		return nil
	}
	if len(v) != want {
		return fmt.Errorf("%s must have %d values, got %d", name, want, len(v))
	}
	for _, x := range v {
		if x < min || x > MaxDim {
			return fmt.Errorf("%s %v: value %d out of range", name, v, x)
		}
	}
	return nil
}

func checkAttrs(n *Node) error {
	a := &n.Attrs
	switch n.Op {
	case Conv:
		if a.Group < 0 {
			return fmt.Errorf("group must be positive, got %d", a.Group)
		}
		return checkWindow(a, false)
	case MaxPool, AveragePool:
		if len(a.Kernel) == 0 {
			return errors.New("kernel must have 2 values, got 0")
		}
		if err := checkInts("kernel", a.Kernel, 2, 1); err != nil {
			return err
		}
		if err := checkWindow(a, true); err != nil {
			return err
		}
	case MulConst, PRelu:
		if err := checkConst(a.Const); err != nil {
			return err
		}
	case Clip, LeakyRelu, HardSigmoid:
		return checkPiecewiseAttrs(n)
	case Pad:
		if len(a.Pads) == 0 || len(a.Pads)%2 != 0 || len(a.Pads) > 2*MaxRank {
			return fmt.Errorf("pads must have 2 values per axis, got %d", len(a.Pads))
		}
		for _, v := range a.Pads {
			if v < 0 || v > MaxDim {
				return fmt.Errorf("pads %v: value %d out of range", a.Pads, v)
			}
		}
		if math.IsNaN(a.Value) || math.IsInf(a.Value, 0) {
			return fmt.Errorf("value %v is not finite", a.Value)
		}
	case Flatten:
		if a.Axis < -MaxRank || a.Axis > MaxRank {
			return fmt.Errorf("axis %d out of range", a.Axis)
		}
	case Concat:
		if a.Axis < 0 || a.Axis >= MaxRank {
			return fmt.Errorf("axis %d out of range", a.Axis)
		}
	case Transpose:
		return checkPerm(a.Perm)
	case Slice:
		return checkSlice(a)
	case Gather:
		return checkGather(a)
	case ReduceSum:
		return checkAxes(a.Axes)
	case Reshape:
		if len(a.Shape) > MaxRank {
			return fmt.Errorf("shape %v: rank exceeds %d", a.Shape, MaxRank)
		}
		free := 0
		for _, d := range a.Shape {
			if d < -1 || d > MaxDim {
				return fmt.Errorf("shape %v: value %d out of range", a.Shape, d)
			}
			if d == -1 {
				free++
			}
		}
		if free > 1 {
			return fmt.Errorf("shape %v: more than one -1", a.Shape)
		}
	}
	return nil
}

func checkWindow(a *Attrs, pool bool) error {
	if err := checkInts("strides", a.Strides, 2, 1); err != nil {
		return err
	}
	if err := checkInts("pads", a.Pads, 4, 0); err != nil {
		return err
	}
	if err := checkInts("dilations", a.Dilations, 2, 1); err != nil {
		return err
	}
	if !pool && len(a.Kernel) != 0 {
		if err := checkInts("kernel", a.Kernel, 2, 1); err != nil {
			return err
		}
	}
	return nil
}

// sizeOf is the element count of a shape already checked by checkShape.
func sizeOf(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Check validates one node on its own: a known op, the right number of named
// inputs, an output name and well-formed attrs. Validate calls it for every
// node; the importer calls it before inferring a node's shape.
func (n *Node) Check() error {
	ar, ok := arity[n.Op]
	if !ok {
		return fmt.Errorf("unknown op %q", string(n.Op))
	}
	if len(n.Inputs) < ar[0] || len(n.Inputs) > ar[1] {
		if ar[0] == ar[1] {
			return fmt.Errorf("takes %d inputs, got %d", ar[0], len(n.Inputs))
		}
		return fmt.Errorf("takes %d to %d inputs, got %d", ar[0], ar[1], len(n.Inputs))
	}
	for _, in := range n.Inputs {
		if in == "" {
			return errors.New("has an input with no name")
		}
	}
	if n.Output == "" {
		return errors.New("has no output name")
	}
	return checkAttrs(n)
}

// checkPerm checks a Transpose's permutation.
func checkPerm(perm []int) error {
	if len(perm) > MaxRank {
		return fmt.Errorf("perm %v: rank exceeds %d", perm, MaxRank)
	}
	seen := make([]bool, len(perm))
	for _, p := range perm {
		if p < 0 || p >= len(perm) || seen[p] {
			return fmt.Errorf("perm %v is not a permutation", perm)
		}
		seen[p] = true
	}
	return nil
}

// checkAxes checks a list of distinct axes.
func checkAxes(axes []int) error {
	if len(axes) == 0 || len(axes) > MaxRank {
		return fmt.Errorf("axes %v: want 1 to %d axes", axes, MaxRank)
	}
	seen := make([]bool, MaxRank)
	for _, x := range axes {
		if x < 0 || x >= MaxRank || seen[x] {
			return fmt.Errorf("axes %v: axis %d out of range or repeated", axes, x)
		}
		seen[x] = true
	}
	return nil
}

// checkSlice checks a Slice's axes, starts, ends and steps (their ranges
// against the input are checked by Shapes).
func checkSlice(a *Attrs) error {
	if err := checkAxes(a.Axes); err != nil {
		return err
	}
	if len(a.Starts) != len(a.Axes) || len(a.Ends) != len(a.Axes) || len(a.Steps) != len(a.Axes) {
		return fmt.Errorf("want one start, end and step per axis, got %d, %d, %d for %d axes",
			len(a.Starts), len(a.Ends), len(a.Steps), len(a.Axes))
	}
	for i := range a.Axes {
		if a.Steps[i] == 0 || a.Steps[i] < -MaxDim || a.Steps[i] > MaxDim ||
			a.Starts[i] < -1 || a.Starts[i] > MaxDim || a.Ends[i] < -1 || a.Ends[i] > MaxDim {
			return fmt.Errorf("axis %d: start %d, end %d, step %d out of range", a.Axes[i], a.Starts[i], a.Ends[i], a.Steps[i])
		}
	}
	return nil
}

// checkGather checks a Gather's axis and indices.
func checkGather(a *Attrs) error {
	if a.Axis < 0 || a.Axis >= MaxRank {
		return fmt.Errorf("axis %d out of range", a.Axis)
	}
	if err := checkShape(a.IndexShape, false); err != nil {
		return fmt.Errorf("index shape: %w", err)
	}
	if len(a.IndexShape)+MaxRank-1 > 2*MaxRank || len(a.Indices) != sizeOf(a.IndexShape) {
		return fmt.Errorf("index shape %v holds %d indices, got %d", a.IndexShape, sizeOf(a.IndexShape), len(a.Indices))
	}
	for _, i := range a.Indices {
		if i < 0 || i >= MaxDim {
			return fmt.Errorf("index %d out of range", i)
		}
	}
	return nil
}

// checkConst checks a public constant: present, its shape and data agree,
// finite values.
func checkConst(c *Const) error {
	if c == nil {
		return errors.New("const is missing")
	}
	if err := checkShape(c.Shape, false); err != nil {
		return fmt.Errorf("const: %w", err)
	}
	if len(c.Data) != sizeOf(c.Shape) {
		return fmt.Errorf("const: shape %v holds %d values, got %d", c.Shape, sizeOf(c.Shape), len(c.Data))
	}
	for _, v := range c.Data {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("const holds a non-finite value %v", v)
		}
	}
	return nil
}

// checkPiecewiseAttrs checks the attributes of Clip, LeakyRelu and
// HardSigmoid, and their piecewise function.
func checkPiecewiseAttrs(n *Node) error {
	a := &n.Attrs
	for _, v := range []float64{a.Alpha, a.Beta} {
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1<<30 {
			return fmt.Errorf("alpha %v or beta %v out of range", a.Alpha, a.Beta)
		}
	}
	if n.Op == Clip {
		if a.Min == nil && a.Max == nil {
			return errors.New("min and max are both absent")
		}
		if a.Min != nil && a.Max != nil && !(*a.Min < *a.Max) {
			return fmt.Errorf("min %v is not below max %v", *a.Min, *a.Max)
		}
		for _, v := range []*float64{a.Min, a.Max} {
			if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0) || math.Abs(*v) > 1<<30) {
				return fmt.Errorf("bound %v out of range", *v)
			}
		}
	}
	pw, _ := PiecewiseOf(n)
	return pw.check()
}

// check validates a final op's kind and axes (contiguous, ascending,
// within the rank limit; Shapes checks them against the output).
func (f *Final) check() error {
	if f == nil {
		return nil
	}
	if f.Op != FinalSoftmax && f.Op != FinalLogSoftmax {
		return fmt.Errorf("final op %q is not %s or %s", f.Op, FinalSoftmax, FinalLogSoftmax)
	}
	if len(f.Axes) == 0 || len(f.Axes) > MaxRank {
		return fmt.Errorf("final %s: axes %v", f.Op, f.Axes)
	}
	for i, a := range f.Axes {
		if a < 0 || a >= MaxRank || (i > 0 && a != f.Axes[i-1]+1) {
			return fmt.Errorf("final %s: axes %v are not contiguous axes", f.Op, f.Axes)
		}
	}
	return nil
}
