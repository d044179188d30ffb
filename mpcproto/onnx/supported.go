package onnx

import "sort"

// This file lists the ops the importer takes, for "grid ops": the list is
// read from the converters and folders tables at run time, so it follows
// the importer as ops are added; opNotes only adds each op's limits and
// whether the secure evaluation approximates it.

// OpInfo describes one ONNX op (domain ai.onnx) the importer takes.
type OpInfo struct {
	// Op is the ONNX op type.
	Op string `json:"op"`
	// Secure: the op is converted to a plan node evaluated on secret
	// shares (its inputs are activations).
	Secure bool `json:"secure"`
	// Folded: the op is evaluated at import when all its inputs are
	// constants (Shape also over an activation): it costs nothing online.
	Folded bool `json:"folded"`
	// Approximated: the secure result approximates the op's function
	// beyond fixed-point rounding (2^-16).
	Approximated bool `json:"approximated"`
	// Limits are the attributes and forms taken, and what is refused.
	Limits string `json:"limits"`
}

// opNote is what the tables do not say about an op.
type opNote struct {
	approx bool
	limits string
}

// opNotes holds the limits of the ops (an op missing here is listed with
// no limits). Ops not in the tables are not listed, whatever their note.
var opNotes = map[string]opNote{
	"Gemm":               {false, "alpha, beta, transA, transB; one operand constant (W·x or x·W), bias per column"},
	"MatMul":             {false, "numpy semantics: 1-D, 2-D, batched with broadcasting; the weight on either side; or two activations"},
	"Conv":               {false, "1-D and 2-D; pads, strides, dilations, group (depthwise too), auto_pad"},
	"MaxPool":            {false, "2-D only; ceil_mode, dilations"},
	"AveragePool":        {false, "2-D only; ceil_mode, count_include_pad, dilations"},
	"GlobalAveragePool":  {false, "mean over the spatial axes"},
	"Relu":               {false, "exact (a secure comparison)"},
	"Add":                {false, "activation + constant (a secret weight, or folded into the bias), or two activations"},
	"Sub":                {false, "like Add"},
	"Mul":                {false, "by a constant (public) or of two activations"},
	"Div":                {false, "by a constant only (public)"},
	"Pad":                {false, "constant mode"},
	"Reshape":            {false, "the batch dimension first and free"},
	"Flatten":            {false, "axis >= 1"},
	"Squeeze":            {false, "not the batch axis"},
	"Unsqueeze":          {false, "not the batch axis"},
	"Concat":             {false, "any axis; constant parts become secret weights"},
	"Transpose":          {false, "the batch axis stays first"},
	"Slice":              {false, "constant starts/ends/axes/steps; the batch axis only whole"},
	"Split":              {false, "one Slice per output"},
	"Gather":             {false, "constant indices, not along the batch axis"},
	"ReduceSum":          {false, "axes as attribute or input, keepdims; not over the batch axis"},
	"ReduceMean":         {false, "like ReduceSum, then a public 1/count"},
	"BatchNormalization": {false, "inference; folded into the preceding Conv/Gemm/MatMul, else a public scale and a secret shift"},
	"Dropout":            {false, "inference: removed"},
	"Identity":           {false, "removed"},
	"Cast":               {false, "to float: removed"},
	"Clip":               {false, "constant min/max (ReLU6); exact"},
	"LeakyRelu":          {false, "exact up to fixed point"},
	"PRelu":              {false, "constant slopes; exact up to fixed point"},
	"HardSigmoid":        {false, "exact up to fixed point"},
	"HardSwish":          {false, "exact up to fixed point"},
	"Sigmoid":            {true, "12 quadratic pieces on [-9, 9], saturating outside: |error| <= 5e-4; Mul(x, Sigmoid(x)) is SiLU, 17 pieces on [-16, 16], |error| <= 5e-4"},
	"Softmax":            {false, "only as the model's last op: the client applies it to the output (the holders compute the logits)"},
	"LogSoftmax":         {false, "like Softmax"},
	"Exp":                {true, "approximated"},
	"Tanh":               {true, "approximated"},
	"Erf":                {true, "approximated"},
	"Gelu":               {true, "approximated"},
	"Constant":           {false, "over constants only"},
	"ConstantOfShape":    {false, "over constants only"},
	"Shape":              {false, "static shapes; batch-dependent chains resolved at import"},
	"Neg":                {false, "over constants only"},
}

// SupportedOps returns the ops the importer takes, sorted by name: those
// it converts into secure plan nodes and those it only folds over
// constants at import.
func SupportedOps() []OpInfo {
	byOp := map[string]*OpInfo{}
	get := func(op string) *OpInfo {
		if o, ok := byOp[op]; ok {
			return o
		}
		n := opNotes[op]
		o := &OpInfo{Op: op, Approximated: n.approx, Limits: n.limits}
		byOp[op] = o
		return o
	}
	for op := range converters {
		get(op).Secure = true
	}
	for op := range folders {
		get(op).Folded = true
	}
	out := make([]OpInfo, 0, len(byOp))
	for _, o := range byOp {
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Op < out[j].Op })
	return out
}
