package main

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// startRedis starts a throwaway redis-server, or skips the test.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH (scripts/ensure-redis.sh installs it)")
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for i := 0; i < 200; i++ {
		if c, err := redis.Dial("tcp", addr); err == nil {
			_, err = c.Do("PING")
			c.Close()
			if err == nil {
				return addr
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("redis-server did not start")
	return ""
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func TestLockElectionHandsOver(t *testing.T) {
	addr := startRedis(t)
	ttl, every := 300*time.Millisecond, 50*time.Millisecond
	var out syncBuf
	a := newLockNode("a", &locator{addr: addr, timeout: ttl, connect: every}, "t", ttl, every, &emitter{w: &out, id: "a"})
	b := newLockNode("b", &locator{addr: addr, timeout: ttl, connect: every}, "t", ttl, every, &emitter{w: &out, id: "b"})
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	doneA := make(chan struct{})
	go func() { _ = a.Run(ctxA); close(doneA) }()
	time.Sleep(30 * time.Millisecond)
	go func() { _ = b.Run(ctxB) }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("a to lead", a.IsLeader)
	waitFor("b to see a", func() bool { id, _ := b.Leader(); return id == "a" })
	if b.IsLeader() {
		t.Fatal("both lead")
	}
	_, tokA := a.Leader()
	// graceful stop: a releases, b takes over within about one retry interval
	stopA()
	<-doneA
	if a.IsLeader() {
		t.Fatal("a still leads after Run returned")
	}
	start := time.Now()
	waitFor("b to lead", b.IsLeader)
	if d := time.Since(start); d > ttl {
		t.Errorf("handover took %v; want about one interval (%v), not a ttl", d, every)
	}
	if _, tokB := b.Leader(); tokB <= tokA {
		t.Errorf("fencing token went from %d to %d; want it to grow", tokA, tokB)
	}
}

func TestLockStopsAtTTLWithoutRenewal(t *testing.T) {
	addr := startRedis(t)
	ttl := 200 * time.Millisecond
	var out syncBuf
	a := newLockNode("a", &locator{addr: addr, timeout: ttl, connect: 50 * time.Millisecond}, "t", ttl, 50*time.Millisecond, &emitter{w: &out, id: "a"})
	a.mu.Lock()
	a.holding, a.token, a.validUntil = true, 1, mono()+int64(ttl)
	a.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.expiryLoop(ctx) // no renewals: only the clock
	if !a.IsLeader() {
		t.Fatal("not leader inside ttl")
	}
	time.Sleep(ttl + 20*time.Millisecond)
	if a.IsLeader() {
		t.Fatal("still leader after ttl without a renewal")
	}
	time.Sleep(10 * time.Millisecond)
	a.mu.Lock()
	h := a.holding
	a.mu.Unlock()
	if h {
		t.Error("the job was not stopped (holding) after ttl")
	}
}
