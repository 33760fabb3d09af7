package report

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

var chainRuns = []string{"20261123T060000Z-aaaa", "20261124T060000Z-bbbb", "20261125T060000Z-cccc"}

// forge is the attack the signature is for: whoever can write the report
// directory edits a row of a run's report, recomputes every hash after it
// (with nothing but encoding/csv and SHA-256), and rewrites the summary's
// row count and final hash to match.
func forge(t *testing.T, dir, runID, from, to string) {
	t.Helper()
	f, err := os.Open(Path(dir, runID))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	prev, edited := strings.Repeat("0", 64), false
	for _, r := range recs[1:] {
		if !edited && r[8] == from {
			r[8], edited = to, true
		}
		r[12] = prev
		sum := sha256.Sum256([]byte(strings.Join(r[:13], "\x1f")))
		r[13] = hex.EncodeToString(sum[:])
		prev = r[13]
	}
	if !edited {
		t.Fatalf("run %s has no %s row to forge", runID, from)
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	if err := w.WriteAll(recs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(Path(dir, runID), b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	jsonPath, _ := SummaryPaths(dir, runID)
	var s map[string]any
	js, _ := os.ReadFile(jsonPath)
	if err := json.Unmarshal(js, &s); err != nil {
		t.Fatal(err)
	}
	s["report"].(map[string]any)["final_hash"] = prev
	js, _ = json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(jsonPath, append(js, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
}

func verifyDir(t *testing.T, dir string, opt DirOptions) *DirCheck {
	t.Helper()
	d, err := VerifyDir(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// wantProblems checks that d found exactly problems containing each of want.
func wantProblems(t *testing.T, d *DirCheck, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.ContainsFunc(d.Problems, func(p string) bool { return strings.Contains(p, w) }) {
			t.Errorf("no problem says %q; problems:\n%s", w, strings.Join(d.Problems, "\n"))
		}
	}
	if len(want) == 0 && len(d.Problems) > 0 {
		t.Errorf("unexpected problems:\n%s", strings.Join(d.Problems, "\n"))
	}
}

func TestVerifyDirSignedChain(t *testing.T) {
	dir := t.TempDir()
	_, signer := newKey(t)
	writeRuns(t, dir, signer, chainRuns...)
	allowed := mustAllowed(t, allowedLine("privacy@company", signer.PublicKey()))
	d := verifyDir(t, dir, DirOptions{Allowed: allowed, Expected: chainRuns})
	wantProblems(t, d)
	if len(d.Runs) != 3 || d.Latest.RunID != chainRuns[2] || len(d.Unsigned) != 0 {
		t.Fatalf("VerifyDir = %+v", d)
	}
	for i, r := range d.Runs {
		if r.RunID != chainRuns[i] || r.Rows != 3+i || r.Signature == nil || r.Signature.Principals[0] != "privacy@company" {
			t.Errorf("run %d: %+v", i, r)
		}
	}
	s := d.Runs[1].Summary
	sum, _ := FileSHA256(filepath.Join(dir, chainRuns[0]+".summary.json"))
	if s.Previous == nil || s.Previous.RunID != chainRuns[0] || s.Previous.SummarySHA256 != sum {
		t.Errorf("the second summary's previous = %+v, want %s %s", s.Previous, chainRuns[0], sum)
	}
	if d.Runs[0].Summary.Previous != nil {
		t.Errorf("the first run has a previous run: %+v", d.Runs[0].Summary.Previous)
	}
}

// TestVerifyDirCatchesTheForgery is the attack: a row edited, the chain and
// the summary recomputed. Each report verifies on its own; the signature
// and the next run's link do not.
func TestVerifyDirCatchesTheForgery(t *testing.T) {
	for _, signed := range []bool{true, false} {
		dir := t.TempDir()
		_, signer := newKey(t)
		if !signed {
			signer = nil
		}
		writeRuns(t, dir, signer, chainRuns...)
		forge(t, dir, chainRuns[1], "completed", "failed")
		f, _ := os.Open(Path(dir, chainRuns[1]))
		_, _, err := Verify(f)
		f.Close()
		if err != nil {
			t.Fatalf("the forged report does not even verify on its own: %v", err)
		}
		d := verifyDir(t, dir, DirOptions{})
		wantProblems(t, d, "run "+chainRuns[1]+" was altered: its summary's SHA-256 is")
		if signed {
			wantProblems(t, d, "run "+chainRuns[1]+" has a bad signature: the signature does not match the summary")
		}
	}

	// The newest run has no later run to vouch for it: only its signature does.
	dir := t.TempDir()
	_, signer := newKey(t)
	writeRuns(t, dir, signer, chainRuns...)
	forge(t, dir, chainRuns[2], "completed", "failed")
	wantProblems(t, verifyDir(t, dir, DirOptions{}), "run "+chainRuns[2]+" has a bad signature")
}

func TestVerifyDirNamesMissingRuns(t *testing.T) {
	dir := t.TempDir()
	writeRuns(t, dir, nil, chainRuns...)
	// The middle run deleted, every file of it.
	matches, _ := filepath.Glob(filepath.Join(dir, chainRuns[1]+".*"))
	if len(matches) != 4 { // csv, json, md, html
		t.Fatalf("run files: %v", matches)
	}
	for _, m := range matches {
		os.Remove(m)
	}
	d := verifyDir(t, dir, DirOptions{})
	wantProblems(t, d, "run "+chainRuns[1]+" is missing: run "+chainRuns[2]+" names it as the run before it")

	// The newest run deleted: only the ledger knows it.
	dir = t.TempDir()
	writeRuns(t, dir, nil, chainRuns...)
	matches, _ = filepath.Glob(filepath.Join(dir, chainRuns[2]+".*"))
	for _, m := range matches {
		os.Remove(m)
	}
	wantProblems(t, verifyDir(t, dir, DirOptions{}))
	wantProblems(t, verifyDir(t, dir, DirOptions{Expected: chainRuns}), "run "+chainRuns[2]+" is missing: the ledger holds this run")

	// Only a summary deleted, its report left.
	dir = t.TempDir()
	writeRuns(t, dir, nil, chainRuns...)
	os.Remove(filepath.Join(dir, chainRuns[0]+".summary.json"))
	wantProblems(t, verifyDir(t, dir, DirOptions{}), "run "+chainRuns[0]+" has no summary, and a later run exists",
		"run "+chainRuns[0]+" is missing its summary: run "+chainRuns[1]+" recorded its SHA-256")
}

func TestVerifyDirUnsigned(t *testing.T) {
	dir := t.TempDir()
	writeRuns(t, dir, nil, chainRuns...)
	d := verifyDir(t, dir, DirOptions{})
	wantProblems(t, d)
	if !slices.Equal(d.Unsigned, chainRuns) {
		t.Errorf("unsigned = %v, want every run", d.Unsigned)
	}
	_, signer := newKey(t)
	d = verifyDir(t, dir, DirOptions{Allowed: mustAllowed(t, allowedLine("privacy@company", signer.PublicKey()))})
	wantProblems(t, d, "run "+chainRuns[0]+" is unsigned", "run "+chainRuns[2]+" is unsigned")

	// A signature removed from a signed run shows: the signed summary names its key.
	dir = t.TempDir()
	writeRuns(t, dir, signer, chainRuns...)
	os.Remove(SigPath(filepath.Join(dir, chainRuns[0]+".summary.json")))
	wantProblems(t, verifyDir(t, dir, DirOptions{}), "run "+chainRuns[0]+" lost its signature")
}

func TestVerifyDirReorderedAndForked(t *testing.T) {
	// Run c chained to a, while b is there too: the chain forks at a.
	dir := t.TempDir()
	writeRuns(t, dir, nil, chainRuns[0], chainRuns[1])
	writeRuns(t, dir, nil, chainRuns[0], chainRuns[2])
	wantProblems(t, verifyDir(t, dir, DirOptions{}), "run "+chainRuns[0]+" is named as the run before it by 2 runs")

	// A run that names as previous a run that started after it.
	dir = t.TempDir()
	writeRuns(t, dir, nil, chainRuns[2], chainRuns[0]) // c first, then a chained to c
	wantProblems(t, verifyDir(t, dir, DirOptions{}), "is out of order")

	// Two first runs.
	dir = t.TempDir()
	writeRuns(t, dir, nil, chainRuns[0])
	writeRuns(t, dir, nil, chainRuns[1])
	wantProblems(t, verifyDir(t, dir, DirOptions{}), "run "+chainRuns[1]+" says it is the first run")
}

// TestVerifyDirOlderSummaries: summaries written before privsync chained
// runs have no "previous"; they start no chain, and the first chained run
// links to the last of them.
func TestVerifyDirOlderSummaries(t *testing.T) {
	dir := t.TempDir()
	writeRuns(t, dir, nil, chainRuns[0])
	writeRuns(t, dir, nil, chainRuns[1])
	for _, run := range chainRuns[:2] {
		path, _ := SummaryPaths(dir, run)
		var s map[string]any
		b, _ := os.ReadFile(path)
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		delete(s, "previous")
		b, _ = json.MarshalIndent(s, "", "  ")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	info := SummaryInfo{Mode: "incremental", PreviousRun: chainRuns[1]}
	if err := WriteSummary(context.Background(), dir, chainRuns[2], &fakeSource{events: runEvents(chainRuns[2], 2)}, info); err != nil {
		t.Fatal(err)
	}
	d := verifyDir(t, dir, DirOptions{})
	wantProblems(t, d)
	if len(d.Runs) != 3 || !d.Runs[0].Unchained || !d.Runs[1].Unchained || d.Runs[2].Unchained {
		t.Fatalf("runs: %+v %+v %+v", d.Runs[0], d.Runs[1], d.Runs[2])
	}
	// The chained run still vouches for the older summary before it.
	forge(t, dir, chainRuns[1], "completed", "failed")
	wantProblems(t, verifyDir(t, dir, DirOptions{}), "run "+chainRuns[1]+" was altered")
}

// BenchmarkVerifyDir checks a year of nightly runs (365 runs of 1,000
// rows, signed).
func BenchmarkVerifyDir(b *testing.B) {
	dir := b.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	allowed := &AllowedSigners{Signers: []AllowedSigner{{Principals: []string{"privacy@company"}, Key: signer.PublicKey()}}}
	prev := ""
	for i := range 365 {
		id := time.Date(2026, 1, 1, 6, 0, 0, 0, time.UTC).AddDate(0, 0, i).Format("20060102T150405Z") + "-0000"
		info := SummaryInfo{Mode: "incremental", PreviousRun: prev, Signer: signer}
		if err := WriteSummary(context.Background(), dir, id, &fakeSource{events: runEvents(id, 1000)}, info); err != nil {
			b.Fatal(err)
		}
		prev = id
	}
	b.ResetTimer()
	for range b.N {
		d, err := VerifyDir(dir, DirOptions{Allowed: allowed})
		if err != nil || !d.OK() || len(d.Runs) != 365 {
			b.Fatalf("VerifyDir: %v %v", err, d.Problems)
		}
	}
}
