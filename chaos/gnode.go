package main

// The group node role: the same binary, re-executed by the group harness
// (groups.go) as "chaos gnode -id p1 -groups 1000 ...". One process runs
// many Electors, all sharing ONE leader.Link (so two Redis connections for
// the whole process): -groups G groups g0..g{G-1}, and -electors E Electors
// in each with distinct IDs (ID with -electors 1, ID.e0 .. ID.e{E-1}
// otherwise). It reports, one JSON line per write on stdout, stamped with
// CLOCK_MONOTONIC:
//
//   - start: OnStartedLeading(term) began;
//   - lead: the first tick of that leadership (IsLeader() true, and
//     Leader() names this Elector at that term), with T and T1 around the
//     IsLeader() call;
//   - end: OnStartedLeading's context ended, with the first and last true
//     ticks of the leadership (the span in which it was surely active);
//   - new: OnNewLeader(leader, term);
//   - status: every -status, sums over the process's Electors of their
//     Status() counters, and how many groups it leads and follows;
//   - stall, fence-rejected, anomaly.
//
// The singleton job is cheap on purpose, so that 1000 groups measure the
// library: one goroutine ticks every led group every -tick (IsLeader() and
// Leader(), no I/O), and one shared fencing check every -fence-every
// writes the terms of all led groups in ONE EVAL (a hash field per group;
// a term below the stored one is refused and reported, as a downstream
// store guarding itself with the fencing token would). No per-tick,
// per-group fence write: that would be 20,000 EVALs a second at 1000
// groups and measure the harness, not the library.

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/redraft/leader"
)

// Event kinds of the group node, besides evStart, evNew, evStatus,
// evStall, evAnomaly, evReady and evExit of node.go.
const (
	evLead          = "lead"           // the first true tick of a leadership
	evEnd           = "end"            // OnStartedLeading's context ended
	evFenceRejected = "fence-rejected" // the shared fence refused a led group's term
)

// gEvent is one line a group node writes on stdout.
type gEvent struct {
	T      int64  `json:"t"`
	T1     int64  `json:"t1,omitempty"` // lead: after IsLeader(); stall: end of the stall
	Ev     string `json:"ev"`
	G      int    `json:"g"`           // group index (g0 is 0)
	E      int    `json:"e,omitempty"` // Elector index within the process, in its group
	Term   uint64 `json:"term,omitempty"`
	Leader string `json:"leader,omitempty"` // new: the leader followed now ("" none)

	// end: the first and the last true tick of the leadership (0: none)
	FirstT0 int64 `json:"f0,omitempty"`
	FirstT1 int64 `json:"f1,omitempty"`
	LastT0  int64 `json:"l0,omitempty"`
	LastT1  int64 `json:"l1,omitempty"`

	// status: sums over the process's Electors
	Led        int    `json:"led,omitempty"`   // groups in which an Elector of this process IsLeader()
	Known      int    `json:"known,omitempty"` // Electors that follow a leader (Leader() != "")
	NotReady   int    `json:"notready"`        // Electors whose Ready() is not nil
	MsgsIn     uint64 `json:"min,omitempty"`
	MsgsOut    uint64 `json:"mout,omitempty"`
	Elections  uint64 `json:"elect,omitempty"`
	Reconnects uint64 `json:"reconn,omitempty"`
	Dropped    uint64 `json:"drop,omitempty"`
	PubErrors  uint64 `json:"puberr,omitempty"`
	Unverified uint64 `json:"unv,omitempty"`
	Replays    uint64 `json:"repl,omitempty"`
	Connected  int    `json:"conn,omitempty"` // Electors whose Status().Connected
	FenceOK    uint64 `json:"fok,omitempty"`  // terms the shared fence accepted
	FenceBad   uint64 `json:"fbad,omitempty"` // terms it refused
	FenceErr   uint64 `json:"ferr,omitempty"` // fence calls that failed
	Goroutines int    `json:"gor,omitempty"`
	Stored     uint64 `json:"stored,omitempty"` // fence-rejected: the term stored
	Msg        string `json:"msg,omitempty"`
}

// gFenceName is the client name of the fence's connection (CLIENT
// SETNAME), so that the harness can leave it out of the connections it
// counts for the library.
const gFenceName = "chaos-fence"

// gFenceKey is the hash of the shared fence: one field per group.
const gFenceKey = "chaos:groups:fence"

// gFenceScript writes each (group, term) pair of ARGV whose term is at
// least the stored one, and returns the pairs it refused, with the stored
// term: {group, stored, group, stored, ...}.
var gFenceScript = redis.NewScript(1, `
local bad = {}
for i = 1, #ARGV, 2 do
  local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  local t = tonumber(ARGV[i+1])
  if t > stored then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1])
  elseif t < stored then
    table.insert(bad, ARGV[i])
    table.insert(bad, tostring(stored))
  end
end
return bad
`)

// gLeadership is one leadership of one Elector: one call of
// OnStartedLeading.
type gLeadership struct {
	term           uint64
	first0, first1 int64 // the first true tick
	last0, last1   int64 // the last true tick
	ended          bool  // OnStartedLeading's context ended
}

// gElector is one Elector of the process and its current leadership.
type gElector struct {
	el   *leader.Elector
	g, e int
	id   string

	mu  sync.Mutex   // guards cur; held while the lead and end lines are written, so they keep their order
	cur *gLeadership // nil when OnStartedLeading does not run
}

// gnodeMain is the entry point of the group node role; it returns the exit
// code.
func gnodeMain(args []string) int {
	fs := flag.NewFlagSet("gnode", flag.ContinueOnError)
	var (
		id          = fs.String("id", "", "node ID: the ID in every group with -electors 1, else the prefix of ID.e0 .. ID.e{E-1}")
		addr        = fs.String("redis", "", "Redis address (direct: no proxy)")
		groups      = fs.Int("groups", 1, "groups g0..g{N-1}")
		electors    = fs.Int("electors", 1, "Electors per group in this process, with distinct IDs")
		tf          = addTimingFlags(fs)
		tickEvery   = fs.Duration("tick", 50*time.Millisecond, "period of the ticks of every led group")
		statusEvery = fs.Duration("status", time.Second, "status report period")
		fenceEvery  = fs.Duration("fence-every", time.Second, "period of the shared fencing check (0: none)")
		logLevel    = fs.String("log-level", "warn", "library log level on stderr: debug, info, warn")
		stallEvery  = fs.Duration("stall-every", 40*time.Millisecond, "period of the stall watch")
		shared      = fs.Bool("link", true, "share one leader.Link among the Electors (false: each opens its own two connections, for comparison)")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *id == "" || *addr == "" || *groups < 1 || *electors < 1 {
		fmt.Fprintln(os.Stderr, "gnode: need -id, -redis, -groups >= 1 and -electors >= 1")
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "gnode: bad -log-level: %v\n", err)
		return 2
	}
	out := &emitter{w: os.Stdout, id: *id}
	emit := func(ev gEvent) {
		if ev.T == 0 {
			ev.T = mono()
		}
		out.line(ev)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	go func() { // EOF on stdin: the harness died without killing us
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		os.Exit(4)
	}()

	link := &leader.Link{Addr: *addr, Logger: logger.With("link", *id)}
	var els []*gElector
	for g := range *groups {
		for e := range *electors {
			ge := &gElector{g: g, e: e, id: *id}
			if *electors > 1 {
				ge.id = fmt.Sprintf("%s.e%d", *id, e)
			}
			cfg := leader.Config{
				Link:             link,
				Group:            "g" + strconv.Itoa(g),
				ID:               ge.id,
				Logger:           logger,
				OnStartedLeading: ge.onStarted(emit),
				OnNewLeader: func(l string, term uint64) {
					emit(gEvent{Ev: evNew, G: ge.g, E: ge.e, Leader: l, Term: term})
				},
			}
			if !*shared {
				cfg.Link, cfg.Addr = nil, *addr
			}
			tf.apply(&cfg)
			el, err := leader.New(cfg)
			if err != nil {
				fmt.Fprintln(os.Stderr, "gnode:", err)
				return 2
			}
			ge.el = el
			els = append(els, ge)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go gTickLoop(els, *tickEvery, emit)
	go gStatusLoop(els, *statusEvery, emit)
	go stallLoop(func(ev Event) { emit(gEvent{T: ev.T, T1: ev.T1, Ev: evStall}) }, *stallEvery)
	if *fenceEvery > 0 {
		go gFenceLoop(ctx, els, *addr, *fenceEvery, emit)
	}

	emit(gEvent{Ev: evReady})
	errs := make(chan error, len(els))
	for _, ge := range els {
		go func() { errs <- ge.el.Run(ctx) }()
	}
	msg := "ok"
	for range els {
		if err := <-errs; err != nil && !errors.Is(err, context.Canceled) && msg == "ok" {
			msg = err.Error()
		}
	}
	emit(gEvent{Ev: evExit, Msg: msg})
	return 0
}

// onStarted is the Elector's OnStartedLeading: it reports the start,
// registers the leadership for the ticks and the fence, and reports its
// end with the span of its true ticks.
func (ge *gElector) onStarted(emit func(gEvent)) func(context.Context, uint64) {
	return func(ctx context.Context, term uint64) {
		l := &gLeadership{term: term}
		ge.mu.Lock()
		ge.cur = l
		emit(gEvent{Ev: evStart, G: ge.g, E: ge.e, Term: term})
		ge.mu.Unlock()
		<-ctx.Done()
		ge.mu.Lock()
		l.ended = true
		ge.cur = nil
		emit(gEvent{Ev: evEnd, G: ge.g, E: ge.e, Term: term, Msg: context.Cause(ctx).Error(),
			FirstT0: l.first0, FirstT1: l.first1, LastT0: l.last0, LastT1: l.last1})
		ge.mu.Unlock()
	}
}

// tick checks one Elector: if it runs a leadership and IsLeader() is true
// with Leader() naming it at that term, the leadership's last true tick
// moves on; the first one is reported as a lead line. It returns the term
// it leads (0: none).
func (ge *gElector) tick(emit func(gEvent)) uint64 {
	ge.mu.Lock()
	l := ge.cur
	ge.mu.Unlock()
	if l == nil {
		return 0
	}
	t0 := mono()
	ok := ge.el.IsLeader()
	t1 := mono()
	id, term := ge.el.Leader()
	if !ok || id != ge.id || term != l.term {
		return 0
	}
	ge.mu.Lock()
	defer ge.mu.Unlock()
	if l.ended {
		return 0
	}
	if l.first0 == 0 {
		l.first0, l.first1 = t0, t1
		emit(gEvent{T: t0, T1: t1, Ev: evLead, G: ge.g, E: ge.e, Term: term})
	}
	l.last0, l.last1 = t0, t1
	return term
}

// gTickLoop is the singleton job of every Elector of the process: every
// period, a tick of each one that runs a leadership.
func gTickLoop(els []*gElector, period time.Duration, emit func(gEvent)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for range t.C {
		for _, ge := range els {
			ge.tick(emit)
		}
	}
}

// gStatusLoop reports the sums of the Electors' Status() every period,
// with how many of them are not Ready(). While some are not, it looks
// every 100 ms and reports at once when the last one becomes ready, so
// that the harness can wait for readiness (a rolling restart's condition)
// without waiting a period.
func gStatusLoop(els []*gElector, period time.Duration, emit func(gEvent)) {
	poll := min(period, 100*time.Millisecond)
	t := time.NewTicker(poll)
	defer t.Stop()
	var last time.Time
	notReady := -1
	for now := range t.C {
		if notReady == 0 && now.Sub(last) < period-poll/2 {
			continue
		}
		ev := gEvent{Ev: evStatus}
		for _, ge := range els {
			if ge.el.Ready() != nil {
				ev.NotReady++
			}
		}
		if ev.NotReady > 0 && now.Sub(last) < period-poll/2 {
			notReady = ev.NotReady
			continue // not ready yet: look again in poll
		}
		notReady = ev.NotReady
		fenceMu.Lock()
		ev.FenceOK, ev.FenceBad, ev.FenceErr = fenceOK, fenceBad, fenceErr
		fenceMu.Unlock()
		for _, ge := range els {
			s := ge.el.Status()
			if s.Active {
				ev.Led++
			}
			if s.Leader != "" {
				ev.Known++
			}
			ev.MsgsIn += s.MessagesIn
			ev.MsgsOut += s.MessagesOut
			ev.Elections += s.Elections
			ev.Reconnects += s.Reconnects
			ev.Dropped += s.Dropped
			ev.PubErrors += s.PublishErrors
			ev.Unverified += s.Unverified
			ev.Replays += s.Replays
			if s.Connected {
				ev.Connected++
			}
		}
		ev.Goroutines = runtime.NumGoroutine()
		emit(ev)
		last = now
	}
}

// The shared fence's counters, reported in the status lines.
var (
	fenceMu                     sync.Mutex // guards the three counters
	fenceOK, fenceBad, fenceErr uint64
)

// gFenceLoop is the shared fencing check: every period, the term of every
// group an Elector of this process leads (IsLeader() true just before),
// written in one EVAL on a connection of its own (named gFenceName). A
// refused term is reported as a fence-rejected line.
func gFenceLoop(ctx context.Context, els []*gElector, addr string, period time.Duration, emit func(gEvent)) {
	var c redis.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	t := time.NewTicker(period)
	defer t.Stop()
	for ctx.Err() == nil {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		type written struct {
			ge   *gElector
			term uint64
		}
		var argv []any
		byName := map[string]written{}
		for _, ge := range els {
			if term := ge.tick(emit); term > 0 {
				name := "g" + strconv.Itoa(ge.g)
				argv = append(argv, name, term)
				byName[name] = written{ge, term}
			}
		}
		if len(argv) == 0 {
			continue
		}
		if c == nil {
			var err error
			c, err = redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second),
				redis.DialReadTimeout(2*time.Second), redis.DialWriteTimeout(2*time.Second),
				redis.DialClientName(gFenceName))
			if err != nil {
				c = nil
				fenceMu.Lock()
				fenceErr++
				fenceMu.Unlock()
				continue
			}
		}
		bad, err := redis.Strings(gFenceScript.Do(c, append([]any{gFenceKey}, argv...)...))
		fenceMu.Lock()
		if err != nil {
			fenceErr++
		} else {
			fenceOK += uint64(len(argv)/2 - len(bad)/2)
			fenceBad += uint64(len(bad) / 2)
		}
		fenceMu.Unlock()
		if err != nil {
			c.Close()
			c = nil
			continue
		}
		for i := 0; i+1 < len(bad); i += 2 {
			stored, _ := strconv.ParseUint(bad[i+1], 10, 64)
			if w, ok := byName[bad[i]]; ok {
				emit(gEvent{Ev: evFenceRejected, G: w.ge.g, E: w.ge.e, Term: w.term, Stored: stored})
			}
		}
	}
}
