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
//   - Terms are only as durable as Redis's copy of the group's term key.
//     Redis replicates asynchronously, and a restart without persistence or
//     a failover to a lagging replica can lose the key. A running node that
//     knows a newer term then pushes the key past it, and strict mode keeps
//     one leader per term while a majority of the nodes keeps running; if
//     most nodes restarted too (in dynamic mode: whenever the key is lost),
//     a term number can repeat.
//   - The leader's callback is cancelled when the lease ends; a callback that
//     ignores its context keeps running. Fence the writes it makes.
//   - Without Secret, any client that can PUBLISH on the group's channel can
//     forge votes and handovers, and so break every guarantee above. Secret
//     makes nodes drop what a client without the key publishes, and what it
//     copies from another channel or replays; Redis ACLs and TLS protect the
//     channel itself. In dynamic mode every subscriber of the group's
//     channel counts towards the quorum, so a stray subscriber can cost
//     availability, never safety.
//
// # Example
//
// A singleton job that runs on one instance at a time, with the term as
// its fencing token:
//
//	e, err := leader.New(leader.Config{
//		Addr:  "127.0.0.1:6379",
//		Group: "invoice-scheduler",
//		OnStartedLeading: func(ctx context.Context, term uint64) {
//			// Runs while this node leads; ctx ends when the lease does.
//			for ctx.Err() == nil {
//				runOnce(ctx, term) // pass term to what you write to
//			}
//		},
//	})
//	if err != nil {
//		log.Fatal(err) // names the bad field and the fix
//	}
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//	defer stop()
//	_ = e.Run(ctx) // blocks; when ctx ends a leader hands over, then Run returns
package leader

import (
	"container/heap"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Version is the version of this file, for the copies of it that vendor
// it. It changes with every release that changes behaviour or the wire
// format.
const Version = "0.7.3"

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
	// maxPriority bounds Config.Priority.
	maxPriority = 1000
	// maxBackoff caps the reconnect backoff of every group (see backoffCap).
	maxBackoff = 2 * time.Second
	// maxQueued bounds the commands one Elector may have waiting for its
	// connection, so that on a Link a group that is stuck (or floods)
	// cannot crowd the others out; sharedQueue is a Link's whole queue.
	maxQueued   = 256
	sharedQueue = 8192
)

// Config configures an Elector. Zero values mean the documented default.
type Config struct {
	// Addr is the Redis address, host:port. Default "127.0.0.1:6379".
	// Unused when Dial is set. New refuses a URL or credentials here (they
	// would end up in logs): set Dial for a user, a password, a DB or TLS.
	Addr string

	// Link, when set, makes the Elector share the Link's two connections
	// with the other Electors of this process on it (see the Link type),
	// instead of opening two of its own. Addr, Dial, Sentinel and Cluster
	// must then be unset: the Link's are used. DB must be 0 or the Link's.
	Link *Link

	// Dial, when set, opens every Redis connection the Elector uses (one
	// subscriber, one for publishing and commands). Use it for TLS, AUTH or
	// ACL users, Sentinel (dial the current primary), or anything else redigo
	// can dial. The context carries the dial deadline. The returned
	// connection should support redis.ConnWithTimeout (redigo's own do).
	Dial func(ctx context.Context) (redis.Conn, error)

	// Sentinel, when set, finds the primary through Redis Sentinel instead
	// of Addr (see the Sentinel type). It needs strict mode (ClusterSize >
	// 0): New refuses dynamic mode with it.
	Sentinel *Sentinel

	// Cluster, when set, runs the group on a Redis Cluster instead of Addr
	// (see the Cluster type). It needs strict mode (ClusterSize > 0) and
	// DB 0.
	Cluster *Cluster

	// Group names the election. Each group on one Redis is independent.
	// Default "default". Its channel is "leader:{Group}" ("leader:dbN:{Group}"
	// on DB N > 0), and its term key that channel's name plus ":term". The
	// braces make the group name the hash tag of all of them, so that in a
	// Redis Cluster they share one slot; a Group must not contain { or }.
	Group string

	// DB is the Redis logical database of the group's term key. Pub/sub
	// ignores the DB (a message published on DB 1 reaches subscribers on
	// DB 2), so the channels carry it too: groups of one name on two DBs
	// of one server (staging and production, say) stay apart. With Addr
	// the Elector selects DB itself; with Dial it checks every connection
	// Dial returns (CLIENT INFO), and Run returns an error if one is on
	// another DB. Default 0.
	DB int

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

	// PeerTimeout is how long a node goes without hearing a peer before it
	// treats it as gone. A silent leader is given up on sooner, half-way
	// between LeaseTimeout and PeerTimeout (400ms by default): its lease
	// has ended by then, with a margin for clock rates, and only then do
	// its followers vote for another. Default 500ms.
	PeerTimeout time.Duration

	// ElectionJitter is the upper bound of the random delay before a node
	// campaigns after its leader timed out; re-drawn every time, it keeps
	// nodes from splitting the vote. Default 150ms.
	ElectionJitter time.Duration

	// Scale multiplies every timing above (HeartbeatInterval, LeaseTimeout,
	// PeerTimeout, ElectionJitter; the defaults or what is set) by one
	// factor, so their ratios, and so the safety margins, stay as they are.
	// 0 means 1. On a loaded host or a container with a CPU limit, where
	// the defaults (100ms/300ms/500ms) see pauses that cost a failover,
	// Scale 5 gives 500ms/1.5s/2.5s/750ms: a failover then takes about 5
	// times as long, and a pause of under about 2s costs none.
	Scale float64

	// ClusterSize selects the quorum. 0 (dynamic mode): a majority of the live
	// nodes this node sees; a lone node elects itself. >0 (strict mode): a
	// majority of ClusterSize, whatever is live, so a minority never leads.
	ClusterSize int

	// Observer nodes vote and ack but never stand for election.
	Observer bool

	// Priority makes a node preferred as leader: a leader that has heard a
	// node of higher Priority without a break for PriorityAfter (and has
	// its acks) hands leadership over to it, as TransferTo does, with no
	// lease to wait out and one new term. It never disrupts otherwise: the
	// election itself ignores Priority, nodes of equal Priority never hand
	// over, and a leader that tried waits PriorityAfter, then twice as
	// long after each further try, until it sees a preferred node lead.
	// Default 0; must be at most 1000.
	Priority int

	// PriorityAfter is how long a node of higher Priority must have been
	// heard without a break before the leader hands over to it: a node
	// that flaps must not pull leadership back and forth. Default 10
	// PeerTimeouts (5s).
	PriorityAfter time.Duration

	// Secret, when set, makes every message HMAC-SHA256 signed, over the
	// message and the channel it is published on (so the group and the DB):
	// a signed message counts only where it was sent. Messages that cannot
	// be verified (unsigned, signed with another key, or signed when this
	// node has no Secret) are dropped, counted in Status.Unverified, and
	// logged as a warning. Every node of a group must accept the key every
	// other node signs with; see PreviousSecret for a rotation.
	Secret []byte

	// PreviousSecret, set with Secret during a key rotation, is the key
	// being retired: this node signs every message with both keys and
	// accepts either. A rotation with no downtime is three rolling
	// restarts' worth of configuration, one process at a time: all nodes on
	// Secret=old; then each on Secret=new and PreviousSecret=old; then each
	// on Secret=new alone. At every moment each node accepts what every
	// other node signs.
	PreviousSecret []byte

	// Logger receives the Elector's logs. Default: discard.
	Logger *slog.Logger

	// OnStartedLeading runs in its own goroutine when this node becomes the
	// active leader of term (its fencing token), at most once per term. ctx
	// is cancelled the moment the lease is lost (by a timer of its own, even
	// if the Elector's loop runs late), on Resign, and when Run's context
	// ends, and context.Cause(ctx) says which: ErrLeaseLost, ErrHandedOver,
	// ErrShutdown or ErrSuperseded. A leadership is one lease: once it is
	// lost the node is a follower, and OnStartedLeading runs again only if
	// it wins a later term, so per-leadership setup in it runs once per term.
	// FromContext(ctx) returns the Elector. It should return promptly once
	// ctx ends: Resign waits for it before handing over, and Run does not
	// return before it has. A new call never starts while an earlier one
	// runs or before its OnStoppedLeading.
	OnStartedLeading func(ctx context.Context, term uint64)

	// OnStoppedLeading is called after OnStartedLeading has returned, once for
	// each call of OnStartedLeading, and never otherwise, with the cause
	// that ended the leadership (as context.Cause of its ctx).
	OnStoppedLeading func(cause error)

	// OnNewLeader is called when the leader this node follows changes,
	// including to this node itself, and with id "" when this node no longer
	// has a leader (it was silent for PeerTimeout, Redis said it is gone, it
	// resigned, or a higher term began; the log says which), with the term
	// this node is in. Leader and Status report the same. Callbacks other
	// than OnStartedLeading run one at a time, in order, on one goroutine
	// of the Elector's, never while the Elector holds a lock; a slow
	// callback delays later callbacks, never heartbeats.
	OnNewLeader func(id string, term uint64)
}

// Sentinel finds the primary of a Redis deployment run by Sentinel. For
// every connection the Elector asks the sentinels (SENTINEL MASTER), takes
// the answer with the highest config epoch (right after a switch they may
// disagree for a second), dials that address and checks with ROLE that it
// is the primary. It also watches the sentinels' +switch-master: on a
// switch of MasterName it closes both of its connections at once and
// redials the new primary without backoff, rather than stay on the old
// one, which stays writable (a separate pub/sub domain) for seconds after
// the switch until Sentinel demotes it.
//
// The watch costs one connection per sentinel, besides the Elector's two.
//
// What Sentinel cannot promise: Redis replicates asynchronously, so the new
// primary may lack the newest term key; the nodes push it past the terms
// they know (see Terms in the package doc).
type Sentinel struct {
	// Addrs are the sentinels, host:port.
	Addrs []string
	// MasterName is the name the sentinels monitor the primary by.
	MasterName string
	// Dial, when set, opens the connections to the sentinels (sentinel
	// true) and to the primary: for TLS, passwords or ACL users. It should
	// select Config.DB on the primary. Default: plain TCP, with Config.DB
	// selected on the primary.
	Dial func(ctx context.Context, addr string, sentinel bool) (redis.Conn, error)
}

// Cluster runs a group on a Redis Cluster. The group's channels and term
// key share one hash slot (the group name is their hash tag), so one shard
// holds all of the group's state. The Elector computes the slot, asks the
// nodes which primary serves it (CLUSTER SLOTS), puts both of its
// connections there and checks with ROLE that it is a primary.
//
// It uses sharded pub/sub (SSUBSCRIBE, SPUBLISH, PUBSUB SHARDNUMSUB): a
// message stays in its shard (one cluster-bus message per replica of the
// shard) instead of reaching every node of the cluster, and the subscriber
// count of the crash fast path is the slot owner's, where every node of
// the group subscribes. (Classic PUBSUB NUMSUB counts only the node it is
// asked on.) A MOVED, ASK or CLUSTERDOWN reply, or an unsolicited
// sunsubscribe (a failover or a resharding moved the slot), makes it
// resolve the slot again and redial both connections, at once to the
// address MOVED names.
//
// What a Cluster cannot promise: replication is asynchronous, so a
// promoted replica may lack the newest term key; the nodes push it past the
// terms they know (see Terms in the package doc).
type Cluster struct {
	// Addrs are seed nodes, host:port: any nodes of the cluster. Once
	// known, the nodes the cluster names are asked too.
	Addrs []string
	// Dial, when set, opens every connection, to the seeds and to the
	// slot's primary: for TLS, passwords or ACL users. Default: plain TCP.
	Dial func(ctx context.Context, addr string) (redis.Conn, error)
}

// A Link is a pair of Redis connections, one subscribed and one for
// publishing and commands, that the Electors of one process share: a
// process that runs an Elector for each of 1000 groups keeps 2
// connections to Redis instead of 2000, and Redis delivers each message
// to the process once, however many of its Electors listen. Set
// Config.Link of each of them to the same Link. The Link connects when
// the first of its Electors starts Run, and closes when the last one's Run
// returns; its zero value (with Addr) is ready to use, and it must not be
// copied once used.
//
// Only the transport is shared. Each Elector keeps its own state machine,
// loop, callbacks, Secret, replay window and counters, and a failure that
// belongs to one group stays with it: a SUBSCRIBE or PUBLISH that an ACL
// refuses for the group's channels, a full inbox, a slow callback, a
// group that floods (each Elector may have at most 256 commands queued). A
// failure of the connection itself (Redis down, a wrong password, a server
// that is not Redis) is all of theirs, as it would be with connections of
// their own to the same Redis: Run returns its error on every Elector of
// the Link.
//
// The connection's receive timeout and pings follow the smallest
// PeerTimeout and HeartbeatInterval of the Electors that joined.
//
// On a Redis Cluster the Link keeps a pair of connections per primary
// that serves one of its groups' slots, so a process has at most two per
// shard. When a group's slot moves (MOVED, an unasked sunsubscribe, a
// primary that is gone or demoted) that group's Elector alone moves to the
// new primary's pair, after one round of CLUSTER SLOTS shared by all the
// Electors that move at once.
type Link struct {
	// Addr is the Redis address, host:port. Default "127.0.0.1:6379".
	// Unused when Dial or Sentinel is set. As with Config.Addr, New
	// refuses a URL or credentials here.
	Addr string
	// Dial, when set, opens the Link's connections, as Config.Dial does.
	Dial func(ctx context.Context) (redis.Conn, error)
	// Sentinel, when set, finds the primary as Config.Sentinel does; every
	// Elector on the Link then needs strict mode.
	Sentinel *Sentinel
	// Cluster, when set, runs the Link's groups on a Redis Cluster, as
	// Config.Cluster does (strict mode, DB 0).
	Cluster *Cluster
	// DB is the logical database of the term keys, as Config.DB.
	DB int
	// Logger receives the records about the shared connections (failed
	// dials, lost connections, Sentinel switches), once for all of its
	// Electors; what happens in a group goes to that Elector's Logger.
	// Default: discard.
	Logger *slog.Logger

	mu sync.Mutex // guards on, and the links and users in it
	on *linkSet   // the connections, while any Elector on the Link runs
}

// linkSet is a Link's connections while it runs: one link, or on a Cluster
// one per primary, by address.
type linkSet struct {
	lk       *Link
	users    int
	links    map[string]*link
	resolver *link          // on a Cluster: asks CLUSTER SLOTS for the Electors that move
	wg       sync.WaitGroup // the moves under way
	closed   bool           // the last Elector left: no more moves
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

// Why a leadership ended: context.Cause of the context OnStartedLeading
// gets, and the argument of OnStoppedLeading, is one of these.
var (
	// ErrLeaseLost: no quorum acked a heartbeat in time (this process was
	// paused or starved, or cut off from Redis, or too few nodes answer).
	ErrLeaseLost = errors.New("leader: lease lost")
	// ErrHandedOver: Resign or TransferTo handed leadership over, or this
	// node gave way to a node of higher Priority.
	ErrHandedOver = errors.New("leader: handed over")
	// ErrShutdown: Run's context ended, or Run stopped on a permanent error.
	ErrShutdown = errors.New("leader: shutting down")
	// ErrSuperseded: this node saw a higher term, or another leader of its
	// own term (two processes with one ID, or forged votes).
	ErrSuperseded = errors.New("leader: another leader seen")
)

// stopCauses indexes the step-down counters of Status.
var stopCauses = [...]error{ErrLeaseLost, ErrHandedOver, ErrShutdown, ErrSuperseded}

// withDefaults returns cfg with its zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if l := cfg.Link; l != nil {
		// New checked that these are the Link's to set (see linkClash).
		cfg.Addr, cfg.Dial, cfg.Sentinel, cfg.Cluster, cfg.DB = l.Addr, l.Dial, l.Sentinel, l.Cluster, l.DB
	}
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
	if cfg.Scale > 0 && cfg.Scale != 1 {
		for _, d := range []*time.Duration{&cfg.HeartbeatInterval, &cfg.LeaseTimeout, &cfg.PeerTimeout, &cfg.ElectionJitter} {
			*d = time.Duration(float64(*d) * cfg.Scale)
		}
	}
	if cfg.PriorityAfter == 0 {
		cfg.PriorityAfter = 10 * cfg.PeerTimeout
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
	if cfg.DB < 0 {
		bad("DB (%d) must not be negative", cfg.DB)
	}
	if !(cfg.Scale == 0 || cfg.Scale >= 0.1 && cfg.Scale <= 1000) {
		bad("Scale (%v) must be 0 (for 1) or between 0.1 and 1000", cfg.Scale)
	}
	if cfg.Priority < 0 || cfg.Priority > maxPriority {
		bad("Priority (%d) must be between 0 and %d", cfg.Priority, maxPriority)
	}
	if cfg.PriorityAfter < 0 {
		bad("PriorityAfter (%v) must not be negative: use 0 for the default", cfg.PriorityAfter)
	}
	switch {
	case len(cfg.PreviousSecret) > 0 && len(cfg.Secret) == 0:
		bad("PreviousSecret is set without Secret: during a rotation Secret is the new key and PreviousSecret the old one")
	case len(cfg.PreviousSecret) > 0 && hmac.Equal(cfg.PreviousSecret, cfg.Secret):
		bad("PreviousSecret is the same as Secret: leave it empty when no rotation is under way")
	}
	if err := checkName("Group", cfg.Group); err != nil {
		errs = append(errs, err)
	}
	if err := checkName("ID", cfg.ID); err != nil {
		errs = append(errs, err)
	}
	if sn := cfg.Sentinel; sn != nil {
		switch {
		case len(sn.Addrs) == 0:
			bad("Sentinel.Addrs is empty: give the host:port of every sentinel")
		case sn.MasterName == "":
			bad("Sentinel.MasterName is empty: give the name the sentinels monitor the primary by")
		case cfg.Dial != nil:
			bad("Sentinel and Dial are both set: for TLS or a password with Sentinel, set Sentinel.Dial")
		case cfg.ClusterSize == 0:
			// A node that redials the new primary while the others are
			// still on the old one (writable for seconds after the switch)
			// is alone there: in dynamic mode it would win alone, and both
			// sides would INCR their own copy of the term key.
			bad("Sentinel needs strict mode: set ClusterSize to the number of nodes; in dynamic mode a node that moves to the new primary first would elect itself while the others are still on the old one")
		}
	}
	if cl := cfg.Cluster; cl != nil {
		switch {
		case len(cl.Addrs) == 0:
			bad("Cluster.Addrs is empty: give the host:port of at least one node of the cluster")
		case cfg.Dial != nil || cfg.Sentinel != nil:
			bad("Cluster cannot be combined with Dial or Sentinel: for TLS or a password with Cluster, set Cluster.Dial")
		case cfg.DB != 0:
			bad("DB (%d) must be 0 with Cluster: a Redis Cluster has only DB 0", cfg.DB)
		case cfg.ClusterSize == 0:
			// As with Sentinel: after a failover the old primary serves
			// its clients for a while, a separate pub/sub domain.
			bad("Cluster needs strict mode: set ClusterSize to the number of nodes; in dynamic mode a node that moves to the slot's new primary first would elect itself while the others are still on the old one")
		}
	}
	switch {
	case cfg.Dial != nil || cfg.Sentinel != nil || cfg.Cluster != nil:
	case strings.Contains(cfg.Addr, "://") || strings.Contains(cfg.Addr, "@"):
		// Never echo it: it may hold a password, and errors get logged.
		bad("Addr must be host:port, not a URL or user:password@host: for a user, a password, a DB or TLS, set Dial (e.g. with redis.DialURLContext)")
	case !strings.Contains(cfg.Addr, ":"):
		bad("Addr (%q) must be host:port, e.g. 127.0.0.1:6379", cfg.Addr)
	}
	return errors.Join(errs...)
}

// linkClash checks, before the defaults are filled in, that an Elector on
// a Link leaves the connection to it.
func (cfg Config) linkClash() error {
	l := cfg.Link
	switch {
	case l == nil:
		return nil
	case cfg.Addr != "" || cfg.Dial != nil || cfg.Sentinel != nil || cfg.Cluster != nil:
		return errors.New("leader: Link is set, and so is Addr, Dial, Sentinel or Cluster: an Elector on a Link uses the Link's connections; set them on the Link")
	case cfg.DB != 0 && cfg.DB != l.DB:
		return fmt.Errorf("leader: DB (%d) is not the Link's DB (%d): the term key lives where the Link's connection is; leave DB 0 or set it to the Link's", cfg.DB, l.DB)
	}
	return nil
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
	if field == "Group" && strings.ContainsAny(v, "{}") {
		return fmt.Errorf("leader: Group (%q) must not contain { or }: the group name is the hash tag of the group's channels and term key, which keeps them in one slot of a Redis Cluster", v)
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

// MarshalText encodes s as its name, so a Status marshals to readable JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a name that MarshalText wrote.
func (s *State) UnmarshalText(b []byte) error {
	for _, v := range []State{Follower, Candidate, Leader} {
		if v.String() == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("leader: unknown state %q", b)
}

// Status is a snapshot of an Elector, for metrics, health checks and tests.
// It marshals to JSON with State as its name ("follower", "candidate",
// "leader") and durations (LeaseLeft, LastElection, LastLeaderless) in
// nanoseconds.
type Status struct {
	ID        string
	State     State
	Term      uint64
	Leader    string        // the leader this node follows; "" when none
	Heir      string        // the node the leader names to stand first if it is lost; "" when none
	Active    bool          // IsLeader() at the time of the snapshot
	LeaseLeft time.Duration // time left on the lease; 0 unless Active
	LivePeers []string      // other nodes heard within PeerTimeout, sorted; a follower hears only the leader while it is healthy, and in strict mode only candidates without one
	Nodes     int           // live nodes in the group, this one included: the leader's count, as the leader last reported it
	Connected bool          // subscribed, and this node's own messages echo back

	Elections      uint64        // elections this node started (after a pre-vote)
	TermKeyErrors  uint64        // failed writes of the term key; each ended an election round unelected
	StepDowns      uint64        // times this node stopped being the active leader, for any of the causes below
	LeasesLost     uint64        // step-downs with ErrLeaseLost
	HandOvers      uint64        // step-downs with ErrHandedOver
	Shutdowns      uint64        // step-downs with ErrShutdown
	Superseded     uint64        // step-downs with ErrSuperseded
	LastElection   time.Duration // how long this node's last won election took, from the start of its winning round to the win
	LastLeaderless time.Duration // how long this node last went without a leader, from losing one to following (or being) the next: a failover as this node saw it
	MessagesIn     uint64        // valid messages received
	MessagesOut    uint64        // messages published
	Dropped        uint64        // messages dropped as malformed, oversized, from a duplicate ID, or because the node was behind
	Unverified     uint64        // messages dropped because they could not be verified: another Secret, no Secret, a copy from another group or channel, another wire version
	Replays        uint64        // verified messages dropped as a repeat of one already seen, or as delivered more than PeerTimeout after they were sent
	Reconnects     uint64        // Redis (re)connections after the first
	Redirects      uint64        // Redis Cluster: MOVED, ASK and CLUSTERDOWN replies and unasked sunsubscribes, each followed by a redial
	PublishErrors  uint64        // failed PUBLISH or commands
	LastRedisError string        // the last Redis error seen, "" if none
}

// Elector takes part in the election of one group. Create it with New and
// call Run. Its methods are safe for concurrent use.
type Elector struct {
	cfg Config
	log *slog.Logger

	running atomic.Bool
	cmds    chan command  // to the loop, while Run runs
	done    chan struct{} // closed when Run returns

	mu sync.Mutex // guards c; held only for a step of c, never around user code or I/O
	c  core

	// counters of the Redis goroutines, read by Status without the lock
	nIn, nOut, nDropped, nReconnects, nPubErr, nUnverified, nReplays, nRedirects atomic.Uint64

	base time.Time            // origin of the stamps of its messages (monotonic)
	lk   atomic.Pointer[link] // the connections, once Run started
	// local holds the IDs of the Electors of this group on the same Link
	// (the same process), nil when there are none; see pickSuccessor.
	local atomic.Pointer[map[string]bool]
}

// New checks cfg, fills in defaults, and returns an Elector ready to Run.
// The error names each bad field and how to fix it.
func New(cfg Config) (*Elector, error) {
	clash := cfg.linkClash()
	cfg = cfg.withDefaults()
	if err := errors.Join(clash, cfg.validate()); err != nil {
		return nil, err
	}
	var seed [24]byte
	_, _ = rand.Read(seed[:])
	e := &Elector{
		cfg:  cfg,
		log:  cfg.Logger.With("node", cfg.ID, "group", cfg.Group),
		cmds: make(chan command),
		done: make(chan struct{}),
		base: time.Now(),
	}
	inc := binary.LittleEndian.Uint64(seed[:8]) | 1
	rnd := mrand.New(mrand.NewPCG(binary.LittleEndian.Uint64(seed[8:]), binary.LittleEndian.Uint64(seed[16:])))
	e.c.init(cfg, inc, rnd)
	return e, nil
}

// ID returns this node's ID.
func (e *Elector) ID() string { return e.cfg.ID }

// IsLeader reports whether this node is the active leader now: elected, and
// inside a lease that it checks against the clock at the time of the call.
// Call it before each unit of leader-only work.
func (e *Elector) IsLeader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	// The clock is read under the lock, so the lease and the time are one
	// snapshot: a call that waited for the lock cannot judge a lease that
	// ended meanwhile by the time it was called.
	return e.c.st.activeAt(time.Now())
}

// Leader returns the leader this node follows and its term, the fencing
// token, as last reported to OnNewLeader; id is "" when there is none. On
// the leader it returns its own ID.
func (e *Elector) Leader() (id string, term uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := &e.c.st
	if st.toldID == "" {
		return "", st.term
	}
	return st.toldID, st.toldTerm
}

// electorKey is the context key of FromContext.
type electorKey struct{}

// FromContext returns the Elector whose OnStartedLeading got ctx (or a
// context derived from it), or nil: the job can call IsLeader, Resign or
// Status without a variable declared before New.
func FromContext(ctx context.Context) *Elector {
	e, _ := ctx.Value(electorKey{}).(*Elector)
	return e
}

// Status returns a snapshot of the Elector.
func (e *Elector) Status() Status {
	e.mu.Lock()
	now := time.Now()
	e.syncLink()
	c, st := &e.c, &e.c.st
	s := Status{
		ID:             e.cfg.ID,
		State:          st.role,
		Term:           st.term,
		Leader:         st.toldID,
		Heir:           st.heir,
		Active:         st.activeAt(now),
		Connected:      c.linkUp(now),
		Elections:      st.elections,
		StepDowns:      st.stepDowns,
		TermKeyErrors:  st.termKeyErrors,
		LeasesLost:     st.stepDownsBy[0],
		HandOvers:      st.stepDownsBy[1],
		Shutdowns:      st.stepDownsBy[2],
		Superseded:     st.stepDownsBy[3],
		LastLeaderless: st.leaderless,
		LastElection:   st.lastElection,
		LastRedisError: st.lastRedisErr,
	}
	if s.Active {
		s.LeaseLeft = st.leaseEnd.Sub(now)
	}
	if st.role == Leader {
		s.Nodes = st.nodes
	} else if now.Sub(st.knownLiveAt) < e.cfg.PeerTimeout {
		s.Nodes = st.knownLive
	}
	for id, p := range st.peers {
		if now.Sub(p.heard) < e.cfg.PeerTimeout {
			s.LivePeers = append(s.LivePeers, id)
		}
	}
	dropped := st.dropped
	e.mu.Unlock()
	slices.Sort(s.LivePeers)
	s.MessagesIn = e.nIn.Load()
	s.MessagesOut = e.nOut.Load()
	s.Dropped = e.nDropped.Load() + dropped
	s.Unverified = e.nUnverified.Load()
	s.Replays = e.nReplays.Load()
	s.Reconnects = e.nReconnects.Load()
	s.Redirects = e.nRedirects.Load()
	s.PublishErrors = e.nPubErr.Load()
	return s
}

// Ready reports whether this node is healthy in its group, the meaning a
// readiness probe wants: Run is running, it is connected to Redis (its
// subscription is up and its own messages come back), its listening after
// a subscription ended (rule 8: before that it neither votes nor acks),
// and it is either the active leader or follows a leader it heard within
// (LeaseTimeout+PeerTimeout)/2. The error says what is missing. Handler
// serves the same over HTTP.
func (e *Elector) Ready() error {
	if !e.running.Load() {
		return ErrNotRunning
	}
	select {
	case <-e.done:
		return ErrNotRunning
	default:
	}
	e.mu.Lock()
	now := time.Now()
	e.syncLink()
	c, st := &e.c, &e.c.st
	connected, active := c.linkUp(now), st.activeAt(now)
	following := st.toldID != "" && st.toldID != e.cfg.ID && now.Sub(st.heardLead) < e.cfg.leaderGone()
	role, term, lastErr := st.role, st.term, st.lastRedisErr
	listening := st.joinUntil.IsZero() || now.Before(st.joinUntil)
	e.mu.Unlock()
	switch {
	case !connected && lastErr != "":
		return fmt.Errorf("leader: not connected to Redis (last error: %s)", lastErr)
	case !connected:
		return errors.New("leader: not connected to Redis")
	case listening:
		// It neither votes nor acks yet (it may be a restart that forgot
		// a vote): a rolling restart must wait for this before it stops
		// the next node.
		return errors.New("leader: listening after subscribing, before it votes or acks")
	case active || following:
		return nil
	case role == Leader:
		return fmt.Errorf("leader: elected in term %d, waiting for a quorum to ack", term)
	}
	return fmt.Errorf("leader: no leader in term %d", term)
}

// Handler returns an HTTP handler for health checks: it answers 200 when
// Ready returns nil and 503 otherwise, with a JSON body of the Status and,
// when not ready, the reason ("error").
func (e *Elector) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		body := struct {
			Error string `json:"error,omitempty"`
			Status
		}{Status: e.Status()}
		code := http.StatusOK
		if err := e.Ready(); err != nil {
			body.Error, code = err.Error(), http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	})
}

// Resign hands leadership over to a live peer now: it cancels the leader
// callback's context, waits for the callback to return, and then tells the
// group, naming the successor, which campaigns at once. It returns when the
// handover was published, or with ctx's error. On a node that does not lead
// it does nothing and returns nil.
//
// From inside OnStartedLeading, call it in a new goroutine and return: that
// callback cannot return while it waits in Resign, so Resign would wait out
// its bound ((LeaseTimeout+PeerTimeout)/2, when the followers give up on a
// silent leader) and hand over while the callback still runs.
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

// Run takes part in the election until ctx is cancelled. It connects to
// Redis, reconnecting with capped backoff for as long as it runs, so it
// survives Redis outages. When ctx is cancelled a leader hands over
// gracefully, as Resign does; Run then waits for every goroutine it started
// (the leader callback included) and returns nil. A failure that retrying
// cannot mend ends Run the same way, and Run returns it: a connection from
// Dial on another DB than Config.DB, or about five failures in a row with
// no subscription between them of a wrong password or user, a missing
// permission, a server that does not speak Redis's protocol, TLS on one
// side only, or a certificate that does not verify. Transient failures
// (refused connections, timeouts, a Redis restart) are retried for as long
// as Run runs. An Elector runs once.
func (e *Elector) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	err := e.runShell(ctx)
	close(e.done)
	return err
}

// ---------------------------------------------------------------------------
// The protocol core
// ---------------------------------------------------------------------------

// core is the protocol's state machine, split from all I/O so that it is
// deterministic: each input (a message, a Redis answer, a command, the
// passing of time) is a method that takes the time as a value and returns
// what to do as data (publish this, ask Redis that, start or stop the leader
// callback, log this record). Inside it there is no clock, no goroutine, no
// channel, no logging and no Redis; the shell (Run's goroutines) applies the
// outputs after it has released the lock, and a simulator in the tests drives
// the same core through random schedules of faults.
//
// The rules, and why each exists:
//
//  1. Detection. A follower that has not heard its leader for half-way
//     between LeaseTimeout and PeerTimeout (the leader's lease has ended
//     by then, see Config.leaderGone) treats it as gone and campaigns after a
//     random delay (re-drawn each time), unless a leader or a better
//     candidate shows up first. Random delays keep nodes from splitting
//     the vote.
//  2. Pre-vote. A candidate first asks whether the others would vote for it
//     in term+1, without raising its term; with a quorum of yes it takes a
//     new term and asks for real votes. A node that was cut off and comes
//     back therefore cannot raise the term and depose a healthy leader.
//  3. Votes. One vote per term per node, granted only by a node that has
//     not heard a live leader for as long (stickiness) and that is not
//     leading. A majority of votes wins the term. A higher term seen in
//     any message makes a node step down to follower.
//  4. Lease. A winner is not active at once: it becomes active (IsLeader,
//     OnStartedLeading) only when a quorum, its own echo included, has acked
//     a heartbeat seq s of its term. The lease ends LeaseTimeout after the
//     moment, on the leader's own clock, when it sent the newest seq a quorum
//     acked. A leadership is one lease: when it runs out the leader steps
//     down (and says so), so OnStartedLeading runs at most once per term. A
//     lease re-armed later in the same term would rest on what the node knew
//     when it was elected (who is live, who acks), which a pause or a cut
//     may have made stale.
//  5. Why the lease is safe. Every ack was received after its heartbeat was
//     sent, and an acking node grants no vote until (LeaseTimeout +
//     PeerTimeout)/2 after that heartbeat (rule 3). A quorum that elects a
//     rival shares a node with the quorum that acked, so a rival can win
//     only after the old lease ended, as long as that exceeds LeaseTimeout
//     with a margin for clock-rate drift (New demands LeaseTimeout below
//     90% of PeerTimeout, so the margin is at least 5% of PeerTimeout).
//     Strict mode makes the quorums intersect always; dynamic mode when
//     all nodes see the same live set.
//  6. The clock decides. Activity is judged against the lease at the time
//     of each call (IsLeader), at the start of every step of the core, and
//     by a timer of the shell's own that cancels the leader callback's
//     context when the lease ends, so neither a paused process nor a late
//     loop acts past its lease. Every input is judged at the time it is
//     handled, not when it arrived.
//  7. Handover. Resign stops acting at once, lets the callback return, and
//     then names a successor, which campaigns at once; the others give it a
//     round before they campaign themselves. The resign frees the group from
//     the resigning leader's lease, but not from an older lease it was still
//     waiting out (rule 12): then its followers keep their last-heard times,
//     and the successor waits as it would have.
//  8. Joining. After its first subscription a process listens for
//     PeerTimeout before it votes or stands, to learn the term, the leader
//     and who is live. After a resubscription it forgot none of its votes:
//     in strict mode it votes and stands at once (pre-vote keeps it from
//     deposing a leader that kept leading, whose majority refuses it), in
//     dynamic mode it listens to hear a leader of a minority that kept
//     leading: for two heartbeats, or, in a group of up to 64 nodes, until
//     it has heard each node that Redis lists as subscribed (PUBSUB
//     CHANNELS of the group's node channels), if they are a majority. Its
//     first heartbeat then is a hello, which every node that hears it
//     answers with a heartbeat. In strict mode it says hello too, on the
//     group's channel, but only so that an heir that lost its leader
//     during the outage stands once it has heard a quorum back, instead of
//     waiting out its guard (rule 13). Its count of live nodes, stale
//     from the outage (for a follower: its leader's count), does not
//     shrink for a PeerTimeout (rule 10). A vote
//     or pre-vote request that reaches it while it listens is answered
//     when the listening ends, if the candidate's round lasts that long,
//     by the rules as they stand then. A process that has just
//     started may be a restart of a node that voted with the same ID in a
//     term still going on: it never votes in a term it saw while it first
//     listened, and acks no leader before that listening ends (an ack promises, as a vote does, to vote for nobody
//     else for a while, rule 5).
//  9. Stalls. A node whose own loop did not run for two heartbeats (paused,
//     starved of CPU) does not stand, and does not let its count of live
//     nodes shrink, until it has listened for PeerTimeout again: what it did
//     not hear says nothing about its peers. It still votes; it forgot
//     nothing.
//  10. Group size (dynamic mode). The count of live nodes shrinks only after
//     a PeerTimeout of listening, and a leader's quorum never drops below the
//     size that elected it. Followers take the leader's own count as a floor
//     for a PeerTimeout, since they do not hear each other's acks, and a
//     candidate counts no fewer nodes than Redis says subscribe to the
//     group's channel (PUBSUB NUMSUB): nodes it cannot hear still count. A
//     stray subscriber makes the quorum larger, never smaller.
//  11. Terms outlive restarts. A candidate that passed its pre-vote takes
//     max(local term + 1, INCR of the group's term key), so fencing tokens
//     keep growing when every node restarts, as long as Redis keeps its data.
//     When the key cannot be written (OOM, NOPERM, MOVED, a timeout) the
//     round ends and is retried: a term taken without the key could repeat
//     one that a restarted node forgot.
//  12. Crash fast path. When a leader's process dies, the kernel closes its
//     sockets and Redis drops its subscriptions at once. A follower that
//     misses a heartbeat asks Redis (PUBSUB NUMSUB of the leader's own
//     channel); if nobody is subscribed there it campaigns without waiting
//     for PeerTimeout. Each vote says how long ago the voter heard a leader,
//     and the winner waits until LeaseTimeout after the most recent of those
//     before it may act, so an old lease has always ended.
//  13. Heir. The leader names in its heartbeats the follower to stand first
//     if it is lost, after a guard of ElectionJitter/5; the others hold
//     back a round. In a large group, many
//     followers that notice a loss together would otherwise split the vote
//     round after round. A granted pre-vote also postpones one's own
//     campaign, and of two pre-candidates the lower ID goes on.
//  14. Backoff. After the second failed round in a row, rounds get longer and
//     the random delays wider (2, 4, then 8 times): on a starved machine
//     answers come slower than a round, and colliding candidates need room.
//  15. Bad input is dropped and counted; it never panics or changes state.
//  16. Copies. The shell drops repeats and stale messages before they get
//     here (see the wire format), but a node that just started remembers
//     no sender, so the core takes copies in its stride too: a vote or
//     pre-vote request granted again postpones nothing, and once a leader
//     has said its leadership ended, its heartbeats of that term are
//     ignored (a leader never leads a term twice).
//  17. Priority. A leader that has heard a node of higher Priority without
//     a break for PriorityAfter, and has its acks, hands over to it (rule
//     7). A handover can fail, so a leader that tried waits, twice as long
//     after each try, until it sees a preferred node lead.
type core struct {
	cfg      Config // with the defaults filled in
	inc      uint64 // random per incarnation: tells echoes from a duplicate ID
	channel  string // the group's channel
	termKey  string // the key rule 11 advances
	selfChan string // this node's own channel (acks, replies; rule 12)
	rnd      *mrand.Rand
	st       state
	out      []output // what the current step asks for; reused

	// Evidence of the link from the shell's Redis goroutines, set by the
	// shell before each step (see Elector.syncLink).
	pubOK  time.Time // last answered PUBLISH
	recvAt time.Time // last thing the subscription delivered
	// The IDs of the nodes of this group in this process (sharing its
	// Link), this one included; nil when it has none.
	local map[string]bool
}

// outKind says what an output asks the shell to do.
type outKind uint8

const (
	outPublish      outKind = iota + 1 // PUBLISH msg on channel; notify: answer the handover waiters when done
	outTermKey                         // EVAL the term script (rule 11) for round, with local term; answer with termAnswer
	outNumSub                          // PUBSUB NUMSUB of channel, about node id ("": the group's channel, for round); answer with numSubAnswer
	outWho                             // PUBSUB CHANNELS of the names that begin with channel, for round; answer with whoAnswer
	outStartLeading                    // start OnStartedLeading for term; at: the lease's end, to cancel its context on time
	outStopLeading                     // cancel the leader callback with cause; then OnStoppedLeading, then callbackDone; round > 0: a handover waits, answer leaderEnded(round)
	outNewLeader                       // OnNewLeader(id, term); id "": no leader
	outHandedOver                      // answer every handover waiter with nil: nothing is left to hand over
	outLog                             // log text with attrs at level
)

// output is one thing a step of the core asks the shell to do.
type output struct {
	kind    outKind
	channel string
	msg     message
	id      string
	term    uint64
	round   uint64
	at      time.Time
	notify  bool
	cause   error // outStopLeading: why (one of the Err* causes)
	level   slog.Level
	text    string
	attrs   []any
}

// peer is what a node knows of another node.
type peer struct {
	heard    time.Time // last valid message, on our clock
	since    time.Time // start of the streak of messages with no gap of PeerTimeout
	observer bool
	prio     int       // its Priority
	acked    uint64    // highest seq of our current leadership it acked
	counted  bool      // in countLive's count (and its heap)
	back     time.Time // its first message since this node's latest subscription
}

// state is the protocol state, changed only by the core's steps.
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
	joinUntil    time.Time     // listening after a (re)subscription: no voting or standing before (rule 8)
	held         []heldRequest // vote and pre-vote requests that came while it listened, answered when that ends
	sizeHold     time.Time     // after a resubscription: the count of live nodes does not shrink before (rule 8)
	subAt        time.Time     // when the latest subscription was confirmed
	hello        bool          // this listening ends once every node Redis lists is heard (rule 8)
	whoRound     uint64        // numbers the questions of who subscribes; the answer to the latest counts
	whoBusy      bool          // one is in flight
	whoAgain     bool          // a node was first heard after it was asked
	whoAsked     int           // questions in this listening
	whoSent      time.Time     // when the latest was asked
	whoRetry     time.Time     // when to say hello and ask again, after a failed connection
	heardQuorum  bool          // every node Redis listed since the resubscription was heard, a quorum
	helloUntil   time.Time     // until then its hello's answers count (the listening; in strict mode the heir's guard)
	answerAt     time.Time     // when to broadcast a heartbeat for a node that said hello
	answeredAt   time.Time     // the last such broadcast
	startUntil   time.Time     // the end of the first listening after Run began
	voteFloor    uint64        // the highest term seen before startUntil: no vote in it or below
	stallUntil   time.Time     // listening after a stall of this process: no standing before (rule 9)
	lastTick     time.Time     // when tick last ran, to notice stalls
	size         int           // live nodes; decreases only after a PeerTimeout of listening (rule 10)
	live         liveCount     // countLive's cache
	lastSent     time.Time     // last message on the group channel
	knownLive    int           // live nodes as the leader last counted them
	knownLiveAt  time.Time     // when; the count is a quorum floor for PeerTimeout
	leaderChan   string        // the leader's own channel, where acks go
	leaderChanOf string        // the leader leaderChan belongs to
	electionAt   time.Time     // when to campaign; zero when not scheduled
	goneLeader   string        // the leader Redis says is gone (rule 12)
	heir         string        // a leader: the follower it names in its heartbeats; a follower: the one its leader named
	endedBy      string        // the leader of the newest leadership known to have ended (it resigned)
	endedTerm    uint64        // its term: heartbeats of that leader in that term are copies
	preGrantFor  string        // the candidate of the last pre-vote granted, with its proposed term:
	preGrantTerm uint64        // that grant postponed this node's campaign once
	prioNext     time.Time     // no handover for Priority before
	prioWait     time.Duration // the wait after the last such handover; doubles until a preferred node leads
	numsubAt     time.Time     // last NUMSUB query, to rate-limit them
	numsubBusy   bool
	redisSize    int       // dynamic mode: subscribers of the group's channel, as Redis last counted them
	redisSizeAt  time.Time // when; the count is a floor of the group size for a PeerTimeout

	// Candidate.
	round      uint64 // numbers campaigns, so stale answers are ignored
	preVote    bool   // in the pre-vote phase of round
	waitTerm   bool   // waiting for the term key (rule 11)
	roundTerm  uint64 // the term proposed (pre-vote) or stood for (vote)
	roundStart time.Time
	roundEnd   time.Time
	grants     map[string]time.Time // voter → the latest it can have heard a leader (zero: never, or a pre-vote)
	handover   bool                 // campaign as a named successor
	sizeWait   bool                 // dynamic mode: waiting for Redis's count of the group
	failed     int                  // rounds of this node that failed since it last saw a leader

	// Leader.
	seq         uint64
	nodes       int           // live nodes counted at the last heartbeat
	electedSize int           // the group size the election's quorum was a majority of
	selfAcked   uint64        // highest seq of ours that echoed back
	sentAt      [64]time.Time // send time of heartbeat seq, at index seq%64
	ackers      [64]int       // nodes (this one included) that acked heartbeat seq or a later one, at index seq%64
	electedAt   time.Time
	notBefore   time.Time // no activity before: the old lease may still hold (rule 12)
	leaseEnd    time.Time
	active      bool // the leader callback was started and not yet stopped
	cbBusy      bool // a leader callback or its OnStoppedLeading has not finished
	resigning   bool
	successor   string

	elections, stepDowns uint64
	stepDownsBy          [len(stopCauses)]uint64
	stopping             bool // Run is ending: a handover now is a shutdown

	// What the user was told (OnNewLeader, Leader, Status): the leader
	// followed, "" once this node knows of none.
	toldSaid      bool // something was reported at all
	toldID        string
	toldTerm      uint64
	lostAt        time.Time     // when the last leader was reported lost
	leaderless    time.Duration // how long the last gap without a leader lasted
	lastElection  time.Duration // how long the last won round took
	stalls        int           // stalls not yet logged
	stallLogged   time.Time
	termKeyErrors uint64    // failed writes of the term key
	termKeyWarned time.Time // when a failed write was last logged
	termKeyNoPerm bool      // NOPERM was logged
	dropped       uint64    // messages the core refused (duplicate ID, full peer table)
	lastRedisErr  string
	dupWarned     time.Time // when the duplicate-ID warning was last logged
}

// init prepares c for a node with cfg (defaults filled in).
func (c *core) init(cfg Config, inc uint64, rnd *mrand.Rand) {
	c.cfg, c.inc, c.rnd = cfg, inc, rnd
	c.channel = groupChannel(cfg.Group, cfg.DB)
	c.termKey = c.channel + ":term"
	c.selfChan = c.nodeChannel(cfg.ID)
	c.st.peers = make(map[string]*peer)
	c.out = make([]output, 0, 16)
}

// groupChannel names group's channel on db. Pub/sub channels are shared
// by every DB of a server, so the DB is part of the name; DB 0 keeps the
// plain name.
func groupChannel(group string, db int) string {
	if db == 0 {
		return "leader:{" + group + "}"
	}
	return "leader:db" + strconv.Itoa(db) + ":{" + group + "}"
}

// nodeChannel is the channel only node id subscribes to.
func (c *core) nodeChannel(id string) string { return c.channel + ":node:" + id }

// begin starts a step at now: it clears the outputs and, before anything
// else, stops a leader whose lease has ended (rule 6), so that no input
// handled late is judged against a lease that is already over.
func (c *core) begin(now time.Time) {
	c.out = c.out[:0]
	s := &c.st
	if s.active && !s.activeAt(now) {
		// The lease ran out (a pause, a cut, a slow quorum): stop acting
		// at once, and stop leading. A leadership is one lease: a lapsed
		// one never comes back in the same term, since what this node
		// knew of the group when it was elected (who is live, who acks)
		// may be stale by now. The followers that still hear it learn at
		// once that it holds no lease, as after a handover.
		c.logf(slog.LevelInfo, "lease lapsed", "term", s.term, "quorum", c.quorum(now))
		c.stopLeading(0, ErrLeaseLost)
		c.publish(c.resignMessage("", now), now)
		c.becomeFollower(now, "lease lapsed")
	}
}

func (c *core) emit(o output) { c.out = append(c.out, o) }

func (c *core) logf(level slog.Level, text string, attrs ...any) {
	c.emit(output{kind: outLog, level: level, text: text, attrs: attrs})
}

// activeAt reports whether the node may act as leader at now (rule 6).
func (s *state) activeAt(now time.Time) bool {
	return s.role == Leader && !s.resigning && now.Before(s.leaseEnd) && !now.Before(s.notBefore)
}

// subscribed: the subscription to both channels was confirmed.
func (c *core) subscribed(now time.Time) []output {
	c.begin(now)
	s := &c.st
	// Rule 8: after its first subscription a process listens for a
	// PeerTimeout to learn the term, the leader and who is live before
	// voting or standing. A process that only reconnected forgot none of
	// its votes and promises, and knows the term, so a group whose Redis
	// came back elects without a PeerTimeout of silence. In strict mode it
	// votes and stands at once: a leader that kept leading meanwhile has a
	// majority that acks it and refuses every pre-vote (rule 2), so the
	// nodes that come back, fewer than a majority, cannot depose it. In
	// dynamic mode a leader may lead a minority (a lone node that saw
	// nobody else), which the nodes that come back would outvote: there it
	// listens first, long enough to hear such a leader. That is two
	// heartbeats, or less in a group of up to maxHelloGroup: its first
	// heartbeat is a hello, which every node that hears it answers with a
	// heartbeat of its own, and it asks Redis which of the group's nodes
	// subscribe (their own channels). Once it has heard all of them, and
	// they are a majority, it has heard any leader among them. After a
	// Redis restart that takes a round trip or two instead of two
	// heartbeats.
	// Its count of live nodes is stale (it heard nobody while
	// disconnected): that count keeps what it was before the outage until
	// a PeerTimeout after the resubscription (rule 10), or in dynamic mode
	// a majority of what it heard would be itself alone.
	s.subscribed, s.held, s.subAt = true, nil, now
	s.hello, s.whoBusy, s.whoAsked, s.whoRetry, s.heardQuorum = false, false, 0, time.Time{}, false
	if s.role == Follower && !s.electionAt.After(now) {
		// A campaign that came due while it was cut off (a lease that
		// lapsed then set one) would go ahead of the heir's the moment
		// the listening ends: the delay is drawn again once that is over.
		s.electionAt = time.Time{}
	}
	listen := c.cfg.PeerTimeout
	if !s.startUntil.IsZero() {
		listen = 2 * c.cfg.HeartbeatInterval
		size := c.groupSize(now)
		if c.cfg.ClusterSize > 0 {
			listen, size = 0, c.cfg.ClusterSize
		}
		s.sizeHold = now.Add(c.cfg.PeerTimeout)
		s.hello = size <= maxHelloGroup
	}
	s.joinUntil = now.Add(listen)
	if s.startUntil.IsZero() {
		s.startUntil = s.joinUntil
	}
	// In strict mode the hello only tells the heir when a quorum is back,
	// so that it need not wait out its guard after an outage (see due);
	// its answers count for as long as that guard.
	s.helloUntil = s.joinUntil
	if listen == 0 {
		s.helloUntil = now.Add(c.heirGuard())
	}
	switch {
	case s.hello && listen > 0:
		c.logf(slog.LevelInfo, "subscribed again; listening until every node Redis lists is heard", "channel", c.channel, "at most", listen)
	case listen > 0:
		c.logf(slog.LevelInfo, "subscribed; listening before voting or standing", "channel", c.channel, "for", listen)
	default:
		c.logf(slog.LevelInfo, "subscribed again; voting and standing at once", "channel", c.channel)
	}
	if s.hello {
		c.broadcast(now, helloMark, true)
		c.askWho(now)
	} else {
		c.sendHeartbeat(now)
	}
	return c.out
}

// maxHelloGroup is the largest group in which a node that resubscribed
// asks every other to answer its hello: each hello costs a broadcast of
// every node, and after a Redis restart every node says hello.
const maxHelloGroup = 64

// maxWhoAsked bounds the questions of who subscribes in one listening;
// each costs Redis a scan of its channels. Past it the node listens out
// its two heartbeats.
const maxWhoAsked = 2 * maxHelloGroup

// askWho asks Redis which of the group's nodes subscribe, for the
// listening after a resubscription (rule 8); with one question in flight
// it asks again when that one is answered.
func (c *core) askWho(now time.Time) {
	s := &c.st
	if s.whoBusy {
		s.whoAgain = true
		return
	}
	if s.whoAsked >= maxWhoAsked {
		return
	}
	s.whoBusy, s.whoAgain = true, false
	s.whoAsked++
	s.whoRound++
	s.whoSent = now
	c.emit(output{kind: outWho, channel: c.nodeChannel(""), round: s.whoRound})
}

// whoAnswer: Redis listed the subscribed channels whose names begin with
// the group's node channels' prefix, in answer to question round. The
// listening after a resubscription ends when each node listed was heard
// after the subscription and before the question (so it was subscribed
// when Redis answered, and whatever it said, a leader's heartbeat among
// it, came after this node's hello or in answer to it), and they are a
// quorum. A node that subscribes after the question is asked about in the
// next one.
func (c *core) whoAnswer(now time.Time, round uint64, names []string, err error) []output {
	c.begin(now)
	s := &c.st
	if round != s.whoRound {
		return c.out
	}
	s.whoBusy = false
	if !c.learning(now) {
		return c.out
	}
	var refused redis.Error
	if err != nil && !errors.As(err, &refused) && s.whoAsked < maxWhoAsked {
		// The connection failed, not Redis (the publisher may not have
		// noticed yet that the old one died): the hello may be lost with
		// it. Both go again, a little later.
		s.whoRetry = now.Add(c.helloGap())
		return c.out
	}
	if err != nil {
		// Not a weaker guarantee: the node listens its two heartbeats (in
		// strict mode, an heir waits out its guard).
		s.hello = false
		c.redisError("list the group's nodes", err)
		then := "listening two heartbeats"
		if c.cfg.ClusterSize > 0 {
			then = "an heir waits out its guard"
		}
		c.logf(slog.LevelWarn, "could not list the group's subscribed nodes; "+then, "err", err)
		return c.out
	}
	prefix := c.nodeChannel("")
	self, heard := false, 0
	for _, name := range names {
		id, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		if id == c.cfg.ID {
			self = true
			continue
		}
		p := s.peers[id]
		if p == nil || p.back.Before(s.subAt) || p.back.After(s.whoSent) {
			if s.whoAgain {
				c.askWho(now)
			}
			return c.out
		}
		heard++
	}
	if !self || heard+1 < c.quorum(now) {
		if s.whoAgain {
			c.askWho(now)
		}
		return c.out
	}
	s.heardQuorum = true
	if c.cfg.ClusterSize > 0 {
		c.logf(slog.LevelInfo, "heard every node Redis lists", "nodes", heard+1, "after", now.Sub(s.subAt))
		return c.out
	}
	s.joinUntil = now
	c.logf(slog.LevelInfo, "heard every node Redis lists; listening ended", "nodes", heard+1, "after", now.Sub(s.subAt))
	return c.out
}

// learning: this node said hello after it resubscribed and still waits to
// hear every node Redis lists.
func (c *core) learning(now time.Time) bool {
	s := &c.st
	return s.hello && s.subscribed && !s.heardQuorum && now.Before(s.helloUntil)
}

// answerHello schedules the heartbeat that answers a node's hello: at once,
// or, when it answered another within helloGap, helloGap after that one,
// so that many hellos at once (after a Redis restart) cost a few
// broadcasts, not one each. (A gap that shrank with the group, to answer
// the last node back sooner, let a burst of hellos and answers overflow a
// slow subscriber's output buffer; Redis closed every subscriber, every
// node said hello again, and the group never elected: simulator seed
// 92364275423536.)
func (c *core) answerHello(now time.Time) {
	s := &c.st
	if s.answerAt.IsZero() {
		s.answerAt = s.answeredAt.Add(c.helloGap())
		if s.answerAt.Before(now) {
			s.answerAt = now
		}
	}
}

// helloGap is the least time between two answers to hellos, and how long
// a node waits to say hello and ask again after the connection failed
// under the first.
func (c *core) helloGap() time.Duration { return c.cfg.HeartbeatInterval / 10 }

// disconnected: the subscription ended, with err if Redis said why.
func (c *core) disconnected(now time.Time, err error) []output {
	c.begin(now)
	c.st.subscribed, c.st.held = false, nil
	if err != nil {
		c.st.lastRedisErr = err.Error()
	}
	return c.out
}

// redisError records a Redis failure the shell saw, for Status.
func (c *core) redisError(op string, err error) {
	c.st.lastRedisErr = op + ": " + err.Error()
}

// numSubAnswer: Redis counted n subscribers of node id's own channel, or,
// with id "", of the group's channel for the campaign of round.
func (c *core) numSubAnswer(now time.Time, id string, round uint64, n int64, err error) []output {
	c.begin(now)
	s := &c.st
	if id == "" {
		c.groupCounted(now, round, n, err)
		return c.out
	}
	s.numsubBusy = false
	if err == nil && n == 0 && s.role == Follower && id == s.leader && now.Sub(s.heardLead) >= c.cfg.HeartbeatInterval {
		// Rule 12: the leader's process is gone (its connection closed),
		// so campaign without waiting for PeerTimeout. The winner still
		// waits out what the old lease could hold.
		s.goneLeader = id
		if !c.cfg.Observer {
			// The winner waits until LeaseTimeout after the last
			// heartbeat anyway, so campaigning at any time before then
			// costs nothing: spread the candidates over that slack to
			// avoid split votes.
			slack := c.cfg.LeaseTimeout - now.Sub(s.heardLead)
			s.electionAt = now.Add(c.afterLeaderLost(max(min(c.jitter(), slack), c.jitter()/3), 0))
		}
		c.reportLeader(now, "", s.term, "Redis says its connection is gone")
	}
	return c.out
}

// groupCounted applies Redis's count of the group channel's subscribers to
// the campaign of round (rule 10).
func (c *core) groupCounted(now time.Time, round uint64, n int64, err error) {
	s := &c.st
	if s.role != Candidate || !s.sizeWait || round != s.round {
		return
	}
	if err != nil {
		c.redisError("count the group", err)
		c.logf(slog.LevelWarn, "could not count the group's subscribers; the campaign is retried", "err", err)
		s.failed++
		c.becomeFollower(now, "could not count the group")
		return
	}
	s.sizeWait = false
	s.redisSize, s.redisSizeAt = int(min(n, maxPeers+1)), now
	if s.preVote {
		c.checkPreVote(now)
	} else if !s.waitTerm {
		c.checkVotes(now)
	}
}

// leaderEnded: the callback of the leadership that round resigned has
// returned (or its bound ran out), so the handover may be published.
func (c *core) leaderEnded(now time.Time, round uint64) []output {
	c.begin(now)
	if c.st.resigning && round == c.st.round {
		c.publishResign(now)
	}
	return c.out
}

// callbackDone: OnStoppedLeading ran after the last OnStartedLeading
// returned, so a new one may start.
func (c *core) callbackDone(now time.Time) []output {
	c.begin(now)
	c.st.cbBusy = false
	return c.out
}

// handover is Resign (to "", not strict) or TransferTo. wait reports that
// the caller is owed an answer later: when the handover is published
// (outPublish with notify), or when nothing is left to hand over
// (outHandedOver). Otherwise err is the answer now.
func (c *core) handover(now time.Time, to string, strict bool) (out []output, wait bool, err error) {
	c.begin(now)
	s := &c.st
	if s.role != Leader {
		if strict {
			return c.out, false, ErrNotLeader
		}
		return c.out, false, nil
	}
	if to != "" {
		p := s.peers[to]
		if to == c.cfg.ID || p == nil || p.observer || now.Sub(p.heard) >= c.cfg.PeerTimeout {
			return c.out, false, fmt.Errorf("%w: %q", ErrNotCandidate, to)
		}
	}
	c.resign(to, now)
	return c.out, true, nil
}

// shutdown is handover at the end of Run: the same, but the leadership
// ends with ErrShutdown.
func (c *core) shutdown(now time.Time) (out []output, wait bool) {
	c.st.stopping = true
	out, wait, _ = c.handover(now, "", false)
	return out, wait
}

// finish stops a leader callback that still runs, at shutdown.
func (c *core) finish(now time.Time) []output {
	c.begin(now)
	if c.st.active {
		c.stopLeading(0, ErrShutdown)
	}
	return c.out
}

// resign begins a graceful stop (rule 7): stop acting at once, let the
// callback return, then publish resign naming a successor. The caller
// has checked that this node leads.
func (c *core) resign(to string, now time.Time) {
	s := &c.st
	if s.resigning {
		return
	}
	if to == "" {
		to = c.pickSuccessor(now)
	}
	s.resigning, s.successor = true, to
	s.round++
	c.logf(slog.LevelInfo, "resigning", "term", s.term, "successor", to)
	if !s.active {
		c.publishResign(now)
		return
	}
	cause := ErrHandedOver
	if s.stopping {
		cause = ErrShutdown
	}
	c.stopLeading(s.round, cause)
}

// preferred hands leadership over to a peer of higher Priority that has
// been heard without a break for PriorityAfter and acks this leadership,
// and reports whether it began the handover. The best such peer (highest
// Priority, then lowest ID) goes first. A handover can fail (a voter that
// has not yet heard the resign refuses the successor), so a leader that
// tried one waits before it tries again, twice as long after each try
// until it sees a preferred node lead: a node that cannot win must not
// cost the group a term every PriorityAfter.
func (c *core) preferred(now time.Time) bool {
	s := &c.st
	if now.Sub(s.electedAt) < c.cfg.PeerTimeout || now.Before(s.prioNext) {
		return false // settle first: the election's own traffic is still going
	}
	best, bp := "", -1
	for id, p := range s.peers {
		switch {
		case p.observer || p.prio <= c.cfg.Priority:
		case p.prio < bp || p.prio == bp && id > best:
		case now.Sub(p.heard) >= c.cfg.PeerTimeout || now.Sub(p.since) < c.cfg.PriorityAfter:
		case p.acked == 0 || p.acked+1 < s.seq: // it must be acking this leadership now
		default:
			best, bp = id, p.prio
		}
	}
	if best == "" {
		return false
	}
	s.prioWait = min(max(2*s.prioWait, c.cfg.PriorityAfter), 32*c.cfg.PriorityAfter)
	s.prioNext = now.Add(s.prioWait)
	c.logf(slog.LevelInfo, "handing over to a node of higher priority", "term", s.term, "to", best, "priority", bp)
	c.resign(best, now)
	return true
}

// pickSuccessor returns a live peer that can stand and acked one of the
// last two heartbeats acked by any (or, if none did, acked most recently),
// in another process if there is one such, or "" if there is none.
func (c *core) pickSuccessor(now time.Time) string {
	s := &c.st
	var top uint64
	for _, p := range s.peers {
		if !p.observer && now.Sub(p.heard) < c.cfg.PeerTimeout {
			top = max(top, p.acked)
		}
	}
	best, bestRank, bestLocal := "", uint64(0), false
	for id, p := range s.peers {
		if p.observer || now.Sub(p.heard) >= c.cfg.PeerTimeout || p.acked+1 < top {
			continue
		}
		// Among the nodes that are up to date, one in another process
		// first: a crash takes all of a process's Electors, heir and
		// leader alike, and a SIGTERM resigns them all at once. Then a
		// rank drawn from the group and the ID: with many groups on the
		// same nodes, the lowest ID, or the node that acks a moment
		// sooner, would be every group's heir, and a crash would hand one
		// process all of the dead one's elections at once.
		rank, local := heirRank(c.channel, id), c.local[id]
		if best == "" || bestLocal && !local || local == bestLocal && (rank < bestRank || rank == bestRank && id < best) {
			best, bestRank, bestLocal = id, rank, local
		}
	}
	return best
}

// heirRank is FNV-1a of the group's channel and a node's ID.
func heirRank(channel, id string) uint64 {
	h := uint64(14695981039346656037)
	for _, s := range []string{channel, "\x00", id} {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * 1099511628211
		}
	}
	return h
}

// nameHeir returns the heir a leader names in its heartbeat: the one it
// named before while that one still acks (one of the last two heartbeats),
// unless the best successor now is another that has been heard without a
// break for a PeerTimeout; else the best successor now. Keeping the same
// heir keeps followers agreed; moving to a steady better one spreads the
// heirs of many groups again over a node that came back.
func (c *core) nameHeir(now time.Time) string {
	s := &c.st
	if p := s.peers[s.heir]; s.heir != "" && p != nil && p.acked+2 >= s.seq && now.Sub(p.heard) < c.cfg.PeerTimeout {
		best := c.pickSuccessor(now)
		if q := s.peers[best]; best == "" || best == s.heir || q == nil || now.Sub(q.since) < c.cfg.PeerTimeout {
			return s.heir
		}
		s.heir = best
		return s.heir
	}
	s.heir = c.pickSuccessor(now)
	return s.heir
}

// afterLeaderLost is how long a follower whose leader is gone waits before
// campaigning. Left to chance (a random delay within spread), many
// followers that notice together, as in a large group, split the vote
// round after round. So the heir its leader named goes first, after guard,
// and the others hold back a round for it; they campaign only if the heir
// did not get through (it died too, or cannot reach Redis). Without a
// known heir, spread alone decides.
func (c *core) afterLeaderLost(spread, guard time.Duration) time.Duration {
	s := &c.st
	switch {
	case s.leader == "" || s.heir == "":
		return c.randDuration(spread)
	case s.heir == c.cfg.ID:
		return guard
	default:
		return c.roundTimeout() + c.randDuration(spread)
	}
}

func (c *core) publishResign(now time.Time) {
	s := &c.st
	c.publishNotify(c.resignMessage(s.successor, now), now)
	c.becomeFollower(now, "resigned")
	s.heardLead = time.Time{}
	// Give the successor the first go.
	s.electionAt = now.Add(c.cfg.PeerTimeout + c.randDuration(c.cfg.ElectionJitter))
}

// resignMessage is a leader's resign naming successor to. Ago says
// whether it was past its wait for an older lease (rule 12): 0 if it was,
// else 1, and then its followers keep their last-heard times, so that their
// votes make the next winner wait out that lease too. A resign frees the
// group from this leader's lease, not from one it was still waiting out.
func (c *core) resignMessage(to string, now time.Time) message {
	m := message{Type: msgResign, Term: c.st.term, To: to}
	if now.Before(c.st.notBefore) {
		m.Ago = 1
	}
	return m
}

// receive applies one valid message, handled at now. Every decision is
// judged at the time the message is handled, not when it arrived: a loop
// that runs late must not act on a lease that ended meanwhile, and a
// later "last heard" only makes a voter refuse longer.
func (c *core) receive(now time.Time, m *message) []output {
	c.begin(now)
	c.onMessage(m, now)
	return c.out
}

// onMessage applies one valid message handled at now.
func (c *core) onMessage(m *message, now time.Time) {
	s := &c.st
	if m.From == c.cfg.ID {
		if m.Inc != c.inc {
			s.dropped++
			if now.Sub(s.dupWarned) >= time.Second { // not once per message
				s.dupWarned = now
				c.logf(slog.LevelWarn, "another process uses this node's ID; IDs must be unique", "id", m.From)
				if s.role == Follower {
					// The other process may hear nothing of this one (a
					// healthy follower only acks, to the leader's channel):
					// say something on the group channel so that it warns
					// too.
					c.sendHeartbeat(now)
				}
			}
			return
		}
		s.selfEcho = now
		if m.Type == msgHeartbeat && m.Flags&flagLeader != 0 && s.role == Leader && m.Term == s.term {
			c.ack("", nil, m.Seq, now) // our own echo is our own ack
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
			c.prunePeers(now)
			if len(s.peers) >= maxPeers {
				s.dropped++
				return
			}
		}
		p = &peer{}
		s.peers[m.From] = p
	}
	if p.since.IsZero() || now.Sub(p.heard) >= c.cfg.PeerTimeout {
		p.since = now
	}
	p.heard = now
	c.recount(m.From, p, now)
	p.observer = m.Flags&flagObserver != 0
	p.prio = int(min(m.Prio, maxPriority))
	if p.back.Before(s.subAt) {
		p.back = now
		if c.learning(now) {
			c.askWho(now) // it may be the last of them
		}
	}

	switch m.Type {
	case msgHeartbeat:
		if m.Ago == helloMark {
			c.answerHello(now)
		}
		if m.Flags&flagLeader != 0 {
			c.onLeaderHeartbeat(m, now)
		} else {
			c.stepUp(m.Term, now)
			if s.role == Leader && m.Term == s.term && m.To == c.cfg.ID {
				c.ack(m.From, p, m.Seq, now)
			}
		}
	case msgPreVote:
		if s.role == Candidate && s.preVote && m.From < c.cfg.ID && m.Term >= s.roundTerm {
			// Two pre-candidates at once: the lower ID goes on, so that
			// many followers timing out together (a crash in a large
			// group) do not split the vote round after round.
			c.becomeFollower(now, "yielded to "+m.From)
		}
		if c.hold(m, now) {
			return
		}
		c.onPreVoteRequest(m, now)
	case msgPreVoteReply:
		if m.Seq > s.term && s.role != Leader {
			s.term, s.votedFor = m.Seq, "" // catch up; no leader known in it
		}
		if s.role == Candidate && s.preVote && m.To == c.cfg.ID && m.Term == s.roundTerm && m.Flags&flagGranted != 0 {
			s.grants[m.From] = time.Time{}
			c.extendRound(now)
			c.checkPreVote(now)
		}
	case msgVoteRequest:
		if c.hold(m, now) {
			return
		}
		c.onVoteRequest(m, now)
	case msgVote:
		if m.Seq > s.term {
			c.stepUp(m.Seq, now)
			return
		}
		if s.role == Candidate && !s.preVote && !s.waitTerm && m.To == c.cfg.ID && m.Term == s.term && m.Flags&flagGranted != 0 {
			// The voter heard a leader Ago before it voted, which was
			// before now: no later than now - Ago on this node's clock.
			s.grants[m.From] = heardBy(now, m.Ago)
			c.extendRound(now)
			c.checkVotes(now)
		}
	case msgResign:
		if m.Term >= s.endedTerm {
			s.endedBy, s.endedTerm = m.From, m.Term
		}
		c.stepUp(m.Term, now)
		if m.Term != s.term || s.role == Leader {
			return
		}
		if s.leader == m.From {
			// The old leader stopped before it said so: no stickiness and,
			// unless it still waited out an older lease itself, no lease
			// to wait out (rule 7). It still votes, so its count of live
			// nodes still sizes the quorum.
			s.leader, s.goneLeader = "", ""
			if m.Ago == 0 {
				s.heardLead = time.Time{}
			}
			s.knownLiveAt = now
			why := "it resigned"
			if m.To != "" {
				why = "it handed over to " + m.To
			}
			c.reportLeader(now, "", m.Term, why)
		}
		if m.To == c.cfg.ID && !c.cfg.Observer && s.role == Follower {
			c.campaign(now, true)
		} else if s.leader == "" {
			s.electionAt = now.Add(c.cfg.HeartbeatInterval + c.randDuration(c.jitter()))
		}
	}
}

// onLeaderHeartbeat follows the leader of the newest term and acks.
func (c *core) onLeaderHeartbeat(m *message, now time.Time) {
	s := &c.st
	if m.Term < s.term {
		return // a stale leader; our own heartbeats carry the newer term
	}
	if m.From == s.endedBy && m.Term == s.endedTerm {
		// That leadership ended (its leader said so): this is a copy, or
		// a message that was late. A leader never leads a term twice.
		return
	}
	c.stepUp(m.Term, now)
	if s.role == Leader {
		// Impossible unless two processes share an ID or votes were
		// forged; both leaders see it, and both stand down so that a
		// fresh election in a higher term settles it.
		c.logf(slog.LevelError, "another leader in this term: stepping down", "term", m.Term, "other", m.From)
		c.becomeFollower(now, "another leader in this term")
		return
	}
	if s.leader == m.From && s.leaderTerm == m.Term && s.leaderInc == m.Inc && m.Seq <= s.leaderSeq {
		return // a replay or a duplicate
	}
	if s.role == Candidate {
		c.becomeFollower(now, "a leader won the term")
	}
	if s.leader != m.From || s.leaderTerm != m.Term {
		s.leader, s.leaderTerm = m.From, m.Term
	}
	c.reportLeader(now, m.From, m.Term, "")
	if m.Prio > uint64(c.cfg.Priority) {
		s.prioWait = 0 // a handover for Priority took, or was not needed
	}
	s.leaderInc, s.leaderSeq, s.heardLead, s.heir = m.Inc, m.Seq, now, m.To
	s.knownLive, s.knownLiveAt = int(min(m.Live, maxPeers+1)), now
	s.electionAt, s.goneLeader, s.failed = time.Time{}, "", 0
	if now.Before(s.startUntil) {
		// Rule 8 for acks: an ack promises, as a vote does, to grant no
		// other vote for a while (rule 5). A process that has just started
		// may be a restart of a node that voted in a newer term, so it
		// cannot promise anything to this leader yet.
		return
	}
	// The ack goes to the leader's own channel: only the leader reads it,
	// so a round costs 2N deliveries instead of N².
	if s.leaderChanOf != m.From {
		s.leaderChan, s.leaderChanOf = c.nodeChannel(m.From), m.From
	}
	c.publishTo(s.leaderChan, message{Type: msgHeartbeat, Term: s.term, Seq: m.Seq, To: m.From})
}

// stepUp moves to a higher term seen in a message (rule 3).
func (c *core) stepUp(term uint64, now time.Time) {
	s := &c.st
	if term <= s.term {
		return
	}
	s.term, s.votedFor = term, ""
	if s.role != Follower {
		c.becomeFollower(now, "saw a higher term")
	}
	if s.leaderTerm < term {
		s.leader = ""
		c.reportLeader(now, "", term, "a higher term")
	}
}

// mayVote applies the rules that both pre-votes and votes obey: joined,
// not leading, and no live leader (stickiness, rule 3), unless Redis said
// that leader's process is gone (rule 12).
func (c *core) mayVote(m *message, now time.Time) bool {
	s := &c.st
	if s.joinUntil.IsZero() || now.Before(s.joinUntil) || s.role == Leader {
		return false
	}
	if s.leader != "" && now.Sub(s.heardLead) < c.cfg.leaderGone() {
		return m.Flags&flagLeaderGone != 0 && m.To == s.leader
	}
	// A node that just voted gives that candidate its round: a rival that
	// started a moment later (with the higher term INCR gave it) would
	// otherwise take the votes back and cost a term. Once a leader of the
	// term it voted in was heard, that round is decided: a successor that
	// leader names when it resigns at once is no rival.
	if s.votedFor != "" && s.votedFor != m.From && now.Sub(s.votedAt) < c.roundTimeout() && s.leaderTerm < s.term {
		return false
	}
	return true
}

// onPreVoteRequest answers a pre-vote request: granted by the rules of
// mayVote, for a term above this node's.
func (c *core) onPreVoteRequest(m *message, now time.Time) {
	s := &c.st
	grant := m.Term > s.term && c.mayVote(m, now)
	if grant && s.role == Follower && (s.preGrantFor != m.From || s.preGrantTerm != m.Term) {
		// As a vote does, a granted pre-vote gives that candidate its
		// rounds (the pre-vote's rest and the vote) before this node
		// campaigns itself; once per candidate and term, so a copy of
		// the request cannot keep postponing this node's campaign.
		s.preGrantFor, s.preGrantTerm = m.From, m.Term
		s.electionAt = now.Add(2*c.roundTimeout() + c.randDuration(c.jitter()))
	}
	c.publishTo(c.nodeChannel(m.From), message{Type: msgPreVoteReply, Term: m.Term, Seq: s.term, To: m.From, Flags: grantFlag(grant)})
}

// heldRequest is a vote or pre-vote request that reached a node while it
// listened after a resubscription, with when it arrived.
type heldRequest struct {
	m  message
	at time.Time
}

// maxHeld bounds the requests a listening node holds: one per candidate
// and kind, and a few candidates at most stand at once.
const maxHeld = 8

// hold keeps a vote or pre-vote request that reached a follower in the
// listening after a resubscription, if that ends within the candidate's
// round: it is answered then (answerHeld), judged by the rules as they
// stand at that time, as if it had arrived then. Refused at once, it would
// have cost the candidate its round for nothing: after a Redis restart the
// first candidate stands while most of the others still listen. It reports
// whether it kept m; one it does not keep is answered now.
func (c *core) hold(m *message, now time.Time) bool {
	s := &c.st
	if s.role != Follower || s.joinUntil.IsZero() || !now.Before(s.joinUntil) || s.joinUntil.Sub(now) >= c.roundTimeout() {
		return false
	}
	for i := range s.held {
		if h := &s.held[i]; h.m.From == m.From && h.m.Type == m.Type {
			*h = heldRequest{*m, now} // the newer request of that candidate
			return true
		}
	}
	if len(s.held) >= maxHeld {
		return false
	}
	s.held = append(s.held, heldRequest{*m, now})
	return true
}

// answerHeld answers, once the listening has ended, the requests hold
// kept; those older than a round are dropped (their rounds are over).
func (c *core) answerHeld(now time.Time) {
	s := &c.st
	if len(s.held) == 0 || now.Before(s.joinUntil) {
		return
	}
	held := s.held
	s.held = nil
	for i := range held {
		h := &held[i]
		if now.Sub(h.at) > c.roundTimeout() {
			continue
		}
		if h.m.Type == msgPreVote {
			c.onPreVoteRequest(&h.m, now)
		} else {
			c.onVoteRequest(&h.m, now)
		}
	}
}

func (c *core) onVoteRequest(m *message, now time.Time) {
	s := &c.st
	grant := false
	if m.Term >= s.term && m.Term > s.voteFloor && c.mayVote(m, now) {
		c.stepUp(m.Term, now)
		switch s.votedFor {
		case "":
			grant = true
			s.votedFor, s.votedAt = m.From, now
			// Give this candidate its round before campaigning ourselves.
			s.electionAt = now.Add(c.roundTimeout() + c.randDuration(c.jitter()))
		case m.From:
			// The same vote again (a retry, or a copy): it changes
			// nothing, and postpones nothing.
			grant = true
		}
	}
	c.publishTo(c.nodeChannel(m.From), message{Type: msgVote, Term: m.Term, Seq: s.term, To: m.From, Flags: grantFlag(grant), Ago: c.agoMicros(now)})
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
func (c *core) agoMicros(now time.Time) uint64 {
	if c.st.heardLead.IsZero() {
		return neverHeard
	}
	return uint64(now.Sub(c.st.heardLead) / time.Microsecond)
}

// campaign starts a round: a pre-vote, or straight to the vote for a named
// successor.
func (c *core) campaign(now time.Time, handover bool) {
	s := &c.st
	s.role = Candidate
	s.round++
	s.handover = handover
	s.electionAt = time.Time{}
	s.grants = map[string]time.Time{}
	s.roundStart, s.roundEnd = now, now.Add(c.roundTimeout())
	s.sizeWait = c.cfg.ClusterSize == 0
	if s.sizeWait {
		// Rule 10: nodes this one cannot hear still count, as long as
		// Redis says they are subscribed.
		c.emit(output{kind: outNumSub, channel: c.channel, round: s.round})
	}
	if handover {
		c.startVote(now)
		return
	}
	s.preVote, s.waitTerm = true, false
	s.roundTerm = s.term + 1
	if c.linkUp(now) {
		s.grants[c.cfg.ID] = time.Time{}
	}
	flags := uint8(0)
	if s.goneLeader != "" {
		flags = flagLeaderGone
	}
	c.logf(slog.LevelDebug, "pre-vote", "term", s.roundTerm, "gone", s.goneLeader)
	c.publish(message{Type: msgPreVote, Term: s.roundTerm, To: s.goneLeader, Flags: flags}, now)
	c.checkPreVote(now)
}

// extendRound keeps a round that is still gathering grants open for half
// a round more, up to four rounds from the campaign's start: on a starved
// machine grants trickle in more slowly than a round lasts, and a round cut
// short elects nobody and costs a term.
func (c *core) extendRound(now time.Time) {
	s := &c.st
	end := now.Add(c.roundTimeout() / 2)
	if limit := s.roundStart.Add(4 * c.roundTimeout()); end.After(limit) {
		end = limit
	}
	if end.After(s.roundEnd) {
		s.roundEnd = end
	}
}

func (c *core) checkPreVote(now time.Time) {
	if !c.st.sizeWait && len(c.st.grants) >= c.quorum(now) {
		c.startVote(now)
	}
}

// startVote asks Redis for a new term (rule 11).
//
// The vote round lasts at least twice as long as the pre-vote took: on a
// starved machine a quorum's answers take longer than a round, and a round
// that always ends first elects nobody.
func (c *core) startVote(now time.Time) {
	s := &c.st
	s.preVote, s.waitTerm = false, true
	s.roundEnd = now.Add(max(c.roundTimeout(), 2*now.Sub(s.roundStart)))
	c.emit(output{kind: outTermKey, round: s.round, term: s.term})
}

// termAnswer: the term script of round answered n, or failed with err.
func (c *core) termAnswer(now time.Time, round uint64, n int64, err error) []output {
	c.begin(now)
	s := &c.st
	if s.role != Candidate || !s.waitTerm || round != s.round {
		return c.out
	}
	if err == nil && n <= 0 {
		err = fmt.Errorf("leader: the term script answered %d", n)
	}
	if err != nil {
		// Rule 11 admits no fallback: a term taken without the key could
		// repeat one that a node forgotten by a restart already won, and
		// fencing tokens would go back. End the round and try again later.
		s.termKeyErrors++
		c.termKeyFailed(now, err)
		s.failed++
		c.becomeFollower(now, "the term key could not be written")
		return c.out
	}
	term := max(s.term, s.voteFloor) + 1 // never a term it may have voted in before a restart
	if uint64(n) > term {
		term = uint64(n)
	}
	s.waitTerm = false
	s.term, s.votedFor, s.roundTerm = term, c.cfg.ID, term
	s.elections++
	s.grants = map[string]time.Time{}
	if c.linkUp(now) || s.handover {
		s.grants[c.cfg.ID] = s.heardLead // its own, exactly
	}
	flags := uint8(0)
	to := ""
	if s.goneLeader != "" && !s.handover {
		flags, to = flagLeaderGone, s.goneLeader
	}
	c.logf(slog.LevelDebug, "election", "term", term)
	c.publish(message{Type: msgVoteRequest, Term: term, To: to, Flags: flags}, now)
	c.checkVotes(now)
	return c.out
}

// termKeyFailed logs a failed write of the term key: a permission that is
// missing once, plainly, since no retry can succeed; anything else as a
// warning, at most once a second.
func (c *core) termKeyFailed(now time.Time, err error) {
	s := &c.st
	c.redisError("term key", err)
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "NOPERM"):
		if !s.termKeyNoPerm {
			s.termKeyNoPerm = true
			c.logf(slog.LevelError, "the Redis user may not write the term key with EVAL, so this node can never stand for election: grant it +eval and the key", "key", c.termKey, "err", msg)
		}
		return
	case now.Sub(s.termKeyWarned) < time.Second:
		return
	}
	s.termKeyWarned = now
	hint := "no new term until the term key can be written; retrying"
	switch {
	case strings.HasPrefix(msg, "OOM"):
		hint = "Redis is out of memory (maxmemory with noeviction?): no new term until the term key can be written; retrying"
	case strings.HasPrefix(msg, "MOVED"), strings.HasPrefix(msg, "ASK"):
		hint = "the term key lives on another Redis Cluster node: dial the node that owns its slot; retrying"
	case strings.HasPrefix(msg, "READONLY"):
		hint = "connected to a read-only replica: dial the primary; retrying"
	}
	c.logf(slog.LevelWarn, "could not write the term key: "+hint, "key", c.termKey, "err", msg, "failures", s.termKeyErrors)
}

func (c *core) checkVotes(now time.Time) {
	if !c.st.sizeWait && len(c.st.grants) >= c.quorum(now) {
		c.becomeLeader(now)
	}
}

// becomeLeader takes the term won. The node is not active yet: that needs a
// quorum of acks (rule 4) and the end of any lease the old leader could
// still hold (rule 12).
func (c *core) becomeLeader(now time.Time) {
	s := &c.st
	s.electedSize = c.groupSize(now) // the candidate's, before the role changes
	// Wait out LeaseTimeout from the most recent leader heartbeat any voter
	// heard: the old lease cannot outlast that (rule 12). After a normal
	// timeout every voter heard its leader over PeerTimeout ago: no wait.
	// Each voter's moment is bounded when its vote arrived, and its own
	// this node knows: the wait does not grow by the time the votes took.
	var wait time.Duration
	for _, heard := range s.grants {
		if !heard.IsZero() {
			wait = max(wait, heard.Add(c.cfg.LeaseTimeout).Sub(now))
		}
	}
	if wait > 0 {
		// The old leader notices its lease end on its own clock and stops
		// its callback a moment later: keep half the margin New demands
		// between LeaseTimeout and PeerTimeout.
		wait += c.cfg.PeerTimeout / 20
	}
	s.role, s.leader, s.leaderTerm, s.leaderInc = Leader, c.cfg.ID, s.term, c.inc
	s.electedAt, s.notBefore = now, now.Add(max(wait, 0))
	s.lastElection = now.Sub(s.roundStart)
	s.leaseEnd, s.seq, s.selfAcked, s.ackers = time.Time{}, 0, 0, [64]int{}
	s.resigning, s.successor, s.heir = false, "", ""
	s.electionAt, s.goneLeader, s.failed = time.Time{}, "", 0
	for _, p := range s.peers {
		p.acked = 0
	}
	s.live.valid = false
	base := s.electedSize
	if c.cfg.ClusterSize > 0 {
		base = c.cfg.ClusterSize
	}
	c.logf(slog.LevelInfo, "won election", "term", s.term, "votes", len(s.grants), "quorum", base/2+1, "of", base, "wait", max(wait, 0))
	c.reportLeader(now, c.cfg.ID, s.term, "")
	c.sendHeartbeat(now)
}

// reportLeader tells the user (OnNewLeader, and Leader and Status from
// now on) that this node follows id in term, or, with id "", that it has
// no leader any more and why. Each change is reported once, with a log
// record at INFO: a failover can be read from any node's log.
func (c *core) reportLeader(now time.Time, id string, term uint64, why string) {
	s := &c.st
	if s.toldSaid && s.toldID == id && (id == "" || s.toldTerm == term) {
		return
	}
	last := s.toldID
	s.toldSaid, s.toldID, s.toldTerm = true, id, term
	if id == "" {
		if last == "" {
			return
		}
		s.lostAt = now
		if last != c.cfg.ID {
			c.logf(slog.LevelInfo, "lost the leader", "leader", last, "term", term, "why", why)
		}
	} else {
		attrs := []any{"leader", id, "term", term}
		if !s.lostAt.IsZero() {
			s.leaderless = now.Sub(s.lostAt)
			attrs = append(attrs, "without_leader", s.leaderless)
			s.lostAt = time.Time{}
		}
		if id != c.cfg.ID {
			c.logf(slog.LevelInfo, "following", attrs...)
		}
	}
	c.emit(output{kind: outNewLeader, id: id, term: term})
}

// becomeFollower leaves the leader and candidate roles.
func (c *core) becomeFollower(now time.Time, why string) {
	s := &c.st
	if s.role == Leader {
		c.logf(slog.LevelInfo, "stepped down", "term", s.term, "why", why)
		if s.active {
			// The lapse and the handovers stop the callback themselves;
			// what is left is a newer leader.
			c.stopLeading(0, ErrSuperseded)
		}
		s.leader = ""
		c.reportLeader(now, "", s.term, why)
	}
	c.emit(output{kind: outHandedOver}) // no longer leading: nothing left to hand over
	s.role = Follower
	s.round++
	s.preVote, s.waitTerm, s.handover, s.resigning, s.sizeWait = false, false, false, false, false
	s.leaseEnd = time.Time{}
	if s.electionAt.IsZero() && !c.cfg.Observer {
		s.electionAt = now.Add(c.roundTimeout() + c.randDuration(c.jitter()))
	}
}

// ack records that node p (nil: this node) acked heartbeat seq, and extends
// the lease to sendTime(s*)+LeaseTimeout, where s* is the highest seq a
// quorum acked (rule 4).
func (c *core) ack(from string, p *peer, seq uint64, now time.Time) {
	s := &c.st
	if seq == 0 || seq > s.seq || s.seq-seq >= uint64(len(s.sentAt)) {
		return
	}
	last := &s.selfAcked
	if p != nil {
		last = &p.acked
	}
	if seq <= *last {
		return
	}
	// This node acked every seq from its last ack to seq now: count it
	// for each (within the window of sentAt), so that finding s* takes a
	// look at the window, not at every node of a large group.
	w := uint64(len(s.ackers))
	for k := max(*last+1, s.seq-min(s.seq, w-1)); k <= seq; k++ {
		s.ackers[k%w]++
	}
	*last = seq
	if p != nil {
		c.recount(from, p, now) // a leader counts the nodes that acked
	}
	// The newest seq that a quorum acked is s*.
	q := c.quorum(now)
	for k := s.seq; k > 0 && s.seq-k < w; k-- {
		if s.ackers[k%w] >= q {
			if end := s.sentAt[k%w].Add(c.cfg.LeaseTimeout); end.After(s.leaseEnd) {
				s.leaseEnd = end
			}
			break
		}
	}
	if !s.active && s.activeAt(now) && !s.cbBusy {
		c.startLeading(now)
	}
}

// quorum is a majority of ClusterSize (strict) or of the live nodes
// (dynamic), this node included only while its messages echo back.
func (c *core) quorum(now time.Time) int {
	if c.cfg.ClusterSize > 0 {
		return c.cfg.ClusterSize/2 + 1
	}
	return c.groupSize(now)/2 + 1
}

// groupSize is the number of nodes a dynamic quorum is a majority of.
func (c *core) groupSize(now time.Time) int {
	s := &c.st
	n := max(c.countLive(now), s.size)
	if s.role == Leader {
		// A leader's quorum never drops below the one that elected it:
		// only a new election shrinks it.
		return max(n, s.electedSize)
	}
	// Followers do not hear each other's acks, so a follower's own count
	// can be short of the truth; the leader's last count is a floor for a
	// PeerTimeout, which is also how long its own entry would have counted.
	if s.knownLive > n && now.Sub(s.knownLiveAt) < c.cfg.PeerTimeout {
		n = s.knownLive
	}
	// Redis's own count of the group channel's subscribers, which a
	// candidate asks for, is a floor too: it counts the nodes this one
	// cannot hear (a deaf link, a paused process) as long as their
	// connections are open. A stray subscriber makes the quorum larger,
	// never smaller: it can cost availability, never safety.
	if s.redisSize > n && now.Sub(s.redisSizeAt) < c.cfg.PeerTimeout {
		n = s.redisSize
	}
	return n
}

// countLive counts the nodes heard within PeerTimeout, this node included
// while it is connected. A leader counts only the nodes that acked it: one
// that is heard but does not ack cannot hear the leader, so it hears nobody
// (there is one channel) and can vote for no rival; counting it would only
// make a healthy leader's lease lapse when nodes come back (their publisher
// reconnects before their subscriber does).
func (c *core) countLive(now time.Time) int {
	s := &c.st
	n := 0
	if c.linkUp(now) {
		n++
	}
	// Counting every peer at every step would make a large group
	// quadratic (a leader steps once per ack, a follower once per
	// broadcast), so the count is kept up to date as peers are heard, and
	// a heap of the counted peers' deadlines says which to look at again.
	l := &s.live
	if !l.valid || l.role != s.role {
		l.valid, l.role, l.n, l.due = true, s.role, 0, l.due[:0]
		for id, p := range s.peers {
			p.counted = false
			c.recount(id, p, now)
		}
	}
	for len(l.due) > 0 && !now.Before(l.due[0].at) {
		d := heap.Pop(&l.due).(deadline)
		if p := s.peers[d.id]; p != nil && p.counted {
			if c.counts(p, now) {
				heap.Push(&l.due, deadline{p.heard.Add(c.cfg.PeerTimeout), d.id}) // heard since
			} else {
				p.counted = false
				l.n--
			}
		}
	}
	return n + l.n
}

// counts says whether countLive counts p.
func (c *core) counts(p *peer, now time.Time) bool {
	return now.Sub(p.heard) < c.cfg.PeerTimeout && (c.st.role != Leader || p.acked > 0)
}

// recount adds p to countLive's count if it counts now and did not.
func (c *core) recount(id string, p *peer, now time.Time) {
	l := &c.st.live
	if !l.valid || p.counted || !c.counts(p, now) {
		return
	}
	p.counted = true
	l.n++
	heap.Push(&l.due, deadline{p.heard.Add(c.cfg.PeerTimeout), id})
}

// liveCount is countLive's count of peers, for role, with a deadline in
// due for each counted peer: when it passes, the peer is looked at again.
type liveCount struct {
	valid bool
	role  State
	n     int
	due   deadlines
}

type deadline struct {
	at time.Time
	id string
}

// deadlines is a min-heap by time (container/heap).
type deadlines []deadline

func (h deadlines) Len() int           { return len(h) }
func (h deadlines) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deadlines) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlines) Push(x any)        { *h = append(*h, x.(deadline)) }
func (h *deadlines) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// linkUp reports whether this node's link to Redis works both ways: its
// own broadcast echoed back, or, for a follower that only acks, a PUBLISH
// was answered and the subscription delivered something, both within
// PeerTimeout.
func (c *core) linkUp(now time.Time) bool {
	s, pt := &c.st, c.cfg.PeerTimeout
	if !s.subscribed {
		return false
	}
	if !s.selfEcho.IsZero() && now.Sub(s.selfEcho) < pt {
		return true
	}
	return now.Sub(c.pubOK) < pt && now.Sub(c.recvAt) < pt
}

// leaderGone is how long a leader must have been silent before a follower
// stands or votes for another (rules 1 and 3): by then its lease has
// ended, since a lease ends LeaseTimeout after a heartbeat was sent, which
// is before any node heard it. Half of the margin New demands between
// LeaseTimeout and PeerTimeout is kept for the rates of the two clocks
// and a late step of the leader. Waiting the whole PeerTimeout would
// protect nothing more: a leader that a quorum has not heard from for
// this long has no lease, and steps down.
func (cfg *Config) leaderGone() time.Duration { return (cfg.LeaseTimeout + cfg.PeerTimeout) / 2 }

// roundTimeout is how long a candidate waits for its pre-votes or votes,
// and how long a voter gives the candidate it voted for.
func (c *core) roundTimeout() time.Duration {
	return 2 * c.cfg.HeartbeatInterval * time.Duration(min(c.backoff(), 4))
}

// jitter is the upper bound of the random delay before campaigning.
func (c *core) jitter() time.Duration {
	return c.cfg.ElectionJitter * time.Duration(c.backoff())
}

// heirGuard is how long the heir waits, once it lost its leader, before it
// stands: the spread of the moments the followers stop hearing the leader
// (rule 13).
func (c *core) heirGuard() time.Duration { return c.jitter() / 5 }

// backoff is 1, and after the second round in a row that elected nobody, 2,
// 4, then 8 (rule 14). A single split vote, the usual case, changes nothing.
func (c *core) backoff() int {
	return 1 << min(max(c.st.failed-1, 0), 3)
}

// noticeStall applies rule 9 to a loop that did not run for over two
// heartbeat intervals.
func (c *core) noticeStall(now time.Time) {
	s := &c.st
	if !s.lastTick.IsZero() && now.Sub(s.lastTick) > 2*c.cfg.HeartbeatInterval {
		// On a loaded host this happens often: one record per 10 s, with
		// the count, not one per stall.
		s.stalls++
		if now.Sub(s.stallLogged) >= 10*time.Second {
			c.logf(slog.LevelInfo, "stalled; listening again before trusting the live count", "for", now.Sub(s.lastTick), "stalls", s.stalls)
			s.stallLogged, s.stalls = now, 0
		}
		s.stallUntil = now.Add(c.cfg.PeerTimeout)
	}
	s.lastTick = now
}

// tick does what is due at now (heartbeats, lease checks, elections) and
// returns it, with the time by which tick must run again.
func (c *core) tick(now time.Time) ([]output, time.Time) {
	c.begin(now)
	c.noticeStall(now)
	c.due(now)
	return c.out, c.nextWake(now)
}

func (c *core) due(now time.Time) {
	s := &c.st
	c.answerHeld(now)
	if !s.answerAt.IsZero() && !now.Before(s.answerAt) {
		s.answerAt, s.answeredAt = time.Time{}, now
		c.broadcast(now, 0, true)
	}
	if !s.whoRetry.IsZero() && !now.Before(s.whoRetry) {
		s.whoRetry = time.Time{}
		if c.learning(now) {
			c.broadcast(now, helloMark, true)
			c.askWho(now)
		}
	}
	// The group size may shrink only after a PeerTimeout of listening: a
	// node that was paused or disconnected keeps the size it knew, so it
	// cannot make a majority of itself alone. (While it is disconnected
	// it hears nobody, which says nothing about its peers.) What it knew
	// includes its leader's count: a follower hears the leader, not the
	// other followers, whose acks go to the leader's channel, so its own
	// count is two however large the group.
	live := c.countLive(now)
	if s.knownLive > live && now.Sub(s.knownLiveAt) < c.cfg.PeerTimeout {
		live = s.knownLive
	}
	if !s.subscribed || now.Before(s.joinUntil) || now.Before(s.stallUntil) || now.Before(s.sizeHold) {
		s.size = max(s.size, live)
	} else {
		s.size = live
	}
	switch s.role {
	case Leader:
		if s.resigning {
			return
		}
		if !s.active {
			if s.activeAt(now) {
				if !s.cbBusy {
					c.startLeading(now)
				}
			} else if now.Sub(s.notBefore) >= 2*c.cfg.HeartbeatInterval {
				// Elected, but no quorum acked within two heartbeats: the
				// followers that still hear us (we may only be deaf) need
				// not wait out PeerTimeout for a leader without a lease.
				c.publish(c.resignMessage("", now), now)
				c.becomeFollower(now, "no quorum acked")
				return
			}
		}
		if s.active && c.preferred(now) {
			return
		}
		if now.Sub(s.lastSent) >= c.cfg.HeartbeatInterval {
			c.sendHeartbeat(now)
		}
	case Candidate:
		if !now.Before(s.roundEnd) {
			s.failed++
			c.logf(slog.LevelDebug, "round failed", "term", s.roundTerm, "grants", len(s.grants), "failed", s.failed)
			c.becomeFollower(now, "round timed out")
		}
	case Follower:
		silent := now.Sub(s.heardLead)
		// While its leader is heard, a follower only acks. Without one, or
		// once its leader has been silent for half of leaderGone, it broadcasts
		// every PeerTimeout/3, so that the others learn who is live before
		// anyone campaigns: each live node is heard at least twice in any
		// PeerTimeout. Not sooner and not more often: each broadcast goes to
		// every node, N² deliveries a round (in a group of 129, 165,000 a
		// second at every HeartbeatInterval, enough to starve a small
		// machine), and after a crash the fast path has usually elected a
		// new leader before PeerTimeout/2.
		// Before its first subscription it says nothing: it could not hear
		// an answer (a process with its ID would warn, and answer once,
		// to nobody), and its first heartbeat goes out once it is
		// subscribed.
		if (s.leader == "" || silent >= c.cfg.leaderGone()/2) && now.Sub(s.lastSent) >= c.cfg.PeerTimeout/3 && (s.subscribed || !s.startUntil.IsZero()) {
			c.sendHeartbeat(now)
		}
		if s.leader != "" && silent >= c.cfg.HeartbeatInterval*3/2 && !s.numsubBusy &&
			now.Sub(s.numsubAt) >= c.cfg.HeartbeatInterval && s.goneLeader == "" {
			s.numsubBusy, s.numsubAt = true, now
			c.emit(output{kind: outNumSub, channel: c.nodeChannel(s.leader), id: s.leader})
		}
		if c.cfg.Observer || s.joinUntil.IsZero() || now.Before(s.joinUntil) || now.Before(s.stallUntil) || !c.linkUp(now) {
			return
		}
		gone := s.goneLeader != "" && s.goneLeader == s.leader
		if s.leader != "" && silent < c.cfg.leaderGone() && !gone {
			return
		}
		if s.leader != "" && silent >= c.cfg.leaderGone() {
			c.reportLeader(now, "", s.term, "silent for "+c.cfg.leaderGone().String())
		}
		if s.heardLead.IsZero() || silent >= c.cfg.leaderGone() || gone {
			if s.electionAt.IsZero() {
				// The guard covers the spread of the moments the followers
				// stop hearing the leader: a vote request from the heir
				// must not reach one that still does. When this node lost
				// it longer ago than leaderGone and the guard (Redis was
				// down, or this node cut off), that spread is over too;
				// but the others may not be back yet, unless it heard a
				// quorum of them since it resubscribed (rule 8). In strict
				// mode, which does not listen, the heir waits for that
				// while its hello's answers count, and no longer.
				guard := c.heirGuard()
				if silent >= c.cfg.leaderGone()+guard {
					switch {
					case s.heardQuorum:
						guard = 0
					case s.hello && c.cfg.ClusterSize > 0:
						if c.learning(now) && s.heir == c.cfg.ID {
							return
						}
						guard = 0 // its answers no longer count: the guard is over
					}
				}
				s.electionAt = now.Add(c.afterLeaderLost(c.jitter(), guard))
			}
			if !now.Before(s.electionAt) {
				c.campaign(now, false)
			}
		}
	}
}

// nextWake is when tick next may have something to do. Only future times
// count: a deadline already past that tick did not act on (its other
// conditions did not hold) is looked at again on the next event, and the
// loop wakes at least every HeartbeatInterval.
func (c *core) nextWake(now time.Time) time.Time {
	s := &c.st
	next := now.Add(c.cfg.HeartbeatInterval)
	at := func(t time.Time) {
		if t.After(now) && t.Before(next) {
			next = t
		}
	}
	at(s.lastSent.Add(c.cfg.HeartbeatInterval))
	at(s.answerAt)
	at(s.whoRetry)
	if c.learning(now) {
		at(s.helloUntil)
	}
	switch s.role {
	case Leader:
		if s.active {
			at(s.leaseEnd)
		} else {
			at(s.notBefore)
			at(s.notBefore.Add(2 * c.cfg.HeartbeatInterval))
		}
	case Candidate:
		at(s.roundEnd)
	case Follower:
		at(s.electionAt)
		at(s.joinUntil)
		at(s.stallUntil)
		at(s.lastSent.Add(c.cfg.PeerTimeout / 3))
		if s.leader != "" {
			at(s.heardLead.Add(c.cfg.HeartbeatInterval * 3 / 2))
			at(s.heardLead.Add(c.cfg.leaderGone() / 2))
			at(s.heardLead.Add(c.cfg.leaderGone()))
			at(s.numsubAt.Add(c.cfg.HeartbeatInterval))
		}
	}
	return next
}

// sendHeartbeat broadcasts this node's heartbeat: the leader's carries a new
// seq and its count of live nodes; a follower's carries its ack of the last
// leader heartbeat.
func (c *core) sendHeartbeat(now time.Time) { c.broadcast(now, 0, false) }

// broadcast is sendHeartbeat, with Ago set to ago: helloMark for the hello
// after a resubscription (rule 8). With toGroup, a strict-mode follower
// too publishes on the group's channel: a hello and its answers are for
// the others to hear.
func (c *core) broadcast(now time.Time, ago uint64, toGroup bool) {
	s := &c.st
	m := message{Type: msgHeartbeat, Term: s.term, Ago: ago}
	if s.role == Leader {
		s.seq++
		s.sentAt[s.seq%uint64(len(s.sentAt))] = now
		s.ackers[s.seq%uint64(len(s.ackers))] = 0
		s.nodes = c.countLive(now)
		m.Flags, m.Seq, m.Live = flagLeader, s.seq, uint64(s.nodes)
		m.To = c.nameHeir(now)
	} else if s.leader != "" {
		m.Seq, m.To = s.leaderSeq, s.leader
	}
	if s.role != Leader && c.cfg.ClusterSize > 0 && !toGroup {
		// In strict mode the quorum is fixed, and what a follower's
		// broadcast tells the others (that it is live) counts for
		// nothing: it would cost N² deliveries a round before a first
		// leader and after a crash, which 1025 Electors on a small
		// machine cannot afford. It publishes to its own channel instead:
		// the echo still proves its link both ways.
		s.lastSent = now
		c.publishTo(c.selfChan, m)
		return
	}
	c.publish(m, now)
}

// startLeading asks the shell to start the leader callback.
func (c *core) startLeading(now time.Time) {
	s := &c.st
	s.active, s.cbBusy = true, true
	c.logf(slog.LevelInfo, "leading", "term", s.term, "after", now.Sub(s.electedAt))
	c.emit(output{kind: outStartLeading, term: s.term, at: s.leaseEnd})
}

// stopLeading asks the shell to cancel the leader callback for cause;
// round > 0 says a handover waits for it to return.
func (c *core) stopLeading(round uint64, cause error) {
	c.st.active = false
	c.st.stepDowns++
	for i, e := range stopCauses {
		if e == cause {
			c.st.stepDownsBy[i]++
		}
	}
	c.emit(output{kind: outStopLeading, round: round, cause: cause})
}

// publish queues m for the group channel.
func (c *core) publish(m message, now time.Time) {
	c.st.lastSent = now
	c.publishTo(c.channel, m)
}

// publishNotify is publish, and the handover waiters learn when it is done.
func (c *core) publishNotify(m message, now time.Time) {
	c.publish(m, now)
	c.out[len(c.out)-1].notify = true
}

// publishTo queues m for one channel.
func (c *core) publishTo(channel string, m message) {
	m.From, m.Inc, m.Prio = c.cfg.ID, c.inc, uint64(c.cfg.Priority)
	if c.cfg.Observer {
		m.Flags |= flagObserver
	}
	c.emit(output{kind: outPublish, channel: channel, msg: m})
}

// prunePeers forgets peers not heard for many PeerTimeouts.
func (c *core) prunePeers(now time.Time) {
	for id, p := range c.st.peers {
		if now.Sub(p.heard) > 10*c.cfg.PeerTimeout {
			if p.counted { // countLive did not run since it timed out
				c.st.live.n--
			}
			delete(c.st.peers, id)
		}
	}
}

// randDuration is uniform in [0, d].
func (c *core) randDuration(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(c.rnd.Int64N(int64(d) + 1))
}

// heardBy is the latest moment, on this node's clock, at which a voter
// whose vote arrived at now heard a leader, by the vote's Ago; zero if it
// never heard one.
func heardBy(now time.Time, ago uint64) time.Time {
	if ago == neverHeard {
		return time.Time{}
	}
	return now.Add(-agoDuration(ago))
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
// term, seq, ago, live, stamp and priority, then the sender's incarnation (8 bytes
// little-endian), then from and to as uvarint-length-prefixed strings, and,
// when the group has a Secret, one HMAC-SHA256 per signing key (two during
// a rotation). Binary, so decoding one allocates only the two strings.
//
// What a signature covers, and why:
//
//   - The channel the message is published on (its length, then its name),
//     and the message. Redis delivers the channel with every message, so the
//     receiver checks the pair: a message copied into another group's
//     channel, another DB's, or from a node's own channel to the group's,
//     fails the check. Signing the bytes alone would let a client without
//     the key move a healthy group to another group's higher term.
//   - The stamp: the sender's monotonic clock in microseconds since its
//     Elector was created, strictly increasing from message to message.
//     With the incarnation it makes every message unique, so a receiver
//     drops any message whose stamp is not newer than the last one it
//     accepted from that incarnation: a replay, even of a leader it has
//     since forgotten, changes nothing. The receiver also drops a message
//     delivered more than PeerTimeout later than the sender's earlier
//     messages were (receipt time minus stamp, on the receiver's own clock,
//     against the smallest such difference it saw from that incarnation):
//     a message it missed while disconnected cannot be replayed later.
//     Neither check needs the clocks to agree.
const (
	wireMagic   = 0xA7
	wireVersion = 2
	macSize     = sha256.Size
	// neverHeard is the Ago of a voter that never heard a leader.
	neverHeard = 1<<63 - 1
	// maxKeys is how many keys may sign one message: Secret and PreviousSecret.
	maxKeys = 2
)

type msgType uint8

const (
	msgHeartbeat    msgType = iota + 1 // leader: Seq, Live, To=heir; follower: To=leader, Seq=ack; Ago: helloMark for a hello
	msgPreVote                         // Term: proposed; To: gone leader, if any
	msgPreVoteReply                    // Term: proposed; Seq: voter's term; To: candidate
	msgVoteRequest                     // Term: stood for; To: gone leader, if any
	msgVote                            // Term; Seq: voter's term; To: candidate; Ago
	msgResign                          // Term; To: successor; Ago: 1 if the sender still waited out an older lease
	msgTypeEnd
)

// helloMark in a heartbeat's Ago makes it a hello: its sender has just
// resubscribed and asks every node that hears it to broadcast a heartbeat
// of its own (rule 8). Nodes of earlier versions ignore Ago in a heartbeat,
// so they do not answer, and a node waiting for them listens out its two
// heartbeats.
const helloMark = 1

// Flags.
const (
	flagLeader     = 1 << iota // heartbeat from the leader
	flagObserver               // the sender never stands
	flagGranted                // pre-vote or vote granted
	flagLeaderGone             // Redis says To's process is gone (rule 12)
	flagSigned                 // an HMAC follows
	flagTwoMACs                // with flagSigned: two HMACs follow (a key rotation)

	knownFlags = flagLeader | flagObserver | flagGranted | flagLeaderGone | flagSigned | flagTwoMACs
)

type message struct {
	Type  msgType
	Flags uint8
	Term  uint64
	Seq   uint64
	Ago   uint64 // vote: microseconds since the voter heard a leader
	Live  uint64 // leader heartbeat: live nodes the leader counts, itself included
	Stamp uint64 // the sender's clock, µs since its Elector was created; set by the shell
	Prio  uint64 // the sender's Priority
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
	errNoSecret  = errors.New("signed message, and this node has no Secret")
	errTrailing  = errors.New("trailing bytes")
	errField     = errors.New("bad field")
)

// signer signs and verifies messages with a node's keys, for one goroutine.
type signer struct {
	keys    []hash.Hash // Secret, then PreviousSecret if set
	scratch []byte      // the channel's prefix, so writing it allocates nothing
	sum     []byte
}

// newSigner returns a signer for cfg's keys, or nil without Secret.
func newSigner(cfg *Config) *signer {
	if len(cfg.Secret) == 0 {
		return nil
	}
	sg := &signer{scratch: make([]byte, 0, 64), sum: make([]byte, 0, macSize)}
	for _, k := range [][]byte{cfg.Secret, cfg.PreviousSecret} {
		if len(k) > 0 {
			sg.keys = append(sg.keys, hmac.New(sha256.New, k))
		}
	}
	return sg
}

// mac appends key k's HMAC of channel and body to b.
func (sg *signer) mac(b []byte, k int, channel string, body []byte) []byte {
	h := sg.keys[k]
	h.Reset()
	sg.scratch = binary.AppendUvarint(sg.scratch[:0], uint64(len(channel)))
	sg.scratch = append(sg.scratch, channel...)
	h.Write(sg.scratch)
	h.Write(body)
	return h.Sum(b)
}

// verify reports whether one of macs (concatenated) is the HMAC of channel
// and body under one of the keys.
func (sg *signer) verify(channel string, body, macs []byte) bool {
	for k := range sg.keys {
		sg.sum = sg.mac(sg.sum[:0], k, channel, body)
		for t := 0; t+macSize <= len(macs); t += macSize {
			if hmac.Equal(sg.sum, macs[t:t+macSize]) {
				return true
			}
		}
	}
	return false
}

// appendMessage encodes m, for channel, after b; with sg set it signs it
// with every key of sg.
func appendMessage(b []byte, channel string, m *message, sg *signer) []byte {
	flags := m.Flags &^ (flagSigned | flagTwoMACs)
	if sg != nil {
		flags |= flagSigned
		if len(sg.keys) > 1 {
			flags |= flagTwoMACs
		}
	}
	start := len(b)
	b = append(b, wireMagic, wireVersion, byte(m.Type), flags)
	b = binary.AppendUvarint(b, m.Term)
	b = binary.AppendUvarint(b, m.Seq)
	b = binary.AppendUvarint(b, m.Ago)
	b = binary.AppendUvarint(b, m.Live)
	b = binary.AppendUvarint(b, m.Stamp)
	b = binary.AppendUvarint(b, m.Prio)
	b = binary.LittleEndian.AppendUint64(b, m.Inc)
	b = binary.AppendUvarint(b, uint64(len(m.From)))
	b = append(b, m.From...)
	b = binary.AppendUvarint(b, uint64(len(m.To)))
	b = append(b, m.To...)
	if sg != nil {
		end := len(b)
		for k := range sg.keys {
			b = sg.mac(b, k, channel, b[start:end])
		}
	}
	return b
}

// reader decodes messages for one goroutine, and drops repeats and stale
// ones (see fresh).
type reader struct {
	sg     *signer           // checks signatures; nil: no Secret, and signed messages are refused
	keys   string            // its keys, to tell readers that decode alike (see link.deliver)
	names  map[string]string // interns node IDs, bounded by maxPeers; may be nil
	seen   map[origin]*seen  // per sender incarnation, what fresh knows
	window time.Duration     // how much later than its peers a message may arrive: PeerTimeout
}

// origin is one incarnation of one sender.
type origin struct {
	from string
	inc  uint64
}

// seen is what a reader knows of one sender incarnation.
type seen struct {
	stamp  uint64        // the newest stamp accepted
	offset time.Duration // receipt time minus stamp: the smallest seen, allowing for drift
	at     time.Duration // receipt time of the newest message accepted
}

func newReader(sg *signer, window time.Duration) *reader {
	return &reader{sg: sg, names: make(map[string]string), seen: make(map[origin]*seen), window: window}
}

// decode parses b, received on channel, into m and checks its signature.
// Decoding a message from a known sender allocates nothing. It never
// panics on any input. On a signature error m holds the unverified fields,
// for the log.
func (rd *reader) decode(channel string, b []byte, m *message) error {
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
	if m.Flags&^knownFlags != 0 || m.Flags&(flagSigned|flagTwoMACs) == flagTwoMACs {
		return errField
	}
	macs := 0
	if m.Flags&flagSigned != 0 {
		macs = 1
		if m.Flags&flagTwoMACs != 0 {
			macs = maxKeys
		}
	}
	if len(b) < 4+macs*macSize {
		return errShort
	}
	body := b[:len(b)-macs*macSize]
	d := decoder{b: body[4:], names: rd.names}
	m.Term = d.uvarint()
	m.Seq = d.uvarint()
	m.Ago = d.uvarint()
	m.Live = d.uvarint()
	m.Stamp = d.uvarint()
	m.Prio = d.uvarint()
	m.Inc = d.uint64()
	m.From = d.str()
	m.To = d.str()
	switch {
	case d.err != nil:
		return d.err
	case len(d.b) != 0:
		return errTrailing
	case m.From == "":
		return errField
	}
	switch {
	case rd.sg == nil && macs > 0:
		return errNoSecret
	case rd.sg != nil && macs == 0:
		return errUnsigned
	case rd.sg != nil && !rd.sg.verify(channel, body, b[len(body):]):
		return errSignature
	}
	return nil
}

// fresh reports whether m, verified and received at now (on this node's
// clock, since its Elector was created), is neither a repeat of a message
// already accepted from its sender's incarnation nor delivered more than
// window later than that incarnation's earlier messages. It remembers m.
func (rd *reader) fresh(m *message, now time.Duration) bool {
	off := now - time.Duration(m.Stamp)*time.Microsecond
	k := origin{m.From, m.Inc}
	s := rd.seen[k]
	if s == nil {
		if len(rd.seen) >= maxPeers {
			// Forget the incarnations long silent, and only when full:
			// what is forgotten can be replayed once to this node.
			for k, s := range rd.seen {
				if now-s.at > 10*rd.window {
					delete(rd.seen, k)
				}
			}
			if len(rd.seen) >= maxPeers {
				return false
			}
		}
		rd.seen[k] = &seen{stamp: m.Stamp, offset: off, at: now}
		return true
	}
	if m.Stamp <= s.stamp {
		return false
	}
	// Clock rates drift apart far less than 1/1000, so the smallest offset
	// may creep up by that much of the time since it was last seen: a slow
	// sender's clock never makes its messages look stale.
	base := s.offset + (now-s.at)/1000
	if off > base+rd.window {
		return false
	}
	s.stamp, s.offset, s.at = m.Stamp, min(off, base), now
	return true
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

// ---------------------------------------------------------------------------
// The Redis shell
// ---------------------------------------------------------------------------

// run is the part of an Elector that exists while Run runs: its loop, the
// goroutines that apply the core's outputs, and its place on a link, the
// Redis connections (its own, or a Link's that it shares). Everything in it
// is used by the loop goroutine alone unless its comment says otherwise.
type run struct {
	e        *Elector
	l        atomic.Pointer[link] // its link; nil while it moves to another (Cluster)
	ctx      context.Context      // ends when Run is about to return
	wg       *sync.WaitGroup
	events   inbox        // to the loop, from the link's goroutines and waiters
	sg       *signer      // signs outgoing messages; nil without Secret
	stamp    uint64       // the stamp of the last message encoded
	rd       *reader      // decodes what the link routes here; used by the link's subscriber alone
	channels []string     // the group's channel and this node's own: what it subscribes to
	queued   atomic.Int32 // its commands in the link's queue (see maxQueued)
	moving   atomic.Bool  // on a Cluster: a move to another primary's link is under way

	// cb runs user code (callbacks, log records) on a goroutine of its
	// own, so that none of it runs on the loop.
	cb dispatcher

	// The running leader callback, if any.
	lead struct {
		ctx    context.Context
		cancel context.CancelCauseFunc
		done   chan struct{} // closed when OnStartedLeading returned
		watch  *leaseWatch
	}
	waiters []chan error // handovers owed an answer

	// A permanent failure ends Run with its error: abort records the
	// first one and ends the loop's context.
	fatal struct {
		once sync.Once
		err  error
		stop context.CancelFunc
	}
	// Failures of this Elector's own commands that retrying cannot mend
	// (an ACL that refuses its channels), since it last subscribed; those
	// of the connection are the link's.
	permanent atomic.Int64

	pubErrLogged     atomic.Int64 // when a PUBLISH error reply was last logged (since Elector.base)
	unverifiedLogged atomic.Int64 // when an unverifiable message was last logged (since Elector.base)
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
	evTerm             // the term script answered (or failed)
	evNumSub           // PUBSUB NUMSUB of a leader's channel answered
	evWho              // PUBSUB CHANNELS of the group's node channels answered
	evLeaderEnded      // the leader callback returned, for a handover
	evCallbackReturned // OnStoppedLeading ran
)

// event is what the link's goroutines and the waiters tell the loop.
type event struct {
	kind  eventKind
	msg   message
	n     int64    // evTerm: the script's result; evNumSub: subscribers
	id    string   // evNumSub: the leader asked about
	names []string // evWho: the channels
	round uint64
	err   error
}

// maxQueuedLogs bounds the log records waiting for a slow Logger; past it
// records are dropped (and counted) rather than growing memory.
const maxQueuedLogs = 4096

// runShell joins the link (starting it, if it is the Elector's own), starts
// the dispatcher, runs the loop until ctx ends (or a permanent failure ends
// it) and the handover is done, leaves the link and waits for every
// goroutine it started. It returns the permanent failure, if any.
func (e *Elector) runShell(ctx context.Context) error {
	ictx, stop := context.WithCancel(context.Background())
	r := &run{
		e:        e,
		ctx:      ictx,
		sg:       newSigner(&e.cfg),
		rd:       newReader(newSigner(&e.cfg), e.cfg.PeerTimeout),
		channels: []string{e.c.channel, e.c.selfChan},
	}
	r.rd.keys = string(e.cfg.Secret) + "\x00" + string(e.cfg.PreviousSecret)
	r.cb.wake = make(chan struct{}, 1)
	r.events.wake = make(chan struct{}, 1)
	lctx, lstop := context.WithCancel(ctx)
	r.fatal.stop = lstop
	var wg sync.WaitGroup
	r.wg = &wg
	wg.Go(func() { r.cb.run(ictx) })
	leave := e.join(r)

	r.loop(lctx)
	lstop()

	stop()
	leave() // the link's goroutines answer nothing more to this run
	wg.Wait()
	e.mu.Lock()
	st := &e.c.st
	st.subscribed, st.active = false, false
	st.role, st.leader, st.leaderTerm = Follower, "", 0
	e.mu.Unlock()
	return r.fatal.err
}

// join puts r on its link: the Config's Link, or a link of its own. The
// returned leave takes it off again (and stops its own link).
func (e *Elector) join(r *run) (leave func()) {
	if lk := e.cfg.Link; lk != nil {
		lk.acquire(r)
		return func() { lk.release(r) }
	}
	l := newLink(&e.cfg, false, e.log, r.logf)
	r.setLink(l)
	l.join(r)
	l.start()
	return func() {
		l.leave(r)
		l.stop()
	}
}

// setLink records l as r's link (nil: none, while it moves).
func (r *run) setLink(l *link) {
	r.l.Store(l)
	if l != nil {
		r.e.lk.Store(l)
	}
}

// abort ends Run with err, a failure that retrying cannot mend. Only the
// first one counts.
func (r *run) abort(err error) {
	r.fatal.once.Do(func() {
		r.fatal.err = err
		r.logf(slog.LevelError, "stopping", "err", err)
		r.fatal.stop()
	})
}

// loop is the only goroutine that steps the core, so no protocol step
// races another; it applies each step's outputs after the lock is
// released. When ctx ends it hands leadership over (bounded by PeerTimeout)
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
		case <-r.events.wake:
			if ev, ok := r.events.take(); ok {
				r.step(func(c *core, now time.Time) []output { return r.onEvent(c, ev, now) })
			}
		case cmd := <-e.cmds:
			r.command(cmd.to, cmd.strict, false, cmd.reply)
		case <-timer.C:
		case <-done:
			done = nil
			stopped = make(chan error, 1)
			deadline = time.After(e.cfg.PeerTimeout)
			r.command("", false, true, stopped)
			continue
		case <-stopped:
			r.finish()
			return
		case <-deadline:
			r.finish()
			return
		}
		var next time.Time
		r.step(func(c *core, now time.Time) []output {
			out, n := c.tick(now)
			next = n
			return out
		})
		timer.Reset(time.Until(next))
	}
}

// step runs f on the core under the lock, with the time read under it,
// then applies the outputs without the lock.
func (r *run) step(f func(c *core, now time.Time) []output) {
	e := r.e
	e.mu.Lock()
	e.syncLink()
	out := f(&e.c, time.Now())
	e.mu.Unlock()
	r.apply(out)
}

// syncLink hands the core the link's evidence that it works. The caller
// holds e.mu.
func (e *Elector) syncLink() {
	e.c.local = nil
	if p := e.local.Load(); p != nil {
		e.c.local = *p
	}
	if l := e.lk.Load(); l != nil {
		e.c.pubOK, e.c.recvAt = l.stamp(&l.pubOK), l.stamp(&l.recvAt)
	}
}

func (r *run) onEvent(c *core, ev event, now time.Time) []output {
	switch ev.kind {
	case evMessage:
		return c.receive(now, &ev.msg)
	case evSubscribed:
		return c.subscribed(now)
	case evDisconnected:
		return c.disconnected(now, ev.err)
	case evTerm:
		return c.termAnswer(now, ev.round, ev.n, ev.err)
	case evNumSub:
		return c.numSubAnswer(now, ev.id, ev.round, ev.n, ev.err)
	case evWho:
		return c.whoAnswer(now, ev.round, ev.names, ev.err)
	case evLeaderEnded:
		return c.leaderEnded(now, ev.round)
	case evCallbackReturned:
		return c.callbackDone(now)
	}
	return nil
}

// command asks the core for a handover (stopping: the one at the end of
// Run); reply gets the answer, now or once the handover is published.
func (r *run) command(to string, strict, stopping bool, reply chan error) {
	e := r.e
	e.mu.Lock()
	e.syncLink()
	var out []output
	var wait bool
	var err error
	if stopping {
		out, wait = e.c.shutdown(time.Now())
	} else {
		out, wait, err = e.c.handover(time.Now(), to, strict)
	}
	e.mu.Unlock()
	if wait {
		r.waiters = append(r.waiters, reply)
	} else {
		reply <- err
	}
	r.apply(out)
}

// finish stops a leader callback that is still running, at shutdown.
func (r *run) finish() {
	r.step(func(c *core, now time.Time) []output { return c.finish(now) })
	for _, w := range r.waiters {
		w <- ErrNotRunning
	}
	r.waiters = nil
}

// apply carries out a step's outputs, in order.
func (r *run) apply(out []output) {
	e := r.e
	for i := range out {
		o := &out[i]
		switch o.kind {
		case outPublish:
			var done func(error)
			if o.notify {
				waiters := r.waiters
				r.waiters = nil
				done = func(err error) {
					for _, w := range waiters {
						w <- err
					}
				}
			}
			r.publish(o.channel, &o.msg, done)
		case outTermKey:
			r.enqueue(job{kind: jobTerm, key: e.c.termKey, term: o.term, round: o.round})
		case outNumSub:
			r.enqueue(job{kind: jobNumSub, key: o.channel, id: o.id, round: o.round})
		case outWho:
			r.enqueue(job{kind: jobWho, key: globQuote(o.channel) + "*", round: o.round})
		case outStartLeading:
			r.startLeading(o.term, o.at)
		case outStopLeading:
			r.stopLeading(o.round, o.cause)
		case outNewLeader:
			if f := e.cfg.OnNewLeader; f != nil {
				id, term := o.id, o.term
				r.callback(func() { f(id, term) })
			}
		case outHandedOver:
			for _, w := range r.waiters {
				w <- nil
			}
			r.waiters = nil
		case outLog:
			r.logf(o.level, o.text, o.attrs...)
		}
	}
}

// startLeading starts the leader callback in its own goroutine, with a
// context that ends with the lease.
func (r *run) startLeading(term uint64, until time.Time) {
	e := r.e
	ctx, cancel := context.WithCancelCause(context.WithValue(context.Background(), electorKey{}, e))
	done := make(chan struct{})
	r.lead.cancel, r.lead.done, r.lead.ctx = cancel, done, ctx
	r.lead.watch = e.watchLease(cancel, until)
	r.wg.Go(func() {
		defer close(done)
		if f := e.cfg.OnStartedLeading; f != nil {
			f(ctx, term)
		}
	})
}

// stopLeading cancels the leader callback and queues OnStoppedLeading for
// after it returned; then the core learns that a new leadership may start.
// With round > 0 a handover waits for the callback, bounded: one that
// ignores its context must not stall the handover for ever, and the lease
// is given up either way.
func (r *run) stopLeading(round uint64, cause error) {
	e := r.e
	r.lead.watch.stop()
	r.lead.cancel(cause)
	done, ctx := r.lead.done, r.lead.ctx
	r.callback(func() {
		<-done
		if f := e.cfg.OnStoppedLeading; f != nil {
			f(context.Cause(ctx)) // the lease timer may have been first
		}
		r.send(event{kind: evCallbackReturned})
	})
	if round == 0 {
		return
	}
	r.wg.Go(func() {
		// Not longer than the followers wait for a silent leader: by then
		// they elect another, and a handover would be late.
		t := time.NewTimer(e.cfg.leaderGone())
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			r.logf(slog.LevelWarn, "leader callback did not return after its context was cancelled")
		}
		r.send(event{kind: evLeaderEnded, round: round})
	})
}

// leaseWatch cancels the leader callback's context when the lease ends,
// on a timer of its own: the loop notices the end too, but a loop that runs
// late (a starved process, a flood of events) must not leave the callback
// running past its lease.
type leaseWatch struct {
	mu      sync.Mutex // guards t and stopped
	t       *time.Timer
	stopped bool
}

// watchLease calls cancel once the core no longer holds a lease; until is
// the lease's end when it started. Each time the timer fires it asks the
// core (under the lock, with the clock read there): still active, it waits
// for the lease's new end.
func (e *Elector) watchLease(cancel context.CancelCauseFunc, until time.Time) *leaseWatch {
	w := &leaseWatch{}
	var check func()
	check = func() {
		e.mu.Lock()
		st := &e.c.st
		active, ok := st.active, st.active && st.activeAt(time.Now())
		next := st.leaseEnd
		e.mu.Unlock()
		if !active {
			return // the core stopped it, and the shell cancels with its cause
		}
		if !ok {
			cancel(ErrLeaseLost)
			return
		}
		w.mu.Lock()
		if !w.stopped {
			w.t = time.AfterFunc(time.Until(next), check)
		}
		w.mu.Unlock()
	}
	w.mu.Lock()
	w.t = time.AfterFunc(time.Until(until), check)
	w.mu.Unlock()
	return w
}

func (w *leaseWatch) stop() {
	w.mu.Lock()
	w.stopped = true
	w.t.Stop()
	w.mu.Unlock()
}

// send hands an event to the loop. Only messages are ever shed (see
// inbox.put): the other events answer commands, at most maxQueued of
// which are outstanding.
func (r *run) send(ev event) { r.events.put(ev, false) }

// inbox is the queue of events for the loop: a slice that grows only as a
// burst needs it and is let go when the loop has caught up. A channel of
// inboxSize events would hold 160 KB per Elector from the start (160 MB in
// a process of 1000 groups), all of it scanned by every garbage collection.
type inbox struct {
	mu   sync.Mutex
	q    []event
	head int           // q[head:] waits
	wake chan struct{} // holds a signal while q[head:] is not empty
}

// put queues ev and wakes the loop. A message is dropped instead, and put
// reports false, when inboxSize messages or more already wait: the loop
// is behind, and blocking the subscriber would make Redis disconnect it.
func (b *inbox) put(ev event, shed bool) bool {
	b.mu.Lock()
	if shed && len(b.q)-b.head >= inboxSize {
		b.mu.Unlock()
		return false
	}
	b.q = append(b.q, ev)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return true
}

// take returns the oldest waiting event, if any, and signals wake again
// if more wait.
func (b *inbox) take() (event, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.head == len(b.q) {
		return event{}, false
	}
	ev := b.q[b.head]
	b.q[b.head] = event{} // let go of what it points to
	b.head++
	switch {
	case b.head < len(b.q):
		select {
		case b.wake <- struct{}{}:
		default:
		}
	case cap(b.q) > 64:
		b.q, b.head = nil, 0 // a burst's worth: let it go
	default:
		b.q, b.head = b.q[:0], 0
	}
	return ev, true
}

// callback queues f for the dispatcher goroutine.
func (r *run) callback(f func()) { r.cb.callback(f) }

// logf queues a log record for the dispatcher: the user's Logger never
// runs on the loop or under a lock, so a slow one delays other log records
// and callbacks, never a heartbeat or a lease decision.
func (r *run) logf(level slog.Level, text string, attrs ...any) {
	r.cb.logf(r.e.log, level, text, attrs...)
}

// dispatcher is a queue of user code (callbacks, log records) and the
// goroutine that runs it, in order, outside any lock.
type dispatcher struct {
	mu      sync.Mutex // guards queue and logs
	queue   []func()
	logs    int // log records in queue
	dropped uint64
	wake    chan struct{}
}

func (d *dispatcher) callback(f func()) {
	d.mu.Lock()
	d.queue = append(d.queue, f)
	d.mu.Unlock()
	d.wakeUp()
}

// logf queues a record for log; past maxQueuedLogs records waiting, it
// drops it.
func (d *dispatcher) logf(log *slog.Logger, level slog.Level, text string, attrs ...any) {
	d.mu.Lock()
	if d.logs >= maxQueuedLogs {
		d.dropped++
		d.mu.Unlock()
		return
	}
	d.logs++
	d.queue = append(d.queue, func() {
		d.mu.Lock()
		d.logs--
		d.mu.Unlock()
		log.Log(context.Background(), level, text, attrs...)
	})
	d.mu.Unlock()
	d.wakeUp()
}

func (d *dispatcher) wakeUp() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run runs the queue until ctx ends, and then what is still queued, so
// that every stop is reported.
func (d *dispatcher) run(ctx context.Context) {
	for {
		d.mu.Lock()
		q := d.queue
		d.queue = nil
		d.mu.Unlock()
		for _, f := range q {
			f()
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-d.wake:
		case <-ctx.Done():
			d.mu.Lock()
			q := d.queue
			d.queue = nil
			d.mu.Unlock()
			if len(q) == 0 {
				return
			}
			for _, f := range q {
				f()
			}
		}
	}
}

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
	jobTerm            // the next term from the term key; answers evTerm
	jobNumSub          // PUBSUB NUMSUB key; answers evNumSub
	jobWho             // PUBSUB CHANNELS key (a pattern); answers evWho
)

// globQuote quotes the characters special in a Redis glob pattern.
func globQuote(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	b := make([]byte, 0, len(s)+4)
	for i := range len(s) { // bytes: a channel's name need not be UTF-8
		if strings.IndexByte(`*?[]\`, s[i]) >= 0 {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(b)
}

// job is work for the link's publisher goroutine.
type job struct {
	r     *run // whose it is
	kind  jobKind
	buf   *[]byte // jobPublish: the encoded message, from bufPool
	key   string  // the channel, or the key of a command
	id    string
	round uint64
	term  uint64      // jobTerm: the local term
	done  func(error) // jobPublish: called when published or failed
}

// publish stamps and signs m and queues it for channel. done, if set,
// learns when it was published.
func (r *run) publish(channel string, m *message, done func(error)) {
	r.stamp = max(r.stamp+1, uint64(time.Since(r.e.base)/time.Microsecond))
	m.Stamp = r.stamp
	buf := bufPool.Get().(*[]byte)
	*buf = appendMessage((*buf)[:0], channel, m, r.sg)
	r.enqueue(job{kind: jobPublish, key: channel, buf: buf, done: done})
}

// bufPool recycles encoded messages: redigo copies a PUBLISH's arguments
// into its own write buffer, so a message's bytes are free once sent.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }}

// enqueue hands j to the link's publisher without blocking the loop. When
// the queue is full (Redis is stuck), or already holds maxQueued of this
// Elector's commands, the job is dropped, which the protocol tolerates as a
// lost message.
func (r *run) enqueue(j job) {
	j.r = r
	err := errors.New("leader: publish queue full")
	if l := r.l.Load(); l == nil {
		err = errors.New("leader: moving to the slot's primary")
	} else if r.queued.Add(1) <= maxQueued {
		select {
		case l.out <- j:
			return
		default:
		}
		r.queued.Add(-1)
	} else {
		r.queued.Add(-1)
	}
	r.e.nPubErr.Add(1)
	if j.kind == jobPublish {
		r.fail(j, err)
		return
	}
	// The answer goes to the loop's own inbox, which the loop must not
	// block on.
	r.wg.Go(func() { r.fail(j, err) })
}

// fail answers a job that could not be done.
func (r *run) fail(j job, err error) {
	switch j.kind {
	case jobPublish:
		bufPool.Put(j.buf)
		if j.done != nil {
			j.done(err)
		}
	case jobTerm:
		r.send(event{kind: evTerm, round: j.round, err: err})
	case jobNumSub:
		r.send(event{kind: evNumSub, id: j.id, round: j.round, err: err})
	case jobWho:
		r.send(event{kind: evWho, round: j.round, err: err})
	}
}

// link is the pair of connections of a Link, or of an Elector without
// one, while an Elector on it runs: a subscriber goroutine that subscribes
// every Elector on it and routes what arrives by channel, and a publisher
// goroutine that writes all of their commands, in order, on one pipelined
// connection. Everything in it is safe for concurrent use.
type link struct {
	cfg    *Config // the connection settings (Addr, Dial, Sentinel, Cluster, DB): its first Elector's
	shared bool    // a Link's: Electors come and go while it runs
	node   string  // a Link's on a Cluster: the primary it is for
	set    *linkSet
	users  int // guarded by the Link's mu
	base   time.Time
	ctx    context.Context // ends when the link stops
	cancel context.CancelFunc
	wg     sync.WaitGroup
	out    chan job // to the publisher, from the Electors' loops
	log    *slog.Logger
	logf   func(level slog.Level, text string, attrs ...any) // records about the connections
	cb     dispatcher                                        // a shared link's, for the Link's Logger

	// The smallest PeerTimeout and HeartbeatInterval of the Electors that
	// joined: the receive timeout and the ping period.
	peerTimeout, heartbeat atomic.Int64

	// The Electors on the link, and who listens on which channel; the
	// routes are replaced, never changed, so the subscriber reads them
	// without a lock.
	members struct {
		sync.Mutex
		runs []*run
	}
	routes atomic.Pointer[map[string][]*run]

	// The subscribed connection: who asked to subscribe on it (true once
	// confirmed), and the subscribe commands not yet answered, oldest
	// first. Redis answers commands in order, so an error reply answers
	// the oldest one. Held while writing to c.
	sub struct {
		sync.Mutex
		c       redis.Conn // nil between connections
		state   map[*run]bool
		pending []pendingSub
	}

	// With Sentinel or Cluster: the connections in use, so that a switch
	// of the primary closes both at once, and how many switches were seen.
	conns struct {
		sync.Mutex
		sub, pub redis.Conn
	}
	switches atomic.Uint64
	primary  atomic.Value // string: the primary last dialled
	moved    atomic.Value // string: with Cluster, where MOVED sent us; "" once tried
	movedAt  atomic.Int64 // when a MOVED last redialled at once (since base)
	nodes    struct {
		sync.Mutex          // held while asking
		addrs      []string // with Cluster, the nodes the last CLUSTER SLOTS named
		asks       []string // the nodes asked last, and their replies (or errors), at at
		replies    []any
		at         time.Time
	}
	permanent     atomic.Int64  // permanent failures of the connection since a subscription (see noteError)
	subscriptions atomic.Uint64 // subscriptions confirmed, for the publisher's backoff
	closedAt      atomic.Int64  // when a connection closed at once last counted as one (since base)
	repeats       struct {      // the failures noteError logged lately (see repeated)
		sync.Mutex
		seen map[string]repeat
	}
	dbUnchecked atomic.Bool // CLIENT INFO failed and that was logged

	// Set with mark, read with stamp: the last answered PUBLISH, and the
	// last thing the subscription delivered.
	pubOK, recvAt atomic.Int64
}

// pendingSub is a subscribe command waiting for its confirmations; r is
// nil once its Elector left.
type pendingSub struct {
	r        *run
	channels []string
	left     int
}

// newLink returns a link with cfg's connection settings. A shared one logs
// to log through a dispatcher of its own; an Elector's own one with logf.
func newLink(cfg *Config, shared bool, log *slog.Logger, logf func(slog.Level, string, ...any)) *link {
	ctx, cancel := context.WithCancel(context.Background())
	l := &link{cfg: cfg, shared: shared, base: time.Now(), ctx: ctx, cancel: cancel, log: log, logf: logf}
	size := maxQueued
	if shared {
		size = sharedQueue
		l.cb.wake = make(chan struct{}, 1)
		l.logf = func(level slog.Level, text string, attrs ...any) { l.cb.logf(log, level, text, attrs...) }
	}
	l.out = make(chan job, size)
	l.peerTimeout.Store(int64(cfg.PeerTimeout))
	l.heartbeat.Store(int64(cfg.HeartbeatInterval))
	routes := map[string][]*run{}
	l.routes.Store(&routes)
	return l
}

// start starts the link's goroutines; stop ends them and waits for them.
func (l *link) start() {
	if l.shared {
		l.wg.Go(func() { l.cb.run(l.ctx) })
	}
	l.wg.Go(l.subscriber)
	l.wg.Go(l.publisher)
	if sn := l.cfg.Sentinel; sn != nil {
		// One watch per sentinel: the one that runs a failover announces
		// it at once, the others only seconds later.
		for _, a := range sn.Addrs {
			l.wg.Go(func() { l.watchSentinel(a) })
		}
	}
}

func (l *link) stop() {
	l.cancel()
	l.wg.Wait()
	for {
		select {
		case j := <-l.out: // an Elector's, sent as it moved to another link
			j.r.queued.Add(-1)
			j.r.fail(j, errors.New("leader: moving to the slot's primary"))
		default:
			return
		}
	}
}

// acquire puts r on the Link's connections (on a Cluster, those to its
// slot's primary), starting them for the first Elector.
func (lk *Link) acquire(r *run) {
	lk.mu.Lock()
	set := lk.on
	if set == nil {
		set = &linkSet{lk: lk, links: map[string]*link{}}
		if lk.Cluster != nil {
			set.resolver = newLink(&r.e.cfg, true, lk.logger(), nil)
		}
		lk.on = set
	}
	set.users++
	lk.mu.Unlock()
	node := ""
	if set.resolver != nil {
		// Where a Cluster's slot is; if nobody can say, the first seed,
		// whose answers (MOVED, or ROLE) send it on.
		node = lk.Cluster.Addrs[0]
		if owners, err := set.resolver.askSlots(r.ctx, keySlot(r.channels[0]), time.Now().Add(-100*time.Millisecond)); err == nil {
			node = owners[0]
		}
	}
	lk.mu.Lock()
	set.place(r, node)
	lk.mu.Unlock()
}

func (lk *Link) logger() *slog.Logger {
	if lk.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return lk.Logger
}

// place puts r on the link to node ("" without Cluster), starting it if
// it is new. The caller holds lk.mu.
func (set *linkSet) place(r *run, node string) {
	l := set.links[node]
	if l == nil {
		l = newLink(&r.e.cfg, true, set.lk.logger(), nil)
		l.node, l.set = node, set
		set.links[node] = l
		l.join(r)
		l.start()
	} else {
		l.join(r)
	}
	l.users++
	r.setLink(l)
}

// unplace takes r off its link, and returns the link if it is left empty,
// for the caller to stop outside lk.mu, and whether r's subscription on
// it was confirmed. The caller holds lk.mu.
func (set *linkSet) unplace(r *run) (empty *link, confirmed bool) {
	l := r.l.Load()
	if l == nil {
		return nil, false
	}
	r.setLink(nil)
	confirmed = l.leave(r)
	if l.users--; l.users == 0 {
		delete(set.links, l.node)
		return l, confirmed
	}
	return nil, confirmed
}

// release takes r off the Link's connections, and closes them after the
// last Elector.
func (lk *Link) release(r *run) {
	lk.mu.Lock()
	set := lk.on
	empty, _ := set.unplace(r)
	set.users--
	last := set.users == 0
	if last {
		lk.on, set.closed = nil, true
	}
	lk.mu.Unlock()
	if empty != nil {
		empty.stop()
	}
	if last {
		set.wg.Wait()
		if set.resolver != nil {
			set.resolver.cancel()
		}
	}
}

// move has r, on a Link on a Cluster, follow its slot from link from to
// the primary to ("": the one CLUSTER SLOTS names), on a goroutine of its
// own: the link that learns of the move cannot wait for its own end.
//
// If CLUSTER SLOTS still names from's node (a failover not done yet) or
// cannot be asked, r stays: the next sign (a failed dial, a MOVED) asks
// again. An Elector whose subscription Redis ended (unsubscribed) may see
// no next sign (its node, a replica now, still takes SPUBLISH): it asks
// again for a PeerTimeout, and then subscribes where it is.
func (from *link) move(r *run, to string, unsubscribed bool) {
	set := from.set
	// An Elector whose Run is ending moves no more (and the Link's last
	// release may be waiting for the moves).
	if !from.onCluster() || r.ctx.Err() != nil || !r.moving.CompareAndSwap(false, true) {
		return
	}
	since := time.Now()
	set.lk.mu.Lock()
	if set.closed {
		set.lk.mu.Unlock()
		r.moving.Store(false)
		return
	}
	set.wg.Add(1)
	set.lk.mu.Unlock()
	go func() {
		defer set.wg.Done()
		defer r.moving.Store(false)
		backoff := newBackoff(backoffCap(from.hb()))
		deadline := since.Add(from.pt())
		for to == "" || to == from.node {
			// Only answers asked after the sign: one asked before may
			// name the old primary still.
			owners, err := set.resolver.askSlots(r.ctx, keySlot(r.channels[0]), since)
			if err == nil && owners[0] != from.node {
				to = owners[0]
				break
			}
			if err != nil && r.ctx.Err() == nil {
				r.logf(slog.LevelWarn, "cannot find the primary of the group's slot", "err", err)
			}
			if !unsubscribed || time.Now().After(deadline) {
				if unsubscribed {
					from.resubscribe(r)
				}
				return
			}
			backoff.failed()
			if !backoff.wait(r.ctx) {
				return
			}
			since = time.Now()
		}
		r.e.nRedirects.Add(1)
		lk := set.lk
		lk.mu.Lock()
		if r.l.Load() != from || r.ctx.Err() != nil {
			lk.mu.Unlock()
			return
		}
		empty, confirmed := set.unplace(r)
		lk.mu.Unlock()
		r.logf(slog.LevelInfo, "Redis Cluster moved the group's slot; following it", "from", from.node, "to", to)
		if confirmed {
			r.send(event{kind: evDisconnected})
		}
		if empty != nil {
			empty.stop()
		}
		lk.mu.Lock()
		if r.ctx.Err() == nil {
			set.place(r, to)
		}
		lk.mu.Unlock()
	}()
}

// onCluster reports whether l is a Link's link to one node of a Cluster.
func (l *link) onCluster() bool { return l.set != nil && l.set.resolver != nil }

// moveAll moves every Elector on a Link's link to a Cluster node that
// failed (down, or no longer a primary) to wherever its slot is now.
func (l *link) moveAll() {
	if !l.onCluster() {
		return
	}
	for _, r := range l.runs() {
		l.move(r, "", false)
	}
}

// resubscribe subscribes r again on l, after Redis ended its subscription.
func (l *link) resubscribe(r *run) {
	l.sub.Lock()
	defer l.sub.Unlock()
	if l.sub.c != nil && l.member(r) {
		delete(l.sub.state, r)
		l.ask(r)
		_ = l.sub.c.Flush()
	}
}

// join adds r to the link, and subscribes it if the link is connected.
func (l *link) join(r *run) {
	l.members.Lock()
	l.members.runs = append(l.members.runs, r)
	l.reroute()
	if pt := int64(r.e.cfg.PeerTimeout); pt < l.peerTimeout.Load() {
		l.peerTimeout.Store(pt)
	}
	if hb := int64(r.e.cfg.HeartbeatInterval); hb < l.heartbeat.Load() {
		l.heartbeat.Store(hb)
	}
	l.members.Unlock()
	l.sub.Lock()
	if l.sub.c != nil {
		l.ask(r)
		_ = l.sub.c.Flush() // a failure shows to the subscriber as a dead connection
	}
	l.sub.Unlock()
}

// leave takes r off the link. On a shared one it unsubscribes the channels
// no other Elector listens on, so that its group sees it gone (the crash
// fast path asks Redis who subscribes to a node's own channel); an
// Elector's own link just stops.
func (l *link) leave(r *run) (confirmed bool) {
	l.members.Lock()
	l.members.runs = slices.DeleteFunc(l.members.runs, func(x *run) bool { return x == r })
	l.reroute()
	l.members.Unlock()
	r.e.local.Store(nil)
	l.sub.Lock()
	defer l.sub.Unlock()
	confirmed = l.sub.state[r]
	delete(l.sub.state, r)
	for i := range l.sub.pending {
		if l.sub.pending[i].r == r {
			// Unsubscribed when the confirmations come (see confirmed).
			l.sub.pending[i].r = nil
		}
	}
	if confirmed {
		// Only a confirmed subscription: an UNSUBSCRIBE that Redis
		// refused would answer in the place of a pending SUBSCRIBE.
		l.unsubscribe(r.channels)
	}
	return confirmed
}

// unsubscribe unsubscribes, on a shared link, those of channels that no
// Elector on it listens on. The caller holds l.sub.
func (l *link) unsubscribe(channels []string) {
	if !l.shared || l.sub.c == nil {
		return
	}
	routes := *l.routes.Load()
	var gone []any
	for _, ch := range channels {
		if len(routes[ch]) == 0 {
			gone = append(gone, ch)
		}
	}
	if len(gone) > 0 {
		cmd := "UNSUBSCRIBE"
		if l.cfg.Cluster != nil {
			cmd = "SUNSUBSCRIBE"
		}
		_ = l.sub.c.Send(cmd, gone...)
		_ = l.sub.c.Flush()
	}
}

// reroute replaces the routes with the members' channels. The caller holds
// l.members.
func (l *link) reroute() map[string][]*run {
	routes := make(map[string][]*run, 2*len(l.members.runs))
	for _, r := range l.members.runs {
		for _, ch := range r.channels {
			routes[ch] = append(routes[ch], r)
		}
	}
	l.routes.Store(&routes)
	// Tell the Electors of a group that share this Link who the others
	// are: one map per such group (a process may run 1000 groups of one
	// Elector each, or one group of 200).
	local := map[string]*map[string]bool{}
	for _, r := range l.members.runs {
		ch := r.channels[0] // the group's channel
		if rs := routes[ch]; len(rs) > 1 && local[ch] == nil {
			ids := make(map[string]bool, len(rs))
			for _, x := range rs {
				ids[x.e.cfg.ID] = true
			}
			local[ch] = &ids
		}
		r.e.local.Store(local[ch])
	}
	return routes
}

// runs returns the Electors on the link now.
func (l *link) runs() []*run {
	l.members.Lock()
	defer l.members.Unlock()
	return slices.Clone(l.members.runs)
}

func (l *link) member(r *run) bool {
	l.members.Lock()
	defer l.members.Unlock()
	return slices.Contains(l.members.runs, r)
}

// pt and hb are the link's PeerTimeout and HeartbeatInterval.
func (l *link) pt() time.Duration { return time.Duration(l.peerTimeout.Load()) }
func (l *link) hb() time.Duration { return time.Duration(l.heartbeat.Load()) }

// mark stores now in a timestamp that another goroutine reads with stamp.
func (l *link) mark(a *atomic.Int64) { a.Store(int64(time.Since(l.base))) }

// stamp reads a timestamp stored with mark (on the monotonic clock).
func (l *link) stamp(a *atomic.Int64) time.Time {
	return l.base.Add(time.Duration(a.Load()))
}

// abort ends Run on every Elector of the link: the connection failed in a
// way that retrying cannot mend.
func (l *link) abort(err error) {
	for _, r := range l.runs() {
		r.abort(err)
	}
}

// publisher owns the connection for PUBLISH and commands, and redials it with
// capped backoff. It pipelines: it writes each command without waiting for
// the reply, which a reader goroutine per connection matches in order, so a
// slow or one-way link (a deaf node) does not hold later messages back, and
// it flushes once per burst of queued commands (the heartbeats of many
// groups on a Link). One goroutine writes, so messages leave in order.
func (l *link) publisher() {
	var pc *pipeline
	defer func() {
		if pc != nil {
			pc.close()
		}
	}()
	backoff := newBackoff(backoffCap(l.hb()))
	var subscriptions uint64 // the subscriber's, as last seen
	for {
		var j job
		select {
		case j = <-l.out:
		case <-l.ctx.Done():
			return
		}
		j.r.queued.Add(-1)
		if pc != nil && pc.dead() {
			pc.close()
			if pc.gen != l.switches.Load() || pc.answered.Load() {
				// The primary moved, or a connection that worked died (a
				// restart of Redis, CLIENT KILL): redial at once for j.
				// The command that found it dead is lost already, and
				// holding back j too would lose the next heartbeat as
				// well, which a leader's lease may not outlast.
				backoff.reset()
			} else {
				backoff.failed()
			}
			pc = nil
		}
		if pc == nil {
			if n := l.subscriptions.Load(); n != subscriptions {
				// The subscriber got through since: Redis is back. Dial
				// at once, whatever the backoff says: the first command
				// is the heartbeat that follows the subscription, whose
				// echo proves the link, and a node whose link is not
				// proven neither votes nor stands until its next one.
				subscriptions = n
				backoff.reset()
			}
			if !backoff.ready() {
				j.r.fail(j, errors.New("leader: redis unavailable"))
				continue
			}
			gen := l.switches.Load()
			c, err := l.dial()
			if err == nil && !l.track(&l.conns.pub, c, gen) {
				// The primary moved while we dialled: this may be the old one.
				c.Close()
				err = errors.New("leader: the primary moved during the dial")
			}
			if err != nil {
				if l.switches.Load() == gen {
					backoff.failed()
					l.noteError("publisher dial", err)
				}
				j.r.fail(j, err)
				l.moveAll() // on a Link on a Cluster: the node may be gone or demoted
				continue
			}
			backoff.reset()
			pc = l.startPipeline(c)
			pc.gen = gen
		}
		if len(l.out) == 0 {
			// Let the Electors that are about to publish too (many wake
			// at once: a burst of heartbeats, acks, a failover) queue
			// their commands first, so that one write carries them all:
			// the write, a system call, cost more than the rest of a
			// PUBLISH's way through the process.
			runtime.Gosched()
		}
		if err := pc.write(j, len(l.out) == 0); err != nil {
			j.r.e.nPubErr.Add(1)
			l.noteError("publish", err)
			j.r.fail(j, err)
			pc.close()
			if pc.answered.Load() {
				backoff.reset() // as above: the next command redials at once
			} else {
				backoff.failed()
			}
			pc = nil
		}
	}
}

// pipeline is one publishing connection: the publisher writes, a reader
// goroutine reads the replies in order.
type pipeline struct {
	gen       uint64 // the switches of the primary seen when it was dialled
	sharded   bool   // Cluster: SPUBLISH and SHARDNUMSUB
	c         redis.Conn
	unflushed int
	pending   chan job      // written, reply not yet read; in order
	failed    chan struct{} // closed by the reader when the connection died
	answered  atomic.Bool   // the connection answered a command: it worked
	reader    sync.WaitGroup
}

func (l *link) startPipeline(c redis.Conn) *pipeline {
	pc := &pipeline{c: c, pending: make(chan job, cap(l.out)), failed: make(chan struct{}), sharded: l.cfg.Cluster != nil}
	pc.reader.Go(func() {
		dead := false
		for j := range pc.pending {
			if dead {
				j.r.fail(j, errors.New("leader: connection lost"))
				continue
			}
			// Writes never wait for replies, so the reply timeout only
			// decides when a silent connection is dead: as for the
			// subscriber, PeerTimeout.
			v, err := redis.ReceiveWithTimeout(c, l.pt())
			if l.onCluster() {
				l.redirectedOne(j.r, err)
			} else {
				l.redirected(c, err)
			}
			l.reply(j, v, err)
			if c.Err() == nil {
				pc.answered.Store(true)
			}
			if err != nil && c.Err() != nil {
				// redigo closed the connection (a timeout included): fail
				// what is still pending, and let the publisher redial.
				j.r.e.nPubErr.Add(1)
				l.noteError("publish", err)
				dead = true
				close(pc.failed)
			}
		}
	})
	return pc
}

// maxUnflushed bounds the commands written before a flush, in a burst.
const maxUnflushed = 64

// write sends j's command without waiting for its reply, and flushes if
// flush is set (nothing else is queued) or enough is written.
func (pc *pipeline) write(j job, flush bool) error {
	var err error
	switch {
	case j.kind == jobPublish && pc.sharded:
		err = pc.c.Send("SPUBLISH", j.key, *j.buf)
	case j.kind == jobPublish:
		err = pc.c.Send("PUBLISH", j.key, *j.buf)
	case j.kind == jobTerm:
		err = pc.c.Send("EVAL", nextTermScript, 1, j.key, j.term)
	case j.kind == jobNumSub && pc.sharded:
		err = pc.c.Send("PUBSUB", "SHARDNUMSUB", j.key)
	case j.kind == jobNumSub:
		err = pc.c.Send("PUBSUB", "NUMSUB", j.key)
	case j.kind == jobWho && pc.sharded:
		err = pc.c.Send("PUBSUB", "SHARDCHANNELS", j.key)
	case j.kind == jobWho:
		err = pc.c.Send("PUBSUB", "CHANNELS", j.key)
	}
	if pc.unflushed++; err == nil && (flush || pc.unflushed >= maxUnflushed) {
		err = pc.c.Flush()
		pc.unflushed = 0
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
func (l *link) reply(j job, v any, err error) {
	r := j.r
	e := r.e
	switch j.kind {
	case jobPublish:
		bufPool.Put(j.buf)
		if err == nil {
			e.nOut.Add(1)
			l.mark(&l.pubOK)
		} else if _, answered := err.(redis.Error); answered {
			// Redis answered, but with an error (NOPERM, OOM, a proxy's
			// refusal): nothing was published. A lost connection is
			// counted where it is noticed.
			e.nPubErr.Add(1)
			now, last := time.Since(e.base), r.pubErrLogged.Load()
			if last == 0 || now-time.Duration(last) >= time.Second { // not once per message
				r.pubErrLogged.Store(int64(now))
				r.noteRedisError("publish", err)
			}
		}
		if j.done != nil {
			j.done(err)
		}
	case jobTerm:
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
		r.send(event{kind: evNumSub, id: j.id, round: j.round, n: n, err: err})
	case jobWho:
		names, err := redis.Strings(v, err)
		r.send(event{kind: evWho, round: j.round, names: names, err: err})
	}
}

// subscriber owns the subscribed connection: it subscribes every Elector
// on the link, routes what arrives to them, pings on a timer and treats
// PeerTimeout without any reply as a dead connection (redigo closes a
// connection on any receive error), then redials with capped backoff.
func (l *link) subscriber() {
	backoff := newBackoff(backoffCap(l.hb()))
	first := true
	for l.ctx.Err() == nil {
		if !first {
			if !backoff.wait(l.ctx) {
				return
			}
		}
		gen := l.switches.Load()
		c, err := l.dial()
		if err == nil && !l.track(&l.conns.sub, c, gen) {
			// The primary moved while we dialled: this may be the old one.
			c.Close()
			first = false
			backoff.reset() // redial at once
			continue
		}
		if err != nil {
			backoff.failed()
			l.noteError("subscriber dial", err)
			l.moveAll() // on a Link on a Cluster: the node may be gone or demoted
			first = false
			continue
		}
		if !first {
			for _, r := range l.runs() {
				r.e.nReconnects.Add(1)
			}
		}
		first = false
		ok := l.receive(c)
		l.track(&l.conns.sub, nil, 0)
		switch {
		case ok || l.switches.Load() != gen:
			backoff.reset() // redial at once: it worked, or the primary moved
		default:
			backoff.failed()
		}
	}
}

// receive runs one subscribed connection until it fails or the link stops.
// It reports whether a subscription on it was confirmed.
func (l *link) receive(c redis.Conn) (subscribed bool) {
	l.sub.Lock()
	l.sub.c, l.sub.state, l.sub.pending = c, map[*run]bool{}, nil
	for _, r := range l.runs() {
		l.ask(r)
	}
	err := c.Flush()
	l.sub.Unlock()
	// Ping only a quiet connection: in a healthy group every node hears
	// something each HeartbeatInterval (a follower the leader's heartbeat,
	// the leader its acks), which proves the link as well as a PONG, and a
	// PING per node per interval would double Redis's work and wake every
	// node twice as often.
	//
	// The loop reads without a deadline: redigo would set one per message,
	// and under a flood of junk that is a fifth of the CPU the heartbeats
	// queued behind it wait for. The keepalive times the reads instead: one
	// that has waited a PeerTimeout, PINGs unanswered, closes the
	// connection, which ends it. (Not the time since the last message: a
	// loop that is behind, in a busy process, is not a dead link.)
	var waiting atomic.Int64 // when the read under way began; 0 between reads
	var stalled atomic.Bool
	stop := l.keepAlive(c, l.hb(), func() error {
		if w := waiting.Load(); w != 0 && time.Since(l.base)-time.Duration(w) >= l.pt() {
			stalled.Store(true)
			_ = c.Close()
			return errStalled
		}
		if time.Since(l.stamp(&l.recvAt)) < l.hb() {
			return nil
		}
		l.sub.Lock()
		defer l.sub.Unlock()
		if err := c.Send("PING"); err != nil {
			return err
		}
		return c.Flush()
	})
	defer func() {
		stop() // closes c
		l.sub.Lock()
		var lost []*run
		for r, ok := range l.sub.state {
			if ok {
				lost = append(lost, r)
			}
		}
		l.sub.c, l.sub.state, l.sub.pending = nil, nil, nil
		l.sub.Unlock()
		for _, r := range lost {
			r.send(event{kind: evDisconnected, err: c.Err()})
		}
	}()
	if err != nil {
		l.noteError("subscribe", dialHint(err))
		return false
	}
	for {
		waiting.Store(int64(time.Since(l.base)))
		p := receivePush(c)
		waiting.Store(0)
		if p.err != nil && stalled.Load() {
			p.err = errStalled
		}
		if p.err == nil {
			l.mark(&l.recvAt)
		}
		switch p.kind {
		case "message":
			l.deliver(p.channel, p.data)
		case "subscribe", "ssubscribe":
			subscribed = true
			l.confirmed()
		case "unsubscribe", "pong":
		case "sunsubscribe":
			// Unasked (an Elector's own link never unsubscribes, and a
			// Link's unsubscribes only channels nobody routes): the
			// slot moved off this node (a failover or a resharding),
			// and this connection no longer hears the group.
			if l.onCluster() {
				for _, r := range (*l.routes.Load())[string(p.channel)] {
					l.sub.Lock()
					confirmed := l.sub.state[r]
					delete(l.sub.state, r)
					l.sub.Unlock()
					if confirmed {
						r.send(event{kind: evDisconnected})
					}
					l.move(r, "", true)
				}
				continue
			}
			for _, r := range l.runs() {
				r.e.nRedirects.Add(1)
			}
			l.logf(slog.LevelInfo, "Redis Cluster moved the group's slot; redialling at once", "from", l.primary.Load())
			l.switched(c, true)
			return subscribed
		default:
			if rerr, ok := p.err.(redis.Error); ok {
				if !l.onCluster() && l.redirected(c, rerr) {
					return subscribed
				}
				if !l.refused(c, rerr) {
					l.noteError("receive", rerr)
					return subscribed
				}
				continue
			}
			err := p.err
			if l.redirected(c, err) {
				return subscribed
			}
			if !subscribed {
				err = dialHint(err) // the connection's first answer
			}
			l.noteError("receive", err)
			return subscribed
		}
	}
}

// errStalled ends a subscribed connection whose read waited a PeerTimeout
// for anything, the answer to a PING included.
var errStalled = fmt.Errorf("nothing from Redis for a PeerTimeout, not even a PONG: %w", os.ErrDeadlineExceeded)

// ask subscribes r on the current connection, unless it asked already.
// The caller holds l.sub and flushes.
func (l *link) ask(r *run) {
	if _, asked := l.sub.state[r]; asked {
		return
	}
	l.sub.state[r] = false
	l.sub.pending = append(l.sub.pending, pendingSub{r: r, channels: r.channels, left: len(r.channels)})
	cmd := "SUBSCRIBE"
	if l.cfg.Cluster != nil {
		// redigo's PubSubConn does not know the sharded frames:
		// receivePush parses them.
		cmd = "SSUBSCRIBE"
	}
	_ = l.sub.c.Send(cmd, r.channels[0], r.channels[1])
}

// confirmed counts one subscription confirmation for the oldest pending
// subscribe command; the last one tells its Elector it is subscribed, or,
// if the Elector left meanwhile, unsubscribes what it subscribed.
func (l *link) confirmed() {
	l.sub.Lock()
	var r *run
	if len(l.sub.pending) > 0 {
		p := &l.sub.pending[0]
		if p.left--; p.left == 0 {
			r = p.r
			l.sub.pending = l.sub.pending[1:]
			if r != nil {
				l.sub.state[r] = true
			} else {
				l.unsubscribe(p.channels)
			}
		}
	}
	l.sub.Unlock()
	l.permanent.Store(0)
	l.subscriptions.Add(1) // before the Elector hears of it: see publisher
	if r != nil {
		r.permanent.Store(0)
		r.send(event{kind: evSubscribed})
	}
}

// refused takes an error reply on the subscribed connection c as the
// answer to the oldest pending subscribe command (an ACL that denies that
// Elector's channels): it is that Elector's failure, and its subscription
// is asked again a backoff later. It reports false if none was pending.
func (l *link) refused(c redis.Conn, err redis.Error) bool {
	l.sub.Lock()
	if len(l.sub.pending) == 0 {
		l.sub.Unlock()
		return false
	}
	r := l.sub.pending[0].r
	l.sub.pending = l.sub.pending[1:]
	l.sub.Unlock()
	if r == nil {
		return true
	}
	if l.onCluster() && l.redirectedOne(r, err) {
		return true
	}
	r.noteRedisError("subscribe", err)
	l.wg.Go(func() {
		t := time.NewTimer(backoffCap(l.hb()))
		defer t.Stop()
		select {
		case <-t.C:
		case <-l.ctx.Done():
			return
		}
		l.sub.Lock()
		defer l.sub.Unlock()
		if l.sub.c == c && l.member(r) {
			delete(l.sub.state, r)
			l.ask(r)
			_ = c.Flush()
		}
	})
	return true
}

// deliver decodes and verifies a message for every Elector that listens on
// channel, and hands it to their loops. Each judges repeats and staleness
// with its own reader (its replay window); the decoding and the signature
// check are done once for all of those with the same keys (many Electors
// of one group in a process would otherwise repeat them for every one).
func (l *link) deliver(ch []byte, data []byte) {
	runs := (*l.routes.Load())[string(ch)]
	if len(runs) == 0 {
		return
	}
	channel := runs[0].channel(ch) // its own string: no allocation per message
	var decoded message
	var err error
	keys, done := "", false
	for _, r := range runs {
		e := r.e
		if !done || r.rd.keys != keys {
			decoded, keys, done = message{}, r.rd.keys, true
			err = r.rd.decode(channel, data, &decoded)
		}
		m := decoded
		if err != nil {
			if !r.unverified(channel, &m, err) {
				e.nDropped.Add(1)
			}
			continue
		}
		if !r.rd.fresh(&m, time.Since(e.base)) {
			e.nReplays.Add(1)
			continue
		}
		e.nIn.Add(1)
		if !r.events.put(event{kind: evMessage, msg: m}, true) {
			e.nDropped.Add(1) // the state machine is behind: shed load
		}
	}
}

// channel returns r's name for ch, one of the channels it listens on.
func (r *run) channel(ch []byte) string {
	for _, name := range r.channels {
		if name == string(ch) {
			return name
		}
	}
	return string(ch)
}

// unverified counts and logs a message whose signature failed (err), and
// reports whether that is what err says. The warning names the likely
// cause, at most once per 10 s for all such messages: in a group with
// mismatched keys every message fails, and both sides log it.
func (r *run) unverified(channel string, m *message, err error) bool {
	var hint string
	switch err {
	case errSignature:
		hint = "signed with a key this node does not have: a node with another Secret (during a rotation, give the new key's nodes PreviousSecret), or a copy of a message from another group, DB or channel"
	case errUnsigned:
		hint = "unsigned: a node without Secret, or a stray publisher on the group's channel"
	case errNoSecret:
		hint = "signed, but this node has no Secret: its peers were given one"
	case errVersion:
		// The same magic byte, another wire format: nodes of two versions
		// of this file cannot hear each other, which is as bad as two keys.
		// (Junk that starts with the magic byte lands here too, now and
		// then; the warning says what it most likely is.)
		hint = "sent by another version of this library: nodes of different wire versions cannot hear each other; run one version in a group"
	default:
		return false
	}
	e := r.e
	n := e.nUnverified.Add(1)
	now := time.Since(e.base)
	if last := r.unverifiedLogged.Load(); last == 0 || now-time.Duration(last) >= 10*time.Second {
		r.unverifiedLogged.Store(int64(now))
		r.logf(slog.LevelWarn, "dropping messages that cannot be verified: "+hint,
			"channel", channel, "from", m.From, "unverified", n)
	}
	return true
}

// keepAlive calls ping every period, so that a dead link shows as a
// receive timeout (ping may skip a connection that was heard from
// recently, and the subscriber's ends a read that waited too long, see
// receive); when the link stops it closes c, which unblocks a receive. The
// returned stop ends it, closing c too, and waits for it.
func (l *link) keepAlive(c redis.Conn, period time.Duration, ping func() error) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if ping() != nil {
					return
				}
			case <-done:
				return
			case <-l.ctx.Done():
				c.Close()
				return
			}
		}
	})
	return func() {
		close(done)
		c.Close() // a ping blocked in a write returns
		wg.Wait()
	}
}

// dial opens a Redis connection with Config.Dial or Addr (or through
// Sentinel or Cluster).
func (l *link) dial() (redis.Conn, error) {
	cfg := l.cfg
	ctx, cancel := context.WithTimeout(l.ctx, max(l.pt(), time.Second))
	defer cancel()
	var c redis.Conn
	var err error
	switch {
	case cfg.Sentinel != nil:
		c, err = l.dialPrimary(ctx)
	case l.onCluster():
		c, err = l.dialOwner(ctx, l.node)
	case cfg.Cluster != nil:
		c, err = l.dialSlotOwner(ctx)
	case cfg.Dial != nil:
		c, err = cfg.Dial(ctx)
		if err == nil {
			if err = l.checkDB(c); err != nil {
				c.Close()
			}
		}
	default:
		c, err = redis.DialContext(ctx, "tcp", cfg.Addr,
			redis.DialDatabase(cfg.DB),
			redis.DialReadTimeout(l.pt()),
			redis.DialWriteTimeout(l.pt()))
	}
	return c, dialHint(err)
}

// checkDB checks that a connection from Config.Dial is on Config.DB. Pub/sub
// ignores the DB, so a node whose Dial selects another DB would join the
// election of the group's namesake there, with a term key of its own:
// that ends Run. A server that cannot say (CLIENT INFO is Redis 6.2+, and an
// ACL may deny it) is logged once and trusted.
func (l *link) checkDB(c redis.Conn) error {
	db := l.cfg.DB
	var v any
	var err error
	if cwt, ok := c.(redis.ConnWithTimeout); ok {
		v, err = cwt.DoWithTimeout(l.pt(), "CLIENT", "INFO")
	} else {
		v, err = c.Do("CLIENT", "INFO")
	}
	info, err := redis.String(v, err)
	if _, answered := err.(redis.Error); answered {
		if !l.dbUnchecked.Swap(true) {
			l.logf(slog.LevelWarn, "cannot check which DB Dial's connections use; make sure Config.DB is the one Dial selects", "db", db, "err", err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(info) {
		if v, ok := strings.CutPrefix(f, "db="); ok {
			if got, perr := strconv.Atoi(v); perr == nil && got != db {
				err := fmt.Errorf("leader: Dial returned a connection on DB %d, but Config.DB is %d: pub/sub ignores the DB, so this node would join the election of the group on DB %d while keeping its term key on DB %d; set Config.DB to the DB Dial selects", got, db, db, got)
				l.abort(err)
				return err
			}
			return nil
		}
	}
	return nil
}

// handshakeHint explains errors that say little: a bare "EOF" on a fresh
// connection is what a plaintext client gets from a TLS-only port, and
// redigo's "unexpected response line" what it gets from, say, an HTTP port.
func handshakeHint(err error) error {
	switch {
	case err == nil || errors.Is(err, errNotRedis) || errors.Is(err, errClosedAtOnce):
		return err
	case strings.Contains(err.Error(), "unexpected response line"):
		return fmt.Errorf("%w (%v)", errNotRedis, err)
	}
	return err
}

// dialHint is handshakeHint for a fresh connection, where EOF means the
// server closed it at once.
func dialHint(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w (%v)", errClosedAtOnce, err)
	}
	return handshakeHint(err)
}

// noteError logs a failure of the link's connections and keeps it for the
// Status of every Elector on it. After maxPermanent failures in a row that
// retrying cannot mend (see permanent), with no subscription in between,
// it ends Run on all of them with the last one: a misconfigured deployment
// fails where it is started, rather than look alive and never lead.
func (l *link) noteError(op string, err error) {
	if l.ctx.Err() != nil {
		return
	}
	err = handshakeHint(err)
	level := slog.LevelWarn
	if errors.Is(err, net.ErrClosed) {
		level = slog.LevelDebug // closed here, on a switch of the primary: logged as that
	}
	if held, quiet := l.repeated(op, err); !quiet {
		if held > 0 {
			l.logf(level, "redis error", "op", op, "err", err, "repeats", held)
		} else {
			l.logf(level, "redis error", "op", op, "err", err)
		}
	}
	for _, r := range l.runs() {
		r.e.mu.Lock()
		r.e.c.redisError(op, err)
		r.e.mu.Unlock()
	}
	if w := permanent(err); w > 0 {
		if w == 1 {
			// A connection closed at once weighs in at most once a second:
			// a proxy in front of a Redis that is down (or being killed)
			// does that too, as often as the backoff redials.
			now := time.Since(l.base)
			if last := l.closedAt.Load(); last != 0 && now-time.Duration(last) < time.Second {
				return
			}
			l.closedAt.Store(int64(now))
		}
		if n := l.permanent.Add(int64(w)); n >= maxPermanent {
			l.abort(fmt.Errorf("leader: giving up after failures that retrying cannot mend: %s: %w", op, err))
		}
	}
}

// repeated reports whether a failure like err of op was logged less than
// a second ago, and counts it if so; else it reports how many it held
// back since. While Redis is down every redial fails alike, ten to forty
// times a second per connection: one line a second says as much. Failures
// count alike when they differ only in numbers (the ports of a broken
// connection).
func (l *link) repeated(op string, err error) (held int, quiet bool) {
	key := op + ": " + strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return '#'
		}
		return r
	}, err.Error())
	now := time.Since(l.base)
	l.repeats.Lock()
	defer l.repeats.Unlock()
	r, ok := l.repeats.seen[key]
	if ok && now-r.at < time.Second {
		r.held++
		l.repeats.seen[key] = r
		return 0, true
	}
	if l.repeats.seen == nil || len(l.repeats.seen) >= maxRepeats {
		l.repeats.seen = make(map[string]repeat)
	}
	l.repeats.seen[key] = repeat{at: now}
	return r.held, false
}

// A failure noteError logged, and how many like it it held back since.
type repeat struct {
	at   time.Duration // since the link's base
	held int
}

// maxRepeats bounds the kinds of failure a link remembers for repeated;
// more start the memory anew (a line more, never a lost one).
const maxRepeats = 64

// noteRedisError is noteError for a failure of one Elector's own command
// (a PUBLISH or a SUBSCRIBE that Redis refused): it is that Elector's
// alone, and so is the Run it ends.
func (r *run) noteRedisError(op string, err error) {
	e := r.e
	if r.ctx.Err() != nil {
		return
	}
	r.logf(slog.LevelWarn, "redis error", "op", op, "err", err)
	e.mu.Lock()
	e.c.redisError(op, err)
	e.mu.Unlock()
	if w := permanent(err); w > 0 && r.permanent.Add(int64(w)) >= maxPermanent {
		r.abort(fmt.Errorf("leader: giving up after failures that retrying cannot mend: %s: %w", op, err))
	}
}

// maxPermanent is the weight of permanent failures in a row that ends Run
// (see permanent): five definite ones, more than one since a server being
// reconfigured (an ACL reload) can fail a dial or two, which with the
// capped backoff is about a second; or ten connections closed at once,
// which a Redis that is being killed can also do, once.
const maxPermanent = 10

// permanent weighs err against maxPermanent: 2 for one that retrying
// cannot mend (a wrong password or user: WRONGPASS, NOAUTH; a missing
// permission: NOPERM; a server that does not speak Redis's protocol; a TLS
// client at a plain port; a certificate that does not verify), 1 for a new
// connection the server closed at once (a plain client at a TLS port, but
// also, now and then, a Redis being killed), 0 for the rest.
func permanent(err error) int {
	var re redis.Error
	if errors.As(err, &re) {
		for _, p := range []string{"WRONGPASS", "NOAUTH", "NOPERM", "ERR AUTH <password> called without", "ERR Client sent AUTH, but no password is set", "ERR invalid password"} {
			if strings.HasPrefix(string(re), p) {
				return 2
			}
		}
		return 0
	}
	var rh tls.RecordHeaderError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &rh), errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci), errors.Is(err, errNotRedis):
		return 2
	case errors.Is(err, errClosedAtOnce):
		return 1
	}
	return 0
}

// Why a fresh connection failed, where the bare error says nothing.
var (
	errNotRedis     = errors.New("the server does not speak Redis's protocol (RESP): is this the Redis port?")
	errClosedAtOnce = errors.New("the server closed a new connection at once: a proxy whose Redis is down, a TLS port dialled without TLS, or not Redis?")
)

// backoff is capped exponential backoff with full jitter.
type backoff struct {
	next  time.Time
	delay time.Duration
	limit time.Duration
}

func newBackoff(limit time.Duration) *backoff { return &backoff{limit: limit} }

// backoffCap is the reconnect backoff's cap for a HeartbeatInterval of hb:
// hb/10, within [10ms, maxBackoff]. The group elects as soon
// as a quorum is back (a node that only reconnected votes and stands at
// once), so the time to the next try is most of the time a group stays
// leaderless after Redis is back; the jitter still spreads a crowd of
// nodes over it. A dial to a Redis that is down costs little: the refusal
// is at once (and a process with many groups on a Link dials once for all
// of them), and what it logs is rate-limited (see noteError).
func backoffCap(hb time.Duration) time.Duration {
	return min(maxBackoff, max(hb/10, 10*time.Millisecond))
}

func (b *backoff) reset() { b.delay, b.next = 0, time.Time{} }

func (b *backoff) failed() {
	b.delay = min(max(2*b.delay, 50*time.Millisecond), b.limit)
	b.next = time.Now().Add(b.delay/2 + time.Duration(mrand.Int64N(int64(b.delay/2)+1)))
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

// ---------------------------------------------------------------------------
// Sentinel
// ---------------------------------------------------------------------------

// sentinelDial opens a connection to a sentinel or, with sentinel false,
// to the primary at addr.
func (l *link) sentinelDial(ctx context.Context, addr string, sentinel bool) (redis.Conn, error) {
	if d := l.cfg.Sentinel.Dial; d != nil {
		c, err := d(ctx, addr, sentinel)
		if err == nil && !sentinel {
			if err = l.checkDB(c); err != nil {
				c.Close()
			}
		}
		return c, err
	}
	opts := []redis.DialOption{redis.DialReadTimeout(l.pt()), redis.DialWriteTimeout(l.pt())}
	if !sentinel {
		opts = append(opts, redis.DialDatabase(l.cfg.DB))
	}
	return redis.DialContext(ctx, "tcp", addr, opts...)
}

// dialPrimary asks every sentinel at once for the primary, dials the one
// named with the highest config epoch and checks that it is the primary.
func (l *link) dialPrimary(ctx context.Context) (redis.Conn, error) {
	sn := l.cfg.Sentinel
	type answer struct {
		addr  string
		epoch int64
		err   error
	}
	answers := make([]answer, len(sn.Addrs))
	qctx, cancel := context.WithTimeout(ctx, min(l.pt(), time.Second))
	var wg sync.WaitGroup
	for i, a := range sn.Addrs {
		wg.Go(func() { answers[i].addr, answers[i].epoch, answers[i].err = l.askSentinel(qctx, a) })
	}
	wg.Wait()
	cancel()
	best := -1
	var errs []error
	for i, a := range answers {
		switch {
		case a.err != nil:
			errs = append(errs, fmt.Errorf("sentinel %s: %w", sn.Addrs[i], a.err))
		case best < 0 || a.epoch > answers[best].epoch:
			best = i
		}
	}
	if best < 0 {
		return nil, fmt.Errorf("leader: no sentinel named a primary for %q: %w", sn.MasterName, errors.Join(errs...))
	}
	addr := answers[best].addr
	if l.log.Enabled(ctx, slog.LevelDebug) {
		var named []string
		for _, a := range answers {
			if a.err == nil {
				named = append(named, fmt.Sprintf("%s@%d", a.addr, a.epoch))
			}
		}
		l.logf(slog.LevelDebug, "the sentinels name the primary", "chosen", addr, "answers", strings.Join(named, " "))
	}
	c, err := l.sentinelDial(ctx, addr, false)
	if err != nil {
		return nil, err
	}
	// Right after a switch a sentinel may still name the old primary, and
	// the old one answers as a replica once demoted.
	return l.checkPrimary(ctx, c, addr, fmt.Sprintf("named by the sentinels as the primary of %q", sn.MasterName))
}

// checkPrimary checks with ROLE that c, to addr, is a primary, and records
// it as the one in use; otherwise it closes c. named says who named addr.
func (l *link) checkPrimary(ctx context.Context, c redis.Conn, addr, named string) (redis.Conn, error) {
	v, err := redis.Values(redis.DoContext(c, ctx, "ROLE"))
	if err == nil && len(v) > 0 {
		if role, _ := redis.String(v[0], nil); role != "master" {
			err = fmt.Errorf("leader: %s, %s, is a %s", addr, named, role)
		}
	} else if err == nil {
		err = errors.New("leader: empty ROLE reply")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	l.primary.Store(addr)
	return c, nil
}

// askSentinel returns the primary's address and the config epoch that one
// sentinel knows for the master name.
func (l *link) askSentinel(ctx context.Context, addr string) (string, int64, error) {
	sn := l.cfg.Sentinel
	c, err := l.sentinelDial(ctx, addr, true)
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	// SENTINEL MASTER gives the config epoch; GET-MASTER-ADDR-BY-NAME the
	// address, which during a failover is already the promoted replica's.
	m, err := redis.StringMap(redis.DoContext(c, ctx, "SENTINEL", "MASTER", sn.MasterName))
	if err != nil {
		return "", 0, err
	}
	epoch, _ := strconv.ParseInt(m["config-epoch"], 10, 64)
	hp, err := redis.Strings(redis.DoContext(c, ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", sn.MasterName))
	if err != nil {
		return "", 0, err
	}
	if len(hp) != 2 {
		return "", 0, errors.New("no address in GET-MASTER-ADDR-BY-NAME's reply")
	}
	primary := net.JoinHostPort(hp[0], hp[1])
	if primary == net.JoinHostPort(m["ip"], m["port"]) && strings.Contains(m["flags"], "o_down") {
		return "", 0, fmt.Errorf("it sees the primary %s as down, and no failover has promoted another yet", primary)
	}
	return primary, epoch, nil
}

// watchSentinel follows one sentinel's +promoted-slave and +switch-master
// channels until the link stops. When the primary of our master name
// moves, it closes both of the link's connections at once, and they redial
// the new primary without backoff.
func (l *link) watchSentinel(addr string) {
	backoff := newBackoff(backoffCap(l.hb()))
	for l.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(l.ctx, max(l.pt(), time.Second))
		c, err := l.sentinelDial(ctx, addr, true)
		cancel()
		if err == nil {
			if l.followSwitches(c) {
				backoff.reset()
			}
		}
		if !backoff.ready() {
			if !backoff.wait(l.ctx) {
				return
			}
		}
		backoff.failed()
	}
}

// followSwitches runs one subscription to +switch-master until it fails
// or the link stops, and reports whether it was established.
func (l *link) followSwitches(c redis.Conn) (subscribed bool) {
	psc := redis.PubSubConn{Conn: c}
	defer c.Close()
	if psc.Subscribe("+switch-master", "+promoted-slave") != nil {
		return false
	}
	defer l.keepAlive(c, l.pt(), func() error { return psc.Ping("") })()
	for {
		switch v := psc.ReceiveWithTimeout(3 * l.pt()).(type) {
		case redis.Message:
			f := strings.Fields(string(v.Data))
			var to string
			switch {
			case v.Channel == "+switch-master" && len(f) == 5 && f[0] == l.cfg.Sentinel.MasterName:
				// "<master name> <old ip> <old port> <new ip> <new port>"
				to = net.JoinHostPort(f[3], f[4])
			case v.Channel == "+promoted-slave" && len(f) == 8 && f[5] == l.cfg.Sentinel.MasterName:
				// "slave <ip:port> <ip> <port> @ <master name> <ip> <port>":
				// the replica is the primary now, seconds before the
				// failover ends with +switch-master.
				to = net.JoinHostPort(f[2], f[3])
			}
			if to != "" && l.primary.Load() != to {
				l.logf(slog.LevelInfo, "Sentinel moved the primary; redialling at once", "event", v.Channel, "to", to)
				l.switched(nil, true)
			}
		case redis.Subscription:
			subscribed = true
		case error:
			return subscribed
		}
	}
}

// switched closes the connections in use, so that both redial the new
// primary now. With at, only if at is one of them: the others' answers
// are old news once they redialled. With count the switch is counted, and
// the redials skip their backoff.
func (l *link) switched(at redis.Conn, count bool) {
	l.conns.Lock()
	defer l.conns.Unlock()
	if at != nil && at != l.conns.sub && at != l.conns.pub {
		return
	}
	if count {
		l.switches.Add(1)
	}
	for _, c := range []redis.Conn{l.conns.sub, l.conns.pub} {
		if c != nil {
			c.Close()
		}
	}
}

// track records c as the connection in use at *slot (nil: none), for
// switched. A connection dialled when gen switches had been seen is not
// recorded if the primary moved since (it may be to the old one): track
// reports whether c was recorded.
func (l *link) track(slot *redis.Conn, c redis.Conn, gen uint64) bool {
	l.conns.Lock()
	defer l.conns.Unlock()
	if c != nil && l.switches.Load() != gen {
		return false
	}
	*slot = c
	return true
}

// ---------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------

// clusterDial opens a connection to a node of the cluster.
func (l *link) clusterDial(ctx context.Context, addr string) (redis.Conn, error) {
	if d := l.cfg.Cluster.Dial; d != nil {
		return d(ctx, addr)
	}
	return redis.DialContext(ctx, "tcp", addr,
		redis.DialReadTimeout(l.pt()), redis.DialWriteTimeout(l.pt()))
}

// dialSlotOwner dials the primary that serves the group's slot: the node
// a MOVED named, if that is new, or else the one most nodes name.
func (l *link) dialSlotOwner(ctx context.Context) (redis.Conn, error) {
	var errs []error
	if to, _ := l.moved.Swap("").(string); to != "" {
		c, err := l.dialOwner(ctx, to)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	owners, err := l.askSlots(ctx, keySlot(groupChannel(l.cfg.Group, l.cfg.DB)), time.Now())
	if err != nil {
		return nil, errors.Join(append(errs, err)...)
	}
	for _, a := range owners {
		c, err := l.dialOwner(ctx, a)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// dialOwner dials addr and checks that it is a primary. That it serves the
// slot, SSUBSCRIBE and every command check (a MOVED otherwise).
func (l *link) dialOwner(ctx context.Context, addr string) (redis.Conn, error) {
	c, err := l.clusterDial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return l.checkPrimary(ctx, c, addr, "named as the primary of the group's slot")
}

// askSlots asks the seeds and the nodes they named, all at once, which
// primary serves slot, and returns the answers, the most named first:
// right after a failover some nodes still name the old one. Replies asked
// after since are used again (a Link's Electors follow a failover
// together, and one round of CLUSTER SLOTS tells all of them).
func (l *link) askSlots(ctx context.Context, slot int, since time.Time) ([]string, error) {
	l.nodes.Lock()
	defer l.nodes.Unlock()
	if l.nodes.replies == nil || !l.nodes.at.After(since) {
		asks := slices.Clone(l.cfg.Cluster.Addrs)
		for _, a := range l.nodes.addrs {
			if !slices.Contains(asks, a) {
				asks = append(asks, a)
			}
		}
		replies := make([]any, len(asks))
		start := time.Now()
		qctx, cancel := context.WithTimeout(ctx, min(l.pt(), time.Second))
		var wg sync.WaitGroup
		for i, a := range asks {
			wg.Go(func() {
				c, err := l.clusterDial(qctx, a)
				if err != nil {
					replies[i] = err
					return
				}
				defer c.Close()
				v, err := redis.DoContext(c, qctx, "CLUSTER", "SLOTS")
				if err != nil {
					v = err
				}
				replies[i] = v
			})
		}
		wg.Wait()
		cancel()
		l.nodes.asks, l.nodes.replies, l.nodes.at = asks, replies, start
	}
	type answer struct {
		owner string
		nodes []string
		err   error
	}
	asks := l.nodes.asks
	answers := make([]answer, len(asks))
	for i, v := range l.nodes.replies {
		if err, failed := v.(error); failed {
			answers[i].err = err
			continue
		}
		answers[i].owner, answers[i].nodes, answers[i].err = slotOwner(l.nodes.replies[i], slot, asks[i])
	}
	votes := map[string]int{}
	var owners, nodes []string
	var errs []error
	for i, a := range answers {
		if a.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", asks[i], a.err))
			continue
		}
		if votes[a.owner] == 0 {
			owners = append(owners, a.owner)
		}
		votes[a.owner]++
		for _, n := range a.nodes {
			if !slices.Contains(nodes, n) && len(nodes) < maxClusterNodes {
				nodes = append(nodes, n)
			}
		}
	}
	if len(owners) == 0 {
		return nil, fmt.Errorf("leader: no node of the cluster named the primary of slot %d: %w", slot, errors.Join(errs...))
	}
	slices.SortStableFunc(owners, func(a, b string) int { return votes[b] - votes[a] })
	l.nodes.addrs = nodes
	return owners, nil
}

// maxClusterNodes bounds the nodes remembered as further seeds.
const maxClusterNodes = 64

// slotOwner reads a CLUSTER SLOTS reply (asked of node asked): the primary
// that serves slot, and every node named. A node of unknown address ("")
// is the one asked.
func slotOwner(v any, slot int, asked string) (owner string, nodes []string, err error) {
	ranges, err := redis.Values(v, nil)
	if err != nil {
		return "", nil, err
	}
	for _, rg := range ranges {
		f, err := redis.Values(rg, nil)
		if err != nil || len(f) < 3 {
			continue
		}
		lo, err1 := redis.Int(f[0], nil)
		hi, err2 := redis.Int(f[1], nil)
		for i, n := range f[2:] {
			nf, err := redis.Values(n, nil)
			if err != nil || len(nf) < 2 {
				continue
			}
			host, _ := redis.String(nf[0], nil)
			port, err := redis.Int(nf[1], nil)
			if err != nil {
				continue
			}
			if host == "" || host == "?" {
				host, _, _ = net.SplitHostPort(asked)
			}
			a := net.JoinHostPort(host, strconv.Itoa(port))
			nodes = append(nodes, a)
			if i == 0 && err1 == nil && err2 == nil && lo <= slot && slot <= hi {
				owner = a
			}
		}
	}
	if owner == "" {
		return "", nodes, fmt.Errorf("no node serves slot %d", slot)
	}
	return owner, nodes, nil
}

// redirected reports whether err is a Redis Cluster's answer that the
// group's slot is served elsewhere (MOVED, ASK) or not at all (CLUSTERDOWN)
// on connection c, and if so has both connections redial: at once, to the
// node named, when it names a new one.
func (l *link) redirected(c redis.Conn, err error) bool {
	var re redis.Error
	if l.cfg.Cluster == nil || !errors.As(err, &re) {
		return false
	}
	msg := string(re)
	to := ""
	switch {
	case strings.HasPrefix(msg, "MOVED "):
		if f := strings.Fields(msg); len(f) == 3 {
			to = f[2]
		}
	case strings.HasPrefix(msg, "ASK "), strings.HasPrefix(msg, "CLUSTERDOWN"):
		// ASK: the slot is being migrated, and the term key already went;
		// the slot stays where it is until the migration ends (then a
		// sunsubscribe comes), so the redial finds the same node, and the
		// term key fails until then. (The target would take the key only
		// after ASKING, and not the subscription.)
	default:
		return false
	}
	now := time.Since(l.base)
	// At once only to a node not tried just now: two nodes that each name
	// the other, for a moment in a failover, must not make a busy loop of
	// redials. Otherwise (a CLUSTERDOWN, an ASK) the redial backs off.
	fresh := to != "" && l.primary.Load() != to && now-time.Duration(l.movedAt.Load()) >= 100*time.Millisecond
	if fresh {
		l.movedAt.Store(int64(now))
		l.moved.Store(to)
	}
	for _, r := range l.runs() {
		r.e.nRedirects.Add(1)
	}
	l.logf(slog.LevelInfo, "Redis Cluster redirects the group's slot; redialling", "from", l.primary.Load(), "reply", msg)
	l.switched(c, fresh)
	return true
}

// redirectedOne is redirected for a Link's link on a Cluster, where the
// redirect concerns the one Elector whose command it answers: MOVED moves
// it to the node named; ASK and CLUSTERDOWN fail the command, which the
// protocol retries.
func (l *link) redirectedOne(r *run, err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := string(re)
	switch {
	case strings.HasPrefix(msg, "MOVED "):
		to := ""
		if f := strings.Fields(msg); len(f) == 3 {
			to = f[2]
		}
		l.move(r, to, false)
	case strings.HasPrefix(msg, "ASK "), strings.HasPrefix(msg, "CLUSTERDOWN"):
		r.e.nRedirects.Add(1)
	default:
		return false
	}
	return true
}

// push is one frame of a subscribed connection.
type push struct {
	kind    string // message (classic or sharded), subscribe, ssubscribe, unsubscribe, sunsubscribe or pong; "" when err is set
	channel []byte // the channel of a message or a (un)subscribe frame
	data    []byte // a message's payload
	err     error  // a redis.Error reply (the connection stays usable), or why the read failed
}

// receivePush reads one push of a subscribed connection, classic or
// sharded. redigo's PubSubConn knows neither the sharded frames nor the
// plain PONG that a PING gets on a connection whose last channel was
// unsubscribed (a Link whose Electors all left for a moment). It returns
// a value and keeps the channel as bytes: under a flood of junk every
// allocation per message is CPU that the heartbeats queued behind it wait
// for.
func receivePush(c redis.Conn) push {
	// No deadline, whatever read timeout Dial's connection has: the
	// keepalive times the reads (see receive).
	v, err := redis.ReceiveWithTimeout(c, 0)
	if err != nil {
		return push{err: err}
	}
	if s, ok := v.(string); ok && s == "PONG" {
		return push{kind: "pong"}
	}
	f, _ := v.([]any)
	if len(f) < 2 {
		return push{err: fmt.Errorf("leader: unexpected reply on a subscribed connection: %T", v)}
	}
	kind, _ := f[0].([]byte)
	ch, chOK := f[1].([]byte)
	switch string(kind) {
	case "message", "smessage":
		if data, ok := f[len(f)-1].([]byte); ok && chOK && len(f) == 3 {
			return push{kind: "message", channel: ch, data: data}
		}
	case "subscribe", "ssubscribe", "unsubscribe", "sunsubscribe":
		if _, ok := f[len(f)-1].(int64); ok && chOK && len(f) == 3 {
			return push{kind: string(kind), channel: ch}
		}
	case "pong":
		return push{kind: "pong"}
	}
	return push{err: fmt.Errorf("leader: unexpected %q push on a subscribed connection", kind)}
}

// keySlot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its
// hash tag (the part between the first { and the next }, if not empty) or
// of the whole key, modulo 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc & 16383)
}
