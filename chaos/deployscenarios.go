package main

// The scripts of the Sentinel and Cluster scenarios. Each runs on the
// run's one deployment of its kind (deploy.go), which prepare restores
// before every trial: a killed server restarted as a replica, an old
// primary demoted, the shard of the group's slot with its replica in sync.

import (
	"fmt"
	"syscall"
	"time"
)

// deploymentTimeout bounds every wait for a deployment to switch or heal.
const deploymentTimeout = 40 * time.Second

// sentinelPrimary is the primary the sentinels agree on.
func (t *Trial) sentinelPrimary() string {
	p, err := t.h.sentinel.primary()
	if err != nil {
		t.abort(err)
	}
	return p
}

// sentinelSwitch waits until the sentinels name a primary other than old:
// the first of them (then it calls atFirst, if set), and then all three.
func (t *Trial) sentinelSwitch(old string, atFirst func()) {
	if _, err := t.h.sentinel.waitNamed(old, false, deploymentTimeout); err != nil {
		t.abort(err)
	}
	if atFirst != nil {
		atFirst()
	}
	if _, err := t.h.sentinel.waitNamed(old, true, deploymentTimeout); err != nil {
		t.abort(err)
	}
}

// sentinelCut keeps a lease-bound window open over every node from now
// until a sentinel begins to fail old over (it sees old down): no node can
// reach a writable primary before that.
func (t *Trial) sentinelCut(old string) {
	cw := t.cutWindow(t.allSlots()...)
	if err := waitFor(deploymentTimeout, "a sentinel to see the primary down", func() error {
		if t.h.sentinel.failingOver(old) {
			return nil
		}
		return fmt.Errorf("no sentinel fails %s over yet", old)
	}); err != nil {
		t.abort(err)
	}
	t.closeCut(cw)
}

func (t *Trial) drop(slot int) {
	if err := t.h.Drop(slot); err != nil {
		t.abort(err)
	}
}

// sentinelFailover: SENTINEL FAILOVER.
func sentinelFailover(t *Trial) {
	old := t.sentinelPrimary()
	ep := t.episode("sentinel-failover", false)
	fi := t.fault("SENTINEL FAILOVER")
	if err := t.h.sentinel.failover(); err != nil {
		t.abort(err)
	}
	t.sentinelSwitch(old, nil)
	t.endFault(fi)
	if t.waitStable(ep, "after SENTINEL FAILOVER") {
		t.quietFrom(mono())
	}
}

// sentinelKillPrimary: SIGKILL the primary. Every node is cut off from
// Redis until a sentinel names the promoted replica: no lease may outlive
// that by more than LeaseTimeout.
func sentinelKillPrimary(t *Trial) {
	old := t.sentinelPrimary()
	s := t.h.sentinel.server(old)
	ep := t.episode("sentinel-kill-primary", false)
	fi := t.fault("SIGKILL the primary")
	s.kill()
	if err := t.h.serverLinks(old, false); err != nil {
		t.abort(err)
	}
	t.sentinelCut(old)
	t.sentinelSwitch(old, nil)
	t.endFault(fi)
	if t.waitStable(ep, "after the primary was killed") {
		t.quietFrom(mono())
	}
}

// sentinelPausePrimary: SIGSTOP the primary until the sentinels have
// failed it over (past down-after-milliseconds), then SIGCONT: it comes
// back a writable master until it is demoted.
func sentinelPausePrimary(t *Trial) {
	old := t.sentinelPrimary()
	s := t.h.sentinel.server(old)
	ep := t.episode("sentinel-pause-primary", false)
	fi := t.fault("SIGSTOP the primary")
	if err := s.signal(syscall.SIGSTOP); err != nil {
		t.abort(err)
	}
	t.sentinelCut(old)
	t.sentinelSwitch(old, nil)
	if err := s.signal(syscall.SIGCONT); err != nil {
		t.abort(err)
	}
	t.endFault(fi)
	if t.waitStable(ep, "after the paused primary was failed over and continued") {
		t.quietFrom(mono())
	}
}

// sentinelFailoverBlip: SENTINEL FAILOVER, and one node's connections to
// the data servers drop at once and again when the first sentinel names
// the new primary: first a follower's, then (after the deployment is
// restored) the leader's.
func sentinelFailoverBlip(t *Trial) {
	for i, who := range []string{"follower", "leader"} {
		if i > 0 {
			t.quietUntil(mono())
			if err := t.h.restoreDeployment(t.rec.group, deploymentTimeout); err != nil {
				t.abort(err)
			}
			if !t.waitStable(nil, "after the deployment was restored") {
				return
			}
		}
		target, _, _ := t.current()
		if who == "follower" {
			var fs []int
			for _, s := range t.h.Reachable() {
				if s != target {
					fs = append(fs, s)
				}
			}
			target = t.pick(1, fs)[0]
		}
		old := t.sentinelPrimary()
		ep := t.episode("failover-drop-"+who, false, target)
		fi := t.fault("SENTINEL FAILOVER; drop the "+who+"'s connections", target)
		if err := t.h.sentinel.failover(); err != nil {
			t.abort(err)
		}
		t.drop(target)
		t.sentinelSwitch(old, func() { t.drop(target) })
		t.endFault(fi)
		if !t.waitStable(ep, "after SENTINEL FAILOVER and the "+who+"'s drops") {
			return
		}
		t.quietFrom(mono())
	}
}

// clusterShard is the group's slot and its shard, as every server agrees.
func (t *Trial) clusterShard() (int, shard) {
	d := t.h.cluster
	slot, err := d.keySlot("leader:{" + t.rec.group + "}")
	if err != nil {
		t.abort(err)
	}
	sh, err := d.shard(slot)
	if err != nil {
		t.abort(err)
	}
	if len(sh.replicas) == 0 {
		t.abort(fmt.Errorf("slot %d's owner %s has no replica", slot, sh.owner))
	}
	return slot, sh
}

// clusterFailover: CLUSTER FAILOVER on the replica of the group's slot
// owner.
func clusterFailover(t *Trial) {
	slot, sh := t.clusterShard()
	ep := t.episode("cluster-failover", false)
	fi := t.fault("CLUSTER FAILOVER")
	t.h.cluster.lastFailover = time.Now()
	if _, err := do(sh.replicas[0], "CLUSTER", "FAILOVER"); err != nil {
		t.abort(fmt.Errorf("CLUSTER FAILOVER on %s: %w", sh.replicas[0], err))
	}
	if _, err := t.h.cluster.waitOwner(slot, sh.owner, true, deploymentTimeout); err != nil {
		t.abort(err)
	}
	t.endFault(fi)
	if t.waitStable(ep, "after CLUSTER FAILOVER") {
		t.quietFrom(mono())
	}
}

// clusterKillOwner: SIGKILL the owner of the group's slot. Every node is
// cut off from its slot until a server names the promoted replica.
func clusterKillOwner(t *Trial) {
	slot, sh := t.clusterShard()
	ep := t.episode("cluster-kill-owner", false)
	fi := t.fault("SIGKILL the slot's owner")
	t.h.cluster.lastFailover = time.Now()
	t.h.cluster.server(sh.owner).kill()
	if err := t.h.serverLinks(sh.owner, false); err != nil {
		t.abort(err)
	}
	cw := t.cutWindow(t.allSlots()...)
	if err := waitFor(deploymentTimeout, "a server to flag the owner failed", func() error {
		if t.h.cluster.ownerFailed(slot, sh.owner) {
			return nil
		}
		return fmt.Errorf("no server flags %s failed yet", sh.owner)
	}); err != nil {
		t.abort(err)
	}
	t.closeCut(cw)
	if _, err := t.h.cluster.waitOwner(slot, sh.owner, true, deploymentTimeout); err != nil {
		t.abort(err)
	}
	t.endFault(fi)
	if t.waitStable(ep, "after the slot's owner was killed") {
		t.quietFrom(mono())
	}
}

// clusterShortPause is the first pause of cluster-pause-leader: shorter
// than PeerTimeout, so no follower may give up its leader.
const clusterShortPause = 250 * time.Millisecond

// clusterPauseLeader: SIGSTOP the leader for 250 ms, then (once a leader
// is stable) for 3*PeerTimeout, longer than its lease. A follower that
// misses heartbeats asks Redis whether the leader is still subscribed,
// and takes a leader that is not for crashed; on a Cluster that count is
// per node (SHARDNUMSUB of a node other than the one the leader is on says
// 0), so asked in the wrong place it would drop a paused leader at once,
// within a heartbeat or two. A follower that waits for silence waits at
// least a LeaseTimeout (the leader's lease must have ended), so none may
// drop its leader while it is stopped, before LeaseTimeout less one
// heartbeat of the pause (the last heartbeat may have come that much
// before it).
func clusterPauseLeader(t *Trial) {
	for i, d := range []time.Duration{clusterShortPause, 3 * t.cfg.PeerTimeout} {
		name := "pause-250ms"
		if i > 0 {
			name = "pause-long"
			t.quietUntil(mono())
		}
		l, id, _ := t.current()
		ep := t.episode(name, i > 0, l)
		fi := t.fault("SIGSTOP", l)
		stop := mono()
		t.signal(l, syscall.SIGSTOP)
		t.sleep(d)
		cont := mono()
		t.signal(l, syscall.SIGCONT)
		t.endFault(fi)
		if !t.waitStable(ep, "after SIGCONT") {
			return
		}
		t.quietFrom(mono())
		// Only while it is stopped: once continued, a leader whose lease
		// lapsed in the pause steps down, and its followers hear that.
		earliest := min(cont, stop+int64(t.cfg.Lease-t.cfg.Heartbeat))
		evs, _ := t.rec.snapshot()
		for _, e := range evs {
			if e.Ev == evNew && e.Leader == "" && e.ID != id && e.T >= stop && e.T < earliest {
				t.failf("%s: %s gave up the paused leader %s %.0f ms into a pause of %v, before its lease (%v) can have ended: a crash was assumed",
					name, e.ID, id, ms(e.T-stop), d, t.cfg.Lease)
				break
			}
		}
	}
}
