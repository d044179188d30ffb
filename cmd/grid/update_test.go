package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/gridmpc/grid/node/nodetest"
)

// TestPublishUpdate: publishing an id this owner published already fails
// with exit 2 and one line naming the live version, its shapes and plan;
// --update replaces it and says what changed.
func TestPublishUpdate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env, repo := clientCluster(t, ctx, 2)
	seed := filepath.Join("..", "..", "testdata", "seed.onnx")
	mlp := filepath.Join("..", "..", "testdata", "digits_mlp.onnx")
	publish := func(file string, args ...string) (int, string, string) {
		return runCLI(t, env, append([]string{"publish", file, "--id", "m", "--holders", "2", "--repo", repo, "--json"}, args...)...)
	}
	code, stdout, stderr := publish(seed)
	var v1 modelView
	if code != 0 || stderr != "" || json.Unmarshal([]byte(stdout), &v1) != nil {
		t.Fatalf("first publish: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	code, stdout, stderr = publish(mlp)
	want := fmt.Sprintf("grid: publish \"m\": model exists (version %d, input [2], output [1], plan %s): pass --update to replace it\n",
		v1.Version, v1.PlanHash[:8])
	if code != exitUsage || stdout != "" || stderr != want {
		t.Fatalf("publish again: exit %d, stdout %q, stderr %q; want exit 2 and %q", code, stdout, stderr, want)
	}

	code, stdout, stderr = publish(mlp, "--update")
	var v2 modelView
	if code != 0 || json.Unmarshal([]byte(stdout), &v2) != nil {
		t.Fatalf("publish --update: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	want = fmt.Sprintf("updated \"m\" from version %d to %d: input [2] -> %s, output [1] -> %s, plan %s -> %s; unchanged: holders 2, tolerate 0, dealers\n",
		v1.Version, v2.Version, shapeString(v2.InputShape), shapeString(batchOutput(v2.InputShape, v2.OutputShape)), v1.PlanHash[:8], v2.PlanHash[:8])
	if v2.Version <= v1.Version || stderr != want {
		t.Fatalf("publish --update: stderr %q, want %q", stderr, want)
	}

	// Without --json the line leads the output; nothing else changed.
	code, stdout, stderr = runCLI(t, env, "publish", mlp, "--id", "m", "--holders", "2", "--repo", repo, "--update")
	want = fmt.Sprintf("updated \"m\" from version %d to ", v2.Version)
	if code != 0 || stderr != "" || len(stdout) < len(want) || stdout[:len(want)] != want {
		t.Fatalf("publish --update: exit %d, stdout %q, stderr %q; want a first line %q...", code, stdout, stderr, want)
	}
}

// clientCluster starts an in-process cluster (a dealer and holders, closed
// when the test ends) and a client repo; it returns the environment that
// joins the CLI to the cluster, and the repo.
func clientCluster(t *testing.T, ctx context.Context, holders int) (map[string]string, string) {
	t.Helper()
	c, err := nodetest.MakeCluster(ctx, t.TempDir(), nodetest.Config{Holders: holders})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	repo, _ := initRepo(t)
	return map[string]string{"GRID_BOOTSTRAP": c.Bootstrap()}, repo
}

func TestDescribeUpdate(t *testing.T) {
	base := modelView{ID: "m", Version: 1, InputShape: []int{2}, OutputShape: []int{1}, PlanHash: "0123456789abcdef",
		Holders: []string{"a", "b"}, Dealers: []string{"12D3KooWdealer000000001"}}
	cases := []struct {
		name string
		edit func(*modelView)
		want string
	}{
		{"weights only", func(*modelView) {},
			`updated "m" from version 1 to 2: new weights; unchanged: input [2], output [1], plan 01234567, holders 2, tolerate 0, dealers`},
		{"holders and tolerate", func(v *modelView) { v.Holders, v.Tolerate = []string{"a", "b", "c", "d"}, 1 },
			`updated "m" from version 1 to 2: holders 2 -> 4, tolerate 0 -> 1; unchanged: input [2], output [1], plan 01234567, dealers`},
		{"dealers", func(v *modelView) { v.Dealers = nil },
			`updated "m" from version 1 to 2: dealers […00000001] -> none; unchanged: input [2], output [1], plan 01234567, holders 2, tolerate 0`},
		{"batch input", func(v *modelView) { v.InputShape, v.OutputShape, v.PlanHash = []int{-1, 2}, []int{1, 3}, "fedcba98" },
			`updated "m" from version 1 to 2: input [2] -> [N, 2], output [1] -> [N, 3], plan 01234567 -> fedcba98; unchanged: holders 2, tolerate 0, dealers`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cur := base
			cur.Version = 2
			tc.edit(&cur)
			if got := describeUpdate(base, cur); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
