package node

import "testing"

// TestLiteralHost checks the shutdown endpoint's DNS-rebinding guard: only
// IP literals and localhost are accepted as the Host.
func TestLiteralHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"127.0.0.1:5301", true}, {"[::1]:5301", true}, {"localhost:5301", true}, {"127.0.0.1", true},
		{"evil.example:5301", false}, {"rebind.attacker.test", false}, {"", false},
	} {
		if got := literalHost(tc.host); got != tc.want {
			t.Errorf("literalHost(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}
