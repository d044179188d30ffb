package swarm

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plot size of every PNG: small enough to commit.
const (
	plotWidth  = 5 * vg.Inch
	plotHeight = 3.5 * vg.Inch
)

// series is one named line of a plot.
type series struct {
	name string
	xy   plotter.XYs
}

// WritePlots writes the result's PNG plots into dir and returns their paths:
// scale: latency_vs_nodes.png and rss_vs_nodes.png; wan: latency_vs_rtt.png;
// churn: churn_queries.png; seed (and any case with one run of one size):
// latency_vs_nodes.png with its single point.
func WritePlots(res *Result, dir string) ([]string, error) {
	var files []string
	add := func(name, title, xl, yl string, ss []series) error {
		path := filepath.Join(dir, name)
		if err := linePlot(path, title, xl, yl, ss); err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		files = append(files, path)
		return nil
	}
	ok := func(r *Run) bool { return r.Latency.N > 0 }
	switch res.Case {
	case CaseWAN:
		var p50, online, wall, ref series
		p50.name, online.name, wall.name, ref.name = "query latency p50 (client)", "online phase p50", "grid infer wall time p50", "rounds x RTT"
		for _, r := range res.Runs {
			if !ok(r) {
				continue
			}
			p50.xy = append(p50.xy, plotter.XY{X: r.RTTMs, Y: r.Latency.P50})
			online.xy = append(online.xy, plotter.XY{X: r.RTTMs, Y: r.Online.P50})
			wall.xy = append(wall.xy, plotter.XY{X: r.RTTMs, Y: r.Wall.P50})
			ref.xy = append(ref.xy, plotter.XY{X: r.RTTMs, Y: float64(r.Rounds) * r.RTTMs})
		}
		if len(p50.xy) == 0 {
			return nil, nil
		}
		if err := add("latency_vs_rtt.png", fmt.Sprintf("seed query latency vs added RTT (%d daemons)", res.Runs[0].Nodes),
			"added round-trip time (ms)", "ms", []series{wall, p50, online, ref}); err != nil {
			return files, err
		}
	case CaseChurn:
		var right, failed, wrong series
		right.name, failed.name, wrong.name = "right", "clear failure", "wrong"
		for _, r := range res.Runs {
			for _, q := range r.Queries {
				pt := plotter.XY{X: float64(q.Index), Y: max(q.WallMs, 1)}
				switch q.Class {
				case ClassRight:
					right.xy = append(right.xy, pt)
				case ClassFailed:
					failed.xy = append(failed.xy, pt)
				default:
					wrong.xy = append(wrong.xy, pt)
				}
			}
		}
		var ss []series
		for _, s := range []series{right, failed, wrong} {
			if len(s.xy) > 0 {
				ss = append(ss, s)
			}
		}
		if len(ss) == 0 {
			return nil, nil
		}
		// Events sit on a band below the queries: holders' apart.
		var lowest float64 = math.Inf(1)
		for _, s := range ss {
			for _, pt := range s.xy {
				lowest = min(lowest, pt.Y)
			}
		}
		band := math.Pow(10, math.Floor(math.Log10(lowest))) * 1.4
		evs := map[string]*series{}
		var order []string
		for _, r := range res.Runs {
			for _, e := range r.Events {
				who := "other daemon"
				if e.Holder {
					who = "holder"
				}
				what := "leaves/crashes"
				if e.Kind == "join" || e.Kind == "arrive" {
					what = "joins/arrives"
				}
				name := who + " " + what
				if evs[name] == nil {
					evs[name] = &series{name: name}
					order = append(order, name)
				}
				// Before query i: drawn half-way from the previous query.
				evs[name].xy = append(evs[name].xy, plotter.XY{X: float64(e.BeforeQuery) - 0.5, Y: band})
			}
		}
		for _, name := range order {
			ss = append(ss, *evs[name])
		}
		path := filepath.Join(dir, "churn_queries.png")
		if err := scatterLogPlot(path, "queries under churn (grid infer wall time)", "query", "ms (log scale)", ss); err != nil {
			return files, fmt.Errorf("plot churn_queries.png: %w", err)
		}
		files = append(files, path)
	default:
		var p50, p90, online, disc, rssMed, rssMax series
		p50.name, p90.name, online.name, disc.name = "query latency p50", "query latency p90", "online phase p50", "manifest on every daemon"
		rssMed.name, rssMax.name = "RSS p50", "RSS max"
		for _, r := range res.Runs {
			n := float64(r.Nodes)
			if ok(r) {
				p50.xy = append(p50.xy, plotter.XY{X: n, Y: r.Latency.P50})
				p90.xy = append(p90.xy, plotter.XY{X: n, Y: r.Latency.P90})
				online.xy = append(online.xy, plotter.XY{X: n, Y: r.Online.P50})
			}
			if r.DiscoverMs > 0 {
				disc.xy = append(disc.xy, plotter.XY{X: n, Y: r.DiscoverMs})
			}
			if r.RSS.N > 0 {
				rssMed.xy = append(rssMed.xy, plotter.XY{X: n, Y: r.RSS.P50 / 1024})
				rssMax.xy = append(rssMax.xy, plotter.XY{X: n, Y: r.RSS.Max / 1024})
			}
		}
		var ss []series
		for _, s := range []series{disc, p90, p50, online} {
			if len(s.xy) > 0 {
				ss = append(ss, s)
			}
		}
		if len(ss) > 0 {
			if err := add("latency_vs_nodes.png", "latency vs swarm size", "daemons", "ms", ss); err != nil {
				return files, err
			}
		}
		if len(rssMed.xy) > 0 {
			if err := add("rss_vs_nodes.png", "daemon memory vs swarm size", "daemons", "RSS per daemon (MiB)", []series{rssMed, rssMax}); err != nil {
				return files, err
			}
		}
	}
	return files, nil
}

// linePlot draws each series as a line with points and saves a PNG.
func linePlot(path, title, xlabel, ylabel string, ss []series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	// Head room above the data for the legend.
	var ymax float64
	for _, s := range ss {
		for _, pt := range s.xy {
			ymax = max(ymax, pt.Y)
		}
	}
	if ymax > 0 {
		p.Y.Max = ymax * (1.15 + 0.1*float64(len(ss)))
	}
	p.X.Tick.Marker = plainTicks{}
	p.Y.Tick.Marker = plainTicks{}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	var args []any
	for _, s := range ss {
		args = append(args, s.name, s.xy)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return fmt.Errorf("add lines: %w", err)
	}
	if err := p.Save(plotWidth, plotHeight, path); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// scatterLogPlot draws each series as points (no lines: a series has gaps)
// on a logarithmic y axis and saves a PNG.
func scatterLogPlot(path, title, xlabel, ylabel string, ss []series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.X.Tick.Marker = plainTicks{}
	ymin, ymax := math.Inf(1), 0.0
	for _, s := range ss {
		for _, pt := range s.xy {
			ymin, ymax = min(ymin, pt.Y), max(ymax, pt.Y)
		}
	}
	p.Y.Min = math.Pow(10, math.Floor(math.Log10(ymin)))
	if p.Y.Min >= ymin {
		p.Y.Min /= 2
	}
	// Two empty decades on top hold the legend.
	p.Y.Max = math.Pow(10, math.Ceil(math.Log10(ymax))+2)
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.Padding = vg.Points(1)
	p.Add(plotter.NewGrid())
	for i, s := range ss {
		sc, err := plotter.NewScatter(s.xy)
		if err != nil {
			return fmt.Errorf("scatter %s: %w", s.name, err)
		}
		sc.GlyphStyle.Color = plotutil.Color(i)
		sc.GlyphStyle.Shape = plotutil.Shape(i)
		sc.GlyphStyle.Radius = vg.Points(3)
		p.Add(sc)
		p.Legend.Add(s.name, sc)
	}
	if err := p.Save(plotWidth, plotHeight, path); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// plainTicks are gonum's default ticks labelled without trailing zeros
// ("25", not "25.00").
type plainTicks struct{}

// Ticks implements plot.Ticker.
func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}
