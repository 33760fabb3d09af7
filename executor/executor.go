// Package executor sends planned batches to the vendors and follows them to
// a final outcome. Vendors run side by side under one errgroup; each has a
// token-bucket limiter (golang.org/x/time/rate) shared by its workers and at
// most MaxInFlight requests at once. Every step is written ahead to the
// ledger: a batch is marked sending before its request leaves and its
// receipt is committed as soon as it arrives, so a crash at any point is
// resumed by the next run without losing an item or recording one twice.
//
// The retry policy (retry.go) backs off exponentially with full jitter,
// honours Retry-After, does not count 429s against the retry budget, waits
// out Batch.com's 409 for a user being processed, splits a batch rejected
// for a bad item down to the item at fault, and stops a vendor whose
// credentials are refused while the others go on.
package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor/vendorapi"
	"github.com/privsync/privsync/ledger"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// Ledger is what the executor records its work in; *ledger.DB is one.
type Ledger interface {
	OpenBatches(ctx context.Context, vendor string) ([]*ledger.Batch, error)
	LoadItems(ctx context.Context, b *ledger.Batch) error
	MarkSending(ctx context.Context, b *ledger.Batch) error
	MarkSubmitted(ctx context.Context, b *ledger.Batch, ref string) error
	NoteError(ctx context.Context, b *ledger.Batch, msg string) error
	Unsend(ctx context.Context, b *ledger.Batch, msg string) error
	Split(ctx context.Context, b *ledger.Batch) ([]*ledger.Batch, error)
	Resolve(ctx context.Context, runID string, b *ledger.Batch, results []ledger.Result) ([]*ledger.Batch, error)
}

var _ Ledger = (*ledger.DB)(nil)

// Vendor is one configured vendor as the executor drives it.
type Vendor struct {
	Name         string
	Conn         Connector
	Limiter      *rate.Limiter
	MaxInFlight  int
	PollInterval time.Duration // first wait before asking for a batch's status
}

// Progress is told what happens, for progress bars; it may be nil.
type Progress interface {
	Sent(vendor string, items int)
	Resolved(vendor string, items int)
}

// Options tune an execution.
type Options struct {
	RunID string
	// Wait bounds how long submitted batches are polled; what is still
	// pending then is picked up by the next run or `status --poll`.
	Wait time.Duration
	// Deadline, when set, is the end of the wait instead: a run that
	// executes twice (an interrupted run's leftovers, then its own plan)
	// waits --wait in all.
	Deadline time.Time
	// PollOnly only polls submitted batches (status --poll); nothing is sent.
	PollOnly bool
	Retry    Policy
	Log      *slog.Logger
	Progress Progress
	// Resolved is called after outcomes are committed (the report follows
	// the ledger); it must be safe for concurrent use.
	Resolved func(ctx context.Context)
	Now      func() time.Time
	// CalmAfter is how long a vendor must answer without a 429 or a
	// retryable error before the log says it recovered (default
	// DefaultCalmAfter). Retries are logged per request at debug level
	// only; at info level, one line when a vendor's trouble starts, one
	// when it ends, and its counts at the end.
	CalmAfter time.Duration
}

// Result sums up an execution.
type Result struct {
	// Stopped maps each vendor stopped for the run to why.
	Stopped map[string]string
	// Stats counts each vendor's requests.
	Stats map[string]VendorStats
}

// Execute works every open batch of the vendors to a final outcome, or
// until opts.Wait runs out for what the vendors have not confirmed. A
// vendor's own failure is recorded, not returned, so the others go on;
// the error is for the ledger failing or ctx being cancelled.
func Execute(ctx context.Context, led Ledger, vendors []Vendor, opts Options) (*Result, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.Retry = opts.Retry.withDefaults()
	res := &Result{Stopped: map[string]string{}, Stats: map[string]VendorStats{}}
	var mu sync.Mutex
	deadline := opts.Deadline
	if deadline.IsZero() {
		deadline = opts.Now().Add(opts.Wait)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, v := range vendors {
		log := opts.Log.With("vendor", v.Name)
		r := &runner{v: v, led: led, opts: opts, deadline: deadline, log: log,
			sem: make(chan struct{}, max(v.MaxInFlight, 1)), pace: newPacer(log, opts.Now, opts.CalmAfter)}
		g.Go(func() error {
			err := r.run(gctx)
			stats := r.pace.finish(ctx)
			mu.Lock()
			res.Stats[v.Name] = stats
			if r.stopped != "" {
				res.Stopped[v.Name] = r.stopped
			}
			mu.Unlock()
			return err
		})
	}
	return res, g.Wait()
}

// runner drives one vendor.
type runner struct {
	v        Vendor
	led      Ledger
	opts     Options
	deadline time.Time
	log      *slog.Logger
	sem      chan struct{} // requests in flight
	pace     *pacer

	mu      sync.Mutex
	stopped string // why the vendor was stopped, "" while it runs
	q       *queue
	held    atomic.Int64 // items kept by queued status requests
}

func (r *runner) run(ctx context.Context) error {
	batches, err := r.led.OpenBatches(ctx, r.v.Name)
	if err != nil {
		return err
	}
	if len(batches) == 0 {
		return nil
	}
	r.q = newQueue(r.opts.Now)
	now := r.opts.Now()
	for _, b := range batches {
		switch {
		case b.State == ledger.BatchSubmitted:
			r.q.push(&task{b: b, poll: true, at: now, interval: r.pollInterval()})
		case !r.opts.PollOnly:
			r.q.push(&task{b: b, at: now})
		}
	}
	workers := max(r.v.MaxInFlight*4, 8)
	g, gctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			for {
				t := r.q.pop(gctx)
				if t == nil {
					return gctx.Err()
				}
				err := r.handle(gctx, t)
				r.q.done()
				if err != nil {
					return err
				}
			}
		})
	}
	err = g.Wait()
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (r *runner) isStopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped != ""
}

func (r *runner) stop(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped == "" {
		r.stopped = why
		r.log.Error("vendor stopped for this run; its batches stay planned for the next run", "reason", why)
		// why carries the vendor's answer to a credential problem (HTTP
		// status and message), not a subject: it says what to fix.
	}
}

// handle does one task: sends a batch (with its retries), or asks once
// for its status; what remains is queued for later.
func (r *runner) handle(ctx context.Context, t *task) error {
	b := t.b
	// Items are read when a batch is worked on, unless the batch still
	// holds them (a follow-up released with its items, a half of a split,
	// a poll that kept them: see schedulePoll). What the ledger holds is
	// what the batch holds: only this task changes its items.
	r.held.Add(-int64(t.held))
	if b.Items == nil {
		if err := r.led.LoadItems(ctx, b); err != nil {
			return err
		}
	}
	if len(b.Items) == 0 {
		return r.resolve(ctx, b, nil) // done: release what follows it
	}
	if r.isStopped() {
		return nil
	}
	if t.poll {
		return r.poll(ctx, t)
	}
	if err := r.send(ctx, b); err != nil || b.State != ledger.BatchSubmitted {
		return err
	}
	r.schedulePoll(b, r.pollInterval())
	return nil
}

func (r *runner) pollInterval() time.Duration {
	if r.v.PollInterval > 0 {
		return r.v.PollInterval
	}
	return 2 * time.Second
}

// maxHeldItems bounds the items a vendor's queued status requests keep in
// memory: up to it, a poll reuses the items its send held (Batch.com's
// one-user batches need no second read of the ledger); past it, they are
// let go and read again when polled, so a backfill of millions holds only
// the batches in hand.
const maxHeldItems = 100_000

// schedulePoll queues a status request after wait, or at the deadline if
// that comes first (the last request lands on it); none once it has passed:
// what is pending then is picked up by the next run.
func (r *runner) schedulePoll(b *ledger.Batch, wait time.Duration) {
	now := r.opts.Now()
	remaining := r.deadline.Sub(now)
	if remaining <= 0 {
		b.Items = nil
		return
	}
	t := &task{b: b, poll: true, at: now.Add(min(wait, remaining)), interval: min(wait*2, r.opts.Retry.PollCap)}
	if n := int64(len(b.Items)); n > 0 && r.held.Add(n) <= maxHeldItems {
		t.held = len(b.Items) // not touched once queued
	} else {
		r.held.Add(-n)
		b.Items = nil // read again when polled
	}
	r.q.push(t)
}

// request runs one HTTP exchange under the vendor's limits.
func (r *runner) request(ctx context.Context, fn func(context.Context) error) error {
	if err := r.v.Limiter.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("waiting for %s's rate limit: %w", r.v.Name, err)
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.sem }()
	err := fn(ctx)
	r.pace.observe(ctx, err)
	return err
}

func toAPIItems(b *ledger.Batch) []vendorapi.Item {
	items := make([]vendorapi.Item, len(b.Items))
	for i, it := range b.Items {
		items[i] = vendorapi.Item{IDType: it.IDType, SubjectID: it.SubjectID, Op: it.Op, Restrictions: it.Restrictions}
	}
	return items
}

// send submits b until the vendor takes it, rejects it, or retries run out.
func (r *runner) send(ctx context.Context, b *ledger.Batch) error {
	items := toAPIItems(b)
	bo := r.opts.Retry.backoff()
	if b.State == ledger.BatchSending {
		if held, err := r.adopt(ctx, b, items); held != absent || err != nil {
			return err
		}
	}
	for {
		if r.isStopped() {
			return nil
		}
		if err := r.led.MarkSending(ctx, b); err != nil {
			return err
		}
		var rec vendorapi.Receipt
		err := r.request(ctx, func(ctx context.Context) error {
			var err error
			rec, err = r.v.Conn.Submit(ctx, items)
			return err
		})
		if err == nil {
			r.log.Debug("batch accepted", "batch", b.ID, "ref", rec.Ref, "items", len(items))
			r.progressSent(len(items))
			if rec.Final {
				// No status endpoint: the receipt and the accepted outcome
				// commit together, or a crash between them would leave a
				// batch to poll that the vendor cannot be asked about.
				b.VendorRef = rec.Ref
				return r.resolveAll(ctx, b, privsync.OutcomeAccepted, "")
			}
			return r.led.MarkSubmitted(ctx, b, rec.Ref)
		}
		if ctx.Err() != nil {
			return ctx.Err() // left in sending: the next run sends it again
		}
		action := vendorapi.ActionOf(err)
		level := slog.LevelWarn
		switch {
		case action == vendorapi.Reject && len(b.Items) > 1:
			level = slog.LevelInfo // expected: the split finds the item at fault
		case action == vendorapi.Retry || action == vendorapi.RetryLater:
			level = slog.LevelDebug // the pacer summarises retries
		}
		r.logErr(ctx, level, "request failed", err, "batch", b.ID, "attempt", b.Attempts, "action", action.String())
		if action == vendorapi.Retry || action == vendorapi.RetryLater {
			// The request may have reached the vendor (its answer lost, or
			// the 409 is about it): follow it rather than send a second one.
			if held, err := r.adopt(ctx, b, items); held != absent || err != nil {
				return err
			}
		}
		switch action {
		case vendorapi.Retry, vendorapi.RetryLater:
			wait, ok := bo.next(err, r.opts.Now(), r.deadline)
			if !ok {
				if action == vendorapi.RetryLater || isRateLimited(err) {
					// Never the subject's fault: leave it for the next run.
					return r.led.Unsend(ctx, b, err.Error())
				}
				r.logErr(ctx, slog.LevelWarn, "gave up on a batch: every retry failed", err, "batch", b.ID, "attempts", b.Attempts)
				return r.resolveAll(ctx, b, privsync.OutcomeFailed, fmt.Sprintf("gave up after %d attempts: %v", b.Attempts, err))
			}
			if r.opts.Now().Add(wait).After(r.deadline) {
				// A Retry-After past --wait: the next run sends it.
				return r.led.Unsend(ctx, b, err.Error())
			}
			if err := r.led.NoteError(ctx, b, err.Error()); err != nil {
				return err
			}
			if err := sleep(ctx, wait); err != nil {
				return err
			}
		case vendorapi.Reject:
			if len(b.Items) > 1 {
				halves, serr := r.led.Split(ctx, b)
				if serr != nil {
					return serr
				}
				r.log.Info("batch rejected as a whole: split in halves to find the items at fault", "batch", b.ID, "items", len(b.Items))
				for _, h := range halves {
					r.q.push(&task{b: h, at: r.opts.Now()})
				}
				return nil
			}
			return r.resolveAll(ctx, b, privsync.OutcomeFailed, "the vendor rejected it: "+err.Error())
		default: // StopVendor, NotFound: every later request would fail the same way
			r.stop(fmt.Sprintf("%v (check the vendor's credentials, account id and base_url)", err))
			return r.led.Unsend(ctx, b, err.Error())
		}
	}
}

// held is what a look-up for an earlier request found.
type held int

const (
	absent  held = iota // no earlier request: sending is safe
	adopted             // the vendor holds it: its receipt is recorded
	unknown             // the look-up failed: b is left in sending
)

// adopt asks a Finder whether the vendor already holds b's request and,
// if so, records its receipt instead of sending b again. When the vendor
// cannot be asked before the deadline, b is left in sending for the next
// run to look again: a Finder's vendor is one where a second request is
// not harmless (a second Batch.com review is a second report), so
// privsync does not send again what may have arrived.
func (r *runner) adopt(ctx context.Context, b *ledger.Batch, items []vendorapi.Item) (held, error) {
	f, ok := r.v.Conn.(Finder)
	if !ok || len(items) != 1 {
		return absent, nil
	}
	since := b.CreatedAt.Add(-time.Minute) // allow for clock skew with the vendor
	var ref string
	var found bool
	bo := r.opts.Retry.backoff()
	for {
		err := r.request(ctx, func(ctx context.Context) error {
			var err error
			ref, found, err = f.Find(ctx, items[0], since)
			return err
		})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return unknown, ctx.Err()
		}
		wait, ok := bo.next(err, r.opts.Now(), r.deadline)
		if a := vendorapi.ActionOf(err); (a != vendorapi.Retry && a != vendorapi.RetryLater) || !ok || r.opts.Now().Add(wait).After(r.deadline) {
			r.logErr(ctx, slog.LevelWarn, "could not look for an earlier request; the next run looks again before sending", err, "batch", b.ID)
			if a == vendorapi.StopVendor || a == vendorapi.NotFound {
				r.stop(fmt.Sprintf("%v (check the vendor's credentials, account id and base_url)", err))
			}
			return unknown, nil
		}
		if err := sleep(ctx, wait); err != nil {
			return unknown, err
		}
	}
	if !found {
		return absent, nil
	}
	r.log.Info("the vendor already holds this request: following it instead of sending again", "batch", b.ID)
	if err := r.led.MarkSubmitted(ctx, b, ref); err != nil {
		return unknown, err
	}
	r.progressSent(len(items))
	return adopted, nil
}

// logErr logs a failed request at level with its HTTP status, and the
// vendor's message (which may name subjects: Bloomreach's 400 does) only
// at debug level; the report keeps the message against the items.
func (r *runner) logErr(ctx context.Context, level slog.Level, msg string, err error, args ...any) {
	var ve *vendorapi.Error
	if errors.As(err, &ve) && ve.StatusCode != 0 {
		args = append(args, "status", ve.StatusCode)
		if ve.Code != "" {
			args = append(args, "code", ve.Code)
		}
	} else {
		args = append(args, "error", "network: "+networkCause(err))
	}
	r.log.Log(ctx, level, msg, args...)
	r.log.Debug(msg+": vendor's answer", "error", err)
}

// networkCause names a network failure without the request's URL (it
// holds account ids in its path).
func networkCause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

func isRateLimited(err error) bool {
	var ve *vendorapi.Error
	return errors.As(err, &ve) && ve.StatusCode == 429
}

// poll asks once for a submitted batch's status, records what is final,
// and queues the next request with back-off while items are pending.
func (r *runner) poll(ctx context.Context, t *task) error {
	b := t.b
	items := toAPIItems(b)
	var statuses []vendorapi.ItemStatus
	err := r.request(ctx, func(ctx context.Context) error {
		var err error
		statuses, err = r.v.Conn.Poll(ctx, b.VendorRef, items)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch vendorapi.ActionOf(err) {
		case vendorapi.NotFound:
			return r.resolveAll(ctx, b, privsync.OutcomeExpired, "the vendor no longer knows this request: "+err.Error())
		case vendorapi.StopVendor:
			r.stop(fmt.Sprintf("%v (check the vendor's credentials)", err))
			return nil
		}
		level := slog.LevelWarn
		if a := vendorapi.ActionOf(err); a == vendorapi.Retry || a == vendorapi.RetryLater {
			level = slog.LevelDebug // the pacer summarises retries
		}
		r.logErr(ctx, level, "status request failed; asking again later", err, "batch", b.ID)
		wait := t.interval
		var ve *vendorapi.Error
		if errors.As(err, &ve) && ve.RetryAfter > wait {
			wait = ve.RetryAfter
		}
		r.schedulePoll(b, wait)
		return nil
	}
	if err := r.apply(ctx, b, statuses); err != nil {
		return err
	}
	if len(b.Items) > 0 {
		r.schedulePoll(b, t.interval)
	}
	return nil
}

// apply records the final statuses among statuses.
func (r *runner) apply(ctx context.Context, b *ledger.Batch, statuses []vendorapi.ItemStatus) error {
	type subject struct{ idType, id string }
	bySubject := map[subject]*vendorapi.ItemStatus{}
	for i := range statuses {
		bySubject[subject{statuses[i].IDType, statuses[i].SubjectID}] = &statuses[i]
	}
	var results []ledger.Result
	for _, it := range b.Items {
		st := bySubject[subject{it.IDType, it.SubjectID}]
		if st == nil {
			continue
		}
		var o privsync.Outcome
		switch st.State {
		case vendorapi.StateDone:
			o = privsync.OutcomeCompleted
		case vendorapi.StateFailed:
			o = privsync.OutcomeFailed
		case vendorapi.StateExpired:
			o = privsync.OutcomeExpired
		default:
			continue
		}
		results = append(results, ledger.Result{ItemID: it.ID, Outcome: o, Detail: st.Detail, DataURL: st.DataURL})
	}
	if len(results) == 0 {
		return nil
	}
	return r.resolve(ctx, b, results)
}

func (r *runner) resolveAll(ctx context.Context, b *ledger.Batch, o privsync.Outcome, detail string) error {
	results := make([]ledger.Result, len(b.Items))
	for i, it := range b.Items {
		results[i] = ledger.Result{ItemID: it.ID, Outcome: o, Detail: detail}
	}
	return r.resolve(ctx, b, results)
}

func (r *runner) resolve(ctx context.Context, b *ledger.Batch, results []ledger.Result) error {
	released, err := r.led.Resolve(ctx, r.opts.RunID, b, results)
	if err != nil {
		return err
	}
	if r.opts.Progress != nil {
		r.opts.Progress.Resolved(r.v.Name, len(results))
	}
	if r.opts.Resolved != nil {
		r.opts.Resolved(ctx)
	}
	for _, nb := range released {
		r.q.push(&task{b: nb, at: r.opts.Now()})
	}
	return nil
}

func (r *runner) progressSent(n int) {
	if r.opts.Progress != nil {
		r.opts.Progress.Sent(r.v.Name, n)
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
