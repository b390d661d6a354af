package main

// The node role: the same binary, re-executed by the harness as
// "chaos node -id n1.1 ...". A node runs one Elector through its own
// toxiproxy proxy and does a singleton job: every few milliseconds, while
// IsLeader() is true, it "ticks": it writes its term to a fencing key in
// Redis (over a direct connection that bypasses the proxy) and reports the
// tick. Everything it reports is one JSON line per write on stdout, stamped
// with CLOCK_MONOTONIC so the harness can compare processes.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"
	"golang.org/x/sys/unix"

	"github.com/redraft/leader"
)

// Event kinds. Nodes emit all but the "proc-*" kinds, which the harness
// records itself when it starts a process and when the process exits.
const (
	evReady     = "ready"      // Run is about to be called
	evStart     = "start"      // OnStartedLeading(term) began
	evCbDone    = "cbdone"     // OnStartedLeading(term) saw its ctx end and returns
	evStop      = "stop"       // OnStoppedLeading
	evNew       = "new"        // OnNewLeader(leader, term)
	evTick      = "tick"       // one unit of singleton work, IsLeader() was true
	evStatus    = "status"     // periodic Status() and Leader() snapshot
	evAnomaly   = "anomaly"    // something the node itself finds inconsistent
	evExit      = "exit"       // Run returned; the process exits next
	evStall     = "stall"      // the process did not run from T to T1 (descheduled, stopped)
	evProcStart = "proc-start" // harness: process started
	evProcExit  = "proc-exit"  // harness: process exited (reaped)
)

// Fence outcomes of a tick.
const (
	fenceAccepted = 1
	fenceRejected = 2
	fenceError    = 3
)

// Event is one line a node writes on stdout, or a record the harness adds.
// T is CLOCK_MONOTONIC in nanoseconds; for ticks it is read just before
// IsLeader() and T1 just after it returned true, so the leadership check
// happened inside [T, T1].
type Event struct {
	T    int64  `json:"t"`
	T1   int64  `json:"t1,omitempty"`
	Ev   string `json:"ev"`
	ID   string `json:"id"`
	Slot int    `json:"slot,omitempty"`

	Term   uint64 `json:"term,omitempty"`   // start/cbdone/tick: the leader's term; status: the node's term
	Leader string `json:"leader,omitempty"` // new/status: the leader this node follows
	Heir   string `json:"heir,omitempty"`   // status: the node its leader names to stand first
	LTerm  uint64 `json:"lterm,omitempty"`  // new/status: that leader's term
	Seq    uint64 `json:"seq,omitempty"`    // tick: per-process tick counter; start/cbdone: per-process call number

	Fence       int    `json:"fence,omitempty"`    // tick: fenceAccepted, fenceRejected or fenceError
	FenceStored uint64 `json:"fstore,omitempty"`   // tick: the term stored before this write
	FenceN      int64  `json:"fn,omitempty"`       // tick: Redis-side order of the write
	FenceEpoch  int64  `json:"fepoch,omitempty"`   // tick: which redis-server incarnation took it
	State       string `json:"state,omitempty"`    // status
	Active      bool   `json:"active,omitempty"`   // status
	Connected   bool   `json:"conn,omitempty"`     // status
	Elections   uint64 `json:"elect,omitempty"`    // status
	StepDowns   uint64 `json:"stepdn,omitempty"`   // status
	Reconnects  uint64 `json:"reconn,omitempty"`   // status
	MsgsIn      uint64 `json:"min,omitempty"`      // status: valid messages received
	MsgsOut     uint64 `json:"mout,omitempty"`     // status: messages published
	Dropped     uint64 `json:"drop,omitempty"`     // status: messages dropped
	Unverified  uint64 `json:"unv,omitempty"`      // status: messages that could not be verified (another key, another group's copy)
	Replays     uint64 `json:"repl,omitempty"`     // status: verified messages dropped as repeats or stale
	LeasesLost  uint64 `json:"lost,omitempty"`     // status: step-downs because the lease lapsed
	HandOvers   uint64 `json:"hand,omitempty"`     // status: step-downs by a handover
	LeaseLeft   int64  `json:"left,omitempty"`     // status: while active, the least Status().LeaseLeft (µs) polled since the last report
	Goroutines  int    `json:"gor,omitempty"`      // status: runtime.NumGoroutine() of the node process
	Msg         string `json:"msg,omitempty"`      // anomaly/exit/proc-exit
	Scenario    string `json:"scenario,omitempty"` // set in events.jsonl only
}

// cbSeq numbers the calls of OnStartedLeading in this process.
var cbSeq atomic.Uint64

// mono reads CLOCK_MONOTONIC, the one clock every process on the machine
// shares (Go's own monotonic reading is per process, but runs on that
// clock). unix.ClockGettime is a system call, and the group nodes call
// mono twice per tick of every group they lead, 40,000 times a second
// at 1000 groups: that was 6% of a node's CPU. So it is read once, and
// after that Go's monotonic reading, which the vDSO serves, adds to it.
func mono() int64 {
	return monoBase + int64(time.Since(monoStart))
}

var monoStart, monoBase = time.Now(), monoSyscall()

// monoSyscall reads CLOCK_MONOTONIC with a system call: once for mono's
// base, and in the test of mono.
func monoSyscall() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

// fenceScript accepts a write only when its term is at least the stored
// one, as a downstream system guarding itself with the fencing token would.
// KEYS: fence key, order counter, epoch key. ARGV: term, writer ID.
// Returns {accepted 0/1, stored term before, order n, epoch}, or -1 first
// when the harness has not yet written the epoch of a restarted Redis
// (writes then would be compared with an earlier epoch's).
var fenceScript = redis.NewScript(3, `
local ep = tonumber(redis.call('GET', KEYS[3]) or '0')
if ep == 0 then
  return {-1, 0, 0, 0}
end
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = redis.call('INCR', KEYS[2])
if tonumber(ARGV[1]) >= stored then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[1] .. ':by', ARGV[2])
  return {1, stored, n, ep}
end
return {0, stored, n, ep}
`)

// fenceKeys returns the keys the fencing script uses for a group. With
// one redis-server the epoch key is the server's incarnation, which the
// harness sets at every start; in a deployment the fencer reports the
// epoch of the primary it writes to itself, and the key (then never set)
// only has to be in the group's slot, as a Cluster requires.
func fenceKeys(group string, deployed bool) (fence, order, epoch string) {
	epoch = "chaos:epoch"
	if deployed {
		epoch = "chaos:{" + group + "}:epoch"
	}
	return "chaos:{" + group + "}:fence", "chaos:{" + group + "}:fence-n", epoch
}

// fencer writes ticks to Redis directly (not through the node's proxy): to
// the one redis-server, or in a deployment to the server its locator finds
// (the primary the sentinels name, followed within 50 ms of a switch; the
// Cluster node owning the group's slot, followed by MOVED). It never
// blocks a tick for long: short timeouts, and after an error it waits
// before dialling again.
type fencer struct {
	id                   string
	kFence, kOrder, kEpo string
	loc                  *locator
	watch                *primaryWatch // Sentinel: the primary the sentinels name now
	c                    redis.Conn
	at                   string // where c is connected
	epoch                int64  // in a deployment: the epoch of the server at at
	nextDial             time.Time
}

func (f *fencer) write(ev *Event) {
	if f.c != nil && f.watch != nil && f.watch.moved(f.at) {
		f.c.Close()
		f.c = nil
	}
	if f.c == nil {
		if time.Now().Before(f.nextDial) {
			ev.Fence = fenceError
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		c, at, epoch, err := f.loc.dial(ctx)
		cancel()
		if err != nil {
			f.nextDial = time.Now().Add(50 * time.Millisecond)
			ev.Fence = fenceError
			return
		}
		f.c, f.at, f.epoch = c, at, epoch
	}
	v, err := redis.Int64s(fenceScript.Do(f.c, f.kFence, f.kOrder, f.kEpo, ev.Term, f.id))
	if err == nil && len(v) == 4 && v[0] < 0 {
		ev.Fence = fenceError // the epoch is not written yet
		return
	}
	if err != nil || len(v) != 4 {
		f.c.Close()
		f.c = nil
		if err == nil || !f.loc.failed(err) || f.loc.moved == "" {
			f.nextDial = time.Now().Add(50 * time.Millisecond)
		}
		ev.Fence = fenceError
		return
	}
	if v[0] == 1 {
		ev.Fence = fenceAccepted
	} else {
		ev.Fence = fenceRejected
	}
	ev.FenceStored, ev.FenceN, ev.FenceEpoch = uint64(v[1]), v[2], v[3]
	if f.loc.mode() != "" {
		ev.FenceEpoch = f.epoch
	}
}

// emitter writes events as JSON lines, one write(2) per line, so lines from
// different goroutines never mix.
type emitter struct {
	mu sync.Mutex // serialises writes to w
	w  io.Writer
	id string
}

func (e *emitter) emit(ev Event) {
	if ev.T == 0 {
		ev.T = mono()
	}
	ev.ID = e.id
	e.line(ev)
}

// line writes v as one JSON line, in one write(2).
func (e *emitter) line(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	b = append(b, '\n')
	e.mu.Lock()
	_, err = e.w.Write(b)
	e.mu.Unlock()
	if err != nil {
		// The harness is gone: nothing is left to report to.
		os.Exit(3)
	}
}

// timingFlags are the flags of Config's timings and ClusterSize, which
// both node roles take (0: the library's default).
type timingFlags struct {
	hb, lease, peer, jitter *time.Duration
	clusterSize             *int
}

func addTimingFlags(fs *flag.FlagSet) timingFlags {
	return timingFlags{
		hb:          fs.Duration("heartbeat", 0, "HeartbeatInterval"),
		lease:       fs.Duration("lease", 0, "LeaseTimeout"),
		peer:        fs.Duration("peer-timeout", 0, "PeerTimeout"),
		jitter:      fs.Duration("jitter", 0, "ElectionJitter"),
		clusterSize: fs.Int("cluster-size", 0, "ClusterSize (0: dynamic mode)"),
	}
}

// apply sets the flags' values in cfg.
func (tf timingFlags) apply(cfg *leader.Config) {
	cfg.HeartbeatInterval, cfg.LeaseTimeout = *tf.hb, *tf.lease
	cfg.PeerTimeout, cfg.ElectionJitter = *tf.peer, *tf.jitter
	cfg.ClusterSize = *tf.clusterSize
}

// nodeMain is the entry point of the node role; it returns the exit code.
func nodeMain(args []string) int {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	var (
		id          = fs.String("id", "", "node ID (unique per process)")
		addr        = fs.String("addr", "", "Redis address through this node's proxy")
		direct      = fs.String("redis", "", "Redis address for fencing writes (not proxied)")
		group       = fs.String("group", "", "election group")
		tf          = addTimingFlags(fs)
		tickEvery   = fs.Duration("tick", 5*time.Millisecond, "singleton job period")
		statusEvery = fs.Duration("status", 100*time.Millisecond, "status report period")
		logLevel    = fs.String("log-level", "debug", "library log level on stderr: debug, info, warn")
		algo        = fs.String("algo", algoQuasiRaft, "election algorithm")
		cbLinger    = fs.Duration("cb-linger", 0, "OnStartedLeading returns this long after its context ends (a job winding down)")
		stallEvery  = fs.Duration("stall-every", 10*time.Millisecond, "period of the stall watch (a stall: a sleep that took over max(60ms, 3x this))")
		secret      = fs.String("secret", "", "Config.Secret")
		previous    = fs.String("previous-secret", "", "Config.PreviousSecret (a key rotation)")
		priority    = fs.Int("priority", 0, "Config.Priority")
		prioAfter   = fs.Duration("priority-after", 0, "Config.PriorityAfter")
		sentinels   = fs.String("sentinels", "", "Sentinel deployment: the sentinels, comma-separated (dialled directly)")
		seeds       = fs.String("cluster", "", "Cluster deployment: seed nodes, comma-separated")
		addrMapFlag = fs.String("addr-map", "", "deployment: real=proxy,...: where this node dials each data server (its proxies)")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *algo != algoQuasiRaft && *algo != algoLock {
		fmt.Fprintf(os.Stderr, "node: unknown -algo %q\n", *algo)
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "node: bad -log-level: %v\n", err)
		return 2
	}
	out := &emitter{w: os.Stdout, id: *id}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	// The harness keeps our stdin open; EOF means it died without killing
	// us (Pdeathsig is the first line of defence, this the second).
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		os.Exit(4)
	}()
	addrMap, err := parseAddrMap(*addrMapFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		return 2
	}
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	// The fencer's locator dials the data servers directly, the lock's
	// through this node's proxies.
	fenceLoc := &locator{addr: *direct, sentinels: split(*sentinels), seeds: split(*seeds),
		timeout: 200 * time.Millisecond, connect: 100 * time.Millisecond}
	nodeLoc := &locator{addr: *addr, sentinels: fenceLoc.sentinels, seeds: fenceLoc.seeds, addrMap: addrMap,
		timeout: *tf.peer, connect: *tf.hb}
	kFence, kOrder, kEpoch := fenceKeys(*group, fenceLoc.mode() != "")
	f := &fencer{id: *id, kFence: kFence, kOrder: kOrder, kEpo: kEpoch, loc: fenceLoc}
	if len(fenceLoc.sentinels) > 0 {
		f.watch = watchPrimary(fenceLoc.sentinels, 50*time.Millisecond)
	}

	if *algo == algoLock {
		ln := newLockNode(*id, nodeLoc, *group, *tf.peer, *tf.hb, out)
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		go tickLoop(ln, *id, *tickEvery, out, f)
		go statusLoop(ln.status, *statusEvery, out)
		go stallLoop(out.emit, *stallEvery)
		out.emit(Event{Ev: evReady})
		_ = ln.Run(ctx)
		out.emit(Event{Ev: evExit, Msg: "ok"})
		return 0
	}

	cfg := leader.Config{
		Addr:           *addr,
		Group:          *group,
		ID:             *id,
		Secret:         []byte(*secret),
		PreviousSecret: []byte(*previous),
		Priority:       *priority,
		PriorityAfter:  *prioAfter,
		Logger:         logger,
		OnStartedLeading: func(ctx context.Context, term uint64) {
			n := cbSeq.Add(1) // tells the calls apart, also two in one term
			out.emit(Event{Ev: evStart, Term: term, Seq: n})
			<-ctx.Done()
			if *cbLinger > 0 {
				time.Sleep(*cbLinger) // the job winds down; the callback has not returned yet
			}
			out.emit(Event{Ev: evCbDone, Term: term, Seq: n})
		},
		OnStoppedLeading: func(cause error) { out.emit(Event{Ev: evStop, Msg: cause.Error()}) },
		OnNewLeader: func(l string, term uint64) {
			out.emit(Event{Ev: evNew, Leader: l, LTerm: term})
		},
	}
	if nodeLoc.mode() == deploySentinel {
		cfg.Addr = ""
		cfg.Sentinel = &leader.Sentinel{Addrs: nodeLoc.sentinels, MasterName: sentinelMaster,
			Dial: func(ctx context.Context, addr string, sentinel bool) (redis.Conn, error) {
				if sentinel {
					return redis.DialContext(ctx, "tcp", addr, redis.DialReadTimeout(*tf.peer), redis.DialWriteTimeout(*tf.peer))
				}
				return nodeLoc.dialData(ctx, addr)
			}}
	}
	if nodeLoc.mode() == deployCluster {
		cfg.Addr = ""
		cfg.Cluster = &leader.Cluster{Addrs: nodeLoc.seeds, Dial: nodeLoc.dialData}
	}
	tf.apply(&cfg)
	el, err := leader.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// The singleton job and the status reports run for the life of the
	// process, not of Run: after SIGTERM a resigning leader must stop
	// ticking on its own, because IsLeader() turns false.
	go tickLoop(el, *id, *tickEvery, out, f)
	go statusLoop(func() Event {
		s := el.Status()
		l, lt := el.Leader()
		return Event{Ev: evStatus, Term: s.Term, Leader: l, LTerm: lt, Heir: s.Heir, State: s.State.String(),
			Active: s.Active, Connected: s.Connected, Elections: s.Elections, StepDowns: s.StepDowns,
			Reconnects: s.Reconnects, MsgsIn: s.MessagesIn, MsgsOut: s.MessagesOut, Dropped: s.Dropped,
			Unverified: s.Unverified, Replays: s.Replays, LeasesLost: s.LeasesLost, HandOvers: s.HandOvers,
			LeaseLeft: s.LeaseLeft.Microseconds()}
	}, *statusEvery, out)
	go stallLoop(out.emit, *stallEvery)

	out.emit(Event{Ev: evReady})
	err = el.Run(ctx)
	msg := "ok"
	if err != nil && !errors.Is(err, context.Canceled) {
		msg = err.Error()
	}
	out.emit(Event{Ev: evExit, Msg: msg})
	return 0
}

// tickLoop is the singleton job: every period, if IsLeader() is true, one
// tick tagged with the term (the fencing token), written to the fence.
func tickLoop(el elector, self string, period time.Duration, out *emitter, f *fencer) {
	t := time.NewTicker(period)
	defer t.Stop()
	var seq uint64
	odd := 0 // consecutive ticks where IsLeader and Leader() disagree
	for range t.C {
		id1, term1 := el.Leader()
		t0 := mono()
		ok := el.IsLeader()
		t1 := mono()
		if !ok {
			odd = 0
			continue
		}
		id2, term2 := el.Leader()
		if id1 != self || id2 != self || term1 != term2 {
			// A race with a change of leadership is possible once; a
			// lasting disagreement is worth reporting.
			if odd++; odd == 3 {
				out.emit(Event{Ev: evAnomaly, Msg: fmt.Sprintf(
					"IsLeader() true but Leader() = %q term %d then %q term %d", id1, term1, id2, term2)})
			}
			continue
		}
		odd = 0
		seq++
		ev := Event{T: t0, T1: t1, Ev: evTick, Term: term1, Seq: seq}
		f.write(&ev)
		out.emit(ev)
	}
}

// elector is what the singleton job needs of an algorithm: the library's
// Elector, or the lock baseline.
type elector interface {
	IsLeader() bool
	Leader() (string, uint64)
}

// statusLoop reports a status snapshot (Status() and Leader()) every
// period, and also as soon as the term, the leader followed or the state
// changes (it looks every period/10), so the harness
// sees a vote or a new term within a few ms, not a period later.
func statusLoop(snap func() Event, period time.Duration, out *emitter) {
	poll := max(period/10, time.Millisecond)
	t := time.NewTicker(poll)
	defer t.Stop()
	var last Event
	var lastAt, least int64
	for range t.C {
		ev := snap()
		now := mono()
		if ev.Active && (least == 0 || ev.LeaseLeft < least) {
			least = max(ev.LeaseLeft, 1)
		}
		changed := ev.Term != last.Term || ev.Leader != last.Leader || ev.LTerm != last.LTerm || ev.State != last.State || ev.Active != last.Active
		if !changed && now-lastAt < int64(period) {
			continue
		}
		ev.LeaseLeft, least = least, 0
		ev.Goroutines = runtime.NumGoroutine()
		ev.T = now
		out.emit(ev)
		last, lastAt = ev, now
	}
}

// stallLoop reports the times this process did not run for a while (CPU
// starvation, SIGSTOP): a sleep of period (10 ms by default) that took
// more than max(60 ms, 3 periods). The
// analysis uses them to explain, never to excuse, a leader change, and to
// tell a late callback in a stalled process from a library fault.
func stallLoop(emit func(Event), period time.Duration) {
	limit := max(60*time.Millisecond, 3*period)
	prev := mono()
	for {
		time.Sleep(period)
		now := mono()
		if now-prev > int64(limit) {
			emit(Event{Ev: evStall, T: prev, T1: now})
		}
		prev = now
	}
}
