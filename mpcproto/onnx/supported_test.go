package onnx

import "testing"

// TestSupportedOps checks that the list follows the importer's tables.
func TestSupportedOps(t *testing.T) {
	ops := SupportedOps()
	seen := map[string]OpInfo{}
	for i, o := range ops {
		if i > 0 && ops[i-1].Op >= o.Op {
			t.Errorf("not sorted at %q", o.Op)
		}
		seen[o.Op] = o
	}
	for op := range converters {
		if !seen[op].Secure {
			t.Errorf("converter %s not listed as secure", op)
		}
	}
	for op := range folders {
		if !seen[op].Folded {
			t.Errorf("folder %s not listed as folded", op)
		}
	}
	if len(seen) > len(converters)+len(folders) {
		t.Errorf("%d ops listed, more than the tables hold", len(seen))
	}
}
