package main

// The lock baseline (-algo lock): the usual Redis lock election, as a node
// role that reports the same events as the quasi-Raft node, so every
// scenario and safety check applies to it unchanged.
//
//   - acquire: SET key id NX PX ttl; on success INCR a counter: the fencing
//     token (one Lua script, so the token belongs to exactly one acquire);
//   - the holder renews every interval with compare-and-extend (PEXPIRE only
//     if the value is still its id); the others retry the acquire every
//     interval;
//   - the holder works (ticks) only while it believes it holds the lock: it
//     stops at once when a renewal fails or errs, and in any case once ttl
//     has passed since it SENT its last successful acquire/renew, measured
//     on its own clock (what a careful user does);
//   - graceful stop: compare-and-delete (DEL only if the value is ours).
//
// ttl = PeerTimeout, interval = HeartbeatInterval. The connection goes
// through the node's toxiproxy proxy; every command has a read timeout of
// ttl, after which the connection is dropped and dialled again. In a
// Sentinel deployment each dial asks the sentinels for the primary (the
// highest config epoch) and checks ROLE, as a plain client does: it does
// not watch for switches, so it moves when its connection fails or the
// old primary answers READONLY. In a Cluster it dials a seed and follows
// MOVED to the owner of the lock's slot.

import (
	"context"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

const algoLock = "lock"

// lockAcquire: KEYS lock, token counter, token of the holder; ARGV id, ttl ms.
// Returns {1, id, token} when acquired, else {0, holder, holder's token}.
var lockAcquire = redis.NewScript(3, `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local t = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[3], t)
  return {1, ARGV[1], t}
end
return {0, redis.call('GET', KEYS[1]) or '', tonumber(redis.call('GET', KEYS[3]) or '0')}
`)

// lockExtend: compare-and-extend. KEYS lock; ARGV id, ttl ms. Returns 1 if extended.
var lockExtend = redis.NewScript(1, `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// lockRelease: compare-and-delete. KEYS lock; ARGV id.
var lockRelease = redis.NewScript(1, `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// lockNode is one participant of the lock election.
type lockNode struct {
	id            string
	loc           *locator
	ttl, interval time.Duration
	kLock, kCount string
	kTok          string
	out           *emitter

	mu         sync.Mutex // guards everything below
	holding    bool
	validUntil int64  // CLOCK_MONOTONIC ns: sent time of the last successful acquire/renew + ttl
	token      uint64 // our token while holding
	holder     string // last holder seen ("" none)
	holderTok  uint64
	maxTok     uint64
	connected  bool
	acquires   uint64
	stepDowns  uint64
	cmdsOut    uint64
	repliesIn  uint64
	reconnects uint64
	dials      uint64
}

func newLockNode(id string, loc *locator, group string, ttl, interval time.Duration, out *emitter) *lockNode {
	p := "chaos:{" + group + "}:lock"
	return &lockNode{id: id, loc: loc, ttl: ttl, interval: interval, out: out,
		kLock: p, kCount: p + ":counter", kTok: p + ":token"}
}

// IsLeader is true only while we hold the lock and ttl has not passed since
// the last successful acquire/renew was sent.
func (l *lockNode) IsLeader() bool {
	now := mono()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holding && now < l.validUntil
}

// Leader returns the holder as last seen, with its fencing token.
func (l *lockNode) Leader() (string, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holding {
		return l.id, l.token
	}
	return l.holder, l.holderTok
}

func (l *lockNode) status() Event {
	active := l.IsLeader()
	l.mu.Lock()
	defer l.mu.Unlock()
	ev := Event{Ev: evStatus, Term: l.maxTok, State: "follower", Active: active, Connected: l.connected,
		Elections: l.acquires, StepDowns: l.stepDowns, Reconnects: l.reconnects, MsgsIn: l.repliesIn, MsgsOut: l.cmdsOut}
	if l.holding {
		ev.State, ev.Leader, ev.LTerm = "leader", l.id, l.token
	} else {
		ev.Leader, ev.LTerm = l.holder, l.holderTok
	}
	return ev
}

// stepDownLocked ends our leadership: the "callback" ends, as a careful
// user's job context would.
func (l *lockNode) stepDownLocked(why string) {
	if !l.holding {
		return
	}
	l.holding = false
	l.stepDowns++
	l.holder, l.holderTok = "", 0
	l.out.emit(Event{Ev: evCbDone, Term: l.token, Seq: l.acquires, Msg: why})
	l.out.emit(Event{Ev: evStop, Msg: why})
}

// expiryLoop ends leadership the moment ttl has passed since the last
// successful acquire/renew was sent, whether or not a reply is pending.
func (l *lockNode) expiryLoop(ctx context.Context) {
	for ctx.Err() == nil {
		l.mu.Lock()
		if l.holding && mono() >= l.validUntil {
			l.stepDownLocked("ttl passed since the last successful renewal was sent")
		}
		holding := l.holding
		l.mu.Unlock()
		if holding {
			time.Sleep(time.Millisecond)
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (l *lockNode) dial() (redis.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.ttl)
	defer cancel()
	c, _, _, err := l.loc.dial(ctx)
	return c, err
}

// Run takes part until ctx ends, then releases the lock if it is ours.
func (l *lockNode) Run(ctx context.Context) error {
	go l.expiryLoop(ctx)
	var c redis.Conn
	ttlMs := l.ttl.Milliseconds()
	for ctx.Err() == nil {
		sent := mono()
		if c == nil {
			var err error
			if c, err = l.dial(); err != nil {
				c = nil
				l.mu.Lock()
				l.connected = false
				l.stepDownLocked("redis unreachable: " + err.Error())
				l.mu.Unlock()
				l.wait(ctx, sent)
				continue
			}
			l.mu.Lock()
			if l.dials++; l.dials > 1 {
				l.reconnects++
			}
			l.connected = true
			l.mu.Unlock()
			sent = mono()
		}
		l.mu.Lock()
		holding := l.holding
		l.cmdsOut++
		l.mu.Unlock()
		var opErr error
		if holding {
			n, err := redis.Int(l.do(&c, lockExtend, l.kLock, l.id, ttlMs))
			opErr = err
			l.mu.Lock()
			switch {
			case err != nil:
				l.connected = false
				l.stepDownLocked("renewal failed: " + err.Error())
			case n == 1:
				l.repliesIn++
				if l.holding {
					l.validUntil = sent + int64(l.ttl)
				}
			default:
				l.repliesIn++
				l.stepDownLocked("renewal refused: the key is no longer ours")
			}
			l.mu.Unlock()
		} else {
			v, err := redis.Values(l.do(&c, lockAcquire, l.kLock, l.kCount, l.kTok, l.id, ttlMs))
			var ok int
			var who string
			var tok uint64
			opErr = err
			if err == nil {
				_, err = redis.Scan(v, &ok, &who, &tok)
			}
			l.mu.Lock()
			if err != nil {
				l.connected = false
			} else {
				l.repliesIn++
				l.maxTok = max(l.maxTok, tok)
				if ok == 1 {
					l.holding, l.token, l.validUntil = true, tok, sent+int64(l.ttl)
					l.acquires++
					l.holder, l.holderTok = l.id, tok
					l.out.emit(Event{Ev: evNew, Leader: l.id, LTerm: tok})
					l.out.emit(Event{Ev: evStart, Term: tok, Seq: l.acquires})
				} else if who != l.holder || tok != l.holderTok {
					l.holder, l.holderTok = who, tok
					l.out.emit(Event{Ev: evNew, Leader: who, LTerm: tok})
				}
			}
			l.mu.Unlock()
		}
		if c.Err() != nil || (opErr != nil && l.loc.failed(opErr)) {
			// broken, or the wrong server: a demoted primary, MOVED
			c.Close()
			c = nil
		}
		l.wait(ctx, sent)
	}
	// Graceful stop: end the job first, then release the lock if still ours.
	l.mu.Lock()
	was := l.holding
	l.stepDownLocked("stopping")
	l.mu.Unlock()
	if was {
		if c == nil {
			c, _ = l.dial()
		}
		if c != nil {
			_, _ = lockRelease.Do(c, l.kLock, l.id)
		}
	}
	if c != nil {
		c.Close()
	}
	return nil
}

// do runs a script on *c; on MOVED it dials where MOVED points and runs
// it there once more, as a Cluster client does (*c is then that
// connection, or the closed one when the dial failed).
func (l *lockNode) do(c *redis.Conn, s *redis.Script, keysAndArgs ...any) (any, error) {
	r, err := s.Do(*c, keysAndArgs...)
	if err == nil || l.loc.mode() != deployCluster || !l.loc.failed(err) || l.loc.moved == "" {
		return r, err
	}
	(*c).Close()
	nc, derr := l.dial()
	if derr != nil {
		return nil, derr
	}
	*c = nc
	return s.Do(nc, keysAndArgs...)
}

// wait sleeps until sent+interval or until ctx ends.
func (l *lockNode) wait(ctx context.Context, sent int64) {
	d := time.Duration(sent + int64(l.interval) - mono())
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
