package main

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/privsync/privsync/executor"
	"github.com/privsync/privsync/ledger"
)

// runMetrics gathers a run's figures for --metrics-file: the Prometheus
// text format, as node_exporter's textfile collector reads it. Every
// figure is a gauge: each run replaces the file, so they describe the last
// run rather than count up across runs.
type runMetrics struct {
	start time.Time
	items map[[2]string]int // (vendor, outcome) → report rows
	reqs  map[string]executor.VendorStats
}

func newRunMetrics(start time.Time) *runMetrics {
	return &runMetrics{start: start, items: map[[2]string]int{}, reqs: map[string]executor.VendorStats{}}
}

// addRequests adds an execution's request counts.
func (r *runMetrics) addRequests(stats map[string]executor.VendorStats) {
	for v, s := range stats {
		t := r.reqs[v]
		t.Requests += s.Requests
		t.RateLimited += s.RateLimited
		t.Retried += s.Retried
		t.Failed += s.Failed
		r.reqs[v] = t
	}
}

// countItems counts the run's report rows by vendor and outcome.
func (r *runMetrics) countItems(ctx context.Context, db *ledger.DB, runID string) error {
	clear(r.items)
	return db.Events(ctx, runID, 0, func(e *ledger.Event) error {
		r.items[[2]string{e.Vendor, e.Outcome}]++
		return nil
	})
}

// write writes the figures to path atomically (a temporary file in the same
// directory, renamed over it), so the collector never reads half a file.
func (r *runMetrics) write(path string, end time.Time, code int) error {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "privsync", Name: name, Help: help}, labels)
		reg.MustRegister(g)
		return g
	}
	items := gauge("run_items", "Report rows of the last run by vendor and outcome (vendor empty: a rejected input row).", "vendor", "outcome")
	for k, n := range r.items {
		items.WithLabelValues(k[0], k[1]).Set(float64(n))
	}
	reqs := gauge("run_requests", "HTTP requests the last run made to each vendor.", "vendor")
	limited := gauge("run_rate_limited_responses", "429 answers the last run got from each vendor.", "vendor")
	retried := gauge("run_retried_requests", "Requests of the last run that failed with a retryable error (429s included) and were tried again.", "vendor")
	failed := gauge("run_failed_requests", "Requests of the last run that failed, whatever the cause.", "vendor")
	for v, s := range r.reqs { // the registry sorts what it writes
		reqs.WithLabelValues(v).Set(float64(s.Requests))
		limited.WithLabelValues(v).Set(float64(s.RateLimited))
		retried.WithLabelValues(v).Set(float64(s.Retried))
		failed.WithLabelValues(v).Set(float64(s.Failed))
	}
	gauge("run_duration_seconds", "How long the last run took.").WithLabelValues().Set(end.Sub(r.start).Seconds())
	gauge("run_end_timestamp_seconds", "When the last run ended, in seconds since the Unix epoch.").WithLabelValues().Set(float64(end.UnixMilli()) / 1e3)
	gauge("run_exit_code", "The last run's exit code: 0 ok, 1 run-time failure, 2 bad usage or input, 3 some items failed.").WithLabelValues().Set(float64(code))
	if err := prometheus.WriteToTextfile(path, reg); err != nil {
		return fmt.Errorf("writing the metrics file %s: %w", path, err)
	}
	return nil
}
