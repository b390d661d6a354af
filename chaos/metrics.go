package main

// The analysis: from the events of one scenario and what its trials
// declared, the safety checks (which always hold), the scenario's own
// expectations, and the metrics.
//
// Times are CLOCK_MONOTONIC ns, read by the nodes. A tick's leadership check
// happened inside [T, T1]; the checks only call something a violation when
// the order is certain: "A ticked after B began" means A's check started
// (A.T) after B's first check had returned true (B.T1).

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// leaseTolerance absorbs the time between a leader reading its clock for a
// heartbeat's send time and the heartbeat leaving, when checking that a
// leader cut off at F stopped by F+LeaseTimeout.
const leaseTolerance = 10 * time.Millisecond

// callbackTolerance absorbs the scheduling delay between a callback's
// context ending and the callback noticing it.
const callbackTolerance = 5 * time.Millisecond

// Params are the timings the analysis needs.
type Params struct {
	Lease, PeerTimeout, Jitter time.Duration
}

// Stall is a time during which a process (or the harness, slot 0) did not
// run: CPU starvation, or an injected SIGSTOP.
type Stall struct {
	ID       string
	Slot     int
	From, To int64
	Injected bool // inside a SIGSTOP the harness sent to that slot
}

// Segment is the leadership of one node in one term, as its ticks show it.
type Segment struct {
	ID      string
	Slot    int
	Term    uint64
	FirstT0 int64
	FirstT1 int64
	LastT0  int64
	Ticks   []int64 // T of each tick, ascending
	Epoch   int64   // the redis-server incarnation its fenced ticks reached (0: unknown)
	Cont    bool    // continues the same node's leadership in the same term from before a redis-server restart
}

// Violation is a safety violation: the run fails.
type Violation struct {
	Trial int    `json:"trial"`
	Kind  string `json:"kind"`
	Msg   string `json:"msg"`
	T     int64  `json:"t"`
}

// EpisodeResult holds the measurements of one episode.
type EpisodeResult struct {
	Name          string  `json:"name"`
	FailoverMs    float64 `json:"failover_ms"`    // -1: leadership did not move
	ConvergenceMs float64 `json:"convergence_ms"` // -1: not measured
	RecoveryMs    float64 `json:"recovery_ms"`    // fault to stable again; -1: never
	AfterHealMs   float64 `json:"after_heal_ms"`  // end of the fault to the new leader's first tick, when that came after it; -1: it came before, or never
	LeaderlessMs  float64 `json:"leaderless_ms"`
	StepDownMs    float64 `json:"stepdown_ms"` // cut leader's last tick after the cut; -1: n/a
	OldLeader     string  `json:"old_leader"`
	NewLeader     string  `json:"new_leader,omitempty"`
	OldTerm       uint64  `json:"old_term"`
	NewTerm       uint64  `json:"new_term,omitempty"`
}

// TrialResult is the analysis of one trial.
type TrialResult struct {
	Trial      int             `json:"trial"`
	Recovered  bool            `json:"recovered"`
	Episodes   []EpisodeResult `json:"episodes"`
	Changes    int             `json:"leader_changes"`
	PerMinute  float64         `json:"changes_per_minute,omitempty"` // load-calm: leader changes (job restarts) per minute of its window
	Spurious   int             `json:"spurious_changes"`
	TermsUsed  uint64          `json:"terms"`
	Elections  uint64          `json:"elections"`
	Received   uint64          `json:"received"` // valid messages the nodes received in the trial (their status reports, so to within one report period)
	Violations []Violation     `json:"violations"`
	Failures   []string        `json:"failures"`
	DurationMs float64         `json:"duration_ms"`
}

// Analysis is the analysis of one scenario.
type Analysis struct {
	Trials     []TrialResult
	Violations []Violation // all, also those between trials
	OverlapNs  int64
	Zombies    int // ticks by a lower term after a higher term's first tick
	Fence      FenceStats
	Segments   []*Segment
	Stalls     []Stall // not injected, at least 100 ms
}

// FenceStats counts the fencing writes.
type FenceStats struct {
	Accepted int `json:"accepted"`
	Rejected int `json:"rejected"`
	Errors   int `json:"errors"`
}

func ms(ns int64) float64 { return float64(ns/1000) / 1000 }

// buildSegments groups ticks by (node, term), ordered by first tick.
func buildSegments(evs []Event) []*Segment {
	type key struct {
		id    string
		term  uint64
		epoch int64
	}
	m := map[key]*Segment{}
	// A tick whose fence write failed (redis-server down, a reconnect)
	// belongs to the epoch of the next fenced tick of any node: epochs only
	// grow with time.
	type known struct {
		t  int64
		ep int64
	}
	var kn []known
	for _, e := range evs {
		if e.Ev == evTick && e.FenceEpoch != 0 {
			kn = append(kn, known{e.T, e.FenceEpoch})
		}
	}
	slices.SortFunc(kn, func(a, b known) int { return cmp.Compare(a.t, b.t) })
	var out []*Segment
	for _, e := range evs {
		if e.Ev != evTick {
			continue
		}
		ep := e.FenceEpoch
		if ep == 0 && len(kn) > 0 {
			i := sort.Search(len(kn), func(i int) bool { return kn[i].t >= e.T })
			ep = kn[min(i, len(kn)-1)].ep
		}
		k := key{e.ID, e.Term, ep}
		s := m[k]
		if s == nil {
			s = &Segment{ID: e.ID, Slot: e.Slot, Term: e.Term, FirstT0: e.T, FirstT1: e.T1, LastT0: e.T, Epoch: ep}
			m[k] = s
			out = append(out, s)
		}
		if e.T < s.FirstT0 {
			s.FirstT0, s.FirstT1 = e.T, e.T1
		}
		s.LastT0 = max(s.LastT0, e.T)
		s.Ticks = append(s.Ticks, e.T)
	}
	for _, s := range out {
		slices.Sort(s.Ticks)
	}
	slices.SortFunc(out, func(a, b *Segment) int { return cmp.Compare(a.FirstT1, b.FirstT1) })
	for i, s := range out {
		s.Cont = slices.ContainsFunc(out[:i], func(p *Segment) bool { return p.ID == s.ID && p.Term == s.Term })
	}
	return out
}

// trialAt returns the trial a time belongs to: the one whose window holds
// it, else the next one to start, else the last; 0 when there are none.
func trialAt(trials []*TrialRecord, t int64) int {
	for _, tr := range trials {
		if t >= tr.Start && (tr.End == 0 || t <= tr.End) {
			return tr.Trial
		}
	}
	for _, tr := range trials {
		if tr.Start > t {
			return tr.Trial
		}
	}
	if len(trials) > 0 {
		return trials[len(trials)-1].Trial
	}
	return 0
}

// Analyze checks and measures one scenario. evs must hold every event of
// the scenario; they are sorted here.
func Analyze(evs []Event, faults []Fault, trials []*TrialRecord, p Params) *Analysis {
	slices.SortStableFunc(evs, func(a, b Event) int { return cmp.Compare(a.T, b.T) })
	a := &Analysis{Segments: buildSegments(evs)}
	stalls := findStalls(evs, faults)
	for _, st := range stalls {
		if !st.Injected && st.To-st.From >= int64(100*time.Millisecond) {
			a.Stalls = append(a.Stalls, st)
		}
	}
	viol := func(t int64, kind, format string, args ...any) {
		a.Violations = append(a.Violations, Violation{Trial: trialAt(trials, t), Kind: kind, T: t, Msg: fmt.Sprintf(format, args...)})
	}
	segs := a.Segments

	// 1. At most one leader per term; a lower term never acts after a
	// higher term has begun (zombie); no interleaving at all (overlap). A
	// leadership begins at its first tick or at its OnStartedLeading,
	// whichever is first (both come after it became active); a leadership
	// whose OnStartedLeading ran but that never ticked counts too.
	type sk struct {
		id   string
		term uint64
	}
	begins := map[sk][]int64{} // every OnStartedLeading of a (node, term), ascending
	for _, e := range evs {
		if e.Ev == evStart {
			begins[sk{e.ID, e.Term}] = append(begins[sk{e.ID, e.Term}], e.T)
		}
	}
	leads := slices.Clone(segs)
	for k, bs := range begins {
		if !slices.ContainsFunc(segs, func(s *Segment) bool { return s.ID == k.id && s.Term == k.term }) {
			leads = append(leads, &Segment{ID: k.id, Term: k.term, FirstT0: bs[0], FirstT1: bs[0], LastT0: bs[0]})
		}
	}
	slices.SortFunc(leads, func(a, b *Segment) int { return cmp.Compare(a.FirstT1, b.FirstT1) })
	// A leadership begins at the last OnStartedLeading of its (node, term)
	// before its first tick (a term's number can come back after
	// redis-server lost its data, for the lock), or at its first tick.
	begin := func(s *Segment) int64 {
		b := s.FirstT1
		for _, t := range begins[sk{s.ID, s.Term}] {
			if t < s.FirstT1 {
				b = t
			}
		}
		return b
	}
	reset := map[*Segment]bool{} // segments already reported as a term reset
	for i, x := range leads {
		for _, y := range leads[i+1:] {
			// Terms that went back after redis-server lost its data (the
			// later incarnation's leader has a term not above the earlier
			// one's): a violation of its own; the overlap counts only the
			// time the two really ticked at once.
			if x.Epoch != 0 && y.Epoch != 0 && x.Epoch != y.Epoch && (x.ID != y.ID || x.Term != y.Term) {
				early, late := x, y
				if early.Epoch > late.Epoch {
					early, late = late, early
				}
				if late.Term <= early.Term {
					if !reset[late] {
						reset[late] = true
						viol(begin(late), "term-reset", "after redis-server lost its data, %s led in term %d, not above term %d of %s before: fencing tokens went back",
							late.ID, late.Term, early.Term, early.ID)
					}
					if ov := min(x.LastT0, y.LastT0) - max(begin(x), begin(y)); ov > 0 {
						a.OverlapNs += ov
					}
					continue
				}
			}
			if x.ID == y.ID && x.Term == y.Term {
				continue // one leadership that went on across a redis-server restart
			}
			if x.Term == y.Term && x.ID != y.ID {
				viol(max(begin(x), begin(y)), "two-leaders", "two leaders in term %d: %s and %s", x.Term, x.ID, y.ID)
				if ov := min(x.LastT0, y.LastT0) - max(begin(x), begin(y)); ov > 0 {
					a.OverlapNs += ov
				}
				continue
			}
			old, nw := x, y
			if old.Term > nw.Term {
				old, nw = nw, old
			}
			if old.Term == nw.Term {
				continue
			}
			// ticks of old whose check started after nw had begun
			nb := begin(nw)
			k := len(old.Ticks) - sort.Search(len(old.Ticks), func(j int) bool { return old.Ticks[j] > nb })
			if k > 0 {
				first := old.Ticks[len(old.Ticks)-k]
				a.Zombies += k
				a.OverlapNs += old.LastT0 - nb
				viol(first, "zombie", "%s (term %d) ticked %d times after %s (term %d) began leading, the first %.1f ms after, the last %.1f ms after",
					old.ID, old.Term, k, nw.ID, nw.Term, ms(first-nb), ms(old.LastT0-nb))
			}
		}
	}

	// 2. Leader callbacks of different terms never run at once, except on a
	// process that was SIGSTOPped (it cannot notice its context ending).
	type cbRun struct {
		id         string
		slot       int
		term       uint64
		start, end int64
		seq        uint64
	}
	var runs []*cbRun
	open := map[string][]*cbRun{} // per node, the calls not yet returned
	exitAt := map[string]int64{}
	started := map[string]bool{} // ids whose OnStartedLeading ran and has no OnStoppedLeading yet
	for _, e := range evs {
		switch e.Ev {
		case evStart:
			if rs := open[e.ID]; len(rs) > 0 {
				r := rs[len(rs)-1]
				viol(e.T, "callback", "%s: OnStartedLeading(term %d) began while its call for term %d (begun %.1f ms before) had not returned",
					e.ID, e.Term, r.term, ms(e.T-r.start))
			}
			r := &cbRun{id: e.ID, slot: e.Slot, term: e.Term, start: e.T, seq: e.Seq}
			open[e.ID] = append(open[e.ID], r)
			runs = append(runs, r)
			started[e.ID] = true
		case evCbDone:
			// the call it ends: the one with its number, else the oldest
			rs := open[e.ID]
			i := slices.IndexFunc(rs, func(r *cbRun) bool { return e.Seq != 0 && r.seq == e.Seq })
			if i < 0 && len(rs) > 0 {
				i = 0
			}
			if i >= 0 {
				rs[i].end = e.T
				open[e.ID] = slices.Delete(rs, i, i+1)
			}
		case evStop:
			if !started[e.ID] {
				viol(e.T, "callback", "%s: OnStoppedLeading without a preceding OnStartedLeading", e.ID)
			}
			started[e.ID] = false
		case evProcExit:
			exitAt[e.ID] = e.T
		}
	}
	// A process that did not run (SIGSTOP, starvation) when its lease
	// ended cannot have noticed its context end.
	paused := func(id string, from, to int64) bool {
		for _, st := range stalls {
			if st.ID == id && st.From <= to && st.To >= from {
				return true
			}
		}
		return false
	}
	for i, x := range runs {
		for _, y := range runs[i+1:] {
			if x.id == y.id && x.term == y.term {
				continue
			}
			end, how := x.end, "returned %.1f ms later"
			if end == 0 {
				end, how = exitAt[x.id], "ran until its process ended %.1f ms later"
			}
			if end != 0 && end <= y.start+int64(callbackTolerance) {
				continue
			}
			if paused(x.id, y.start-int64(p.PeerTimeout), max(end, y.start)) {
				continue
			}
			if end == 0 {
				how = "never returned"
			} else {
				how = fmt.Sprintf(how, ms(end-y.start))
			}
			viol(y.start, "callback-overlap", "OnStartedLeading of %s (term %d) was still running when %s (term %d) began, and %s",
				x.id, x.term, y.id, y.term, how)
		}
	}

	// 3. Fencing: in Redis order, accepted terms never go down.
	type fw struct {
		epoch, n int64
		term     uint64
		id       string
		t        int64
	}
	var acc []fw
	for _, e := range evs {
		if e.Ev != evTick {
			continue
		}
		switch e.Fence {
		case fenceAccepted:
			a.Fence.Accepted++
			acc = append(acc, fw{e.FenceEpoch, e.FenceN, e.Term, e.ID, e.T})
		case fenceRejected:
			a.Fence.Rejected++
		case fenceError:
			a.Fence.Errors++
		}
	}
	slices.SortFunc(acc, func(x, y fw) int { return cmp.Or(cmp.Compare(x.epoch, y.epoch), cmp.Compare(x.n, y.n)) })
	var bad []fw // accepted writes with a lower term than an earlier one
	var prev []fw
	for i := 1; i < len(acc); i++ {
		if p, c := acc[i-1], acc[i]; p.epoch == c.epoch && c.term < p.term {
			bad, prev = append(bad, c), append(prev, p)
		}
	}
	if len(bad) > 0 {
		viol(bad[0].t, "fencing", "the fence accepted %d writes with a lower term than the one before, the first term %d from %s after term %d from %s",
			len(bad), bad[0].term, bad[0].id, prev[0].term, prev[0].id)
	}

	// 4. Per trial: lease bounds, minorities, expectations, metrics.
	for _, tr := range trials {
		a.Trials = append(a.Trials, analyzeTrial(tr, evs, segs, stalls, p, viol))
	}
	for _, v := range a.Violations {
		for i := range a.Trials {
			if a.Trials[i].Trial == v.Trial {
				a.Trials[i].Violations = append(a.Trials[i].Violations, v)
			}
		}
	}
	return a
}

func analyzeTrial(tr *TrialRecord, evs []Event, segs []*Segment, stalls []Stall, p Params,
	viol func(t int64, kind, format string, args ...any)) TrialResult {
	lease := p.Lease
	res := TrialResult{Trial: tr.Trial, Recovered: !tr.Aborted && !tr.Unrecovered, Failures: slices.Clone(tr.Failures),
		DurationMs: ms(tr.End - tr.Start)}
	if res.Failures == nil {
		res.Failures = []string{}
	}
	res.Violations = []Violation{}

	// Lease bound: a node cut off from Redis at From holds no lease after
	// From+LeaseTimeout, so it must not tick then, until the heal.
	for _, cw := range tr.Cuts {
		if cw.To == 0 || cw.To-cw.From <= int64(lease+leaseTolerance) {
			continue
		}
		bound := cw.From + int64(lease+leaseTolerance)
		for _, s := range segs {
			if !slices.Contains(cw.Slots, s.Slot) {
				continue
			}
			for _, t := range s.Ticks {
				if t > bound && t < cw.To {
					viol(t, "lease", "%s (term %d) ticked %.1f ms after it was cut off from Redis (LeaseTimeout %v)",
						s.ID, s.Term, ms(t-cw.From), lease)
					break
				}
			}
		}
	}
	// Strict mode: the connected minority never leads. A leadership that
	// began during the cut is a violation; one that was already there (the
	// minority held the lease when the cut came) must end with its lease.
	for _, nl := range tr.NoLead {
		for _, s := range segs {
			if !slices.Contains(nl.Slots, s.Slot) {
				continue
			}
			for _, t := range s.Ticks {
				if t >= nl.From && t <= nl.To && (s.FirstT0 >= nl.From || t > nl.From+int64(lease+leaseTolerance)) {
					viol(t, "minority", "%s (term %d) led %.0f ms into the cut, while only a minority was connected (strict mode)",
						s.ID, s.Term, ms(t-nl.From))
					break
				}
			}
		}
	}

	// Amnesia (rule 8): a node restarted with the same ID listens for a
	// PeerTimeout before it votes or stands. From outside, standing shows
	// (its Elections counter, its state); a vote does not, so this checks
	// the listening, and the safety checks check one leader per term.
	for _, am := range tr.Amnesia {
		limit := am.Restarted + int64(p.PeerTimeout)
		for _, e := range evs {
			if e.ID != am.ID || e.T < am.Restarted || e.T > limit {
				continue
			}
			if e.Ev == evStatus && (e.Elections > 0 || e.State == "candidate" || e.State == "leader") ||
				e.Ev == evStart || e.Ev == evTick {
				res.Failures = append(res.Failures, fmt.Sprintf("amnesia: %s, restarted with the same ID, stood or led %.0f ms after its restart, within PeerTimeout (rule 8)",
					am.ID, ms(e.T-am.Restarted)))
				break
			}
		}
	}

	// Leader changes in the trial: segments that began inside it.
	var changes []*Segment
	for _, s := range segs {
		if s.FirstT0 > tr.Start && s.FirstT0 <= tr.End && !s.Cont {
			changes = append(changes, s)
		}
	}
	res.Changes = len(changes)
	if tr.CalmTo > tr.CalmFrom {
		n := 0
		for _, s := range changes {
			if s.FirstT0 >= tr.CalmFrom && s.FirstT0 <= tr.CalmTo {
				n++
			}
		}
		res.PerMinute = float64(n) / (float64(tr.CalmTo-tr.CalmFrom) / float64(time.Minute))
	}

	expected := map[*Segment]bool{} // the failover segment of each episode
	for _, ep := range tr.Episodes {
		er := EpisodeResult{Name: ep.Name, FailoverMs: -1, ConvergenceMs: -1, RecoveryMs: -1, AfterHealMs: -1, StepDownMs: -1,
			OldLeader: ep.OldID, OldTerm: ep.OldTerm}
		if ep.Recovered {
			er.RecoveryMs = ms(ep.RecoveredAt - ep.Fault)
		} else {
			res.Recovered = false
		}
		end := ep.RecoveredAt
		if end == 0 {
			end = tr.End
		}
		// the new leader: the first segment other than the old one to begin after the fault
		var nw *Segment
		for _, s := range segs {
			if s.FirstT0 > ep.Fault && s.FirstT0 <= tr.End && !(s.ID == ep.OldID && s.Term == ep.OldTerm) {
				nw = s
				break
			}
		}
		if nw != nil && nw.FirstT0 <= end {
			if tr.Handover && nw != nil {
				var done, start int64
				for _, e := range evs {
					if e.Ev == evCbDone && e.ID == ep.OldID && e.Term == ep.OldTerm && done == 0 {
						done = e.T
					}
					if e.Ev == evStart && e.ID == nw.ID && e.Term == nw.Term && start == 0 {
						start = e.T
					}
				}
				switch {
				case done == 0:
					res.Failures = append(res.Failures, fmt.Sprintf("%s: the old leader's OnStartedLeading never returned", ep.Name))
				case start != 0 && done > start:
					res.Failures = append(res.Failures, fmt.Sprintf("%s: the old leader's OnStartedLeading returned %.1f ms after the new one's began",
						ep.Name, ms(done-start)))
				}
			}
			if ep.ExpectChange {
				expected[nw] = true
			}
			er.FailoverMs = ms(nw.FirstT0 - ep.Fault)
			if ep.Heal > 0 && nw.FirstT0 > ep.Heal {
				er.AfterHealMs = ms(nw.FirstT0 - ep.Heal)
			}
			er.NewLeader, er.NewTerm = nw.ID, nw.Term
			if c := convergence(evs, ep, nw, tr.End); c >= 0 {
				er.ConvergenceMs = ms(c)
			}
			if nw.Term <= ep.OldTerm && ep.OldID != "" {
				res.Failures = append(res.Failures, fmt.Sprintf("%s: new leader %s has term %d, not above the old term %d",
					ep.Name, nw.ID, nw.Term, ep.OldTerm))
			}
		}
		if ep.ExpectChange {
			limit := ep.Heal
			if limit == 0 {
				limit = end
			}
			if nw == nil || nw.FirstT0 > limit {
				res.Failures = append(res.Failures, fmt.Sprintf("%s: leadership did not move before the fault ended", ep.Name))
			}
		}
		// the cut leader's step-down: its last tick after the fault
		if slices.Contains(ep.Targets, ep.OldSlot) {
			var last int64
			for _, s := range segs {
				if s.ID == ep.OldID && s.Term == ep.OldTerm {
					for _, t := range s.Ticks {
						if t >= ep.Fault && (ep.Heal == 0 || t < ep.Heal) {
							last = max(last, t)
						}
					}
				}
			}
			if last > 0 {
				er.StepDownMs = ms(last - ep.Fault)
			} else {
				er.StepDownMs = 0
			}
		}
		er.LeaderlessMs = ms(leaderless(evs, ep.Fault, end))
		res.Episodes = append(res.Episodes, er)
	}

	// Quiet windows: no leader change may begin (the expected failovers aside).
	for _, s := range changes {
		if expected[s] {
			continue
		}
		for _, w := range tr.Quiet {
			to := w.To
			if to == 0 {
				to = tr.End
			}
			if s.FirstT0 >= w.From && s.FirstT0 <= to {
				res.Spurious++
				res.Failures = append(res.Failures, fmt.Sprintf("leader changed to %s (term %d) %.0f ms into the trial, where no change may happen%s",
					s.ID, s.Term, ms(s.FirstT0-tr.Start), stallNote(stalls, s.FirstT0-int64(p.PeerTimeout+p.Jitter+200*time.Millisecond), s.FirstT0)))
				break
			}
		}
	}

	// Terms, elections, step-downs and drops, from the status reports.
	first := map[string]Event{} // id -> its last report before the trial, else its first in it
	before := map[string]Event{}
	last := map[string]Event{}
	maxTerm := tr.OldTerm
	for _, e := range evs {
		if e.Ev == evStatus && e.T < tr.Start {
			before[e.ID] = e
		}
		if e.T < tr.Start || e.T > tr.End {
			continue
		}
		if e.Ev == evTick || e.Ev == evStatus {
			maxTerm = max(maxTerm, e.Term)
		}
		if e.Ev != evStatus {
			continue
		}
		if _, ok := first[e.ID]; !ok {
			if b, ok := before[e.ID]; ok {
				first[e.ID] = b
			} else {
				first[e.ID] = e
			}
		}
		last[e.ID] = e
	}
	var stepDowns, leasesLost, unverified uint64
	var underDropped, underRefused []string
	for id, e := range last {
		f := first[id]
		leasesLost += e.LeasesLost - min(f.LeasesLost, e.LeasesLost)
		unverified += e.Unverified - min(f.Unverified, e.Unverified)
		refused := e.Unverified - min(f.Unverified, e.Unverified) + e.Replays - min(f.Replays, e.Replays)
		if tr.Refused > 0 && refused < tr.Refused && alive(evs, id, tr.End) {
			underRefused = append(underRefused, fmt.Sprintf("%s %d", id, refused))
		}
		res.Elections += e.Elections - min(f.Elections, e.Elections)
		res.Received += e.MsgsIn - min(f.MsgsIn, e.MsgsIn)
		stepDowns += e.StepDowns - min(f.StepDowns, e.StepDowns)
		// Junk that begins like a message of another version counts as
		// unverified, not dropped: both are refused.
		refusedJunk := e.Dropped - min(f.Dropped, e.Dropped) + e.Unverified - min(f.Unverified, e.Unverified)
		if d := refusedJunk; tr.Dropped > 0 && d < tr.Dropped && alive(evs, id, tr.End) {
			underDropped = append(underDropped, fmt.Sprintf("%s %d", id, d))
		}
	}
	res.TermsUsed = maxTerm - tr.OldTerm
	if tr.NoElections && res.Elections > 0 {
		res.Failures = append(res.Failures, fmt.Sprintf("%d elections where none may happen", res.Elections))
	}
	if tr.NoStepDowns && stepDowns > 0 {
		res.Failures = append(res.Failures, fmt.Sprintf("%d step-downs (a lease lapsed) where none may happen", stepDowns))
	}
	if tr.NoLeaseLost && leasesLost > 0 {
		res.Failures = append(res.Failures, fmt.Sprintf("%d leases lapsed where none may", leasesLost))
	}
	if tr.NoUnverified && unverified > 0 {
		res.Failures = append(res.Failures, fmt.Sprintf("%d messages could not be verified where every node accepts every key in use", unverified))
	}
	if tr.CheckChanges && res.Changes > tr.MaxChanges {
		res.Failures = append(res.Failures, fmt.Sprintf("%d leader changes; at most %d may happen", res.Changes, tr.MaxChanges))
	}
	if len(underRefused) > 0 {
		slices.Sort(underRefused)
		res.Failures = append(res.Failures, fmt.Sprintf("nodes that counted fewer than %d unverified or replayed messages: %s", tr.Refused, strings.Join(underRefused, ", ")))
	}
	if len(underDropped) > 0 {
		slices.Sort(underDropped)
		res.Failures = append(res.Failures, fmt.Sprintf("nodes that counted fewer than %d dropped messages: %s", tr.Dropped, strings.Join(underDropped, ", ")))
	}
	if tr.SameTerm {
		ids := make([]string, 0, len(last))
		for id := range last {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		var off []string
		for _, id := range ids {
			if e := last[id]; alive(evs, id, tr.End) && e.Term != tr.OldTerm {
				off = append(off, fmt.Sprintf("%s at %d", id, e.Term))
			}
		}
		if len(off) > 0 {
			res.Failures = append(res.Failures, fmt.Sprintf("the term changed: it was %d at the start, at the end %s",
				tr.OldTerm, strings.Join(off, ", ")))
		}
	}
	// What the nodes themselves found odd.
	for _, e := range evs {
		if e.Ev == evAnomaly && e.T >= tr.Start && e.T <= tr.End {
			res.Failures = append(res.Failures, e.ID+": "+e.Msg)
		}
	}
	return res
}

// alive reports whether id had not exited by t.
func alive(evs []Event, id string, t int64) bool {
	for _, e := range evs {
		if e.ID == id && e.Ev == evProcExit && e.T <= t {
			return false
		}
	}
	return true
}

// convergence returns the time from the fault until the new leader has
// ticked and every slot not hit by the fault follows it at its term, or -1.
func convergence(evs []Event, ep *Episode, nw *Segment, end int64) int64 {
	type fol struct {
		id   string
		term uint64
	}
	state := map[int]fol{} // slot -> whom its current incarnation follows
	inc := map[int]string{}
	slots := map[int]bool{}
	for _, e := range evs {
		if e.Slot > 0 && !slices.Contains(ep.Targets, e.Slot) {
			slots[e.Slot] = true
		}
	}
	ok := func() bool {
		for s := range slots {
			if f := state[s]; f.id != nw.ID || f.term != nw.Term {
				return false
			}
		}
		return true
	}
	for _, e := range evs {
		if e.T > end {
			break
		}
		if e.Slot > 0 && slots[e.Slot] {
			switch e.Ev {
			case evProcStart:
				inc[e.Slot] = e.ID
				state[e.Slot] = fol{}
			case evNew, evStatus:
				if inc[e.Slot] == "" || inc[e.Slot] == e.ID {
					state[e.Slot] = fol{e.Leader, e.LTerm}
				}
			case evProcExit:
				if inc[e.Slot] == e.ID {
					delete(slots, e.Slot) // a dead node is not reachable
				}
			}
		}
		// checked at every event, the new leader's first tick included
		if e.T >= nw.FirstT0 && e.T >= ep.Fault && ok() {
			return e.T - ep.Fault
		}
	}
	return -1
}

// leaderless sums, over [from, to], the gaps between consecutive ticks
// (of any node) longer than a few tick periods.
func leaderless(evs []Event, from, to int64) int64 {
	const gap = int64(25 * time.Millisecond)
	var total int64
	prev := from
	for _, e := range evs {
		if e.Ev != evTick || e.T < from {
			continue
		}
		if e.T > to {
			break
		}
		if d := e.T - prev; d > gap {
			total += d
		}
		prev = e.T
	}
	if d := to - prev; d > gap {
		total += d
	}
	return total
}

// percentile returns the nearest-rank p-th percentile of sorted xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(float64(len(xs))*p/100+0.999999) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// findStalls collects the stall reports, marking those inside a SIGSTOP
// the harness sent.
func findStalls(evs []Event, faults []Fault) []Stall {
	var out []Stall
	for _, e := range evs {
		if e.Ev != evStall {
			continue
		}
		st := Stall{ID: e.ID, Slot: e.Slot, From: e.T, To: e.T1}
		for _, f := range faults {
			end := f.End
			if end == 0 {
				end = st.To
			}
			if f.Kind == "SIGSTOP" && e.Slot > 0 && slices.Contains(f.Slots, e.Slot) &&
				st.From <= end+int64(20*time.Millisecond) && st.To >= f.Start {
				st.Injected = true
			}
		}
		out = append(out, st)
	}
	return out
}

// stallNote names the longest non-injected stall that overlaps [from, to],
// to explain (not excuse) a leader change.
func stallNote(stalls []Stall, from, to int64) string {
	var best *Stall
	for i, st := range stalls {
		if st.Injected || st.From > to || st.To < from {
			continue
		}
		if best == nil || st.To-st.From > best.To-best.From {
			best = &stalls[i]
		}
	}
	if best == nil || best.To-best.From < int64(50*time.Millisecond) {
		return ""
	}
	n := 0
	for _, st := range stalls {
		if !st.Injected && st.From <= best.To && st.To >= best.From {
			n++
		}
	}
	return fmt.Sprintf(" (just before, %s did not run for %.0f ms, %d processes stalled together: CPU starvation?)",
		best.ID, ms(best.To-best.From), n)
}
