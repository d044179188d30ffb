package main

import "testing"

// grid repair and grid reshare refuse bad usage before touching the
// network: exit 2, one line.
func TestRepairUsage(t *testing.T) {
	repo, id := initRepo(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"repair"}, "accepts 1 arg"},
		{[]string{"reshare", "m"}, "--holders needs comma-separated peer IDs"},
		{[]string{"reshare", "m", "--holders", "x,y"}, `--holders: "x" is not a peer ID`},
		{[]string{"reshare", "m", "--holders", id, "--timeout", "0s"}, "--timeout 0s must be positive"},
	}
	for _, tc := range tests {
		code, _, stderr := runCLI(t, nil, append(tc.args, "--repo", repo)...)
		if code != 2 {
			t.Errorf("grid %v: exit %d, want 2 (%s)", tc.args, code, stderr)
		}
		checkOneLine(t, stderr, tc.want)
	}
}
