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
	var plots []plotFile
	switch res.Case {
	case CaseWAN:
		plots = wanPlots(res)
	case CaseChurn:
		plots = churnPlots(res)
	default:
		plots = sizePlots(res)
	}
	var files []string
	for _, pf := range plots {
		path := filepath.Join(dir, pf.name)
		draw := linePlot
		if pf.log {
			draw = scatterLogPlot
		}
		if err := draw(path, pf); err != nil {
			return files, fmt.Errorf("plot %s: %w", pf.name, err)
		}
		files = append(files, path)
	}
	return files, nil
}

// plotFile is one PNG to draw: lines with points, or points on a
// logarithmic y axis.
type plotFile struct {
	name, title, xlabel, ylabel string
	series                      []series
	log                         bool
}

// nonEmpty keeps the series that have points.
func nonEmpty(ss ...series) []series {
	var out []series
	for _, s := range ss {
		if len(s.xy) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// wanPlots: latency against the added RTT, with rounds x RTT for
// reference.
func wanPlots(res *Result) []plotFile {
	p50, online := series{name: "query latency p50 (client)"}, series{name: "online phase p50"}
	wall, ref := series{name: "grid infer wall time p50"}, series{name: "rounds x RTT"}
	for _, r := range res.Runs {
		if r.Latency.N == 0 {
			continue
		}
		p50.xy = append(p50.xy, plotter.XY{X: r.RTTMs, Y: r.Latency.P50})
		online.xy = append(online.xy, plotter.XY{X: r.RTTMs, Y: r.Online.P50})
		wall.xy = append(wall.xy, plotter.XY{X: r.RTTMs, Y: r.Wall.P50})
		ref.xy = append(ref.xy, plotter.XY{X: r.RTTMs, Y: float64(r.Rounds) * r.RTTMs})
	}
	if len(p50.xy) == 0 {
		return nil
	}
	return []plotFile{{name: "latency_vs_rtt.png", title: fmt.Sprintf("seed query latency vs added RTT (%d daemons)", res.Runs[0].Nodes),
		xlabel: "added round-trip time (ms)", ylabel: "ms", series: []series{wall, p50, online, ref}}}
}

// churnPlots: every query's wall time by its class and by the holders down
// (none, at most tolerate F, more than F), and the events on a band below
// them.
func churnPlots(res *Result) []plotFile {
	f := 0
	if len(res.Runs) > 0 && res.Runs[0].Churn != nil {
		f = res.Runs[0].Churn.Tolerate
	}
	right, rightDown := series{name: "right, all holders up"}, series{name: "right, a holder down"}
	failed := series{name: fmt.Sprintf("clear failure, <= %d holders down", f)}
	failedBeyond := series{name: fmt.Sprintf("clear failure, > %d holders down", f)}
	wrong := series{name: "wrong"}
	for _, r := range res.Runs {
		for _, q := range r.Queries {
			pt := plotter.XY{X: float64(q.Index), Y: max(q.WallMs, 1)}
			switch {
			case q.Class == ClassRight && q.HoldersDown == 0:
				right.xy = append(right.xy, pt)
			case q.Class == ClassRight:
				rightDown.xy = append(rightDown.xy, pt)
			case q.Class == ClassFailed && q.HoldersDown <= f:
				failed.xy = append(failed.xy, pt)
			case q.Class == ClassFailed:
				failedBeyond.xy = append(failedBeyond.xy, pt)
			default:
				wrong.xy = append(wrong.xy, pt)
			}
		}
	}
	ss := nonEmpty(right, rightDown, failed, failedBeyond, wrong)
	if len(ss) == 0 {
		return nil
	}
	// Events sit on a band below the queries: holders' apart.
	lowest, _ := yRange(ss)
	ss = append(ss, eventSeries(res, math.Pow(10, math.Floor(math.Log10(lowest)))*1.4)...)
	title := "queries under churn (grid infer wall time)"
	if f > 0 {
		title = fmt.Sprintf("queries under churn, tolerate %d (grid infer wall time)", f)
	}
	return []plotFile{{name: "churn_queries.png", title: title,
		xlabel: "query", ylabel: "ms (log scale)", series: ss, log: true}}
}

// eventSeries draws the churn events at height y, one series per kind of
// event (holder or other daemon, leaving or joining), in order of first
// appearance.
func eventSeries(res *Result, y float64) []series {
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
			evs[name].xy = append(evs[name].xy, plotter.XY{X: float64(e.BeforeQuery) - 0.5, Y: y})
		}
	}
	var out []series
	for _, name := range order {
		out = append(out, *evs[name])
	}
	return out
}

// sizePlots: latency, discovery time and memory against the swarm size.
func sizePlots(res *Result) []plotFile {
	p50, p90, online := series{name: "query latency p50"}, series{name: "query latency p90"}, series{name: "online phase p50"}
	disc, rssMed, rssMax := series{name: "manifest on every daemon"}, series{name: "RSS p50"}, series{name: "RSS max"}
	for _, r := range res.Runs {
		n := float64(r.Nodes)
		if r.Latency.N > 0 {
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
	var out []plotFile
	if ss := nonEmpty(disc, p90, p50, online); len(ss) > 0 {
		out = append(out, plotFile{name: "latency_vs_nodes.png", title: "latency vs swarm size", xlabel: "daemons", ylabel: "ms", series: ss})
	}
	if len(rssMed.xy) > 0 {
		out = append(out, plotFile{name: "rss_vs_nodes.png", title: "daemon memory vs swarm size", xlabel: "daemons",
			ylabel: "RSS per daemon (MiB)", series: []series{rssMed, rssMax}})
	}
	return out
}

// newPlot makes the plot of pf: its title and axis labels, the legend at
// the top left and a grid.
func (pf plotFile) newPlot() *plot.Plot {
	p := plot.New()
	p.Title.Text = pf.title
	p.X.Label.Text = pf.xlabel
	p.Y.Label.Text = pf.ylabel
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return p
}

// yRange is the smallest y of the series' points (+Inf if none) and the
// largest (at least 0).
func yRange(ss []series) (lo, hi float64) {
	lo = math.Inf(1)
	for _, s := range ss {
		for _, pt := range s.xy {
			lo, hi = min(lo, pt.Y), max(hi, pt.Y)
		}
	}
	return lo, hi
}

// linePlot draws each series as a line with points and saves a PNG.
func linePlot(path string, pf plotFile) error {
	p := pf.newPlot()
	p.Y.Min = 0
	// Head room above the data for the legend.
	if _, ymax := yRange(pf.series); ymax > 0 {
		p.Y.Max = ymax * (1.15 + 0.1*float64(len(pf.series)))
	}
	p.X.Tick.Marker = plainTicks{}
	p.Y.Tick.Marker = plainTicks{}
	var args []any
	for _, s := range pf.series {
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
func scatterLogPlot(path string, pf plotFile) error {
	p := pf.newPlot()
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.X.Tick.Marker = plainTicks{}
	ymin, ymax := yRange(pf.series)
	p.Y.Min = math.Pow(10, math.Floor(math.Log10(ymin)))
	if p.Y.Min >= ymin {
		p.Y.Min /= 2
	}
	// Two empty decades on top hold the legend.
	p.Y.Max = math.Pow(10, math.Ceil(math.Log10(ymax))+2)
	p.Legend.Padding = vg.Points(1)
	for i, s := range pf.series {
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
