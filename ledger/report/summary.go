package report

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/privsync/privsync"
	"github.com/privsync/privsync/ledger"
	"golang.org/x/crypto/ssh"
)

// SummarySource is what WriteSummary reads the run's events from.
// *ledger.DB satisfies it.
type SummarySource interface {
	Source
}

// InputFile is one input file of a run. It decodes the ledger's RunInputs
// (ingest.FileInfo marshalled with its Go field names) as well as its own
// JSON.
type InputFile struct {
	Path     string `json:"path"`
	Format   string `json:"format"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	ETag     string `json:"etag,omitempty"` // an object's version (ETag or generation)
	Rows     int64  `json:"rows"`
	Rejected int64  `json:"rejected"`
}

// ParseInputs decodes the JSON array the ledger keeps for a run's inputs
// ((*ledger.DB).RunInputs).
func ParseInputs(raw json.RawMessage) ([]InputFile, error) {
	var in []InputFile
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("reading the run's inputs: %w", err)
	}
	return in, nil
}

// SummaryInfo is what the summary says about a run that the events do not.
type SummaryInfo struct {
	Mode       string      // incremental or snapshot
	StartedAt  time.Time   // zero if unknown
	FinishedAt time.Time   // zero if unknown
	Inputs     []InputFile // see ParseInputs
	// PreviousRun is the ledger's run before this one, "" for the first:
	// the summary records it and the SHA-256 of its summary in dir, which
	// chains the runs.
	PreviousRun string
	// Signer, if set, signs the summary (SSHSIG, namespace Namespace).
	Signer ssh.Signer
}

// Summary is the content of {run_id}.summary.json.
type Summary struct {
	RunID      string      `json:"run_id"`
	Mode       string      `json:"mode"`
	StartedAt  string      `json:"started_at,omitempty"`
	FinishedAt string      `json:"finished_at,omitempty"`
	Inputs     []InputFile `json:"inputs"`
	Report     ReportFile  `json:"report"`
	// Counts holds report rows per vendor, operation and outcome; "(none)"
	// stands for an empty vendor or operation (a rejected input row).
	Counts   map[string]map[string]map[string]int64 `json:"counts"`
	Outcomes map[string]int64                       `json:"outcomes"`
	// Reasons are the commonest details of rows that did not succeed.
	Reasons []Reason `json:"reasons"`
	// Previous links the run to the one before it; null for the first run
	// of a ledger.
	Previous *PreviousRun `json:"previous"`
	// SigningKey is the fingerprint of the key that signed the summary
	// ({run_id}.summary.json.sig), empty if it is not signed. Recording it
	// in the signed, chained file makes a removed signature show.
	SigningKey string `json:"signing_key,omitempty"`
}

// PreviousRun is the run before a run, and the SHA-256 of its summary
// file as it was when the later run ended ("" if it had none).
type PreviousRun struct {
	RunID         string `json:"run_id"`
	SummarySHA256 string `json:"summary_sha256"`
}

// ReportFile identifies the CSV a summary belongs to.
type ReportFile struct {
	File      string `json:"file"`
	Rows      int64  `json:"rows"`
	FinalHash string `json:"final_hash"`
	Algorithm string `json:"algorithm"`
}

// Reason is how often one reason explains one outcome at one vendor.
type Reason struct {
	Outcome string `json:"outcome"`
	Vendor  string `json:"vendor"`
	Reason  string `json:"reason"`
	Count   int64  `json:"count"`
}

const algorithm = "sha256 over the fields seq..prev_hash as written, joined by U+001F; first prev_hash 64 zeros"

// SummaryPaths returns the JSON and Markdown summary files of a run in dir.
func SummaryPaths(dir, runID string) (jsonPath, mdPath string) {
	return filepath.Join(dir, runID+".summary.json"), filepath.Join(dir, runID+".summary.md")
}

// HTMLPath returns the HTML summary of a run in dir.
func HTMLPath(dir, runID string) string { return filepath.Join(dir, runID+".summary.html") }

// FileSHA256 returns the lowercase hex SHA-256 of a file.
func FileSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// WriteSummary brings the run's report in dir up to date with src (as
// Sync does), then writes {run_id}.summary.json beside it, with its
// signature {run_id}.summary.json.sig (when info.Signer is set) and its
// renderings for people, {run_id}.summary.md and {run_id}.summary.html.
// Counts come from the report's rows; the summary records the report's row
// count and final hash, which is what proves, later, that no row was cut
// from its end, and the previous run's summary hash, which chains the runs.
// The JSON is written last: a summary that exists is complete.
func WriteSummary(ctx context.Context, dir, runID string, src SummarySource, info SummaryInfo) error {
	w, err := Open(dir, runID)
	if err != nil {
		return err
	}
	err = w.WriteSummary(ctx, src, info)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteSummary is the package's WriteSummary through a Writer already open
// on the run's report: its counts are those of the rows w has checked or
// appended since it was opened (every row of the run), so a run's events
// are not read from the ledger again to sum them up.
func (w *Writer) WriteSummary(ctx context.Context, src SummarySource, info SummaryInfo) error {
	if err := w.Sync(ctx, src); err != nil {
		return err
	}
	w.mu.Lock()
	agg, rows, final := w.agg, w.seq, w.prev
	w.mu.Unlock()
	if agg == nil {
		agg = newAggregate() // a run without events
	}
	dir := filepath.Dir(w.Path())
	s := &Summary{RunID: w.runID, Mode: info.Mode, Inputs: info.Inputs,
		Report: ReportFile{File: filepath.Base(w.Path()), Rows: rows, FinalHash: final, Algorithm: algorithm},
		Counts: agg.counts, Outcomes: agg.outcomes, Reasons: agg.reasons()}
	if s.Inputs == nil {
		s.Inputs = []InputFile{}
	}
	if !info.StartedAt.IsZero() {
		s.StartedAt = info.StartedAt.UTC().Format(time.RFC3339)
	}
	if !info.FinishedAt.IsZero() {
		s.FinishedAt = info.FinishedAt.UTC().Format(time.RFC3339)
	}
	if info.PreviousRun != "" {
		s.Previous = &PreviousRun{RunID: info.PreviousRun}
		prevJSON, _ := SummaryPaths(dir, info.PreviousRun)
		h, err := FileSHA256(prevJSON)
		switch {
		case err == nil:
			s.Previous.SummarySHA256 = h
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("chaining to the previous run: %w", err)
		}
	}
	if info.Signer != nil {
		s.SigningKey = Fingerprint(info.Signer.PublicKey())
	}
	return s.write(dir, info.Signer)
}

// write writes the summary's files: the signature (or removes a stale
// one), the Markdown and HTML renderings, and the JSON last.
func (s *Summary) write(dir string, signer ssh.Signer) error {
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the summary: %w", err)
	}
	js = append(js, '\n')
	jsonPath, mdPath := SummaryPaths(dir, s.RunID)
	sigPath := SigPath(jsonPath)
	if signer != nil {
		sig, err := Sign(js, signer)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(sigPath, sig); err != nil {
			return err
		}
	} else if err := os.Remove(sigPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing a stale signature: %w", err)
	}
	mdText, err := s.Markdown()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(mdPath, mdText); err != nil {
		return err
	}
	page, err := s.HTML()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(HTMLPath(dir, s.RunID), page); err != nil {
		return err
	}
	return writeFileAtomic(jsonPath, js)
}

// ReadSummary reads a {run_id}.summary.json.
func ReadSummary(path string) (*Summary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the summary: %w", err)
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("reading the summary %s: %w", path, err)
	}
	return &s, nil
}

// aggregate counts events.
type aggregate struct {
	counts   map[string]map[string]map[string]int64
	outcomes map[string]int64
	why      map[Reason]int64
}

func newAggregate() *aggregate {
	return &aggregate{counts: map[string]map[string]map[string]int64{}, outcomes: map[string]int64{}, why: map[Reason]int64{}}
}

// merge adds o's counts to a's.
func (a *aggregate) merge(o *aggregate) {
	for v, ops := range o.counts {
		if a.counts[v] == nil {
			a.counts[v] = map[string]map[string]int64{}
		}
		for op, outs := range ops {
			if a.counts[v][op] == nil {
				a.counts[v][op] = map[string]int64{}
			}
			for out, n := range outs {
				a.counts[v][op][out] += n
			}
		}
	}
	for out, n := range o.outcomes {
		a.outcomes[out] += n
	}
	for r, n := range o.why {
		a.why[r] += n
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func (a *aggregate) add(e *ledger.Event) {
	v, op := orNone(e.Vendor), orNone(e.Operation)
	if a.counts[v] == nil {
		a.counts[v] = map[string]map[string]int64{}
	}
	if a.counts[v][op] == nil {
		a.counts[v][op] = map[string]int64{}
	}
	a.counts[v][op][e.Outcome]++
	a.outcomes[e.Outcome]++
	if badOutcome(e.Outcome) {
		detail := e.Detail
		if len(e.SubjectID) >= 3 { // a vendor's message may name the subject: keep it out, and group the rest
			detail = strings.ReplaceAll(detail, e.SubjectID, "(subject id)")
		}
		a.why[Reason{Outcome: e.Outcome, Vendor: v, Reason: reasonOf(detail)}]++
	}
}

// badOutcomes are the outcomes that need explaining, worst first.
var badOutcomes = []string{string(privsync.OutcomeFailed), string(privsync.OutcomeExpired), string(privsync.OutcomeConflict),
	string(privsync.OutcomeRejected), string(privsync.OutcomeUnsupported)}

func badOutcome(o string) bool { return slices.Contains(badOutcomes, o) }

const topReasons = 5

// reasons returns the commonest reasons per outcome, at most topReasons each.
func (a *aggregate) reasons() []Reason {
	all := make([]Reason, 0, len(a.why))
	for r, n := range a.why {
		r.Count = n
		all = append(all, r)
	}
	slices.SortFunc(all, func(x, y Reason) int {
		return cmp.Or(cmp.Compare(slices.Index(badOutcomes, x.Outcome), slices.Index(badOutcomes, y.Outcome)),
			cmp.Compare(y.Count, x.Count), cmp.Compare(x.Vendor, y.Vendor), cmp.Compare(x.Reason, y.Reason))
	})
	out := []Reason{}
	per := map[string]int{}
	for _, r := range all {
		if per[r.Outcome] < topReasons {
			per[r.Outcome]++
			out = append(out, r)
		}
	}
	return out
}

var (
	// "file.csv: row 12, column vendor: " and "file.csv row 12: " locate one
	// input row; the reason is what follows.
	rowPrefix = regexp.MustCompile(`^.*?:? row \d+(?:, column [^:]*)?: `)
	// `(got "...")` quotes an input value, maybe a subject id: never in a summary.
	gotSuffix = regexp.MustCompile(`\s*\(got .*\)$`)
)

// reasonOf turns an event's detail into a reason shared by many rows,
// without the row's location or values.
func reasonOf(detail string) string {
	r := strings.Join(strings.Fields(gotSuffix.ReplaceAllString(rowPrefix.ReplaceAllString(detail, ""), "")), " ")
	if r == "" {
		return "(no detail)"
	}
	if len(r) > 200 {
		r = strings.ToValidUTF8(r[:200], "") + "…"
	}
	return r
}

// writeFileAtomic writes a file through a temporary one renamed over it.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o640); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return syncDir(dir)
}
