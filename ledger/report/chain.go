package report

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// RunCheck is what VerifyDir found about one run of a report directory.
type RunCheck struct {
	RunID     string
	StartedAt time.Time // from the summary; zero without one
	Report    bool      // {run_id}.csv is there
	Rows      int       // rows of the report that verified
	FinalHash string
	Summary   *Summary // nil if there is none (or it does not parse)
	// Unchained is set for a summary written before privsync chained runs
	// (it has no "previous" at all): it starts no chain of its own.
	Unchained bool
	Signature *SignatureCheck // nil if unsigned or the signature is bad
	Problems  []string
}

// DirCheck is what VerifyDir found about a report directory.
type DirCheck struct {
	Runs     []*RunCheck // by run id: oldest first
	Unsigned []string    // runs whose summary is not signed
	// Problems names every run that is missing, reordered or altered, and
	// every bad signature, each on its own line.
	Problems []string
	// Latest is the newest run with a summary: removing it, report and
	// summary, would leave no trace in the directory itself.
	Latest *RunCheck
}

// OK reports whether the directory verified.
func (d *DirCheck) OK() bool { return len(d.Problems) == 0 }

// DirOptions tune VerifyDir.
type DirOptions struct {
	// Allowed, if set, checks every signature against these signers and
	// makes an unsigned summary a problem.
	Allowed *AllowedSigners
	// Expected are runs that must be there (the ledger's finished runs):
	// this catches the removal of the newest run, which the chain cannot.
	Expected []string
}

// VerifyDir checks every report and summary of a report directory: each
// report's hash chain, each report against its summary, each summary's
// signature, and the chain of summaries across runs (each records the run
// before it and the SHA-256 of its summary), naming every run that is
// missing, reordered or altered.
func VerifyDir(dir string, opt DirOptions) (*DirCheck, error) {
	runs, err := listRuns(dir)
	if err != nil {
		return nil, err
	}
	raw := map[string][]byte{} // summary bytes by run
	d := &DirCheck{Runs: make([]*RunCheck, 0, len(runs))}
	for _, r := range runs {
		d.Runs = append(d.Runs, r)
	}
	// Run ids begin with their start time (UTC, to the second).
	slices.SortFunc(d.Runs, func(a, b *RunCheck) int { return cmp.Compare(a.RunID, b.RunID) })
	for _, r := range d.Runs {
		b, err := d.checkRun(dir, r, opt.Allowed)
		if err != nil {
			return nil, err
		}
		if b != nil {
			raw[r.RunID] = b
		}
	}
	slices.Sort(d.Unsigned)
	d.checkChain(runs, raw)
	for _, id := range opt.Expected {
		if runs[id] == nil {
			d.problem(id, "is missing: the ledger holds this run, but neither its report nor its summary is here")
		}
	}
	for _, r := range d.Runs {
		if r.Summary != nil {
			d.Latest = r
		}
	}
	// The newest run may be unfinished (or killed while its summary was
	// written: the next run completes it); an older one has no excuse.
	for _, r := range d.Runs {
		if r.Summary == nil && r != d.Runs[len(d.Runs)-1] {
			d.problem(r.RunID, "has no summary, and a later run exists, so it is not merely unfinished: the summary was removed")
		}
	}
	return d, nil
}

// listRuns finds the runs of a report directory by their files.
func listRuns(dir string) (map[string]*RunCheck, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the report directory: %w", err)
	}
	runs := map[string]*RunCheck{}
	get := func(id string) *RunCheck {
		if runs[id] == nil {
			runs[id] = &RunCheck{RunID: id}
		}
		return runs[id]
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		switch {
		case strings.HasSuffix(name, ".summary.json"):
			get(strings.TrimSuffix(name, ".summary.json"))
		case strings.HasSuffix(name, ".summary.json.sig"):
			get(strings.TrimSuffix(name, ".summary.json.sig"))
		case strings.HasSuffix(name, ".csv"):
			get(strings.TrimSuffix(name, ".csv")).Report = true
		}
	}
	return runs, nil
}

func (d *DirCheck) problem(runID, format string, args ...any) {
	d.Problems = append(d.Problems, "run "+runID+" "+fmt.Sprintf(format, args...))
}

// checkRun checks one run's report, summary and signature, returning the
// summary's bytes.
func (d *DirCheck) checkRun(dir string, r *RunCheck, allowed *AllowedSigners) ([]byte, error) {
	if err := d.checkReport(dir, r); err != nil {
		return nil, err
	}
	jsonPath, _ := SummaryPaths(dir, r.RunID)
	b, err := os.ReadFile(jsonPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading a summary: %w", err)
	}
	if !d.checkSummary(dir, r, b) {
		return b, nil
	}
	return b, d.checkSignature(jsonPath, r, b, allowed)
}

// checkReport checks a run's report chain.
func (d *DirCheck) checkReport(dir string, r *RunCheck) error {
	if r.Report {
		f, err := os.Open(Path(dir, r.RunID))
		if err != nil {
			return fmt.Errorf("reading a report: %w", err)
		}
		rows, final, err := Verify(f)
		f.Close()
		var ce *ChainError
		switch {
		case errors.As(err, &ce):
			d.problem(r.RunID, "was altered: its report %s is not valid: %v", filepath.Base(f.Name()), err)
		case err != nil:
			return err
		default:
			r.Rows, r.FinalHash = rows, final
		}
	}
	return nil
}

// checkSummary parses a run's summary and checks it against the report;
// false if it does not parse.
func (d *DirCheck) checkSummary(dir string, r *RunCheck, b []byte) bool {
	var s Summary
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(b, &s); err != nil {
		d.problem(r.RunID, "was altered: its summary is not valid JSON: %v", err)
		return false
	}
	if err := json.Unmarshal(b, &keys); err == nil {
		_, chained := keys["previous"]
		r.Unchained = !chained
	}
	r.Summary = &s
	r.StartedAt, _ = time.Parse(time.RFC3339, s.StartedAt)
	switch {
	case s.RunID != r.RunID:
		d.problem(r.RunID, "was altered: its summary is about run %q (a file was renamed)", s.RunID)
	case !r.Report:
		d.problem(r.RunID, "is missing its report %s (its summary is here)", s.Report.File)
	case s.Report.File != filepath.Base(Path(dir, r.RunID)):
		d.problem(r.RunID, "was altered: its summary names the report %q", s.Report.File)
	case r.FinalHash != "" && (s.Report.Rows != int64(r.Rows) || s.Report.FinalHash != r.FinalHash):
		d.problem(r.RunID, "was altered: its report has %d rows ending with hash %s, its summary records %d rows ending with %s",
			r.Rows, r.FinalHash, s.Report.Rows, s.Report.FinalHash)
	}
	return true
}

// checkSignature checks a summary's signature, or notes it unsigned.
func (d *DirCheck) checkSignature(jsonPath string, r *RunCheck, b []byte, allowed *AllowedSigners) error {
	s := r.Summary
	sig, err := os.ReadFile(SigPath(jsonPath))
	switch {
	case errors.Is(err, os.ErrNotExist):
		d.Unsigned = append(d.Unsigned, r.RunID)
		switch {
		case s.SigningKey != "":
			d.problem(r.RunID, "lost its signature: the summary says it was signed by %s, but %s is missing", s.SigningKey, filepath.Base(SigPath(jsonPath)))
		case allowed != nil:
			d.problem(r.RunID, "is unsigned")
		}
	case err != nil:
		return fmt.Errorf("reading a signature: %w", err)
	default:
		c, err := CheckSignature(b, sig, allowed)
		switch {
		case err != nil:
			d.problem(r.RunID, "has a bad signature: %v", err)
		case s.SigningKey != "" && !SameKey(c.Key, s.SigningKey):
			d.problem(r.RunID, "is signed by %s, but its summary names %s", c.Key, s.SigningKey)
		default:
			r.Signature = c
		}
	}
	return nil
}

// checkChain checks the links between summaries.
func (d *DirCheck) checkChain(runs map[string]*RunCheck, raw map[string][]byte) {
	next := map[string][]string{} // run -> the runs that name it as previous
	var first []string
	for _, r := range d.Runs {
		s := r.Summary
		if s == nil {
			continue
		}
		if s.Previous == nil {
			if !r.Unchained {
				first = append(first, r.RunID)
			}
			continue
		}
		p := s.Previous.RunID
		next[p] = append(next[p], r.RunID)
		prev := runs[p]
		switch {
		case prev == nil:
			d.problem(p, "is missing: run %s names it as the run before it, but neither its report nor its summary is here", r.RunID)
		case s.Previous.SummarySHA256 == "":
			d.problem(p, "had no summary when run %s ended, which names it as the run before it: a hole in the chain", r.RunID)
		case raw[p] == nil:
			d.problem(p, "is missing its summary: run %s recorded its SHA-256 %s", r.RunID, s.Previous.SummarySHA256)
		default:
			sum := sha256.Sum256(raw[p])
			if h := hex.EncodeToString(sum[:]); h != s.Previous.SummarySHA256 {
				d.problem(p, "was altered: its summary's SHA-256 is %s, but run %s recorded %s when it ended", h, r.RunID, s.Previous.SummarySHA256)
			}
			// Run ids begin with their start time: the chain must agree.
			if p >= r.RunID || (prev.Summary != nil && !r.StartedAt.IsZero() && r.StartedAt.Before(prev.StartedAt)) {
				d.problem(r.RunID, "is out of order: it names run %s as the run before it, but that run started after it", p)
			}
		}
	}
	for _, p := range sortedKeys(next) {
		if n := next[p]; len(n) > 1 {
			d.problem(p, "is named as the run before it by %d runs (%s): the chain forks (a run was removed and another rewritten, or two ledgers write here)",
				len(n), strings.Join(n, ", "))
		}
	}
	if len(first) > 1 {
		for _, id := range first[1:] {
			d.problem(id, "says it is the first run of its ledger, but run %s is older (the chain restarts: a new ledger, or its link was removed)", first[0])
		}
	}
}
