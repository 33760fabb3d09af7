package report

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/privsync/privsync"
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

// Markdown renders the summary for a reader who is not an engineer.
func (s *Summary) Markdown() []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("# Privacy sync %s: summary\n\n", md(s.RunID))
	when := ""
	if s.StartedAt != "" {
		when = " It started at " + s.StartedAt
		if s.FinishedAt != "" {
			when += " and finished at " + s.FinishedAt
		}
		when += " (UTC)."
	}
	mode := "It sent only what changed since the previous run."
	if s.Mode == "snapshot" {
		mode = "Its input was the complete list: restrictions of people not in it were cleared."
	}
	p("This run (`%s`) told our vendors about privacy decisions.%s %s\n\n", md(s.RunID), when, mode)
	p("Every outcome is one row of the audit report `%s`: %s, final hash `%s`.\n\n",
		md(s.Report.File), plural(s.Report.Rows, "row", "rows"), s.Report.FinalHash)

	// What was asked.
	p("## What was asked\n\n")
	if len(s.Inputs) == 0 {
		p("No input file was read (the run finished the work of an earlier run).\n\n")
	} else {
		p("The decisions came from these files (the SHA-256 identifies each file's exact content):\n\n")
		p("| File | Rows | Invalid rows | SHA-256 |\n|---|---:|---:|---|\n")
		for _, in := range s.Inputs {
			p("| %s | %d | %d | `%s` |\n", md(in.Path), in.Rows, in.Rejected, in.SHA256)
		}
		p("\n")
	}
	vendors := sortedKeys(s.Counts)
	if len(vendors) == 0 {
		p("Nothing had to be sent: every vendor already held what the input asks.\n\n")
	}

	// What each vendor confirmed.
	used := []string{}
	for _, o := range outcomeOrder {
		if s.Outcomes[o] > 0 {
			used = append(used, o)
		}
	}
	for o := range s.Outcomes { // an outcome this version does not know
		if !slices.Contains(used, o) && s.Outcomes[o] > 0 {
			used = append(used, o)
		}
	}
	if len(vendors) > 0 {
		p("## What each vendor confirmed\n\n")
		p("Report rows per vendor and operation, by outcome:\n\n")
		p("| Vendor | Operation | %s | Total |\n|---|---|%s---:|\n", strings.Join(used, " | "), strings.Repeat("---:|", len(used)))
		for _, v := range vendors {
			for _, op := range sortedKeys(s.Counts[v]) {
				var total int64
				cells := make([]string, len(used))
				for i, o := range used {
					n := s.Counts[v][op][o]
					total += n
					cells[i] = fmt.Sprint(n)
				}
				p("| %s | %s | %s | %d |\n", md(v), md(op), strings.Join(cells, " | "), total)
			}
		}
		p("\nWhat the outcomes mean:\n\n")
		for _, o := range used {
			if m, ok := outcomeMeaning[o]; ok {
				p("- **%s**: %s.\n", o, m)
			}
		}
		p("\n")
	}

	// What failed and why.
	p("## What failed and why\n\n")
	var bad int64
	for _, o := range badOutcomes {
		bad += s.Outcomes[o]
	}
	if bad == 0 {
		p("Nothing failed and no input row was refused.\n\n")
	} else {
		p("%s did not succeed. The commonest reasons:\n\n", plural(bad, "operation or input row", "operations or input rows"))
		for _, o := range badOutcomes {
			if s.Outcomes[o] == 0 {
				continue
			}
			p("- **%s** (%d): %s.\n", o, s.Outcomes[o], outcomeMeaning[o])
			for _, r := range s.Reasons {
				if r.Outcome == o {
					p("  - %d at %s: %s\n", r.Count, md(r.Vendor), md(r.Reason))
				}
			}
		}
		p("\nFailed operations are tried again by the next run. Rejected, conflicting and unsupported rows need a person to fix the input: the report's `detail` column names each row.\n\n")
	}

	// Still pending.
	p("## Still pending\n\n")
	if n := s.Outcomes[string(privsync.OutcomePending)]; n == 0 {
		p("Nothing is pending: every operation of this run has its final outcome.\n\n")
	} else {
		p("%s had no final answer from the vendor when the run ended:\n\n", plural(n, "operation", "operations"))
		for _, v := range vendors {
			var k int64
			for _, ops := range s.Counts[v] {
				k += ops[string(privsync.OutcomePending)]
			}
			if k > 0 {
				p("- %s: %d\n", md(v), k)
			}
		}
		p("\nprivsync keeps asking the vendors (on the next run, or with `privsync status --poll`); their final outcome appears in a later report.\n\n")
	}

	// How to verify.
	p("## How to verify this report\n\n")
	p("Each row of `%s` carries the SHA-256 hash of its own content and of the row before it, so changing, adding, removing or reordering any row breaks the chain. To check it:\n\n", md(s.Report.File))
	p("    privsync report verify %s\n\n", s.Report.File)
	p("It must say the file is valid, with %s and final hash `%s`, as above. ", plural(s.Report.Rows, "row", "rows"), s.Report.FinalHash)
	p("The same check without privsync, in Python 3:\n\n")
	for _, l := range strings.Split(strings.TrimSpace(PythonRecipe), "\n") {
		p("    %s\n", l)
	}
	p("\nKeep this summary (or its final hash) apart from the report: the chain alone cannot show rows cut from the end of the file, the final hash can.\n")
	return b.Bytes()
}

// PythonRecipe checks a report without privsync: run it as
// `python3 -c "$RECIPE" REPORT.csv`.
const PythonRecipe = `
import csv, hashlib, sys
prev, n = "0" * 64, 0
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = csv.reader(f)
    assert next(rows)[0] == "seq", "missing header"
    for n, r in enumerate(rows, 1):
        h = hashlib.sha256("\x1f".join(r[:13]).encode()).hexdigest()
        assert len(r) == 14 and r[0] == str(n) and r[12] == prev and r[13] == h, f"row {n} is bad"
        prev = h
print(n, "rows, final hash", prev)
`

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
