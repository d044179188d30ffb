package main

import (
	"fmt"
	"io"
	"strings"
)

// Print writes the report as text.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "model %s (%s), %d holders, batch %d, %d queries; load average %.2f -> %.2f\n",
		r.Model, r.File, r.Holders, r.Batch, r.Queries, r.LoadAvg[0], r.LoadAvg[1])
	fmt.Fprintf(w, "publish          %10.1f ms\n", r.PublishMs)
	if r.WarmMs >= 0 {
		fmt.Fprintf(w, "warm (masks)     %10.1f ms after publish\n", r.WarmMs)
	}
	if r.WarmNote != "" {
		fmt.Fprintf(w, "warm (masks)     none: %s\n", r.WarmNote)
	}
	fmt.Fprintf(w, "first query      %10.1f ms  (%.0f mask sets opened during it)\n", r.FirstMs, r.FirstMaskOpens)
	fmt.Fprintf(w, "later queries    %10.1f ms median, %.1f ms p90  (first/median %.2f)\n",
		r.SteadyMs[0], r.SteadyMs[1], r.FirstMs/max(r.SteadyMs[0], 1e-9))
	fmt.Fprintf(w, "online           %10.1f ms median (first query %.1f ms), %d rounds\n", r.OnlineMs, r.FirstOnlineMs, r.Rounds)
	for i, b := range r.HolderBytes {
		fmt.Fprintf(w, "holder %d bytes   %10s sent %10s received per query\n", i, size(b.Sent), size(b.Recv))
	}
	fmt.Fprintf(w, "dealer bytes     %10s sent %10s received per query\n", size(r.DealerBytes.Sent), size(r.DealerBytes.Recv))
	rss := make([]string, len(r.PeakRSS))
	for i, v := range r.PeakRSS {
		rss[i] = fmt.Sprintf("%.1f MiB", float64(v)/1024)
	}
	if len(rss) > 0 {
		fmt.Fprintf(w, "peak RSS         dealer %s; holders %s\n", rss[0], strings.Join(rss[1:], ", "))
	}
	switch {
	case r.Torch != nil:
		fmt.Fprintf(w, "PyTorch 1 thread %10.2f ms CPU (%.2f ms wall); grid/PyTorch %.0fx; max |diff| %.4f\n",
			r.Torch.Ms, r.Torch.WallMs, r.SteadyMs[0]/max(r.Torch.Ms, 1e-9), r.Torch.MaxDiff)
	case r.TorchNote != "":
		fmt.Fprintf(w, "PyTorch          none: %s\n", r.TorchNote)
	}
}

// size formats a byte count.
func size(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}
