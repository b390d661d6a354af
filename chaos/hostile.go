package main

// Scenarios with hostile or changing peers: a client without the key that
// replays what it captured, a key rotation of the running group, and a
// preferred leader (Config.Priority) that is restarted.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/redraft/leader"
)

// chaosSecret is the key of the replay scenario's groups.
const chaosSecret = "chaos replay secret"

// maxReplay bounds what the replay scenario publishes again; replayRounds
// is how many times it publishes the whole capture.
const (
	maxReplay    = 200_000
	replayRounds = 100
)

// captured is one message as a client without the key sees it.
type captured struct {
	channel string
	data    []byte
}

// otherGroup runs n Electors of another group in the harness process, on
// the same redis-server, with the same Secret: the traffic the replay
// scenario copies across groups.
type otherGroup struct {
	name   string
	els    []*leader.Elector
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startOtherGroup(t *Trial, name string, n int) (*otherGroup, error) {
	ctx, cancel := context.WithCancel(t.ctx)
	g := &otherGroup{name: name, cancel: cancel}
	for i := range n {
		e, err := leader.New(leader.Config{
			Addr: t.h.RedisAddr(), Group: name, ID: fmt.Sprintf("o%d", i+1),
			HeartbeatInterval: t.cfg.Heartbeat, LeaseTimeout: t.cfg.Lease,
			PeerTimeout: t.cfg.PeerTimeout, ElectionJitter: t.cfg.Jitter,
			Secret: []byte(chaosSecret), Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			g.stop()
			return nil, err
		}
		g.els = append(g.els, e)
		g.wg.Go(func() { _ = e.Run(ctx) })
	}
	return g, nil
}

// leader returns the group's active leader, or nil.
func (g *otherGroup) leader() *leader.Elector {
	for _, e := range g.els {
		if e.IsLeader() {
			return e
		}
	}
	return nil
}

func (g *otherGroup) stop() {
	g.cancel()
	g.wg.Wait()
}

// tapChannels records everything published on the channels matching
// patterns, from a plain connection straight to redis-server: what any
// client that may subscribe sees. stop ends it and returns the record.
func tapChannels(addr string, patterns ...string) (stop func() []captured, err error) {
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second))
	if err != nil {
		return nil, err
	}
	psc := redis.PubSubConn{Conn: c}
	args := make([]any, len(patterns))
	for i, p := range patterns {
		args[i] = p
	}
	if err := psc.PSubscribe(args...); err != nil {
		c.Close()
		return nil, err
	}
	var mu sync.Mutex
	var got []captured
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			switch v := psc.Receive().(type) {
			case redis.Message:
				mu.Lock()
				if len(got) < maxReplay {
					got = append(got, captured{v.Channel, v.Data})
				}
				mu.Unlock()
			case error:
				return
			}
		}
	}()
	return func() []captured {
		c.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return got
	}, nil
}

// publishAll publishes msgs, pipelined, and returns how many went out.
func publishAll(ctx context.Context, addr string, msgs []captured) (int, error) {
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(5*time.Second), redis.DialWriteTimeout(5*time.Second))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	const batch = 500
	sent := 0
	for sent < len(msgs) {
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		k := min(batch, len(msgs)-sent)
		for _, m := range msgs[sent : sent+k] {
			if err := c.Send("PUBLISH", m.channel, m.data); err != nil {
				return sent, err
			}
		}
		if err := c.Flush(); err != nil {
			return sent, err
		}
		for range k {
			if _, err := c.Receive(); err != nil {
				return sent, err
			}
		}
		sent += k
	}
	return sent, nil
}

// crossCopies maps each message captured from group from onto the
// matching channels of group to: the group's channel onto the other's,
// and each node channel onto every node channel of the other group.
func crossCopies(msgs []captured, from, to string) []captured {
	fromCh, toCh := "leader:{"+from+"}", "leader:{"+to+"}"
	var toNodes []string
	seen := map[string]bool{}
	for _, m := range msgs {
		if strings.HasPrefix(m.channel, toCh+":node:") && !seen[m.channel] {
			seen[m.channel] = true
			toNodes = append(toNodes, m.channel)
		}
	}
	slices.Sort(toNodes)
	var out []captured
	for _, m := range msgs {
		switch {
		case m.channel == fromCh:
			out = append(out, captured{toCh, m.data})
		case strings.HasPrefix(m.channel, fromCh+":node:"):
			for _, ch := range toNodes {
				out = append(out, captured{ch, m.data})
			}
		}
	}
	return out
}

// replayScenario: a client without the key captures the group's traffic and
// that of another group sharing its Secret (a handover in each included),
// then publishes all of it again, into the channels it came from, in
// order, and each group's into the other's. Nothing may change.
func replayScenario(t *Trial) {
	og, err := startOtherGroup(t, t.rec.group+"-other", 3)
	if err != nil {
		t.abort(err)
	}
	defer og.stop()
	deadline := time.Now().Add(t.cfg.recoveryTimeout())
	for og.leader() == nil {
		if time.Now().After(deadline) {
			t.failf("the other group elected no leader within %v", t.cfg.recoveryTimeout())
			return
		}
		t.sleep(10 * time.Millisecond)
	}
	// The capture: heartbeats and acks of both groups, and a handover in
	// the other group (resign, vote request, votes). Every node of the
	// group runs throughout, so each copy of its group's traffic is one it
	// has seen.
	stop, err := tapChannels(t.h.RedisAddr(), "leader:{"+t.rec.group+"}*", "leader:{"+og.name+"}*")
	if err != nil {
		t.abort(err)
	}
	t.sleep(t.cfg.PeerTimeout)
	if l := og.leader(); l != nil {
		ctx, cancel := context.WithTimeout(t.ctx, 2*time.Second)
		_ = l.Resign(ctx)
		cancel()
	}
	t.sleep(max(time.Second, 2*t.cfg.PeerTimeout))
	msgs := stop()

	own := slices.Clone(msgs)
	cross := append(crossCopies(msgs, t.rec.group, og.name), crossCopies(msgs, og.name, t.rec.group)...)
	// All of it, again and again (a replay flood), up to maxReplay.
	var all []captured
	for round := 0; len(all) < maxReplay && round < replayRounds; round++ {
		all = append(all, own...)
		all = append(all, cross...)
	}
	if len(all) > maxReplay {
		all = all[:maxReplay]
	}
	var onGroup uint64
	for _, m := range all {
		if m.channel == "leader:{"+t.rec.group+"}" {
			onGroup++
		}
	}
	ep := t.episode("replay", false, t.allSlots()...)
	t.quietFrom(mono())
	t.R.SameTerm, t.R.NoLeaseLost = true, true
	t.R.Refused = onGroup // every node gets each copy on the group's channel
	fi := t.fault(fmt.Sprintf("replay of %d messages", len(all)), t.allSlots()...)
	start := time.Now()
	n, err := publishAll(t.ctx, t.h.RedisAddr(), all)
	took := time.Since(start)
	t.endFault(fi)
	if err != nil {
		t.abort(err)
	}
	t.R.Notes = append(t.R.Notes, fmt.Sprintf("trial %d: %d messages captured; %d copies published (%d rounds of %d into their own channels and %d across groups; %d on the group's channel) in %v, %.0f/s",
		t.R.Trial, len(msgs), n, replayRounds, len(own), len(cross), onGroup, took.Round(time.Millisecond), float64(n)/took.Seconds()))
	t.sleep(t.cfg.PeerTimeout) // the nodes drain what is queued, and report
	t.waitStable(ep, "after the replay")
}

// rotationScenario rotates the running group's key, one process at a time.
func rotationScenario(t *Trial) {
	const old, nw = "chaos old key", "chaos new key"
	stages := [][]string{
		{"-secret", nw, "-previous-secret", old},
		{"-secret", nw, "-previous-secret", ""},
	}
	ep := t.episode("rotation", false, t.allSlots()...)
	t.R.NoLeaseLost, t.R.NoUnverified, t.R.CheckChanges = true, true, true
	restarts := 0
	for si, args := range stages {
		for _, slot := range t.allSlots() {
			cur, _, _ := t.current()
			leading := cur == slot
			if leading {
				t.R.MaxChanges++ // its handover
			}
			t.h.SetSlotArgs(slot, args...)
			fi := t.fault(fmt.Sprintf("restart with key stage %d", si+2), slot)
			t.signal(slot, syscall.SIGTERM)
			if !t.waitExit(slot, 5*time.Second) {
				t.failf("slot %d did not exit within 5s of SIGTERM", slot)
				t.signal(slot, syscall.SIGKILL)
				t.waitExit(slot, 2*time.Second)
			}
			t.restart(slot)
			t.endFault(fi)
			restarts++
			if !t.waitStable(nil, fmt.Sprintf("after restart %d of the rotation", restarts)) {
				return
			}
			// Let the restarted node join (it listens for PeerTimeout) before
			// the next one goes: a rolling restart, one process at a time.
			t.sleep(2 * t.cfg.PeerTimeout)
		}
	}
	t.R.Notes = append(t.R.Notes, fmt.Sprintf("trial %d: %d restarts, %d of them of the leader", t.R.Trial, restarts, t.R.MaxChanges))
	t.waitStable(ep, "after the rotation")
}

// priorityScenario restarts the preferred node (slot 1, Priority 5):
// leadership must come back to it once, by a handover.
func priorityScenario(t *Trial) {
	const pref = 1
	if t.R.OldSlot != pref {
		t.R.MaxChanges++ // it takes leadership first
	}
	deadline := time.Now().Add(t.cfg.recoveryTimeout() + priorityAfter(t.cfg))
	for {
		if slot, _, _ := t.current(); slot == pref {
			break
		}
		if time.Now().After(deadline) {
			t.failf("the preferred node (slot %d) never led", pref)
			return
		}
		t.sleep(20 * time.Millisecond)
	}
	ep := t.episode("priority-restart", true, pref)
	t.R.Handover = true
	fi := t.fault("SIGTERM", pref)
	t.signal(pref, syscall.SIGTERM)
	t.waitExit(pref, 5*time.Second)
	if !t.waitStable(ep, "after the preferred node stopped") {
		return
	}
	t.endFault(fi)
	_, interim, iterm := t.current()
	t.R.NoLeaseLost, t.R.CheckChanges = true, true
	t.R.MaxChanges += 2 // to the interim leader, and back
	restarted := mono()
	t.restart(pref)
	deadline = time.Now().Add(t.cfg.recoveryTimeout() + priorityAfter(t.cfg))
	for {
		if slot, _, term := t.current(); slot == pref && term > iterm {
			t.R.Notes = append(t.R.Notes, fmt.Sprintf("trial %d: back on the preferred node %.0f ms after its restart (PriorityAfter %v), from %s, term %d to %d",
				t.R.Trial, ms(mono()-restarted), priorityAfter(t.cfg), interim, iterm, term))
			break
		}
		if time.Now().After(deadline) {
			t.failf("leadership did not come back to the restarted preferred node")
			return
		}
		t.sleep(20 * time.Millisecond)
	}
	t.waitStable(nil, "once back on the preferred node")
}

// prioritySetup gives slot 1 Priority 5 and every slot the scenario's
// PriorityAfter.
func prioritySetup(h *Harness, c *Config) {
	for s := 1; s <= c.Nodes; s++ {
		args := []string{"-priority-after", priorityAfter(c).String()}
		if s == 1 {
			args = append(args, "-priority", "5")
		}
		h.SetSlotArgs(s, args...)
	}
}

// priorityAfter is the PriorityAfter of the priority scenario: short, so a
// trial is short, and still several PeerTimeouts.
func priorityAfter(c *Config) time.Duration { return 4 * c.PeerTimeout }

// burnMain is the CPU burner of -load: it spins on every thread Go gives
// it until its stdin closes (the harness ended) or it is killed.
func burnMain() {
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			x := uint64(1)
			for {
				x = x*6364136223846793005 + 1442695040888963407
				if x == 0 {
					fmt.Println(x) // never: keeps the loop from being optimised away
				}
			}
		})
	}
	wg.Wait()
}

// loadCalm watches a group with no fault for loadCalmFor (a quarter of it
// with -quick) and reports how often leadership moved: on a loaded host
// (-load) every move is a restart of the singleton job. Safety only.
func loadCalm(t *Trial) {
	d := loadCalmFor
	if t.cfg.Quick {
		d /= 4
	}
	start := mono()
	t.sleep(d)
	t.R.Notes = append(t.R.Notes, fmt.Sprintf("trial %d: watched %v with -load %d and timings %v/%v/%v/%v",
		t.R.Trial, d, t.cfg.Load, t.cfg.Heartbeat, t.cfg.Lease, t.cfg.PeerTimeout, t.cfg.Jitter))
	t.R.CalmFrom, t.R.CalmTo = start, mono()
}

// loadCalmFor is how long load-calm watches.
const loadCalmFor = time.Minute
