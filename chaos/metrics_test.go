package main

import (
	"strings"
	"testing"
	"time"
)

const msNs = int64(time.Millisecond)

var testParams = Params{Lease: 300 * time.Millisecond, PeerTimeout: 500 * time.Millisecond, Jitter: 150 * time.Millisecond}

// ticks returns ticks of id in term every 5 ms over [from, to] ms.
func ticks(id string, slot int, term uint64, from, to int64) []Event {
	var out []Event
	for t := from; t <= to; t += 5 {
		out = append(out, Event{T: t * msNs, T1: t*msNs + 20_000, Ev: evTick, ID: id, Slot: slot, Term: term})
	}
	return out
}

func trial(start, end int64) *TrialRecord {
	return &TrialRecord{Trial: 1, Start: start * msNs, End: end * msNs}
}

func kinds(vs []Violation) string {
	var k []string
	for _, v := range vs {
		k = append(k, v.Kind)
	}
	return strings.Join(k, ",")
}

func TestCleanFailoverHasNoViolation(t *testing.T) {
	evs := append(ticks("a", 1, 1, 0, 300), ticks("b", 2, 2, 800, 1500)...)
	tr := trial(0, 1600)
	tr.OldID, tr.OldSlot, tr.OldTerm = "a", 1, 1
	tr.Episodes = []*Episode{{Name: "crash", Fault: 290 * msNs, OldID: "a", OldSlot: 1, OldTerm: 1,
		Targets: []int{1}, ExpectChange: true, Recovered: true, RecoveredAt: 800 * msNs}}
	a := Analyze(evs, nil, []*TrialRecord{tr}, testParams)
	if len(a.Violations) != 0 || a.OverlapNs != 0 {
		t.Fatalf("got violations %v, overlap %d; want none", a.Violations, a.OverlapNs)
	}
	ep := a.Trials[0].Episodes[0]
	if ep.FailoverMs != 510 {
		t.Errorf("failover = %v ms; want 510", ep.FailoverMs)
	}
	if ep.LeaderlessMs != 500 {
		t.Errorf("leaderless = %v ms; want 500 (last old tick at 300 to first new at 800)", ep.LeaderlessMs)
	}
	if ep.NewLeader != "b" || ep.NewTerm != 2 {
		t.Errorf("new leader = %s term %d; want b term 2", ep.NewLeader, ep.NewTerm)
	}
	if got := a.Trials[0].Failures; len(got) != 0 {
		t.Errorf("failures = %v; want none", got)
	}
}

func TestZombieTickIsAViolation(t *testing.T) {
	// a keeps ticking 40 ms into b's leadership
	evs := append(ticks("a", 1, 1, 0, 840), ticks("b", 2, 2, 800, 1500)...)
	a := Analyze(evs, nil, []*TrialRecord{trial(0, 1600)}, testParams)
	if kinds(a.Violations) != "zombie" {
		t.Fatalf("violations = %v; want one zombie", a.Violations)
	}
	if a.Zombies != 8 {
		t.Errorf("zombie ticks = %d; want 8 (805..840)", a.Zombies)
	}
	if got := ms(a.OverlapNs); got < 39 || got > 40 {
		t.Errorf("overlap = %v ms; want about 40", got)
	}
}

func TestTouchingTicksAreNotAViolation(t *testing.T) {
	// a's last check starts before b's first check returned: no certain order
	evs := append(ticks("a", 1, 1, 0, 800), ticks("b", 2, 2, 800, 900)...)
	a := Analyze(evs, nil, []*TrialRecord{trial(0, 1000)}, testParams)
	if len(a.Violations) != 0 {
		t.Fatalf("violations = %v; want none", a.Violations)
	}
}

func TestTwoLeadersInOneTerm(t *testing.T) {
	evs := append(ticks("a", 1, 3, 0, 100), ticks("b", 2, 3, 500, 600)...)
	a := Analyze(evs, nil, []*TrialRecord{trial(0, 700)}, testParams)
	if kinds(a.Violations) != "two-leaders" {
		t.Fatalf("violations = %v; want two-leaders", a.Violations)
	}
}

func TestTermGoingBackIsAViolation(t *testing.T) {
	evs := append(ticks("a", 1, 5, 0, 100), ticks("b", 2, 4, 500, 600)...)
	a := Analyze(evs, nil, []*TrialRecord{trial(0, 700)}, testParams)
	if kinds(a.Violations) != "zombie" {
		t.Fatalf("violations = %v; want zombie (a lower term acting after a higher one)", a.Violations)
	}
}

func TestFencingOrder(t *testing.T) {
	evs := []Event{
		{T: 1, Ev: evTick, ID: "a", Term: 2, Fence: fenceAccepted, FenceEpoch: 1, FenceN: 1},
		{T: 2, Ev: evTick, ID: "b", Term: 1, Fence: fenceAccepted, FenceEpoch: 1, FenceN: 2},
		{T: 3, Ev: evTick, ID: "b", Term: 1, Fence: fenceAccepted, FenceEpoch: 2, FenceN: 1}, // Redis restarted
		{T: 4, Ev: evTick, ID: "b", Term: 1, Fence: fenceRejected, FenceEpoch: 2, FenceN: 2},
	}
	a := Analyze(evs, nil, []*TrialRecord{trial(0, 1)}, testParams)
	// b's term-1 ticks after a's term-2 ticks are also zombies; the fence
	// violation is the one about Redis order
	if !strings.Contains(kinds(a.Violations), "fencing") {
		t.Fatalf("violations = %v; want a fencing violation", a.Violations)
	}
	for _, v := range a.Violations {
		if v.Kind == "fencing" && !strings.Contains(v.Msg, "accepted 1 writes") {
			t.Errorf("%s; want 1 bad write (a new epoch starts over)", v.Msg)
		}
	}
	if a.Fence != (FenceStats{Accepted: 3, Rejected: 1}) {
		t.Errorf("fence stats = %+v", a.Fence)
	}
}

func TestLeaseBoundWhileCut(t *testing.T) {
	tr := trial(0, 2000)
	tr.Cuts = []CutWindow{{Slots: []int{1}, From: 100 * msNs, To: 1600 * msNs}}
	ok := Analyze(ticks("a", 1, 1, 0, 395), nil, []*TrialRecord{tr}, testParams)
	if len(ok.Violations) != 0 {
		t.Fatalf("ticks until cut+295ms: violations = %v; want none", ok.Violations)
	}
	bad := Analyze(ticks("a", 1, 1, 0, 450), nil, []*TrialRecord{tr}, testParams)
	if kinds(bad.Violations) != "lease" {
		t.Fatalf("ticks until cut+350ms: violations = %v; want lease", bad.Violations)
	}
}

func TestMinorityMustNotLead(t *testing.T) {
	tr := trial(0, 3000)
	tr.NoLead = []CutWindow{{Slots: []int{4, 5}, From: 100 * msNs, To: 1600 * msNs}}
	evs := append(ticks("a", 1, 1, 0, 300), ticks("d", 4, 2, 900, 1000)...)
	a := Analyze(evs, nil, []*TrialRecord{tr}, testParams)
	if kinds(a.Violations) != "minority" {
		t.Fatalf("violations = %v; want minority", a.Violations)
	}
	// a minority node that held the lease when the cut came may act until it ends
	held := ticks("d", 4, 2, 0, 390)
	if a := Analyze(held, nil, []*TrialRecord{tr}, testParams); len(a.Violations) != 0 {
		t.Fatalf("lease held over the cut: violations = %v; want none", a.Violations)
	}
}

func TestCallbackOverlap(t *testing.T) {
	base := []Event{
		{T: 0, Ev: evStart, ID: "a", Slot: 1, Term: 1},
		{T: 1000 * msNs, Ev: evStart, ID: "b", Slot: 2, Term: 2},
	}
	late := append(base, Event{T: 1100 * msNs, Ev: evCbDone, ID: "a", Slot: 1, Term: 1})
	a := Analyze(late, nil, []*TrialRecord{trial(0, 2000)}, testParams)
	if kinds(a.Violations) != "callback-overlap" {
		t.Fatalf("violations = %v; want callback-overlap", a.Violations)
	}
	// the same, but a's process did not run from 600 to 1090 ms
	stalled := append(late, Event{T: 600 * msNs, T1: 1090 * msNs, Ev: evStall, ID: "a", Slot: 1})
	if a := Analyze(stalled, nil, []*TrialRecord{trial(0, 2000)}, testParams); len(a.Violations) != 0 {
		t.Fatalf("stalled process: violations = %v; want none", a.Violations)
	}
	early := append(base, Event{T: 700 * msNs, Ev: evCbDone, ID: "a", Slot: 1, Term: 1})
	if a := Analyze(early, nil, []*TrialRecord{trial(0, 2000)}, testParams); len(a.Violations) != 0 {
		t.Fatalf("violations = %v; want none", a.Violations)
	}
}

func TestStopWithoutStart(t *testing.T) {
	evs := []Event{{T: 5, Ev: evStop, ID: "a", Slot: 1}}
	a := Analyze(evs, nil, []*TrialRecord{trial(0, 1)}, testParams)
	if kinds(a.Violations) != "callback" {
		t.Fatalf("violations = %v; want callback", a.Violations)
	}
}

func TestQuietWindowAndSameTerm(t *testing.T) {
	evs := append(ticks("a", 1, 1, 0, 500), ticks("b", 2, 2, 1000, 1500)...)
	evs = append(evs,
		Event{T: 1400 * msNs, Ev: evStatus, ID: "a", Slot: 1, Term: 2},
		Event{T: 1400 * msNs, Ev: evStatus, ID: "b", Slot: 2, Term: 2})
	tr := trial(100, 1600)
	tr.OldID, tr.OldSlot, tr.OldTerm = "a", 1, 1
	tr.Quiet = []Window{{From: 100 * msNs}}
	tr.SameTerm = true
	a := Analyze(evs, nil, []*TrialRecord{tr}, testParams)
	f := a.Trials[0].Failures
	if len(f) != 2 || !strings.Contains(f[0], "leader changed to b") || !strings.Contains(f[1], "term changed") {
		t.Fatalf("failures = %q; want a leader change and a term change", f)
	}
	if a.Trials[0].Spurious != 1 {
		t.Errorf("spurious = %d; want 1", a.Trials[0].Spurious)
	}
}

func TestConvergence(t *testing.T) {
	evs := []Event{
		{T: 0, Ev: evProcStart, ID: "a", Slot: 1},
		{T: 0, Ev: evProcStart, ID: "b", Slot: 2},
		{T: 0, Ev: evProcStart, ID: "c", Slot: 3},
		{T: 600 * msNs, Ev: evNew, ID: "b", Slot: 2, Leader: "b", LTerm: 2},
		{T: 650 * msNs, Ev: evNew, ID: "c", Slot: 3, Leader: "b", LTerm: 2},
	}
	evs = append(evs, ticks("b", 2, 2, 620, 700)...)
	ep := &Episode{Fault: 100 * msNs, Targets: []int{1}}
	seg := buildSegments(evs)[0]
	if got := convergence(evs, ep, seg, 1000*msNs); got != 550*msNs {
		t.Fatalf("convergence = %v ms; want 550", ms(got))
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct{ p, want float64 }{{50, 5}, {90, 9}, {99, 10}, {100, 10}, {1, 1}} {
		if got := percentile(xs, c.p); got != c.want {
			t.Errorf("p%v = %v; want %v", c.p, got, c.want)
		}
	}
	if got := summarize(nil); got.N != 0 {
		t.Errorf("summarize(nil) = %+v", got)
	}
}

func TestConvergenceAtFirstTick(t *testing.T) {
	// everyone follows b before b's first tick: convergence is the first tick
	evs := []Event{
		{T: 0, Ev: evProcStart, ID: "b", Slot: 2},
		{T: 0, Ev: evProcStart, ID: "c", Slot: 3},
		{T: 103 * msNs, Ev: evNew, ID: "b", Slot: 2, Leader: "b", LTerm: 2},
		{T: 103 * msNs, Ev: evNew, ID: "c", Slot: 3, Leader: "b", LTerm: 2},
		{T: 190 * msNs, Ev: evStatus, ID: "c", Slot: 3, Leader: "b", LTerm: 2},
	}
	evs = append(evs, ticks("b", 2, 2, 105, 200)...)
	a := Analyze(evs, nil, []*TrialRecord{trial(0, 300)}, testParams)
	ep := &Episode{Fault: 100 * msNs, Targets: []int{1}}
	if got := convergence(evs, ep, a.Segments[0], 300*msNs); got != 5*msNs {
		t.Fatalf("convergence = %v ms; want 5", ms(got))
	}
}

func TestZombieAfterStartBeforeFirstTick(t *testing.T) {
	// b became active (OnStartedLeading) at 800 but ticked first at 804;
	// a's tick at 802 came after b had begun
	evs := append(ticks("a", 1, 1, 0, 795), ticks("b", 2, 2, 804, 900)...)
	evs = append(evs, Event{T: 802 * msNs, T1: 802*msNs + 20_000, Ev: evTick, ID: "a", Slot: 1, Term: 1},
		Event{T: 800 * msNs, Ev: evStart, ID: "b", Slot: 2, Term: 2})
	a := Analyze(evs, nil, []*TrialRecord{trial(0, 1000)}, testParams)
	if kinds(a.Violations) != "zombie" {
		t.Fatalf("violations = %v; want zombie", a.Violations)
	}
	// two nodes started leading in one term, neither ticked
	two := []Event{{T: 1, Ev: evStart, ID: "a", Slot: 1, Term: 4}, {T: 2, Ev: evStart, ID: "b", Slot: 2, Term: 4}}
	if a := Analyze(two, nil, []*TrialRecord{trial(0, 1)}, testParams); !strings.Contains(kinds(a.Violations), "two-leaders") {
		t.Fatalf("violations = %v; want two-leaders", a.Violations)
	}
}

// TestSideBySideRatio: with two algorithms the side-by-side table ends
// each row with the first's failover p99 over the second's.
func TestSideBySideRatio(t *testing.T) {
	rs := []ScenarioResult{
		{Name: "crash", Algo: algoQuasiRaft, Failover: Pcts{N: 3, P50: 280, P99: 300}},
		{Name: "crash", Algo: algoLock, Failover: Pcts{N: 3, P50: 450, P99: 480}},
		{Name: "flood", Algo: algoQuasiRaft},
	}
	var b strings.Builder
	writeSideBySide(&b, rs, []string{algoQuasiRaft, algoLock})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and two rows:\n%s", b.String())
	}
	if !strings.Contains(lines[0], "p99 quasi-raft/lock") {
		t.Errorf("header has no ratio column: %q", lines[0])
	}
	if !strings.HasSuffix(strings.TrimSpace(lines[1]), "0.62") {
		t.Errorf("crash row: %q; want it to end with 300/480 = 0.62", lines[1])
	}
	if !strings.HasSuffix(strings.TrimSpace(lines[2]), "-") {
		t.Errorf("flood row (no failover): %q; want it to end with -", lines[2])
	}
}
