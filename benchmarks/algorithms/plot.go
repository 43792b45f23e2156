package main

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// methodOrder is the x order of the plots: the algorithms, then the baselines.
var methodOrder = append(slices.Clone(LabMethods), MethodPodman)

// label is a method's short name on the plots' x axes.
func label(method string) string {
	return strings.NewReplacer("chandy-lamport", "chandy-l.", "uncoordinated", "uncoord.", "-sequential", "-seq", "-parallel", "-par").Replace(method)
}

func labels(methods []string) []string {
	out := make([]string, len(methods))
	for i, m := range methods {
		out[i] = label(m)
	}
	return out
}

// ticks125 labels a log axis at 1, 2 and 5 times the powers of ten in its range (the
// library's LogTicks labels powers of ten only: none on an axis inside one decade).
type ticks125 struct{}

// Ticks implements plot.Ticker.
func (ticks125) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v >= lo && v <= hi {
				out = append(out, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
			}
		}
	}
	return out
}

// floorMS keeps values > 0 on the log axes (a 0 ms lock is drawn at the floor).
const floorMS = 0.5

// Plots draws, as SVG and PNG into dir: per shape the per-container frozen time and
// the application's longest stall per method (box plots with every point), the snapshot
// time against the container count (echo stacks: scale-* and fan-in), and the snapshot
// bytes per method and shape. It returns the files written.
func Plots(r Results, sums []Summary, dir string) ([]string, error) {
	var files []string
	save := func(p *plot.Plot, name string, w vg.Length) error {
		for _, ext := range []string{"svg", "png"} {
			f := filepath.Join(dir, name+"."+ext)
			if err := p.Save(w, 9*vg.Centimeter, f); err != nil {
				return fmt.Errorf("plot %s: %w", f, err)
			}
			files = append(files, f)
		}
		return nil
	}
	var shapes []string
	for _, m := range r.Measurements {
		if !slices.Contains(shapes, m.Shape) {
			shapes = append(shapes, m.Shape)
		}
	}
	for _, shape := range shapes {
		for _, metric := range []struct {
			name, title string
			get         func(ContainerRow) (float64, bool)
		}{
			{"frozen", "frozen time per container (ms)", func(c ContainerRow) (float64, bool) { return c.FrozenMS, true }},
			{"stall", "application's longest stall per container (ms)", func(c ContainerRow) (float64, bool) {
				if c.App == nil {
					return 0, false
				}
				return c.App.StallMS, true
			}},
		} {
			p, err := boxes(r, shape, metric.get)
			if err != nil {
				return files, err
			}
			if p == nil {
				continue
			}
			p.Title.Text = fmt.Sprintf("%s: %s", shape, metric.title)
			if err := save(p, metric.name+"-"+shape, 18*vg.Centimeter); err != nil {
				return files, err
			}
		}
	}
	if p, err := scalePlot(sums); err != nil {
		return files, err
	} else if p != nil {
		if err := save(p, "scale", 14*vg.Centimeter); err != nil {
			return files, err
		}
	}
	if p, err := simPlot(r, sums); err != nil {
		return files, err
	} else if p != nil {
		if err := save(p, "sim-vs-lab", 16*vg.Centimeter); err != nil {
			return files, err
		}
	}
	if p, err := bytesPlot(sums, shapes); err != nil {
		return files, err
	} else if p != nil {
		if err := save(p, "bytes", 18*vg.Centimeter); err != nil {
			return files, err
		}
	}
	return files, nil
}

// boxes draws one box (and every point, jittered) per method of shape.
func boxes(r Results, shape string, get func(ContainerRow) (float64, bool)) (*plot.Plot, error) {
	vals := map[string]plotter.Values{}
	for _, m := range r.Measurements {
		if m.Shape != shape {
			continue
		}
		for _, c := range m.Containers {
			if v, ok := get(c); ok {
				vals[m.Method] = append(vals[m.Method], math.Max(v, floorMS))
			}
		}
	}
	var names []string
	for _, meth := range methodOrder {
		if len(vals[meth]) > 0 {
			names = append(names, meth)
		}
	}
	if len(names) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, ticks125{}
	p.Y.Label.Text = "ms (log)"
	for i, meth := range names {
		b, err := plotter.NewBoxPlot(vg.Points(18), float64(i), vals[meth])
		if err != nil {
			return nil, err
		}
		b.FillColor = plotutil.Color(i)
		p.Add(b)
		pts := make(plotter.XYs, len(vals[meth]))
		for j, v := range vals[meth] {
			pts[j] = plotter.XY{X: float64(i) + 0.3 + 0.1*float64(j%5)/5, Y: v}
		}
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, err
		}
		s.GlyphStyle.Radius = vg.Points(1.5)
		s.GlyphStyle.Color = color.Gray{Y: 90}
		p.Add(s)
	}
	p.NominalX(labels(names)...)
	p.X.Min, p.X.Max = -0.7, float64(len(names))-0.3 // room for the outer labels
	return p, nil
}

// scalePlot: median snapshot time against containers, one line per method, over the
// echo stacks (scale-3/10/30 and fan-in, 21).
func scalePlot(sums []Summary) (*plot.Plot, error) {
	lines := map[string]plotter.XYs{}
	for _, s := range sums {
		if s.Shape != "fan-in" && (len(s.Shape) < 6 || s.Shape[:6] != "scale-") {
			continue
		}
		lines[s.Method] = append(lines[s.Method], plotter.XY{X: float64(s.N), Y: math.Max(s.TotalP50, floorMS)})
	}
	if len(lines) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "snapshot time vs containers (echo stacks, median)"
	p.X.Label.Text = "containers"
	p.Y.Label.Text = "ms (log)"
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, ticks125{}
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.ConstantTicks([]plot.Tick{{Value: 3, Label: "3"}, {Value: 10, Label: "10"}, {Value: 21, Label: "21 (fan-in)"}, {Value: 30, Label: "30"}})
	p.Legend.Top, p.Legend.Left = false, false
	var args []any
	for _, meth := range methodOrder {
		if xy := lines[meth]; len(xy) > 0 {
			slices.SortFunc(xy, func(a, b plotter.XY) int { return int(a.X - b.X) })
			args = append(args, meth, xy)
		}
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return nil, err
	}
	return p, nil
}

// bytesPlot: median snapshot size (MiB) per method (x), one series of points per shape.
func bytesPlot(sums []Summary, shapes []string) (*plot.Plot, error) {
	var present []string
	for _, meth := range methodOrder {
		for _, s := range sums {
			if s.Method == meth && !slices.Contains(present, meth) {
				present = append(present, meth)
			}
		}
	}
	if len(present) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "snapshot size per method (median)"
	p.Y.Label.Text = "MiB (log)"
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, ticks125{}
	p.Legend.Top, p.Legend.Left = false, true
	var args []any
	for _, shape := range shapes {
		var xy plotter.XYs
		for i, meth := range present {
			for _, s := range sums {
				if s.Shape == shape && s.Method == meth && s.BytesP50 > 0 {
					xy = append(xy, plotter.XY{X: float64(i), Y: s.BytesP50 / (1 << 20)})
				}
			}
		}
		if len(xy) > 0 {
			args = append(args, shape, xy)
		}
	}
	if len(args) == 0 {
		return nil, nil
	}
	if err := plotutil.AddScatters(p, args...); err != nil {
		return nil, err
	}
	p.NominalX(labels(present)...)
	return p, nil
}
