package report

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"slices"
	"strings"
	texttemplate "text/template"
	"unicode"

	"github.com/privsync/privsync"
)

// The wording of the summaries lives in these templates, one per format,
// so that someone who does not read Go can review it. Both are filled from
// the same view (summaryView).
//
//go:embed templates/summary.md.tmpl templates/summary.html.tmpl
var templateFS embed.FS

var (
	mdTemplate = texttemplate.Must(texttemplate.New("summary.md.tmpl").Funcs(texttemplate.FuncMap{
		"md": md, "plural": plural, "indent": indent,
	}).ParseFS(templateFS, "templates/summary.md.tmpl"))
	htmlTemplate = htmltemplate.Must(htmltemplate.New("summary.html.tmpl").Funcs(htmltemplate.FuncMap{
		"plural": plural,
	}).ParseFS(templateFS, "templates/summary.html.tmpl"))
)

// outcomeOrder is the order outcomes appear in the summary's tables.
var outcomeOrder = []string{string(privsync.OutcomeCompleted), string(privsync.OutcomeAccepted), string(privsync.OutcomePending),
	string(privsync.OutcomeFailed), string(privsync.OutcomeExpired), string(privsync.OutcomeConflict),
	string(privsync.OutcomeUnsupported), string(privsync.OutcomeRejected)}

var outcomeMeaning = map[string]string{
	string(privsync.OutcomeCompleted):   "the vendor confirmed it",
	string(privsync.OutcomeAccepted):    "the vendor accepted it and offers no way to confirm it",
	string(privsync.OutcomePending):     "the vendor had not confirmed it when the run ended",
	string(privsync.OutcomeFailed):      "the vendor refused it, or every retry failed",
	string(privsync.OutcomeExpired):     "the vendor dropped the request before confirming it",
	string(privsync.OutcomeConflict):    "not sent: the row asks to undo an erasure",
	string(privsync.OutcomeUnsupported): "not sent: this kind of vendor cannot do what the row asks",
	string(privsync.OutcomeRejected):    "not sent: the input row was invalid",
}

// outcomeColour is each outcome's colour in the HTML chart and legend
// (the table beside it gives the numbers, for a greyscale print).
var outcomeColour = map[string]string{
	string(privsync.OutcomeCompleted):   "#2e7d32",
	string(privsync.OutcomeAccepted):    "#81c784",
	string(privsync.OutcomePending):     "#fbc02d",
	string(privsync.OutcomeFailed):      "#c62828",
	string(privsync.OutcomeExpired):     "#ef6c00",
	string(privsync.OutcomeConflict):    "#6a1b9a",
	string(privsync.OutcomeUnsupported): "#90a4ae",
	string(privsync.OutcomeRejected):    "#37474f",
}

// summaryView is what the templates see: the summary, arranged.
type summaryView struct {
	*Summary
	Snapshot     bool
	SummaryFile  string // {run_id}.summary.json
	SigFile      string // {run_id}.summary.json.sig
	Used         []string
	Meanings     []outcomeView // the outcomes used, with what they mean
	Vendors      []vendorView
	Bad          int64
	BadGroups    []badGroup
	Pending      int64
	Python       string
	Namespace    string
	Chart        chart
	HasPrevious  bool
	PreviousHash string
}

type outcomeView struct {
	Name, Meaning, Colour string
	Count                 int64
}

type vendorView struct {
	Name    string
	Ops     []opView
	Pending int64
}

type opView struct {
	Name  string
	Cells []int64
	Total int64
}

type badGroup struct {
	Outcome, Meaning string
	Count            int64
	Reasons          []Reason
}

// chart is a horizontal bar per vendor, one segment per outcome, as SVG
// coordinates (the template only places them).
type chart struct {
	Width, Height, BarX, BarWidth int
	Bars                          []chartBar
	Legend                        []legendItem
	LegendY                       int
}

type chartBar struct {
	Vendor   string
	Y, TextY int
	EndX     float64 // where the bar ends: its total is written after it
	Total    int64
	Segments []chartSegment
}

type chartSegment struct {
	X, W    float64
	Colour  string
	Outcome string
	Count   int64
}

type legendItem struct {
	X, TextX int
	Name     string
	Colour   string
}

// view arranges a summary for the templates.
func (s *Summary) view() *summaryView {
	v := &summaryView{Summary: s, Snapshot: s.Mode == "snapshot", SummaryFile: s.RunID + ".summary.json",
		Python: strings.TrimSpace(PythonRecipe), Namespace: Namespace}
	v.SigFile = SigPath(v.SummaryFile)
	if s.Previous != nil {
		v.HasPrevious, v.PreviousHash = true, s.Previous.SummarySHA256
	}
	for _, o := range outcomeOrder {
		if s.Outcomes[o] > 0 {
			v.Used = append(v.Used, o)
		}
	}
	for _, o := range sortedKeys(s.Outcomes) { // an outcome this version does not know
		if !slices.Contains(v.Used, o) && s.Outcomes[o] > 0 {
			v.Used = append(v.Used, o)
		}
	}
	for _, o := range v.Used {
		v.Meanings = append(v.Meanings, outcomeView{Name: o, Meaning: outcomeMeaning[o], Colour: colourOf(o), Count: s.Outcomes[o]})
	}
	for _, name := range sortedKeys(s.Counts) {
		vv := vendorView{Name: name}
		for _, op := range sortedKeys(s.Counts[name]) {
			ov := opView{Name: op, Cells: make([]int64, len(v.Used))}
			for i, o := range v.Used {
				ov.Cells[i] = s.Counts[name][op][o]
				ov.Total += ov.Cells[i]
			}
			vv.Pending += s.Counts[name][op][string(privsync.OutcomePending)]
			vv.Ops = append(vv.Ops, ov)
		}
		v.Vendors = append(v.Vendors, vv)
	}
	for _, o := range badOutcomes {
		n := s.Outcomes[o]
		v.Bad += n
		if n == 0 {
			continue
		}
		g := badGroup{Outcome: o, Meaning: outcomeMeaning[o], Count: n}
		for _, r := range s.Reasons {
			if r.Outcome == o {
				g.Reasons = append(g.Reasons, r)
			}
		}
		v.BadGroups = append(v.BadGroups, g)
	}
	v.Pending = s.Outcomes[string(privsync.OutcomePending)]
	v.Chart = v.chart()
	return v
}

func colourOf(outcome string) string {
	if c, ok := outcomeColour[outcome]; ok {
		return c
	}
	return "#000000"
}

// chart lays out one bar per vendor, its length proportional to the
// vendor's rows (the longest bar is the full width).
func (v *summaryView) chart() chart {
	const (
		barX, barWidth, barHeight, gap, top = 130, 440, 22, 12, 8
	)
	c := chart{Width: barX + barWidth + 70, BarX: barX, BarWidth: barWidth}
	var longest int64
	totals := make([]int64, len(v.Vendors))
	for i, vv := range v.Vendors {
		for _, op := range vv.Ops {
			totals[i] += op.Total
		}
		longest = max(longest, totals[i])
	}
	y := top
	for i, vv := range v.Vendors {
		b := chartBar{Vendor: vv.Name, Y: y, TextY: y + barHeight/2 + 5, Total: totals[i]}
		x := float64(barX)
		for j, o := range v.Used {
			var n int64
			for _, op := range vv.Ops {
				n += op.Cells[j]
			}
			if n == 0 || longest == 0 {
				continue
			}
			w := float64(barWidth) * float64(n) / float64(longest)
			b.Segments = append(b.Segments, chartSegment{X: x, W: w, Colour: colourOf(o), Outcome: o, Count: n})
			x += w
		}
		b.EndX = x + 6
		c.Bars = append(c.Bars, b)
		y += barHeight + gap
	}
	c.LegendY = y + 6
	lx := barX
	for _, o := range v.Used {
		c.Legend = append(c.Legend, legendItem{X: lx, TextX: lx + 16, Name: o, Colour: colourOf(o)})
		lx += 22 + 8*len(o)
	}
	c.Width = max(c.Width, lx)
	c.Height = c.LegendY + 22
	return c
}

// md escapes text for a Markdown table cell or line.
func md(s string) string {
	s = strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)), " ")
	return strings.NewReplacer(`\`, `\\`, "|", `\|`, "`", "'", "*", `\*`, "_", `\_`, "<", "&lt;").Replace(s)
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// indent prefixes every line of s with prefix.
func indent(prefix, s string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// Markdown renders the summary for a reader who is not an engineer, from
// templates/summary.md.tmpl.
func (s *Summary) Markdown() ([]byte, error) {
	var b bytes.Buffer
	if err := mdTemplate.Execute(&b, s.view()); err != nil {
		return nil, fmt.Errorf("rendering the Markdown summary: %w", err)
	}
	return b.Bytes(), nil
}

// HTML renders the summary as one self-contained page that prints to PDF,
// from templates/summary.html.tmpl.
func (s *Summary) HTML() ([]byte, error) {
	var b bytes.Buffer
	if err := htmlTemplate.Execute(&b, s.view()); err != nil {
		return nil, fmt.Errorf("rendering the HTML summary: %w", err)
	}
	return b.Bytes(), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
