package onnx

import (
	"context"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/gridmpc/grid/mpcproto/engine"
	"github.com/gridmpc/grid/mpcproto/tensor"
)

// TestSecureSeed evaluates the imported seed model with 3 holders.
func TestSecureSeed(t *testing.T) {
	p, w := importFile(t, "seed.onnx")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	y, _, err := engine.RunLocal(ctx, p, w, &tensor.Dense[float64]{Shape: []int{2}, Data: []float64{5, 3}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(y.Shape, []int{1}) || math.Abs(y.Data[0]-1022) > 1e-3 {
		t.Fatalf("secure seed on [5 3] = %v %v, want [1] [1022]", y.Shape, y.Data)
	}
}

// TestSecureDigits imports each digits fixture and evaluates it securely
// with 3 holders on all 360 held-out samples in one batch: the argmax must
// match PyTorch's on every sample and no logit may be off by 0.02 or more.
func TestSecureDigits(t *testing.T) {
	d := loadDigits(t)
	for _, name := range []string{"digits_mlp", "digits_cnn", "digits_cnn_bn"} {
		t.Run(name, func(t *testing.T) {
			p, w := importFile(t, name+".onnx")
			want := d.Logits[name]
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			start := time.Now()
			y, st, err := engine.RunLocal(ctx, p, w, digitsBatch(d, p), 3)
			if err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			if !reflect.DeepEqual(y.Shape, []int{360, 10}) {
				t.Fatalf("output shape %v, want [360 10]", y.Shape)
			}
			maxErr := 0.0
			for i := 0; i < 360; i++ {
				row := y.Data[i*10 : (i+1)*10]
				for j := range row {
					maxErr = math.Max(maxErr, math.Abs(row[j]-want[i][j]))
				}
				if argmax(row) != argmax(want[i]) {
					t.Errorf("sample %d: secure argmax %d, PyTorch %d (logits %v vs %v)", i, argmax(row), argmax(want[i]), row, want[i])
				}
			}
			t.Logf("%s: 360 samples, N=3: max |logit - PyTorch| = %.4f; %v total (online %v, offline %v, dealer %v), %d rounds, %d bytes sent by the busiest party",
				name, maxErr, elapsed.Round(time.Millisecond), st.Online.Round(time.Millisecond), st.Offline.Round(time.Millisecond),
				st.Dealer.Round(time.Millisecond), st.Rounds, st.BytesSent)
			if maxErr >= 0.02 {
				t.Errorf("max logit error %.4f >= 0.02", maxErr)
			}
		})
	}
}
