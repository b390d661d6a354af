package main

// Each scenario is a script: fault, wait, heal, wait for a stable leader.
// The script also declares what must hold (a new leader during the fault,
// windows where no leader change may happen, the same term at the end, lease
// bounds while a node is cut off); metrics.go checks those declarations
// against the events, together with the safety checks that hold always.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"time"
)

// Scenario is one kind of fault and what must hold under it.
type Scenario struct {
	Name    string
	Fault   string   // what is done, for the README and -h
	Checks  string   // the invariant checked, beyond the always-on safety checks
	Trials  int      // default number of trials
	Strict  bool     // always run in strict mode (ClusterSize = nodes)
	Algos   []string // the algorithms it applies to; empty: all
	SkipWhy string   // why the others are skipped
	// Optional scenarios are not part of "all" (so not of make chaos and
	// chaos-quick); run them by name with -scenarios.
	Optional bool
	NodeArgs []string // extra flags for the node processes of this scenario
	// Deploy names the deployment the scenario runs on: "" (one
	// redis-server), deploySentinel or deployCluster. The harness starts
	// it once for all the scenarios that use it, and restores it before
	// every trial.
	Deploy string
	// Setup, if set, runs before the scenario's nodes start (per-slot node
	// flags, say).
	Setup func(h *Harness, c *Config)
	Run   func(t *Trial)
}

// floodSize is how many junk messages the flood scenario publishes.
const floodSize = 100_000

// scenarios is the full list, in the order they run.
var scenarios = []Scenario{
	{Name: "calm", Trials: 3,
		Fault:  "no fault for max(2s, 4*PeerTimeout)",
		Checks: "no leader change, no term change, no election at all",
		Run: func(t *Trial) {
			t.quietFrom(t.R.Start)
			t.R.SameTerm, t.R.NoElections = true, true
			t.sleep(max(2*time.Second, 4*t.cfg.PeerTimeout))
		}},
	{Name: "crash", Trials: 5,
		Fault:  "SIGKILL the leader; once a new leader is stable, restart it as a new incarnation",
		Checks: "a new leader with a higher term; the restarted node does not take leadership back",
		Run: func(t *Trial) {
			crashAndRestart(t, "crash", "SIGKILL", "after SIGKILL of the leader", t.R.OldSlot)
		}},
	{Name: "crash-heir", Trials: 5, Algos: []string{algoQuasiRaft},
		SkipWhy: "a lock names no heir",
		Fault:   "SIGKILL the leader and the follower it names as heir at the same moment; once a new leader is stable, restart both",
		Checks:  "a new leader with a higher term among the others, who get no head start from an heir (the jitter and the pre-vote's lower-ID rule must keep them apart); the restarted nodes do not take leadership back",
		Run: func(t *Trial) {
			l := t.R.OldSlot
			if t.clusterSize > 0 && t.cfg.Nodes-2 < t.clusterSize/2+1 {
				t.R.Notes = append(t.R.Notes, fmt.Sprintf("trial %d: skipped: %d nodes less two are no strict quorum", t.R.Trial, t.cfg.Nodes))
				return
			}
			heir := t.rec.heirOf(l)
			if heir == 0 || heir == l {
				t.failf("the leader's status named no live heir")
				heir = t.pick(1, t.followers())[0]
			}
			crashAndRestart(t, "crash-heir", "SIGKILL leader and heir", "after SIGKILL of the leader and its heir", l, heir)
		}},
	{Name: "follower-restart", Trials: 3,
		Fault:  "SIGKILL a follower, wait PeerTimeout, restart it",
		Checks: "no leader change and no term change",
		Run: func(t *Trial) {
			f := t.pick(1, t.followers())[0]
			t.episode("follower-kill", false, f)
			fi := t.fault("SIGKILL", f)
			t.quietFrom(mono())
			t.R.SameTerm = true
			t.signal(f, syscall.SIGKILL)
			t.waitExit(f, 2*time.Second)
			t.sleep(t.cfg.PeerTimeout)
			t.restart(f)
			t.endFault(fi)
			t.waitStable(t.ep(), "after the follower restarted")
		}},
	{Name: "resign", Trials: 5,
		Fault:  "SIGTERM the leader (graceful: Run's context is cancelled); restart it",
		Checks: "a new leader; the old one's callback returned before the new one's began; the process exits",
		Run: func(t *Trial) {
			l := t.R.OldSlot
			ep := t.episode("resign", true, l)
			t.R.Handover = true
			fi := t.fault("SIGTERM", l)
			t.signal(l, syscall.SIGTERM)
			if !t.waitExit(l, 5*time.Second) {
				t.failf("node %s did not exit within 5s of SIGTERM (Run did not return); killed", t.R.OldID)
				t.signal(l, syscall.SIGKILL)
				t.waitExit(l, 2*time.Second)
			}
			if !t.waitStable(ep, "after SIGTERM of the leader") {
				return
			}
			t.endFault(fi)
			t.quietFrom(mono())
			t.restart(l)
			t.waitStable(nil, "after the resigned node restarted")
		}},
	{Name: "pause", Trials: 5,
		Fault:  "SIGSTOP the leader for 3*PeerTimeout, then SIGCONT",
		Checks: "a new leader during the pause; the old leader never ticks after SIGCONT; it does not depose the new one",
		Run: func(t *Trial) {
			l := t.R.OldSlot
			ep := t.episode("pause", true, l)
			fi := t.fault("SIGSTOP", l)
			t.signal(l, syscall.SIGSTOP)
			t.sleep(3 * t.cfg.PeerTimeout)
			t.signal(l, syscall.SIGCONT)
			t.endFault(fi)
			t.quietFrom(mono())
			t.waitStable(ep, "after SIGCONT")
		}},
	{Name: "short-pause", Trials: 3,
		Fault:  "SIGSTOP the leader for LeaseTimeout-2*HeartbeatInterval (a pause its lease outlasts), then SIGCONT",
		Checks: "no leader change and no term change",
		Run: func(t *Trial) {
			l := t.R.OldSlot
			ep := t.episode("short-pause", false, l)
			t.quietFrom(mono())
			t.R.SameTerm = true
			fi := t.fault("SIGSTOP", l)
			t.signal(l, syscall.SIGSTOP)
			// A leadership is one lease: a pause it does not outlast ends
			// it (lease-lapse shows that), so this one stays inside the
			// lease's slack, which a heartbeat renews every interval.
			t.sleep(t.cfg.Lease - 2*t.cfg.Heartbeat)
			t.signal(l, syscall.SIGCONT)
			t.endFault(fi)
			t.waitStable(ep, "after SIGCONT")
		}},
	{Name: "partition", Trials: 5,
		Fault:  "blackhole the leader's link both ways for 3*PeerTimeout, then heal",
		Checks: "the cut leader stops within LeaseTimeout; a new leader during the cut; no change after the heal",
		Run:    func(t *Trial) { partitionLeader(t, "both") }},
	{Name: "partition-in", Trials: 5,
		Fault:  "the leader is deaf (downstream cut) for 3*PeerTimeout, then heal",
		Checks: "as partition",
		Run:    func(t *Trial) { partitionLeader(t, "in") }},
	{Name: "partition-out", Trials: 5,
		Fault:  "the leader is mute (upstream cut) for 3*PeerTimeout, then heal",
		Checks: "as partition",
		Run:    func(t *Trial) { partitionLeader(t, "out") }},
	{Name: "partition-followers", Trials: 3,
		Fault:  "blackhole (nodes-1)/2 followers both ways for 3*PeerTimeout, then heal",
		Checks: "no leader change; after the heal no term change (pre-vote)",
		Run: func(t *Trial) {
			fs := t.pick((t.cfg.Nodes-1)/2, t.followers())
			ep := t.episode("partition-followers", false, fs...)
			t.quietFrom(mono())
			t.R.SameTerm = true
			fi := t.fault("cut", fs...)
			for _, f := range fs {
				t.cut(f, "both")
			}
			cw := t.cutWindow(fs...)
			t.sleep(3 * t.cfg.PeerTimeout)
			t.closeCut(cw)
			for _, f := range fs {
				t.h.Heal(f)
			}
			t.endFault(fi)
			t.waitStable(ep, "after the heal")
		}},
	{Name: "latency", Trials: 3,
		Fault:  "HeartbeatInterval/5 ± HeartbeatInterval/10 latency on every link, both ways, for max(2s, 4*PeerTimeout)",
		Checks: "no leader change at all, no term change",
		Run: func(t *Trial) {
			lat, jit := latencyBelowTimeouts(t.cfg)
			all := t.allSlots()
			ep := t.episode("latency", false, all...)
			t.quietFrom(mono())
			t.R.SameTerm = true
			fi := t.fault(fmt.Sprintf("latency %v±%v", lat, jit), all...)
			for _, s := range all {
				if err := t.h.Latency(s, lat, jit); err != nil {
					t.abort(err)
				}
			}
			t.sleep(max(2*time.Second, 4*t.cfg.PeerTimeout))
			t.h.HealAll()
			t.endFault(fi)
			t.waitStable(ep, "after the latency was removed")
		}},
	{Name: "slow-leader", Trials: 3,
		Fault:  "0.4*PeerTimeout ± PeerTimeout/20 latency on the leader's link, both ways, for 4*PeerTimeout",
		Checks: "safety only (a lease it cannot renew must end); one stable leader after the heal",
		Run: func(t *Trial) {
			l := t.R.OldSlot
			lat, jit := t.cfg.PeerTimeout*2/5, t.cfg.PeerTimeout/20
			ep := t.episode("slow-leader", false, l)
			fi := t.fault(fmt.Sprintf("latency %v±%v", lat.Round(time.Millisecond), jit.Round(time.Millisecond)), l)
			if err := t.h.Latency(l, lat, jit); err != nil {
				t.abort(err)
			}
			t.sleep(4 * t.cfg.PeerTimeout)
			t.h.Heal(l)
			t.endFault(fi)
			if t.waitStable(ep, "after the latency was removed") {
				t.quietFrom(mono())
			}
		}},
	{Name: "flap", Trials: 3,
		Fault:  "blackhole the leader's link for PeerTimeout/3, heal for PeerTimeout/3, 5 times",
		Checks: "safety only; one stable leader after the flapping",
		Run: func(t *Trial) {
			l := t.R.OldSlot
			ep := t.episode("flap", false, l)
			for range 5 {
				fi := t.fault("cut", l)
				t.cut(l, "both")
				cw := t.cutWindow(l)
				t.sleep(t.cfg.PeerTimeout / 3)
				t.closeCut(cw)
				t.h.Heal(l)
				t.endFault(fi)
				t.sleep(t.cfg.PeerTimeout / 3)
			}
			if t.waitStable(ep, "after the flapping") {
				t.quietFrom(mono())
			}
		}},
	{Name: "redis-restart", Trials: 3,
		Fault:  "SIGKILL redis-server and restart it on the same port: at once, then after 4*PeerTimeout",
		Checks: "the leader stops within LeaseTimeout of a long outage; one stable leader after each restart",
		Run: func(t *Trial) {
			all := t.allSlots()
			ep := t.episode("redis-quick", false, all...)
			fi := t.fault("redis down", all...)
			t.h.RedisDown()
			cw := t.cutWindow(all...)
			err := t.h.RedisUp()
			t.closeCut(cw)
			t.endFault(fi)
			if err != nil {
				t.abort(err)
			}
			if !t.waitStable(ep, "after a quick redis-server restart") {
				return
			}
			t.quietFrom(mono())
			t.sleep(t.cfg.PeerTimeout)
			t.quietUntil(mono())
			ep = t.episode("redis-long", false, all...)
			fi = t.fault("redis down", all...)
			t.h.RedisDown()
			cw = t.cutWindow(all...)
			t.sleep(4 * t.cfg.PeerTimeout)
			t.closeCut(cw)
			err = t.h.RedisUp()
			t.endFault(fi)
			if err != nil {
				t.abort(err)
			}
			if t.waitStable(ep, "after a long redis-server outage") {
				t.quietFrom(mono())
			}
		}},
	{Name: "flood", Trials: 3, Algos: []string{algoQuasiRaft},
		SkipWhy: "a lock reads no channel",
		Fault:   "another client publishes 100,000 junk messages of 16-79 random bytes on the group's channel, pipelined, straight to redis-server, as fast as it can",
		Checks:  "no leader change, no term change, no election, no step-down (the leader's lease never lapses); every node counts at least 100,000 refused messages (dropped, or unverified when junk begins like another version)",
		Run: func(t *Trial) {
			all := t.allSlots()
			ep := t.episode("flood", false, all...)
			t.quietFrom(mono())
			t.R.SameTerm, t.R.NoElections, t.R.NoStepDowns = true, true, true
			t.R.Dropped = floodSize
			fi := t.fault(fmt.Sprintf("flood of %d", floodSize), all...)
			from := mono()
			took, err := t.h.Flood(t.ctx, "leader:{"+t.rec.group+"}", floodSize, t.rng)
			t.endFault(fi)
			if err != nil {
				t.abort(err)
			}
			t.sleep(t.cfg.PeerTimeout) // the nodes drain what is queued, and report
			margin := "no status report showed it"
			if least, ok := t.rec.leastLease(from, mono()); ok {
				margin = fmt.Sprintf("least lease left %v of %v", least.Round(time.Millisecond), t.cfg.Lease)
			}
			t.R.Notes = append(t.R.Notes, fmt.Sprintf("trial %d: %d junk messages published in %v (%.0f/s); the leader's %s",
				t.R.Trial, floodSize, took.Round(time.Millisecond), floodSize/took.Seconds(), margin))
			t.waitStable(ep, "after the flood")
		}},
	{Name: "amnesia", Trials: 3, Algos: []string{algoQuasiRaft},
		SkipWhy: "a lock has no votes to forget",
		Fault:   "SIGKILL the leader; the moment a follower's term rises (it was asked to vote), SIGKILL that follower and restart it at once with the same ID",
		Checks:  "one leader per term (the safety checks); the restarted node neither stands nor leads within PeerTimeout of its restart (rule 8), so it cannot vote twice in the term it forgot; a new leader with a higher term",
		Run:     amnesia},
	{Name: "lease-lapse", Trials: 3,
		Fault:    "SIGSTOP the leader for (LeaseTimeout+PeerTimeout)/2, then SIGCONT; each node's OnStartedLeading takes 50 ms to return after its context ends (a job winding down)",
		Checks:   "safety only: the lease lapses and the leadership ends (a lapsed lease never comes back in the same term), and a node never runs two OnStartedLeading at once",
		NodeArgs: []string{"-cb-linger", "50ms"},
		Run: func(t *Trial) {
			l := t.R.OldSlot
			ep := t.episode("lease-lapse", false, l)
			fi := t.fault("SIGSTOP", l)
			t.signal(l, syscall.SIGSTOP)
			t.sleep((t.cfg.Lease + t.cfg.PeerTimeout) / 2)
			t.signal(l, syscall.SIGCONT)
			t.endFault(fi)
			if t.waitStable(ep, "after SIGCONT") {
				t.quietFrom(mono())
			}
		}},
	{Name: "replay", Trials: 2, Algos: []string{algoQuasiRaft},
		SkipWhy:  "a lock signs nothing",
		Fault:    "with a Secret shared by two groups on one Redis: a client without the key captures both groups' traffic (a handover of the other group included), then publishes all of it again, pipelined: into the channels it came from, in order, and each group's into the other's",
		Checks:   "no leader change, no term change, no lease lapse; every node counts at least the copies on its group's channel as unverified or replayed",
		NodeArgs: []string{"-secret", chaosSecret},
		Run:      replayScenario},
	{Name: "secret-rotation", Trials: 1, Algos: []string{algoQuasiRaft},
		SkipWhy:  "a lock signs nothing",
		Fault:    "rotate the running group's key one process at a time (SIGTERM, restart): every node from Secret=old to Secret=new with PreviousSecret=old, then to Secret=new",
		Checks:   "leader changes only by the handovers of restarted leaders; no lease lapse; no node counts an unverifiable message",
		NodeArgs: []string{"-secret", "chaos old key"},
		Run:      rotationScenario},
	{Name: "priority", Trials: 2, Algos: []string{algoQuasiRaft},
		SkipWhy: "a lock has no priority",
		Fault:   "node 1 has Priority 5 (PriorityAfter 4*PeerTimeout), the others 0: once it leads, SIGTERM it, then restart it",
		Checks:  "leadership goes to another node by the handover and comes back to node 1 once, by a handover: two leader changes, no lease lapse",
		Setup:   prioritySetup,
		Run:     priorityScenario},
	{Name: "load-calm", Trials: 1, Optional: true,
		Fault:  "no fault for a minute (15s with -quick); meant for -load N, with -scale 1 and -scale 5 side by side",
		Checks: "safety only; reports leader changes (restarts of the singleton job) per minute",
		Run:    loadCalm},
	{Name: "minority", Trials: 3, Strict: true, Algos: []string{algoQuasiRaft},
		SkipWhy: "a lock has no quorum: whoever reaches Redis takes it, so 'the minority never leads' does not apply",
		Fault:   "strict mode: blackhole nodes/2+1 nodes (the leader among them) for 3*PeerTimeout, then heal",
		Checks:  "the connected minority never leads; the cut leader stops within LeaseTimeout; one leader after the heal",
		Run: func(t *Trial) {
			l := t.R.OldSlot
			cutSlots := append([]int{l}, t.pick(t.cfg.Nodes/2, t.followers())...)
			var minority []int
			for _, s := range t.allSlots() {
				if !slices.Contains(cutSlots, s) {
					minority = append(minority, s)
				}
			}
			ep := t.episode("minority", false, cutSlots...)
			fi := t.fault("cut", cutSlots...)
			for _, s := range cutSlots {
				t.cut(s, "both")
			}
			cw := t.cutWindow(cutSlots...)
			nl := t.noLead(minority...)
			t.sleep(3 * t.cfg.PeerTimeout)
			t.closeCut(cw)
			t.R.NoLead[nl].To = mono()
			for _, s := range cutSlots {
				t.h.Heal(s)
			}
			t.endFault(fi)
			if t.waitStable(ep, "after the heal") {
				t.quietFrom(mono())
			}
		}},
	{Name: "sentinel-failover", Trials: 3, Strict: true, Deploy: deploySentinel,
		Fault:  "Sentinel deployment: SENTINEL FAILOVER",
		Checks: "safety only (a leader change is allowed, not required); one stable leader on the new primary, then no change",
		Run:    sentinelFailover},
	{Name: "sentinel-kill-primary", Trials: 3, Strict: true, Deploy: deploySentinel,
		Fault:  "Sentinel deployment: SIGKILL the primary (the sentinels fail it over after down-after-milliseconds, 2 s)",
		Checks: "no node leads longer than LeaseTimeout past the kill while no sentinel names a new primary; one stable leader on the new primary",
		Run:    sentinelKillPrimary},
	{Name: "sentinel-pause-primary", Trials: 3, Strict: true, Deploy: deploySentinel,
		Fault:  "Sentinel deployment: SIGSTOP the primary until every sentinel names another (past down-after-milliseconds), then SIGCONT",
		Checks: "as sentinel-kill-primary; the continued old primary, a writable master until demoted, splits no group",
		Run:    sentinelPausePrimary},
	{Name: "sentinel-failover-blip", Trials: 2, Strict: true, Deploy: deploySentinel,
		Fault:  "Sentinel deployment: SENTINEL FAILOVER, and one node's connections drop right after it and again when the first sentinel names the new primary: a follower's, then (restored) the leader's",
		Checks: "safety only; one stable leader after each",
		Run:    sentinelFailoverBlip},
	{Name: "cluster-failover", Trials: 3, Strict: true, Deploy: deployCluster,
		Fault:  "Cluster: CLUSTER FAILOVER on the replica of the group's slot owner",
		Checks: "safety only (a leader change is allowed, not required); one stable leader on the new owner, then no change",
		Run:    clusterFailover},
	{Name: "cluster-kill-owner", Trials: 3, Strict: true, Deploy: deployCluster,
		Fault:  "Cluster: SIGKILL the owner of the group's slot (its replica takes over after cluster-node-timeout, 2 s)",
		Checks: "no node leads longer than LeaseTimeout past the kill while no server names a new owner; one stable leader on the new owner",
		Run:    clusterKillOwner},
	{Name: "cluster-pause-leader", Trials: 2, Strict: true, Deploy: deployCluster,
		Fault:  "Cluster: SIGSTOP the leader for 250 ms, then for 3*PeerTimeout (past its lease), then SIGCONT",
		Checks: "no follower gives up the paused leader before LeaseTimeout less a heartbeat (the crash fast path: SHARDNUMSUB counts one node's subscribers, so asked elsewhere it would say crashed); a new leader during the long pause",
		Run:    clusterPauseLeader},
}

// crashAndRestart SIGKILLs slots at once, waits for a stable leader, then
// restarts them as new incarnations and waits for a stable leader again.
func crashAndRestart(t *Trial, name, kind, after string, slots ...int) {
	ep := t.episode(name, true, slots...)
	fi := t.fault(kind, slots...)
	for _, s := range slots {
		t.signal(s, syscall.SIGKILL)
	}
	for _, s := range slots {
		t.waitExit(s, 2*time.Second)
	}
	if !t.waitStable(ep, after) {
		return
	}
	t.endFault(fi)
	t.quietFrom(mono())
	for _, s := range slots {
		t.restart(s)
	}
	t.waitStable(nil, "after the crashed nodes restarted")
}

// amnesia is the script of the amnesia scenario (issue 5, rule 8).
func amnesia(t *Trial) {
	l := t.R.OldSlot
	ep := t.episode("amnesia", true, l)
	fi := t.fault("SIGKILL", l)
	t.signal(l, syscall.SIGKILL)
	// Wait for a follower whose term rises above the old one: a vote
	// request (or its own campaign) reached it. Status is polled every
	// few ms by the nodes, so this is within a few ms of the vote.
	followers := t.followers()
	deadline := time.Now().Add(t.cfg.PeerTimeout + t.cfg.Jitter + t.cfg.Lease + time.Second)
	victim, id := 0, ""
	for victim == 0 && time.Now().Before(deadline) {
		for _, f := range followers {
			if fid, term := t.rec.termOf(f); term > t.R.OldTerm {
				victim, id = f, fid
				break
			}
		}
		if victim == 0 {
			t.sleep(time.Millisecond)
		}
	}
	if victim == 0 {
		t.failf("amnesia: no follower's term rose above %d within %v of the crash; killed a random follower instead",
			t.R.OldTerm, time.Until(deadline).Round(time.Millisecond))
		victim = t.pick(1, followers)[0]
		id, _ = t.rec.termOf(victim)
	}
	af := t.fault("SIGKILL + restart with the same ID", victim)
	killed := mono()
	t.signal(victim, syscall.SIGKILL)
	t.waitExit(victim, 2*time.Second)
	if _, err := t.h.StartNodeID(victim, t.clusterSize, id); err != nil {
		t.abort(err)
	}
	t.R.Amnesia = append(t.R.Amnesia, Amnesia{Slot: victim, ID: id, Killed: killed, Restarted: mono(), OldTerm: t.R.OldTerm})
	t.endFault(af)
	t.waitExit(l, 2*time.Second)
	if !t.waitStable(ep, "after the leader crash and the voter's restart") {
		return
	}
	t.endFault(fi)
	t.quietFrom(mono())
	t.restart(l)
	t.waitStable(nil, "after the crashed leader restarted")
}

// partitionLeader is the script of partition, partition-in and partition-out.
func partitionLeader(t *Trial, dir string) {
	l := t.R.OldSlot
	ep := t.episode("partition-"+dir, true, l)
	fi := t.fault("cut-"+dir, l)
	t.cut(l, dir)
	cw := t.cutWindow(l)
	t.sleep(3 * t.cfg.PeerTimeout)
	t.closeCut(cw)
	t.h.Heal(l)
	t.endFault(fi)
	t.quietFrom(mono())
	t.waitStable(ep, "after the heal")
}

// latencyBelowTimeouts is the latency scenario's toxic: a lease renewal
// crosses four links (leader to Redis to follower to Redis to leader), so
// 4*(latency+jitter) must stay well below LeaseTimeout-HeartbeatInterval.
func latencyBelowTimeouts(c *Config) (lat, jit time.Duration) {
	lat, jit = c.Heartbeat/5, c.Heartbeat/10
	return max(lat, time.Millisecond), max(jit, time.Millisecond)
}

// ---- the trial runtime ----

// errAbort ends a trial's script early; the trial counts as not recovered.
type errAbort struct{ err error }

// Trial is one run of a scenario's script. Its methods perform faults and
// record, in R, what the analysis must check.
type Trial struct {
	h           *Harness
	cfg         *Config
	ctx         context.Context
	rng         *rand.Rand
	rec         *Recorder
	clusterSize int
	algo        string
	R           *TrialRecord
}

// TrialRecord is what a trial's script did and declared, stamped on
// CLOCK_MONOTONIC. The analysis reads it together with the events.
type TrialRecord struct {
	Scenario     string
	Trial        int
	Start, End   int64
	OldSlot      int
	OldID        string
	OldTerm      uint64
	Episodes     []*Episode
	Quiet        []Window // no leader change may start in these
	SameTerm     bool     // every node must end at OldTerm
	NoElections  bool     // no election may start at all
	NoStepDowns  bool     // no node may stop leading (no lease may lapse)
	Dropped      uint64   // every node alive at the end must count at least this many dropped or unverified messages (refused junk)
	Refused      uint64   // every node alive at the end must count at least this many unverified or replayed messages
	MaxChanges   int      // with CheckChanges: at most this many leader changes
	CheckChanges bool
	NoLeaseLost  bool  // no lease may lapse on any node
	NoUnverified bool  // no node may count an unverifiable message
	CalmFrom     int64 // load-calm: the window whose leader changes are counted per minute
	CalmTo       int64
	Notes        []string    // worth knowing, not a failure (e.g. how fast a flood went)
	Cuts         []CutWindow // slots cut off from Redis: they must not lead after From+LeaseTimeout
	NoLead       []CutWindow // slots that must not lead at all in the window
	Paused       []int       // slots SIGSTOPped in this trial
	Handover     bool        // the old leader's callback must return before the new one's begins
	Amnesia      []Amnesia   // nodes restarted with the same ID right after they were asked to vote
	Failures     []string
	Aborted      bool // the script stopped early
	Unrecovered  bool // a wait for a stable leader timed out
}

// Episode is one fault whose effect is measured: failover, convergence,
// recovery and leaderless time are per episode.
type Episode struct {
	Name         string
	Fault        int64 // when the fault was injected
	Heal         int64 // when it ended (0: it did not end, e.g. a crash)
	OldSlot      int
	OldID        string
	OldTerm      uint64
	Targets      []int // slots the fault hit
	ExpectChange bool  // leadership must move before the heal
	Recovered    bool
	RecoveredAt  int64
	faultIndex   int
}

// Amnesia is a node killed right after its term rose and restarted at once
// with the same ID: it remembers nothing of its vote.
type Amnesia struct {
	Slot              int
	ID                string
	Killed, Restarted int64
	OldTerm           uint64
}

// Window is an interval on CLOCK_MONOTONIC.
type Window struct{ From, To int64 }

// CutWindow is an interval during which some slots are cut off.
type CutWindow struct {
	Slots    []int
	From, To int64
}

func (t *Trial) failf(format string, args ...any) {
	t.R.Failures = append(t.R.Failures, fmt.Sprintf(format, args...))
}

func (t *Trial) abort(err error) { panic(errAbort{err}) }

// sleep waits d, or aborts the trial when the run is interrupted.
func (t *Trial) sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-t.ctx.Done():
		t.abort(t.ctx.Err())
	}
}

func (t *Trial) allSlots() []int {
	out := make([]int, t.cfg.Nodes)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

// followers lists the reachable slots other than the leader's.
func (t *Trial) followers() []int {
	return slices.DeleteFunc(t.h.Reachable(), func(s int) bool { return s == t.R.OldSlot })
}

// pick chooses n of from at random (seeded), in ascending order.
func (t *Trial) pick(n int, from []int) []int {
	from = slices.Clone(from)
	t.rng.Shuffle(len(from), func(i, j int) { from[i], from[j] = from[j], from[i] })
	out := from[:min(n, len(from))]
	slices.Sort(out)
	return out
}

// episode starts a measured episode; the next fault call stamps it.
func (t *Trial) episode(name string, expectChange bool, targets ...int) *Episode {
	ep := &Episode{Name: name, ExpectChange: expectChange, Targets: targets, faultIndex: -1}
	t.R.Episodes = append(t.R.Episodes, ep)
	return ep
}

func (t *Trial) ep() *Episode { return t.R.Episodes[len(t.R.Episodes)-1] }

// fault records a fault starting now. The first fault of an episode stamps
// the episode and the leader it hit.
func (t *Trial) fault(kind string, slots ...int) int {
	now := mono()
	i := t.rec.addFault(Fault{Trial: t.R.Trial, Kind: kind, Slots: slots, Start: now})
	if ep := t.ep(); ep.Fault == 0 {
		ep.Fault, ep.faultIndex = now, i
		ep.OldSlot, ep.OldID, ep.OldTerm = t.current()
	}
	return i
}

// current is the leader as of the last stable check.
func (t *Trial) current() (int, string, uint64) {
	slot, id, term, _, ok := t.rec.stableLeader(mono(), nil, 0, 0)
	if !ok {
		return t.R.OldSlot, t.R.OldID, t.R.OldTerm
	}
	return slot, id, term
}

func (t *Trial) endFault(i int) {
	now := mono()
	t.rec.endFault(i, now)
	if ep := t.ep(); ep.Heal < now {
		ep.Heal = now
	}
}

func (t *Trial) quietFrom(from int64) { t.R.Quiet = append(t.R.Quiet, Window{From: from}) }

func (t *Trial) quietUntil(to int64) {
	if n := len(t.R.Quiet); n > 0 && t.R.Quiet[n-1].To == 0 {
		t.R.Quiet[n-1].To = to
	}
}

func (t *Trial) signal(slot int, sig syscall.Signal) {
	if sig == syscall.SIGSTOP && !slices.Contains(t.R.Paused, slot) {
		t.R.Paused = append(t.R.Paused, slot)
	}
	if err := t.h.Signal(slot, sig); err != nil {
		t.abort(err)
	}
}

func (t *Trial) waitExit(slot int, d time.Duration) bool {
	p := t.h.proc(slot)
	return p == nil || p.waitExit(d)
}

func (t *Trial) restart(slot int) {
	if _, err := t.h.StartNode(slot, t.clusterSize); err != nil {
		t.abort(err)
	}
}

func (t *Trial) cut(slot int, dir string) {
	if err := t.h.Cut(slot, dir); err != nil {
		t.abort(err)
	}
}

// cutWindow opens a lease-bound window for slots, stamped after the cut is
// in place; closeCut closes it, stamped before the heal.
func (t *Trial) cutWindow(slots ...int) int {
	t.R.Cuts = append(t.R.Cuts, CutWindow{Slots: slots, From: mono()})
	return len(t.R.Cuts) - 1
}

func (t *Trial) closeCut(i int) { t.R.Cuts[i].To = mono() }

func (t *Trial) noLead(slots ...int) int {
	t.R.NoLead = append(t.R.NoLead, CutWindow{Slots: slots, From: mono()})
	return len(t.R.NoLead) - 1
}

// waitStable waits until one reachable leader has ticked without a break for
// stableFor since the call, and every reachable node follows it. With ep,
// it marks the episode recovered as of the start of that stable run. It
// records a failure and returns false on timeout.
func (t *Trial) waitStable(ep *Episode, after string) bool {
	timeout := t.cfg.recoveryTimeout()
	deadline := time.Now().Add(timeout)
	since := mono()
	for {
		if _, _, _, from, ok := t.rec.stableLeader(mono(), t.h.Reachable(), t.cfg.stableFor(), since); ok {
			if ep != nil {
				ep.Recovered, ep.RecoveredAt = true, from
			}
			return true
		}
		if time.Now().After(deadline) {
			t.failf("no stable leader within %v %s", timeout, after)
			t.R.Unrecovered = true
			return false
		}
		t.sleep(10 * time.Millisecond)
	}
}

// runScript runs the scenario's script and turns an abort into a failure.
func (t *Trial) runScript(sc *Scenario) {
	defer func() {
		if r := recover(); r != nil {
			a, ok := r.(errAbort)
			if !ok {
				panic(r)
			}
			t.R.Aborted = true
			if t.ctx.Err() == nil || !errors.Is(a.err, t.ctx.Err()) {
				t.failf("trial aborted: %v", a.err)
			}
		}
	}()
	sc.Run(t)
}
