package executor_test

import (
	"context"
	"database/sql"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/executor"
	"github.com/privsync/privsync/executor/batch"
	"github.com/privsync/privsync/executor/sim"
	"github.com/privsync/privsync/executor/vendorapi"
	"github.com/privsync/privsync/ledger"
	"github.com/privsync/privsync/planner"
	"golang.org/x/time/rate"
)

type rowList []privsync.Row

func (rs rowList) Read(ctx context.Context, h planner.RowHandler) error {
	for i := range rs {
		r := rs[i]
		if err := h.Row(&r); err != nil {
			return err
		}
	}
	return nil
}

// planned opens a ledger in dir and plans rs in run r1.
func planned(t *testing.T, path string, rs ...privsync.Row) *ledger.DB {
	t.Helper()
	ctx := context.Background()
	db, err := ledger.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.StartRun(ctx, &ledger.Run{ID: "r1", StartedAt: time.Now(), Mode: "incremental"}, nil); err != nil {
		t.Fatal(err)
	}
	err = db.WritePlan(ctx, "r1", func(l planner.Ledger, s planner.Sink) error {
		_, err := planner.Plan(ctx, rowList(rs), l, s, planner.Options{Vendors: sim.Kinds,
			Limits: map[string]int{sim.SFMC: 1000, sim.Batch: 1, sim.Bloomreach: 1000},
			Rules:  planner.Rules{Now: time.Now(), SuppressionWindow: 14 * 24 * time.Hour}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// Defect 3: the batches a batch releases when it is done are sent in the
// same run, also when it had nothing left to send.
func TestReleasedBatchesAreSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "l.db")
		row := privsync.Row{Key: privsync.Key{Vendor: sim.Batch, IDType: "custom_id", SubjectID: "u1"}, AccessRequest: "T1",
			Erasure: privsync.EraseDelete, UpdatedAt: time.Now()}
		db := planned(t, path, row)
		// The review's item is final but its batch is not done (as a crash
		// between the two once left it): the remove waits behind it.
		raw, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(`UPDATE items SET outcome = 'completed' WHERE operation = 'review'`); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		w := sim.NewWorld(1)
		w.Start(0, false, nil, nil)
		vendors, err := w.Vendors()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := executor.Execute(context.Background(), db, vendors, executor.Options{RunID: "r1", Wait: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if n := w.SubmitCount(); n != 1 {
			t.Fatalf("%d requests sent, want the remove released by the review's batch", n)
		}
	})
}

// Defect 7: a Retry-After longer than --wait does not hold the run: the
// batch is left for the next run.
func TestLongRetryAfterDoesNotOutlastTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		db := planned(t, filepath.Join(t.TempDir(), "l.db"),
			privsync.Row{Key: privsync.Key{Vendor: sim.SFMC, SubjectID: "p1"}, Restrictions: privsync.DoNotTrack, UpdatedAt: time.Now()})
		w := sim.NewWorld(1)
		w.SetNight(sim.Faults{Err5xx: 1, LongRetryAfter: true}, 0)
		w.Start(0, false, nil, nil)
		vendors, _ := w.Vendors()
		start := time.Now()
		if _, err := executor.Execute(context.Background(), db, vendors, executor.Options{RunID: "r1", Wait: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 2*time.Minute {
			t.Fatalf("Execute took %v with a one-minute wait", took)
		}
		open, err := db.OpenBatches(context.Background(), sim.SFMC)
		if err != nil || len(open) != 1 || open[0].State != ledger.BatchPlanned {
			t.Fatalf("open batches %v, %v: want the batch planned again for the next run", open, err)
		}
	})
}

// fakeConn answers every poll with the statuses given, per id type.
type fakeConn struct{ states map[string]vendorapi.State }

func (fakeConn) MaxItems() int { return 1000 }
func (fakeConn) Submit(ctx context.Context, items []vendorapi.Item) (vendorapi.Receipt, error) {
	return vendorapi.Receipt{Ref: "ref"}, nil
}
func (f fakeConn) Poll(ctx context.Context, ref string, items []vendorapi.Item) ([]vendorapi.ItemStatus, error) {
	var out []vendorapi.ItemStatus
	for _, it := range items {
		out = append(out, vendorapi.ItemStatus{IDType: it.IDType, SubjectID: it.SubjectID, State: f.states[it.IDType]})
	}
	return out, nil
}

// Defect 8: statuses are matched to items by id type and subject id: the
// same id under two id types is two subjects.
func TestStatusesMatchedByIDTypeAndSubject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		db := planned(t, filepath.Join(t.TempDir(), "l.db"),
			privsync.Row{Key: privsync.Key{Vendor: sim.Bloomreach, IDType: "registered", SubjectID: "x"}, Erasure: privsync.EraseDelete, UpdatedAt: now},
			privsync.Row{Key: privsync.Key{Vendor: sim.Bloomreach, IDType: "email", SubjectID: "x"}, Erasure: privsync.EraseDelete, UpdatedAt: now})
		conn := fakeConn{states: map[string]vendorapi.State{"registered": vendorapi.StateDone, "email": vendorapi.StatePending}}
		vendors := []executor.Vendor{{Name: sim.Bloomreach, Conn: conn, Limiter: rate.NewLimiter(rate.Inf, 1), MaxInFlight: 1}}
		if _, err := executor.Execute(context.Background(), db, vendors, executor.Options{RunID: "r1", Wait: time.Minute}); err != nil {
			t.Fatal(err)
		}
		in, err := sim.InspectLedger(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, it := range in.Items {
			got[it.Key.IDType] = it.Outcome
		}
		if got["registered"] != "completed" || got["email"] != "pending" {
			t.Fatalf("outcomes %v, want registered completed and email pending", got)
		}
	})
}

// lossyBatch serves the Batch.com simulator in memory: the first request
// creating a user's request is applied and its answer lost, and the list
// of requests answers 503 with a Retry-After of an hour while listDown.
type lossyBatch struct {
	sim      *batch.Sim
	mu       sync.Mutex
	listDown bool
	lost     bool
	posts    int
}

func (l *lossyBatch) RoundTrip(req *http.Request) (*http.Response, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := httptest.NewRecorder()
	switch {
	case req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/requests") && l.listDown:
		rec.Header().Set("Retry-After", "3600")
		rec.WriteHeader(http.StatusServiceUnavailable)
		rec.WriteString(`{"code":2,"error":"MAINTENANCE_ERROR","message":"down"}`)
	default:
		l.sim.ServeHTTP(rec, req)
		if req.Method == http.MethodPost {
			l.posts++
			if !l.lost {
				l.lost = true
				return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
			}
		}
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// Seed 3735: a review whose answer was lost is not sent again while the
// vendor's request list cannot be read (it may hold the first one); the
// next run looks again and follows the request the vendor holds.
func TestLostReviewNotSentAgainBlind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		db := planned(t, filepath.Join(t.TempDir(), "l.db"),
			privsync.Row{Key: privsync.Key{Vendor: sim.Batch, IDType: "custom_id", SubjectID: "u1"}, AccessRequest: "T1", UpdatedAt: time.Now()})
		bs := batch.NewSim(batch.SimOptions{})
		lossy := &lossyBatch{sim: bs, listDown: true}
		conn, err := batch.New(batch.Config{BaseURL: "http://batch.test", AppAPIKey: "app", RESTAPIKey: "k", HTTPClient: &http.Client{Transport: lossy}})
		if err != nil {
			t.Fatal(err)
		}
		vendors := []executor.Vendor{{Name: sim.Batch, Conn: conn, Limiter: rate.NewLimiter(rate.Inf, 1), MaxInFlight: 1}}
		if _, err := executor.Execute(ctx, db, vendors, executor.Options{RunID: "r1", Wait: 10 * time.Minute}); err != nil {
			t.Fatal(err)
		}
		if lossy.posts != 1 {
			t.Fatalf("%d reviews sent while the vendor could not be asked whether it holds the first", lossy.posts)
		}
		lossy.listDown = false
		if _, err := executor.Execute(ctx, db, vendors, executor.Options{RunID: "r1", Wait: 10 * time.Minute}); err != nil {
			t.Fatal(err)
		}
		if got := bs.State()["app"]["custom_id:u1"].Reviews; lossy.posts != 1 || got != 1 {
			t.Fatalf("%d requests sent, the vendor made %d reports: want the first request followed", lossy.posts, got)
		}
		in, err := sim.InspectLedger(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if len(in.Items) != 1 || in.Items[0].Outcome != string(privsync.OutcomeCompleted) {
			t.Fatalf("items %+v, want the review completed", in.Items)
		}
	})
}
