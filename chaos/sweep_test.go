package main

import (
	"os"
	"testing"
)

// epochTicks returns ticks like ticks(), reaching the fence in epoch ep
// (0: the fence write failed).
func epochTicks(id string, slot int, term uint64, from, to, ep int64) []Event {
	evs := ticks(id, slot, term, from, to)
	for i := range evs {
		evs[i].FenceEpoch = ep
		if ep != 0 {
			evs[i].Fence = fenceAccepted
		}
	}
	return evs
}

func TestTermResetAfterRedisLostItsData(t *testing.T) {
	// a leads term 14 in epoch 1; after a redis-server restart, b leads
	// term 1 in epoch 2 (a lock's counter started over): a term reset,
	// not a zombie, and no overlap since they never ticked at once
	evs := append(epochTicks("a", 1, 14, 0, 300, 1), epochTicks("b", 2, 1, 500, 520, 0)...)
	evs = append(evs, epochTicks("b", 2, 1, 525, 800, 2)...)
	a := Analyze(evs, nil, []*TrialRecord{trial(0, 1000)}, testParams)
	if kinds(a.Violations) != "term-reset" {
		t.Fatalf("violations = %v; want one term-reset", a.Violations)
	}
	if a.OverlapNs != 0 || a.Zombies != 0 {
		t.Errorf("overlap %d ns, zombies %d; want 0 (they never ticked at once)", a.OverlapNs, a.Zombies)
	}
	if len(a.Segments) != 2 {
		t.Errorf("segments = %d; want 2 (b's ticks before its first fenced write belong to epoch 2)", len(a.Segments))
	}
}

func TestLeadershipAcrossRedisRestartIsOneLeader(t *testing.T) {
	// a keeps term 3 across a quick redis-server restart: no change, no violation
	evs := append(epochTicks("a", 1, 3, 0, 300, 1), epochTicks("a", 1, 3, 305, 600, 2)...)
	tr := trial(0, 1000)
	tr.Quiet = []Window{{From: 0}}
	a := Analyze(evs, nil, []*TrialRecord{tr}, testParams)
	if len(a.Violations) != 0 {
		t.Fatalf("violations = %v; want none", a.Violations)
	}
	if c := a.Trials[0].Changes; c != 0 {
		t.Errorf("leader changes = %d; want 0", c)
	}
}

func TestAmnesiaStandingEarlyIsAFailure(t *testing.T) {
	tr := trial(0, 2000)
	tr.Amnesia = []Amnesia{{Slot: 2, ID: "b", Killed: 100 * msNs, Restarted: 110 * msNs, OldTerm: 4}}
	evs := []Event{{T: 300 * msNs, Ev: evStatus, ID: "b", Slot: 2, Term: 5, State: "candidate", Elections: 1}}
	a := Analyze(evs, nil, []*TrialRecord{tr}, testParams)
	if len(a.Trials[0].Failures) != 1 {
		t.Fatalf("failures = %v; want one (stood 190 ms after its restart)", a.Trials[0].Failures)
	}
	evs[0].T = 700 * msNs // after PeerTimeout: allowed
	a = Analyze(evs, nil, []*TrialRecord{tr}, testParams)
	if len(a.Trials[0].Failures) != 0 {
		t.Fatalf("failures = %v; want none", a.Trials[0].Failures)
	}
}

func TestProcReaders(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, ok := procCPU(os.Getpid()); !ok {
		t.Error("procCPU(self) failed")
	}
	if r, ok := procRSS(os.Getpid()); !ok || r <= 0 {
		t.Errorf("procRSS(self) = %v, %v", r, ok)
	}
	if busy, total := machineCPU(); total <= 0 || busy > total {
		t.Errorf("machineCPU = %d, %d", busy, total)
	}
	if m := median([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median = %v; want 2.5", m)
	}
}
