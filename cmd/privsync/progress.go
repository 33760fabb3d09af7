package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/privsync/privsync/executor"
	"github.com/schollz/progressbar/v3"
)

// progress shows, on a terminal, items sent and confirmed per vendor on
// one line (progressbar draws one bar per line; several bars would
// overwrite each other), with the overall rate of confirmations.
type progress struct {
	mu      sync.Mutex
	bar     *progressbar.ProgressBar
	order   []string
	sent    map[string]int
	settled map[string]int
}

var _ executor.Progress = (*progress)(nil)

func (m *Main) newProgress(c *common, vendors []executor.Vendor) *progress {
	p := &progress{sent: map[string]int{}, settled: map[string]int{}}
	for _, v := range vendors {
		p.order = append(p.order, v.Name)
	}
	if m.Terminal && !c.quiet {
		p.bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(m.Stderr), progressbar.OptionSetItsString("items"),
			progressbar.OptionShowIts(), progressbar.OptionShowCount(), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSpinnerType(14), progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *progress) Sent(vendor string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent[vendor] += n
	p.describe()
}

func (p *progress) Resolved(vendor string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.settled[vendor] += n
	p.describe()
	if p.bar != nil {
		p.bar.Add(n)
	}
}

func (p *progress) describe() {
	if p.bar == nil {
		return
	}
	parts := make([]string, 0, len(p.order))
	for _, v := range p.order {
		parts = append(parts, fmt.Sprintf("%s %d sent/%d final", v, p.sent[v], p.settled[v]))
	}
	p.bar.Describe(strings.Join(parts, " | "))
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
