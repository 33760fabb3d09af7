package planner

import (
	"time"

	"github.com/privsync/privsync"
)

// Erasure is where a subject's erasure stands at the vendor.
type Erasure uint8

// Erasure states the ledger records.
const (
	NotErased  Erasure = iota
	Suppressed         // sfmc: deletion scheduled, cancellable while the window is open
	Erased             // deleted, removed or anonymized: terminal
	// MaybeSuppressed: an sfmc suppression was sent and not confirmed (it
	// failed, its answers were lost or the vendor forgot it): the vendor
	// may hold it. It is sent again while wanted, cancelled when not.
	MaybeSuppressed
)

// State is what the ledger says one vendor holds (or is being told) about
// one subject. The zero State is a subject the ledger has never seen: it is
// taken to hold nothing.
type State struct {
	Known         bool
	Restrictions  privsync.Restrictions // confirmed by the vendor
	Erasure       Erasure
	ErasedAt      time.Time // when the erasure (or suppression) was confirmed
	UpdatedAt     time.Time // updated_at of the row behind the state
	AccessRequest string    // the last access request the vendor was asked for
	// InFlight is the fingerprint of the row whose operations are being
	// sent now; 0 when nothing is in flight.
	InFlight uint64
	// RetryAt holds back a subject whose last attempt failed (back-off
	// across runs); zero when there is no wait.
	RetryAt time.Time
	// Settled is the fingerprint of the last row fully dealt with; 0 if none.
	Settled uint64
}

// Rules are the settings the rules depend on, besides the row and the state.
type Rules struct {
	Now time.Time // the run's start: rows without updated_at are taken as of it
	// SuppressionWindow is how long an sfmc suppression stays cancellable
	// (the account's suppression period, 14 days unless configured).
	SuppressionWindow time.Duration
}

// Verdict classifies what a row leads to.
type Verdict uint8

// Verdicts. Send and Settle may come with notes (unsupported, conflict).
const (
	Unchanged Verdict = iota // the vendor holds (or is being told) what the row asks
	Send                     // Ops must be sent
	Settle                   // nothing to send, but the row is new: record it (and its notes)
	Stale                    // older than the state the ledger holds: counted, never sent
	Waiting                  // another operation is in flight or backing off: decided later
)

// Op is one operation to send for a subject.
type Op struct {
	Op           privsync.Operation
	Restrictions privsync.Restrictions // the declarative target, for restrict
}

// Note is an outcome recorded without sending anything.
type Note struct {
	Outcome   privsync.Outcome // unsupported or conflict
	Operation privsync.Operation
	Detail    string
}

// Decision is what one row becomes for its vendor. When Ops holds two
// operations, the second is sent only once the first is confirmed.
type Decision struct {
	Verdict Verdict
	Ops     []Op
	Notes   []Note
}

// Decide applies the rules of the row's vendor kind to a row and the
// subject's state. fp is the row's fingerprint. It is pure.
func Decide(kind privsync.Kind, row *privsync.Row, st State, fp uint64, r Rules) Decision {
	ts := effectiveTime(row, r)
	switch {
	case st.InFlight == fp && fp != 0:
		return Decision{Verdict: Unchanged}
	case st.Settled == fp && fp != 0:
		return Decision{Verdict: Unchanged}
	case st.Known && !st.UpdatedAt.IsZero() && ts.Before(st.UpdatedAt):
		return Decision{Verdict: Stale}
	case st.InFlight != 0:
		return Decision{Verdict: Waiting}
	case r.Now.Before(st.RetryAt):
		return Decision{Verdict: Waiting}
	}
	var d Decision
	switch kind {
	case privsync.KindSFMC:
		d = decideSFMC(row, st, r)
	case privsync.KindBatch:
		d = decideBatch(row, st)
	case privsync.KindBloomreach:
		d = decideBloomreach(row, st)
	}
	switch {
	case len(d.Ops) > 0:
		d.Verdict = Send
	default:
		d.Verdict = Settle
	}
	return d
}

func effectiveTime(row *privsync.Row, r Rules) time.Time {
	if row.UpdatedAt.IsZero() {
		return r.Now
	}
	return row.UpdatedAt
}

// erasure returns the subject's erasure as of now: an sfmc suppression
// whose window has closed has become a deletion.
func erasure(st State, r Rules) Erasure {
	if st.Erasure == Suppressed && !r.Now.Before(st.ErasedAt.Add(r.SuppressionWindow)) {
		return Erased
	}
	return st.Erasure
}

const (
	conflictErased    = "subject was erased; an erasure cannot be undone"
	unsupportedAccess = "this vendor kind has no data-access request API"
)

func decideSFMC(row *privsync.Row, st State, r Rules) Decision {
	var d Decision
	if row.AccessRequest != "" && row.AccessRequest != st.AccessRequest {
		d.Notes = append(d.Notes, Note{privsync.OutcomeUnsupported, privsync.OpReview, unsupportedAccess})
	}
	switch erasure(st, r) {
	case Erased:
		if row.Erasure == privsync.EraseNone {
			d.Notes = append(d.Notes, Note{privsync.OutcomeConflict, privsync.OpRestrict, conflictErased})
		}
	case Suppressed, MaybeSuppressed:
		switch row.Erasure {
		case privsync.EraseDelete:
			d.Ops = append(d.Ops, Op{Op: privsync.OpRTBFDelete})
		case privsync.EraseSuppress:
			if st.Erasure == MaybeSuppressed {
				d.Ops = append(d.Ops, Op{Op: privsync.OpRTBFSuppress})
			}
		case privsync.EraseNone:
			d.Ops = append(d.Ops, Op{Op: privsync.OpRemoveRTBFSuppress})
			if row.Restrictions != st.Restrictions {
				d.Ops = append(d.Ops, Op{Op: privsync.OpRestrict, Restrictions: row.Restrictions})
			}
		}
	default:
		switch {
		case row.Erasure == privsync.EraseDelete:
			d.Ops = append(d.Ops, Op{Op: privsync.OpRTBFDelete})
		case row.Erasure == privsync.EraseSuppress:
			d.Ops = append(d.Ops, Op{Op: privsync.OpRTBFSuppress})
		case row.Restrictions != st.Restrictions:
			d.Ops = append(d.Ops, Op{Op: privsync.OpRestrict, Restrictions: row.Restrictions})
		}
	}
	return d
}

func decideBatch(row *privsync.Row, st State) Decision {
	var d Decision
	newAccess := row.AccessRequest != "" && row.AccessRequest != st.AccessRequest
	if row.Restrictions != 0 {
		d.Notes = append(d.Notes, Note{privsync.OutcomeUnsupported, privsync.OpRestrict, "batch has no processing restrictions; only review and remove"})
	}
	if row.Erasure == privsync.EraseSuppress {
		d.Notes = append(d.Notes, Note{privsync.OutcomeUnsupported, privsync.OpRemove, "batch has no delayed erasure (suppress); ask for delete"})
	}
	if st.Erasure == Erased {
		if row.Erasure != privsync.EraseDelete {
			d.Notes = append(d.Notes, Note{privsync.OutcomeConflict, privsync.OpRemove, conflictErased})
		}
		if newAccess {
			d.Notes = append(d.Notes, Note{privsync.OutcomeConflict, privsync.OpReview, "subject was erased; there is no data left to report"})
		}
		return d
	}
	if newAccess {
		d.Ops = append(d.Ops, Op{Op: privsync.OpReview})
	}
	if row.Erasure == privsync.EraseDelete {
		d.Ops = append(d.Ops, Op{Op: privsync.OpRemove})
	}
	return d
}

func decideBloomreach(row *privsync.Row, st State) Decision {
	var d Decision
	if row.Restrictions != 0 {
		d.Notes = append(d.Notes, Note{privsync.OutcomeUnsupported, privsync.OpRestrict, "bloomreach has no processing restrictions; only anonymization"})
	}
	if row.Erasure == privsync.EraseSuppress {
		d.Notes = append(d.Notes, Note{privsync.OutcomeUnsupported, privsync.OpAnonymize, "bloomreach has no delayed erasure (suppress); ask for delete"})
	}
	if row.AccessRequest != "" && row.AccessRequest != st.AccessRequest {
		d.Notes = append(d.Notes, Note{privsync.OutcomeUnsupported, privsync.OpReview, unsupportedAccess})
	}
	switch {
	case st.Erasure == Erased:
		if row.Erasure != privsync.EraseDelete {
			d.Notes = append(d.Notes, Note{privsync.OutcomeConflict, privsync.OpAnonymize, conflictErased})
		}
	case row.Erasure == privsync.EraseDelete:
		d.Ops = append(d.Ops, Op{Op: privsync.OpAnonymize})
	}
	return d
}

// DecideAbsent is the snapshot rule for an sfmc subject the input does not
// name: its restrictions are cleared. Erasures are never undone by absence,
// and a subject with an operation in flight waits for it.
func DecideAbsent(st State) Decision {
	if st.Restrictions == 0 || st.Erasure != NotErased || st.InFlight != 0 {
		return Decision{Verdict: Unchanged}
	}
	return Decision{Verdict: Send, Ops: []Op{{Op: privsync.OpRestrict}}}
}
