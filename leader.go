// Package leader elects one leader among the instances of a service that share
// a Redis server, over Redis pub/sub, with no central coordinator and no clock
// synchronisation.
//
// Every instance runs an [Elector]. Electors heartbeat each other on one Redis
// channel per election group, expire peers they stop hearing, call elections
// after randomised timeouts and win by a majority of votes (a "quasi-Raft":
// terms, pre-vote, one vote per term). A leader acts only inside a lease
// measured on its own monotonic clock, renewed by a quorum of acknowledgements
// of its heartbeats.
//
// # What is guaranteed
//
//   - At most one node at a time has IsLeader() == true and runs
//     OnStartedLeading, provided LeaseTimeout < PeerTimeout with margin for
//     scheduling delay and clock-rate drift (New enforces a 10% margin), and
//     provided the quorums intersect: always in strict mode (ClusterSize > 0),
//     and in dynamic mode (ClusterSize == 0) when all nodes see the same set of
//     live peers, which holds when they all talk to one Redis.
//   - A leader that is paused (GC, SIGSTOP) or cut off from Redis stops being
//     leader when its lease ends, before any other node can become leader:
//     IsLeader reads the clock when it is called.
//   - Terms only grow, also across restarts of every node as long as Redis
//     keeps its data. The term of the leader is a fencing token: pass it to
//     the systems the leader writes to, and have them refuse lower terms.
//
// # What is not guaranteed
//
//   - No clock synchronisation is needed, but clock rates are assumed to agree
//     within the lease margin.
//   - Redis pub/sub is at-most-once. A node that is disconnected misses what
//     was published meanwhile; the protocol tolerates that, but a Redis that
//     silently drops messages for longer than the lease costs availability.
//   - The leader's callback is cancelled when the lease ends; a callback that
//     ignores its context keeps running. Fence the writes it makes.
//   - Without Secret, any client that can PUBLISH on the group's channel can
//     forge votes and handovers, and so break every guarantee above. Secret
//     makes nodes drop what a client without the key publishes; Redis ACLs
//     and TLS protect the channel itself.
package leader

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Defaults for the zero values of Config. They satisfy the lease inequality
// LeaseTimeout < PeerTimeout with a wide margin and give a failover of about
// PeerTimeout+ElectionJitter after a pause or partition, about LeaseTimeout
// after a crash, and a few round trips after a graceful stop.
const (
	defaultAddr              = "127.0.0.1:6379"
	defaultGroup             = "default"
	defaultHeartbeatInterval = 100 * time.Millisecond
	defaultLeaseTimeout      = 300 * time.Millisecond
	defaultPeerTimeout       = 500 * time.Millisecond
	defaultElectionJitter    = 150 * time.Millisecond

	// maxMessageSize caps what a node decodes; anything larger is dropped.
	maxMessageSize = 1024
	// maxIDLen bounds node IDs and group names so every message fits.
	maxIDLen = 200
	// maxPeers bounds the peer table, so a flood of made-up sender IDs
	// cannot grow memory without bound.
	maxPeers = 4096
	// inboxSize is how many decoded messages may wait for the state machine;
	// beyond that, messages are dropped and counted rather than blocking the
	// subscriber (which would make Redis disconnect it).
	inboxSize = 1024
	// maxBackoff caps the reconnect backoff.
	maxBackoff = 2 * time.Second
)

// Config configures an Elector. Zero values mean the documented default.
type Config struct {
	// Addr is the Redis address, host:port. Default "127.0.0.1:6379".
	// Unused when Dial is set.
	Addr string

	// Dial, when set, opens every Redis connection the Elector uses (one
	// subscriber, one for publishing and commands). Use it for TLS, AUTH or
	// ACL users, Sentinel (dial the current primary), or anything else redigo
	// can dial. The context carries the dial deadline. The returned
	// connection should support redis.ConnWithTimeout (redigo's own do).
	Dial func(ctx context.Context) (redis.Conn, error)

	// Group names the election. Each group on one Redis is independent.
	// Default "default". Its channel is "leader:{Group}".
	Group string

	// ID identifies this node in the group. Default: hostname-pid-random, unique
	// per process incarnation. A fixed ID (a pod name, say) is allowed, but
	// two live processes must never share one. A process restarted with the
	// ID of one that just voted cannot vote twice in a term: it listens for
	// PeerTimeout first, and never votes in a term it saw meanwhile.
	ID string

	// HeartbeatInterval is how often the leader heartbeats (and so renews its
	// lease). Default 100ms.
	HeartbeatInterval time.Duration

	// LeaseTimeout is how long after sending a heartbeat that a quorum acked the
	// leader may keep acting. It must be at least twice HeartbeatInterval, so a
	// lease can be renewed before it ends, and at most 90% of PeerTimeout, so a
	// leader's lease ends before any other node can be elected. Default 300ms.
	LeaseTimeout time.Duration

	// PeerTimeout is how long a node goes without hearing a peer (or its
	// leader) before it treats it as gone. Default 500ms.
	PeerTimeout time.Duration

	// ElectionJitter is the upper bound of the random delay before a node
	// campaigns after its leader timed out; re-drawn every time, it keeps
	// nodes from splitting the vote. Default 150ms.
	ElectionJitter time.Duration

	// ClusterSize selects the quorum. 0 (dynamic mode): a majority of the live
	// nodes this node sees; a lone node elects itself. >0 (strict mode): a
	// majority of ClusterSize, whatever is live, so a minority never leads.
	ClusterSize int

	// Observer nodes vote and ack but never stand for election.
	Observer bool

	// Secret, when set, makes every message HMAC-SHA256 signed; unsigned and
	// wrongly signed messages are dropped and counted. All nodes of a group
	// must share it.
	Secret []byte

	// Logger receives the Elector's logs. Default: discard.
	Logger *slog.Logger

	// OnStartedLeading runs in its own goroutine when this node becomes the
	// active leader of term (its fencing token). ctx is cancelled the moment
	// the lease is lost, on Resign, and when Run's context ends. It should
	// return promptly after that: Resign waits for it before handing over,
	// and Run does not return before it has. If a lapsed lease comes back
	// (a short pause, a slow quorum) it runs again for the same term, but
	// never while an earlier call runs or before its OnStoppedLeading.
	OnStartedLeading func(ctx context.Context, term uint64)

	// OnStoppedLeading is called after OnStartedLeading has returned, once for
	// each call of OnStartedLeading, and never otherwise.
	OnStoppedLeading func()

	// OnNewLeader is called when the leader this node follows changes,
	// including to this node itself. Callbacks other than OnStartedLeading
	// run one at a time, in order, on one goroutine of the Elector's, never
	// while the Elector holds a lock; a slow callback delays later callbacks,
	// never heartbeats.
	OnNewLeader func(id string, term uint64)
}

// Errors returned by the Elector's methods.
var (
	// ErrNotLeader is returned by TransferTo when this node does not lead.
	ErrNotLeader = errors.New("leader: this node is not the leader")
	// ErrNotCandidate is returned by TransferTo when the target is not a live
	// node that can stand (unknown, timed out, or an observer).
	ErrNotCandidate = errors.New("leader: target is not a live candidate")
	// ErrNotRunning is returned by Resign and TransferTo when Run is not running.
	ErrNotRunning = errors.New("leader: elector is not running")
	// ErrAlreadyRunning is returned by Run when the Elector was already run;
	// an Elector runs once.
	ErrAlreadyRunning = errors.New("leader: Run called more than once")
)

// withDefaults returns cfg with its zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Addr == "" {
		cfg.Addr = defaultAddr
	}
	if cfg.Group == "" {
		cfg.Group = defaultGroup
	}
	if cfg.ID == "" {
		cfg.ID = defaultID()
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = defaultHeartbeatInterval
	}
	if cfg.LeaseTimeout == 0 {
		cfg.LeaseTimeout = defaultLeaseTimeout
	}
	if cfg.PeerTimeout == 0 {
		cfg.PeerTimeout = defaultPeerTimeout
	}
	if cfg.ElectionJitter == 0 {
		cfg.ElectionJitter = defaultElectionJitter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// validate checks cfg (with defaults filled in). Each error names the field,
// shows the value, and says what would be accepted.
func (cfg Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("leader: "+format, args...))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HeartbeatInterval", cfg.HeartbeatInterval},
		{"LeaseTimeout", cfg.LeaseTimeout},
		{"PeerTimeout", cfg.PeerTimeout},
		{"ElectionJitter", cfg.ElectionJitter},
	} {
		if d.v < 0 {
			bad("%s (%v) must not be negative: use 0 for the default", d.name, d.v)
		}
	}
	if len(errs) == 0 {
		if cfg.LeaseTimeout < 2*cfg.HeartbeatInterval {
			bad("LeaseTimeout (%v) must be at least twice HeartbeatInterval (%v), or no heartbeat can renew the lease in time: raise LeaseTimeout or lower HeartbeatInterval",
				cfg.LeaseTimeout, cfg.HeartbeatInterval)
		}
		if limit := cfg.PeerTimeout * 9 / 10; cfg.LeaseTimeout > limit {
			bad("LeaseTimeout (%v) must be less than PeerTimeout (%v) with a 10%% margin, so a lease ends before a new leader can be elected: set LeaseTimeout to at most %v or raise PeerTimeout",
				cfg.LeaseTimeout, cfg.PeerTimeout, limit)
		}
	}
	if cfg.ClusterSize < 0 {
		bad("ClusterSize (%d) must not be negative: use 0 for dynamic mode or the number of nodes for strict mode", cfg.ClusterSize)
	}
	if err := checkName("Group", cfg.Group); err != nil {
		errs = append(errs, err)
	}
	if err := checkName("ID", cfg.ID); err != nil {
		errs = append(errs, err)
	}
	if cfg.Dial == nil && !strings.Contains(cfg.Addr, ":") {
		bad("Addr (%q) must be host:port, e.g. 127.0.0.1:6379", cfg.Addr)
	}
	return errors.Join(errs...)
}

func checkName(field, v string) error {
	if len(v) > maxIDLen {
		return fmt.Errorf("leader: %s is %d bytes long: use at most %d", field, len(v), maxIDLen)
	}
	for _, r := range v {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("leader: %s (%q) must not contain spaces or control characters", field, v)
		}
	}
	return nil
}

// defaultID is hostname-pid-random: unique per process incarnation, and
// readable in logs.
func defaultID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	host = strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, host)
	if len(host) > 64 {
		host = host[:64]
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// State is a node's role in the election.
type State int

// The states of a node.
const (
	// Follower follows a leader, or waits for one.
	Follower State = iota
	// Candidate is running a pre-vote or a vote.
	Candidate
	// Leader won its term. It is active (IsLeader) only inside its lease.
	Leader
)

// String returns the state's name in lower case.
func (s State) String() string {
	switch s {
	case Follower:
		return "follower"
	case Candidate:
		return "candidate"
	case Leader:
		return "leader"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Status is a snapshot of an Elector, for metrics, health checks and tests.
type Status struct {
	ID        string
	State     State
	Term      uint64
	Leader    string        // the leader this node follows; "" when none
	Heir      string        // the node the leader names to stand first if it is lost; "" when none
	Active    bool          // IsLeader() at the time of the snapshot
	LeaseLeft time.Duration // time left on the lease; 0 unless Active
	LivePeers []string      // other nodes heard within PeerTimeout, sorted; a follower hears only the leader while it is healthy
	Nodes     int           // live nodes in the group, this one included: the leader's count, as the leader last reported it
	Connected bool          // subscribed, and this node's own messages echo back

	Elections      uint64 // elections this node started (after a pre-vote)
	StepDowns      uint64 // times this node stopped being the active leader
	MessagesIn     uint64 // valid messages received
	MessagesOut    uint64 // messages published
	Dropped        uint64 // messages dropped (malformed, unsigned, oversized, flood)
	Reconnects     uint64 // Redis (re)connections after the first
	PublishErrors  uint64 // failed PUBLISH or commands
	LastRedisError string // the last Redis error seen, "" if none
}

// Elector takes part in the election of one group. Create it with New and
// call Run. Its methods are safe for concurrent use.
type Elector struct {
	cfg     Config
	channel string // the group's channel
	self    string // this node's own channel, for the crash fast path
	termKey string // INCR'd per election so terms outlive restarts
	inc     uint64 // random per incarnation: tells echoes from a duplicate ID
	log     *slog.Logger

	running atomic.Bool
	cmds    chan command  // to the state machine, while Run runs
	done    chan struct{} // closed when Run returns

	mu sync.Mutex // guards st; held only briefly, never around user code
	st state

	// counters, read by Status without the lock
	nIn, nOut, nDropped, nReconnects, nPubErr atomic.Uint64

	// Set by the Redis goroutines with mark, read with stamp.
	base   time.Time    // origin of these timestamps (monotonic)
	pubOK  atomic.Int64 // last answered PUBLISH
	recvAt atomic.Int64 // last thing the subscription delivered
}

// New checks cfg, fills in defaults, and returns an Elector ready to Run.
// The error names each bad field and how to fix it.
func New(cfg Config) (*Elector, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	e := &Elector{
		cfg:     cfg,
		channel: "leader:{" + cfg.Group + "}",
		inc:     binary.LittleEndian.Uint64(nonce[:]) | 1,
		log:     cfg.Logger.With("node", cfg.ID, "group", cfg.Group),
		cmds:    make(chan command),
		done:    make(chan struct{}),
		base:    time.Now(),
	}
	e.self = e.nodeChannel(cfg.ID)
	e.termKey = e.channel + ":term"
	e.st.peers = make(map[string]*peer)
	return e, nil
}

// ID returns this node's ID.
func (e *Elector) ID() string { return e.cfg.ID }

// IsLeader reports whether this node is the active leader now: elected, and
// inside a lease that it checks against the clock at the time of the call.
// Call it before each unit of leader-only work.
func (e *Elector) IsLeader() bool {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.activeAt(now)
}

// Leader returns the leader this node follows and its term, the fencing
// token; id is "" when there is none. On the leader it returns its own ID.
func (e *Elector) Leader() (id string, term uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.leader, e.st.leaderTerm
}

// Status returns a snapshot of the Elector.
func (e *Elector) Status() Status {
	now := time.Now()
	e.mu.Lock()
	s := Status{
		ID:             e.cfg.ID,
		State:          e.st.role,
		Term:           e.st.term,
		Leader:         e.st.leader,
		Heir:           e.st.heir,
		Active:         e.st.activeAt(now),
		Connected:      e.linkUp(now),
		Elections:      e.st.elections,
		StepDowns:      e.st.stepDowns,
		LastRedisError: e.st.lastRedisErr,
	}
	if s.Active {
		s.LeaseLeft = e.st.leaseEnd.Sub(now)
	}
	if e.st.role == Leader {
		s.Nodes = e.st.nodes
	} else if now.Sub(e.st.knownLiveAt) < e.cfg.PeerTimeout {
		s.Nodes = e.st.knownLive
	}
	for id, p := range e.st.peers {
		if now.Sub(p.heard) < e.cfg.PeerTimeout {
			s.LivePeers = append(s.LivePeers, id)
		}
	}
	e.mu.Unlock()
	slices.Sort(s.LivePeers)
	s.MessagesIn = e.nIn.Load()
	s.MessagesOut = e.nOut.Load()
	s.Dropped = e.nDropped.Load()
	s.Reconnects = e.nReconnects.Load()
	s.PublishErrors = e.nPubErr.Load()
	return s
}

// Resign hands leadership over to a live peer now: it cancels the leader
// callback's context, waits for the callback to return, and then tells the
// group, naming the successor, which campaigns at once. It returns when the
// handover was published, or with ctx's error. On a node that does not lead
// it does nothing and returns nil.
//
// From inside OnStartedLeading, call it in a new goroutine and return: that
// callback cannot return while it waits in Resign, so Resign would wait out
// its bound (PeerTimeout) and hand over while the callback still runs.
func (e *Elector) Resign(ctx context.Context) error {
	return e.handover(ctx, "", false)
}

// TransferTo hands leadership to the node with the given ID, as Resign does.
// It returns ErrNotLeader if this node does not lead, and ErrNotCandidate if
// id is not a live peer that can stand.
func (e *Elector) TransferTo(ctx context.Context, id string) error {
	return e.handover(ctx, id, true)
}

func (e *Elector) handover(ctx context.Context, to string, strict bool) error {
	if !e.running.Load() {
		return ErrNotRunning
	}
	reply := make(chan error, 1)
	select {
	case e.cmds <- command{to: to, strict: strict, reply: reply}:
	case <-e.done:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ---------------------------------------------------------------------------
// Run and the state machine
// ---------------------------------------------------------------------------

// Run takes part in the election until ctx is cancelled. It connects to
// Redis, reconnecting with capped backoff for as long as it runs, so it
// survives Redis outages. When ctx is cancelled a leader hands over
// gracefully, as Resign does; Run then waits for every goroutine it started
// (the leader callback included) and returns nil. An Elector runs once.
func (e *Elector) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	ictx, stop := context.WithCancel(context.Background())
	r := &run{
		e:      e,
		ctx:    ictx,
		events: make(chan event, inboxSize),
		out:    make(chan job, 256),
		mac:    e.newMAC(),
	}
	r.cb.wake = make(chan struct{}, 1)
	var wg sync.WaitGroup
	r.wg = &wg
	wg.Go(r.subscriber)
	wg.Go(r.publisher)
	wg.Go(r.dispatcher)

	r.loop(ctx)

	stop()
	wg.Wait()
	e.mu.Lock()
	e.st.subscribed = false
	e.st.role, e.st.leader, e.st.leaderTerm = Follower, "", 0
	e.mu.Unlock()
	close(e.done)
	return nil
}

// run is the part of an Elector that exists while Run runs. Everything in it
// is used by the loop goroutine alone unless its comment says otherwise.
type run struct {
	e      *Elector
	ctx    context.Context // ends when Run is about to return
	wg     *sync.WaitGroup
	events chan event // to the loop, from the Redis goroutines and waiters
	out    chan job   // to the publisher
	mac    hash.Hash  // signs outgoing messages; nil without Secret

	// cb is the queue of callbacks for the dispatcher goroutine.
	cb struct {
		mu    sync.Mutex // guards queue
		queue []func()
		wake  chan struct{}
	}

	// The running leader callback, if any.
	lead struct {
		cancel  context.CancelFunc
		done    chan struct{} // closed when OnStartedLeading returned
		stopped chan struct{} // closed when OnStoppedLeading ran after it
	}
	resignWaiters []chan error // replies owed once a handover is published
	lastTick      time.Time    // when the loop last ran tick, to notice stalls
}

// command asks the loop to hand leadership over.
type command struct {
	to     string // successor; "" picks one
	strict bool   // TransferTo: errors instead of no-ops
	reply  chan error
}

type eventKind int

const (
	evMessage eventKind = iota + 1
	evSubscribed
	evDisconnected
	evTerm             // INCR of the term key answered (or failed)
	evNumSub           // PUBSUB NUMSUB of a leader's channel answered
	evLeaderEnded      // the leader callback returned, for a handover
	evCallbackReturned // OnStoppedLeading ran; nothing to do but tick
)

// event is what the Redis goroutines tell the loop.
type event struct {
	kind  eventKind
	msg   message
	at    time.Time
	n     int64  // evTerm: the INCR result; evNumSub: subscribers
	id    string // evNumSub: the leader asked about
	round uint64
	err   error
}

// peer is what a node knows of another node.
type peer struct {
	heard    time.Time // last valid message, on our clock
	observer bool
	acked    uint64 // highest seq of our current leadership it acked
}

// state is the protocol state. The loop changes it under Elector.mu; the
// public methods read it under Elector.mu.
type state struct {
	role         State
	term         uint64
	votedFor     string    // whom this node voted for in term; "" for nobody
	votedAt      time.Time // when it granted that vote
	leader       string    // the leader followed in leaderTerm; this node when leading
	leaderTerm   uint64
	leaderInc    uint64    // incarnation of the leader, to drop replays
	leaderSeq    uint64    // highest heartbeat seq seen from the leader
	heardLead    time.Time // last heartbeat from any leader; zero after a handover
	peers        map[string]*peer
	selfEcho     time.Time // last time one of our own messages came back
	subscribed   bool
	joinUntil    time.Time // listening after a (re)subscription: no voting or standing before
	startUntil   time.Time // the end of the first listening after Run began
	voteFloor    uint64    // the highest term seen before startUntil: no vote in it or below
	stallUntil   time.Time // listening after a stall of this process: no standing before
	size         int       // live nodes; decreases only after a PeerTimeout of listening
	lastSent     time.Time // last message on the group channel
	knownLive    int       // live nodes as the leader last counted them
	knownLiveAt  time.Time // when; the count is a quorum floor for PeerTimeout
	leaderChan   string    // the leader's own channel, where acks go
	leaderChanOf string    // the leader leaderChan belongs to
	electionAt   time.Time // when to campaign; zero when not scheduled
	goneLeader   string    // the leader Redis says is gone (crash fast path)
	heir         string    // a leader: the follower it names in its heartbeats; a follower: the one its leader named
	numsubAt     time.Time // last NUMSUB query, to rate-limit them
	numsubBusy   bool

	// Candidate.
	round      uint64 // numbers campaigns, so stale answers are ignored
	preVote    bool   // in the pre-vote phase of round
	waitTerm   bool   // waiting for the INCR of the term key
	roundTerm  uint64 // the term proposed (pre-vote) or stood for (vote)
	roundStart time.Time
	roundEnd   time.Time
	grants     map[string]time.Duration // voter → how long ago it heard a leader
	handover   bool                     // campaign as a named successor
	failed     int                      // rounds of this node that failed since it last saw a leader

	// Leader.
	seq         uint64
	nodes       int           // live nodes counted at the last heartbeat
	electedSize int           // the group size the election's quorum was a majority of
	selfAcked   uint64        // highest seq of ours that echoed back
	sentAt      [64]time.Time // send time of heartbeat seq, at index seq%64
	electedAt   time.Time
	notBefore   time.Time // no activity before: the old lease may still hold
	lapsedAt    time.Time // when the lease last ran out
	leaseEnd    time.Time
	active      bool // the leader callback was started and not yet stopped
	resigning   bool
	successor   string

	elections, stepDowns uint64
	lastRedisErr         string
	dupWarned            time.Time // when the duplicate-ID warning was last logged
}

// inactiveSince is when a leader that is not active stopped being (or
// could first have been) active.
func (s *state) inactiveSince() time.Time {
	if s.lapsedAt.After(s.notBefore) {
		return s.lapsedAt
	}
	return s.notBefore
}

// activeAt reports whether the node may act as leader at now (rule 6).
func (s *state) activeAt(now time.Time) bool {
	return s.role == Leader && !s.resigning && now.Before(s.leaseEnd) && !now.Before(s.notBefore)
}

// loop is the state machine: one goroutine, so no protocol step races
// another. When ctx ends it hands leadership over (bounded by PeerTimeout)
// and returns.
func (r *run) loop(ctx context.Context) {
	e := r.e
	timer := time.NewTimer(0)
	defer timer.Stop()
	done := ctx.Done()
	var stopped chan error // answers when the shutdown handover is published
	var deadline <-chan time.Time
	for {
		select {
		case ev := <-r.events:
			r.locked(func(now time.Time) { r.onEvent(ev, now) })
		case c := <-e.cmds:
			r.locked(func(now time.Time) { r.onCommand(c, now) })
		case <-timer.C:
		case <-done:
			done = nil
			stopped = make(chan error, 1)
			deadline = time.After(e.cfg.PeerTimeout)
			r.locked(func(now time.Time) { r.resign("", stopped, now) })
			continue
		case <-stopped:
			r.locked(func(time.Time) { r.finishLeading() })
			return
		case <-deadline:
			r.locked(func(time.Time) { r.finishLeading() })
			return
		}
		var next time.Time
		r.locked(func(now time.Time) {
			r.noticeStall(now)
			r.tick(now)
			next = r.nextWake(now)
		})
		timer.Reset(time.Until(next))
	}
}

// locked runs f under the lock with the current time.
func (r *run) locked(f func(now time.Time)) {
	r.e.mu.Lock()
	defer r.e.mu.Unlock()
	f(time.Now())
}

// finishLeading stops a leader callback that is still running, at shutdown.
func (r *run) finishLeading() {
	if r.e.st.active {
		r.stopLeading()
	}
	for _, w := range r.resignWaiters {
		w <- ErrNotRunning
	}
	r.resignWaiters = nil
}

func (r *run) onEvent(ev event, now time.Time) {
	e, s := r.e, &r.e.st
	switch ev.kind {
	case evMessage:
		r.onMessage(&ev.msg, ev.at)
	case evSubscribed:
		// Rule 8, after every (re)subscription: listen for a PeerTimeout to
		// learn the term, the leader and who is live before voting or
		// standing. A node back from an outage has forgotten its peers;
		// without this, in dynamic mode, a majority of what it knows would
		// be itself alone.
		s.subscribed = true
		s.joinUntil = now.Add(e.cfg.PeerTimeout)
		if s.startUntil.IsZero() {
			s.startUntil = s.joinUntil
		}
		r.sendHeartbeat(now)
	case evDisconnected:
		s.subscribed = false
		if ev.err != nil {
			s.lastRedisErr = ev.err.Error()
		}
	case evTerm:
		r.onTerm(ev, now)
	case evNumSub:
		s.numsubBusy = false
		if ev.err == nil && ev.n == 0 && s.role == Follower && ev.id == s.leader && now.Sub(s.heardLead) >= e.cfg.HeartbeatInterval {
			// Rule 12: the leader's process is gone (its connection closed),
			// so campaign without waiting for PeerTimeout. The winner still
			// waits out what the old lease could hold.
			s.goneLeader = ev.id
			if !e.cfg.Observer {
				// The winner waits until LeaseTimeout after the last
				// heartbeat anyway, so campaigning at any time before then
				// costs nothing: spread the candidates over that slack to
				// avoid split votes.
				slack := e.cfg.LeaseTimeout - now.Sub(s.heardLead)
				s.electionAt = now.Add(r.afterLeaderLost(max(min(r.jitter(), slack), r.jitter()/3), 0))
			}
			e.log.Debug("leader's connection is gone", "leader", ev.id)
		}
	case evLeaderEnded:
		if s.resigning && ev.round == s.round {
			r.publishResign(now)
		}
	}
}

func (r *run) onCommand(c command, now time.Time) {
	e, s := r.e, &r.e.st
	if s.role != Leader {
		if c.strict {
			c.reply <- ErrNotLeader
		} else {
			c.reply <- nil
		}
		return
	}
	if c.to != "" {
		p := s.peers[c.to]
		if c.to == e.cfg.ID || p == nil || p.observer || now.Sub(p.heard) >= e.cfg.PeerTimeout {
			c.reply <- fmt.Errorf("%w: %q", ErrNotCandidate, c.to)
			return
		}
	}
	r.resign(c.to, c.reply, now)
}

// resign begins a graceful stop (rule 7): stop acting at once, let the
// callback return, then publish resign naming a successor. reply gets the
// outcome; a node that does not lead answers nil at once.
func (r *run) resign(to string, reply chan error, now time.Time) {
	e, s := r.e, &r.e.st
	if s.role != Leader {
		reply <- nil
		return
	}
	r.resignWaiters = append(r.resignWaiters, reply)
	if s.resigning {
		return
	}
	if to == "" {
		to = r.pickSuccessor(now)
	}
	s.resigning, s.successor = true, to
	s.round++
	round := s.round
	e.log.Info("resigning", "term", s.term, "successor", to)
	if !s.active {
		r.publishResign(now)
		return
	}
	done := r.lead.done
	r.stopLeading()
	r.wg.Go(func() {
		// Bounded: a callback that ignores its context must not stall the
		// handover for ever; the lease is already given up either way.
		t := time.NewTimer(e.cfg.PeerTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			e.log.Warn("leader callback did not return after its context was cancelled")
		}
		r.send(event{kind: evLeaderEnded, round: round})
	})
}

// pickSuccessor returns the live peer that can stand and acked most
// recently, or "" if there is none.
func (r *run) pickSuccessor(now time.Time) string {
	e, s := r.e, &r.e.st
	best, bestAck := "", uint64(0)
	for id, p := range s.peers {
		if p.observer || now.Sub(p.heard) >= e.cfg.PeerTimeout {
			continue
		}
		if best == "" || p.acked > bestAck || (p.acked == bestAck && id < best) {
			best, bestAck = id, p.acked
		}
	}
	return best
}

// nameHeir returns the heir a leader names in its heartbeat: the one it
// named before while that one still acks (one of the last two heartbeats),
// else the best successor now. Keeping the same heir keeps followers agreed.
func (r *run) nameHeir(now time.Time) string {
	s := &r.e.st
	if p := s.peers[s.heir]; s.heir != "" && p != nil && p.acked+2 >= s.seq && now.Sub(p.heard) < r.e.cfg.PeerTimeout {
		return s.heir
	}
	s.heir = r.pickSuccessor(now)
	return s.heir
}

// afterLeaderLost is how long a follower whose leader is gone waits before
// campaigning. Left to chance (a random delay within spread), many
// followers that notice together, as in a large group, split the vote
// round after round. So the heir its leader named goes first, after guard,
// and the others hold back a round for it; they campaign only if the heir
// did not get through (it died too, or cannot reach Redis). Without a
// known heir, spread alone decides.
func (r *run) afterLeaderLost(spread, guard time.Duration) time.Duration {
	s := &r.e.st
	switch {
	case s.leader == "" || s.heir == "":
		return randDuration(spread)
	case s.heir == r.e.cfg.ID:
		return guard
	default:
		return r.roundTimeout() + randDuration(spread)
	}
}

func (r *run) publishResign(now time.Time) {
	e, s := r.e, &r.e.st
	waiters := r.resignWaiters
	r.resignWaiters = nil
	r.publish(message{Type: msgResign, Term: s.term, To: s.successor}, now, func(err error) {
		for _, w := range waiters {
			w <- err
		}
	})
	r.becomeFollower(now, "resigned")
	s.heardLead = time.Time{}
	// Give the successor the first go.
	s.electionAt = now.Add(e.cfg.PeerTimeout + randDuration(e.cfg.ElectionJitter))
}

// send hands an event to the loop; it gives up only when Run is ending.
func (r *run) send(ev event) {
	select {
	case r.events <- ev:
	case <-r.ctx.Done():
	}
}

// onMessage applies one valid message received at now.
func (r *run) onMessage(m *message, now time.Time) {
	e, s := r.e, &r.e.st
	if m.From == e.cfg.ID {
		if m.Inc != e.inc {
			e.nDropped.Add(1)
			if now.Sub(s.dupWarned) >= time.Second { // not once per message
				s.dupWarned = now
				e.log.Warn("another process uses this node's ID; IDs must be unique", "id", m.From)
			}
			return
		}
		s.selfEcho = now
		if m.Type == msgHeartbeat && m.Flags&flagLeader != 0 && s.role == Leader && m.Term == s.term {
			r.ack(nil, m.Seq, now) // our own echo is our own ack
		}
		return
	}
	if now.Before(s.startUntil) {
		// Rule 8 against amnesia: this process may be a restart of a node
		// that voted, with the same ID, in any term still going on now, and
		// it remembers nothing of it. Listening shows those terms; it never
		// votes in them, only in later ones.
		s.voteFloor = max(s.voteFloor, heldTerm(m))
	}
	p := s.peers[m.From]
	if p == nil {
		if len(s.peers) >= maxPeers {
			r.prunePeers(now)
			if len(s.peers) >= maxPeers {
				e.nDropped.Add(1)
				return
			}
		}
		p = &peer{}
		s.peers[m.From] = p
	}
	p.heard = now
	p.observer = m.Flags&flagObserver != 0

	switch m.Type {
	case msgHeartbeat:
		if m.Flags&flagLeader != 0 {
			r.onLeaderHeartbeat(m, now)
		} else {
			r.stepUp(m.Term, now)
			if s.role == Leader && m.Term == s.term && m.To == e.cfg.ID {
				r.ack(p, m.Seq, now)
			}
		}
	case msgPreVote:
		if s.role == Candidate && s.preVote && m.From < e.cfg.ID && m.Term >= s.roundTerm {
			// Two pre-candidates at once: the lower ID goes on, so that
			// many followers timing out together (a crash in a large
			// group) do not split the vote round after round.
			r.becomeFollower(now, "yielded to "+m.From)
		}
		grant := m.Term > s.term && r.mayVote(m, now)
		if grant && s.role == Follower {
			// As a vote does, a granted pre-vote gives that candidate its
			// rounds (the pre-vote's rest and the vote) before this node
			// campaigns itself.
			s.electionAt = now.Add(2*r.roundTimeout() + randDuration(r.jitter()))
		}
		r.publishTo(r.e.nodeChannel(m.From), message{Type: msgPreVoteReply, Term: m.Term, Seq: s.term, To: m.From, Flags: grantFlag(grant)}, nil)
	case msgPreVoteReply:
		if m.Seq > s.term && s.role != Leader {
			s.term, s.votedFor = m.Seq, "" // catch up; no leader known in it
		}
		if s.role == Candidate && s.preVote && m.To == e.cfg.ID && m.Term == s.roundTerm && m.Flags&flagGranted != 0 {
			s.grants[m.From] = 0
			r.extendRound(now)
			r.checkPreVote(now)
		}
	case msgVoteRequest:
		r.onVoteRequest(m, now)
	case msgVote:
		if m.Seq > s.term {
			r.stepUp(m.Seq, now)
			return
		}
		if s.role == Candidate && !s.preVote && !s.waitTerm && m.To == e.cfg.ID && m.Term == s.term && m.Flags&flagGranted != 0 {
			s.grants[m.From] = agoDuration(m.Ago)
			r.extendRound(now)
			r.checkVotes(now)
		}
	case msgResign:
		r.stepUp(m.Term, now)
		if m.Term != s.term || s.role == Leader {
			return
		}
		if s.leader == m.From {
			// The old leader stopped before it said so: no stickiness and
			// no lease to wait out (rule 7). It still votes, so its count
			// of live nodes still sizes the quorum.
			s.leader, s.heardLead, s.goneLeader = "", time.Time{}, ""
			s.knownLiveAt = now
		}
		if m.To == e.cfg.ID && !e.cfg.Observer && s.role == Follower {
			r.campaign(now, true)
		} else if s.leader == "" {
			s.electionAt = now.Add(e.cfg.HeartbeatInterval + randDuration(r.jitter()))
		}
	}
}

// onLeaderHeartbeat follows the leader of the newest term and acks.
func (r *run) onLeaderHeartbeat(m *message, now time.Time) {
	e, s := r.e, &r.e.st
	if m.Term < s.term {
		return // a stale leader; our own heartbeats carry the newer term
	}
	r.stepUp(m.Term, now)
	if s.role == Leader {
		// Impossible unless two processes share an ID or votes were
		// forged; both leaders see it, and both stand down so that a
		// fresh election in a higher term settles it.
		e.log.Error("another leader in this term: stepping down", "term", m.Term, "other", m.From)
		r.becomeFollower(now, "another leader in this term")
		return
	}
	if s.leader == m.From && s.leaderTerm == m.Term && s.leaderInc == m.Inc && m.Seq <= s.leaderSeq {
		return // a replay or a duplicate
	}
	if s.role == Candidate {
		r.becomeFollower(now, "a leader won the term")
	}
	if s.leader != m.From || s.leaderTerm != m.Term {
		s.leader, s.leaderTerm = m.From, m.Term
		r.notifyNewLeader(m.From, m.Term)
	}
	s.leaderInc, s.leaderSeq, s.heardLead, s.heir = m.Inc, m.Seq, now, m.To
	s.knownLive, s.knownLiveAt = int(min(m.Live, maxPeers+1)), now
	s.electionAt, s.goneLeader, s.failed = time.Time{}, "", 0
	// The ack goes to the leader's own channel: only the leader reads it,
	// so a round costs 2N deliveries instead of N².
	if s.leaderChanOf != m.From {
		s.leaderChan, s.leaderChanOf = r.e.nodeChannel(m.From), m.From
	}
	r.publishTo(s.leaderChan, message{Type: msgHeartbeat, Term: s.term, Seq: m.Seq, To: m.From}, nil)
}

// stepUp moves to a higher term seen in a message (rule 3).
func (r *run) stepUp(term uint64, now time.Time) {
	s := &r.e.st
	if term <= s.term {
		return
	}
	s.term, s.votedFor = term, ""
	if s.role != Follower {
		r.becomeFollower(now, "saw a higher term")
	}
	if s.leaderTerm < term {
		s.leader = ""
	}
}

// mayVote applies the rules that both pre-votes and votes obey: joined,
// not leading, and no live leader (stickiness, rule 2), unless Redis said
// that leader's process is gone (rule 12).
func (r *run) mayVote(m *message, now time.Time) bool {
	e, s := r.e, &r.e.st
	if s.joinUntil.IsZero() || now.Before(s.joinUntil) || s.role == Leader {
		return false
	}
	if s.leader != "" && now.Sub(s.heardLead) < e.cfg.PeerTimeout {
		return m.Flags&flagLeaderGone != 0 && m.To == s.leader
	}
	// A node that just voted gives that candidate its round: a rival that
	// started a moment later (with the higher term INCR gave it) would
	// otherwise take the votes back and cost a term.
	if s.votedFor != "" && s.votedFor != m.From && now.Sub(s.votedAt) < r.roundTimeout() {
		return false
	}
	return true
}

func (r *run) onVoteRequest(m *message, now time.Time) {
	s := &r.e.st
	grant := false
	if m.Term >= s.term && m.Term > s.voteFloor && r.mayVote(m, now) {
		r.stepUp(m.Term, now)
		if s.votedFor == "" || s.votedFor == m.From {
			grant = true
			s.votedFor, s.votedAt = m.From, now
			// Give this candidate its round before campaigning ourselves.
			s.electionAt = now.Add(r.roundTimeout() + randDuration(r.jitter()))
		}
	}
	r.publishTo(r.e.nodeChannel(m.From), message{Type: msgVote, Term: m.Term, Seq: s.term, To: m.From, Flags: grantFlag(grant), Ago: r.agoMicros(now)}, nil)
}

// heldTerm is the term that m shows its sender holds, or is being elected
// in (a vote request, a vote); a pre-vote proposes a term nobody holds yet.
func heldTerm(m *message) uint64 {
	switch m.Type {
	case msgPreVote:
		return max(m.Term, 1) - 1
	case msgPreVoteReply:
		return m.Seq // the voter's term; Term is the one proposed
	case msgVote:
		return max(m.Term, m.Seq) // the candidate's term, the voter's
	}
	return m.Term
}

// agoMicros is how long ago this node heard a leader heartbeat, the bound a
// winner uses to wait out an old lease (rule 12).
func (r *run) agoMicros(now time.Time) uint64 {
	if r.e.st.heardLead.IsZero() {
		return neverHeard
	}
	return uint64(now.Sub(r.e.st.heardLead) / time.Microsecond)
}

// campaign starts a round: a pre-vote, or straight to the vote for a named
// successor.
func (r *run) campaign(now time.Time, handover bool) {
	e, s := r.e, &r.e.st
	s.role = Candidate
	s.round++
	s.handover = handover
	s.electionAt = time.Time{}
	s.grants = map[string]time.Duration{}
	s.roundStart, s.roundEnd = now, now.Add(r.roundTimeout())
	if handover {
		r.startVote(now)
		return
	}
	s.preVote, s.waitTerm = true, false
	s.roundTerm = s.term + 1
	if r.selfLive(now) {
		s.grants[e.cfg.ID] = 0
	}
	flags := uint8(0)
	if s.goneLeader != "" {
		flags = flagLeaderGone
	}
	e.log.Debug("pre-vote", "term", s.roundTerm, "gone", s.goneLeader)
	r.publish(message{Type: msgPreVote, Term: s.roundTerm, To: s.goneLeader, Flags: flags}, now, nil)
	r.checkPreVote(now)
}

// extendRound keeps a round that is still gathering grants open for half
// a round more, up to four rounds from the campaign's start: on a starved
// machine grants trickle in more slowly than a round lasts, and a round cut
// short elects nobody and costs a term.
func (r *run) extendRound(now time.Time) {
	s := &r.e.st
	end := now.Add(r.roundTimeout() / 2)
	if limit := s.roundStart.Add(4 * r.roundTimeout()); end.After(limit) {
		end = limit
	}
	if end.After(s.roundEnd) {
		s.roundEnd = end
	}
}

func (r *run) checkPreVote(now time.Time) {
	s := &r.e.st
	if len(s.grants) >= r.quorum(now) {
		r.startVote(now)
	}
}

// startVote takes a new term (rule 11: max of local+1 and INCR of the term
// key, so terms outlive restarts) and asks for votes.
//
// The vote round lasts at least twice as long as the pre-vote took: on a
// starved machine a quorum's answers take longer than a round, and a round
// that always ends first elects nobody.
func (r *run) startVote(now time.Time) {
	s := &r.e.st
	s.preVote, s.waitTerm = false, true
	s.roundEnd = now.Add(max(r.roundTimeout(), 2*now.Sub(s.roundStart)))
	r.enqueue(job{kind: jobIncr, key: r.e.termKey, term: s.term, round: s.round})
}

func (r *run) onTerm(ev event, now time.Time) {
	e, s := r.e, &r.e.st
	if s.role != Candidate || !s.waitTerm || ev.round != s.round {
		return
	}
	term := max(s.term, s.voteFloor) + 1 // never a term it may have voted in before a restart
	if ev.err == nil && ev.n > 0 && uint64(ev.n) > term {
		term = uint64(ev.n)
	}
	s.waitTerm = false
	s.term, s.votedFor, s.roundTerm = term, e.cfg.ID, term
	s.elections++
	s.grants = map[string]time.Duration{}
	if r.selfLive(now) || s.handover {
		s.grants[e.cfg.ID] = agoDuration(r.agoMicros(now))
	}
	flags := uint8(0)
	to := ""
	if s.goneLeader != "" && !s.handover {
		flags, to = flagLeaderGone, s.goneLeader
	}
	e.log.Debug("election", "term", term)
	r.publish(message{Type: msgVoteRequest, Term: term, To: to, Flags: flags}, now, nil)
	r.checkVotes(now)
}

func (r *run) checkVotes(now time.Time) {
	s := &r.e.st
	if len(s.grants) >= r.quorum(now) {
		r.becomeLeader(now)
	}
}

// becomeLeader takes the term won. The node is not active yet: that needs a
// quorum of acks (rule 4) and the end of any lease the old leader could
// still hold (rule 12).
func (r *run) becomeLeader(now time.Time) {
	e, s := r.e, &r.e.st
	s.electedSize = r.groupSize(now) // the candidate's, before the role changes
	// Wait out LeaseTimeout from the most recent leader heartbeat any voter
	// heard: the old lease cannot outlast that (rule 12). After a normal
	// timeout every voter heard its leader over PeerTimeout ago: no wait.
	var wait time.Duration
	for _, ago := range s.grants {
		wait = max(wait, e.cfg.LeaseTimeout-ago)
	}
	if wait > 0 {
		// The old leader notices its lease end on its own clock and stops
		// its callback a moment later: keep half the margin New demands
		// between LeaseTimeout and PeerTimeout.
		wait += e.cfg.PeerTimeout / 20
	}
	s.role, s.leader, s.leaderTerm, s.leaderInc = Leader, e.cfg.ID, s.term, e.inc
	s.electedAt, s.notBefore = now, now.Add(max(wait, 0))
	s.leaseEnd, s.lapsedAt, s.seq, s.selfAcked = time.Time{}, time.Time{}, 0, 0
	s.resigning, s.successor, s.heir = false, "", ""
	s.electionAt, s.goneLeader, s.failed = time.Time{}, "", 0
	for _, p := range s.peers {
		p.acked = 0
	}
	e.log.Info("won election", "term", s.term, "votes", len(s.grants), "of", s.electedSize, "wait", max(wait, 0))
	r.notifyNewLeader(e.cfg.ID, s.term)
	r.sendHeartbeat(now)
}

// becomeFollower leaves the leader and candidate roles.
func (r *run) becomeFollower(now time.Time, why string) {
	e, s := r.e, &r.e.st
	if s.role == Leader {
		e.log.Info("stepped down", "term", s.term, "why", why)
		if s.active {
			r.stopLeading()
		}
		s.leader = ""
	}
	for _, w := range r.resignWaiters {
		w <- nil // no longer leading: nothing left to hand over
	}
	r.resignWaiters = nil
	s.role = Follower
	s.round++
	s.preVote, s.waitTerm, s.handover, s.resigning = false, false, false, false
	s.leaseEnd = time.Time{}
	if s.electionAt.IsZero() && !e.cfg.Observer {
		s.electionAt = now.Add(r.roundTimeout() + randDuration(r.jitter()))
	}
}

// ack records that node p (nil: this node) acked heartbeat seq, and extends
// the lease to sendTime(s*)+LeaseTimeout, where s* is the highest seq a
// quorum acked (rule 4).
func (r *run) ack(p *peer, seq uint64, now time.Time) {
	e, s := r.e, &r.e.st
	if seq == 0 || seq > s.seq || s.seq-seq >= uint64(len(s.sentAt)) {
		return
	}
	if p != nil {
		if seq <= p.acked {
			return
		}
		p.acked = seq
	} else {
		s.selfAcked = max(s.selfAcked, seq)
	}
	q := r.quorum(now)
	// Count the nodes that acked at least seq, from the newest seq down; the
	// first seq that a quorum reached is s*.
	var acked [64]int
	count := func(a uint64) {
		if a > 0 && s.seq-a < uint64(len(acked)) {
			acked[s.seq-a]++
		}
	}
	count(s.selfAcked)
	for _, pp := range s.peers {
		if now.Sub(pp.heard) < e.cfg.PeerTimeout {
			count(pp.acked)
		}
	}
	total := 0
	for back := 0; back < len(acked); back++ {
		total += acked[back]
		if total >= q {
			star := s.seq - uint64(back)
			if end := s.sentAt[star%uint64(len(s.sentAt))].Add(e.cfg.LeaseTimeout); end.After(s.leaseEnd) {
				s.leaseEnd = end
			}
			break
		}
	}
	if !s.active && s.activeAt(now) && r.callbackReturned() {
		r.startLeading(now)
	}
}

// quorum is a majority of ClusterSize (strict) or of the live nodes
// (dynamic), this node included only while its messages echo back.
func (r *run) quorum(now time.Time) int {
	if r.e.cfg.ClusterSize > 0 {
		return r.e.cfg.ClusterSize/2 + 1
	}
	return r.groupSize(now)/2 + 1
}

// groupSize is the number of nodes a dynamic quorum is a majority of.
func (r *run) groupSize(now time.Time) int {
	e, s := r.e, &r.e.st
	n := max(r.countLive(now), s.size)
	if s.role == Leader {
		// A leader's quorum never drops below the one that elected it:
		// only a new election shrinks it.
		return max(n, s.electedSize)
	}
	// Followers do not hear each other's acks, so a follower's own count
	// can be short of the truth; the leader's last count is a floor for a
	// PeerTimeout, which is also how long its own entry would have counted.
	if s.knownLive > n && now.Sub(s.knownLiveAt) < e.cfg.PeerTimeout {
		n = s.knownLive
	}
	return n
}

// countLive counts the nodes heard within PeerTimeout, this node included
// while it is connected. A leader counts only the nodes that acked it: one
// that is heard but does not ack cannot hear the leader, so it hears nobody
// (there is one channel) and can vote for no rival; counting it would only
// make a healthy leader's lease lapse when nodes come back (their publisher
// reconnects before their subscriber does).
func (r *run) countLive(now time.Time) int {
	e, s := r.e, &r.e.st
	n := 0
	if r.selfLive(now) {
		n++
	}
	for _, p := range s.peers {
		if now.Sub(p.heard) < e.cfg.PeerTimeout && (s.role != Leader || p.acked > 0) {
			n++
		}
	}
	return n
}

func (r *run) selfLive(now time.Time) bool { return r.e.linkUp(now) }

// linkUp reports whether this node's link to Redis works both ways: its
// own broadcast echoed back, or, for a follower that only acks, a PUBLISH
// was answered and the subscription delivered something, both within
// PeerTimeout. The caller holds e.mu.
func (e *Elector) linkUp(now time.Time) bool {
	s, pt := &e.st, e.cfg.PeerTimeout
	if !s.subscribed {
		return false
	}
	if !s.selfEcho.IsZero() && now.Sub(s.selfEcho) < pt {
		return true
	}
	return now.Sub(e.stamp(&e.pubOK)) < pt && now.Sub(e.stamp(&e.recvAt)) < pt
}

// mark stores now in a timestamp that another goroutine reads with stamp.
func (e *Elector) mark(a *atomic.Int64) { a.Store(int64(time.Since(e.base))) }

// stamp reads a timestamp stored with mark (on the monotonic clock).
func (e *Elector) stamp(a *atomic.Int64) time.Time {
	return e.base.Add(time.Duration(a.Load()))
}

// roundTimeout is how long a candidate waits for its pre-votes or votes,
// and how long a voter gives the candidate it voted for.
func (r *run) roundTimeout() time.Duration {
	return 2 * r.e.cfg.HeartbeatInterval * time.Duration(min(r.backoff(), 4))
}

// jitter is the upper bound of the random delay before campaigning.
func (r *run) jitter() time.Duration {
	return r.e.cfg.ElectionJitter * time.Duration(r.backoff())
}

// backoff is 1, and after the second round in a row that elected nobody, 2,
// 4, then 8: when many nodes collide (a crash in a large group) or votes
// come back slower than a round (a CPU-starved machine), wider random
// delays and longer rounds let one candidate through, as Ethernet backs off
// after collisions. A single split vote, the usual case, changes nothing.
func (r *run) backoff() int {
	return 1 << min(max(r.e.st.failed-1, 0), 3)
}

// noticeStall treats a loop that did not run for over two heartbeat
// intervals (the process was paused, or starved of CPU) like a node back
// from an outage as far as its own judgement goes: whatever it did not hear
// meanwhile says nothing about its peers, so for a PeerTimeout it neither
// stands nor lets its count of live nodes shrink (see state.size). It
// still votes: it forgot nothing (its term, its vote, when it last heard a
// leader, all of which only make it refuse more), and a group of starved
// processes would otherwise have too few voters to elect anyone.
func (r *run) noticeStall(now time.Time) {
	e, s := r.e, &r.e.st
	if !r.lastTick.IsZero() && now.Sub(r.lastTick) > 2*e.cfg.HeartbeatInterval {
		e.log.Info("stalled; listening again before trusting the live count", "for", now.Sub(r.lastTick))
		s.stallUntil = now.Add(e.cfg.PeerTimeout)
	}
	r.lastTick = now
}

// tick does what is due at now: heartbeats, lease checks, elections.
func (r *run) tick(now time.Time) {
	e, s := r.e, &r.e.st
	// The group size may shrink only after a PeerTimeout of listening: a
	// node that was paused or disconnected keeps the size it knew, so it
	// cannot make a majority of itself alone.
	if live := r.countLive(now); now.Before(s.joinUntil) || now.Before(s.stallUntil) {
		s.size = max(s.size, live)
	} else {
		s.size = live
	}
	switch s.role {
	case Leader:
		if s.resigning {
			return
		}
		if s.active && !s.activeAt(now) {
			// The lease ran out (a pause, a cut, a slow quorum): stop
			// acting at once, but keep the term and heartbeat once more. A
			// quorum ack of a later heartbeat is a new lease, as safe as the
			// first by the same argument; after a short pause the followers
			// never noticed, and the leader does not change. Without acks
			// within two heartbeats it steps down, so that followers of a
			// leader that cannot hear them stop following it.
			e.log.Info("lease lapsed", "term", s.term, "quorum", r.quorum(now))
			r.stopLeading()
			s.lapsedAt = now
		}
		if !s.active {
			if s.activeAt(now) {
				if r.callbackReturned() {
					r.startLeading(now)
				}
			} else if now.Sub(s.inactiveSince()) >= 2*e.cfg.HeartbeatInterval {
				// Followers that still hear us (we may only be deaf) need
				// not wait out PeerTimeout for a leader without a lease: say
				// so, as a handover does, once the callback has returned.
				if r.callbackReturned() {
					r.publish(message{Type: msgResign, Term: s.term}, now, nil)
				}
				r.becomeFollower(now, "no quorum acked")
				return
			}
		}
		if now.Sub(s.lastSent) >= e.cfg.HeartbeatInterval {
			r.sendHeartbeat(now)
		}
	case Candidate:
		if !now.Before(s.roundEnd) {
			s.failed++
			e.log.Debug("round failed", "term", s.roundTerm, "grants", len(s.grants), "failed", s.failed)
			r.becomeFollower(now, "round timed out")
		}
	case Follower:
		silent := now.Sub(s.heardLead)
		// While its leader is heard, a follower only acks. Without one, or
		// once its leader has been silent for PeerTimeout/2, it broadcasts
		// every PeerTimeout/3, so that the others learn who is live before
		// anyone campaigns: each live node is heard at least twice in any
		// PeerTimeout. Not sooner and not more often: each broadcast goes to
		// every node, N² deliveries a round (in a group of 129, 165,000 a
		// second at every HeartbeatInterval, enough to starve a small
		// machine), and after a crash the fast path has usually elected a
		// new leader before PeerTimeout/2.
		if (s.leader == "" || silent >= e.cfg.PeerTimeout/2) && now.Sub(s.lastSent) >= e.cfg.PeerTimeout/3 {
			r.sendHeartbeat(now)
		}
		if s.leader != "" && silent >= e.cfg.HeartbeatInterval*3/2 && !s.numsubBusy &&
			now.Sub(s.numsubAt) >= e.cfg.HeartbeatInterval && s.goneLeader == "" {
			s.numsubBusy, s.numsubAt = true, now
			r.enqueue(job{kind: jobNumSub, key: r.e.nodeChannel(s.leader), id: s.leader})
		}
		if e.cfg.Observer || s.joinUntil.IsZero() || now.Before(s.joinUntil) || now.Before(s.stallUntil) || !r.selfLive(now) {
			return
		}
		gone := s.goneLeader != "" && s.goneLeader == s.leader
		if s.leader != "" && silent < e.cfg.PeerTimeout && !gone {
			return
		}
		if s.heardLead.IsZero() || silent >= e.cfg.PeerTimeout || gone {
			if s.electionAt.IsZero() {
				// The guard covers the spread of the moments the followers
				// stop hearing the leader: a vote request from the heir
				// must not reach one that still does.
				s.electionAt = now.Add(r.afterLeaderLost(r.jitter(), r.jitter()/5))
			}
			if !now.Before(s.electionAt) {
				r.campaign(now, false)
			}
		}
	}
}

// nextWake is when tick next may have something to do. Only future times
// count: a deadline already past that tick did not act on (its other
// conditions did not hold) is looked at again on the next event, and the
// loop wakes at least every HeartbeatInterval.
func (r *run) nextWake(now time.Time) time.Time {
	e, s := r.e, &r.e.st
	next := now.Add(e.cfg.HeartbeatInterval)
	at := func(t time.Time) {
		if t.After(now) && t.Before(next) {
			next = t
		}
	}
	at(s.lastSent.Add(e.cfg.HeartbeatInterval))
	switch s.role {
	case Leader:
		if s.active {
			at(s.leaseEnd)
		} else {
			at(s.notBefore)
			at(s.inactiveSince().Add(2 * e.cfg.HeartbeatInterval))
		}
	case Candidate:
		at(s.roundEnd)
	case Follower:
		at(s.electionAt)
		at(s.joinUntil)
		at(s.stallUntil)
		at(s.lastSent.Add(e.cfg.PeerTimeout / 3))
		if s.leader != "" {
			at(s.heardLead.Add(e.cfg.HeartbeatInterval * 3 / 2))
			at(s.heardLead.Add(e.cfg.PeerTimeout / 2))
			at(s.heardLead.Add(e.cfg.PeerTimeout))
			at(s.numsubAt.Add(e.cfg.HeartbeatInterval))
		}
	}
	return next
}

// sendHeartbeat broadcasts this node's heartbeat: the leader's carries a new
// seq and its count of live nodes; a follower's carries its ack of the last
// leader heartbeat.
func (r *run) sendHeartbeat(now time.Time) {
	s := &r.e.st
	m := message{Type: msgHeartbeat, Term: s.term}
	if s.role == Leader {
		s.seq++
		s.sentAt[s.seq%uint64(len(s.sentAt))] = now
		s.nodes = r.countLive(now)
		m.Flags, m.Seq, m.Live = flagLeader, s.seq, uint64(s.nodes)
		m.To = r.nameHeir(now)
	} else if s.leader != "" {
		m.Seq, m.To = s.leaderSeq, s.leader
	}
	r.publish(m, now, nil)
}

// startLeading starts the leader callback in its own goroutine.
func (r *run) startLeading(now time.Time) {
	e, s := r.e, &r.e.st
	s.active = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	r.lead.cancel, r.lead.done = cancel, done
	term := s.term
	e.log.Info("leading", "term", term, "after", now.Sub(s.electedAt))
	r.wg.Go(func() {
		defer close(done)
		if f := e.cfg.OnStartedLeading; f != nil {
			f(ctx, term)
		}
	})
}

// callbackReturned reports whether the last leadership is over: its
// OnStartedLeading returned and its OnStoppedLeading ran. Only then may a
// new OnStartedLeading begin, so the callbacks pair up in order.
func (r *run) callbackReturned() bool {
	if r.lead.stopped == nil {
		return true
	}
	select {
	case <-r.lead.stopped:
		return true
	default:
		return false
	}
}

// stopLeading cancels the leader callback and queues OnStoppedLeading for
// after it returned.
func (r *run) stopLeading() {
	s := &r.e.st
	s.active = false
	s.stepDowns++
	r.lead.cancel()
	done, stopped := r.lead.done, make(chan struct{})
	r.lead.stopped = stopped
	r.callback(func() {
		<-done
		if f := r.e.cfg.OnStoppedLeading; f != nil {
			f()
		}
		close(stopped)
		// Wake the loop: a lease that came back waits for this.
		r.send(event{kind: evCallbackReturned})
	})
}

func (r *run) notifyNewLeader(id string, term uint64) {
	if f := r.e.cfg.OnNewLeader; f != nil {
		r.callback(func() { f(id, term) })
	}
}

// callback queues f for the dispatcher goroutine.
func (r *run) callback(f func()) {
	r.cb.mu.Lock()
	r.cb.queue = append(r.cb.queue, f)
	r.cb.mu.Unlock()
	select {
	case r.cb.wake <- struct{}{}:
	default:
	}
}

// dispatcher runs the queued callbacks in order, outside any lock. At the
// end of Run it runs what is still queued, so every stop is reported.
func (r *run) dispatcher() {
	for {
		r.cb.mu.Lock()
		q := r.cb.queue
		r.cb.queue = nil
		r.cb.mu.Unlock()
		for _, f := range q {
			f()
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-r.cb.wake:
		case <-r.ctx.Done():
			r.cb.mu.Lock()
			q := r.cb.queue
			r.cb.queue = nil
			r.cb.mu.Unlock()
			if len(q) == 0 {
				return
			}
			for _, f := range q {
				f()
			}
		}
	}
}

// prunePeers forgets peers not heard for many PeerTimeouts.
func (r *run) prunePeers(now time.Time) {
	for id, p := range r.e.st.peers {
		if now.Sub(p.heard) > 10*r.e.cfg.PeerTimeout {
			delete(r.e.st.peers, id)
		}
	}
}

// randDuration is uniform in [0, d].
func randDuration(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(mrand.Int64N(int64(d) + 1))
}

// agoDuration converts a wire Ago, capped so it cannot overflow.
func agoDuration(micros uint64) time.Duration {
	const limit = uint64(time.Hour / time.Microsecond)
	return time.Duration(min(micros, limit)) * time.Microsecond
}

func grantFlag(granted bool) uint8 {
	if granted {
		return flagGranted
	}
	return 0
}

// ---------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------

// A message is, in order: magic byte, version, type, flags, then uvarints
// term, seq, ago, live, then the sender's incarnation (8 bytes little-endian), then
// from and to as uvarint-length-prefixed strings, and, when the group has a
// Secret, an HMAC-SHA256 of everything before it. Binary, so decoding one
// allocates only the two strings.
const (
	wireMagic   = 0xA7
	wireVersion = 1
	macSize     = sha256.Size
	// neverHeard is the Ago of a voter that never heard a leader.
	neverHeard = 1<<63 - 1
)

type msgType uint8

const (
	msgHeartbeat    msgType = iota + 1 // leader: Seq, Live, To=heir; follower: To=leader, Seq=ack
	msgPreVote                         // Term: proposed; To: gone leader, if any
	msgPreVoteReply                    // Term: proposed; Seq: voter's term; To: candidate
	msgVoteRequest                     // Term: stood for; To: gone leader, if any
	msgVote                            // Term; Seq: voter's term; To: candidate; Ago
	msgResign                          // Term; To: successor
	msgTypeEnd
)

// Flags.
const (
	flagLeader     = 1 << iota // heartbeat from the leader
	flagObserver               // the sender never stands
	flagGranted                // pre-vote or vote granted
	flagLeaderGone             // Redis says To's process is gone (rule 12)
	flagSigned                 // an HMAC follows

	knownFlags = flagLeader | flagObserver | flagGranted | flagLeaderGone | flagSigned
)

type message struct {
	Type  msgType
	Flags uint8
	Term  uint64
	Seq   uint64
	Ago   uint64 // vote: microseconds since the voter heard a leader
	Live  uint64 // leader heartbeat: live nodes the leader counts, itself included
	Inc   uint64
	From  string
	To    string
}

var (
	errShort     = errors.New("truncated message")
	errMagic     = errors.New("not a leader message")
	errVersion   = errors.New("unknown protocol version")
	errType      = errors.New("unknown message type")
	errTooLarge  = errors.New("message too large")
	errUnsigned  = errors.New("unsigned message")
	errSignature = errors.New("bad signature")
	errTrailing  = errors.New("trailing bytes")
	errField     = errors.New("bad field")
)

// appendMessage encodes m after b; with mac set it signs it.
func appendMessage(b []byte, m *message, mac hash.Hash) []byte {
	flags := m.Flags &^ flagSigned
	if mac != nil {
		flags |= flagSigned
	}
	start := len(b)
	b = append(b, wireMagic, wireVersion, byte(m.Type), flags)
	b = binary.AppendUvarint(b, m.Term)
	b = binary.AppendUvarint(b, m.Seq)
	b = binary.AppendUvarint(b, m.Ago)
	b = binary.AppendUvarint(b, m.Live)
	b = binary.LittleEndian.AppendUint64(b, m.Inc)
	b = binary.AppendUvarint(b, uint64(len(m.From)))
	b = append(b, m.From...)
	b = binary.AppendUvarint(b, uint64(len(m.To)))
	b = append(b, m.To...)
	if mac != nil {
		mac.Reset()
		mac.Write(b[start:])
		b = mac.Sum(b)
	}
	return b
}

// reader decodes messages for one goroutine.
type reader struct {
	mac   hash.Hash         // checks signatures; nil: no Secret, none checked
	names map[string]string // interns node IDs, bounded by maxPeers; may be nil
	sum   []byte            // scratch for the HMAC
}

func newReader(mac hash.Hash) *reader {
	return &reader{mac: mac, names: make(map[string]string), sum: make([]byte, 0, macSize)}
}

// decode parses b into m and checks its signature. Decoding a message from
// a known sender allocates nothing. It never panics on any input.
func (rd *reader) decode(b []byte, m *message) error {
	mac := rd.mac
	if len(b) > maxMessageSize {
		return errTooLarge
	}
	if len(b) < 4 {
		return errShort
	}
	if b[0] != wireMagic {
		return errMagic
	}
	if b[1] != wireVersion {
		return errVersion
	}
	m.Type, m.Flags = msgType(b[2]), b[3]
	if m.Type == 0 || m.Type >= msgTypeEnd {
		return errType
	}
	if m.Flags&^knownFlags != 0 {
		return errField
	}
	body := b
	if m.Flags&flagSigned != 0 {
		if len(b) < 4+macSize {
			return errShort
		}
		body = b[:len(b)-macSize]
		if mac != nil {
			mac.Reset()
			mac.Write(body)
			rd.sum = mac.Sum(rd.sum[:0])
			if !hmac.Equal(rd.sum, b[len(body):]) {
				return errSignature
			}
		}
	} else if mac != nil {
		return errUnsigned
	}
	d := decoder{b: body[4:], names: rd.names}
	m.Term = d.uvarint()
	m.Seq = d.uvarint()
	m.Ago = d.uvarint()
	m.Live = d.uvarint()
	m.Inc = d.uint64()
	m.From = d.str()
	m.To = d.str()
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return errTrailing
	}
	if m.From == "" {
		return errField
	}
	return nil
}

// decoder reads fields, remembering the first error.
type decoder struct {
	b     []byte
	err   error
	names map[string]string // interned strings, bounded by maxPeers
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	if n > 1 && d.b[n-1] == 0 {
		d.err = errField // not the shortest encoding: one message, one encoding
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > maxIDLen || n > uint64(len(d.b)) {
		d.err = errField
		return ""
	}
	raw := d.b[:n]
	d.b = d.b[n:]
	if s, ok := d.names[string(raw)]; ok {
		return s
	}
	s := string(raw)
	if d.names != nil && len(d.names) < maxPeers {
		d.names[s] = s
	}
	return s
}

func (e *Elector) newMAC() hash.Hash {
	if len(e.cfg.Secret) == 0 {
		return nil
	}
	return hmac.New(sha256.New, e.cfg.Secret)
}

// ---------------------------------------------------------------------------
// Redis plumbing
// ---------------------------------------------------------------------------

type jobKind int

// nextTermScript returns max(INCR key, local term + 1) and leaves the key
// there, so the key catches up with the nodes' terms after Redis lost its
// data, and fencing tokens keep growing when every node restarts later.
const nextTermScript = `local t = redis.call('INCR', KEYS[1])
local want = tonumber(ARGV[1]) + 1
if t < want then
  redis.call('SET', KEYS[1], want)
  t = want
end
return t`

const (
	jobPublish jobKind = iota
	jobIncr            // the next term from the term key; answers evTerm
	jobNumSub          // PUBSUB NUMSUB key; answers evNumSub
)

// job is work for the publisher goroutine.
type job struct {
	kind  jobKind
	buf   *[]byte // jobPublish: the encoded message, from bufPool
	key   string  // the channel, or the key of a command
	id    string
	round uint64
	term  uint64      // jobIncr: the local term
	done  func(error) // jobPublish: called when published or failed
}

// publish signs m and queues it for the group channel. done, if set,
// learns when it was published.
func (r *run) publish(m message, now time.Time, done func(error)) {
	r.e.st.lastSent = now
	r.publishTo(r.e.channel, m, done)
}

// publishTo signs m and queues it for one channel.
func (r *run) publishTo(channel string, m message, done func(error)) {
	e := r.e
	m.From, m.Inc = e.cfg.ID, e.inc
	if e.cfg.Observer {
		m.Flags |= flagObserver
	}
	buf := bufPool.Get().(*[]byte)
	*buf = appendMessage((*buf)[:0], &m, r.mac)
	r.enqueue(job{kind: jobPublish, key: channel, buf: buf, done: done})
}

// bufPool recycles encoded messages: redigo copies a PUBLISH's arguments
// into its own write buffer, so a message's bytes are free once sent.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }}

// nodeChannel is the channel only node id subscribes to.
func (e *Elector) nodeChannel(id string) string { return e.channel + ":node:" + id }

// enqueue hands j to the publisher without blocking the state machine:
// when the queue is full (Redis is stuck) the job is dropped, which the
// protocol tolerates as a lost message.
func (r *run) enqueue(j job) {
	select {
	case r.out <- j:
	default:
		r.e.nPubErr.Add(1)
		r.fail(j, errors.New("leader: publish queue full"))
	}
}

// fail answers a job that could not be done. The loop calls it too, and
// must not block on its own inbox, so answers go through a goroutine.
func (r *run) fail(j job, err error) {
	switch j.kind {
	case jobPublish:
		bufPool.Put(j.buf)
		if j.done != nil {
			j.done(err)
		}
	case jobIncr:
		r.wg.Go(func() { r.send(event{kind: evTerm, round: j.round, err: err}) })
	case jobNumSub:
		r.wg.Go(func() { r.send(event{kind: evNumSub, id: j.id, err: err}) })
	}
}

// publisher owns the connection for PUBLISH and commands, and redials it with
// capped backoff. It pipelines: it writes each command without waiting for
// the reply, which a reader goroutine per connection matches in order, so a
// slow or one-way link (a deaf node) does not hold later messages back.
// One goroutine writes, so messages leave in order.
func (r *run) publisher() {
	var pc *pipeline
	defer func() {
		if pc != nil {
			pc.close()
		}
	}()
	backoff := newBackoff()
	for {
		var j job
		select {
		case j = <-r.out:
		case <-r.ctx.Done():
			return
		}
		if pc != nil && pc.dead() {
			pc.close()
			pc = nil
			backoff.failed()
		}
		if pc == nil {
			if !backoff.ready() {
				r.fail(j, errors.New("leader: redis unavailable"))
				continue
			}
			c, err := r.dial()
			if err != nil {
				backoff.failed()
				r.noteRedisError("publisher dial", err)
				r.fail(j, err)
				continue
			}
			backoff.reset()
			pc = r.startPipeline(c)
		}
		if err := pc.write(j); err != nil {
			r.e.nPubErr.Add(1)
			r.noteRedisError("publish", err)
			r.fail(j, err)
			pc.close()
			pc = nil
			backoff.failed()
		}
	}
}

// pipeline is one publishing connection: the publisher writes, a reader
// goroutine reads the replies in order.
type pipeline struct {
	c       redis.Conn
	pending chan job      // written, reply not yet read; in order
	failed  chan struct{} // closed by the reader when the connection died
	reader  sync.WaitGroup
}

func (r *run) startPipeline(c redis.Conn) *pipeline {
	e := r.e
	pc := &pipeline{c: c, pending: make(chan job, cap(r.out)), failed: make(chan struct{})}
	// Writes never wait for replies, so the reply timeout only decides when
	// a silent connection is dead: as for the subscriber, PeerTimeout.
	timeout := e.cfg.PeerTimeout
	pc.reader.Go(func() {
		dead := false
		for j := range pc.pending {
			if dead {
				r.fail(j, errors.New("leader: connection lost"))
				continue
			}
			v, err := redis.ReceiveWithTimeout(c, timeout)
			r.reply(j, v, err)
			if err != nil && c.Err() != nil {
				// redigo closed the connection (a timeout included): fail
				// what is still pending, and let the publisher redial.
				e.nPubErr.Add(1)
				r.noteRedisError("publish", err)
				dead = true
				close(pc.failed)
			}
		}
	})
	return pc
}

// write sends j's command without waiting for its reply.
func (pc *pipeline) write(j job) error {
	var err error
	switch j.kind {
	case jobPublish:
		err = pc.c.Send("PUBLISH", j.key, *j.buf)
	case jobIncr:
		err = pc.c.Send("EVAL", nextTermScript, 1, j.key, j.term)
	case jobNumSub:
		err = pc.c.Send("PUBSUB", "NUMSUB", j.key)
	}
	if err == nil {
		err = pc.c.Flush()
	}
	if err != nil {
		return err
	}
	select {
	case pc.pending <- j:
		return nil
	default:
		// As many replies owed as the queue holds: the link is stuck.
		return errors.New("leader: too many replies outstanding")
	}
}

func (pc *pipeline) dead() bool {
	select {
	case <-pc.failed:
		return true
	default:
		return false
	}
}

// close closes the connection (which unblocks the reader), and waits for
// the reader to fail what was still pending.
func (pc *pipeline) close() {
	pc.c.Close()
	close(pc.pending)
	pc.reader.Wait()
}

// reply hands the reply to a written job to whoever waits for it.
func (r *run) reply(j job, v any, err error) {
	e := r.e
	switch j.kind {
	case jobPublish:
		bufPool.Put(j.buf)
		if err == nil {
			e.nOut.Add(1)
			e.mark(&e.pubOK)
		}
		if j.done != nil {
			j.done(err)
		}
	case jobIncr:
		n, err := redis.Int64(v, err)
		r.send(event{kind: evTerm, round: j.round, n: n, err: err})
	case jobNumSub:
		var n int64
		vs, err := redis.Values(v, err)
		if err == nil && len(vs) == 2 {
			n, err = redis.Int64(vs[1], nil)
		} else if err == nil {
			err = errors.New("leader: unexpected PUBSUB NUMSUB reply")
		}
		r.send(event{kind: evNumSub, id: j.id, n: n, err: err})
	}
}

// subscriber owns the subscribed connection: it receives, decodes and
// verifies messages and hands them to the loop. It pings on a timer and
// treats PeerTimeout without any reply as a dead connection (redigo closes a
// connection on any receive error), then redials with capped backoff.
func (r *run) subscriber() {
	e := r.e
	rd := newReader(e.newMAC())
	backoff := newBackoff()
	first := true
	for r.ctx.Err() == nil {
		if !first {
			if !backoff.wait(r.ctx) {
				return
			}
		}
		c, err := r.dial()
		if err != nil {
			backoff.failed()
			r.noteRedisError("subscriber dial", err)
			first = false
			continue
		}
		if !first {
			e.nReconnects.Add(1)
		}
		first = false
		if r.receive(c, rd) {
			backoff.reset()
		} else {
			backoff.failed()
		}
	}
}

// receive runs one subscribed connection until it fails or Run ends. It
// reports whether the subscription was established.
func (r *run) receive(c redis.Conn, rd *reader) (subscribed bool) {
	e := r.e
	psc := redis.PubSubConn{Conn: c}
	stop := make(chan struct{})
	var pinger sync.WaitGroup
	defer func() {
		close(stop)
		c.Close()
		pinger.Wait()
		if subscribed {
			r.send(event{kind: evDisconnected, err: c.Err()})
		}
	}()
	if err := psc.Subscribe(e.channel, e.self); err != nil {
		r.noteRedisError("subscribe", handshakeHint(err))
		return false
	}
	pinger.Go(func() {
		t := time.NewTicker(e.cfg.HeartbeatInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				// Ping only a quiet connection: in a healthy group every
				// node hears something each HeartbeatInterval (a follower
				// the leader's heartbeat, the leader its acks), which
				// proves the link as well as a PONG, and a PING per node
				// per interval would double Redis's work and wake every
				// node twice as often.
				if time.Since(e.stamp(&e.recvAt)) < e.cfg.HeartbeatInterval {
					continue
				}
				if psc.Ping("") != nil {
					return
				}
			case <-stop:
				return
			case <-r.ctx.Done():
				c.Close() // unblocks the receive below
				return
			}
		}
	})
	confirmed := 0
	for {
		v := psc.ReceiveWithTimeout(e.cfg.PeerTimeout)
		if _, failed := v.(error); !failed {
			e.mark(&e.recvAt)
		}
		switch v := v.(type) {
		case redis.Message:
			at := time.Now()
			var m message
			if err := rd.decode(v.Data, &m); err != nil {
				e.nDropped.Add(1)
				continue
			}
			e.nIn.Add(1)
			select {
			case r.events <- event{kind: evMessage, msg: m, at: at}:
			default:
				e.nDropped.Add(1) // the state machine is behind: shed load
			}
		case redis.Subscription:
			if v.Kind == "subscribe" {
				confirmed++
				if confirmed == 2 && !subscribed {
					subscribed = true
					r.send(event{kind: evSubscribed})
				}
			}
		case redis.Pong:
		case error:
			if r.ctx.Err() == nil {
				r.noteRedisError("receive", v)
			}
			return subscribed
		}
	}
}

// dial opens a Redis connection with Config.Dial or Addr.
func (r *run) dial() (redis.Conn, error) {
	e := r.e
	ctx, cancel := context.WithTimeout(r.ctx, max(e.cfg.PeerTimeout, time.Second))
	defer cancel()
	var c redis.Conn
	var err error
	if e.cfg.Dial != nil {
		c, err = e.cfg.Dial(ctx)
	} else {
		c, err = redis.DialContext(ctx, "tcp", e.cfg.Addr,
			redis.DialReadTimeout(e.cfg.PeerTimeout),
			redis.DialWriteTimeout(e.cfg.PeerTimeout))
	}
	return c, handshakeHint(err)
}

// handshakeHint explains an EOF on a fresh connection: a bare "EOF" is what
// a plaintext client gets from a TLS-only port, which says nothing.
func handshakeHint(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w (the server closed a new connection: a TLS port dialled without TLS, or not Redis?)", err)
	}
	return err
}

// noteRedisError logs a Redis failure and keeps it for Status.
func (r *run) noteRedisError(op string, err error) {
	e := r.e
	if r.ctx.Err() != nil {
		return
	}
	e.log.Warn("redis error", "op", op, "err", err)
	e.mu.Lock()
	e.st.lastRedisErr = op + ": " + err.Error()
	e.mu.Unlock()
}

// backoff is capped exponential backoff with full jitter.
type backoff struct {
	next  time.Time
	delay time.Duration
}

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) reset() { b.delay, b.next = 0, time.Time{} }

func (b *backoff) failed() {
	b.delay = min(max(2*b.delay, 50*time.Millisecond), maxBackoff)
	b.next = time.Now().Add(b.delay/2 + randDuration(b.delay/2))
}

func (b *backoff) ready() bool { return !time.Now().Before(b.next) }

// wait sleeps until the next attempt; false if ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	d := time.Until(b.next)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
