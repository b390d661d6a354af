package leader

// The tests talk to a real redis-server that they start on a free loopback
// port, through a small TCP proxy per node that can blackhole a node's link
// (a network partition, as toxiproxy's timeout toxic does). A monitor
// goroutine samples IsLeader of every node every millisecond and records
// every leader callback with its time, and checks at the end of each test
// that no two nodes were ever leader at once, that terms only grew, and that
// the callbacks kept their documented order.
//
// Timings are short (HeartbeatInterval 20ms, LeaseTimeout 80ms, PeerTimeout
// 150ms, ElectionJitter 60ms) so the suite is quick. Bounds on failover times
// are asserted with a generous slack for -race on a loaded 2-core machine;
// the measured figures are logged (go test -v), and the chaos harness is the
// place for timing claims.
//
// Which test shows what:
//
//	real redis-server, clear line when missing   TestMain, startRedis
//	1, 3, 7 nodes: one leader, agreed ID, term   TestElectsExactlyOneLeader
//	leader cut off: new leader, higher term      TestLeaderCutOffFailover, TestLeaderConnectionsDropped
//	Resign / ctx cancel: fast, callbacks ordered TestGracefulHandover, TestHandoverRightAfterJoin
//	lost Redis: IsLeader false within the lease  TestLostRedisLeaderStepsDownFirst, TestRedisRestart
//	strict minority never leads, dynamic lone    TestStrictModeMinorityNeverLeads, TestDynamicModeLoneNodeLeads
//	joining node never takes over                TestJoiningNodeNeverTakesOver, TestRejoinAfterLoneLeader
//	terms never go back, also after restarts     TestTermsOutliveRestarts, the monitor (every test)
//	callbacks outside locks, slow callbacks      TestCallbacksNotUnderLock, TestSlowCallbacksDoNotDelayHeartbeats,
//	                                             TestSlowLeaderCallbackReturn, TestResignFromCallbacks
//	returning node does not depose (pre-vote)    TestReturningNodeDoesNotDepose, TestRejoinAfterLoneLeader
//	bad messages dropped and counted             TestBadMessagesAreDropped, TestRogueNodesCannotDisturb,
//	                                             TestJunkFlood, TestReplayWithSecret, FuzzMessage
//	New rejects bad configs, naming the field    TestNewRejectsBadConfig
//	no goroutine left after Run                  TestNoGoroutinesLeftAfterRun, goleak in TestMain
//	never two leaders at once                    the monitor, checked at the end of every cluster test
//	Sentinel-style failover to a promoted replica TestReplicaPromoted
//	password, TLS and a least-privilege ACL user  TestPasswordRedisThroughDial, TestTLSAndACLUser
//	a restart with the same ID never votes twice  TestRestartedVoterNeverVotesTwice
//	the heir stands first; backoff; stalled nodes TestHeirStandsFirst, TestElectionBackoff,
//	                                             TestStalledNodeVotesButWaitsToStand
//	a slow Logger: IsLeader prompt, no overlap   TestSlowLoggerNeverOverlaps
//	term key unwritable (OOM, NOPERM): no lead   TestTermKeyFailureNeverFallsBack
//	a lone-elected leader's echo after a cut     TestDynamicLoneLeaderNeverRearmsAfterCut
//	a restarted voter never acks an old leader   TestRestartedVoterNeverAcksOldLeader, TestJustStartedNodeNeverAcks
//	late inputs judged when handled              TestLateAckNeverActivates
//	a handover keeps an older lease's wait       TestHandoverKeepsTheWaitForAnOldLease
//	dynamic candidates count Redis's subscribers TestDynamicCandidateCountsRedisSubscribers
//	no password from Addr in errors or logs      TestNewRefusesAddrURLs
//	PUBLISH error replies counted                TestPublishErrorsAreCounted
//	the README names leader.Version              TestReadmeNamesVersion
//	signatures bind the channel (group, DB)      TestSignedMessagesCountOnlyWhereSent
//	replays and copies change nothing            TestReplaysChangeNothing, TestCopiesChangeNothing
//	mismatched Secrets: one leader, loud         TestMismatchedSecretsNeverSplit
//	key rotation with PreviousSecret             TestKeyRotationWithoutDowntime
//	one group name on two DBs: two elections     TestDBsNeverJoin
//	duplicate IDs warned on both sides           TestDuplicateIDWarnsBothSides
//	a failover explained (causes, logs, health)  TestFailoverIsExplained, TestNotReadyWhileListening
//	preferred leader, Scale                      TestPriorityLeaderReturns, TestScaleScalesEveryTiming
//	Sentinel: on the new primary at once         TestSentinelFailover
//	random schedules of the real core, checked   TestSim (the simulator, at the end of this file)
//	at every step (never two active, one leader
//	per term, terms never back, a leader soon)

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// Test timings: the defaults' ratios, scaled down.
const (
	testHeartbeat = 20 * time.Millisecond
	testLease     = 80 * time.Millisecond
	testPeer      = 150 * time.Millisecond
	testJitter    = 60 * time.Millisecond

	// waitLong bounds every wait for something that should happen within a
	// few PeerTimeouts: long enough not to fail on a loaded machine, short
	// enough that a hang fails quickly.
	waitLong = 5 * time.Second
	// raceSlack is added to the latency bounds the issue states, for the race
	// detector on a busy 2-core machine. The measured figures are logged.
	raceSlack = 400 * time.Millisecond
	// calm is how long tests watch that nothing changes: several
	// PeerTimeouts plus jitter, dozens of heartbeats.
	calm = 4 * (testPeer + testJitter)
)

const redisMissing = "redis-server not found: run 'bash scripts/ensure-redis.sh' (Debian: apt-get install redis-server; macOS: brew install redis)"

func TestMain(m *testing.M) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		fmt.Fprintln(os.Stderr, redisMissing)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m)
}

// ---------------------------------------------------------------------------
// redis-server

type redisServer struct {
	t     testing.TB
	bin   string
	port  int
	Addr  string
	extra []string

	cmd    *exec.Cmd
	exited chan error
	out    *lockedBuffer
}

// startRedis starts a redis-server without persistence on a free loopback
// port, waits until it answers PING, and stops it when the test ends. extra
// arguments are passed on, e.g. "--requirepass", "secret".
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(redisMissing)
	}
	var lastErr error
	for range 5 { // a free port can be taken between finding and using it
		// --dir: a replica writes the RDB it receives; keep it out of the tree.
		r := &redisServer{t: t, bin: bin, port: freePort(t), extra: append([]string{"--dir", t.TempDir()}, extra...)}
		r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
		if lastErr = r.start(); lastErr == nil {
			t.Cleanup(r.stop)
			return r
		}
	}
	t.Fatalf("redis-server did not start: %v", lastErr)
	return nil
}

func (r *redisServer) start() error {
	args := []string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"}
	cmd := exec.Command(r.bin, append(args, r.extra...)...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if pingRedis(r.Addr) {
			r.cmd, r.exited, r.out = cmd, exited, out
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited (%v): %s", err, out)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server did not answer PING within 5s: %s", out)
		}
	}
}

// stop kills the server (SIGKILL: its data is gone, as in a crash).
func (r *redisServer) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

// restart starts a fresh, empty server on the same port.
func (r *redisServer) restart() {
	r.t.Helper()
	r.stop()
	var err error
	for range 50 { // the port is free again at once (SO_REUSEADDR), but be patient
		if err = r.start(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("redis-server did not restart on port %d: %v", r.port, err)
}

// pingRedis reports whether a server answers on addr; an error reply (e.g.
// NOAUTH) is an answer.
func pingRedis(addr string) bool {
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(200*time.Millisecond),
		redis.DialReadTimeout(200*time.Millisecond), redis.DialWriteTimeout(200*time.Millisecond))
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = c.Do("PING")
	var re redis.Error
	return err == nil || errors.As(err, &re)
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// redisClient returns a plain redigo connection to addr, closed at the end
// of the test.
func redisClient(t testing.TB, addr string) redis.Conn {
	t.Helper()
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(5*time.Second), redis.DialWriteTimeout(5*time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// ---------------------------------------------------------------------------
// A TCP proxy that can blackhole a node's link.

// proxy forwards a listener on 127.0.0.1 to Redis. Cut makes it a blackhole,
// like a network partition: connections stay open and writes succeed, but
// the data is dropped; new connections are accepted and forward nothing.
// Heal closes every connection (so a heal is also a reconnect, as with
// toxiproxy) and forwards again.
type proxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex // guards the fields below
	cutUp    bool       // drop client-to-Redis bytes (the node is mute)
	cutDown  bool       // drop Redis-to-client bytes (the node is deaf)
	conns    map[net.Conn]struct{}
	closed   bool
	refuse   bool // Kill: close every connection at once, new ones too
	accepted int

	wg sync.WaitGroup // the accept loop and the pumps
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		if p.refuse {
			p.mu.Unlock()
			c.Close()
			s.Close()
			continue
		}
		p.accepted++
		p.conns[c] = struct{}{}
		p.conns[s] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pump(c, s, true)
		go p.pump(s, c, false)
	}
}

func (p *proxy) pump(src, dst net.Conn, up bool) {
	defer p.wg.Done()
	defer func() {
		src.Close()
		dst.Close()
		p.mu.Lock()
		delete(p.conns, src)
		delete(p.conns, dst)
		p.mu.Unlock()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			cut := p.cutDown
			if up {
				cut = p.cutUp
			}
			p.mu.Unlock()
			if !cut {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// Cut blackholes both directions and returns the time the cut was in force:
// nothing sent after it gets through.
func (p *proxy) Cut() time.Time { return p.cut(true, true) }

// CutUp drops what the node sends: it is mute (its PING gets no PONG).
func (p *proxy) CutUp() time.Time { return p.cut(true, false) }

// CutDown drops what Redis sends to the node: it is deaf.
func (p *proxy) CutDown() time.Time { return p.cut(false, true) }

func (p *proxy) cut(up, down bool) time.Time {
	p.mu.Lock()
	p.cutUp, p.cutDown = up, down
	p.mu.Unlock()
	return time.Now()
}

// Kill closes every connection and refuses new ones, as when the node's
// process dies: Redis sees its connections close at once. (The Elector
// itself keeps running, a zombie that can no longer reach Redis.)
func (p *proxy) Kill() time.Time {
	p.mu.Lock()
	p.refuse = true
	p.mu.Unlock()
	p.closeConns()
	return time.Now()
}

// Heal forwards again and closes every connection, as removing a toxiproxy
// toxic does.
func (p *proxy) Heal() {
	p.mu.Lock()
	p.cutUp, p.cutDown, p.refuse = false, false, false
	p.mu.Unlock()
	p.closeConns()
}

// closeConns closes every connection the proxy holds (outside its lock:
// the forwarders take it as they end).
func (p *proxy) closeConns() {
	p.mu.Lock()
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

// ---------------------------------------------------------------------------
// Logs to t.Log.

// testLog is an io.Writer for slog that writes to t.Log until the test's
// cleanup closes it, so a goroutine that outlives the test cannot panic it.
type testLog struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLog) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// testLogLevel is Info, or Debug with LEADER_TEST_DEBUG=1; logs show with -v
// or when a test fails.
func testLogLevel() slog.Level {
	if os.Getenv("LEADER_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// ---------------------------------------------------------------------------
// The cluster: n Electors in this process, each through its own proxy.

type cluster struct {
	t     *testing.T
	redis *redisServer
	group string
	log   *testLog
	mon   *monitor

	mu    sync.Mutex // guards nodes
	nodes []*node
}

type node struct {
	c     *cluster
	id    string
	e     *Elector
	cfg   Config // as passed to New, callbacks wrapped
	proxy *proxy

	cancel  context.CancelFunc
	done    chan error // Run's result
	stopped bool       // stop was called (test goroutine only)
	runErr  error
	rogue   bool // not watched by the monitor
	gaveUp  bool // Run returned an error the test expected (see waitGaveUp)
}

// waitGaveUp waits until n's Run returns by itself, on a permanent failure,
// and returns its error; the cluster's cleanup then expects that error.
func (n *node) waitGaveUp() error {
	n.c.t.Helper()
	var err error
	// A connection closed at once weighs half a definite failure (a Redis
	// being killed can do that too), so with the capped backoff giving up
	// on one can take about 10 s.
	const within = 4 * waitLong
	if !poll(within, func() bool {
		var ok bool
		err, ok = n.exited()
		return ok
	}) {
		n.c.t.Fatalf("%s: Run did not give up within %v (last error %q)", n.id, within, n.e.Status().LastRedisError)
	}
	require.Error(n.c.t, err, "%s: Run returned nil by itself", n.id)
	n.gaveUp = true
	return err
}

// newCluster starts a Redis and returns an empty cluster on it. Its cleanup
// stops every node (and checks that Run returned), then checks what the
// monitor recorded.
func newCluster(t *testing.T) *cluster {
	return newClusterOn(t, startRedis(t), "g")
}

// newClusterOn returns an empty cluster for group on an existing Redis.
func newClusterOn(t *testing.T, r *redisServer, group string) *cluster {
	c := &cluster{t: t, redis: r, group: group, log: &testLog{t: t}}
	c.mon = newMonitor()
	t.Cleanup(c.shutdown)
	return c
}

func (c *cluster) channel() string { return "leader:{" + c.group + "}" }

// config is the test configuration of a node.
func (c *cluster) config(id, addr string) Config {
	return Config{
		Addr:              addr,
		Group:             c.group,
		ID:                id,
		HeartbeatInterval: testHeartbeat,
		LeaseTimeout:      testLease,
		PeerTimeout:       testPeer,
		ElectionJitter:    testJitter,
		Logger:            slog.New(slog.NewTextHandler(c.log, &slog.HandlerOptions{Level: testLogLevel()})),
	}
}

// start starts a node running through its own proxy; mod, if not nil, edits
// its Config (callbacks set there run inside the monitor's recorders).
func (c *cluster) start(id string, mod func(*Config)) *node {
	c.t.Helper()
	return c.startNode(id, mod, false)
}

// startRogue starts a node the monitor does not watch (e.g. one with the
// wrong Secret, which may well think itself leader of its own election).
func (c *cluster) startRogue(id string, mod func(*Config)) *node {
	c.t.Helper()
	return c.startNode(id, mod, true)
}

func (c *cluster) startNode(id string, mod func(*Config), rogue bool) *node {
	c.t.Helper()
	n := &node{c: c, id: id, done: make(chan error, 1), rogue: rogue}
	n.proxy = startProxy(c.t, c.redis.Addr)
	cfg := c.config(id, n.proxy.Addr())
	if mod != nil {
		mod(&cfg)
	}
	if !rogue {
		c.mon.wrap(n, &cfg)
	}
	e, err := New(cfg)
	if err != nil {
		n.proxy.close()
	}
	require.NoError(c.t, err)
	n.e, n.cfg = e, cfg
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	if !rogue {
		c.mon.add(n)
	}
	go func() { n.done <- e.Run(ctx) }()
	return n
}

// startN starts n nodes with IDs prefix0, prefix1, ...
func (c *cluster) startN(n int, prefix string, mod func(*Config)) []*node {
	c.t.Helper()
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = c.start(prefix+strconv.Itoa(i), mod)
	}
	return nodes
}

// stop cancels the node's Run and waits for it to return. Call it from the
// test goroutine only.
func (n *node) stop() error {
	n.c.t.Helper()
	if n.stopped {
		return n.runErr
	}
	n.stopped = true
	n.cancel()
	select {
	case n.runErr = <-n.done:
	case <-time.After(waitLong):
		n.runErr = fmt.Errorf("Run did not return within %v of its context being cancelled", waitLong)
		n.c.t.Errorf("node %s: %v", n.id, n.runErr)
	}
	return n.runErr
}

// stopAll stops nodes concurrently (all contexts cancelled at once, as in a
// full restart) and waits for every Run.
func stopAll(t *testing.T, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		if !n.stopped {
			n.cancel()
		}
	}
	for _, n := range nodes {
		n.stop()
	}
}

// exited reports, without blocking, whether Run returned by itself.
func (n *node) exited() (error, bool) {
	if n.stopped {
		return n.runErr, true
	}
	select {
	case err := <-n.done:
		n.stopped, n.runErr = true, err
		return err, true
	default:
		return nil, false
	}
}

func (c *cluster) all() []*node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.nodes)
}

func (c *cluster) shutdown() {
	t := c.t
	nodes := c.all()
	for _, n := range nodes {
		if !n.stopped {
			n.cancel()
		}
	}
	for _, n := range nodes {
		err := n.stop()
		if err != nil && !errors.Is(err, context.Canceled) && !n.gaveUp {
			t.Errorf("node %s: Run returned %v; want nil or context.Canceled after its context was cancelled", n.id, err)
		}
	}
	c.mon.stop()
	for _, n := range nodes {
		n.proxy.close()
	}
	c.mon.check(t, nodes)
	c.log.close()
}

// dump describes every node, for failure messages.
func (c *cluster) dump() string {
	var b strings.Builder
	for _, n := range c.all() {
		s := n.e.Status()
		id, term := n.e.Leader()
		state := "running"
		if err, ok := n.exited(); ok {
			state = fmt.Sprintf("Run returned %v", err)
		}
		fmt.Fprintf(&b, "  %s (%s): state=%v term=%d leader=%q/%d active=%v lease=%v live=%v connected=%v elections=%d stepdowns=%d in=%d out=%d dropped=%d reconnects=%d lastErr=%q\n",
			n.id, state, s.State, s.Term, id, term, s.Active, s.LeaseLeft, s.LivePeers, s.Connected,
			s.Elections, s.StepDowns, s.MessagesIn, s.MessagesOut, s.Dropped, s.Reconnects, s.LastRedisError)
	}
	return b.String()
}

// poll calls cond every 2ms until it is true or d has passed; it returns
// whether cond became true.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// holdFor checks every 2ms for d that check returns nil, and fails the test
// at the first error.
func (c *cluster) holdFor(d time.Duration, what string, check func() error) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := check(); err != nil {
			c.t.Fatalf("%s: %v\n%s", what, err, c.dump())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitLeader waits until exactly one of nodes is the active leader and all
// of them follow it in the same term, and returns it and the term.
func (c *cluster) waitLeader(nodes ...*node) (*node, uint64) {
	c.t.Helper()
	var ldr *node
	var term uint64
	ok := poll(waitLong, func() bool {
		ldr, term = agreedLeader(nodes)
		return ldr != nil
	})
	if !ok {
		c.t.Fatalf("no leader agreed by all of %v within %v:\n%s", ids(nodes), waitLong, c.dump())
	}
	return ldr, term
}

// waitStable waits until one leader, agreed by all of nodes, has held for d
// without a change, and returns it. Use it after faults that may move
// leadership more than once.
func (c *cluster) waitStable(d time.Duration, nodes ...*node) (*node, uint64) {
	c.t.Helper()
	deadline := time.Now().Add(waitLong + d)
	for {
		var ldr *node
		var term uint64
		if !poll(time.Until(deadline), func() bool {
			ldr, term = agreedLeader(nodes)
			return ldr != nil
		}) {
			c.t.Fatalf("no leader agreed by all of %v within %v:\n%s", ids(nodes), waitLong+d, c.dump())
		}
		check := stable(ldr, term, nodes...)
		held := poll(d, func() bool { return check() != nil })
		if !held {
			return ldr, term // check never failed for d
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("leadership did not settle for %v within %v: %v\n%s", d, waitLong+d, check(), c.dump())
		}
	}
}

// agreedLeader returns the one active leader among nodes that all of them
// follow, with its term, or nil.
func agreedLeader(nodes []*node) (*node, uint64) {
	var ldr *node
	for _, n := range nodes {
		if n.e.IsLeader() {
			if ldr != nil {
				return nil, 0
			}
			ldr = n
		}
	}
	if ldr == nil {
		return nil, 0
	}
	id, term := ldr.e.Leader()
	if id != ldr.id || term == 0 {
		return nil, 0
	}
	for _, n := range nodes {
		if gid, gterm := n.e.Leader(); gid != id || gterm != term {
			return nil, 0
		}
	}
	return ldr, term
}

// stable returns a check for holdFor: ldr leads in term, and every one of
// nodes follows it.
func stable(ldr *node, term uint64, nodes ...*node) func() error {
	return func() error {
		if !ldr.e.IsLeader() {
			return fmt.Errorf("%s (term %d) is no longer the active leader", ldr.id, term)
		}
		for _, n := range nodes {
			if id, tm := n.e.Leader(); id != ldr.id || tm != term {
				return fmt.Errorf("%s follows %q in term %d; want %q in term %d", n.id, id, tm, ldr.id, term)
			}
			if s := n.e.Status(); s.Term != term {
				return fmt.Errorf("%s is in term %d; want %d", n.id, s.Term, term)
			}
			if n != ldr && n.e.IsLeader() {
				return fmt.Errorf("%s is leader too", n.id)
			}
		}
		return nil
	}
}

func ids(nodes []*node) []string {
	s := make([]string, len(nodes))
	for i, n := range nodes {
		s[i] = n.id
	}
	return s
}

func without(nodes []*node, drop ...*node) []*node {
	var out []*node
	for _, n := range nodes {
		if !slices.Contains(drop, n) {
			out = append(out, n)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// The safety monitor.

// monitor watches every node of a cluster. A sampler goroutine calls
// IsLeader on every node every millisecond, in a forward then a backward
// pass: a node true in both passes was leader throughout the pass, so two
// such nodes were leaders at the same instant (no false alarms from the time
// between two calls). The wrapped callbacks record when each
// OnStartedLeading began and returned and when OnStoppedLeading ran, and
// check that the Elector's methods can be called from inside them.
type monitor struct {
	mu    sync.Mutex // guards everything below
	nodes []*node
	spans map[*node][]*span // sampled IsLeader() == true intervals
	leads []*leading        // every OnStartedLeading, in start order
	news  map[*node][]newLeader
	terms map[*node]uint64 // highest Status().Term seen per node
	errs  []string         // safety violations seen while sampling or in callbacks (the first 30)
	nerrs int              // how many in all

	// callbacksMayOverlap is set by tests whose OnStartedLeading ignores
	// its context on purpose; IsLeader still must never overlap.
	callbacksMayOverlap bool

	stopc, done chan struct{}
}

// span is a run of samples in which a node was leader: from and to are
// times taken just before IsLeader calls that returned true; after is the
// time of the first sample that returned false (zero while open).
type span struct {
	from, to, after time.Time
}

type leading struct {
	n             *node
	term          uint64
	start, end    time.Time // OnStartedLeading entered; returned (zero while running)
	stopped       time.Time // OnStoppedLeading called for it
	ended         bool      // OnStartedLeading returned
	stoppedCalled bool      // OnStoppedLeading called for it
}

type newLeader struct {
	id   string
	term uint64
	at   time.Time
}

func newMonitor() *monitor {
	m := &monitor{
		spans: map[*node][]*span{},
		news:  map[*node][]newLeader{},
		terms: map[*node]uint64{},
		stopc: make(chan struct{}),
		done:  make(chan struct{}),
	}
	go m.sample()
	return m
}

func (m *monitor) add(n *node) {
	m.mu.Lock()
	m.nodes = append(m.nodes, n)
	m.mu.Unlock()
}

func (m *monitor) stop() {
	select {
	case <-m.stopc:
	default:
		close(m.stopc)
	}
	<-m.done
}

func (m *monitor) violation(format string, args ...any) {
	m.mu.Lock()
	m.record(fmt.Sprintf(format, args...))
	m.mu.Unlock()
}

// record keeps a violation; m.mu is held. Past 30, only the count grows.
func (m *monitor) record(msg string) {
	if len(m.errs) < 30 {
		m.errs = append(m.errs, msg)
	}
	m.nerrs++
}

func (m *monitor) sample() {
	defer close(m.done)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-m.stopc:
			return
		case <-tick.C:
		}
		m.mu.Lock()
		nodes := slices.Clone(m.nodes)
		m.mu.Unlock()
		k := len(nodes)
		fwAt, bwAt := make([]time.Time, k), make([]time.Time, k)
		fw, bw := make([]bool, k), make([]bool, k)
		for j, n := range nodes {
			fwAt[j] = time.Now()
			fw[j] = n.e.IsLeader()
		}
		for j := k - 1; j >= 0; j-- {
			bwAt[j] = time.Now()
			bw[j] = nodes[j].e.IsLeader()
		}
		var terms []uint64
		var leaseErrs []string
		if i%5 == 0 {
			terms = make([]uint64, k)
			for j, n := range nodes {
				st := n.e.Status()
				terms[j] = st.Term
				// A lease runs from a heartbeat's send time, so it can never
				// reach further than LeaseTimeout from now.
				if lease := n.e.cfg.LeaseTimeout; st.LeaseLeft > lease || (st.LeaseLeft > 0 && !st.Active) {
					leaseErrs = append(leaseErrs, fmt.Sprintf("%s: Status LeaseLeft %v (Active %v) with LeaseTimeout %v", n.id, st.LeaseLeft, st.Active, lease))
				}
			}
		}
		var both []string
		m.mu.Lock()
		for j, n := range nodes {
			m.observe(n, fwAt[j], fw[j])
			m.observe(n, bwAt[j], bw[j])
			if fw[j] && bw[j] {
				both = append(both, n.id)
			}
			if terms != nil {
				if terms[j] < m.terms[n] {
					m.record(fmt.Sprintf("%s: term went back from %d to %d", n.id, m.terms[n], terms[j]))
				}
				m.terms[n] = max(m.terms[n], terms[j])
			}
		}
		for _, e := range leaseErrs {
			m.record(e)
		}
		if len(both) > 1 {
			m.record(fmt.Sprintf("%v were all leaders at once, at %s", both, fwAt[0].Format("15:04:05.000000")))
		}
		m.mu.Unlock()
	}
}

// observe records one IsLeader sample; m.mu is held.
func (m *monitor) observe(n *node, at time.Time, active bool) {
	spans := m.spans[n]
	var cur *span
	if len(spans) > 0 && spans[len(spans)-1].after.IsZero() {
		cur = spans[len(spans)-1]
	}
	switch {
	case active && cur == nil:
		m.spans[n] = append(spans, &span{from: at, to: at})
	case active:
		cur.to = at
	case cur != nil:
		cur.after = at
	}
}

// activeSpans returns a copy of n's sampled leader intervals.
func (m *monitor) activeSpans(n *node) []span {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]span, len(m.spans[n]))
	for i, s := range m.spans[n] {
		out[i] = *s
	}
	return out
}

// firstActive returns when n was first seen leader after t. The sampler
// may lag the caller's own IsLeader calls, so it waits (bounded) for it.
func (m *monitor) firstActive(n *node, t time.Time) (at time.Time, ok bool) {
	poll(waitLong, func() bool {
		for _, s := range m.activeSpans(n) {
			if s.from.After(t) {
				at, ok = s.from, true
				return true
			}
		}
		return false
	})
	return at, ok
}

// seenActiveAfter is firstActive without waiting for the sampler.
func (m *monitor) seenActiveAfter(n *node, t time.Time) (time.Time, bool) {
	for _, s := range m.activeSpans(n) {
		if s.from.After(t) {
			return s.from, true
		}
	}
	return time.Time{}, false
}

// lastActive returns the last time n was seen leader, and the first time
// after it that n was seen not leader. It waits (bounded) for the sampler
// to see the end of n's last span; after is zero if n still leads.
func (m *monitor) lastActive(n *node) (last, after time.Time) {
	poll(waitLong, func() bool {
		spans := m.activeSpans(n)
		if len(spans) == 0 {
			return true
		}
		s := spans[len(spans)-1]
		last, after = s.to, s.after
		return !after.IsZero()
	})
	return last, after
}

// spanCount returns how many times n was seen becoming leader, once the
// sampler has seen it lead.
func (m *monitor) spanCount(n *node) int {
	m.firstActive(n, time.Time{})
	return len(m.activeSpans(n))
}

// leadsOf returns copies of n's OnStartedLeading records.
func (m *monitor) leadsOf(n *node) []leading {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []leading
	for _, l := range m.leads {
		if l.n == n {
			out = append(out, *l)
		}
	}
	return out
}

// lastLead returns n's latest OnStartedLeading record.
func (m *monitor) lastLead(n *node) (leading, bool) {
	ls := m.leadsOf(n)
	if len(ls) == 0 {
		return leading{}, false
	}
	return ls[len(ls)-1], true
}

// wrap wraps cfg's callbacks in recorders. Each recorder first calls the
// node's Status, IsLeader, Leader and ID from another goroutine and waits for
// them: if the Elector called the callback while holding its lock, they
// block, and the monitor records it (instead of deadlocking the test).
func (m *monitor) wrap(n *node, cfg *Config) {
	started, stopped, newLdr := cfg.OnStartedLeading, cfg.OnStoppedLeading, cfg.OnNewLeader
	cfg.OnStartedLeading = func(ctx context.Context, term uint64) {
		l := &leading{n: n, term: term, start: time.Now()}
		m.mu.Lock()
		m.leads = append(m.leads, l)
		m.mu.Unlock()
		m.lockCheck(n, "OnStartedLeading")
		if started != nil {
			started(ctx, term)
		} else {
			<-ctx.Done()
		}
		end := time.Now() // before taking the lock, which the sampler contends
		m.mu.Lock()
		l.end, l.ended = end, true
		m.mu.Unlock()
	}
	cfg.OnStoppedLeading = func(cause error) {
		now := time.Now()
		if !slices.Contains(stopCauses[:], cause) {
			m.record(fmt.Sprintf("%s: OnStoppedLeading(%v): not one of the documented causes", n.id, cause))
		}
		m.mu.Lock()
		var l *leading
		for _, x := range m.leads {
			if x.n == n && x.ended && !x.stoppedCalled {
				l = x
				break
			}
		}
		if l == nil {
			m.record(fmt.Sprintf("%s: OnStoppedLeading called without an OnStartedLeading that has returned", n.id))
		} else {
			l.stopped, l.stoppedCalled = now, true
		}
		m.mu.Unlock()
		m.lockCheck(n, "OnStoppedLeading")
		if stopped != nil {
			stopped(cause)
		}
	}
	cfg.OnNewLeader = func(id string, term uint64) {
		m.mu.Lock()
		m.news[n] = append(m.news[n], newLeader{id: id, term: term, at: time.Now()})
		m.mu.Unlock()
		m.lockCheck(n, "OnNewLeader")
		if newLdr != nil {
			newLdr(id, term)
		}
	}
}

func (m *monitor) lockCheck(n *node, where string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = n.e.Status()
		_ = n.e.IsLeader()
		_, _ = n.e.Leader()
		_ = n.e.ID()
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		m.violation("%s: Status/IsLeader/Leader called from %s blocked for 2s: the callback runs while the Elector holds its lock", n.id, where)
	}
}

// newLeaders returns n's OnNewLeader calls.
func (m *monitor) newLeaders(n *node) []newLeader {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.news[n])
}

// check reports every violation recorded, and checks the callback records.
// Call it after every node has stopped.
func (m *monitor) check(t *testing.T, nodes []*node) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.errs {
		t.Errorf("safety: %s", e)
	}
	if m.nerrs > len(m.errs) {
		t.Errorf("safety: %d more violations like these", m.nerrs-len(m.errs))
	}
	// Leadership intervals (OnStartedLeading to its return) never overlap,
	// and each has a higher term than the one before, unless it is the same
	// leader again in its term: one leader per term, fencing tokens only
	// grow.
	leads := slices.Clone(m.leads)
	slices.SortFunc(leads, func(a, b *leading) int { return a.start.Compare(b.start) })
	for i, l := range leads {
		if !l.ended {
			if err, ok := l.n.exited(); ok {
				t.Errorf("%s: OnStartedLeading (term %d) still running after Run returned (%v)", l.n.id, l.term, err)
			}
			continue
		}
		if _, ok := l.n.exited(); ok && !l.stoppedCalled && l.n.runErr != nil && strings.Contains(l.n.runErr.Error(), "did not return") {
			continue
		}
		if !l.stoppedCalled {
			t.Errorf("%s: OnStoppedLeading was not called after OnStartedLeading (term %d) returned", l.n.id, l.term)
		}
		if i+1 < len(leads) {
			next := leads[i+1]
			if !l.end.Before(next.start) && !m.callbacksMayOverlap {
				t.Errorf("safety: %s's OnStartedLeading (term %d) started at %s, before %s's (term %d) returned at %s",
					next.n.id, next.term, next.start.Format("15:04:05.000000"), l.n.id, l.term, l.end.Format("15:04:05.000000"))
			}
			// A leader whose lease lapsed may win a new lease in its term
			// again; another node never leads in the same or a lower term.
			if next.term < l.term || (next.term == l.term && next.n != l.n) {
				t.Errorf("safety: %s led in term %d after %s led in term %d: terms must grow", next.n.id, next.term, l.n.id, l.term)
			}
		}
	}
	// OnNewLeader never goes back in term.
	for n, news := range m.news {
		var last uint64
		for _, x := range news {
			if x.id == "" {
				continue
			}
			if x.term < last {
				t.Errorf("%s: OnNewLeader(%q, %d) after a leader of term %d", n.id, x.id, x.term, last)
			}
			last = max(last, x.term)
		}
	}
	// After Run returned, no node may still say it leads.
	for _, n := range nodes {
		if _, ok := n.exited(); ok && n.e.IsLeader() {
			t.Errorf("%s: IsLeader() is true after Run returned", n.id)
		}
	}
}

// ---------------------------------------------------------------------------
// Configuration

func TestNewRejectsBadConfig(t *testing.T) {
	long := strings.Repeat("x", 201)
	tests := []struct {
		name  string
		cfg   Config
		field []string // each must appear in the error
	}{
		{"negative HeartbeatInterval", Config{HeartbeatInterval: -time.Millisecond}, []string{"HeartbeatInterval"}},
		{"negative LeaseTimeout", Config{LeaseTimeout: -time.Millisecond}, []string{"LeaseTimeout"}},
		{"negative PeerTimeout", Config{PeerTimeout: -time.Millisecond}, []string{"PeerTimeout"}},
		{"negative ElectionJitter", Config{ElectionJitter: -time.Millisecond}, []string{"ElectionJitter"}},
		{"LeaseTimeout equal to PeerTimeout", Config{LeaseTimeout: 500 * time.Millisecond, PeerTimeout: 500 * time.Millisecond}, []string{"LeaseTimeout", "PeerTimeout"}},
		{"LeaseTimeout above PeerTimeout", Config{LeaseTimeout: 600 * time.Millisecond}, []string{"LeaseTimeout", "PeerTimeout", "600ms", "500ms"}},
		{"LeaseTimeout above the default PeerTimeout", Config{LeaseTimeout: time.Second, PeerTimeout: 0}, []string{"LeaseTimeout", "PeerTimeout"}},
		{"LeaseTimeout below twice HeartbeatInterval", Config{HeartbeatInterval: 200 * time.Millisecond}, []string{"LeaseTimeout", "HeartbeatInterval"}},
		{"negative ClusterSize", Config{ClusterSize: -1}, []string{"ClusterSize"}},
		{"ID with a space", Config{ID: "my node"}, []string{"ID"}},
		{"ID with a newline", Config{ID: "node\n1"}, []string{"ID"}},
		{"ID too long", Config{ID: long}, []string{"ID"}},
		{"Group with a space", Config{Group: "my group"}, []string{"Group"}},
		{"Group too long", Config{Group: long}, []string{"Group"}},
		{"Group with a brace", Config{Group: "a{b}"}, []string{"Group", "hash tag"}},
		{"Cluster in dynamic mode", Config{Cluster: &Cluster{Addrs: []string{"127.0.0.1:7000"}}}, []string{"Cluster", "strict mode"}},
		{"Cluster without Addrs", Config{Cluster: &Cluster{}, ClusterSize: 3}, []string{"Cluster.Addrs"}},
		{"Cluster on DB 1", Config{Cluster: &Cluster{Addrs: []string{"127.0.0.1:7000"}}, ClusterSize: 3, DB: 1}, []string{"DB", "Cluster"}},
		{"Cluster with Dial", Config{Cluster: &Cluster{Addrs: []string{"127.0.0.1:7000"}}, ClusterSize: 3, Dial: func(context.Context) (redis.Conn, error) { return nil, nil }}, []string{"Cluster.Dial"}},
		{"Addr without a port", Config{Addr: "localhost"}, []string{"Addr"}},
		{"two bad fields", Config{HeartbeatInterval: -1, ClusterSize: -3}, []string{"HeartbeatInterval", "ClusterSize"}},
		{"negative DB", Config{DB: -1}, []string{"DB"}},
		{"PreviousSecret without Secret", Config{PreviousSecret: []byte("old")}, []string{"PreviousSecret", "Secret"}},
		{"PreviousSecret equal to Secret", Config{Secret: []byte("k"), PreviousSecret: []byte("k")}, []string{"PreviousSecret"}},
		{"negative Priority", Config{Priority: -1}, []string{"Priority"}},
		{"Priority too high", Config{Priority: 1001}, []string{"Priority", "1000"}},
		{"negative PriorityAfter", Config{PriorityAfter: -time.Second}, []string{"PriorityAfter"}},
		{"negative Scale", Config{Scale: -1}, []string{"Scale"}},
		{"Link with Addr", Config{Link: &Link{}, Addr: "127.0.0.1:6379"}, []string{"Link", "Addr"}},
		{"Link with Cluster", Config{Link: &Link{}, Cluster: &Cluster{Addrs: []string{"127.0.0.1:7000"}}, ClusterSize: 3}, []string{"Link", "Cluster"}},
		{"Link on another DB", Config{Link: &Link{DB: 1}, DB: 2}, []string{"DB", "Link"}},
		{"Link with a URL", Config{Link: &Link{Addr: "redis://127.0.0.1:6379"}}, []string{"Addr"}},
		{"Link with Sentinel in dynamic mode", Config{Link: &Link{Sentinel: &Sentinel{Addrs: []string{"127.0.0.1:26379"}, MasterName: "m"}}}, []string{"Sentinel", "strict mode"}},
		{"tiny Scale", Config{Scale: 0.01}, []string{"Scale", "0.1"}},
		{"NaN Scale", Config{Scale: math.NaN()}, []string{"Scale"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(tc.cfg)
			require.Error(t, err, "New(%+v) accepted a bad config", tc.cfg)
			assert.Nil(t, e)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, "leader: "), "error %q: want the package prefix \"leader: \"", msg)
			for _, f := range tc.field {
				assert.Contains(t, msg, f, "error should name %s", f)
			}
			t.Logf("%s", msg)
		})
	}
}

// TestScaleScalesEveryTiming: Scale multiplies the four timings, defaults
// or set, and what derives from them, and keeps New's checks true.
func TestScaleScalesEveryTiming(t *testing.T) {
	e, err := New(Config{Scale: 5})
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond, 2500 * time.Millisecond, 750 * time.Millisecond, 25 * time.Second},
		[]time.Duration{e.cfg.HeartbeatInterval, e.cfg.LeaseTimeout, e.cfg.PeerTimeout, e.cfg.ElectionJitter, e.cfg.PriorityAfter})
	e, err = New(Config{Scale: 2, HeartbeatInterval: 50 * time.Millisecond, LeaseTimeout: 200 * time.Millisecond, PeerTimeout: time.Second})
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 2 * time.Second, 300 * time.Millisecond},
		[]time.Duration{e.cfg.HeartbeatInterval, e.cfg.LeaseTimeout, e.cfg.PeerTimeout, e.cfg.ElectionJitter})
}

// TestPublishErrorsAreCounted: a PUBLISH that Redis answers with an error
// (here NOPERM: an ACL user that may subscribe but not publish) is a failed
// publish: counted in Status().PublishErrors and kept as the last Redis
// error, not taken for a message sent.
func TestPublishErrorsAreCounted(t *testing.T) {
	r := startRedis(t, "--user", "nopub", "on", ">pw", "~leader:{g}:term", "&leader:{g}*",
		"+subscribe", "+ping", "+pubsub|numsub", "+eval")
	c := newClusterOn(t, r, "g")
	n := c.start("n0", func(cfg *Config) {
		addr := cfg.Addr
		cfg.Addr = ""
		cfg.Dial = func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", addr, redis.DialUsername("nopub"), redis.DialPassword("pw"),
				redis.DialReadTimeout(cfg.PeerTimeout), redis.DialWriteTimeout(cfg.PeerTimeout))
		}
	})
	ok := poll(waitLong, func() bool {
		s := n.e.Status()
		return s.PublishErrors > 0 && strings.Contains(s.LastRedisError, "NOPERM")
	})
	s := n.e.Status()
	assert.True(t, ok, "PublishErrors %d, MessagesOut %d, last Redis error %q: a PUBLISH answered NOPERM was not counted", s.PublishErrors, s.MessagesOut, s.LastRedisError)
	assert.Zero(t, s.MessagesOut, "a PUBLISH answered with an error counted as published")
	assert.False(t, n.e.IsLeader(), "a node that cannot publish leads")
}

// TestReadmeNamesVersion: the README says which version of leader.go it
// describes, and it is Version.
func TestReadmeNamesVersion(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	assert.Contains(t, string(readme), "`leader.Version` "+Version, "README.md names another version than leader.Version")
}

// TestNewRefusesAddrURLs: Addr is host:port. A redis:// or rediss:// URL,
// with a user, a password or a DB in it, must be refused by New with an
// error that names Addr and never echoes the password, rather than accepted
// and then logged, password and all, on every failed dial.
func TestNewRefusesAddrURLs(t *testing.T) {
	for _, addr := range []string{
		"redis://:s3cret@127.0.0.1:6391/0",
		"rediss://app:s3cret@cache.internal:6380",
		"app:s3cret@127.0.0.1:6379",
	} {
		e, err := New(Config{Addr: addr})
		require.Error(t, err, "New accepted Addr %q", addr)
		assert.Nil(t, e)
		assert.Contains(t, err.Error(), "Addr")
		assert.NotContains(t, err.Error(), "s3cret", "the error echoes the password")
		assert.Contains(t, err.Error(), "Dial", "the error should say how to use a URL")
	}
}

func TestNewAcceptsGoodConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"zero value: all defaults", Config{}},
		{"test timings", Config{HeartbeatInterval: testHeartbeat, LeaseTimeout: testLease, PeerTimeout: testPeer, ElectionJitter: testJitter}},
		{"LeaseTimeout exactly twice HeartbeatInterval", Config{HeartbeatInterval: 50 * time.Millisecond, LeaseTimeout: 100 * time.Millisecond}},
		{"strict observer with a secret", Config{ClusterSize: 5, Observer: true, Secret: []byte("k")}},
		{"Addr unused with Dial", Config{Addr: "not-an-address", Dial: func(context.Context) (redis.Conn, error) { return nil, errors.New("unused") }}},
		{"ID of 200 bytes", Config{ID: strings.Repeat("x", 200)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(tc.cfg)
			require.NoError(t, err)
			require.NotNil(t, e)
			if tc.cfg.ID != "" {
				assert.Equal(t, tc.cfg.ID, e.ID())
			}
		})
	}
}

func TestDefaultIDsAreUniqueAndValid(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		e, err := New(Config{})
		require.NoError(t, err)
		id := e.ID()
		require.NotEmpty(t, id)
		require.False(t, seen[id], "ID %q given twice", id)
		seen[id] = true
		require.NotContains(t, id, " ")
		require.Contains(t, id, strconv.Itoa(os.Getpid()), "default ID %q should be hostname-pid-random", id)
		// A default ID is valid as an explicit one.
		_, err = New(Config{ID: id})
		require.NoError(t, err)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Follower: "follower", Candidate: "candidate", Leader: "leader", State(42): "State(42)"} {
		assert.Equal(t, want, s.String())
	}
}

// ---------------------------------------------------------------------------
// Election

func TestElectsExactlyOneLeader(t *testing.T) {
	for _, n := range []int{1, 3, 7} {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			c := newCluster(t)
			nodes := c.startN(n, "n", nil)
			t0 := time.Now()
			ldr, term := c.waitLeader(nodes...)
			t.Logf("%d nodes: %s leads in term %d after %v", n, ldr.id, term, time.Since(t0).Round(time.Millisecond))

			s := ldr.e.Status()
			assert.Equal(t, Leader, s.State)
			assert.Equal(t, term, s.Term)
			assert.True(t, s.Active)
			assert.Positive(t, s.LeaseLeft)
			assert.LessOrEqual(t, s.LeaseLeft, testLease)
			assert.Equal(t, ldr.id, s.Leader)
			for _, f := range without(nodes, ldr) {
				fs := f.e.Status()
				assert.Equal(t, Follower, fs.State, f.id)
				assert.False(t, fs.Active, f.id)
				assert.Zero(t, fs.LeaseLeft, f.id)
			}
			// Everyone sees everyone else as live once heartbeats flow.
			require.True(t, poll(waitLong, func() bool {
				for _, x := range nodes {
					st := x.e.Status()
					if len(st.LivePeers) != n-1 || !st.Connected {
						return false
					}
				}
				return true
			}), "every node should see %d live peers and be connected:\n%s", n-1, c.dump())
			for _, x := range nodes {
				assert.NotContains(t, x.e.Status().LivePeers, x.id, "LivePeers lists the other nodes")
			}

			// Calm: the leader and the term do not change.
			c.holdFor(calm, "calm cluster", stable(ldr, term, nodes...))
			s = ldr.e.Status()
			assert.Zero(t, s.StepDowns)
			assert.Positive(t, s.MessagesIn)
			assert.Positive(t, s.MessagesOut)
			assert.Zero(t, s.Dropped)

			// The leader's callback runs, and every node was told the leader.
			l, ok := c.mon.lastLead(ldr)
			require.True(t, ok, "OnStartedLeading never ran on the leader")
			assert.Equal(t, term, l.term)
			for _, x := range nodes {
				news := c.mon.newLeaders(x)
				require.NotEmpty(t, news, "%s: OnNewLeader never called", x.id)
				last := news[len(news)-1]
				assert.Equal(t, newLeader{id: ldr.id, term: term}, newLeader{id: last.id, term: last.term}, x.id)
			}
		})
	}
}

func TestGroupsAreIndependent(t *testing.T) {
	r := startRedis(t)
	a := newClusterOn(t, r, "a")
	b := newClusterOn(t, r, "b")
	an := a.startN(2, "a", nil)
	bn := b.startN(2, "b", nil)
	la, _ := a.waitLeader(an...)
	lb, _ := b.waitLeader(bn...)
	assert.NotEqual(t, la.id, lb.id)
	// Each group sees only its own nodes.
	for _, g := range [][]*node{an, bn} {
		for _, n := range g {
			assert.Equal(t, ids(without(g, n)), n.e.Status().LivePeers, n.id)
		}
	}
	// A handover in one group leaves the other alone.
	_, tb := b.waitLeader(bn...)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	require.NoError(t, la.e.Resign(ctx))
	a.waitLeader(an...)
	b.holdFor(calm, "group b while a hands over", stable(lb, tb, bn...))
}

// ---------------------------------------------------------------------------
// Links

// linkGroups starts, on r, groups g0..g{groups-1} with one Elector per
// Link in each (strict mode, so a Link stands for a process of its own),
// and returns the clusters and their nodes by group and Link. The timings
// are the tests' times 3: this many Electors at the tests' own timings
// miss leases on 2 cores under the race detector, Link or no Link.
func linkGroups(t *testing.T, r *redisServer, links []*Link, groups int) ([]*cluster, [][]*node) {
	cs := make([]*cluster, groups)
	nodes := make([][]*node, groups)
	for g := range cs {
		cs[g] = newClusterOn(t, r, "g"+strconv.Itoa(g))
		for p, l := range links {
			nodes[g] = append(nodes[g], cs[g].start("p"+strconv.Itoa(p), func(cfg *Config) {
				cfg.Addr, cfg.Link, cfg.ClusterSize, cfg.Scale = "", l, len(links), 3
			}))
		}
	}
	return cs, nodes
}

// clientCount returns how many clients Redis at addr has, besides the one
// asking.
func clientCount(t *testing.T, addr string) int {
	list, err := redis.String(redisClient(t, addr).Do("CLIENT", "LIST"))
	require.NoError(t, err)
	return strings.Count(list, "\n") - 1
}

// TestLinkSharesConnections runs 20 groups on 3 Links, each standing for a
// process (its own proxy to Redis): Redis has 2 connections per Link
// instead of 2 per Elector. An Elector that stops frees its channels
// (the crash fast path of its group sees it gone) and disturbs no other
// group; a Link whose connections drop (a crash of its process) fails over
// every group it led, and the others keep their leaders.
func TestLinkSharesConnections(t *testing.T) {
	const groups = 20
	r := startRedis(t)
	var links []*Link
	var proxies []*proxy
	for range 3 {
		p := startProxy(t, r.Addr)
		t.Cleanup(p.close)
		proxies = append(proxies, p)
		links = append(links, &Link{Addr: p.Addr()})
	}
	cs, nodes := linkGroups(t, r, links, groups)
	leaders := make([]*node, groups)
	terms := make([]uint64, groups)
	for g, c := range cs {
		leaders[g], terms[g] = c.waitLeader(nodes[g]...)
	}
	allStable := func(what string) {
		t.Helper()
		cs[0].holdFor(calm, what, func() error {
			for g := range cs {
				if err := stable(leaders[g], terms[g], nodes[g]...)(); err != nil {
					return fmt.Errorf("group %d: %w", g, err)
				}
			}
			return nil
		})
	}
	allStable("all groups, calm")
	assert.Equal(t, 2*len(links), clientCount(t, r.Addr), "connections to Redis for %d Electors on %d Links", groups*len(links), len(links))
	for i, p := range proxies {
		p.mu.Lock()
		assert.Equal(t, 2, p.accepted, "Link %d: connections dialled", i)
		p.mu.Unlock()
	}

	// One Elector stops: its group elects another at once, the rest of
	// its Link carries on.
	c0, stopped := cs[0], leaders[0]
	require.NoError(t, stopped.stop())
	rest := without(nodes[0], stopped)
	next, term := c0.waitLeader(rest...)
	assert.Greater(t, term, terms[0])
	numsub, err := redis.Values(redisClient(t, r.Addr).Do("PUBSUB", "NUMSUB", c0.channel()+":node:"+stopped.id))
	require.NoError(t, err)
	assert.Equal(t, int64(0), numsub[1], "%s's own channel is still subscribed after its Run returned", stopped.id)
	for g := 1; g < groups; g++ {
		ldr, term := agreedLeader(nodes[g])
		assert.Equal(t, leaders[g], ldr, "group %d changed leader when an Elector of another group stopped", g)
		assert.Equal(t, terms[g], term, "group %d changed term", g)
	}
	leaders[0], terms[0], nodes[0] = next, term, rest

	// The Link that leads the most groups loses its connections.
	led := make([]int, len(links))
	for g := 1; g < groups; g++ {
		led[slices.Index(nodes[g], leaders[g])]++
	}
	k := 0
	for i := range led {
		if led[i] > led[k] {
			k = i
		}
	}
	killed := proxies[k].Kill()
	var slowest time.Duration
	for g := 1; g < groups; g++ {
		if nodes[g][k] != leaders[g] {
			continue
		}
		alive := without(nodes[g], nodes[g][k])
		next, term := cs[g].waitLeader(alive...)
		require.Greater(t, term, terms[g], "group %d", g)
		slowest = max(slowest, time.Since(killed))
		leaders[g], terms[g] = next, term
	}
	t.Logf("Link %d led %d of %d groups; all of them had a new leader %v after its connections dropped", k, led[k], groups-1, slowest.Round(time.Millisecond))
	for g := 1; g < groups; g++ {
		if ldr, term := agreedLeader(without(nodes[g], nodes[g][k])); ldr != leaders[g] || term != terms[g] {
			t.Errorf("group %d: leader %v in term %d, want %s in term %d", g, ldr, term, leaders[g].id, terms[g])
		}
	}
	proxies[k].Heal()
	for g, c := range cs {
		ldr, term := c.waitLeader(nodes[g]...)
		if g == 0 {
			// Down to two Electors, group 0 had no quorum without Link k
			// if one of them was on it.
			leaders[0], terms[0] = ldr, term
		}
		// A follower on Link k that comes back may say it lost its leader
		// (silent since the cut) just before it hears it again.
		require.True(t, poll(waitLong, func() bool { return stable(leaders[g], terms[g], nodes[g]...)() == nil }),
			"group %d did not settle after the Link was back:\n%s", g, c.dump())
	}
	allStable("all groups, after the Link is back")
}

// TestLinkFailureStaysInItsGroup: an ACL user that may use group a's
// channels but not group b's, on Links shared by both groups. Group b's
// Electors get a clear error from Run; group a elects and holds its
// leader throughout, on the same connections.
func TestLinkFailureStaysInItsGroup(t *testing.T) {
	acl := strings.ReplaceAll(electorACL, "{g}", "{a}")
	r := startRedis(t, append([]string{"--user", "elector", "on", ">pw"}, strings.Fields(acl)...)...)
	var links []*Link
	for range 3 {
		links = append(links, &Link{Dial: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", r.Addr, redis.DialUsername("elector"), redis.DialPassword("pw"),
				redis.DialReadTimeout(testPeer), redis.DialWriteTimeout(testPeer))
		}})
	}
	a := newClusterOn(t, r, "a")
	b := newClusterOn(t, r, "b")
	var an, bn []*node
	for p, l := range links {
		link := func(cfg *Config) { cfg.Addr, cfg.Link, cfg.ClusterSize = "", l, len(links) }
		an = append(an, a.start("p"+strconv.Itoa(p), link))
		bn = append(bn, b.start("p"+strconv.Itoa(p), link))
	}
	ldr, term := a.waitLeader(an...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, n := range bn {
			err := n.waitGaveUp()
			assert.ErrorContains(t, err, "NOPERM", "%s of group b", n.id)
		}
	}()
	a.holdFor(calm, "group a while group b is refused", stable(ldr, term, an...))
	<-done
	a.holdFor(calm, "group a after group b gave up", stable(ldr, term, an...))
	for _, n := range an {
		assert.Zero(t, n.e.Status().Reconnects, "%s reconnected", n.id)
	}
}

// ---------------------------------------------------------------------------
// Failover

// TestLeaderCutOffFailover cuts all of the leader's traffic at its proxy (a
// crash or partition: no resign) and measures how fast another node leads.
func TestLeaderCutOffFailover(t *testing.T) {
	c := newCluster(t)
	nodes := c.startN(3, "n", nil)
	bound := testPeer + testJitter + 100*time.Millisecond
	var figures []time.Duration
	for trial := range 3 {
		old, oldTerm := c.waitLeader(nodes...)
		cut := old.proxy.Cut()
		rest := without(nodes, old)
		nw, newTerm := c.waitLeader(rest...)
		first, ok := c.mon.firstActive(nw, cut)
		require.True(t, ok)
		failover := first.Sub(cut)
		figures = append(figures, failover)
		last, _ := c.mon.lastActive(old)
		t.Logf("trial %d: %s (term %d) cut off; %s leads in term %d after %v (issue bound PeerTimeout+ElectionJitter+100ms = %v); gap after the old lease: %v",
			trial, old.id, oldTerm, nw.id, newTerm, failover.Round(time.Millisecond), bound, first.Sub(last).Round(10*time.Microsecond))
		assert.Greater(t, newTerm, oldTerm, "the new leader's term must be higher")
		assert.Less(t, failover, bound+raceSlack, "failover too slow")

		// The old leader stopped before the new one started, within its lease.
		assert.True(t, last.Before(first), "old leader still active at %v, new one active at %v", last, first)
		assert.Less(t, last.Sub(cut), testLease, "old leader active %v after the cut; LeaseTimeout is %v", last.Sub(cut), testLease)
		assert.False(t, old.e.IsLeader())

		// Heal, and let the old leader rejoin as a follower before the next trial.
		old.proxy.Heal()
		c.waitLeader(nodes...)
	}
	t.Logf("failover after a cut, 3 nodes: %v", figures)
}

// TestLeaderConnectionsDropped closes all of the leader's connections at
// its proxy and refuses new ones, as when its process dies: Redis knows at
// once (the crash fast path of rule 12 may act on it). The Elector itself
// keeps running, so this is also the worst case for that fast path: a
// leader whose connections died but whose lease has not ended. The new
// leader must wait it out: no overlap (the monitor checks).
func TestLeaderConnectionsDropped(t *testing.T) {
	c := newCluster(t)
	nodes := c.startN(3, "n", nil)
	var figures []time.Duration
	for trial := range 3 {
		old, oldTerm := c.waitStable(testPeer, nodes...)
		killed := old.proxy.Kill()
		rest := without(nodes, old)
		nw, newTerm := c.waitLeader(rest...)
		first, ok := c.mon.firstActive(nw, killed)
		require.True(t, ok)
		last, _ := c.mon.lastActive(old)
		figures = append(figures, first.Sub(killed))
		t.Logf("trial %d: %s (term %d) connections dropped; old leader last seen active +%v; %s leads in term %d after %v (LeaseTimeout %v); gap between the two: %v",
			trial, old.id, oldTerm, last.Sub(killed).Round(100*time.Microsecond), nw.id, newTerm, first.Sub(killed).Round(time.Millisecond), testLease, first.Sub(last).Round(10*time.Microsecond))
		assert.Greater(t, newTerm, oldTerm)
		assert.True(t, last.Before(first), "old leader last active at +%v, new one active at +%v", last.Sub(killed), first.Sub(killed))
		assert.Less(t, first.Sub(killed), testPeer+testJitter+100*time.Millisecond+raceSlack)
		old.proxy.Heal()
	}
	t.Logf("failover after the leader's connections dropped: %v", figures)
}

// linkCuts are the ways a node's link to Redis can be cut: both ways, only
// what it hears (deaf), only what it says (mute).
var linkCuts = []struct {
	name string
	cut  func(*proxy) time.Time
}{
	{"partition", (*proxy).Cut},
	{"deaf", (*proxy).CutDown},
	{"mute", (*proxy).CutUp},
}

// TestLostRedisLeaderStepsDownFirst cuts the leader's link to Redis (both
// ways, only what it hears, only what it says) and checks that it stops
// being leader within LeaseTimeout, before any other node leads.
func TestLostRedisLeaderStepsDownFirst(t *testing.T) {
	for _, tc := range linkCuts {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			var stoppedAt sync.Map
			nodes := c.startN(3, "n", func(cfg *Config) {
				id := cfg.ID
				cfg.OnStoppedLeading = func(error) { stoppedAt.Store(id, time.Now()) }
			})
			old, oldTerm := c.waitLeader(nodes...)
			cut := tc.cut(old.proxy)

			require.True(t, poll(testLease+raceSlack, func() bool { return !old.e.IsLeader() }),
				"old leader still leader %v after the cut", testLease+raceSlack)
			last, firstFalse := c.mon.lastActive(old)
			t.Logf("old leader %s: last seen leader %v after the cut, first seen not leader after %v (LeaseTimeout %v)",
				old.id, last.Sub(cut).Round(100*time.Microsecond), firstFalse.Sub(cut).Round(100*time.Microsecond), testLease)
			// IsLeader reads the clock: no sample may be true once the lease of
			// the last heartbeat sent before the cut has run out.
			assert.Less(t, last.Sub(cut), testLease, "IsLeader() true %v after the cut; LeaseTimeout is %v", last.Sub(cut), testLease)

			// The callback's context is cancelled too.
			require.True(t, poll(waitLong, func() bool {
				l, ok := c.mon.lastLead(old)
				return ok && l.ended
			}), "old leader's OnStartedLeading did not return")
			l, _ := c.mon.lastLead(old)
			t.Logf("old leader's OnStartedLeading returned %v after the cut", l.end.Sub(cut).Round(100*time.Microsecond))
			assert.Less(t, l.end.Sub(cut), testLease+raceSlack)
			require.True(t, poll(waitLong, func() bool { _, ok := stoppedAt.Load(old.id); return ok }), "OnStoppedLeading not called")

			rest := without(nodes, old)
			nw, newTerm := c.waitLeader(rest...)
			first, ok := c.mon.firstActive(nw, cut)
			require.True(t, ok)
			t.Logf("%s leads in term %d, %v after the cut", nw.id, newTerm, first.Sub(cut).Round(time.Millisecond))
			assert.Greater(t, newTerm, oldTerm)
			assert.True(t, last.Before(first), "old leader last active at +%v, new leader first active at +%v", last.Sub(cut), first.Sub(cut))
			nl, _ := c.mon.lastLead(nw)
			assert.True(t, l.end.Before(nl.start), "old OnStartedLeading returned at +%v, new one started at +%v", l.end.Sub(cut), nl.start.Sub(cut))

			// The cut-off node never leads again while cut.
			c.holdFor(calm, "after the cut", func() error {
				if old.e.IsLeader() {
					return fmt.Errorf("the cut-off node %s leads again", old.id)
				}
				return stable(nw, newTerm, rest...)()
			})
			assert.Equal(t, uint64(1), old.e.Status().StepDowns)
		})
	}
}

// ---------------------------------------------------------------------------
// Graceful handover

func TestGracefulHandover(t *testing.T) {
	for _, how := range []string{"Resign", "context cancel", "TransferTo"} {
		t.Run(how, func(t *testing.T) {
			c := newCluster(t)
			nodes := c.startN(3, "n", nil)
			var figures []time.Duration
			for trial := range 3 {
				old, oldTerm := c.waitLeader(nodes...)
				// Let every follower's lease ack settle: the handover should not
				// depend on luck.
				c.holdFor(5*testHeartbeat, "before the handover", stable(old, oldTerm, nodes...))
				rest := without(nodes, old)
				var target *node
				t0 := time.Now()
				switch how {
				case "Resign":
					ctx, cancel := context.WithTimeout(context.Background(), waitLong)
					err := old.e.Resign(ctx)
					cancel()
					require.NoError(t, err)
					assert.False(t, old.e.IsLeader(), "IsLeader() true after Resign returned")
				case "TransferTo":
					target = rest[trial%len(rest)]
					ctx, cancel := context.WithTimeout(context.Background(), waitLong)
					err := old.e.TransferTo(ctx, target.id)
					cancel()
					require.NoError(t, err)
					assert.False(t, old.e.IsLeader(), "IsLeader() true after TransferTo returned")
				case "context cancel":
					err := old.stop()
					require.True(t, err == nil || errors.Is(err, context.Canceled), "Run returned %v", err)
					assert.False(t, old.e.IsLeader(), "IsLeader() true after Run returned")
				}
				returned := time.Since(t0)
				nw, newTerm := c.waitLeader(rest...)
				if target != nil {
					assert.Equal(t, target.id, nw.id, "TransferTo(%s) made %s leader", target.id, nw.id)
				}
				first, ok := c.mon.firstActive(nw, t0)
				require.True(t, ok)
				nl, ok := c.mon.lastLead(nw)
				require.True(t, ok)
				ol, ok := c.mon.lastLead(old)
				require.True(t, ok)
				require.True(t, ol.ended, "old leader's OnStartedLeading has not returned")
				took := first.Sub(t0)
				figures = append(figures, took)
				t.Logf("trial %d: %s (term %d) -> %s (term %d): call returned after %v, new leader active after %v, its OnStartedLeading after %v",
					trial, old.id, oldTerm, nw.id, newTerm, returned.Round(100*time.Microsecond), took.Round(100*time.Microsecond), nl.start.Sub(t0).Round(100*time.Microsecond))
				assert.Greater(t, newTerm, oldTerm)
				assert.True(t, ol.end.Before(nl.start), "old OnStartedLeading returned at +%v, after the new one started at +%v", ol.end.Sub(t0), nl.start.Sub(t0))
				// The issue's figure is 50ms on loopback; allow for -race.
				assert.Less(t, took, 50*time.Millisecond+raceSlack, "handover too slow")
				if how == "context cancel" {
					// A replacement joins; it listens for PeerTimeout before it
					// votes (rule 8), so let it finish joining.
					nodes = append(rest, c.start(fmt.Sprintf("n%d", 3+trial), nil))
					ldr, term := c.waitLeader(nodes...)
					c.holdFor(testPeer+testHeartbeat, "while a replacement joins", stable(ldr, term, nodes...))
				}
			}
			t.Logf("%s handover, 3 nodes: %v", how, figures)
		})
	}
}

// TestHandoverRightAfterJoin is a rolling deploy: a new instance starts and
// the leader is stopped before the newcomer has listened for PeerTimeout
// (rule 8), so the newcomer cannot vote yet. Leadership must still move,
// safely; how fast is logged.
func TestHandoverRightAfterJoin(t *testing.T) {
	c := newCluster(t)
	nodes := c.startN(3, "n", nil)
	var figures []time.Duration
	for trial := range 3 {
		old, oldTerm := c.waitLeader(nodes...)
		j := c.start(fmt.Sprintf("new%d", trial), nil)
		nodes = append(nodes, j)
		require.True(t, poll(waitLong, func() bool { id, _ := j.e.Leader(); return id == old.id }))
		t0 := time.Now()
		require.NoError(t, ignoreCanceled(old.stop()))
		nodes = without(nodes, old)
		nw, newTerm := c.waitLeader(nodes...)
		first, ok := c.mon.firstActive(nw, t0)
		require.True(t, ok)
		figures = append(figures, first.Sub(t0))
		t.Logf("trial %d: %s (term %d) stopped %v after %s joined: %s leads in term %d after %v",
			trial, old.id, oldTerm, time.Since(t0).Round(time.Millisecond), j.id, nw.id, newTerm, first.Sub(t0).Round(100*time.Microsecond))
		assert.Greater(t, newTerm, oldTerm)
		assert.Less(t, first.Sub(t0), testPeer+testJitter+raceSlack)
		// Let the newcomer finish joining before the next trial.
		c.holdFor(testPeer+testHeartbeat, "after the handover", stable(nw, newTerm, nodes...))
	}
	t.Logf("handover by context cancel right after a node joined: %v", figures)
}

func TestTransferToErrors(t *testing.T) {
	c := newCluster(t)
	nodes := c.startN(3, "n", nil)
	obs := c.start("observer", func(cfg *Config) { cfg.Observer = true })
	all := append(slices.Clone(nodes), obs)
	ldr, term := c.waitLeader(all...)
	// The observer must be known as live before asking for it.
	require.True(t, poll(waitLong, func() bool { return slices.Contains(ldr.e.Status().LivePeers, obs.id) }))
	f := without(nodes, ldr)[0]
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()

	err := ldr.e.TransferTo(ctx, "no-such-node")
	assert.ErrorIs(t, err, ErrNotCandidate, "TransferTo an unknown node")
	err = ldr.e.TransferTo(ctx, obs.id)
	assert.ErrorIs(t, err, ErrNotCandidate, "TransferTo an observer")
	err = f.e.TransferTo(ctx, without(nodes, f)[0].id)
	assert.ErrorIs(t, err, ErrNotLeader, "TransferTo on a follower")
	err = f.e.TransferTo(ctx, "no-such-node")
	assert.Error(t, err, "TransferTo on a follower to an unknown node")
	t.Logf("follower TransferTo unknown node: %v", err)

	// None of that moved leadership.
	c.holdFor(calm, "after failed transfers", stable(ldr, term, all...))
}

func TestResignOnFollowerIsNoop(t *testing.T) {
	c := newCluster(t)
	nodes := c.startN(3, "n", nil)
	ldr, term := c.waitLeader(nodes...)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	for _, f := range without(nodes, ldr) {
		t0 := time.Now()
		require.NoError(t, f.e.Resign(ctx))
		assert.Less(t, time.Since(t0), time.Second, "Resign on a follower should return at once")
	}
	c.holdFor(calm, "after followers resigned", stable(ldr, term, nodes...))
}

func TestNotRunning(t *testing.T) {
	e, err := New(Config{Addr: "127.0.0.1:1"})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	assert.ErrorIs(t, e.Resign(ctx), ErrNotRunning)
	assert.ErrorIs(t, e.TransferTo(ctx, "x"), ErrNotRunning)
	assert.False(t, e.IsLeader())
	id, term := e.Leader()
	assert.Empty(t, id)
	assert.Zero(t, term)
	s := e.Status()
	assert.Equal(t, Follower, s.State)
	assert.Equal(t, e.ID(), s.ID)
}

func TestRunOnlyOnce(t *testing.T) {
	r := startRedis(t)
	e, err := New(Config{Addr: r.Addr, HeartbeatInterval: testHeartbeat, LeaseTimeout: testLease, PeerTimeout: testPeer, ElectionJitter: testJitter})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	require.True(t, poll(waitLong, e.IsLeader), "a lone node should lead")
	assert.ErrorIs(t, e.Run(ctx), ErrAlreadyRunning)
	cancel()
	select {
	case err := <-done:
		assert.True(t, err == nil || errors.Is(err, context.Canceled), "Run returned %v", err)
	case <-time.After(waitLong):
		t.Fatal("Run did not return after cancel")
	}
	assert.False(t, e.IsLeader())
	assert.ErrorIs(t, e.Run(context.Background()), ErrAlreadyRunning, "an Elector runs once")
}

// ---------------------------------------------------------------------------
// Quorum modes

func TestStrictModeMinorityNeverLeads(t *testing.T) {
	strict := func(cfg *Config) { cfg.ClusterSize = 3 }

	t.Run("1 of 3 started", func(t *testing.T) {
		c := newCluster(t)
		n := c.start("alone", strict)
		c.holdFor(calm+testPeer, "strict node alone", func() error {
			if n.e.IsLeader() {
				return errors.New("a lone node leads with ClusterSize 3")
			}
			return nil
		})
		s := n.e.Status()
		assert.NotEqual(t, Leader, s.State)
		assert.Empty(t, c.mon.activeSpans(n))
		// Pre-vote: failing to gather a quorum does not raise the term.
		assert.Zero(t, s.Term, "a node that cannot win must not raise its term")
		t.Logf("alone for %v: %+v", calm+testPeer, s)
	})

	t.Run("2 of 3 cut off", func(t *testing.T) {
		c := newCluster(t)
		nodes := c.startN(3, "n", strict)
		ldr, _ := c.waitLeader(nodes...)
		others := without(nodes, ldr)
		cutNodes := []*node{ldr, others[0]}
		lone := others[1]
		cut := ldr.proxy.Cut()
		others[0].proxy.Cut()
		require.True(t, poll(testLease+raceSlack, func() bool { return !ldr.e.IsLeader() }))
		last, _ := c.mon.lastActive(ldr)
		assert.Less(t, last.Sub(cut), testLease)
		c.holdFor(calm+testPeer, "strict minority", func() error {
			for _, n := range nodes {
				if n.e.IsLeader() {
					return fmt.Errorf("%s leads with only 1 of 3 reachable", n.id)
				}
			}
			return nil
		})
		_ = lone
		for _, n := range cutNodes {
			n.proxy.Heal()
		}
		nw, term := c.waitLeader(nodes...)
		t.Logf("after the heal %s leads in term %d", nw.id, term)
	})

	t.Run("3 of 3", func(t *testing.T) {
		c := newCluster(t)
		nodes := c.startN(3, "n", strict)
		c.waitLeader(nodes...)
	})
}

func TestDynamicModeLoneNodeLeads(t *testing.T) {
	t.Run("started alone", func(t *testing.T) {
		c := newCluster(t)
		n := c.start("alone", nil)
		c.waitLeader(n)
	})
	t.Run("others cut off", func(t *testing.T) {
		c := newCluster(t)
		nodes := c.startN(3, "n", nil)
		ldr, term := c.waitLeader(nodes...)
		f := without(nodes, ldr)
		lone := f[0]
		ldr.proxy.Cut()
		f[1].proxy.Cut()
		nw, newTerm := c.waitLeader(lone)
		assert.Equal(t, lone, nw)
		assert.Greater(t, newTerm, term)
		// The cut-off nodes cannot hear their own echo: they never lead.
		c.holdFor(calm, "cut-off nodes", func() error {
			for _, n := range []*node{ldr, f[1]} {
				if n.e.IsLeader() {
					return fmt.Errorf("cut-off node %s leads", n.id)
				}
			}
			return nil
		})
	})
}

func TestObserverNeverStands(t *testing.T) {
	c := newCluster(t)
	obs := func(cfg *Config) { cfg.Observer = true }
	o1, o2 := c.start("o1", obs), c.start("o2", obs)
	c.holdFor(calm, "observers only", func() error {
		if o1.e.IsLeader() || o2.e.IsLeader() {
			return errors.New("an observer leads")
		}
		return nil
	})
	n := c.start("n", nil)
	ldr, term := c.waitLeader(o1, o2, n)
	assert.Equal(t, n, ldr)
	t.Logf("%s leads in term %d, followed by the observers", ldr.id, term)
	require.NoError(t, n.stop())
	c.holdFor(calm, "observers after the candidate left", func() error {
		if o1.e.IsLeader() || o2.e.IsLeader() {
			return errors.New("an observer leads")
		}
		return nil
	})
}

// ---------------------------------------------------------------------------
// Joining, restarts and terms

func TestJoiningNodeNeverTakesOver(t *testing.T) {
	c := newCluster(t)
	nodes := c.startN(3, "n", nil)
	ldr, term := c.waitLeader(nodes...)
	// Nodes join one at a time, then followers restart one at a time (a
	// rolling deploy): the leader and its term never change.
	for i := range 3 {
		j := c.start(fmt.Sprintf("join%d", i), nil)
		nodes = append(nodes, j)
		require.True(t, poll(waitLong, func() bool {
			id, tm := j.e.Leader()
			return id == ldr.id && tm == term
		}), "joining node %s did not follow %s in term %d:\n%s", j.id, ldr.id, term, c.dump())
		c.holdFor(testPeer+testJitter, "after "+j.id+" joined", stable(ldr, term, nodes...))
	}
	for i, f := range without(nodes, ldr)[:3] {
		require.NoError(t, f.stop())
		nodes = without(nodes, f)
		j := c.start(fmt.Sprintf("%s-restarted%d", f.id, i), nil)
		nodes = append(nodes, j)
		require.True(t, poll(waitLong, func() bool {
			id, tm := j.e.Leader()
			return id == ldr.id && tm == term
		}), "restarted node %s did not follow %s in term %d:\n%s", j.id, ldr.id, term, c.dump())
		c.holdFor(testPeer+testJitter, "after "+j.id+" restarted", stable(ldr, term, nodes...))
	}
	assert.Zero(t, ldr.e.Status().StepDowns)
}

// TestTermsOutliveRestarts forces a few elections, then restarts every node
// at once (new incarnations, then the original IDs again) while Redis keeps
// running: the next leader's term must be higher than any term before.
func TestTermsOutliveRestarts(t *testing.T) {
	c := newCluster(t)
	nodes := c.startN(3, "a", nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	var maxTerm uint64
	for range 3 {
		ldr, term := c.waitLeader(nodes...)
		maxTerm = max(maxTerm, term)
		require.NoError(t, ldr.e.Resign(ctx))
	}
	_, term := c.waitLeader(nodes...)
	maxTerm = max(maxTerm, term)
	for _, n := range nodes {
		maxTerm = max(maxTerm, n.e.Status().Term)
	}
	t.Logf("before the restart: highest term %d", maxTerm)

	for round, prefix := range []string{"b", "a"} { // new IDs, then the original IDs again
		stopAll(t, nodes...)
		nodes = c.startN(3, prefix, nil)
		ldr, term := c.waitLeader(nodes...)
		t.Logf("restart %d (IDs %s*): %s leads in term %d", round, prefix, ldr.id, term)
		assert.Greater(t, term, maxTerm, "after every node restarted the term went back from %d to %d", maxTerm, term)
		for _, n := range nodes {
			maxTerm = max(maxTerm, n.e.Status().Term)
		}
	}
}

// ---------------------------------------------------------------------------
// Callbacks

// TestCallbacksNotUnderLock drives every callback (election, handover, stop)
// and relies on the monitor's recorders, which call Status, IsLeader and
// Leader from inside each callback and flag any that blocks.
func TestCallbacksNotUnderLock(t *testing.T) {
	c := newCluster(t)
	var mu sync.Mutex
	calls := map[string]int{}
	count := func(name string) {
		mu.Lock()
		calls[name]++
		mu.Unlock()
	}
	var nodes []*node
	mod := func(cfg *Config) {
		cfg.OnStartedLeading = func(ctx context.Context, term uint64) {
			count("OnStartedLeading")
			for _, n := range nodes { // other nodes too
				_ = n.e.Status()
				_, _ = n.e.Leader()
			}
			<-ctx.Done()
		}
		cfg.OnStoppedLeading = func(error) { count("OnStoppedLeading") }
		cfg.OnNewLeader = func(string, uint64) { count("OnNewLeader") }
	}
	nodes = []*node{c.start("n0", mod), c.start("n1", mod), c.start("n2", mod)}
	ldr, _ := c.waitLeader(nodes...)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	require.NoError(t, ldr.e.Resign(ctx))
	ldr2, _ := c.waitLeader(nodes...)
	require.NoError(t, ldr2.stop())
	c.waitLeader(without(nodes, ldr2)...)

	mu.Lock()
	defer mu.Unlock()
	t.Logf("callback calls: %v", calls)
	for _, name := range []string{"OnStartedLeading", "OnStoppedLeading", "OnNewLeader"} {
		assert.Positive(t, calls[name], "%s never called", name)
	}
	c.mon.mu.Lock()
	errs := slices.Clone(c.mon.errs)
	c.mon.mu.Unlock()
	assert.Empty(t, errs)
}

// TestSlowCallbacksDoNotDelayHeartbeats blocks OnNewLeader and
// OnStoppedLeading on every node: the leader must keep its lease all along.
func TestSlowCallbacksDoNotDelayHeartbeats(t *testing.T) {
	c := newCluster(t)
	release := make(chan struct{})
	block := func() {
		select {
		case <-release:
		case <-time.After(2 * waitLong): // bounded, should the test fail first
		}
	}
	nodes := c.startN(3, "n", func(cfg *Config) {
		cfg.OnNewLeader = func(string, uint64) { block() }
		cfg.OnStoppedLeading = func(error) { block() }
	})
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	ldr, term := c.waitLeader(nodes...)
	// Every node is now stuck in OnNewLeader.
	spans := c.mon.spanCount(ldr)
	c.holdFor(calm+testPeer, "while callbacks block", stable(ldr, term, nodes...))
	assert.Len(t, c.mon.activeSpans(ldr), spans, "the leader's lease lapsed while callbacks blocked")
	assert.Zero(t, ldr.e.Status().StepDowns)

	// A handover still happens while OnNewLeader and OnStoppedLeading block.
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	t0 := time.Now()
	require.NoError(t, ldr.e.Resign(ctx))
	nw, _ := c.waitLeader(without(nodes, ldr)...)
	first, _ := c.mon.firstActive(nw, t0)
	t.Logf("handover with blocked OnNewLeader/OnStoppedLeading: %v", first.Sub(t0).Round(100*time.Microsecond))
	close(release)
	released = true
	c.waitLeader(nodes...)
}

// TestDuplicateIDs runs two Electors with the same ID (a misconfiguration
// the docs forbid): it must not cost safety, only availability.
func TestDuplicateIDs(t *testing.T) {
	c := newCluster(t)
	nodes := []*node{c.start("a", nil), c.start("dup", nil), c.start("dup", nil)}
	// Whatever happens, no two are leaders at once (the monitor checks it
	// every millisecond too); what happens is logged.
	c.holdFor(calm+testPeer, "duplicate IDs", func() error {
		var leaders []string
		for _, n := range nodes {
			if n.e.IsLeader() {
				leaders = append(leaders, n.id)
			}
		}
		if len(leaders) > 1 {
			return fmt.Errorf("%v lead at once", leaders)
		}
		return nil
	})
	for _, n := range nodes {
		s := n.e.Status()
		t.Logf("%s: state=%v term=%d leader=%q active=%v dropped=%d", n.id, s.State, s.Term, s.Leader, s.Active, s.Dropped)
	}
}

// TestResignFromCallbacks: a leader's job may decide to give up leadership
// from inside OnStartedLeading, or a node from inside OnNewLeader. Neither
// may deadlock; the handover happens.
func TestResignFromCallbacks(t *testing.T) {
	t.Run("OnStartedLeading", func(t *testing.T) {
		c := newCluster(t)
		var once sync.Once
		type result struct {
			err  error
			took time.Duration
		}
		results := make(chan result, 1)
		var nodes []*node
		byID := map[string]*node{}
		var mu sync.Mutex
		nodes = c.startN(3, "n", func(cfg *Config) {
			id := cfg.ID
			cfg.OnStartedLeading = func(ctx context.Context, term uint64) {
				once.Do(func() {
					mu.Lock()
					n := byID[id]
					mu.Unlock()
					rctx, cancel := context.WithTimeout(ctx, waitLong)
					defer cancel()
					t0 := time.Now()
					err := n.e.Resign(context.WithoutCancel(rctx))
					results <- result{err, time.Since(t0)}
				})
				<-ctx.Done()
			}
		})
		mu.Lock()
		for _, n := range nodes {
			byID[n.id] = n
		}
		mu.Unlock()
		select {
		case r := <-results:
			t.Logf("Resign from inside OnStartedLeading returned %v after %v", r.err, r.took.Round(time.Millisecond))
			assert.NoError(t, r.err)
			assert.Less(t, r.took, testPeer+raceSlack)
		case <-time.After(2 * waitLong):
			t.Fatalf("Resign from inside OnStartedLeading did not return:\n%s", c.dump())
		}
		c.waitLeader(nodes...)
	})
	t.Run("OnNewLeader", func(t *testing.T) {
		c := newCluster(t)
		var once sync.Once
		results := make(chan error, 1)
		var mu sync.Mutex
		byID := map[string]*node{}
		nodes := c.startN(3, "n", func(cfg *Config) {
			self := cfg.ID
			cfg.OnNewLeader = func(id string, term uint64) {
				if id != self {
					return
				}
				once.Do(func() {
					mu.Lock()
					n := byID[self]
					mu.Unlock()
					// Wait for the lease before resigning, or there is nothing to hand over.
					if !poll(waitLong, n.e.IsLeader) {
						results <- errors.New("never became active")
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), waitLong)
					defer cancel()
					results <- n.e.Resign(ctx)
				})
			}
		})
		mu.Lock()
		for _, n := range nodes {
			byID[n.id] = n
		}
		mu.Unlock()
		select {
		case err := <-results:
			assert.NoError(t, err)
		case <-time.After(3 * waitLong):
			t.Fatalf("Resign from inside OnNewLeader did not return:\n%s", c.dump())
		}
		c.waitLeader(nodes...)
	})
}

// TestSlowLeaderCallbackReturn: an OnStartedLeading that is slow to return
// after its context is cancelled delays Resign, and the next leader starts
// only after it returned. One that ignores its context for longer than
// the followers wait for a silent leader cannot stall the handover for ever: Resign gives up waiting
// (documented: "a callback that ignores its context keeps running"), so the
// two callbacks may then overlap, but IsLeader never does.
func TestSlowLeaderCallbackReturn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		late    time.Duration
		overlap bool // callbacks may overlap: the callback outlives the bound
	}{
		{"returns 50ms late", 50 * time.Millisecond, false},
		{"ignores its context", 3 * testPeer, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			c.mon.callbacksMayOverlap = tc.overlap
			nodes := c.startN(3, "n", func(cfg *Config) {
				cfg.OnStartedLeading = func(ctx context.Context, term uint64) {
					<-ctx.Done()
					time.Sleep(tc.late) // clean-up work that ignores ctx
				}
			})
			ldr, term := c.waitLeader(nodes...)
			ctx, cancel := context.WithTimeout(context.Background(), waitLong)
			defer cancel()
			t0 := time.Now()
			require.NoError(t, ldr.e.Resign(ctx))
			took := time.Since(t0)
			assert.False(t, ldr.e.IsLeader())
			t.Logf("Resign with a callback that returns %v late took %v", tc.late, took.Round(time.Millisecond))
			assert.GreaterOrEqual(t, took, min(tc.late, (testLease+testPeer)/2), "Resign did not wait for the callback")
			assert.Less(t, took, testPeer+raceSlack, "Resign waited too long")
			nw, newTerm := c.waitLeader(without(nodes, ldr)...)
			assert.Greater(t, newTerm, term)
			// The new leader's callback of newTerm (waitLeader may return
			// before it started, and nw may have led an earlier term).
			var nl leading
			require.True(t, poll(waitLong, func() bool {
				l, ok := c.mon.lastLead(nw)
				nl = l
				return ok && l.term == newTerm
			}), "%s never started its callback for term %d", nw.id, newTerm)
			require.True(t, poll(waitLong, func() bool { l, _ := c.mon.lastLead(ldr); return l.ended }))
			ol, _ := c.mon.lastLead(ldr)
			if tc.overlap {
				t.Logf("old callback returned %v after the new one started (documented: a callback that ignores its context keeps running)",
					ol.end.Sub(nl.start).Round(time.Millisecond))
			} else {
				assert.True(t, ol.end.Before(nl.start), "new leader started before the old callback returned")
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Pre-vote

// TestReturningNodeDoesNotDepose cuts a follower off (or makes it deaf) for
// several election timeouts and heals it: the healthy leader keeps its term.
func TestReturningNodeDoesNotDepose(t *testing.T) {
	for _, tc := range linkCuts {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			nodes := c.startN(3, "n", nil)
			ldr, term := c.waitLeader(nodes...)
			f := without(nodes, ldr)[0]
			healthy := without(nodes, f)
			tc.cut(f.proxy)
			c.holdFor(calm+2*testPeer, "follower "+f.id+" cut off", stable(ldr, term, healthy...))
			t.Logf("cut-off follower after %v: %+v", calm+2*testPeer, f.e.Status())
			assert.False(t, f.e.IsLeader())
			f.proxy.Heal()
			require.True(t, poll(waitLong, func() bool {
				id, tm := f.e.Leader()
				return id == ldr.id && tm == term
			}), "healed follower did not follow %s in term %d:\n%s", ldr.id, term, c.dump())
			c.holdFor(calm, "after the heal", stable(ldr, term, nodes...))
			assert.Zero(t, ldr.e.Status().StepDowns)
		})
	}
}

// ---------------------------------------------------------------------------
// Bad input

// subscribeTo subscribes to channel with a plain redigo client and streams
// what is published there, dropping what a buffer of n cannot hold, until
// stop is called or the test ends.
func subscribeTo(t *testing.T, addr, channel string, n int) (msgs <-chan []byte, stop func()) {
	t.Helper()
	conn, err := redis.Dial("tcp", addr)
	require.NoError(t, err)
	psc := redis.PubSubConn{Conn: conn}
	require.NoError(t, psc.Subscribe(channel))
	out := make(chan []byte, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			switch v := psc.Receive().(type) {
			case redis.Message:
				select {
				case out <- v.Data:
				default:
				}
			case error:
				return
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { conn.Close(); <-done }) }
	t.Cleanup(stop)
	return out, stop
}

// capture returns the first n messages published on channel.
func capture(t *testing.T, addr, channel string, n int) [][]byte {
	t.Helper()
	msgs, stop := subscribeTo(t, addr, channel, n)
	defer stop()
	var out [][]byte
	timeout := time.After(waitLong)
	for len(out) < n {
		select {
		case m := <-msgs:
			out = append(out, m)
		case <-timeout:
			t.Fatalf("captured %d of %d messages", len(out), n)
		}
	}
	return out
}

// publishAll publishes every payload on channel and checks that the nodes
// got it (PUBLISH's receiver count).
func publishAll(t *testing.T, conn redis.Conn, channel string, payloads [][]byte, receivers int) {
	t.Helper()
	for i, p := range payloads {
		got, err := redis.Int(conn.Do("PUBLISH", channel, p))
		require.NoError(t, err)
		require.GreaterOrEqual(t, got, receivers, "payload %d reached %d subscribers", i, got)
	}
}

func TestBadMessagesAreDropped(t *testing.T) {
	for _, secret := range []bool{false, true} {
		name := "plain"
		if secret {
			name = "with Secret"
		}
		t.Run(name, func(t *testing.T) {
			c := newCluster(t)
			var mod func(*Config)
			if secret {
				mod = func(cfg *Config) { cfg.Secret = []byte("test secret") }
			}
			nodes := c.startN(3, "n", mod)
			ldr, term := c.waitLeader(nodes...)
			spans := c.mon.spanCount(ldr)
			real := capture(t, c.redis.Addr, c.channel(), 20)

			rng := mrand.New(mrand.NewPCG(1, 2))
			random := func(n int) []byte {
				b := make([]byte, n)
				for i := range b {
					b[i] = byte(rng.UintN(256))
				}
				return b
			}
			// Messages every decoder must refuse, whatever the wire format.
			junk := [][]byte{
				{},
				[]byte("hello"),
				[]byte(`{"type":"heartbeat","term":99999,"from":"evil"}`),
				random(1025),
				random(2048),
				random(100 << 10),
				append(slices.Clone(real[0]), random(1100)...), // a real message made oversized
			}
			for i := range 30 {
				junk = append(junk, random(1+i*7))
			}
			for _, m := range real[:5] { // wrong protocol version
				junk = append(junk, wrongVersion(m)...)
			}
			if secret {
				for i, m := range real {
					f := slices.Clone(m)
					f[len(f)-1] ^= 0x01 // forged: signature bit flipped
					g := slices.Clone(m)
					g[(i*7)%len(g)] ^= 0x80 // forged: a flipped bit anywhere
					junk = append(junk, f, g)
				}
			}
			// With Secret, a forged signature is unverifiable rather than
			// malformed: both count as refused.
			refused := func(s Status) uint64 { return s.Dropped + s.Unverified }
			var before []uint64
			for _, n := range nodes {
				before = append(before, refused(n.e.Status()))
			}
			pub := redisClient(t, c.redis.Addr)
			publishAll(t, pub, c.channel(), junk, len(nodes))
			// Truncated real messages: they must not panic; most decoders drop them.
			for _, m := range real[:3] {
				var cut [][]byte
				for k := range len(m) {
					cut = append(cut, m[:k])
				}
				publishAll(t, pub, c.channel(), cut, len(nodes))
			}

			require.True(t, poll(waitLong, func() bool {
				for i, n := range nodes {
					if refused(n.e.Status())-before[i] < uint64(len(junk)) {
						return false
					}
				}
				return true
			}), "every node should count at least %d dropped messages:\n%s", len(junk), c.dump())
			for i, n := range nodes {
				t.Logf("%s refused %d messages (%d junk published, plus truncations)", n.id, refused(n.e.Status())-before[i], len(junk))
			}
			c.holdFor(calm, "after bad messages", stable(ldr, term, nodes...))
			assert.Len(t, c.mon.activeSpans(ldr), spans, "the leader's lease lapsed")
		})
	}
}

// TestRogueNodesCannotDisturb runs, next to a group with a Secret, nodes
// without it and with a wrong one: their messages are unsigned or forged,
// so they are dropped, and the leader keeps its term.
func TestRogueNodesCannotDisturb(t *testing.T) {
	c := newCluster(t)
	secret := func(cfg *Config) { cfg.Secret = []byte("right") }
	nodes := c.startN(3, "n", secret)
	ldr, term := c.waitLeader(nodes...)
	var before []uint64
	for _, n := range nodes {
		before = append(before, n.e.Status().Unverified)
	}
	c.startRogue("unsigned", nil)
	c.startRogue("forger", func(cfg *Config) { cfg.Secret = []byte("wrong") })
	c.holdFor(calm+testPeer, "with rogue nodes", stable(ldr, term, nodes...))
	for i, n := range nodes {
		d := n.e.Status().Unverified - before[i]
		t.Logf("%s dropped %d messages from the rogues", n.id, d)
		assert.Positive(t, d, "%s dropped nothing from the rogue nodes", n.id)
		assert.NotContains(t, n.e.Status().LivePeers, "unsigned")
		assert.NotContains(t, n.e.Status().LivePeers, "forger")
	}
}

// TestJunkFlood publishes 100,000 junk messages on the group's channel at
// the default timings. Nothing changes: the leader keeps its lease all
// along (same leader, same term, no election), every node counts the junk
// as dropped, and the heap is no bigger after than before. Without -race
// another process (redis-cli --pipe) publishes as fast as Redis takes them.
// Under -race the detector slows each receiver about 4x (three nodes in
// this process drain 100,000 messages in about 1.1 s instead of 0.3 s), so
// the test publishes them itself at 40,000 a second; the chaos scenario
// "flood" publishes them at full speed to real node processes.
func TestJunkFlood(t *testing.T) {
	const flood = 100_000
	c := newCluster(t)
	defaults := func(cfg *Config) {
		cfg.HeartbeatInterval, cfg.LeaseTimeout = defaultHeartbeatInterval, defaultLeaseTimeout
		cfg.PeerTimeout, cfg.ElectionJitter = defaultPeerTimeout, defaultElectionJitter
	}
	nodes := c.startN(3, "n", defaults)
	ldr, term := c.waitStable(calm, nodes...)
	spans := c.mon.spanCount(ldr)
	var before []uint64
	var elections uint64
	for _, n := range nodes {
		s := n.e.Status()
		before = append(before, s.Dropped)
		elections += s.Elections
	}
	rng := mrand.New(mrand.NewPCG(3, 4))
	junk := make([][]byte, 64) // 16 to 79 random bytes
	for i := range junk {
		junk[i] = make([]byte, 16+i)
		for k := range junk[i] {
			junk[i][k] = byte(rng.UintN(256))
		}
	}
	heapBefore := heapInUse()
	check := stable(ldr, term, nodes...)
	t0 := time.Now()
	how := "by redis-cli --pipe"
	if raceEnabled() {
		how = "by the test, paced"
		floodPaced(t, c, junk, flood, check)
	} else {
		floodPipe(t, c, junk, flood, check)
	}
	published := time.Since(t0)
	ok := poll(30*time.Second, func() bool {
		if check() != nil {
			return true // fails below, with the state
		}
		for i, n := range nodes {
			if n.e.Status().Dropped-before[i] < flood {
				return false
			}
		}
		return true
	})
	require.NoError(t, check(), "while the nodes drained the flood:\n%s", c.dump())
	require.True(t, ok, "not every node counted %d dropped messages:\n%s", flood, c.dump())
	drained := time.Since(t0)
	heapAfter := heapInUse()
	t.Logf("%d junk messages published %s in %v, all dropped by every node after %v; heap in use %d KiB before, %d KiB after",
		flood, how, published.Round(time.Millisecond), drained.Round(time.Millisecond), heapBefore>>10, heapAfter>>10)

	c.holdFor(calm, "after the flood", check)
	var after uint64
	for _, n := range nodes {
		after += n.e.Status().Elections
	}
	assert.Equal(t, elections, after, "the flood caused an election")
	assert.Len(t, c.mon.activeSpans(ldr), spans, "the leader's lease lapsed during the flood")
	assert.Less(t, heapAfter, heapBefore+8<<20, "the heap grew by more than 8 MiB over the flood")
}

// floodPipe has redis-cli --pipe publish n junk messages on the cluster's
// channel as fast as Redis takes them, checking check every 2ms meanwhile.
func floodPipe(t *testing.T, c *cluster, junk [][]byte, n int, check func() error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli not found: it comes with redis-server; run 'bash scripts/ensure-redis.sh'")
	}
	var cmds bytes.Buffer
	for i := range n {
		b := junk[i%len(junk)]
		fmt.Fprintf(&cmds, "*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(c.channel()), c.channel(), len(b), b)
	}
	host, port, err := net.SplitHostPort(c.redis.Addr)
	require.NoError(t, err)
	cmd := exec.Command(cli, "-h", host, "-p", port, "--pipe")
	cmd.Stdin = &cmds
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		select {
		case err := <-exited:
			require.NoError(t, err, "redis-cli --pipe: %s", &out)
			require.Contains(t, out.String(), fmt.Sprintf("errors: 0, replies: %d", n))
			return
		case <-time.After(2 * time.Millisecond):
		}
		if err := check(); err != nil {
			t.Fatalf("%v into the flood: %v\n%s", time.Since(t0).Round(time.Millisecond), err, c.dump())
		}
	}
}

// floodPaced publishes n junk messages on the cluster's channel itself,
// pipelined 1000 at a time, 40 batches a second, checking check after each.
func floodPaced(t *testing.T, c *cluster, junk [][]byte, n int, check func() error) {
	pub := redisClient(t, c.redis.Addr)
	const batch, pace = 1000, 25 * time.Millisecond
	t0 := time.Now()
	next := t0
	for i := 0; i < n; i += batch {
		time.Sleep(time.Until(next)) // pacing, not waiting for an outcome
		next = next.Add(pace)
		for k := range batch {
			require.NoError(t, pub.Send("PUBLISH", c.channel(), junk[(i+k)%len(junk)]))
		}
		require.NoError(t, pub.Flush())
		for range batch {
			_, err := pub.Receive()
			require.NoError(t, err)
		}
		if err := check(); err != nil {
			t.Fatalf("after %d junk messages (%v): %v\n%s", i+batch, time.Since(t0).Round(time.Millisecond), err, c.dump())
		}
	}
}

// heapInUse returns the bytes of heap in use after a garbage collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestReplayWithSecret captures signed messages during elections and
// handovers and publishes them again later: nothing changes.
func TestReplayWithSecret(t *testing.T) {
	c := newCluster(t)
	nodes := c.startN(3, "n", func(cfg *Config) { cfg.Secret = []byte("s") })
	c.waitLeader(nodes...)

	captured, stop := subscribeTo(t, c.redis.Addr, c.channel(), 1<<16)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	for range 3 { // handovers: resign, vote requests and votes of several terms
		ldr, _ := c.waitLeader(nodes...)
		require.NoError(t, ldr.e.Resign(ctx))
	}
	ldr, _ := c.waitLeader(nodes...)
	ldr.proxy.Cut() // and a failover: pre-votes, crash-path traffic
	rest := without(nodes, ldr)
	c.waitLeader(rest...)
	ldr.proxy.Heal()
	ldr, term := c.waitLeader(nodes...)
	c.holdFor(testPeer, "before the replay", stable(ldr, term, nodes...))
	stop()
	var msgs [][]byte
	for len(captured) > 0 {
		msgs = append(msgs, <-captured)
	}
	require.Less(t, len(msgs), cap(captured), "the capture buffer filled up")
	t.Logf("replaying %d captured messages, leader %s in term %d", len(msgs), ldr.id, term)
	require.NotEmpty(t, msgs)

	pub := redisClient(t, c.redis.Addr)
	for round := range 3 { // in order, reversed, and shuffled
		order := slices.Clone(msgs)
		switch round {
		case 1:
			slices.Reverse(order)
		case 2:
			rng := mrand.New(mrand.NewPCG(5, 6))
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		for _, m := range order {
			_, err := pub.Do("PUBLISH", c.channel(), m)
			require.NoError(t, err)
			if err := stable(ldr, term, nodes...)(); err != nil {
				t.Fatalf("replay round %d: %v\n%s", round, err, c.dump())
			}
		}
	}
	c.holdFor(calm, "after the replay", stable(ldr, term, nodes...))
}

// TestRestartedVoterNeverVotesTwice is rule 8 against amnesia. A voter
// grants candidate X its vote in some term, is stopped and started again at
// once with the same ID, and so has forgotten that vote. While a rival Y
// keeps asking for votes in that same term (two candidates can share a
// term when the term key's INCR fails), the restarted voter refuses it:
// while it listens after its start, and afterwards too, because it saw
// that term while it listened and may have voted in it. A vote in the next
// term it grants, so the refusals are not deafness.
func TestRestartedVoterNeverVotesTwice(t *testing.T) {
	c := newCluster(t)
	voter := func(cfg *Config) { cfg.Observer = true } // votes, never stands
	pub := redisClient(t, c.redis.Addr)
	ask := func(from string, term uint64) {
		b := encodeWire(c.channel(), message{Type: msgVoteRequest, Term: term, From: from, Inc: 1}, nil, nil)
		_, err := pub.Do("PUBLISH", c.channel(), b)
		require.NoError(t, err)
	}
	// waitGrant asks every 5ms, in term from, then from+1, and so on,
	// until v grants cand a vote, and returns the term of that vote. (A
	// voter that just started never votes in the terms it saw then.)
	waitGrant := func(votes <-chan []byte, cand string, from uint64) uint64 {
		t.Helper()
		pace := time.NewTicker(5 * time.Millisecond)
		defer pace.Stop()
		deadline := time.Now().Add(waitLong)
		for term := from; time.Now().Before(deadline); {
			select {
			case b := <-votes:
				if m, ok := voteFrom("v", b); ok && m.Flags&flagGranted != 0 {
					return m.Term
				}
			case <-pace.C:
				ask(cand, term)
				term++
			}
		}
		t.Fatalf("v never granted %s a vote:\n%s", cand, c.dump())
		return 0
	}

	v := c.start("v", voter)
	term := waitGrant(votesTo(t, c, "X"), "X", 1)
	require.NoError(t, v.stop())
	c.start("v", voter) // at once, same ID, nothing remembered

	ys := votesTo(t, c, "Y")
	var first time.Time
	refused, late := 0, 0
	pace := time.NewTicker(5 * time.Millisecond)
	defer pace.Stop()
	for end := time.Now().Add(waitLong); time.Now().Before(end); {
		select {
		case <-pace.C:
			ask("Y", term)
		case b := <-ys:
			m, ok := voteFrom("v", b)
			if !ok {
				continue
			}
			require.Zero(t, m.Flags&flagGranted, "the restarted voter granted a second vote in term %d (%v after its first reply)", term, time.Since(first))
			if first.IsZero() {
				first = time.Now()
			}
			if refused++; time.Since(first) > 2*testPeer {
				late++ // its listening, which began before its first reply, is over
			}
		}
		if late >= 10 {
			break
		}
	}
	require.GreaterOrEqual(t, late, 10, "too few answers after the restarted voter's listening: %d of %d", late, refused)
	t.Logf("it voted for X in term %d; restarted, it refused Y in that term %d times, %d of them after it had listened", term, refused, late)
	assert.Equal(t, term+1, waitGrant(votesTo(t, c, "Z"), "Z", term+1), "the first later term it voted in")
}

// votesTo streams what is published on candidate cand's own channel.
func votesTo(t *testing.T, c *cluster, cand string) <-chan []byte {
	t.Helper()
	msgs, _ := subscribeTo(t, c.redis.Addr, c.channel()+":node:"+cand, 64)
	return msgs
}

// voteFrom decodes b as a vote from node id.
func voteFrom(id string, b []byte) (message, bool) {
	m, err := decodeWire(b)
	return m, err == nil && m.Type == msgVote && m.From == id
}

// TestSubscriberKilledReconnects has Redis drop every pub/sub client
// (CLIENT KILL TYPE pubsub): nodes reconnect, Status shows it, one leader.
func TestSubscriberKilledReconnects(t *testing.T) {
	c := newCluster(t)
	nodes := c.startN(3, "n", nil)
	_, term := c.waitLeader(nodes...)
	admin := redisClient(t, c.redis.Addr)
	killed, err := redis.Int(admin.Do("CLIENT", "KILL", "TYPE", "pubsub"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, killed, len(nodes))
	require.True(t, poll(waitLong, func() bool {
		for _, n := range nodes {
			s := n.e.Status()
			if s.Reconnects == 0 || !s.Connected {
				return false
			}
		}
		return true
	}), "nodes did not reconnect:\n%s", c.dump())
	ldr, newTerm := c.waitLeader(nodes...)
	t.Logf("after CLIENT KILL: %s leads in term %d (was term %d)", ldr.id, newTerm, term)
	assert.GreaterOrEqual(t, newTerm, term)
}

// ---------------------------------------------------------------------------
// Redis trouble

// TestUnreachableRedisNeverLeads points a node at a port nobody listens on:
// Run keeps retrying, never leads, reports the error, and returns promptly
// when cancelled.
func TestUnreachableRedisNeverLeads(t *testing.T) {
	c := newCluster(t)
	n := c.start("n", func(cfg *Config) { cfg.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))) })
	c.holdFor(calm, "no Redis", func() error {
		if n.e.IsLeader() {
			return errors.New("leads without Redis")
		}
		return nil
	})
	require.True(t, poll(waitLong, func() bool { return n.e.Status().LastRedisError != "" }), "LastRedisError stays empty")
	s := n.e.Status()
	t.Logf("status without Redis: %+v", s)
	assert.False(t, s.Connected)
	t0 := time.Now()
	require.NoError(t, ignoreCanceled(n.stop()))
	assert.Less(t, time.Since(t0), time.Second, "Run should return promptly on cancel")
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// TestNonRedisServerNeverLeads points nodes at servers that are not Redis:
// one that answers garbage (an HTTP port) and hangs up, one that accepts and
// says nothing. The node never leads, reports the error, and retries with
// backoff (not in a hot loop). The HTTP port is a mistake that retrying
// cannot mend: Run gives up after a few tries and returns an error that
// says what it likely is. The silent server may be a stuck Redis: the node
// keeps trying, and Run returns promptly on cancel.
func TestNonRedisServerNeverLeads(t *testing.T) {
	for _, tc := range []struct {
		name   string
		serve  func(net.Conn)
		gaveUp string // what Run's error says; "" when it must keep trying
	}{
		{"garbage", func(c net.Conn) {
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
			c.Close()
		}, "does not speak Redis's protocol"},
		{"silent", func(c net.Conn) {
			_, _ = io.Copy(io.Discard, c) // until the client gives up
			c.Close()
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			var mu sync.Mutex
			accepted := 0
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					accepted++
					mu.Unlock()
					wg.Add(1)
					go func() { defer wg.Done(); tc.serve(c) }()
				}
			}()
			c := newCluster(t)
			n := c.start("n", func(cfg *Config) { cfg.Addr = ln.Addr().String() })
			if tc.gaveUp != "" {
				err := n.waitGaveUp()
				assert.Contains(t, err.Error(), tc.gaveUp)
				assert.Empty(t, c.mon.activeSpans(n), "led without Redis")
				ln.Close()
				wg.Wait()
				mu.Lock()
				defer mu.Unlock()
				t.Logf("Run returned after %d connections: %v", accepted, err)
				assert.GreaterOrEqual(t, accepted, 2, "the node should try more than once")
				return
			}
			const watch = 1500 * time.Millisecond
			c.holdFor(watch, "not Redis", func() error {
				if n.e.IsLeader() {
					return errors.New("leads without Redis")
				}
				return nil
			})
			s := n.e.Status()
			t.Logf("status: connected=%v lastErr=%q", s.Connected, s.LastRedisError)
			assert.NotEmpty(t, s.LastRedisError)
			assert.False(t, s.Connected)
			t0 := time.Now()
			require.NoError(t, ignoreCanceled(n.stop()))
			assert.Less(t, time.Since(t0), time.Second, "Run should return promptly on cancel")
			ln.Close()
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			t.Logf("%d connections in %v", accepted, watch)
			assert.GreaterOrEqual(t, accepted, 2, "the node should keep retrying")
			assert.LessOrEqual(t, accepted, 100, "the node retries in a hot loop")
		})
	}
}

func TestPasswordRedisThroughDial(t *testing.T) {
	r := startRedis(t, "--requirepass", "s3cret")
	c := newClusterOn(t, r, "g")
	dial := func(pw string, dials *int, mu *sync.Mutex) func(*Config) {
		return func(cfg *Config) {
			addr := cfg.Addr
			cfg.Addr = ""
			cfg.Dial = func(ctx context.Context) (redis.Conn, error) {
				mu.Lock()
				*dials++
				mu.Unlock()
				return redis.DialContext(ctx, "tcp", addr, redis.DialPassword(pw))
			}
		}
	}
	var mu sync.Mutex
	var good, bad int
	nodes := []*node{c.start("n0", dial("s3cret", &good, &mu)), c.start("n1", dial("s3cret", &good, &mu))}
	wrong := c.start("wrong", dial("nope", &bad, &mu))
	c.waitLeader(nodes...)
	// A wrong password is not mended by retrying: Run gives up and says so.
	err := wrong.waitGaveUp()
	assert.Contains(t, err.Error(), "WRONGPASS")
	assert.Empty(t, c.mon.activeSpans(wrong), "the node with the wrong password led")
	t.Logf("wrong password: Run returned %v", err)
	assert.NotContains(t, nodes[0].e.Status().LivePeers, "wrong")
	mu.Lock()
	defer mu.Unlock()
	assert.Positive(t, good)
	assert.Positive(t, bad)
}

// electorACL is the least an Elector of group g needs as a Redis ACL user
// (the README gives the same line): PUBLISH and SUBSCRIBE on the group's
// channels, PING, PUBSUB NUMSUB (the crash fast path), PUBSUB CHANNELS (the
// listening after a resubscription), and EVAL of the term script, which
// INCRs and SETs the term key.
const electorACL = "~leader:{g}:term &leader:{g}* +publish +subscribe +ping +pubsub|numsub +pubsub|channels +client|info +eval +incr +set"

// TestTLSAndACLUser runs a group over TLS as an ACL user that may do only
// what electorACL grants, on a redis-server whose default user is off: it
// elects, fails over after the leader's connections drop (the crash fast
// path, so PUBSUB NUMSUB and a new term), and Redis denied nothing (its ACL
// LOG is empty). A node without TLS and one with the wrong password get a
// clear error and never lead.
func TestTLSAndACLUser(t *testing.T) {
	certFile, keyFile, roots := selfSignedCert(t)
	tlsPort := freePort(t)
	args := []string{"--tls-port", strconv.Itoa(tlsPort),
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", certFile,
		"--tls-auth-clients", "no",
		"--user", "admin", "on", ">adminpw", "~*", "&*", "+@all",
		"--user", "default", "off",
		"--user", "elector", "on", ">pw"}
	r := startRedis(t, append(args, strings.Fields(electorACL)...)...)
	overTLS := *r // the nodes' proxies lead to the TLS port
	overTLS.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	c := newClusterOn(t, &overTLS, "g")
	dial := func(useTLS bool, pw string) func(*Config) {
		return func(cfg *Config) {
			addr := cfg.Addr // this node's proxy
			cfg.Addr = ""
			cfg.Dial = func(ctx context.Context) (redis.Conn, error) {
				return redis.DialContext(ctx, "tcp", addr,
					redis.DialUseTLS(useTLS), redis.DialTLSConfig(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}),
					redis.DialUsername("elector"), redis.DialPassword(pw),
					redis.DialReadTimeout(cfg.PeerTimeout), redis.DialWriteTimeout(cfg.PeerTimeout))
			}
		}
	}
	nodes := c.startN(3, "n", dial(true, "pw"))
	plain := c.start("plain", dial(false, "pw"))
	wrong := c.start("wrongpw", dial(true, "nope"))
	ldr, term := c.waitStable(calm, nodes...)

	ldr.proxy.Kill() // its connections close: Redis drops its subscriptions at once
	rest := without(nodes, ldr)
	next, nextTerm := c.waitLeader(rest...)
	require.Greater(t, nextTerm, term)
	t.Logf("over TLS as ACL user: %s led term %d; after its connections dropped %s leads term %d", ldr.id, term, next.id, nextTerm)
	ldr.proxy.Heal()
	c.waitStable(calm, nodes...)

	// Neither mistake is mended by retrying: Run gives up, and says why.
	for _, n := range []*node{plain, wrong} {
		err := n.waitGaveUp()
		s := n.e.Status()
		assert.NotEmpty(t, s.LastRedisError, "%s: no Redis error reported", n.id)
		assert.Zero(t, s.Term, "%s: took part in an election", n.id)
		t.Logf("%s: Run returned %v", n.id, err)
	}
	assert.Contains(t, wrong.runErr.Error(), "WRONGPASS")
	assert.Contains(t, plain.runErr.Error(), "TLS")

	admin, err := redis.Dial("tcp", r.Addr, redis.DialUsername("admin"), redis.DialPassword("adminpw"))
	require.NoError(t, err)
	defer admin.Close()
	entries, err := redis.Values(admin.Do("ACL", "LOG"))
	require.NoError(t, err)
	for _, entry := range entries {
		fields, err := redis.Values(entry, nil)
		require.NoError(t, err)
		var kv []string
		reason := ""
		for i := 0; i+1 < len(fields); i += 2 {
			k, v := fmt.Sprint(asString(fields[i])), fmt.Sprint(asString(fields[i+1]))
			kv = append(kv, k+"="+v)
			if k == "reason" {
				reason = v
			}
		}
		if reason != "auth" { // the wrong password, expected
			t.Errorf("Redis denied the elector user something: %s", strings.Join(kv, " "))
		}
	}
}

// asString turns a bulk string reply into a string; other replies are kept.
func asString(v any) any {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}

// selfSignedCert writes a self-signed certificate for 127.0.0.1 and its key
// to a temporary directory, and returns their paths and a pool that trusts
// the certificate.
func selfSignedCert(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redis-server under test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

// TestReplicaPromoted stands in for Redis Sentinel: each node's Dial asks
// for the current primary (a Sentinel-aware Dial would ask the sentinels,
// SENTINEL get-master-addr-by-name), the primary dies, a real replica is
// promoted (REPLICAOF NO ONE), and the group goes on on it: one leader,
// terms that never go back (the term key was replicated), and never two
// leaders at once (the monitor).
func TestReplicaPromoted(t *testing.T) {
	primary := startRedis(t)
	replica := startRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.port))
	var current atomic.Value
	current.Store(primary.Addr)
	c := newClusterOn(t, primary, "g")
	viaSentinel := func(cfg *Config) {
		cfg.Addr = ""
		cfg.Dial = func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", current.Load().(string))
		}
	}
	nodes := c.startN(3, "n", viaSentinel)
	old, term := c.waitStable(calm, nodes...)
	replicated := func() bool {
		conn, err := redis.Dial("tcp", replica.Addr)
		if err != nil {
			return false
		}
		defer conn.Close()
		v, err := redis.Uint64(conn.Do("GET", "leader:{g}:term"))
		return err == nil && v >= term
	}
	require.True(t, poll(waitLong, replicated), "the replica never got the term key")

	primary.stop()
	conn, err := redis.Dial("tcp", replica.Addr)
	require.NoError(t, err)
	_, err = conn.Do("REPLICAOF", "NO", "ONE")
	conn.Close()
	require.NoError(t, err)
	current.Store(replica.Addr)

	moved := func() bool {
		for _, n := range nodes {
			if st := n.e.Status(); st.Reconnects == 0 || !st.Connected {
				return false
			}
		}
		return true
	}
	require.True(t, poll(waitLong, moved), "the nodes did not reconnect to the promoted replica")
	ldr, newTerm := c.waitStable(calm, nodes...)
	t.Logf("before the failover %s led term %d; on the promoted replica %s leads term %d", old.id, term, ldr.id, newTerm)
	// The old leader may well keep its term: its followers reconnect to the
	// new primary and ack it again, a new lease as safe as the first.
	require.GreaterOrEqual(t, newTerm, term, "terms went back after the promotion")
}

// TestRedisRestart kills redis-server (its data is lost, the term key
// too) and starts it again on the same port, at once and after several
// PeerTimeouts: the leader stops within LeaseTimeout of losing Redis, there
// is one leader again afterwards, never two at once, and terms never go back
// on any node (the monitor checks both all along).
func TestRedisRestart(t *testing.T) {
	for _, mode := range []string{"dynamic", "strict"} {
		t.Run(mode, func(t *testing.T) { testRedisRestart(t, mode == "strict") })
	}
}

func testRedisRestart(t *testing.T, strict bool) {
	c := newCluster(t)
	var mod func(*Config)
	if strict {
		mod = func(cfg *Config) { cfg.ClusterSize = 3 }
	}
	nodes := c.startN(3, "n", mod)
	for round, down := range []time.Duration{0, 2 * testPeer} {
		ldr, term := c.waitLeader(nodes...)
		c.holdFor(testPeer, "before the restart", stable(ldr, term, nodes...))
		c.redis.stop()
		lost := time.Now()
		if down > 0 {
			require.True(t, poll(testLease+raceSlack, func() bool { return !ldr.e.IsLeader() }))
			last, _ := c.mon.lastActive(ldr)
			t.Logf("round %d: leader %s active %v after Redis died", round, ldr.id, last.Sub(lost).Round(100*time.Microsecond))
			assert.Less(t, last.Sub(lost), testLease)
			c.holdFor(down, "while Redis is down", func() error {
				for _, n := range nodes {
					if n.e.IsLeader() {
						return fmt.Errorf("%s leads without Redis", n.id)
					}
				}
				return nil
			})
		}
		var reconnects []uint64
		for _, n := range nodes {
			reconnects = append(reconnects, n.e.Status().Reconnects)
		}
		c.redis.restart()
		back := time.Now()
		// Every node notices and resubscribes (a quick restart can go
		// unnoticed by the lease, never by the subscriber).
		require.True(t, poll(waitLong, func() bool {
			for i, n := range nodes {
				if s := n.e.Status(); s.Reconnects <= reconnects[i] || !s.Connected {
					return false
				}
			}
			return true
		}), "not every node reconnected:\n%s", c.dump())
		// Leadership may move once more while everyone resubscribes (acks
		// lost meanwhile can let the lease lapse); then it must settle.
		nw, newTerm := c.waitStable(calm, nodes...)
		t.Logf("round %d (Redis down %v): %s leads in term %d (was %s in %d), stable %v after Redis came back",
			round, back.Sub(lost).Round(time.Millisecond), nw.id, newTerm, ldr.id, term, time.Since(back).Round(time.Millisecond))
		assert.GreaterOrEqual(t, newTerm, term)
	}
	for _, n := range nodes {
		assert.Positive(t, n.e.Status().Reconnects, "%s: Reconnects", n.id)
	}
}

// TestRedisBackElectsOnceEveryoneIsHeard: in dynamic mode, after a Redis
// outage long enough to end every lease, the nodes listen after they
// resubscribe only until each has heard every node Redis lists as
// subscribed (and those are a majority), not for two whole heartbeats. The
// heartbeat here is long (200 ms), so that two of them (400 ms) stand out
// from reconnecting and electing; before the nodes stopped at that point, a
// leader came no sooner than 400 ms after Redis.
func TestRedisBackElectsOnceEveryoneIsHeard(t *testing.T) {
	c := newCluster(t)
	const hb = 200 * time.Millisecond
	nodes := c.startN(3, "n", func(cfg *Config) {
		cfg.HeartbeatInterval, cfg.LeaseTimeout, cfg.PeerTimeout, cfg.ElectionJitter = hb, 4*hb, 5*hb, hb
	})
	for round := range 2 {
		ldr, term := c.waitStable(5*hb, nodes...)
		c.redis.stop()
		require.True(t, poll(4*hb+raceSlack, func() bool { return !ldr.e.IsLeader() }))
		// Longer than (LeaseTimeout+PeerTimeout)/2, after which the
		// followers stop counting on their leader.
		c.holdFor(10*hb, "while Redis is down", func() error {
			for _, n := range nodes {
				if n.e.IsLeader() {
					return fmt.Errorf("%s leads without Redis", n.id)
				}
			}
			return nil
		})
		c.redis.restart()
		back := time.Now()
		var first *node
		require.True(t, poll(waitLong, func() bool {
			for _, n := range nodes {
				if n.e.IsLeader() {
					first = n
					return true
				}
			}
			return false
		}), "no leader after Redis came back:\n%s", c.dump())
		took := time.Since(back)
		t.Logf("round %d: %s led term %d; %s leads %v after Redis came back", round, ldr.id, term, first.id, took.Round(time.Millisecond))
		assert.Less(t, took, 2*hb, "a leader only %v after Redis came back: the nodes listened for two heartbeats", took)
		nw, newTerm := c.waitStable(5*hb, nodes...)
		assert.Equal(t, first, nw, "leadership moved after the first leader")
		assert.Greater(t, newTerm, term)
	}
}

// TestResubscribedWithoutChannels: an ACL user that may not PUBSUB CHANNELS
// costs the listening after a resubscription its shortcut, not its safety:
// the node logs why and listens for two heartbeats (in strict mode, where
// only an heir waits for the list, it says that an heir waits out its
// guard), and the group keeps its leader.
func TestResubscribedWithoutChannels(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(modeNameTest(strict), func(t *testing.T) {
			r := startRedis(t, "--user", "nolist", "on", ">pw", "~leader:{g}:term", "&leader:{g}*",
				"+publish", "+subscribe", "+ping", "+pubsub|numsub", "+eval", "+incr", "+set")
			c := newClusterOn(t, r, "g")
			var log lockedBuffer
			nodes := startThree(c, strict, &log, func(cfg *Config) {
				addr := cfg.Addr // this node's proxy
				cfg.Addr = ""
				cfg.Dial = func(ctx context.Context) (redis.Conn, error) {
					return redis.DialContext(ctx, "tcp", addr, redis.DialUsername("nolist"), redis.DialPassword("pw"),
						redis.DialReadTimeout(cfg.PeerTimeout), redis.DialWriteTimeout(cfg.PeerTimeout))
				}
			})
			_, term := c.waitStable(testPeer, nodes...)
			nodes[0].proxy.Heal() // closes its connections; it redials at once
			then := "listening two heartbeats"
			if strict {
				then = "an heir waits out its guard"
			}
			require.True(t, poll(waitLong, func() bool {
				return warned(log.String(), "could not list the group's subscribed nodes; "+then, "NOPERM")
			}), "no warning that the listing was refused:\n%s", log.String())
			assert.NotContains(t, log.String(), "heard every node Redis lists")
			assert.Contains(t, nodes[0].e.Status().LastRedisError, "NOPERM")
			require.True(t, poll(waitLong, func() bool { return nodes[0].e.Ready() == nil }), "n0 not ready: %v", nodes[0].e.Ready())
			_, nterm := c.waitStable(calm, nodes...)
			assert.Equal(t, term, nterm, "a resubscription cost a term")
		})
	}
}

// TestResubscribedStandsAtOnce: after its connections drop and come back,
// a node in strict mode votes and stands at once (a leader that kept
// leading has a majority that refuses its pre-vote), while one in dynamic
// mode listens first (a leader of a minority would not), until it has
// heard every node Redis lists as subscribed: here, the two others, which
// answer its hello. Ready reports the listening.
func TestResubscribedStandsAtOnce(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(modeNameTest(strict), func(t *testing.T) {
			c := newCluster(t)
			var log lockedBuffer
			nodes := startThree(c, strict, &log, nil)
			c.waitLeader(nodes...)
			n := nodes[0]
			before := n.e.Status().Reconnects
			n.proxy.Heal() // closes its connections; it redials at once
			listened := false
			require.True(t, poll(waitLong, func() bool {
				err := n.e.Ready()
				if err != nil && strings.Contains(err.Error(), "listening") {
					listened = true
				}
				return n.e.Status().Reconnects > before && err == nil
			}), "%s did not come back: %v", n.id, n.e.Ready())
			if strict {
				assert.False(t, listened, "listened after resubscribing")
				assert.Contains(t, log.String(), "voting and standing at once")
				return
			}
			// The listening can be over in a millisecond, too soon for
			// Ready's poll to see; the log says how it ended.
			assert.Contains(t, log.String(), `msg="heard every node Redis lists; listening ended" node=n0 group=g nodes=3`)
		})
	}
}

// startThree starts n0, n1 and n2 on c, n0 logging to log, in strict
// mode (ClusterSize 3) if strict; mod, if not nil, changes each Config.
func startThree(c *cluster, strict bool, log *lockedBuffer, mod func(*Config)) []*node {
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = c.start("n"+strconv.Itoa(i), func(cfg *Config) {
			if i == 0 {
				logsTo(c, log)(cfg)
			}
			if strict {
				cfg.ClusterSize = 3
			}
			if mod != nil {
				mod(cfg)
			}
		})
	}
	return nodes
}

func modeNameTest(strict bool) string {
	if strict {
		return "strict"
	}
	return "dynamic"
}

// TestEveryoneCutThenHealed partitions every node from Redis for several
// PeerTimeouts (a network blip at Redis), then heals them, all at once or
// one by one a few milliseconds apart (as reconnect backoff spreads them):
// each node comes back having heard nobody for a long time. There must never
// be two leaders at once (the monitor), and one leader must settle.
func TestEveryoneCutThenHealed(t *testing.T) {
	for _, tc := range []struct {
		mode string
		gap  time.Duration // between the heals of successive nodes
	}{
		{"dynamic", 7 * time.Millisecond},
		{"strict", 7 * time.Millisecond},
	} {
		t.Run(fmt.Sprintf("%s gap %v", tc.mode, tc.gap), func(t *testing.T) {
			c := newCluster(t)
			var mod func(*Config)
			if tc.mode == "strict" {
				mod = func(cfg *Config) { cfg.ClusterSize = 3 }
			}
			nodes := c.startN(3, "n", mod)
			for round := range 2 {
				ldr, term := c.waitStable(testPeer, nodes...)
				var cut time.Time
				for _, n := range nodes {
					cut = n.proxy.Cut()
				}
				require.True(t, poll(testLease+raceSlack, func() bool { return !ldr.e.IsLeader() }))
				c.holdFor(3*testPeer, "while everyone is cut off", func() error {
					for _, n := range nodes {
						if n.e.IsLeader() {
							return fmt.Errorf("%s leads %v after everyone was cut off", n.id, time.Since(cut))
						}
					}
					return nil
				})
				for _, n := range nodes {
					n.proxy.Heal()
					time.Sleep(tc.gap) // staggering the heals, not waiting for an outcome
				}
				healed := time.Now()
				nw, newTerm := c.waitStable(calm, nodes...)
				t.Logf("round %d: %s (term %d) before; after the heal %s leads in term %d, stable %v later",
					round, ldr.id, term, nw.id, newTerm, time.Since(healed).Round(time.Millisecond))
				c.mon.mu.Lock()
				nerrs := c.mon.nerrs
				c.mon.mu.Unlock()
				require.Zero(t, nerrs, "safety violations (listed at the end of the test)")
			}
		})
	}
}

// TestRedisDownBehindAProxy: a proxy (or load balancer) in front of a
// Redis that is down accepts each connection and closes it at once, which
// is also what a TLS port does to a plain client, a failure Run gives up on.
// With the reconnect backoff capped at HeartbeatInterval/10 that happens 100
// to 200 times a second; an outage of a few seconds must not end Run, and the
// group elects again once Redis is back. Each node logs what fails, but
// a failure that repeats once a second at most (with a count of the
// repeats), and the log names the likely cause first.
func TestRedisDownBehindAProxy(t *testing.T) {
	c := newCluster(t)
	logs := make([]*lockedBuffer, 3)
	nodes := make([]*node, 3)
	for i := range nodes {
		logs[i] = &lockedBuffer{}
		nodes[i] = c.start(fmt.Sprintf("n%d", i+1), logsTo(c, logs[i]))
	}
	_, term := c.waitLeader(nodes...)
	before := make([]int, len(nodes))
	for i := range nodes {
		before[i] = strings.Count(logs[i].String(), "msg=\"redis error\"")
	}
	const outage = 3 * time.Second
	c.redis.stop()
	c.holdFor(outage, "Redis down behind the proxies", func() error {
		for _, n := range nodes {
			if err, done := n.exited(); done {
				return fmt.Errorf("%s: Run returned while Redis was down: %v", n.id, err)
			}
		}
		return nil
	})
	// Counted before Redis is back: a node redials at least ten times a
	// second on each of its two connections, so without the rate limit
	// there are more than 60 lines; with it, one a second for each kind
	// of failure (the dial, the read or write it broke) and connection.
	for i, n := range nodes {
		lines := strings.Count(logs[i].String(), "msg=\"redis error\"") - before[i]
		assert.LessOrEqual(t, lines, 24, "%s logged %d redis errors in a %v outage", n.id, lines, outage)
		assert.True(t, warned(logs[i].String(), "redis error", "proxy whose Redis is down"), "%s did not name the likely cause", n.id)
		assert.True(t, warned(logs[i].String(), "redis error", "repeats="), "%s did not count the repeats", n.id)
	}
	c.redis.restart()
	_, nterm := c.waitStable(calm, nodes...)
	assert.Greater(t, nterm, term)
}

// TestPublisherRedialsAtOnce: a node leading alone (dynamic mode, its own
// echo acks it) keeps its lease when Redis closes its publishing
// connection (CLIENT KILL TYPE normal) just after a heartbeat renewed the
// lease. The connection's death shows on the next heartbeat, which is
// lost; the one after it must go out on a new connection. Held back by the
// reconnect backoff as if a dial had failed, it was lost too, and two lost
// heartbeats in a row are a lapsed lease.
func TestPublisherRedialsAtOnce(t *testing.T) {
	c := newCluster(t)
	n := c.start("n1", nil)
	c.waitLeader(n)
	lease := n.e.cfg.LeaseTimeout
	rc := redisClient(t, c.redis.Addr)
	for i := range 3 {
		require.True(t, poll(waitLong, func() bool { return n.e.Status().LeaseLeft > lease-15*time.Millisecond }),
			"kill %d: no fresh renewal:\n%s", i, c.dump())
		_, err := rc.Do("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
		require.NoError(t, err)
		c.holdFor(2*lease, "after the kill", func() error {
			if s := n.e.Status(); s.StepDowns > 0 {
				return fmt.Errorf("kill %d: the lease lapsed (%d step-downs)", i, s.StepDowns)
			}
			return nil
		})
	}
}

// TestRejoinAfterLoneLeader cuts every node off, heals one follower, which
// then leads alone (dynamic mode: it sees nobody else), and heals the
// others, the old leader among them, while it leads. They come back as a node does after any Redis outage and
// must behave as joining nodes (rule 8) and pre-vote (rule 2) say: follow
// the healthy leader, never win a term of their own and depose it.
func TestRejoinAfterLoneLeader(t *testing.T) {
	t.Run("dynamic", func(t *testing.T) { testRejoin(t, false) })
	// Strict mode: a majority is healed first and elects; the last node
	// rejoins later.
	t.Run("strict", func(t *testing.T) { testRejoin(t, true) })
}

func testRejoin(t *testing.T, strict bool) {
	c := newCluster(t)
	var mod func(*Config)
	if strict {
		mod = func(cfg *Config) { cfg.ClusterSize = 3 }
	}
	// Dynamic: five nodes, so four rejoin in each round, each of which could
	// wrongly take over.
	size, rounds := 5, 3
	if strict {
		size, rounds = 3, 2
		mod = func(cfg *Config) { cfg.ClusterSize = size }
	}
	nodes := c.startN(size, "n", mod)
	for round := range rounds {
		pre, _ := c.waitStable(testPeer, nodes...)
		for _, n := range nodes {
			n.proxy.Cut()
		}
		// The outage lasts 3 PeerTimeouts; once the lease ran out nobody leads.
		noLeader := func() error {
			for _, n := range nodes {
				if n.e.IsLeader() {
					return fmt.Errorf("%s leads, cut off", n.id)
				}
			}
			return nil
		}
		require.True(t, poll(testLease+raceSlack, func() bool { return noLeader() == nil }))
		c.holdFor(3*testPeer, "while everyone is cut off", noLeader)
		// The old leader's link comes back last: the others remember it as
		// their leader, and Redis says it is not subscribed (yet).
		followers := without(nodes, pre)
		firstUp := []*node{followers[round%len(followers)]}
		if strict {
			firstUp = followers
		}
		for _, n := range firstUp {
			n.proxy.Heal()
		}
		first, term := c.waitLeader(firstUp...)
		c.holdFor(testPeer, "the leader before the others rejoin", stable(first, term, firstUp...))
		healed := time.Now()
		for _, n := range without(nodes, firstUp...) {
			n.proxy.Heal()
		}
		nw, newTerm := c.waitStable(calm, nodes...)
		t.Logf("round %d: %s led %v in term %d; after the others rejoined %s leads in term %d", round, first.id, ids(firstUp), term, nw.id, newTerm)
		if nw != first || newTerm != term {
			for _, n := range nodes {
				if at, ok := c.mon.seenActiveAfter(n, healed); ok && n != first {
					t.Logf("%s became leader %v after the heal", n.id, at.Sub(healed).Round(100*time.Microsecond))
				}
			}
			t.Fatalf("round %d: nodes that rejoined deposed the healthy leader %s (term %d): now %s leads in term %d\n%s",
				round, first.id, term, nw.id, newTerm, c.dump())
		}
	}
}

// ---------------------------------------------------------------------------
// Breaks: promises that a slow Logger, an unwritable term key or an
// untimely reconnect must not break

// logGate makes the first record with message msg, among all the handlers
// that share the gate, block for hold: a Logger that is slow once (a full
// pipe, a remote sink that stalls).
type logGate struct {
	msg  string
	hold time.Duration

	mu       sync.Mutex
	who      string        // the node whose record blocked
	blocking chan struct{} // closed when that record began to block
	released chan struct{} // closed when it returned
}

func newLogGate(msg string, hold time.Duration) *logGate {
	return &logGate{msg: msg, hold: hold, blocking: make(chan struct{}), released: make(chan struct{})}
}

func (g *logGate) pass(id string) {
	g.mu.Lock()
	first := g.who == ""
	if first {
		g.who = id
	}
	g.mu.Unlock()
	if !first {
		return
	}
	close(g.blocking)
	time.Sleep(g.hold) // the slow Logger: holding the fault for a given time
	close(g.released)
}

func (g *logGate) blocked() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.who
}

// gatedHandler is a slog.Handler that passes every record through its gate
// first.
type gatedHandler struct {
	slog.Handler
	gate *logGate
	id   string
}

func (h gatedHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.gate.msg {
		h.gate.pass(h.id)
	}
	return h.Handler.Handle(ctx, r)
}

func (h gatedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return gatedHandler{h.Handler.WithAttrs(as), h.gate, h.id}
}

func (h gatedHandler) WithGroup(name string) slog.Handler {
	return gatedHandler{h.Handler.WithGroup(name), h.gate, h.id}
}

// TestSlowLoggerNeverOverlaps gives every node a Logger that blocks for a
// second (over six PeerTimeouts) on the first "leading" record of the
// group: the first leader's Logger stalls as it starts to lead. A slow
// Logger is the user's code; it must not stall IsLeader (which must answer
// from the clock at once), nor make a node run OnStartedLeading after its
// lease is gone, while another node leads (the monitor checks both at the
// end). Once the Logger returns, one leader must settle.
func TestSlowLoggerNeverOverlaps(t *testing.T) {
	c := newCluster(t)
	gate := newLogGate("leading", time.Second)
	nodes := c.startN(3, "n", func(cfg *Config) {
		cfg.Logger = slog.New(gatedHandler{cfg.Logger.Handler(), gate, cfg.ID})
	})
	select {
	case <-gate.blocking:
	case <-time.After(waitLong):
		t.Fatalf("no node logged \"leading\" within %v:\n%s", waitLong, c.dump())
	}
	var slow *node
	for _, n := range nodes {
		if n.id == gate.blocked() {
			slow = n
		}
	}
	require.NotNil(t, slow)
	// The Logger blocks now: IsLeader must still answer promptly.
	asked := time.Now()
	active := slow.e.IsLeader()
	took := time.Since(asked)
	t.Logf("%s's Logger blocks; its IsLeader() answered %v after %v", slow.id, active, took.Round(100*time.Microsecond))
	assert.Less(t, took, 100*time.Millisecond, "IsLeader blocked while the Logger did: it waits for the lock the Logger is called under")
	<-gate.released
	ldr, term := c.waitStable(testPeer, nodes...)
	t.Logf("after the Logger returned: %s leads in term %d", ldr.id, term)
	// Let the slow node act on whatever it queued while its Logger blocked.
	c.holdFor(calm, "after the slow Logger returned", stable(ldr, term, nodes...))
}

// logsTo returns a mod for cluster.start that logs, as the cluster does, to
// t.Log and also into buf, so the test can read what a node logged.
func logsTo(c *cluster, buf *lockedBuffer) func(*Config) {
	return func(cfg *Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(c.log, buf), &slog.HandlerOptions{Level: testLogLevel()}))
	}
}

// warned reports whether a WARN or ERROR line of log contains every one
// of words (case-insensitive).
func warned(log string, words ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "level=WARN") && !strings.Contains(line, "level=ERROR") {
			continue
		}
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(strings.ToLower(line), strings.ToLower(w))
		}
		if ok {
			return true
		}
	}
	return false
}

// noLeaderFor watches nodes for d and reports (once, without stopping the
// test) the first that holds the leader role or is the active leader.
func (c *cluster) noLeaderFor(d time.Duration, why string, nodes ...*node) {
	c.t.Helper()
	start := time.Now()
	var bad error
	poll(d, func() bool {
		for _, n := range nodes {
			if s := n.e.Status(); s.Active || s.State == Leader {
				bad = fmt.Errorf("%s is %v (active %v) in term %d, %v after the start", n.id, s.State, s.Active, s.Term, time.Since(start).Round(time.Millisecond))
				return true
			}
		}
		return false
	})
	if bad == nil {
		for _, n := range nodes {
			if spans := c.mon.activeSpans(n); len(spans) > 0 {
				bad = fmt.Errorf("%s was seen active at %s", n.id, spans[0].from.Format("15:04:05.000000"))
			}
		}
	}
	if bad != nil {
		c.t.Errorf("%s: %v\n%s", why, bad, c.dump())
	}
}

// TestTermKeyFailureNeverFallsBack: a node takes a new term from the term
// key, so that terms (fencing tokens) keep growing across restarts of every
// node. When Redis refuses to write that key, a node cannot know a term
// that is unique and higher than every term before: it must not stand,
// must say why, and must lead again, in a term above the key's, once the
// key can be written.
func TestTermKeyFailureNeverFallsBack(t *testing.T) {
	t.Run("OOM", func(t *testing.T) {
		r := startRedis(t)
		c := newClusterOn(t, r, "g")
		admin := redisClient(t, r.Addr)
		termKey := c.channel() + ":term"
		const before = 1000 // the terms of an earlier life of the group
		_, err := admin.Do("SET", termKey, before)
		require.NoError(t, err)
		_, err = admin.Do("CONFIG", "SET", "maxmemory-policy", "noeviction")
		require.NoError(t, err)
		_, err = admin.Do("CONFIG", "SET", "maxmemory", "1")
		require.NoError(t, err)
		_, err = admin.Do("EVAL", nextTermScript, 1, termKey, 0)
		require.ErrorContains(t, err, "OOM", "EVAL of a writing script at maxmemory with noeviction")
		_, err = admin.Do("PUBLISH", c.channel()+":probe", "x")
		require.NoError(t, err, "PUBLISH at maxmemory")

		logs := make([]*lockedBuffer, 3)
		nodes := make([]*node, 3)
		for i := range nodes {
			logs[i] = &lockedBuffer{}
			nodes[i] = c.start("n"+strconv.Itoa(i), logsTo(c, logs[i]))
		}
		c.noLeaderFor(10*testPeer, "the term key cannot be written", nodes...)
		told := false
		for i, n := range nodes {
			s := n.e.Status()
			if warned(logs[i].String(), "term key") || strings.Contains(s.LastRedisError, "OOM") {
				told = true
			}
			t.Logf("%s: term %d, elections %d, last Redis error %q", n.id, s.Term, s.Elections, s.LastRedisError)
		}
		assert.True(t, told, "no node said, in a WARN or ERROR log mentioning the term key or in Status().LastRedisError, that it could not take a term")
		var failures uint64
		for _, n := range nodes {
			failures += n.e.Status().TermKeyErrors
		}
		assert.Positive(t, failures, "Status().TermKeyErrors counts the failed writes")

		_, err = admin.Do("CONFIG", "SET", "maxmemory", "0")
		require.NoError(t, err)
		ldr, term := c.waitLeader(nodes...)
		t.Logf("with memory back: %s leads in term %d", ldr.id, term)
		assert.Greater(t, term, uint64(before), "the term key held %d: a lower term is not a fencing token", before)
	})

	t.Run("NOPERM", func(t *testing.T) {
		// The user may do everything an Elector does but EVAL.
		r := startRedis(t, "--user", "noeval", "on", ">pw", "~leader:{g}:term", "&leader:{g}*",
			"+publish", "+subscribe", "+ping", "+pubsub|numsub")
		c := newClusterOn(t, r, "g")
		logs := make([]*lockedBuffer, 3)
		nodes := make([]*node, 3)
		for i := range nodes {
			logs[i] = &lockedBuffer{}
			nodes[i] = c.start("n"+strconv.Itoa(i), func(cfg *Config) {
				logsTo(c, logs[i])(cfg)
				addr := cfg.Addr // this node's proxy
				cfg.Addr = ""
				cfg.Dial = func(ctx context.Context) (redis.Conn, error) {
					return redis.DialContext(ctx, "tcp", addr, redis.DialUsername("noeval"), redis.DialPassword("pw"),
						redis.DialReadTimeout(cfg.PeerTimeout), redis.DialWriteTimeout(cfg.PeerTimeout))
				}
			})
		}
		c.noLeaderFor(10*testPeer, "EVAL is denied", nodes...)
		told := false
		for i, n := range nodes {
			s := n.e.Status()
			if warned(logs[i].String(), "NOPERM") {
				told = true
			}
			t.Logf("%s: term %d, elections %d, last Redis error %q", n.id, s.Term, s.Elections, s.LastRedisError)
		}
		assert.True(t, told, "no node logged the NOPERM at WARN or ERROR")
	})
}

// routedConn is a redis.Conn that dials on its first command: through the
// proxy at sub when that command is SUBSCRIBE (the Elector's subscriber),
// through the one at pub otherwise (its publisher). A test can so cut or
// heal a node's two connections one at a time, as when Redis closes only
// the subscriber (an output buffer limit, CLIENT KILL TYPE pubsub). The
// check a link makes of every connection from Dial (CLIENT INFO) is
// answered on a connection of its own, through pub, so that it does not
// pick the route.
type routedConn struct {
	sub, pub string
	timeout  time.Duration

	c   redis.Conn
	err error
}

func (rc *routedConn) conn(cmd string) (redis.Conn, error) {
	if rc.c == nil && rc.err == nil {
		addr := rc.pub
		if strings.EqualFold(cmd, "SUBSCRIBE") {
			addr = rc.sub
		}
		rc.c, rc.err = redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second),
			redis.DialReadTimeout(rc.timeout), redis.DialWriteTimeout(rc.timeout))
	}
	return rc.c, rc.err
}

func (rc *routedConn) Send(cmd string, args ...any) error {
	c, err := rc.conn(cmd)
	if err != nil {
		return err
	}
	return c.Send(cmd, args...)
}

// probe answers the check a link makes of a fresh connection from Dial
// (CLIENT INFO: which DB) on a connection of its own, so that the command
// after it, SUBSCRIBE or not, picks the route.
func (rc *routedConn) probe(d time.Duration, cmd string, args ...any) (any, error) {
	c, err := redis.Dial("tcp", rc.pub, redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(d), redis.DialWriteTimeout(d))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Do(cmd, args...)
}

func (rc *routedConn) Do(cmd string, args ...any) (any, error) {
	if rc.c == nil && strings.EqualFold(cmd, "CLIENT") {
		return rc.probe(rc.timeout, cmd, args...)
	}
	c, err := rc.conn(cmd)
	if err != nil {
		return nil, err
	}
	return c.Do(cmd, args...)
}

func (rc *routedConn) DoWithTimeout(d time.Duration, cmd string, args ...any) (any, error) {
	if rc.c == nil && strings.EqualFold(cmd, "CLIENT") {
		return rc.probe(d, cmd, args...)
	}
	c, err := rc.conn(cmd)
	if err != nil {
		return nil, err
	}
	return redis.DoWithTimeout(c, d, cmd, args...)
}

func (rc *routedConn) Flush() error {
	if rc.c == nil {
		return rc.Err()
	}
	return rc.c.Flush()
}

func (rc *routedConn) Receive() (any, error) {
	if rc.c == nil {
		return nil, rc.Err()
	}
	return rc.c.Receive()
}

func (rc *routedConn) ReceiveWithTimeout(d time.Duration) (any, error) {
	if rc.c == nil {
		return nil, rc.Err()
	}
	return redis.ReceiveWithTimeout(rc.c, d)
}

func (rc *routedConn) Err() error {
	switch {
	case rc.c != nil:
		return rc.c.Err()
	case rc.err != nil:
		return rc.err
	}
	return errors.New("routedConn: no command sent yet")
}

func (rc *routedConn) Close() error {
	if rc.c == nil {
		return nil
	}
	return rc.c.Close()
}

// TestDynamicLoneLeaderNeverRearmsAfterCut: in dynamic mode p1 is elected
// alone (a quorum of 1 of 1), then p2 and p3 join and follow it. Then p1's
// link goes: its subscriber connection closes (Redis sees nobody on its
// channel), and its publisher's traffic is blackholed. p2 and p3 hear Redis say p1 is gone (the crash
// fast path), elect one of them in a higher term and wait out p1's lease.
// p1's publisher comes back first (its heartbeats, of the old term, are
// stale to the others), then its subscriber, while p1 still holds the
// leader role it has not yet given up and no longer hears any peer. Its
// own echo must not make it active again: two leaders at once (the
// monitor checks). LeaseTimeout is 90% of PeerTimeout, the most New allows.
func TestDynamicLoneLeaderNeverRearmsAfterCut(t *testing.T) {
	const lease = 225 * time.Millisecond
	timing := func(cfg *Config) {
		cfg.HeartbeatInterval = 50 * time.Millisecond
		cfg.PeerTimeout = 250 * time.Millisecond
		cfg.LeaseTimeout = lease // 90% of PeerTimeout
		cfg.ElectionJitter = 60 * time.Millisecond
	}
	r := startRedis(t)
	subProxy := startProxy(t, r.Addr) // p1's subscriber; its own proxy takes the rest
	t.Cleanup(subProxy.close)         // after the cluster's shutdown
	c := newClusterOn(t, r, "g")
	p1 := c.start("p1", func(cfg *Config) {
		timing(cfg)
		pub, timeout := cfg.Addr, cfg.PeerTimeout
		cfg.Addr = ""
		cfg.Dial = func(context.Context) (redis.Conn, error) {
			return &routedConn{sub: subProxy.Addr(), pub: pub, timeout: timeout}, nil
		}
	})
	_, term := c.waitLeader(p1)
	p2, p3 := c.start("p2", timing), c.start("p3", timing)
	nodes := []*node{p1, p2, p3}
	ldr, term := c.waitStable(250*time.Millisecond, nodes...)
	require.Equal(t, p1, ldr, "the lone leader lost its term when the others joined")

	// Cut just after a heartbeat renewed p1's lease, so that the lease and
	// the peers p1 heard run out at about the same time.
	require.True(t, poll(waitLong, func() bool { return p1.e.Status().LeaseLeft > lease-10*time.Millisecond }))
	cut := p1.proxy.Cut()
	subProxy.Cut()
	subProxy.closeConns() // Redis sees p1's subscriber go: NUMSUB of its channel is 0
	others := []*node{p2, p3}
	require.True(t, poll(waitLong, func() bool {
		return p2.e.Status().Term > term && p3.e.Status().Term > term
	}), "p2 and p3 did not move past term %d:\n%s", term, c.dump())
	p1.proxy.Heal() // its publisher redials; its heartbeats are of the old term now
	pubHealed := time.Since(cut)
	require.True(t, poll(waitLong, func() bool {
		nw, _ := agreedLeader(others)
		return nw != nil && len(p1.e.Status().LivePeers) == 0
	}), "no new leader, or p1 still hears its peers:\n%s", c.dump())
	s := p1.e.Status()
	subHealed := time.Since(cut)
	subProxy.Heal()
	t.Logf("cut at 0; publisher healed at %v; subscriber healed at %v, p1 then %v in term %d", pubHealed.Round(time.Millisecond), subHealed.Round(time.Millisecond), s.State, s.Term)
	nw, newTerm := c.waitStable(calm, nodes...)
	t.Logf("%s leads in term %d (p1 led term %d)", nw.id, newTerm, term)
	if at, ok := c.mon.seenActiveAfter(p1, cut); ok {
		t.Logf("p1 was active again %v after the cut", at.Sub(cut).Round(100*time.Microsecond))
	}
}

// TestRestartedVoterNeverAcksOldLeader, strict mode (ClusterSize 3): a
// leads term T. a's subscriber connection closes (Redis: nobody on its
// channel) and its publishes are blackholed. The crash fast path elects b
// (say) in T+1 with c's vote, and b waits out a's lease. Then c restarts
// with the same ID, just after one of b's heartbeats, and a's subscriber
// comes back before a has given up the leader role. The new c remembers
// nothing and is still listening after its start; it must not ack a's
// term-T heartbeat into a quorum (a's own echo and c's ack make two of
// three) while b leads T+1 on the vote c's earlier incarnation gave: two
// leaders at once (the monitor checks). LeaseTimeout is 80% of PeerTimeout.
func TestRestartedVoterNeverAcksOldLeader(t *testing.T) {
	const hb, lease, peer = 80 * time.Millisecond, 240 * time.Millisecond, 300 * time.Millisecond
	mod := func(cfg *Config) {
		cfg.ClusterSize = 3
		cfg.HeartbeatInterval, cfg.LeaseTimeout, cfg.PeerTimeout = hb, lease, peer
		cfg.ElectionJitter = 60 * time.Millisecond
	}
	r := startRedis(t)
	subProxy := startProxy(t, r.Addr) // a's subscriber; its own proxy takes the rest
	t.Cleanup(subProxy.close)         // after the cluster's shutdown
	c := newClusterOn(t, r, "g")
	a := c.start("a", func(cfg *Config) {
		mod(cfg)
		pub := cfg.Addr
		cfg.Addr = ""
		cfg.Dial = func(context.Context) (redis.Conn, error) {
			return &routedConn{sub: subProxy.Addr(), pub: pub, timeout: peer}, nil
		}
	})
	nodes := []*node{a, c.start("b", mod), c.start("c", mod)}
	ldr, term := c.waitStable(peer, nodes...)
	if ldr != a {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		require.NoError(t, ldr.e.TransferTo(ctx, a.id))
		cancel()
		ldr, term = c.waitStable(peer, nodes...)
		require.Equal(t, a, ldr, "TransferTo(a) did not make a the leader")
	}
	hbs, _ := subscribeTo(t, r.Addr, c.channel(), 256)

	// Cut just after a heartbeat renewed a's lease.
	require.True(t, poll(waitLong, func() bool { return a.e.Status().LeaseLeft > lease-10*time.Millisecond }))
	cut := a.proxy.Cut()
	subProxy.Cut()
	subProxy.closeConns() // Redis sees a's subscriber go: the crash fast path
	at := func() time.Duration { return time.Since(cut).Round(time.Millisecond) }
	rest := nodes[1:]
	require.True(t, poll(waitLong, func() bool {
		return rest[0].e.Status().Term > term && rest[1].e.Status().Term > term
	}), "b and c did not move past term %d:\n%s", term, c.dump())
	a.proxy.Heal() // a's publisher redials; its heartbeats are of the old term now
	pubHealed := at()
	var nw *node
	require.True(t, poll(waitLong, func() bool {
		nw, _ = agreedLeader(rest)
		return nw != nil
	}), "no new leader among %v:\n%s", ids(rest), c.dump())
	voter := without(rest, nw)[0]
	newActive := at()
	// Just after the new leader's next heartbeat, the voter restarts with
	// the same ID and a's subscriber link comes back.
	for len(hbs) > 0 {
		<-hbs
	}
	deadline := time.After(waitLong)
	for beat := false; !beat; {
		select {
		case b := <-hbs:
			m, err := decodeWire(b)
			beat = err == nil && m.Type == msgHeartbeat && m.Flags&flagLeader != 0 && m.From == nw.id
		case <-deadline:
			t.Fatalf("no heartbeat from %s:\n%s", nw.id, c.dump())
		}
	}
	beat := at()
	require.NoError(t, voter.stop())
	restarted := c.start(voter.id, mod)
	subProxy.Heal()
	s := a.e.Status()
	t.Logf("cut at 0; a's publisher healed at %v; %s active by %v; its heartbeat at %v; %s restarted and a's subscriber healed at %v (a: %v in term %d)",
		pubHealed, nw.id, newActive, beat, voter.id, at(), s.State, s.Term)
	ldr, newTerm := c.waitStable(calm, a, nw, restarted)
	t.Logf("%s leads in term %d (a led term %d)", ldr.id, newTerm, term)
	if first, ok := c.mon.seenActiveAfter(a, cut); ok {
		t.Logf("a was active again %v after the cut", first.Sub(cut).Round(100*time.Microsecond))
	}
}

// ---------------------------------------------------------------------------
// Goroutines

// TestNoGoroutinesLeftAfterRun runs electors without proxies or monitor
// (connected, leading, one that never reaches Redis, and three of two
// groups on one Link) and checks that once Run has returned no goroutine
// of theirs is left.
func TestNoGoroutinesLeftAfterRun(t *testing.T) {
	r := startRedis(t)
	deadAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	ignore := goleak.IgnoreCurrent()
	var electors []*Elector
	for i, addr := range []string{r.Addr, r.Addr, r.Addr, deadAddr} {
		e, err := New(Config{Addr: addr, Group: "leak", ID: fmt.Sprintf("n%d", i),
			HeartbeatInterval: testHeartbeat, LeaseTimeout: testLease, PeerTimeout: testPeer, ElectionJitter: testJitter,
			OnStartedLeading: func(ctx context.Context, _ uint64) { <-ctx.Done() }})
		require.NoError(t, err)
		electors = append(electors, e)
	}
	link := &Link{Addr: r.Addr}
	for i, group := range []string{"leak-a", "leak-a", "leak-b"} {
		e, err := New(Config{Link: link, Group: group, ID: fmt.Sprintf("l%d", i),
			HeartbeatInterval: testHeartbeat, LeaseTimeout: testLease, PeerTimeout: testPeer, ElectionJitter: testJitter})
		require.NoError(t, err)
		electors = append(electors, e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, len(electors))
	for _, e := range electors {
		go func() { done <- e.Run(ctx) }()
	}
	require.True(t, poll(waitLong, func() bool {
		for _, e := range electors[:3] {
			if e.IsLeader() {
				return true
			}
		}
		return false
	}), "no leader")
	cancel()
	for range electors {
		select {
		case err := <-done:
			assert.NoError(t, ignoreCanceled(err))
		case <-time.After(waitLong):
			t.Fatal("Run did not return")
		}
	}
	goleak.VerifyNone(t, ignore)
}

// ---------------------------------------------------------------------------
// Benchmarks of the hot path (make bench): one message encoded, and one
// received message decoded and verified, from a known sender.

func benchMessage() message {
	return message{Type: msgHeartbeat, Flags: flagLeader, Term: 12345, Seq: 67890, Live: 5, Inc: 0x1234567890abcdef,
		From: "host-name-12345-0a1b2c3d", To: ""}
}

func BenchmarkEncode(b *testing.B) {
	for _, secret := range []bool{false, true} {
		b.Run(fmt.Sprintf("secret=%v", secret), func(b *testing.B) {
			var sg *signer
			if secret {
				sg = newSigner(&Config{Secret: []byte("benchmark secret")})
			}
			m := benchMessage()
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				buf = appendMessage(buf[:0], "leader:{bench}", &m, sg)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, secret := range []bool{false, true} {
		b.Run(fmt.Sprintf("secret=%v", secret), func(b *testing.B) {
			var sg, sg2 *signer
			if secret {
				cfg := Config{Secret: []byte("benchmark secret")}
				sg, sg2 = newSigner(&cfg), newSigner(&cfg)
			}
			const channel = "leader:{bench}"
			m := benchMessage()
			wire := appendMessage(nil, channel, &m, sg)
			rd := newReader(sg2, time.Hour)
			var got message
			require.NoError(b, rd.decode(channel, wire, &got)) // the sender is now known
			b.ReportAllocs()
			b.SetBytes(int64(len(wire)))
			for b.Loop() {
				if err := rd.decode(channel, wire, &got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIsLeader is the call users make before each unit of leader work.
func BenchmarkIsLeader(b *testing.B) {
	e, err := New(Config{})
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		_ = e.IsLeader()
	}
}

// BenchmarkJunk is one junk message published on a group's channel and
// dropped by a subscribed Elector, on a real redis-server: the subscriber's
// read, the push's parse and the decode that refuses it. (The publisher runs
// in the same process; its allocations count too.) Under a flood this is the
// CPU that the heartbeats queued behind the junk wait for.
func BenchmarkJunk(b *testing.B) {
	r := startRedis(b)
	e, err := New(Config{Addr: r.Addr, Group: "bench", ID: "n1"})
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	require.True(b, poll(10*time.Second, func() bool { return e.Status().Connected }), "not subscribed")
	c, err := redis.Dial("tcp", r.Addr)
	require.NoError(b, err)
	defer c.Close()
	junk := make([][]byte, 64) // 16 to 79 bytes, none a message
	for i := range junk {
		junk[i] = bytes.Repeat([]byte{byte(i)}, 16+i)
	}
	refused := func() uint64 { s := e.Status(); return s.Dropped + s.Unverified }
	base := refused()
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		k := min(1000, b.N-sent)
		for i := range k {
			_ = c.Send("PUBLISH", "leader:{bench}", junk[(sent+i)%len(junk)])
		}
		require.NoError(b, c.Flush())
		for range k {
			_, err := c.Receive()
			require.NoError(b, err)
		}
		sent += k
	}
	require.True(b, poll(30*time.Second, func() bool { return refused()-base >= uint64(b.N) }),
		"refused %d of %d", refused()-base, b.N)
}

// ---------------------------------------------------------------------------
// Examples

// The error says which field is wrong, and how to fix it.
func ExampleNew() {
	_, err := New(Config{LeaseTimeout: 600 * time.Millisecond, PeerTimeout: 500 * time.Millisecond})
	fmt.Println(err)
	// Output: leader: LeaseTimeout (600ms) must be less than PeerTimeout (500ms) with a 10% margin, so a lease ends before a new leader can be elected: set LeaseTimeout to at most 450ms or raise PeerTimeout
}

// A singleton job: every instance of the service runs this, and the job runs
// on one of them at a time. It stops when leadership is lost, and moves to
// another instance within a few round trips when this one is stopped.
func ExampleElector_Run() {
	e, err := New(Config{
		Addr:  "127.0.0.1:6379",
		Group: "nightly-report",
		OnStartedLeading: func(ctx context.Context, term uint64) {
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done(): // leadership lost, resigned, or shutting down
					return
				case <-tick.C:
					// Do one unit of work, passing term to what it writes so
					// a stale leader's writes can be refused (fencing).
					log.Printf("working as leader of term %d", term)
				}
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	// On SIGTERM, Run hands leadership over to a live peer, then returns.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := e.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

// One process, many groups: an Elector per tenant, all on one Link, so the
// process keeps two connections to Redis however many tenants it serves.
// Every instance of the service runs the same code; each tenant's job runs
// on one instance at a time, and the tenants' leaders spread over the
// instances.
func ExampleLink() {
	link := &Link{Addr: "127.0.0.1:6379"}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	for _, tenant := range []string{"acme", "globex", "initech"} {
		e, err := New(Config{
			Link:        link,
			Group:       "ingest-" + tenant,
			ClusterSize: 3, // three instances of the service
			OnStartedLeading: func(ctx context.Context, term uint64) {
				log.Printf("reading %s's stream as leader of term %d", tenant, term)
				<-ctx.Done()
			},
		})
		if err != nil {
			log.Fatal(err)
		}
		wg.Go(func() {
			if err := e.Run(ctx); err != nil {
				log.Print(err)
			}
		})
	}
	wg.Wait() // the Link's connections close when the last Run returns
}

// Checking IsLeader before each unit of work, instead of using the callback.
func ExampleElector_IsLeader() {
	e, err := New(Config{Group: "billing"})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = e.Run(ctx) }()

	for range time.Tick(time.Second) {
		if !e.IsLeader() { // reads the clock: false as soon as the lease ends
			continue
		}
		_, term := e.Leader()
		fmt.Println("leader work, fencing token", term)
	}
}

// Dial opens every connection: here with a password; TLS, ACL users or a
// Sentinel lookup go the same way.
func ExampleConfig_dial() {
	cfg := Config{
		Group: "mailer",
		Dial: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", "redis.internal:6379",
				redis.DialUsername("mailer"), redis.DialPassword(os.Getenv("REDIS_PASSWORD")),
				redis.DialUseTLS(true))
		},
		Secret: []byte(os.Getenv("ELECTION_SECRET")), // sign every message
	}
	e, err := New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	_ = e.Run(context.Background())
}

// ExampleConfig_sentinel finds the primary through Redis Sentinel, in
// strict mode: three sentinels watched for a switch, and the primary
// checked with ROLE.
func ExampleConfig_sentinel() {
	e, err := New(Config{
		Group:       "mailer",
		ClusterSize: 3,
		Sentinel: &Sentinel{
			Addrs:      []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"},
			MasterName: "mymaster",
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = e.Run(context.Background())
}

// A group on a Redis Cluster: the Elector finds the primary of the
// group's slot from any of the nodes, and follows the slot when it moves.
func ExampleConfig_cluster() {
	e, err := New(Config{
		Group:       "mailer", // no { or }: the group name is the hash tag
		ClusterSize: 3,
		Cluster: &Cluster{
			Addrs: []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = e.Run(context.Background())
}

// wrongVersion returns copies of a real message with other protocol
// versions. The wire format puts the version in the second byte, after a
// magic byte (see appendMessage).
func wrongVersion(m []byte) [][]byte {
	var out [][]byte
	for _, v := range []byte{0, wireVersion + 1, 0xff} {
		c := slices.Clone(m)
		c[1] = v
		out = append(out, c)
	}
	return out
}

// decodeWire decodes one message as a node's subscriber does (without
// Secret): with encodeWire, the one place these tests reach into the wire
// format's internals.
func decodeWire(b []byte) (message, error) {
	var m message
	err := newReader(nil, time.Hour).decode("", b, &m)
	return m, err
}

// testStamps gives the messages encodeWire makes stamps as a sender's
// shell does: its clock in µs, strictly increasing.
var testStamps struct {
	sync.Mutex
	base time.Time
	last uint64
}

// encodeWire encodes m for channel as a node's shell does, stamped now,
// and signed with secret (and previous, if set) when it is set.
func encodeWire(channel string, m message, secret, previous []byte) []byte {
	testStamps.Lock()
	if testStamps.base.IsZero() {
		testStamps.base = time.Now()
	}
	testStamps.last = max(testStamps.last+1, uint64(time.Since(testStamps.base)/time.Microsecond))
	m.Stamp = testStamps.last
	testStamps.Unlock()
	return appendMessage(nil, channel, &m, newSigner(&Config{Secret: secret, PreviousSecret: previous}))
}

// ---------------------------------------------------------------------------
// Fuzzing and benchmarks of the hot path (no Redis needed)
// ---------------------------------------------------------------------------

// TestElectionBackoff drives the core without Redis: rounds that time out
// one after another make the rounds longer and the random delay before the
// next campaign wider (from the second failure on, capped), and a heartbeat
// from a leader puts both back.
func TestElectionBackoff(t *testing.T) {
	c := offlineCore(t, Config{ID: "me", ClusterSize: 3}) // strict: no lone win
	s := &c.st
	hb, jit := defaultHeartbeatInterval, defaultElectionJitter
	wantRound := []time.Duration{2 * hb, 2 * hb, 4 * hb, 8 * hb, 8 * hb, 8 * hb}
	wantJitter := []time.Duration{jit, jit, 2 * jit, 4 * jit, 8 * jit, 8 * jit}
	at := time.Now()
	for i := range wantRound {
		c.begin(at)
		c.campaign(at, false)
		require.Equal(t, Candidate, s.role)
		round := s.roundEnd.Sub(at)
		at = s.roundEnd
		c.tick(at) // no pre-votes came: the round fails
		require.Equal(t, Follower, s.role, "after round %d", i+1)
		delay := s.electionAt.Sub(at)
		assert.Equal(t, wantRound[i], round, "round %d", i+1)
		// After the failure the next round's own length plus a jitter.
		next := wantRound[min(i+1, len(wantRound)-1)]
		assert.GreaterOrEqual(t, delay, next, "delay after round %d", i+1)
		assert.LessOrEqual(t, delay, next+wantJitter[min(i+1, len(wantJitter)-1)], "delay after round %d", i+1)
	}
	c.receive(at, &message{Type: msgHeartbeat, Flags: flagLeader, Term: 9, Seq: 1, Inc: 5, From: "boss", Live: 3})
	assert.Equal(t, "boss", s.leader)
	assert.Equal(t, 2*hb, c.roundTimeout(), "a leader's heartbeat resets the backoff")
	assert.Equal(t, jit, c.jitter(), "a leader's heartbeat resets the backoff")
}

// TestStrictFollowerBroadcastsToItself drives the core without Redis: a
// follower without a leader publishes a heartbeat every PeerTimeout/3. In
// dynamic mode it goes to the group channel (the others count it for the
// quorum); in strict mode only to the node's own channel, whose echo proves
// its link, since a broadcast would cost N² deliveries for a count that
// does not decide the quorum.
func TestStrictFollowerBroadcastsToItself(t *testing.T) {
	for _, size := range []int{0, 3} {
		c := offlineCore(t, Config{ID: "me", ClusterSize: size})
		at := time.Now()
		var to []string
		for d := time.Duration(0); d <= defaultPeerTimeout; d += defaultHeartbeatInterval / 2 {
			out, _ := c.tick(at.Add(d))
			for _, o := range out {
				if o.kind == outPublish && o.msg.Type == msgHeartbeat {
					to = append(to, o.channel)
				}
			}
		}
		want := c.channel
		if size > 0 {
			want = c.selfChan
		}
		require.NotEmpty(t, to, "ClusterSize %d: no heartbeat in a PeerTimeout", size)
		for _, ch := range to {
			assert.Equal(t, want, ch, "ClusterSize %d", size)
		}
	}
}

// TestStalledNodeVotesButWaitsToStand: a node whose own loop stalled (a
// pause, CPU starvation) still grants a vote, since it forgot nothing, but
// does not campaign itself until it has listened for a PeerTimeout again.
func TestStalledNodeVotesButWaitsToStand(t *testing.T) {
	c := offlineCore(t, Config{ID: "me", ClusterSize: 3})
	s := &c.st
	at := time.Now()
	s.lastTick = at.Add(-time.Second)
	c.begin(at)
	c.noticeStall(at) // a one-second stall
	s.electionAt = at // and an election already due
	c.receive(at, &message{Type: msgVoteRequest, Term: 4, Inc: 7, From: "cand"})
	assert.Equal(t, "cand", s.votedFor, "a stalled node refused its vote")
	assert.Equal(t, uint64(4), s.term)
	s.votedFor, s.electionAt = "", at // free again, election due
	for d := time.Duration(0); d < defaultPeerTimeout; d += defaultHeartbeatInterval {
		s.selfEcho = at.Add(d) // its link to Redis works
		c.tick(at.Add(d))
		require.Equal(t, Follower, s.role, "campaigned %v after a stall", d)
	}
	s.selfEcho = at.Add(defaultPeerTimeout)
	c.tick(at.Add(defaultPeerTimeout))
	assert.Equal(t, Candidate, s.role, "did not campaign a PeerTimeout after the stall")
}

// TestHeirStandsFirst drives followers offline: when their leader falls
// silent for a PeerTimeout, the heir its heartbeats named campaigns within
// ElectionJitter/5, every other follower holds back a round first, and
// without a named heir a follower waits a random [0, ElectionJitter]. On
// the crash fast path (Redis says the leader's process is gone) the heir
// goes at once and the others still a round later.
func TestHeirStandsFirst(t *testing.T) {
	jit, round := defaultElectionJitter, 2*defaultHeartbeatInterval
	gone := (defaultLeaseTimeout + defaultPeerTimeout) / 2
	for _, tc := range []struct {
		self, heir string
		crash      bool
		min, max   time.Duration
		silent     time.Duration // 0: PeerTimeout
		quorum     bool          // it heard a quorum since it resubscribed
	}{
		{"h", "h", false, jit / 5, jit / 5, gone, false},
		{"o", "h", false, round, round + jit, 0, false},
		{"o", "", false, 0, jit, 0, false},
		{"h", "h", true, 0, 0, 0, false},
		{"o", "h", true, round, round + jit, 0, false},
		// Silent for longer than leaderGone and the guard (Redis was
		// down), and it heard a quorum since it resubscribed: every other
		// follower lost the leader that long ago too, and they are back.
		{"h", "h", false, 0, 0, 4 * defaultPeerTimeout, true},
		// Without a quorum heard it still waits: the others may not have
		// resubscribed yet.
		{"h", "h", false, jit / 5, jit / 5, 4 * defaultPeerTimeout, false},
	} {
		e := offlineElector(t, Config{ID: tc.self, ClusterSize: 3})
		c := &e.c
		s := &c.st
		at := time.Now()
		c.receive(at, &message{Type: msgHeartbeat, Flags: flagLeader, Term: 3, Seq: 1, Live: 3, Inc: 9, From: "boss", To: tc.heir})
		require.Equal(t, tc.heir, s.heir)
		var now time.Time
		if tc.crash {
			now = at.Add(2 * defaultHeartbeatInterval)
			c.numSubAnswer(now, "boss", 0, 0, nil)
		} else {
			now = at.Add(cmp.Or(tc.silent, defaultPeerTimeout))
			s.selfEcho = now // its own link to Redis works
			s.heardQuorum = tc.quorum
			c.tick(now)
			if tc.max == 0 {
				require.Equal(t, Candidate, s.role, "%+v: it did not stand at once", tc)
				continue
			}
		}
		require.Equal(t, Follower, s.role)
		require.False(t, s.electionAt.IsZero(), "%+v: no campaign scheduled", tc)
		delay := s.electionAt.Sub(now)
		assert.GreaterOrEqual(t, delay, tc.min, "%+v", tc)
		assert.LessOrEqual(t, delay, tc.max, "%+v", tc)
		assert.Equal(t, tc.heir, e.Status().Heir)
	}
}

// TestResubscribedKeepsTheGroupSize: a follower hears its leader, not the
// other followers (their acks go to the leader's own channel), so its own
// count of live nodes is two; the leader's heartbeats tell it the group's
// size. After a Redis outage longer than PeerTimeout, that size must
// still hold when it resubscribes: in dynamic mode it makes the quorum,
// and the listening after the resubscription ends early only once Redis
// lists a quorum of nodes, all heard. Before, the follower came back with
// a group of two: it ended its listening when Redis listed it and one
// other, and won an election with a quorum of 2 of a group of 5 (a chaos
// redis-restart run, seed 777).
func TestResubscribedKeepsTheGroupSize(t *testing.T) {
	c := offlineCore(t, Config{ID: "n2"})
	s := &c.st
	at := time.Now()
	s.startUntil = at.Add(-time.Minute) // long after its first listening
	var now time.Time
	for i := range 10 { // a calm group of 5, for longer than PeerTimeout
		now = at.Add(time.Duration(i) * defaultHeartbeatInterval)
		c.receive(now, &message{Type: msgHeartbeat, Flags: flagLeader, Term: 3, Seq: uint64(i + 1), Live: 5, Inc: 1, From: "n1", To: "n3"})
		s.selfEcho = now // its own link works
		c.tick(now)
	}
	require.Equal(t, 2, c.countLive(now), "it hears more than its leader")
	require.Equal(t, 5, c.groupSize(now))
	c.disconnected(now, nil)
	back := now.Add(4 * defaultPeerTimeout)
	c.tick(back.Add(-time.Millisecond))
	c.subscribed(back)
	require.True(t, s.hello, "no hello after the resubscription")
	assert.Equal(t, 5, c.groupSize(back), "the group's size after the outage")
	assert.Equal(t, 3, c.quorum(back))

	// Redis lists this node and n5, whose answer it heard: two of five.
	heard := back.Add(time.Millisecond)
	c.receive(heard, &message{Type: msgHeartbeat, Term: 3, Inc: 1, From: "n5"})
	listed := []string{c.nodeChannel("n2"), c.nodeChannel("n5")}
	c.whoAnswer(heard, s.whoRound, listed, nil) // asked before n5 was heard: asks again
	answered := heard.Add(time.Millisecond)
	c.whoAnswer(answered, s.whoRound, listed, nil)
	assert.True(t, answered.Before(s.joinUntil), "the listening ended with 2 nodes of 5 listed")
	c.tick(answered)
	assert.Equal(t, Follower, s.role)
	assert.True(t, s.electionAt.IsZero() || s.electionAt.After(answered))
}

// TestStrictHeirStandsOnceAQuorumIsBack: in strict mode a node that
// resubscribes votes and stands at once, but after a Redis outage the heir
// must not stand before a quorum is back, or its pre-vote is lost and the
// group waits out a round. It says hello on the group's channel, as a
// dynamic-mode node does (a strict follower's heartbeats otherwise go to
// its own channel, which nobody else hears), the others answer on the
// group's channel, and it asks Redis who subscribes: once it has heard
// every node listed, a quorum, it stands at once. Before, it always waited
// out its guard (ElectionJitter/5) after the outage, 30 ms of the 40 a
// strict group took to elect after Redis was back. Without answers it
// stands when the guard is over, as before.
func TestStrictHeirStandsOnceAQuorumIsBack(t *testing.T) {
	guard := defaultElectionJitter / 5
	for _, answered := range []bool{true, false} {
		c := offlineCore(t, Config{ID: "h", ClusterSize: 3})
		s := &c.st
		at := time.Now()
		s.startUntil = at.Add(-time.Minute) // long after its first listening
		c.receive(at, &message{Type: msgHeartbeat, Flags: flagLeader, Term: 3, Seq: 1, Live: 3, Inc: 9, From: "boss", To: "h"})
		c.disconnected(at, nil)
		back := at.Add(4 * defaultPeerTimeout)
		out := c.subscribed(back)
		require.True(t, slices.ContainsFunc(out, func(o output) bool {
			return o.kind == outPublish && o.channel == c.channel && o.msg.Ago == helloMark
		}), "no hello on the group's channel: %+v", out)
		s.selfEcho = back
		c.tick(back)
		require.Equal(t, Follower, s.role, "it stood before it knew who is back")
		now := back.Add(time.Millisecond)
		if answered {
			c.receive(now, &message{Type: msgHeartbeat, Term: 3, Inc: 1, From: "p"})
			listed := []string{c.nodeChannel("h"), c.nodeChannel("p")}
			c.whoAnswer(now, s.whoRound, listed, nil) // asked before p was heard: asks again
			now = now.Add(time.Millisecond)
			c.whoAnswer(now, s.whoRound, listed, nil)
			s.selfEcho = now
			c.tick(now)
			assert.Equal(t, Candidate, s.role, "a quorum is back, and the heir did not stand")
			continue
		}
		now = back.Add(guard - time.Millisecond)
		s.selfEcho = now
		c.tick(now)
		require.Equal(t, Follower, s.role)
		now = back.Add(guard)
		s.selfEcho = now
		c.tick(now)
		assert.Equal(t, Candidate, s.role, "nobody answered, and the heir did not stand once its guard was over")
	}

	// A strict follower answers a hello on the group's channel.
	c := offlineCore(t, Config{ID: "p", ClusterSize: 3})
	now := time.Now()
	c.receive(now, &message{Type: msgHeartbeat, Term: 3, Ago: helloMark, Inc: 1, From: "h"})
	out, _ := c.tick(now)
	assert.True(t, slices.ContainsFunc(out, func(o output) bool {
		return o.kind == outPublish && o.channel == c.channel && o.msg.Type == msgHeartbeat
	}), "no answer on the group's channel: %+v", out)
}

// TestVoterGrantsTheSuccessorOfTheLeaderItElected: a voter gives the
// candidate it voted for that candidate's round before it votes for
// another, so that a rival a moment later cannot take the votes back.
// Once that candidate won (its heartbeat of the term came) the round is
// decided, and a successor that it names when it resigns at once must get
// the vote. Before, every voter refused it for the rest of the round
// (200 ms) and the group lost a round and a term: in a full make chaos
// run (seed 20261208), priority trial 1, a node SIGTERMed 18 ms after it
// won left its group 424 ms without a leader, where a resign takes 7.
func TestVoterGrantsTheSuccessorOfTheLeaderItElected(t *testing.T) {
	c := offlineCore(t, Config{ID: "v"})
	s := &c.st
	now := time.Now()
	c.receive(now, &message{Type: msgHeartbeat, Flags: flagLeader, Term: 4, Seq: 1, Live: 3, Inc: 1, From: "old", To: "a"})
	now = now.Add(time.Millisecond)
	c.receive(now, &message{Type: msgResign, Term: 4, Inc: 1, From: "old", To: "a"})
	c.receive(now, &message{Type: msgVoteRequest, Term: 5, Inc: 2, From: "a"})
	require.Equal(t, "a", s.votedFor, "it did not vote for the named successor")
	now = now.Add(time.Millisecond)
	c.receive(now, &message{Type: msgHeartbeat, Flags: flagLeader, Term: 5, Seq: 1, Live: 3, Inc: 2, From: "a", To: "b"})
	require.Equal(t, "a", s.leader)
	now = now.Add(18 * time.Millisecond) // well inside the round it gave a
	c.receive(now, &message{Type: msgResign, Term: 5, Inc: 2, From: "a", To: "b"})
	c.receive(now, &message{Type: msgVoteRequest, Term: 6, Inc: 3, From: "b"})
	assert.Equal(t, "b", s.votedFor, "it refused the successor of the leader it elected")
	assert.EqualValues(t, 6, s.term)
}

// TestResubscribedDrawsItsDelayAgain: a campaign that came due while a
// node was cut off (as one does when its lease lapses then) does not go
// ahead of the heir's once the node has resubscribed: its delay is drawn
// again, and a node that is not the heir gives the heir a round.
func TestResubscribedDrawsItsDelayAgain(t *testing.T) {
	e := offlineElector(t, Config{ID: "o", ClusterSize: 3})
	c, s := &e.c, &e.c.st
	at := time.Now()
	c.receive(at, &message{Type: msgHeartbeat, Flags: flagLeader, Term: 3, Seq: 1, Live: 3, Inc: 9, From: "boss", To: "h"})
	s.subscribed, s.startUntil = false, at.Add(-time.Minute) // cut off, long after its first listening
	s.electionAt = at.Add(defaultPeerTimeout)                // came due during the outage
	now := at.Add(4 * defaultPeerTimeout)
	c.subscribed(now)
	s.selfEcho = now
	c.tick(now)
	require.Equal(t, Follower, s.role, "it campaigned at once, ahead of the heir")
	assert.GreaterOrEqual(t, s.electionAt.Sub(now), 2*defaultHeartbeatInterval)
}

// TestHeirsSpreadOverNodes: with many groups on the same nodes, the
// leaders' heirs spread over the followers that are up to date (acked one
// of the last two heartbeats) instead of all falling on the lowest ID or
// the quickest acker, so that a crash of the leaders' process does not
// hand one process all of their elections at once.
func TestHeirsSpreadOverNodes(t *testing.T) {
	heirs := map[string]int{}
	for g := range 100 {
		c := offlineCore(t, Config{ID: "p0", Group: "g" + strconv.Itoa(g), ClusterSize: 3})
		now := time.Now()
		// p2 acks a moment sooner: one heartbeat ahead of p1.
		c.st.peers["p1"] = &peer{heard: now, since: now, acked: 7}
		c.st.peers["p2"] = &peer{heard: now, since: now, acked: 8}
		c.st.peers["p3"] = &peer{heard: now, since: now, acked: 5} // behind: never the heir
		heirs[c.pickSuccessor(now)]++
	}
	t.Logf("heirs of 100 groups: %v", heirs)
	assert.Len(t, heirs, 2)
	for id, n := range heirs {
		assert.GreaterOrEqual(t, n, 30, "%s is the heir of %d of 100 groups", id, n)
	}
}

// TestHeirLeavesTheProcess: among the followers that are up to date, the
// heir is one in another process (not on the leader's Link) even when one
// in the leader's own process ranks higher: a crash of the process takes
// both.
func TestHeirLeavesTheProcess(t *testing.T) {
	for g := range 20 {
		c := offlineCore(t, Config{ID: "p0", Group: "g" + strconv.Itoa(g), ClusterSize: 3})
		now := time.Now()
		for _, id := range []string{"p1", "p2", "q1", "q2"} {
			c.st.peers[id] = &peer{heard: now, since: now, acked: 8}
		}
		c.st.peers["q3"] = &peer{heard: now, since: now, acked: 5} // behind: never the heir
		c.local = map[string]bool{"p0": true, "p1": true, "p2": true}
		heir := c.pickSuccessor(now)
		assert.Contains(t, []string{"q1", "q2"}, heir, "group g%d: the heir is in the leader's process", g)
		c.local = map[string]bool{"p0": true, "p1": true, "p2": true, "q1": true, "q2": true}
		assert.NotEmpty(t, c.pickSuccessor(now), "group g%d: no heir when every follower shares the process", g)
	}
}

// TestLinkHeirInAnotherProcess runs one group of 5 on two Links (two
// processes): 3 Electors on one, 2 on the other. The IDs are chosen so that
// the two best-ranked heirs are on the first Link, where the leader is
// elected: its heir must still be on the second one.
func TestLinkHeirInAnotherProcess(t *testing.T) {
	r := startRedis(t)
	c := newClusterOn(t, r, "heirs")
	var ids []string
	for i := range 20 {
		ids = append(ids, "n"+strconv.Itoa(i))
	}
	ch := c.channel()
	slices.SortFunc(ids, func(a, b string) int { return cmp.Compare(heirRank(ch, a), heirRank(ch, b)) })
	first, second := ids[:3], ids[3:5] // the three best ranks, then the next two
	on := func(l *Link) func(*Config) {
		return func(cfg *Config) { cfg.Addr, cfg.Link, cfg.ClusterSize, cfg.Scale = "", l, 5, 3 }
	}
	l1, l2 := &Link{Addr: r.Addr}, &Link{Addr: r.Addr}
	var nodes []*node
	for _, id := range first {
		nodes = append(nodes, c.start(id, on(l1)))
	}
	c.waitLeader(nodes...) // 3 of ClusterSize 5: the first Link elects alone
	for _, id := range second {
		nodes = append(nodes, c.start(id, on(l2)))
	}
	ldr, _ := c.waitStable(calm, nodes...)
	require.Contains(t, first, ldr.id, "the leader moved to the second Link")
	var heir string
	ok := poll(waitLong, func() bool {
		heir = ldr.e.Status().Heir
		return slices.Contains(second, heir)
	})
	assert.True(t, ok, "the leader %s names %q as its heir, in its own process; the other process has %v", ldr.id, heir, second)
}

// TestHeirMovesToASteadyBetterNode: a leader keeps its heir while that one
// acks, until a node it ranks higher has been heard without a break for a
// PeerTimeout (a process that came back after a crash), so that the heirs
// of many groups spread over it again.
func TestHeirMovesToASteadyBetterNode(t *testing.T) {
	group := ""
	for g := 0; group == ""; g++ {
		if ch := groupChannel("g"+strconv.Itoa(g), 0); heirRank(ch, "p2") < heirRank(ch, "p1") {
			group = "g" + strconv.Itoa(g)
		}
	}
	c := offlineCore(t, Config{ID: "p0", Group: group, ClusterSize: 3})
	now := time.Now()
	s := &c.st
	s.seq, s.heir = 9, "p1"
	c.st.peers["p1"] = &peer{heard: now, since: now.Add(-time.Minute), acked: 9}
	c.st.peers["p2"] = &peer{heard: now, since: now.Add(-defaultPeerTimeout / 2), acked: 9} // came back just now
	assert.Equal(t, "p1", c.nameHeir(now), "moved to a node heard for only half a PeerTimeout")
	c.st.peers["p2"].since = now.Add(-defaultPeerTimeout)
	assert.Equal(t, "p2", c.nameHeir(now), "kept its heir after a better node was heard for a PeerTimeout")
}

// TestLateAckNeverActivates: a quorum's acks that the loop handles late
// (it was starved, or the inbox was long) must be judged at the time they
// are handled. Received in time but handled a second later, after the
// lease they would have granted ended, they must not start the leader.
func TestLateAckNeverActivates(t *testing.T) {
	c := offlineCore(t, Config{ID: "boss", ClusterSize: 3})
	at := time.Now()
	c.st.peers["f1"] = &peer{heard: at}
	c.begin(at)
	c.st.term = 4
	c.becomeLeader(at) // sends heartbeat 1 at at
	require.Equal(t, Leader, c.st.role)
	late := at.Add(time.Second) // LeaseTimeout is 300ms
	echo := message{Type: msgHeartbeat, Flags: flagLeader, Term: 4, Seq: 1, Inc: c.inc, From: "boss"}
	ack := message{Type: msgHeartbeat, Term: 4, Seq: 1, Inc: 7, From: "f1", To: "boss"}
	var started bool
	for _, m := range []*message{&echo, &ack} {
		for _, o := range c.receive(late, m) {
			started = started || o.kind == outStartLeading
		}
	}
	assert.False(t, started, "OnStartedLeading started %v after its lease ended", late.Sub(at.Add(defaultLeaseTimeout)))
	assert.False(t, c.st.activeAt(late), "active after its lease ended")
}

// TestJustStartedNodeNeverAcks: an ack promises, as a vote does, to grant
// no other vote for a PeerTimeout. A process in its first listening may be
// a restart of a node that voted in a newer term with the same ID, so it
// follows the leader it hears but acks nothing until that listening ends.
func TestJustStartedNodeNeverAcks(t *testing.T) {
	c := offlineCore(t, Config{ID: "c", ClusterSize: 3})
	at := time.Now()
	c.subscribed(at) // its first subscription: it listens until at+PeerTimeout
	hb := message{Type: msgHeartbeat, Flags: flagLeader, Term: 5, Inc: 9, From: "a"}
	acks := func(now time.Time) (n int) {
		hb.Seq++
		for _, o := range c.receive(now, &hb) {
			if o.kind == outPublish && o.msg.Type == msgHeartbeat && o.msg.To == "a" {
				n++
			}
		}
		return n
	}
	assert.Zero(t, acks(at.Add(defaultHeartbeatInterval)), "acked while it first listened")
	assert.Equal(t, "a", c.st.leader, "it still follows the leader it hears")
	assert.Equal(t, 1, acks(at.Add(defaultPeerTimeout)), "no ack once the listening ended")
}

// TestDynamicCandidateCountsRedisSubscribers: in dynamic mode a candidate
// that hears nobody (a deaf link, peers that only ack their leader) must not
// make a majority of itself alone while Redis says others are subscribed to
// the group's channel: their count is a floor of the group's size.
func TestDynamicCandidateCountsRedisSubscribers(t *testing.T) {
	c := offlineCore(t, Config{ID: "me"}) // dynamic mode
	at := time.Now()
	c.begin(at)
	c.campaign(at, false)
	var round uint64
	for _, o := range c.out {
		if o.kind == outNumSub && o.id == "" {
			round = o.round
		}
	}
	require.NotZero(t, round, "a dynamic-mode candidate did not ask Redis for the group's subscribers")
	require.Equal(t, Candidate, c.st.role, "won alone before Redis counted the group")
	c.numSubAnswer(at.Add(time.Millisecond), "", round, 3, nil)
	assert.Equal(t, Candidate, c.st.role, "a majority of itself alone while Redis counts 3 subscribers")
	assert.True(t, c.st.preVote, "left the pre-vote with 1 grant of 3")
}

// TestHandoverKeepsTheWaitForAnOldLease: a leader elected on the crash
// fast path waits out what the old leader's lease could still hold before
// it acts. If it hands over inside that wait, its successor must wait too:
// the handover says the resigning leader holds no lease, not that nobody
// does (the old leader may only be paused).
func TestHandoverKeepsTheWaitForAnOldLease(t *testing.T) {
	c := offlineCore(t, Config{ID: "b", ClusterSize: 3})
	at := time.Now()
	// b follows a, then is named successor by a leader (x) that was elected
	// 100ms after a's last heartbeat and still waits out a's lease.
	c.receive(at, &message{Type: msgHeartbeat, Flags: flagLeader, Term: 5, Seq: 1, Inc: 9, From: "a"})
	x := offlineCore(t, Config{ID: "x", ClusterSize: 3})
	won := at.Add(100 * time.Millisecond)
	x.begin(won)
	x.st.term = 5
	x.st.heardLead = at
	x.st.peers["b"] = &peer{heard: won}
	x.campaign(won, false)
	x.st.grants = map[string]time.Time{"x": at, "b": at} // both heard a 100ms before
	x.st.preVote, x.st.waitTerm = false, false
	x.st.term = 6
	x.checkVotes(won)
	require.Equal(t, Leader, x.st.role)
	require.True(t, x.st.notBefore.After(won), "x does not wait out a's lease")
	var resign *message
	out, wait, err := x.handover(won.Add(time.Millisecond), "b", false)
	require.NoError(t, err)
	require.True(t, wait)
	for _, o := range out {
		if o.kind == outPublish && o.msg.Type == msgResign {
			resign = &o.msg
		}
	}
	require.NotNil(t, resign, "x published no resign")
	// b follows x in term 6, then gets the handover and campaigns at once.
	now := won.Add(2 * time.Millisecond)
	c.receive(now, &message{Type: msgHeartbeat, Flags: flagLeader, Term: 6, Seq: 1, Inc: 8, From: "x"})
	c.receive(now, resign)
	require.Equal(t, Candidate, c.st.role)
	c.termAnswer(now, c.st.round, 7, nil)
	c.receive(now, &message{Type: msgVote, Term: 7, Seq: 7, Inc: 7, From: "z", To: "b", Flags: flagGranted, Ago: neverHeard})
	require.Equal(t, Leader, c.st.role)
	aLeaseEnd := at.Add(defaultLeaseTimeout)
	assert.False(t, c.st.notBefore.Before(aLeaseEnd), "b may act at %v, before a's lease can have ended (%v)", c.st.notBefore.Sub(at), defaultLeaseTimeout)
}

// offlineElector builds an Elector whose core the test drives without
// Redis: subscribed, its own messages echoing, done listening.
func offlineElector(tb testing.TB, cfg Config) *Elector {
	tb.Helper()
	e, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	e.c.st.subscribed, e.c.st.selfEcho, e.c.st.joinUntil = true, now, now.Add(-time.Second)
	return e
}

// offlineCore is the core of an offlineElector.
func offlineCore(tb testing.TB, cfg Config) *core { return &offlineElector(tb, cfg).c }

func seedMessages() []message {
	return []message{
		{Type: msgHeartbeat, Flags: flagLeader, Term: 7, Seq: 42, Inc: 1, From: "a"},
		{Type: msgHeartbeat, Flags: flagLeader, Term: 7, Seq: 43, Live: 5, Inc: 1, From: "a", To: "b"}, // names an heir
		{Type: msgHeartbeat, Term: 7, Seq: 42, Inc: 2, From: "b", To: "a"},
		{Type: msgPreVote, Term: 8, Inc: 2, From: "b", To: "a", Flags: flagLeaderGone},
		{Type: msgPreVoteReply, Term: 8, Seq: 7, Inc: 3, From: "c", To: "b", Flags: flagGranted},
		{Type: msgVoteRequest, Term: 8, Inc: 2, From: "b"},
		{Type: msgVote, Term: 8, Seq: 8, Ago: 1234, Inc: 3, From: "c", To: "b", Flags: flagGranted},
		{Type: msgResign, Term: 8, Inc: 2, From: "b", To: "c"},
	}
}

// FuzzMessage feeds arbitrary bytes to the decoder, and what decodes to the
// state machine of a follower and of a leader: nothing may panic, and what
// decodes must encode back to the same bytes.
func FuzzMessage(f *testing.F) {
	secret, old := []byte("fuzz-secret"), []byte("fuzz-old-secret")
	const channel = "leader:{fuzz}"
	for i, m := range seedMessages() {
		m.Stamp = uint64(i + 1)
		f.Add(appendMessage(nil, channel, &m, nil))
		f.Add(appendMessage(nil, channel, &m, newSigner(&Config{Secret: secret})))
		f.Add(appendMessage(nil, channel, &m, newSigner(&Config{Secret: secret, PreviousSecret: old})))
		f.Add(appendMessage(nil, channel, &m, newSigner(&Config{Secret: old})))
	}
	f.Add([]byte{})
	f.Add([]byte{wireMagic, wireVersion, 0xff, 0})
	// Findings of earlier fuzzing, kept as regression cases here rather than
	// under testdata/, so the top level stays the library file and its test.
	f.Add([]byte("\xa7\x02\x05A00\xd2\x00000000000\x010\x010")) // non-shortest uvarint, unknown flag

	follower := offlineCore(f, Config{ID: "me"})
	leader := offlineCore(f, Config{ID: "boss"})
	now := time.Now()
	leader.begin(now)
	leader.st.term = 7
	leader.becomeLeader(now)
	// One reader per key set, kept across inputs as a subscriber keeps its
	// own, so the freshness check sees sequences of messages too.
	readers := []struct {
		rd  *reader
		key []byte
	}{
		{newReader(nil, time.Second), nil},
		{newReader(newSigner(&Config{Secret: secret}), time.Second), secret},
		{newReader(newSigner(&Config{Secret: old}), time.Second), old},
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, r := range readers {
			var m message
			if err := r.rd.decode(channel, b, &m); err != nil {
				continue
			}
			// What decodes encodes back to the same bytes, up to the
			// signatures (of two, a node checks the one it has the key of).
			var sg *signer
			switch {
			case m.Flags&flagTwoMACs != 0:
				sg = newSigner(&Config{Secret: secret, PreviousSecret: old})
			case r.key != nil:
				sg = newSigner(&Config{Secret: r.key})
			}
			got := appendMessage(nil, channel, &m, sg)
			body := len(b)
			if sg != nil {
				body -= len(sg.keys) * macSize
			}
			if len(got) != len(b) || !bytes.Equal(got[:body], b[:body]) || (sg != nil && len(sg.keys) == 1 && !bytes.Equal(got, b)) {
				t.Fatalf("round trip: got %x; want %x", got, b)
			}
			if !r.rd.fresh(&m, time.Duration(len(b))*time.Millisecond) {
				continue
			}
			for _, c := range []*core{follower, leader} {
				now := time.Now()
				c.receive(now, &m)
			}
		}
	})
}

// BenchmarkFollowerHeartbeat is one leader heartbeat received by a follower:
// decode, handle, and the ack it publishes.
func BenchmarkFollowerHeartbeat(b *testing.B) {
	c := offlineCore(b, Config{ID: "me"})
	m := message{Type: msgHeartbeat, Flags: flagLeader, Term: 1, Inc: 9, From: "boss"}
	var buf []byte
	rd := newReader(nil, time.Hour)
	const channel = "leader:{bench}"
	b.ReportAllocs()
	for b.Loop() {
		m.Seq++
		m.Stamp++
		buf = appendMessage(buf[:0], channel, &m, nil)
		var got message
		if err := rd.decode(channel, buf, &got); err != nil {
			b.Fatal(err)
		}
		if !rd.fresh(&got, time.Duration(m.Stamp)*time.Microsecond) {
			b.Fatal("a new message taken for a repeat")
		}
		now := time.Now()
		for _, o := range c.receive(now, &got) {
			if o.kind == outPublish {
				buf = appendMessage(buf[:0], o.channel, &o.msg, nil) // the ack, as the shell encodes it
			}
		}
	}
}

// BenchmarkLeaderRound is one heartbeat round of a leader with 4 followers:
// send, then four acks that renew the lease.
func BenchmarkLeaderRound(b *testing.B) {
	c := offlineCore(b, Config{ID: "boss"})
	followers := []string{"f1", "f2", "f3", "f4"}
	now := time.Now()
	for _, id := range followers {
		c.st.peers[id] = &peer{heard: now}
	}
	c.begin(now)
	c.st.term = 1
	c.becomeLeader(now)
	b.ReportAllocs()
	for b.Loop() {
		now := time.Now()
		c.begin(now)
		c.sendHeartbeat(now)
		seq := c.st.seq
		c.ack("", nil, seq, now)
		for _, id := range followers {
			m := message{Type: msgHeartbeat, Term: 1, Seq: seq, Inc: 5, From: id, To: "boss"}
			c.receive(now, &m)
		}
	}
}

// ---------------------------------------------------------------------------
// The simulator
// ---------------------------------------------------------------------------

// The simulator drives the real core (the same code an Elector steps) of
// every node through random schedules, deterministically: one seeded PRNG
// decides delivery delays, faults and the nodes' own random delays, and the
// clock is simulated, so a failing schedule is a seed that replays exactly.
// Around the cores it emulates what the shell and Redis do: a subscriber
// and a publisher connection per node, each with its own ordered delivery,
// read timeouts, pings and capped redial backoff; Redis's pub/sub (at most
// once: what a dead connection had in flight is gone), its output-buffer
// limit for slow subscribers, PUBSUB NUMSUB, the term script, and restarts
// with or without its data.
//
// Each schedule draws its own mix of faults (swarm testing), so rare
// combinations get tried: crashes; restarts with the same ID at any moment;
// pauses of any length (SIGSTOP); a starved loop (the state machine's
// goroutine runs late while the Redis goroutines do not); connections that
// drop, stall, or are cut one way; clock rates that differ within the
// margin New allows; a term script that fails (OOM, NOPERM, MOVED, a
// timeout); Redis restarts; Resign, TransferTo and graceful stops.
//
// After every step it checks that (a) no two nodes are active at one
// instant (IsLeader true, or the leader callback's context not yet
// cancelled; a frozen process acts on nothing), (b) each term has one
// leader, (c) a node's term and the fencing tokens handed out never go back
// (across restarts, unless Redis lost its data while no running node
// remembered the newest term), and, once every fault has healed and a
// quorum is connected, (d) a leader is active within PeerTimeout +
// 4*ElectionJitter + 1s. When a node wins a term it also checks that (e)
// its voters include a voter of every older leadership whose lease still
// runs: two disjoint quorums are an overlap waiting for a pause.

var (
	simSeed  = flag.Uint64("sim.seed", 0, "simulator: replay this one schedule and print its trace")
	simRuns  = flag.Int("sim.n", 0, "simulator: schedules to run (0: the bounded default of make test)")
	simTime  = flag.Duration("sim.time", 0, "simulator: stop starting schedules after this long (0: the default)")
	simBase  = flag.Uint64("sim.base", 0, "simulator: seed of the first schedule (0: a fresh one, printed)")
	simTrace = flag.Bool("sim.trace", false, "simulator: print the trace of -sim.seed even if it passes")
	simLarge = flag.Int("sim.large", 0, "simulator: TestSimLargeGroup's group size (0: skip it)")
)

// simRegressions are schedules that once broke a rule. They run first,
// every time.
var simRegressions = []uint64{
	// Found on the core as it was, before the fixes named; the schedules
	// have shifted since (a seed replays exactly only on the code it ran
	// on), and they stay here as varied cases.
	1283, 1389, 1404, 1426, 1639, 1684, 1701, 1776, 1790, 1797, 1820, 1960, 1966, 1994, 2000, 2171, 2377, 2386, // gone with the lease timer; 1389, traced: a starved loop's live context
	2949, 3844, 4338, 5372, 5687, // a failed term script fell back to local term + 1
	11360,                            // dynamic mode: a node that heard nobody for a while won alone
	537552,                           // a handover inside the wait for an old lease freed the successor from it
	104713282734575, 104713282731364, // a priority handover that could not take, retried every term
	// The simulator's own mistakes, once fixed, as schedules that exercised them.
	1957, 2477, 4267, 7024, 8272, 17083, 17893, 19419, 547124, 578733,
	201910788692431, // dynamic mode: a token handed out just after Redis lost the key, then every node restarted
	92364275423536,  // hellos answered less than a millisecond apart overflowed slow subscribers, again and again
}

// simDefaultRuns and simDefaultTime bound the share of make test (under
// -race): this many schedules, in at most this long. The cap guards
// against a simulator that got several times slower (20,000 take about
// 70 s on an idle 2-core machine, and up to 2 minutes beside other work),
// not against a busy machine.
const (
	simDefaultRuns = 20000
	simDefaultTime = 5 * time.Minute
)

// TestSim runs the regression schedules and then a bounded number of fresh
// ones, on every core of the machine. A failure prints the seed and the
// trace of the steps that led to it; -sim.seed replays one.
func TestSim(t *testing.T) {
	if *simSeed != 0 {
		res := runSim(*simSeed, true)
		if res.fail != "" || *simTrace {
			t.Logf("trace of seed %d:\n%s", *simSeed, res.trace)
		}
		if res.fail != "" {
			t.Fatalf("seed %d: %s", *simSeed, res.fail)
		}
		t.Logf("seed %d: %s", *simSeed, res.summary)
		return
	}
	runs, budget := simDefaultRuns, simDefaultTime
	if *simRuns > 0 {
		runs = *simRuns
	}
	if *simTime > 0 {
		budget = *simTime
	}
	if testing.Short() {
		runs = min(runs, 2000)
	}
	base := *simBase
	if base == 0 {
		base = mrand.Uint64()>>16 | 1
	}
	seeds := make(chan uint64)
	results := make(chan simResult)
	start := time.Now()
	go func() {
		defer close(seeds)
		for _, s := range simRegressions {
			seeds <- s
		}
		for i := range runs {
			if time.Since(start) > budget {
				return
			}
			seeds <- base + uint64(i)
		}
	}()
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for s := range seeds {
				results <- runSim(s, false)
			}
		})
	}
	go func() { wg.Wait(); close(results) }()
	var n, failed int
	var simulated time.Duration
	var first *simResult
	for res := range results {
		n++
		simulated += res.nodeTime
		if res.fail != "" {
			failed++
			if first == nil {
				first = &res
			}
			if failed <= 20 {
				t.Errorf("seed %d: %s (replay: go test -run '^TestSim$' -sim.seed %d -v .)", res.seed, res.fail, res.seed)
			}
		}
	}
	wall := time.Since(start)
	t.Logf("simulator: %d schedules (base seed %d) in %v, %.0f simulated node-seconds per wall second, %d violations",
		n, base, wall.Round(time.Millisecond), simulated.Seconds()/wall.Seconds(), failed)
	if first != nil {
		t.Logf("trace of seed %d:\n%s", first.seed, runSim(first.seed, true).trace)
	}
	if n < min(runs, simDefaultRuns) && *simTime == 0 && !testing.Short() {
		t.Errorf("only %d schedules within %v: the simulator got slower than its budget", n, budget)
	}
}

// simResult is the outcome of one schedule.
type simResult struct {
	seed     uint64
	fail     string        // the first violation; "" if none
	nodeTime time.Duration // simulated time summed over nodes
	trace    string        // with tracing only
	summary  string
}

// simEvent is something that happens at a simulated instant; seq keeps
// events of one instant in the order they were scheduled.
type simEvent struct {
	at  time.Duration
	seq uint64
	fn  func()
}

// simHeap is a binary min-heap of events.
type simHeap []simEvent

func (h *simHeap) push(ev simEvent) {
	*h = append(*h, ev)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q[i].before(q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *simHeap) pop() simEvent {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = simEvent{}
	q = q[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(q) && q[l].before(q[m]) {
			m = l
		}
		if r < len(q) && q[r].before(q[m]) {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

func (a simEvent) before(b simEvent) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

// simParams is one schedule's world: its group, timings and fault mix.
type simParams struct {
	n          int
	strict     bool
	cfg        Config
	rateSpread float64       // clock rates are 1 ± up to this
	latency    time.Duration // one-way base latency of a link
	jitter     time.Duration
	faultFor   time.Duration // faults are injected in [0, faultFor)
	faultEvery time.Duration // mean time between faults
	weights    [simFaultKinds]float64
	outBuf     int     // Redis's output-buffer limit, in messages
	evalFail   float64 // chance a term script fails while term faults are on
	prios      []int   // Config.Priority of each slot; nil: all 0
}

// The kinds of faults.
const (
	fCrash = iota
	fPause
	fStarve
	fCut
	fDrop
	fStall
	fRedisRestart
	fTermFault
	fResign
	fTransfer
	fStop
	fSlowLink
	fReplay
	simFaultKinds
)

var simFaultNames = [simFaultKinds]string{"crash", "pause", "starve", "cut", "drop", "stall", "redis-restart", "term-fault", "resign", "transfer", "stop", "slow-link", "replay"}

// simCaptured is how many published messages the replay fault keeps.
const simCaptured = 512

type sim struct {
	seed  uint64
	rnd   *mrand.Rand
	p     simParams
	now   time.Duration
	seq   uint64
	queue simHeap
	nodes []*simNode
	redis simRedis
	ids   int // new IDs handed out

	tracing bool
	trace   []string

	fail       string
	leaders    map[uint64]string   // term → the leadership that won it
	voters     map[uint64][]string // term → the IDs whose grants won it
	maxToken   uint64              // the newest fencing token handed out
	maxWon     uint64              // the newest term won
	healed     time.Duration       // when the last fault ended; 0 while faults go on
	quorumAt   time.Duration       // after healed: when a quorum was first subscribed
	livenessOK bool
	termFault  bool // term scripts fail now
	termErr    string

	// The replay fault: copies of published messages delivered again, as
	// to a node whose reader forgot their senders (it restarted, or
	// forgot them among thousands of others). The core must stay safe.
	captured    []simJob // ring of published messages
	capturedAt  int
	replayUntil time.Duration

	delivered uint64 // messages delivered to subscribers (TestSimLargeGroup)
}

// simRedis is the simulated Redis server.
type simRedis struct {
	up      bool
	termKey int64
	subs    map[string][]*simConn // channel → subscribed connections
}

// simConn is one connection of a node to Redis.
type simConn struct {
	n        *simNode
	pub      bool // the publisher's, else the subscriber's
	open     bool // the node has not closed it
	atRedis  bool // Redis has it (its subscriptions count)
	lastUp   time.Duration
	lastDown time.Duration
	inFlight int // messages Redis sent that the node has not read
	// subscriber
	confirmed int
	lastData  time.Time // node-local time the last bytes arrived
	// publisher
	pending  []simJob // written, reply not yet read
	waiting  []simJob // queued while dialling
	dialing  bool
	watching bool      // a reply timeout is scheduled
	stuck    bool      // no more replies come on this connection
	since    time.Time // node-local: when the reader began waiting for pending[0]
}

// simJob is a publisher job: the output it came from (a message, the term
// script or NUMSUB), numbered to check that replies come in order.
type simJob struct {
	output
	seq   uint64
	names []string // outWho: Redis's answer
}

// simNode is one process slot: an Elector's core and the emulated shell.
type simNode struct {
	s      *sim
	slot   int
	id     string
	inc    uint64
	gen    int // incarnation; events of an older one are ignored
	c      *core
	rate   float64
	origin time.Time // the local clock reads origin + rate * simulated time

	alive        bool
	pausedUntil  time.Duration
	starvedUntil time.Duration
	inbox        []func(now time.Time) []output // waiting for the loop
	draining     bool                           // the loop works through its inbox after a freeze
	sock         []func()                       // arrived while the process was frozen
	timerGen     int
	timerAt      time.Duration // when the loop's timer fires; -1 when it has

	sub, pub   *simConn
	subBackoff simBackoff
	pubBackoff simBackoff
	cut        [2][2]bool // [pub][down]: a one-way blackhole on that path
	stallUntil [2]time.Duration
	slow       time.Duration // extra latency of this node's links

	who           string // id#incarnation, for the checks
	pubOK, recvAt time.Time
	cbRunning     bool   // the leader callback has not returned
	lead          int    // numbers leaderships, for the lease timer
	wonTerm       uint64 // the term this node leads, as the checks last saw it
	ctxLive       bool   // the leader callback's context is not cancelled
	lastTerm      uint64
}

// simBackoff mirrors the shell's capped exponential backoff.
type simBackoff struct {
	delay time.Duration
	next  time.Time
}

func (b *simBackoff) failed(now time.Time, rnd *mrand.Rand, cfg *Config) {
	b.delay = min(max(2*b.delay, 50*time.Millisecond), backoffCap(cfg.HeartbeatInterval))
	b.next = now.Add(b.delay/2 + time.Duration(rnd.Int64N(int64(b.delay/2)+1)))
}

func (b *simBackoff) reset() { b.delay, b.next = 0, time.Time{} }

// runSim runs the schedule of seed.
func runSim(seed uint64, tracing bool) (res simResult) {
	s := &sim{seed: seed, rnd: mrand.New(mrand.NewPCG(seed, 0x5eed)), tracing: tracing, leaders: map[uint64]string{}, voters: map[uint64][]string{}}
	s.redis = simRedis{up: true, subs: map[string][]*simConn{}}
	s.p = s.drawParams()
	res.seed = seed
	defer func() {
		res.fail = s.fail
		res.trace = strings.Join(s.trace, "\n")
		res.nodeTime = s.now * time.Duration(s.p.n)
		res.summary = fmt.Sprintf("%d nodes, strict %v, %v simulated, max term %d", s.p.n, s.p.strict, s.now, s.maxWon)
	}()
	s.tracef("params: %+v", s.p)
	for i := range s.p.n {
		n := &simNode{s: s, slot: i, rate: 1 + s.p.rateSpread*(2*s.rnd.Float64()-1),
			origin: time.Unix(int64(1e9+s.rnd.IntN(1e6)), 0)}
		n.id = fmt.Sprintf("n%d", i)
		s.nodes = append(s.nodes, n)
		s.at(time.Duration(s.rnd.Int64N(int64(s.p.cfg.PeerTimeout))), n.start)
	}
	// Faults, then a heal of everything.
	for t := s.exp(s.p.faultEvery); t < s.p.faultFor; t += s.exp(s.p.faultEvery) {
		s.at(t, s.injectFault)
	}
	s.at(s.p.faultFor, s.healAll)
	bound := s.p.cfg.PeerTimeout + 4*s.p.cfg.ElectionJitter + time.Second
	end := s.p.faultFor + 30*time.Second // a hard stop; liveness ends it sooner
	for steps := 0; len(s.queue) > 0 && s.fail == ""; steps++ {
		if steps > 20_000_000 {
			s.violation("runaway schedule: %d events by %v", steps, s.now)
			break
		}
		ev := s.queue.pop()
		if ev.at > end {
			break
		}
		s.now = ev.at
		ev.fn()
		if s.fail != "" {
			break
		}
		if s.healed > 0 {
			if s.quorumAt == 0 && s.subscribedCount() >= s.quorumSize() {
				s.quorumAt = s.now
			}
			if s.quorumAt > 0 {
				if s.anyActive() {
					s.livenessOK = true
					break
				}
				if s.now > s.quorumAt+bound {
					s.violation("no leader %v after every fault healed and a quorum connected (bound %v)", s.now-s.quorumAt, bound)
				}
			}
		}
	}
	if s.fail == "" && !s.livenessOK {
		s.violation("no leader by the end of the schedule")
	}
	return res
}

// drawParams draws the schedule's world.
func (s *sim) drawParams() simParams {
	r := s.rnd
	p := simParams{n: 3 + r.IntN(7)}
	if r.IntN(1000) == 0 {
		p.n = 65
	}
	p.strict = r.IntN(2) == 0
	cfg := Config{Group: "g"}
	switch r.IntN(4) {
	case 0: // the test suite's timings
		cfg.HeartbeatInterval, cfg.LeaseTimeout, cfg.PeerTimeout, cfg.ElectionJitter = testHeartbeat, testLease, testPeer, testJitter
	case 1: // a lease as long as New allows
		cfg.LeaseTimeout = 450 * time.Millisecond
	}
	cfg = cfg.withDefaults()
	if p.strict {
		cfg.ClusterSize = p.n
	}
	p.cfg = cfg
	p.rateSpread = []float64{0, 0.005, 0.02, 0.04}[r.IntN(4)]
	p.latency = time.Duration(50+r.IntN(2000)) * time.Microsecond
	p.jitter = time.Duration(r.IntN(3000)) * time.Microsecond
	p.faultFor = time.Duration(1000+r.IntN(1500)) * time.Millisecond
	p.faultEvery = time.Duration(50+r.IntN(600)) * time.Millisecond
	if p.n > 9 {
		p.faultFor, p.faultEvery = 2*time.Second, 300*time.Millisecond
	}
	for k := range fReplay { // the kinds older than replay, as they were drawn before it
		if r.IntN(3) > 0 {
			p.weights[k] = r.Float64()
		}
	}
	p.outBuf = 30 + r.IntN(500)
	if p.n > 9 {
		p.outBuf *= 20
	}
	p.evalFail = r.Float64()
	// Faults added later draw from a stream of their own, so that the
	// parameters of every seed stay what they were.
	late := mrand.New(mrand.NewPCG(s.seed, 0x5e91a7))
	if late.IntN(3) > 0 {
		p.weights[fReplay] = late.Float64()
	}
	if late.IntN(3) == 0 {
		// Preferred leaders: handovers to the node of the highest
		// Priority, once it has been heard long enough, faults or not.
		p.prios = make([]int, p.n)
		for i := range p.prios {
			p.prios[i] = late.IntN(3)
		}
		p.cfg.PriorityAfter = time.Duration(1+late.IntN(3)) * p.cfg.PeerTimeout
	}
	return p
}

// exp is an exponential delay with the given mean.
func (s *sim) exp(mean time.Duration) time.Duration {
	return time.Duration(s.rnd.ExpFloat64() * float64(mean))
}

// at schedules fn at simulated time t (never in the past).
func (s *sim) at(t time.Duration, fn func()) {
	s.seq++
	s.queue.push(simEvent{at: max(t, s.now), seq: s.seq, fn: fn})
}

func (s *sim) after(d time.Duration, fn func()) { s.at(s.now+d, fn) }

func (s *sim) tracef(format string, args ...any) {
	if s.tracing {
		s.trace = append(s.trace, fmt.Sprintf("%10.3fms ", float64(s.now)/1e6)+fmt.Sprintf(format, args...))
	}
}

func (s *sim) violation(format string, args ...any) {
	if s.fail == "" {
		s.fail = fmt.Sprintf("at %v: ", s.now) + fmt.Sprintf(format, args...)
		s.tracef("VIOLATION: %s", s.fail)
	}
}

func (s *sim) quorumSize() int { return s.p.n/2 + 1 }

func (s *sim) subscribedCount() int {
	k := 0
	for _, n := range s.nodes {
		if n.alive && n.sub != nil && n.sub.open && n.sub.confirmed >= 2 {
			k++
		}
	}
	return k
}

// ---- faults ----

func (s *sim) injectFault() {
	total := 0.0
	for _, w := range s.p.weights {
		total += w
	}
	if total == 0 {
		return
	}
	x := s.rnd.Float64() * total
	kind := 0
	for kind = range s.p.weights {
		x -= s.p.weights[kind]
		if x < 0 {
			break
		}
	}
	n := s.nodes[s.rnd.IntN(len(s.nodes))]
	if s.rnd.IntN(2) == 0 {
		// Faults that hit the leader matter most.
		for _, m := range s.nodes {
			if m.alive && m.c.st.role == Leader {
				n = m
			}
		}
	}
	pt := s.p.cfg.PeerTimeout
	d := time.Duration(s.rnd.Int64N(int64(3 * pt)))
	if s.rnd.IntN(8) == 0 {
		d = time.Duration(s.rnd.Int64N(int64(10 * pt)))
	}
	s.tracef("fault %s on %s for %v", simFaultNames[kind], n.id, d)
	switch kind {
	case fCrash:
		if !n.alive {
			return
		}
		n.crash()
		// Restart with the same ID (a pod, a fixed ID), or as a new one,
		// at any moment.
		same := s.rnd.IntN(4) > 0
		s.after(time.Duration(s.rnd.Int64N(int64(2*pt))), func() {
			if n.alive {
				return
			}
			if !same {
				s.ids++
				n.id = fmt.Sprintf("n%d.%d", n.slot, s.ids)
			}
			n.start()
		})
	case fPause:
		if n.alive {
			n.pausedUntil = max(n.pausedUntil, s.now+d)
			g := n.gen
			s.at(n.pausedUntil, func() { n.resume(g) })
		}
	case fStarve:
		if n.alive {
			n.starvedUntil = max(n.starvedUntil, s.now+d/3)
			g := n.gen
			s.at(n.starvedUntil, func() { n.resume(g) })
		}
	case fCut:
		pub, down := s.rnd.IntN(2), s.rnd.IntN(2)
		n.cut[pub][down] = true
		if s.rnd.IntN(3) == 0 { // both ways
			n.cut[pub][1-down] = true
		}
		s.after(d, func() {
			if n.cut[pub] != [2]bool{} {
				n.cut[pub] = [2]bool{}
				n.healCut(pub == 1)
			}
		})
	case fDrop:
		if s.rnd.IntN(2) == 0 {
			n.closeConn(n.sub, "dropped")
		} else {
			n.closeConn(n.pub, "dropped")
		}
	case fStall:
		k := s.rnd.IntN(2)
		n.stallUntil[k] = max(n.stallUntil[k], s.now+d/2)
	case fSlowLink:
		n.slow = time.Duration(s.rnd.Int64N(int64(pt / 4)))
		s.after(d, func() { n.slow = 0 })
	case fReplay:
		if s.replayUntil <= s.now {
			s.replayUntil = s.now + d
			s.after(0, s.replay)
		}
		s.replayUntil = max(s.replayUntil, s.now+d)
	case fRedisRestart:
		if !s.redis.up {
			return
		}
		keep := s.rnd.IntN(2) == 0
		s.redisDown(keep)
		s.after(d/2, func() { s.redis.up = true; s.tracef("redis up") })
	case fTermFault:
		s.termFault = true
		s.termErr = []string{"OOM command not allowed when used memory > 'maxmemory'", "NOPERM this user has no permissions to run the 'eval' command", "MOVED 1234 127.0.0.1:7001", "timeout"}[s.rnd.IntN(4)]
		s.after(d, func() { s.termFault = false })
	case fResign, fTransfer, fStop:
		if !n.alive || n.frozen() {
			return
		}
		to := ""
		if kind == fTransfer {
			to = s.nodes[s.rnd.IntN(len(s.nodes))].id
		}
		n.input(func(now time.Time) []output {
			out, _, _ := n.c.handover(now, to, kind == fTransfer)
			return out
		})
		if kind == fStop {
			// Run's context ended: the handover, then the process exits.
			g := n.gen
			s.after(time.Duration(s.rnd.Int64N(int64(pt))), func() {
				if n.gen == g && n.alive {
					n.crash()
					s.after(time.Duration(s.rnd.Int64N(int64(pt))), func() {
						if !n.alive {
							n.start()
						}
					})
				}
			})
		}
	}
}

// replay delivers a copy of a random message published earlier to every
// connection now subscribed to its channel, every few milliseconds while
// the fault lasts.
func (s *sim) replay() {
	if s.now >= s.replayUntil || s.healed > 0 {
		return
	}
	if len(s.captured) > 0 {
		j := s.captured[s.rnd.IntN(len(s.captured))]
		s.tracef("replay on %s from %s %s", j.channel, j.msg.From, simMsg(&j.msg, ""))
		for _, c := range s.redis.subs[j.channel] {
			s.deliver(c, j.msg)
		}
	}
	s.after(time.Duration(1+s.rnd.IntN(10))*time.Millisecond, s.replay)
}

// healAll ends every fault: all processes run, links and Redis work.
func (s *sim) healAll() {
	s.tracef("heal all")
	s.termFault = false
	s.replayUntil = 0
	if !s.redis.up {
		s.redis.up = true
	}
	for _, n := range s.nodes {
		for pub := range n.cut {
			if n.cut[pub] != [2]bool{} {
				n.cut[pub] = [2]bool{}
				n.healCut(pub == 1)
			}
		}
		n.stallUntil = [2]time.Duration{}
		n.slow = 0
		if n.pausedUntil > s.now || n.starvedUntil > s.now {
			n.pausedUntil, n.starvedUntil = min(n.pausedUntil, s.now), min(n.starvedUntil, s.now)
			n.resume(n.gen)
		}
		if !n.alive {
			n.start()
		}
	}
	s.healed = s.now
}

// redisDown stops Redis: every connection closes; keep says whether the
// data (the term key) survives the restart.
func (s *sim) redisDown(keep bool) {
	s.tracef("redis down (keep data %v)", keep)
	s.redis.up = false
	if !keep {
		s.redis.termKey = 0
		if s.p.strict {
			s.forgetCheck()
		} else {
			// Dynamic mode's terms are unique through the term key alone:
			// without its data they may repeat (the README says so).
			s.forget("dynamic mode: the term key's data is lost")
		}
	}
	for _, n := range s.nodes {
		for _, c := range []*simConn{n.sub, n.pub} {
			if c != nil && c.atRedis {
				s.redisClose(c)
			}
		}
	}
}

// redisClose is Redis closing a connection: its subscriptions end, and the
// node sees the close a latency later (unless the way down is cut).
func (s *sim) redisClose(c *simConn) {
	s.unsubscribe(c)
	c.atRedis = false
	n := c.n
	if !n.cut[b2i(c.pub)][1] {
		g := n.gen
		s.after(n.latency(c.pub), func() {
			if n.gen == g && c.open {
				n.onData(c, func() { n.closeConn(c, "closed by redis") })
			}
		})
	}
}

func (s *sim) unsubscribe(c *simConn) {
	// A new slice, never an edit in place: a PUBLISH may be iterating the
	// old one.
	for _, ch := range []string{c.n.c.channel, c.n.c.selfChan} {
		list := s.redis.subs[ch]
		if i := slices.Index(list, c); i >= 0 {
			s.redis.subs[ch] = slices.Concat(list[:i], list[i+1:])
		}
	}
}

// forgetCheck resets the term checks when too little remembers the newest
// term won: terms only outlive restarts while Redis keeps its data. Without
// it (the key is behind), strict mode's majorities keep terms unique as
// long as a majority of running nodes knows the newest term; dynamic mode
// forgets at the loss itself (see redisDown), and again at a restart while
// the key is still behind: a leader elected before the loss can hand out
// its token after it (seed 201910788692431: term 2 won just before Redis
// lost its data and started just after; every node then restarted, and
// term 1 came again).
func (s *sim) forgetCheck() {
	newest := s.maxWon
	if !s.p.strict {
		newest = max(newest, s.maxToken)
	}
	if newest == 0 || s.redis.termKey >= int64(newest) {
		return
	}
	if !s.p.strict {
		s.forget(fmt.Sprintf("dynamic mode: the term key is behind term %d", newest))
		return
	}
	k := 0
	for _, n := range s.nodes {
		if n.alive && n.c.st.term >= s.maxWon {
			k++
		}
	}
	if k < s.quorumSize() {
		s.forget(fmt.Sprintf("the term key is behind term %d and %d running nodes know it", s.maxWon, k))
	}
}

// forget starts the term checks anew: what no one remembers cannot be
// kept unique.
func (s *sim) forget(why string) {
	s.tracef("term checks start anew: %s", why)
	s.leaders, s.voters = map[uint64]string{}, map[uint64][]string{}
	s.maxToken, s.maxWon = 0, 0
}

// ---- Redis ----

// exec runs a job at Redis and returns the reply for the node.
func (s *sim) exec(j *simJob) (n int64, err error) {
	switch j.kind {
	case outPublish:
		subs := s.redis.subs[j.channel]
		for _, c := range subs {
			s.deliver(c, j.msg)
		}
		if s.p.weights[fReplay] > 0 {
			if len(s.captured) < simCaptured {
				s.captured = append(s.captured, *j)
			} else {
				s.captured[s.capturedAt] = *j
				s.capturedAt = (s.capturedAt + 1) % simCaptured
			}
		}
		return int64(len(subs)), nil
	case outNumSub:
		return int64(len(s.redis.subs[j.channel])), nil
	case outWho:
		// PUBSUB CHANNELS: the channels with a subscriber whose names
		// begin with the prefix, in a fixed order (a map's would make
		// schedules irreproducible). The term faults (an ACL without
		// PUBSUB, say) fail it too.
		j.names = nil
		if s.termFault && s.termErr != "timeout" && s.rnd.Float64() < s.p.evalFail {
			return 0, redis.Error(s.termErr)
		}
		for ch, subs := range s.redis.subs {
			if len(subs) > 0 && strings.HasPrefix(ch, j.channel) {
				j.names = append(j.names, ch)
			}
		}
		slices.Sort(j.names)
		return int64(len(j.names)), nil
	case outTermKey:
		if s.termFault && s.rnd.Float64() < s.p.evalFail {
			if s.termErr == "timeout" {
				if s.rnd.IntN(2) == 0 {
					s.termScript(j.term)
				}
				return 0, errSimTimeout
			}
			return 0, redis.Error(s.termErr)
		}
		return s.termScript(j.term), nil
	}
	return 0, nil
}

var errSimTimeout = errors.New("i/o timeout")

func (s *sim) termScript(local uint64) int64 {
	t := s.redis.termKey + 1
	if want := int64(local) + 1; t < want {
		t = want
	}
	s.redis.termKey = t
	return t
}

// deliver sends a published message down a subscriber connection.
func (s *sim) deliver(c *simConn, m message) {
	n := c.n
	if c.inFlight >= s.p.outBuf {
		// The client reads too slowly: Redis's output-buffer limit.
		s.tracef("%s: output buffer limit, redis closes the subscriber", n.id)
		s.redisClose(c)
		return
	}
	c.inFlight++
	s.delivered++
	n.down(c, func() {
		c.inFlight--
		n.receive(m)
	}, func() { c.inFlight-- })
}

// ---- a node ----

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// local is the node's clock now.
func (n *simNode) local() time.Time { return n.localAt(n.s.now) }

func (n *simNode) localAt(t time.Duration) time.Time {
	return n.origin.Add(time.Duration(float64(t) * n.rate))
}

// real is the simulated instant at which the node's clock reads l.
func (n *simNode) real(l time.Time) time.Duration {
	return time.Duration(float64(l.Sub(n.origin))/n.rate) + 1
}

func (n *simNode) frozen() bool { return n.s.now < n.pausedUntil }

func (n *simNode) latency(pub bool) time.Duration {
	s := n.s
	d := s.p.latency + n.slow
	if s.p.jitter > 0 {
		d += time.Duration(s.rnd.Int64N(int64(s.p.jitter)))
	}
	if st := n.stallUntil[b2i(pub)]; st > s.now {
		d += st - s.now
	}
	return d
}

// start starts a new process in the slot: a new Elector, fresh state.
func (n *simNode) start() {
	s := n.s
	n.gen++
	cfg := s.p.cfg
	cfg.ID = n.id
	if s.p.prios != nil {
		cfg.Priority = s.p.prios[n.slot]
	}
	n.inc = s.rnd.Uint64() | 1
	n.c = &core{}
	n.c.init(cfg, n.inc, mrand.New(mrand.NewPCG(s.rnd.Uint64(), s.rnd.Uint64())))
	n.alive = true
	n.pausedUntil, n.starvedUntil = 0, 0
	n.inbox, n.sock, n.draining = nil, nil, false
	n.timerAt = -1 // the last incarnation's timer does not fire for this one
	n.sub, n.pub = nil, nil
	n.subBackoff, n.pubBackoff = simBackoff{}, simBackoff{}
	n.pubOK, n.recvAt = time.Time{}, time.Time{}
	n.cbRunning, n.ctxLive = false, false
	n.lastTerm, n.wonTerm = 0, 0
	n.who = fmt.Sprintf("%s#%d", n.id, n.gen)
	s.forgetCheck()
	s.tracef("%s: start (gen %d)", n.id, n.gen)
	n.dialSub()
	n.step(nil) // the loop's first tick
}

// crash kills the process: the kernel closes its sockets, and Redis drops
// its subscriptions a moment later.
func (n *simNode) crash() {
	s := n.s
	s.tracef("%s: crash", n.id)
	n.alive = false
	n.gen++
	n.ctxLive, n.cbRunning = false, false
	for _, c := range []*simConn{n.sub, n.pub} {
		if c != nil {
			c.open = false
			if c.atRedis {
				s.after(n.latency(c.pub), func() {
					s.unsubscribe(c)
					c.atRedis = false
				})
			}
		}
	}
	s.forgetCheck()
}

// healCut ends a one-way cut as a proxy does: by closing the connection on
// that path, so that no stream goes on with bytes missing from its middle
// (TCP never loses bytes and keeps going; a proxy that dropped them closes
// the connection when it heals).
func (n *simNode) healCut(pub bool) {
	s := n.s
	s.tracef("%s: cut healed", n.id)
	c := n.sub
	if pub {
		c = n.pub
	}
	if c != nil && c.open {
		if c.atRedis {
			s.unsubscribe(c)
			c.atRedis = false
		}
		n.onData(c, func() { n.closeConn(c, "cut healed") })
	}
}

// readSockets is the Redis goroutines of a process that was frozen running
// again: they read, in order, what arrived meanwhile.
func (n *simNode) readSockets() {
	s := n.s
	// A read whose deadline passed while the process was frozen may fail
	// before it returns the bytes that wait: that connection is lost.
	sock := n.sock
	n.sock = nil
	if c := n.sub; c != nil && c.open && n.local().Sub(c.lastData) >= s.p.cfg.PeerTimeout && s.rnd.IntN(2) == 0 {
		n.closeConn(c, "read deadline passed while frozen")
	}
	for _, f := range sock {
		f()
	}
}

// resume ends a pause or a starvation that has run its course.
func (n *simNode) resume(gen int) {
	s := n.s
	if n.gen != gen || !n.alive || n.frozen() {
		return
	}
	if s.now < n.starvedUntil {
		// A pause ended within a starvation: the Redis goroutines run
		// again, and read what waited in the sockets before anything that
		// arrives later (their inputs queue for the starved loop).
		n.readSockets()
		return
	}
	// The lease timer is overdue: it fires as the process runs again.
	if st := &n.c.st; n.ctxLive && !(st.active && st.activeAt(n.local())) {
		s.tracef("%s: lease timer cancels the leader context on resume", n.id)
		n.ctxLive = false
	}
	// What the Redis goroutines hand over now queues behind what waits in
	// the loop's inbox, as in the shell's one channel.
	n.draining = true
	n.readSockets()
	first := s.rnd.IntN(2) == 0
	if first {
		n.step(nil)
	}
	for len(n.inbox) > 0 && n.alive {
		f := n.inbox[0]
		n.inbox = n.inbox[1:]
		n.step(f)
	}
	n.inbox = nil
	n.draining = false
	if !first {
		n.step(nil)
	}
}

// input hands an input to the loop, which may be frozen or starved.
func (n *simNode) input(f func(now time.Time) []output) {
	if !n.alive {
		return
	}
	if n.frozen() || n.s.now < n.starvedUntil || n.draining {
		n.inbox = append(n.inbox, f)
		return
	}
	n.step(f)
}

// inputMessage is input for a message from the subscriber: the shell
// drops it when the loop's inbox is full, rather than block the reader.
func (n *simNode) inputMessage(f func(now time.Time) []output) {
	if len(n.inbox) >= inboxSize {
		return
	}
	n.input(f)
}

// step is one turn of the shell's loop: the input, then a tick, each
// applied, then the timer set for the next wake.
func (n *simNode) step(f func(now time.Time) []output) {
	s := n.s
	now := n.local()
	n.c.pubOK, n.c.recvAt = n.pubOK, n.recvAt
	if f != nil {
		n.apply(f(now))
	}
	out, next := n.c.tick(now)
	n.apply(out)
	// The shell resets its timer after every step; a timer already set for
	// the same instant is that timer, so it need not be scheduled again.
	if at := max(n.real(next), s.now+time.Microsecond); at != n.timerAt {
		n.timerGen++
		n.timerAt = at
		g, tg := n.gen, n.timerGen
		s.at(at, func() {
			if n.gen == g && n.timerGen == tg {
				n.timerAt = -1
				n.input(nil)
			}
		})
	}
	s.check(n)
}

// apply carries out a step's outputs, as the shell does; nothing here
// steps a core at once, so outputs never nest.
func (n *simNode) apply(out []output) {
	s := n.s
	for i := range out {
		o := &out[i]
		switch o.kind {
		case outPublish, outTermKey, outNumSub, outWho:
			j := simJob{output: *o}
			if s.tracing && o.kind == outPublish {
				s.tracef("%s: publish %s", n.id, simMsg(&o.msg, o.channel))
			}
			n.job(j)
		case outStartLeading:
			n.cbRunning, n.ctxLive = true, true
			n.lead++
			n.watchLease(o.at, n.lead)
			s.tracef("%s: OnStartedLeading term %d", n.id, o.term)
			if o.term < s.maxToken {
				s.violation("%s hands out fencing token %d after %d", n.id, o.term, s.maxToken)
			}
			s.maxToken = max(s.maxToken, o.term)
		case outStopLeading:
			n.ctxLive = false
			n.lead++
			s.tracef("%s: leader context cancelled", n.id)
			ret := time.Duration(s.rnd.Int64N(int64(2 * time.Millisecond)))
			if s.rnd.IntN(20) == 0 {
				ret = time.Duration(s.rnd.Int64N(int64(2 * s.p.cfg.PeerTimeout)))
			}
			g, round := n.gen, o.round
			s.after(ret, func() {
				if n.gen != g {
					return
				}
				n.cbRunning = false
				n.input(func(now time.Time) []output { return n.c.callbackDone(now) })
			})
			if round > 0 {
				s.after(min(ret, s.p.cfg.PeerTimeout), func() {
					if n.gen == g {
						n.input(func(now time.Time) []output { return n.c.leaderEnded(now, round) })
					}
				})
			}
		case outLog:
			if s.tracing {
				s.tracef("%s: log %s %s %v", n.id, o.level, o.text, o.attrs)
			}
		}
	}
}

func simMsg(m *message, ch string) string {
	return fmt.Sprintf("%s{term %d seq %d to %q flags %b ago %d live %d} on %s",
		[]string{"?", "heartbeat", "prevote", "prevote-reply", "vote-request", "vote", "resign"}[min(int(m.Type), 6)],
		m.Term, m.Seq, m.To, m.Flags, m.Ago, m.Live, ch)
}

// watchLease is the shell's lease timer: it runs on its own, even while
// the loop is starved, and cancels the callback's context once the core no
// longer holds a lease.
func (n *simNode) watchLease(until time.Time, lead int) {
	s := n.s
	g := n.gen
	s.at(max(n.real(until), s.now+time.Microsecond), func() {
		if n.gen != g || n.lead != lead || !n.ctxLive {
			return
		}
		if n.frozen() {
			n.watchLease(n.localAt(n.pausedUntil), lead)
			return
		}
		if st := &n.c.st; st.active && st.activeAt(n.local()) {
			n.watchLease(st.leaseEnd, lead)
			return
		}
		s.tracef("%s: lease timer cancels the leader context", n.id)
		n.ctxLive = false
	})
}

// receive is the subscriber goroutine reading a message: it stamps it and
// queues it for the loop.
func (n *simNode) receive(m message) {
	if n.s.tracing {
		n.s.tracef("%s: recv from %s %s", n.id, m.From, simMsg(&m, ""))
	}
	n.inputMessage(func(now time.Time) []output { return n.c.receive(now, &m) })
}

// down carries bytes from Redis to the node on c, in order; lost runs
// instead when they never arrive.
func (n *simNode) down(c *simConn, arrive, lost func()) {
	s := n.s
	if n.cut[b2i(c.pub)][1] {
		lost()
		return
	}
	at := max(s.now+n.latency(c.pub), c.lastDown)
	c.lastDown = at
	g := n.gen
	s.at(at, func() {
		if n.gen != g || !c.open {
			lost()
			return
		}
		n.onData(c, arrive)
	})
}

// onData is bytes arriving at the node's socket: read at once, or when the
// frozen process runs again.
func (n *simNode) onData(c *simConn, read func()) {
	f := func() {
		if !c.open {
			return
		}
		c.lastData = n.local()
		if !c.pub {
			n.recvAt = c.lastData
		}
		read()
	}
	if n.frozen() {
		n.sock = append(n.sock, f)
		return
	}
	f()
}

// up carries bytes from the node to Redis on c, in order.
func (n *simNode) up(c *simConn, arrive func()) {
	s := n.s
	if n.cut[b2i(c.pub)][0] {
		return
	}
	at := max(s.now+n.latency(c.pub), c.lastUp)
	c.lastUp = at
	s.at(at, func() {
		if s.redis.up && c.atRedis {
			arrive()
		}
	})
}

// dialSub opens the subscriber connection and subscribes to the group's
// channel and the node's own.
func (n *simNode) dialSub() {
	s := n.s
	if !n.alive {
		return
	}
	if n.frozen() {
		g := n.gen
		s.at(n.pausedUntil, func() {
			if n.gen == g {
				n.dialSub()
			}
		})
		return
	}
	g := n.gen
	c := &simConn{n: n, open: true, lastData: n.local()}
	n.sub = c
	s.after(n.latency(false), func() {
		if n.gen != g || !c.open {
			return
		}
		if !s.redis.up {
			n.closeConn(c, "connection refused")
			return
		}
		c.atRedis = true
		n.up(c, func() {
			for _, ch := range []string{n.c.channel, n.c.selfChan} {
				s.redis.subs[ch] = append(s.redis.subs[ch], c)
				n.down(c, func() {
					c.confirmed++
					if c.confirmed == 2 {
						s.tracef("%s: subscribed", n.id)
						n.input(func(now time.Time) []output { return n.c.subscribed(now) })
					}
				}, func() {})
			}
		})
	})
	n.watch(c, g)
}

// watch is the subscriber's read deadline and pinger: a PING when the
// connection was quiet for a heartbeat, and the connection is dead after
// PeerTimeout without any bytes.
func (n *simNode) watch(c *simConn, g int) {
	s := n.s
	s.at(n.real(n.local().Add(s.p.cfg.HeartbeatInterval)), func() {
		if n.gen != g || !c.open {
			return
		}
		if n.frozen() {
			n.watch(c, g)
			return
		}
		now := n.local()
		if now.Sub(c.lastData) >= s.p.cfg.PeerTimeout {
			n.closeConn(c, "read timeout")
			return
		}
		if c.confirmed >= 2 && now.Sub(n.recvAt) >= s.p.cfg.HeartbeatInterval {
			n.up(c, func() { n.down(c, func() {}, func() {}) }) // PING, PONG
		}
		n.watch(c, g)
	})
}

// closeConn is the node closing c (a read error, a timeout, EOF). The
// subscriber reports it and redials; the publisher fails what is pending.
func (n *simNode) closeConn(c *simConn, why string) {
	s := n.s
	if c == nil || !c.open {
		return
	}
	c.open = false
	if s.tracing {
		s.tracef("%s: %s connection closed: %s", n.id, map[bool]string{false: "subscriber", true: "publisher"}[c.pub], why)
	}
	if c.atRedis {
		s.after(n.latency(c.pub), func() {
			s.unsubscribe(c)
			c.atRedis = false
		})
	}
	if !c.pub {
		wasSubscribed := c.confirmed >= 2
		if wasSubscribed {
			n.subBackoff.reset()
			n.input(func(now time.Time) []output { return n.c.disconnected(now, errors.New(why)) })
		} else {
			n.subBackoff.failed(n.local(), s.rnd, &s.p.cfg)
		}
		g := n.gen
		s.at(n.real(n.subBackoff.next), func() {
			if n.gen == g {
				n.dialSub()
			}
		})
		return
	}
	for _, j := range append(c.pending, c.waiting...) {
		n.failJob(j, errors.New("connection lost"))
	}
	c.pending, c.waiting = nil, nil
}

// job is the publisher taking one job: write it on the connection,
// dialling first, or fail it while the backoff runs.
func (n *simNode) job(j simJob) {
	s := n.s
	c := n.pub
	if c != nil && !c.open {
		n.pub, c = nil, nil
		n.pubBackoff.failed(n.local(), s.rnd, &s.p.cfg)
	}
	if c == nil {
		if n.local().Before(n.pubBackoff.next) {
			n.failJob(j, errors.New("redis unavailable"))
			return
		}
		c = &simConn{n: n, pub: true, open: true, dialing: true}
		n.pub = c
		g := n.gen
		s.after(n.latency(true), func() {
			if n.gen != g || !c.open {
				return
			}
			c.dialing = false
			if !s.redis.up {
				n.closeConn(c, "connection refused")
				return
			}
			c.atRedis = true
			n.pubBackoff.reset()
			w := c.waiting
			c.waiting = nil
			for _, j := range w {
				n.write(c, j)
			}
		})
	}
	if c.dialing {
		c.waiting = append(c.waiting, j)
		return
	}
	n.write(c, j)
}

// write sends a job's command and queues it for its reply.
func (n *simNode) write(c *simConn, j simJob) {
	s := n.s
	if len(c.pending) == 0 {
		c.since = n.local()
		n.watchReplies(c, n.gen)
	}
	s.seq++
	j.seq = s.seq
	c.pending = append(c.pending, j)
	n.up(c, func() {
		if c.stuck {
			return
		}
		v, err := s.exec(&j)
		if errors.Is(err, errSimTimeout) {
			// No reply, and none after it on this connection: Redis or the
			// way back is stuck, and the reader times out.
			c.stuck = true
			return
		}
		n.down(c, func() { n.reply(c, j.seq, v, j.names, err) }, func() {})
	})
}

// watchReplies is the pipeline reader's read timeout: the connection is
// dead when the oldest pending reply takes PeerTimeout.
func (n *simNode) watchReplies(c *simConn, g int) {
	s := n.s
	if c.watching {
		return
	}
	c.watching = true
	since := c.since
	at := n.real(since.Add(s.p.cfg.PeerTimeout))
	if n.frozen() {
		at = max(at, n.pausedUntil)
	}
	s.at(max(at, s.now+time.Microsecond), func() {
		c.watching = false
		if n.gen != g || !c.open || len(c.pending) == 0 {
			return
		}
		if n.frozen() || !c.since.Equal(since) {
			n.watchReplies(c, g)
			return
		}
		n.closeConn(c, "reply timeout")
	})
}

// reply is the pipeline reader matching a reply to the oldest pending job.
func (n *simNode) reply(c *simConn, seq uint64, v int64, names []string, err error) {
	if len(c.pending) == 0 {
		return
	}
	j := c.pending[0]
	if j.seq != seq {
		n.s.violation("simulator: %s's reply to job %d matched to job %d", n.id, seq, j.seq)
	}
	c.pending = c.pending[1:]
	c.since = n.local()
	switch j.kind {
	case outPublish:
		if err == nil {
			n.pubOK = n.local()
		}
	case outTermKey:
		n.input(func(now time.Time) []output { return n.c.termAnswer(now, j.round, v, err) })
	case outNumSub:
		n.input(func(now time.Time) []output { return n.c.numSubAnswer(now, j.id, j.round, v, err) })
	case outWho:
		n.input(func(now time.Time) []output { return n.c.whoAnswer(now, j.round, names, err) })
	}
}

// failJob answers a job that could not be done.
func (n *simNode) failJob(j simJob, err error) {
	g := n.gen
	switch j.kind {
	case outTermKey:
		n.s.after(0, func() {
			if n.gen == g {
				n.input(func(now time.Time) []output { return n.c.termAnswer(now, j.round, 0, err) })
			}
		})
	case outNumSub:
		n.s.after(0, func() {
			if n.gen == g {
				n.input(func(now time.Time) []output { return n.c.numSubAnswer(now, j.id, j.round, 0, err) })
			}
		})
	case outWho:
		n.s.after(0, func() {
			if n.gen == g {
				n.input(func(now time.Time) []output { return n.c.whoAnswer(now, j.round, nil, err) })
			}
		})
	}
}

// ---- the checks ----

// active is the node's activity at the current instant: IsLeader, or a
// leader callback whose context is not cancelled. A frozen process acts on
// nothing.
func (n *simNode) active() bool {
	if !n.alive || (n.c.st.role != Leader && !n.ctxLive) || n.frozen() {
		return false
	}
	return n.c.st.activeAt(n.local()) || n.ctxLive
}

func (s *sim) anyActive() bool {
	for _, n := range s.nodes {
		if n.alive && !n.frozen() && n.c.st.activeAt(n.local()) {
			return true
		}
	}
	return false
}

// check runs after every step of node n.
func (s *sim) check(n *simNode) {
	st := &n.c.st
	if st.term < n.lastTerm {
		s.violation("%s's term went back from %d to %d", n.id, n.lastTerm, st.term)
	}
	n.lastTerm = st.term
	if st.role != Leader {
		n.wonTerm = 0
	} else if n.wonTerm != st.term {
		n.wonTerm = st.term
		if w, ok := s.leaders[st.term]; ok && w != n.who {
			s.violation("two leaders in term %d: %s and %s", st.term, w, n.who)
		}
		s.leaders[st.term] = n.who
		s.maxWon = max(s.maxWon, st.term)
		s.checkQuorums(n)
	}
	if st.role == Leader {
		if nb := st.notBefore; nb.After(n.local()) {
			// Activity may begin there without a step: look then too.
			s.at(n.real(nb), func() { s.checkOverlap() })
		}
	}
	s.checkOverlap()
}

// checkQuorums runs when n has just won its term: (e) its voters must
// include one of the voters of every older leadership whose lease still
// runs (an active leader that is alive, frozen or not). A vote is where a
// winner learns of a lease it must wait out, so two disjoint quorums
// leave the one promise to luck: that the old leader hears the new term
// before it acts again. Two leaders at once need that luck to fail too,
// so this finds the flaw in schedules that (a) passes.
func (s *sim) checkQuorums(n *simNode) {
	st := &n.c.st
	won := slices.Sorted(maps.Keys(st.grants))
	s.voters[st.term] = won
	for _, m := range s.nodes {
		if m == n || !m.alive || m.c == nil {
			continue
		}
		ms := &m.c.st
		if ms.role != Leader || !ms.active || ms.term >= st.term || m.real(ms.leaseEnd) <= s.now {
			continue
		}
		old, ok := s.voters[ms.term]
		if ok && !slices.ContainsFunc(won, func(id string) bool { return slices.Contains(old, id) }) {
			s.violation("%s won term %d with the votes of %v, none of whom elected %s in term %d %v, whose lease runs %v more",
				n.id, st.term, won, m.id, ms.term, old, m.real(ms.leaseEnd)-s.now)
		}
	}
}

func (s *sim) checkOverlap() {
	var first *simNode
	for _, m := range s.nodes {
		if m.active() {
			if first != nil {
				s.violation("two active leaders: %s (term %d) and %s (term %d)", first.id, first.c.st.term, m.id, m.c.st.term)
				return
			}
			first = m
		}
	}
}

// TestCopiesChangeNothing feeds a joined follower copies of messages it
// already handled, as a replay that got past the subscriber's checks (to a
// node that restarted, say) would: a repeated vote or pre-vote request
// must not postpone its own campaign again, and the heartbeats of a
// leadership that ended must not make it follow that leader again.
func TestCopiesChangeNothing(t *testing.T) {
	at := time.Now()
	joined := func(t *testing.T) *core {
		c := offlineCore(t, Config{ID: "v", ClusterSize: 3})
		c.subscribed(at.Add(-2 * defaultPeerTimeout))
		c.st.startUntil, c.st.joinUntil = at.Add(-defaultPeerTimeout), at.Add(-defaultPeerTimeout)
		return c
	}
	granted := func(out []output) bool {
		for _, o := range out {
			if o.kind == outPublish && o.msg.To == "cand" && o.msg.Flags&flagGranted != 0 {
				return true
			}
		}
		return false
	}
	t.Run("vote request", func(t *testing.T) {
		c := joined(t)
		req := message{Type: msgVoteRequest, Term: 5, Inc: 7, From: "cand"}
		require.True(t, granted(c.receive(at, &req)), "the first request was refused")
		electionAt, votedAt := c.st.electionAt, c.st.votedAt
		for i := 1; i <= 20; i++ {
			now := at.Add(time.Duration(i) * 5 * time.Millisecond)
			assert.True(t, granted(c.receive(now, &req)), "the same vote, asked again, was refused")
		}
		assert.Equal(t, electionAt, c.st.electionAt, "copies of a vote request postponed the voter's campaign")
		assert.Equal(t, votedAt, c.st.votedAt, "copies of a vote request renewed the vote")
	})
	t.Run("pre-vote", func(t *testing.T) {
		c := joined(t)
		req := message{Type: msgPreVote, Term: 5, Inc: 7, From: "cand"}
		require.True(t, granted(c.receive(at, &req)), "the first pre-vote was refused")
		electionAt := c.st.electionAt
		for i := 1; i <= 20; i++ {
			c.receive(at.Add(time.Duration(i)*5*time.Millisecond), &req)
		}
		assert.Equal(t, electionAt, c.st.electionAt, "copies of a pre-vote request postponed the voter's campaign")
	})
	t.Run("ended leadership", func(t *testing.T) {
		c := joined(t)
		hb := message{Type: msgHeartbeat, Flags: flagLeader, Term: 5, Seq: 1, Inc: 7, From: "old"}
		c.receive(at, &hb)
		require.Equal(t, "old", c.st.leader)
		c.receive(at.Add(time.Millisecond), &message{Type: msgResign, Term: 5, Inc: 7, From: "old"})
		require.Empty(t, c.st.leader, "the resign was not taken")
		for i := 2; i <= 20; i++ {
			hb.Seq = uint64(i)
			c.receive(at.Add(time.Duration(i)*time.Millisecond), &hb)
			require.Empty(t, c.st.leader, "follows a leadership that ended, after a heartbeat with seq %d", hb.Seq)
		}
		hb.Term, hb.Seq = 6, 1 // elected again, later: that counts
		c.receive(at.Add(30*time.Millisecond), &hb)
		assert.Equal(t, "old", c.st.leader, "a new leadership of the same node was refused")
	})
}

// TestListenerAnswersWhenItsListeningEnds: a dynamic-mode node that has
// just resubscribed listens for two heartbeats before it votes. A pre-vote
// or vote request that reaches it then is answered when the listening
// ends, as if it had arrived then; refused at once, it cost the candidate
// its round: after a Redis restart the first candidate stood while most
// of the others still listened, and the group waited a round for nothing.
func TestListenerAnswersWhenItsListeningEnds(t *testing.T) {
	at := time.Now()
	reply := func(out []output) (answered, granted bool) {
		for _, o := range out {
			if o.kind == outPublish && o.msg.To == "cand" && (o.msg.Type == msgPreVoteReply || o.msg.Type == msgVote) {
				answered, granted = true, granted || o.msg.Flags&flagGranted != 0
			}
		}
		return answered, granted
	}
	for name, req := range map[string]message{
		"pre-vote": {Type: msgPreVote, Term: 5, Inc: 7, From: "cand"},
		"vote":     {Type: msgVoteRequest, Term: 5, Inc: 7, From: "cand"},
	} {
		t.Run(name, func(t *testing.T) {
			c := offlineCore(t, Config{ID: "v"}) // dynamic mode
			c.subscribed(at.Add(-2 * defaultPeerTimeout))
			c.disconnected(at.Add(-time.Second), nil)
			c.subscribed(at) // again: it listens until at + 2 heartbeats
			require.True(t, c.st.joinUntil.After(at), "no listening after the resubscription")
			early := at.Add(10 * time.Millisecond)
			answered, _ := reply(c.receive(early, &req))
			assert.False(t, answered, "answered while it listened (a refusal costs the candidate its round)")
			out, _ := c.tick(c.st.joinUntil)
			answered, granted := reply(out)
			assert.True(t, answered && granted, "no grant when the listening ended (answered %v)", answered)
		})
	}
}

// ---------------------------------------------------------------------------
// Hostile and misconfigured peers: copies, other keys, other DBs, one ID.

// wireCopy is one message as a client without the key sees it.
type wireCopy struct {
	channel string
	data    []byte
}

// tap records, as any client that may subscribe can, everything published
// on the channels that match pattern, and passes each copy to f (if set)
// as it comes. stop ends it and returns what it recorded, in order.
func tap(t *testing.T, addr, pattern string, f func(wireCopy)) (stop func() []wireCopy) {
	t.Helper()
	conn, err := redis.Dial("tcp", addr)
	require.NoError(t, err)
	psc := redis.PubSubConn{Conn: conn}
	require.NoError(t, psc.PSubscribe(pattern))
	var mu sync.Mutex
	var got []wireCopy
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			switch v := psc.Receive().(type) {
			case redis.Message:
				m := wireCopy{v.Channel, v.Data}
				mu.Lock()
				if len(got) < 1<<18 {
					got = append(got, m)
				}
				mu.Unlock()
				if f != nil {
					f(m)
				}
			case error:
				return
			}
		}
	}()
	var once sync.Once
	stop = func() []wireCopy {
		once.Do(func() { conn.Close(); <-done })
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
	t.Cleanup(func() { stop() })
	return stop
}

// copier republishes what it is given on its own connection, from its own
// goroutine, so a tap's reader never waits for a PUBLISH.
func copier(t *testing.T, addr string) (send func(channel string, data []byte), sent func() int) {
	t.Helper()
	pub := redisClient(t, addr)
	ch := make(chan wireCopy, 4096)
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ch {
			if _, err := pub.Do("PUBLISH", m.channel, m.data); err == nil {
				n.Add(1)
			}
		}
	}()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(ch) }); <-done })
	send = func(channel string, data []byte) {
		select {
		case ch <- wireCopy{channel, data}:
		default: // the copier is behind: a lost copy
		}
	}
	return send, func() int { return int(n.Load()) }
}

// TestSignedMessagesCountOnlyWhereSent: two groups share one Secret and one
// Redis, and a client without the key copies everything group src
// publishes into group dst's channels as it goes: src's channel into
// dst's, and each of src's node channels into each of dst's. src's terms
// are far ahead of dst's. A signature covers the channel, so dst must not
// notice: the same leader in the same term throughout, and the copies
// counted as unverified.
func TestSignedMessagesCountOnlyWhereSent(t *testing.T) {
	r := startRedis(t)
	admin := redisClient(t, r.Addr)
	_, err := admin.Do("SET", "leader:{src}:term", 1000)
	require.NoError(t, err)
	secret := func(cfg *Config) { cfg.Secret = []byte("one secret for both groups") }
	src, dst := newClusterOn(t, r, "src"), newClusterOn(t, r, "dst")
	dstNodes := dst.startN(3, "d", secret)
	ldr, term := dst.waitLeader(dstNodes...)
	send, sent := copier(t, r.Addr)
	stop := tap(t, r.Addr, "leader:{src}*", func(m wireCopy) {
		if m.channel == "leader:{src}" {
			send("leader:{dst}", m.data)
			return
		}
		for _, n := range dstNodes {
			send("leader:{dst}:node:"+n.id, m.data)
		}
	})
	srcNodes := src.startN(3, "s", secret)
	srcLdr, srcTerm := src.waitLeader(srcNodes...)
	require.Greater(t, srcTerm, term)
	require.NoError(t, srcLdr.e.Resign(context.Background())) // a handover's traffic too
	src.waitLeader(srcNodes...)
	dst.holdFor(calm, "while src's traffic is copied into dst", stable(ldr, term, dstNodes...))
	stop()
	t.Logf("copied %d messages from src (term %d) into dst (term %d)", sent(), srcTerm, term)
	require.Greater(t, sent(), 50, "too few copies to show anything")
	for _, n := range dstNodes {
		assert.NotZero(t, n.e.Status().Unverified, "%s counted no unverified message", n.id)
	}
}

// TestReplaysChangeNothing replays, as a client without the key can, the
// signed traffic of a group (its channel and its nodes' own channels) back
// into the channels it was sent on.
func TestReplaysChangeNothing(t *testing.T) {
	secret := func(cfg *Config) { cfg.Secret = []byte("s") }
	// The winner's own vote request, replayed every 5 ms while the winner
	// is cut off from Redis one way: a vote granted again must cost the
	// voters nothing, or they keep postponing the election that replaces
	// the lost leader.
	t.Run("vote request of a lost leader", func(t *testing.T) {
		c := newCluster(t)
		stop := tap(t, c.redis.Addr, "leader:{g}*", nil)
		nodes := c.startN(3, "n", secret)
		ldr, term := c.waitLeader(nodes...)
		var req *wireCopy
		for _, m := range stop() {
			if got, err := decodeWire(m.data); errors.Is(err, errNoSecret) && got.Type == msgVoteRequest && got.From == ldr.id && got.Term == term {
				req = &m
			}
		}
		require.NotNil(t, req, "no vote request of %s in term %d was captured", ldr.id, term)
		pub := redisClient(t, c.redis.Addr)
		ldr.proxy.CutUp()
		cut := time.Now()
		rest := without(nodes, ldr)
		deadline := cut.Add(waitLong)
		pace := time.NewTicker(5 * time.Millisecond)
		defer pace.Stop()
		for {
			if n, tm := agreedLeader(rest); n != nil && tm > term && n.e.IsLeader() {
				t.Logf("%s leads term %d %v after the cut, with the old vote request replayed every 5ms", n.id, tm, time.Since(cut).Round(time.Millisecond))
				break
			}
			require.True(t, time.Now().Before(deadline), "no new leader %v after the cut while the vote request was replayed:\n%s", waitLong, c.dump())
			_, err := pub.Do("PUBLISH", req.channel, req.data)
			require.NoError(t, err)
			<-pace.C
		}
		ldr.proxy.Heal()
		for _, n := range rest {
			assert.NotZero(t, n.e.Status().Replays, "%s counted no replay", n.id)
		}
	})
	// A leader hands over to a successor whose messages do not get out
	// (cut off one way), and is a follower from then on. Its recorded
	// heartbeats, replayed in order from then on, must not make the others
	// follow it again, which would keep them from electing anyone.
	t.Run("heartbeats of a leadership that ended", func(t *testing.T) {
		c := newCluster(t)
		nodes := c.startN(3, "n", secret)
		ldr, term := c.waitLeader(nodes...)
		stop := tap(t, c.redis.Addr, c.channel(), nil)
		// Long enough that the replay, at the leader's own pace, outlasts
		// the bound on the new election below.
		c.holdFor(100*testHeartbeat, "while its heartbeats are recorded", stable(ldr, term, nodes...))
		var beats []wireCopy
		for _, m := range stop() {
			if got, err := decodeWire(m.data); errors.Is(err, errNoSecret) && got.Type == msgHeartbeat && got.From == ldr.id && got.Flags&flagLeader != 0 {
				beats = append(beats, m)
			}
		}
		require.GreaterOrEqual(t, len(beats), 60, "too few heartbeats recorded")
		pub := redisClient(t, c.redis.Addr)
		succ := without(nodes, ldr)[0]
		others := without(nodes, succ)
		succ.proxy.CutUp()
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		require.NoError(t, ldr.e.TransferTo(ctx, succ.id))
		handed := time.Now()
		// Without the copies, a new leader takes a few PeerTimeouts at most.
		bound := 4*testPeer + raceSlack
		var nw *node
		var nterm uint64
		for _, m := range beats { // in order, at the leader's own pace
			if nw == nil {
				if n, tm := agreedLeader(others); n != nil && tm > term && n.e.IsLeader() {
					nw, nterm = n, tm
					t.Logf("%s leads term %d %v after the handover, with %s's heartbeats of term %d replayed", n.id, tm, time.Since(handed).Round(time.Millisecond), ldr.id, term)
				}
				require.True(t, time.Since(handed) < bound, "no new leader %v after the handover while %s's heartbeats were replayed:\n%s", bound, ldr.id, c.dump())
			} else if err := stable(nw, nterm, others...)(); err != nil {
				t.Fatalf("while %s's heartbeats of term %d were replayed: %v\n%s", ldr.id, term, err, c.dump())
			}
			_, err := pub.Do("PUBLISH", m.channel, m.data)
			require.NoError(t, err)
			time.Sleep(testHeartbeat) // pacing, as the leader sent them
		}
		require.NotNil(t, nw, "no new leader while %s's heartbeats were replayed:\n%s", ldr.id, c.dump())
		succ.proxy.Heal()
	})
}

// TestMismatchedSecretsNeverSplit: during a botched rotation two nodes have
// key A and one has key B. Neither side can verify the other. There must
// never be two leaders (the monitor checks it), the odd node must never
// lead, and both sides must say why, and count it.
func TestMismatchedSecretsNeverSplit(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			c := newCluster(t)
			logs := make([]*lockedBuffer, 3)
			nodes := make([]*node, 3)
			for i := range nodes {
				logs[i] = &lockedBuffer{}
				key := "A"
				if i == 2 {
					key = "B"
				}
				nodes[i] = c.start("n"+strconv.Itoa(i), func(cfg *Config) {
					logsTo(c, logs[i])(cfg)
					cfg.Secret = []byte(key)
					if strict {
						cfg.ClusterSize = 3
					}
				})
			}
			ldr, term := c.waitLeader(nodes[:2]...)
			c.holdFor(10*testPeer, "with one node on another key", stable(ldr, term, nodes[:2]...))
			assert.Empty(t, c.mon.activeSpans(nodes[2]), "the node with the other key led")
			for i, n := range nodes {
				s := n.e.Status()
				assert.NotZero(t, s.Unverified, "%s counted no unverified message", n.id)
				assert.True(t, warned(logs[i].String(), "cannot be verified", "another Secret"),
					"%s did not warn of messages signed with another key:\n%s", n.id, logs[i].String())
			}
		})
	}
}

// TestKeyRotationWithoutDowntime rotates the key of a running group in
// three rolling restarts, one process at a time: Secret A; then Secret B
// with PreviousSecret A; then Secret B. At every moment every node must
// verify what every other node signs (nothing unverified, anywhere), and
// a leader must come back after every restart.
func TestKeyRotationWithoutDowntime(t *testing.T) {
	c := newCluster(t)
	a, b := []byte("key A"), []byte("key B")
	stage := func(secret, previous []byte) func(*Config) {
		return func(cfg *Config) { cfg.Secret, cfg.PreviousSecret, cfg.ClusterSize = secret, previous, 3 }
	}
	nodes := c.startN(3, "n", stage(a, nil))
	c.waitLeader(nodes...)
	var ran []*node
	for _, st := range []func(*Config){stage(b, a), stage(b, nil)} {
		for i := range nodes {
			require.NoError(t, nodes[i].stop())
			ran = append(ran, nodes[i])
			nodes[i] = c.start(nodes[i].id, st)
			c.waitLeader(nodes...)
		}
	}
	c.waitStable(calm, nodes...)
	for _, n := range append(ran, nodes...) {
		assert.Zero(t, n.e.Status().Unverified, "%s could not verify a message during the rotation", n.id)
	}
}

// TestDBsNeverJoin: pub/sub ignores the DB number, so instances of one
// group on DB 1 (staging, say) and on DB 2 (production) of one server
// would form one election with two term keys. The channels carry the DB:
// each DB elects its own leader. A Dial that selects another DB than
// Config.DB ends Run with an error that says so.
func TestDBsNeverJoin(t *testing.T) {
	r := startRedis(t)
	onDB := func(db int) func(*Config) { return func(cfg *Config) { cfg.DB = db } }
	staging, production := newClusterOn(t, r, "g"), newClusterOn(t, r, "g")
	sNodes := staging.startN(2, "staging", onDB(1))
	pNodes := production.startN(2, "production", onDB(2))
	sl, _ := staging.waitLeader(sNodes...)
	pl, _ := production.waitLeader(pNodes...)
	assert.True(t, sl.e.IsLeader() && pl.e.IsLeader(), "each DB should have its own leader")
	for _, n := range append(sNodes, pNodes...) {
		for _, p := range n.e.Status().LivePeers {
			assert.Equal(t, n.id[:4], p[:4], "%s hears %s, of the other DB", n.id, p)
		}
	}
	admin := redisClient(t, r.Addr)
	for db := 1; db <= 2; db++ {
		_, err := admin.Do("SELECT", db)
		require.NoError(t, err)
		n, err := redis.Int(admin.Do("EXISTS", groupChannel("g", db)+":term"))
		require.NoError(t, err)
		assert.Equal(t, 1, n, "no term key on DB %d", db)
	}

	e, err := New(Config{Group: "g", ID: "wrong-db", PeerTimeout: testPeer, LeaseTimeout: testLease, HeartbeatInterval: testHeartbeat,
		Dial: func(ctx context.Context) (redis.Conn, error) {
			return redis.DialContext(ctx, "tcp", r.Addr, redis.DialDatabase(2))
		}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	err = e.Run(ctx)
	require.Error(t, err, "Run ran with a Dial on DB 2 and Config.DB 0")
	assert.NoError(t, ctx.Err(), "Run returned only when its context ended")
	assert.Contains(t, err.Error(), "DB 2")
	assert.Contains(t, err.Error(), "Config.DB")
}

// TestDuplicateIDWarnsBothSides starts a second process with the ID of a
// running follower. A healthy follower says nothing on the group's channel
// (it acks to the leader's own), so the newcomer would never hear it; both
// must warn.
func TestDuplicateIDWarnsBothSides(t *testing.T) {
	c := newCluster(t)
	logs := map[*node]*lockedBuffer{}
	var nodes []*node
	for i := range 3 {
		buf := &lockedBuffer{}
		n := c.start("n"+strconv.Itoa(i), logsTo(c, buf))
		logs[n] = buf
		nodes = append(nodes, n)
	}
	ldr, _ := c.waitLeader(nodes...)
	f := without(nodes, ldr)[0]
	dupLog := &lockedBuffer{}
	dup := c.startRogue(f.id, logsTo(c, dupLog))
	ok := poll(waitLong, func() bool {
		return warned(logs[f].String(), "uses this node's ID") && warned(dupLog.String(), "uses this node's ID")
	})
	assert.True(t, ok, "the running process warned: %v; the new one warned: %v",
		warned(logs[f].String(), "uses this node's ID"), warned(dupLog.String(), "uses this node's ID"))
	require.NoError(t, dup.stop())
}

// ---------------------------------------------------------------------------
// Operators: what a failover looks like from outside.

// TestFailoverIsExplained runs three nodes through a handover, a leader cut
// off from Redis and a shutdown, and checks what an operator sees: every
// leadership ends with a documented cause (context.Cause and
// OnStoppedLeading), the followers report the loss of their leader
// (OnNewLeader with "") and log at INFO why and whom they follow next,
// Status counts the step-downs by cause and the time without a leader,
// Ready and Handler agree with the roles, and the job reaches its Elector
// through FromContext.
func TestFailoverIsExplained(t *testing.T) {
	c := newCluster(t)
	var mu sync.Mutex
	causes := map[string][]error{} // node → the causes its leaderships ended with
	stops := map[string][]error{}  // node → what OnStoppedLeading got
	var fromCtx atomic.Int64       // leaderships whose FromContext was their Elector
	logs := map[string]*lockedBuffer{}
	var nodes []*node
	for i := range 3 {
		id := "n" + strconv.Itoa(i)
		logs[id] = &lockedBuffer{}
		nodes = append(nodes, c.start(id, func(cfg *Config) {
			logsTo(c, logs[id])(cfg)
			cfg.OnStartedLeading = func(ctx context.Context, term uint64) {
				if e := FromContext(ctx); e != nil && e.ID() == id && e.IsLeader() {
					fromCtx.Add(1)
				}
				<-ctx.Done()
				mu.Lock()
				causes[id] = append(causes[id], context.Cause(ctx))
				mu.Unlock()
			}
			cfg.OnStoppedLeading = func(cause error) {
				mu.Lock()
				stops[id] = append(stops[id], cause)
				mu.Unlock()
			}
		}))
	}
	ended := func(id string, want error) {
		t.Helper()
		ok := poll(waitLong, func() bool {
			mu.Lock()
			defer mu.Unlock()
			cs, ss := causes[id], stops[id]
			return len(cs) > 0 && len(ss) == len(cs) && cs[len(cs)-1] == want && ss[len(ss)-1] == want
		})
		mu.Lock()
		defer mu.Unlock()
		assert.True(t, ok, "%s: leaderships ended with %v, OnStoppedLeading got %v; want the last to be %v", id, causes[id], stops[id], want)
	}
	noLeaderSeen := func(n *node, after int) bool {
		for _, x := range c.mon.newLeaders(n)[after:] {
			if x.id == "" {
				return true
			}
		}
		return false
	}
	ready := func(n *node) (int, string) {
		rec := httptest.NewRecorder()
		n.e.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		return rec.Code, rec.Body.String()
	}

	ldr, _ := c.waitLeader(nodes...)
	for _, n := range nodes {
		require.True(t, poll(waitLong, func() bool { return n.e.Ready() == nil }), "%s: not ready in a healthy group: %v", n.id, n.e.Ready())
		code, body := ready(n)
		assert.Equal(t, 200, code, body)
		var st Status
		require.NoError(t, json.Unmarshal([]byte(body), &st), body)
		assert.Equal(t, n.e.Status().State, st.State)
		assert.Contains(t, body, `"State":"`+n.e.Status().State.String()+`"`)
	}

	// A handover.
	marks := map[*node]int{}
	for _, n := range nodes {
		marks[n] = len(c.mon.newLeaders(n))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	require.NoError(t, ldr.e.Resign(ctx))
	ended(ldr.id, ErrHandedOver)
	next, _ := c.waitLeader(nodes...)
	require.NotEqual(t, ldr, next)
	for _, n := range without(nodes, ldr, next) {
		assert.True(t, noLeaderSeen(n, marks[n]), "%s: OnNewLeader never said there was no leader after the handover", n.id)
		assert.True(t, poll(waitLong, func() bool {
			return logged(logs[n.id].String(), "INFO", "lost the leader", "leader="+ldr.id, "handed over to")
		}), "%s did not log the loss of its leader at INFO:\n%s", n.id, logs[n.id].String())
		assert.True(t, logged(logs[n.id].String(), "INFO", "following", "leader="+next.id), "%s did not log whom it follows", n.id)
	}
	assert.Equal(t, uint64(1), ldr.e.Status().HandOvers)
	assert.Positive(t, next.e.Status().LastElection, "the winner measured no election time")

	// A leader cut off from Redis: its lease lapses.
	for _, n := range nodes {
		marks[n] = len(c.mon.newLeaders(n))
	}
	next.proxy.Cut()
	ended(next.id, ErrLeaseLost)
	rest := without(nodes, next)
	third, _ := c.waitLeader(rest...)
	for _, n := range without(rest, third) {
		assert.True(t, noLeaderSeen(n, marks[n]), "%s: OnNewLeader never said there was no leader after the cut", n.id)
		assert.True(t, logged(logs[n.id].String(), "INFO", "lost the leader", "leader="+next.id), "%s did not log the loss of %s", n.id, next.id)
		assert.Positive(t, n.e.Status().LastLeaderless, "%s: no time without a leader measured", n.id)
	}
	assert.Error(t, next.e.Ready(), "a node cut off from Redis is ready")
	code, body := ready(next)
	assert.Equal(t, 503, code, body)
	assert.Contains(t, body, `"error":`)
	assert.Equal(t, uint64(1), next.e.Status().LeasesLost)
	next.proxy.Heal()
	c.waitLeader(nodes...)

	// A shutdown of the leader.
	ldr3, _ := c.waitLeader(nodes...)
	require.NoError(t, ignoreCanceled(ldr3.stop()))
	ended(ldr3.id, ErrShutdown)
	assert.Equal(t, uint64(1), ldr3.e.Status().Shutdowns)
	assert.ErrorIs(t, ldr3.e.Ready(), ErrNotRunning)

	mu.Lock()
	n := 0
	for _, cs := range causes {
		n += len(cs)
	}
	mu.Unlock()
	assert.Equal(t, int64(n), fromCtx.Load(), "FromContext did not return the leading Elector in every leadership")
}

// logged reports whether a line of log at level contains every one of words.
func logged(log, level string, words ...string) bool {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "level="+level) {
			continue
		}
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			return true
		}
	}
	return false
}

// TestPriorityLeaderReturns: the node of higher Priority takes leadership
// by a handover once it has been heard for PriorityAfter, and after it is
// restarted, leadership comes back to it once, by a handover (no lease
// lapses, one new term per move), and then stays.
func TestPriorityLeaderReturns(t *testing.T) {
	c := newCluster(t)
	const after = 4 * testPeer
	prio := func(p int) func(*Config) {
		return func(cfg *Config) { cfg.Priority, cfg.PriorityAfter, cfg.ClusterSize = p, after, 3 }
	}
	pref := c.start("pref", prio(5))
	others := []*node{c.start("n1", prio(0)), c.start("n2", prio(0))}
	nodes := append([]*node{pref}, others...)
	ok := poll(waitLong, func() bool { l, _ := agreedLeader(nodes); return l == pref && pref.e.IsLeader() })
	require.True(t, ok, "the preferred node never led:\n%s", c.dump())
	_, term := c.waitStable(calm, nodes...)

	require.NoError(t, ignoreCanceled(pref.stop())) // hands over as it stops
	interim, iterm := c.waitLeader(others...)
	require.Greater(t, iterm, term)
	before := interim.e.Status() // it may have handed over to pref once already, at the start
	start := time.Now()
	pref2 := c.start("pref", prio(5))
	nodes = append([]*node{pref2}, others...)
	ok = poll(waitLong, func() bool { l, _ := agreedLeader(nodes); return l == pref2 && pref2.e.IsLeader() })
	require.True(t, ok, "leadership did not come back to the restarted preferred node:\n%s", c.dump())
	_, back := agreedLeader(nodes)
	t.Logf("back on %s in term %d, %v after its restart (PriorityAfter %v), from %s (term %d)", pref2.id, back, time.Since(start).Round(time.Millisecond), after, interim.id, iterm)
	assert.Equal(t, iterm+1, back, "leadership came back through more than one new term")
	s := interim.e.Status()
	assert.Equal(t, uint64(1), s.HandOvers-before.HandOvers, "the interim leader did not hand over exactly once")
	assert.Zero(t, s.LeasesLost, "a lease lapsed on the way back")
	c.holdFor(2*after, "once back", stable(pref2, back, nodes...))
}

// TestNotReadyWhileListening: after it (re)subscribes a node neither votes
// nor acks for a PeerTimeout, so it is not ready yet: a rolling restart
// that waits for readiness must not take a second voter away meanwhile.
func TestNotReadyWhileListening(t *testing.T) {
	c := newCluster(t)
	slow := func(cfg *Config) {
		cfg.HeartbeatInterval, cfg.LeaseTimeout, cfg.PeerTimeout, cfg.ElectionJitter = 100*time.Millisecond, 1500*time.Millisecond, 2*time.Second, 100*time.Millisecond
	}
	nodes := c.startN(2, "n", slow)
	c.waitLeader(nodes...)
	late := c.start("late", slow)
	require.True(t, poll(waitLong, func() bool { return late.e.Status().Connected }), "never connected")
	err := late.e.Ready()
	require.Error(t, err, "ready at once after subscribing, while it still listens")
	assert.Contains(t, err.Error(), "listening")
	connected := time.Now()
	require.True(t, poll(2*waitLong, func() bool { return late.e.Ready() == nil }), "never ready: %v", late.e.Ready())
	assert.Greater(t, time.Since(connected), time.Second, "ready well before its PeerTimeout of listening ended")
}

// startSentinels starts n sentinels (redis-server --sentinel) on free
// loopback ports that monitor the primary on port as "mymaster" (quorum 2,
// down-after 2000 ms), and stops them when the test ends.
func startSentinels(t *testing.T, port, n int) []string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	require.NoError(t, err)
	var addrs []string
	for i := range n {
		dir := t.TempDir()
		sp := freePort(t)
		conf := filepath.Join(dir, "sentinel.conf")
		require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(
			"port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %d 2\nsentinel down-after-milliseconds mymaster 2000\nsentinel failover-timeout mymaster 10000\n",
			sp, dir, port)), 0o644))
		cmd := exec.Command(bin, conf, "--sentinel")
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		require.NoError(t, cmd.Start(), "sentinel %d", i)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sp))
		require.True(t, poll(5*time.Second, func() bool { return pingRedis(addr) }), "sentinel %d did not answer: %s", i, out)
		addrs = append(addrs, addr)
	}
	return addrs
}

// TestSentinelFailover: a primary, two replicas and three sentinels; three
// strict-mode nodes find the primary through Config.Sentinel. After
// SENTINEL FAILOVER every node must be on the new primary soon after the
// sentinels switched (they watch +switch-master), not when the old primary
// is demoted and closes its clients seconds later; a leader is elected
// there, and terms never go back (the monitor checks that, and that no two
// nodes led at once). New refuses dynamic mode with Sentinel.
func TestSentinelFailover(t *testing.T) {
	_, err := New(Config{Sentinel: &Sentinel{Addrs: []string{"127.0.0.1:26379"}, MasterName: "mymaster"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "strict mode")

	primary := startRedis(t)
	port := strconv.Itoa(primary.port)
	replicas := []*redisServer{startRedis(t, "--replicaof", "127.0.0.1", port), startRedis(t, "--replicaof", "127.0.0.1", port)}
	sentinels := startSentinels(t, primary.port, 3)
	ask := func(args ...any) (any, error) {
		s, err := redis.Dial("tcp", sentinels[0])
		if err != nil {
			return nil, err
		}
		defer s.Close()
		return s.Do("SENTINEL", args...)
	}
	// The sentinels must know both replicas, in sync, before a failover.
	require.True(t, poll(20*time.Second, func() bool {
		vs, err := redis.Values(ask("REPLICAS", "mymaster"))
		if err != nil || len(vs) != 2 {
			return false
		}
		for _, v := range vs {
			m, err := redis.StringMap(v, nil)
			if err != nil || m["flags"] != "slave" || m["master-link-status"] != "ok" {
				return false
			}
		}
		return true
	}), "the sentinels never saw both replicas in sync")

	c := newClusterOn(t, primary, "g")
	viaSentinel := func(cfg *Config) {
		cfg.Addr, cfg.ClusterSize = "", 3
		cfg.Sentinel = &Sentinel{Addrs: sentinels, MasterName: "mymaster"}
	}
	nodes := c.startN(3, "n", viaSentinel)
	_, term := c.waitStable(calm, nodes...)

	_, err = ask("FAILOVER", "mymaster")
	require.NoError(t, err)
	var switchedAt time.Time
	var newAddr string
	require.True(t, poll(20*time.Second, func() bool {
		hp, err := redis.Strings(ask("GET-MASTER-ADDR-BY-NAME", "mymaster"))
		if err == nil && len(hp) == 2 && hp[1] != port {
			switchedAt, newAddr = time.Now(), net.JoinHostPort(hp[0], hp[1])
			return true
		}
		return false
	}), "the sentinels never switched the primary")
	onNew := func() bool {
		conn, err := redis.Dial("tcp", newAddr)
		if err != nil {
			return false
		}
		defer conn.Close()
		v, err := redis.Values(conn.Do("PUBSUB", "NUMSUB", "leader:{g}"))
		if err != nil || len(v) != 2 {
			return false
		}
		n, _ := redis.Int(v[1], nil)
		return n == len(nodes)
	}
	require.True(t, poll(15*time.Second, onNew), "the nodes never all subscribed on the new primary %s", newAddr)
	moved := time.Since(switchedAt)
	ldr, nterm := c.waitLeader(nodes...)
	t.Logf("sentinels switched to %s; every node subscribed there %v later; %s leads term %d (was %d)", newAddr, moved.Round(time.Millisecond), ldr.id, nterm, term)
	// The old primary stays writable for about 10 s after the switch; the
	// nodes must not wait for it to close their connections.
	assert.Less(t, moved, 2*time.Second, "the nodes stayed on the old primary")
	assert.GreaterOrEqual(t, nterm, term)
	_ = replicas
}

// redisCluster is a Redis Cluster of three primaries with a replica each,
// started on free loopback ports, created with redis-cli --cluster create,
// and stopped when the test ends.
type redisCluster struct {
	t     *testing.T
	nodes []*redisServer
}

// startRedisCluster starts the cluster and waits until every node reports
// it healthy and agrees on every slot's primary.
func startRedisCluster(t *testing.T) *redisCluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli not found: run 'bash scripts/ensure-redis.sh' (Debian: apt-get install redis-tools)")
	}
	bin, err := exec.LookPath("redis-server")
	require.NoError(t, err)
	rc := &redisCluster{t: t}
	for len(rc.nodes) < 6 {
		// A cluster node also listens on port+10000 (the cluster bus).
		port := freePort(t)
		if port+10000 > 65535 {
			continue
		}
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000))); err != nil {
			continue
		} else {
			l.Close()
		}
		r := &redisServer{t: t, bin: bin, port: port, extra: []string{"--dir", t.TempDir(),
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"}}
		r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if r.start() != nil {
			continue
		}
		t.Cleanup(r.stop)
		rc.nodes = append(rc.nodes, r)
	}
	args := []string{"--cluster", "create"}
	for _, n := range rc.nodes {
		args = append(args, n.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, append(args, "--cluster-replicas", "1", "--cluster-yes")...).CombinedOutput()
	require.NoError(t, err, "redis-cli --cluster create: %s", out)
	require.True(t, poll(30*time.Second, rc.agreed), "the cluster never became healthy")
	return rc
}

// agreed reports whether every node says cluster_state:ok and names the
// same primary for the test group's slot.
func (rc *redisCluster) agreed() bool {
	owner := ""
	for _, n := range rc.nodes {
		c, err := redis.Dial("tcp", n.Addr, redis.DialReadTimeout(time.Second))
		if err != nil {
			return false
		}
		info, err := redis.String(c.Do("CLUSTER", "INFO"))
		v, err2 := c.Do("CLUSTER", "SLOTS")
		c.Close()
		if err != nil || err2 != nil || !strings.Contains(info, "cluster_state:ok") {
			return false
		}
		o, _, err := slotOwner(v, keySlot("leader:{g}"), n.Addr)
		if err != nil || owner != "" && o != owner {
			return false
		}
		ranges, _ := redis.Values(v, nil)
		for _, rg := range ranges {
			if f, _ := redis.Values(rg, nil); len(f) < 4 {
				return false // a replica not attached yet
			}
		}
		owner = o
	}
	return true
}

// owner returns the node that is the primary of the test group's slot,
// and its replica, as the cluster's first node sees them.
func (rc *redisCluster) owner() (primary, replica *redisServer) {
	rc.t.Helper()
	return rc.ownerOf("g")
}

// ownerOf returns the primary and a replica of group's slot.
func (rc *redisCluster) ownerOf(group string) (primary, replica *redisServer) {
	rc.t.Helper()
	c := redisClient(rc.t, rc.nodes[0].Addr)
	v, err := c.Do("CLUSTER", "SLOTS")
	require.NoError(rc.t, err)
	slot := keySlot("leader:{" + group + "}")
	ranges, _ := redis.Values(v, nil)
	for _, rg := range ranges {
		f, _ := redis.Values(rg, nil)
		lo, _ := redis.Int(f[0], nil)
		hi, _ := redis.Int(f[1], nil)
		if slot < lo || slot > hi {
			continue
		}
		port := func(i int) int {
			nf, _ := redis.Values(f[i], nil)
			p, _ := redis.Int(nf[1], nil)
			return p
		}
		for _, n := range rc.nodes {
			if n.port == port(2) {
				primary = n
			}
			if len(f) > 3 && n.port == port(3) {
				replica = n
			}
		}
	}
	require.NotNil(rc.t, primary, "no primary for slot %d", slot)
	require.NotNil(rc.t, replica, "no replica for slot %d", slot)
	return primary, replica
}

// TestLinkOnCluster runs 12 groups on 3 Links on a 6-node Cluster: each
// Link keeps two connections per primary that serves one of its groups,
// and every group subscribes on its own slot's primary. When one shard
// fails over, its groups follow to the new primary and elect there, and
// the groups of the other shards keep their leaders.
func TestLinkOnCluster(t *testing.T) {
	rc := startRedisCluster(t)
	seed := rc.nodes[0]
	var links []*Link
	for range 3 {
		links = append(links, &Link{Cluster: &Cluster{Addrs: []string{seed.Addr}}})
	}
	const groups = 12
	cs := make([]*cluster, groups)
	nodes := make([][]*node, groups)
	primaries := map[*redisServer]bool{}
	for g := range cs {
		cs[g] = newClusterOn(t, seed, "g"+strconv.Itoa(g))
		for p, l := range links {
			nodes[g] = append(nodes[g], cs[g].start("p"+strconv.Itoa(p), func(cfg *Config) {
				cfg.Addr, cfg.Link, cfg.ClusterSize, cfg.Scale = "", l, len(links), 3
			}))
		}
		primary, _ := rc.ownerOf(cs[g].group)
		primaries[primary] = true
	}
	leaders := make([]*node, groups)
	terms := make([]uint64, groups)
	for g, c := range cs {
		leaders[g], terms[g] = c.waitLeader(nodes[g]...)
		primary, _ := rc.ownerOf(c.group)
		assert.Equal(t, 3, shardSubs(primary.Addr, c.channel()), "group %s: subscribers on its slot's primary", c.group)
	}
	total := 0
	for _, n := range rc.nodes {
		list, err := redis.String(redisClient(t, n.Addr).Do("CLIENT", "LIST"))
		require.NoError(t, err)
		for _, c := range strings.Split(strings.TrimSpace(list), "\n") {
			// Not the replication links, nor this test's own clients.
			if !strings.Contains(c, "flags=S") && !strings.Contains(c, "flags=M") && !strings.Contains(c, "cmd=cluster|") && !strings.Contains(c, "cmd=client|") {
				total++
			}
		}
	}
	assert.Equal(t, 2*len(links)*len(primaries), total, "connections of %d Links to the %d primaries of %d groups", len(links), len(primaries), groups)

	primary, replica := rc.ownerOf("g0")
	onShard := map[*cluster]bool{}
	for _, c := range cs {
		p, _ := rc.ownerOf(c.group)
		onShard[c] = p == primary
	}
	moved := func(c *cluster) bool { return onShard[c] }
	_, err := redisClient(t, replica.Addr).Do("CLUSTER", "FAILOVER")
	require.NoError(t, err)
	start := time.Now()
	require.True(t, poll(waitLong, func() bool {
		for _, c := range cs {
			if moved(c) && shardSubs(replica.Addr, c.channel()) != 3 {
				return false
			}
		}
		return true
	}), "the failed-over shard's groups did not all subscribe on the new primary: %s", func() string {
		var b strings.Builder
		for g, c := range cs {
			if moved(c) {
				fmt.Fprintf(&b, "\n%s: %d subscribers on the new primary, %d on the old", c.group, shardSubs(replica.Addr, c.channel()), shardSubs(primary.Addr, c.channel()))
				for _, n := range nodes[g] {
					s := n.e.Status()
					fmt.Fprintf(&b, "\n  %s: connected=%v redirects=%d reconnects=%d lastErr=%q", n.id, s.Connected, s.Redirects, s.Reconnects, s.LastRedisError)
				}
			}
		}
		return b.String()
	}())
	t.Logf("every group of the failed-over shard subscribed on its new primary %v after CLUSTER FAILOVER", time.Since(start).Round(time.Millisecond))
	for g, c := range cs {
		if moved(c) {
			leaders[g], terms[g] = c.waitLeader(nodes[g]...)
			continue
		}
		ldr, term := agreedLeader(nodes[g])
		assert.Equal(t, leaders[g], ldr, "group %s, on another shard, changed leader", c.group)
		assert.Equal(t, terms[g], term, "group %s changed term", c.group)
	}
	cs[0].holdFor(calm, "every group after the failover", func() error {
		for g := range cs {
			if err := stable(leaders[g], terms[g], nodes[g]...)(); err != nil {
				return fmt.Errorf("group %d: %w", g, err)
			}
		}
		return nil
	})
}

// clusterStat reads one field of CLUSTER INFO of addr.
func clusterStat(t *testing.T, addr, field string) int64 {
	t.Helper()
	info, err := redis.String(redisClient(t, addr).Do("CLUSTER", "INFO"))
	require.NoError(t, err)
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// shardSubs is PUBSUB SHARDNUMSUB of channel on addr.
func shardSubs(addr, channel string) int {
	c, err := redis.Dial("tcp", addr, redis.DialReadTimeout(time.Second))
	if err != nil {
		return -1
	}
	defer c.Close()
	v, err := redis.Values(c.Do("PUBSUB", "SHARDNUMSUB", channel))
	if err != nil || len(v) != 2 {
		return -1
	}
	n, _ := redis.Int(v[1], nil)
	return n
}

// TestKeySlot: keySlot agrees with CLUSTER KEYSLOT, hash tags included.
func TestKeySlot(t *testing.T) {
	r := startRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	c := redisClient(t, r.Addr)
	for _, k := range []string{"leader:{g}", "leader:{g}:term", "leader:{g}:node:n1", "leader:db2:{billing}",
		"foo", "123456789", "{user1000}.following", "foo{}{bar}", "foo{{bar}}", "{}", "", "x{y"} {
		want, err := redis.Int(c.Do("CLUSTER", "KEYSLOT", k))
		require.NoError(t, err)
		assert.Equal(t, want, keySlot(k), "slot of %q", k)
	}
}

// TestRedisCluster: three strict-mode nodes given one seed that does not
// serve the group's slot find its primary themselves, put both of their
// connections there (its SHARDNUMSUB counts all three) and elect a leader
// whose term is in the group's term key there. Sharded pub/sub keeps the
// traffic in the shard: no classic PUBLISH crosses the cluster bus, and
// each publish costs about one bus message (to the shard's replica). After
// CLUSTER FAILOVER every node follows the slot to the promoted replica soon,
// and a leader is elected there; the monitor checks that no two nodes led at
// once and that terms never went back.
func TestRedisCluster(t *testing.T) {
	rc := startRedisCluster(t)
	primary, replica := rc.owner()
	var seed *redisServer
	for _, n := range rc.nodes {
		if n != primary && n != replica {
			seed = n
			break
		}
	}
	c := newClusterOn(t, seed, "g")
	onCluster := func(cfg *Config) {
		cfg.Addr, cfg.ClusterSize = "", 3
		cfg.Cluster = &Cluster{Addrs: []string{seed.Addr}}
	}
	nodes := c.startN(3, "n", onCluster)
	ldr, term := c.waitStable(calm, nodes...)
	assert.Equal(t, 3, shardSubs(primary.Addr, c.channel()), "not every node subscribed on the slot's primary")
	got, err := redis.Uint64(redisClient(t, primary.Addr).Do("GET", c.channel()+":term"))
	require.NoError(t, err, "no term key on the slot's primary")
	assert.GreaterOrEqual(t, got, term)

	out := func() (n uint64) {
		for _, nd := range nodes {
			n += nd.e.Status().MessagesOut
		}
		return n
	}
	classic0, shard0, out0 := clusterStat(t, primary.Addr, "cluster_stats_messages_publish_sent"),
		clusterStat(t, primary.Addr, "cluster_stats_messages_publishshard_sent"), out()
	time.Sleep(calm) // a measured window, not a wait for a condition
	classic, shard, published := clusterStat(t, primary.Addr, "cluster_stats_messages_publish_sent")-classic0,
		clusterStat(t, primary.Addr, "cluster_stats_messages_publishshard_sent")-shard0, out()-out0
	t.Logf("in %v: %d publishes, %d sharded and %d classic bus messages from the slot's primary", calm, published, shard, classic)
	assert.Zero(t, classic, "classic PUBLISH crossed the cluster bus")
	require.NotZero(t, published)
	assert.InDelta(t, 1, float64(shard)/float64(published), 0.25, "bus messages per publish")

	_, err = redisClient(t, replica.Addr).Do("CLUSTER", "FAILOVER")
	require.NoError(t, err)
	start := time.Now()
	require.True(t, poll(20*time.Second, func() bool { return shardSubs(replica.Addr, c.channel()) == len(nodes) }),
		"the nodes never all subscribed on the promoted replica %s", replica.Addr)
	moved := time.Since(start)
	nldr, nterm := c.waitStable(calm, nodes...)
	var redirects uint64
	for _, nd := range nodes {
		redirects += nd.e.Status().Redirects
	}
	t.Logf("%s led term %d; after CLUSTER FAILOVER every node subscribed on %s within %v; %s leads term %d; %d redirects",
		ldr.id, term, replica.Addr, moved.Round(time.Millisecond), nldr.id, nterm, redirects)
	assert.Less(t, moved, 5*time.Second, "the nodes stayed on the demoted primary")
	assert.NotZero(t, redirects, "no node noticed the slot move")
	assert.GreaterOrEqual(t, nterm, term)

	// kill -9 of the slot's primary: the cluster promotes its replica (the
	// first primary) after its node-timeout, and the nodes find it.
	replica.stop()
	start = time.Now()
	require.True(t, poll(30*time.Second, func() bool { return shardSubs(primary.Addr, c.channel()) == len(nodes) }),
		"the nodes never all subscribed on %s after the kill", primary.Addr)
	moved = time.Since(start)
	kldr, kterm := c.waitStable(calm, nodes...)
	t.Logf("after kill -9 of %s every node subscribed on %s within %v (node-timeout 2s); %s leads term %d",
		replica.Addr, primary.Addr, moved.Round(time.Millisecond), kldr.id, kterm)
	assert.Greater(t, kterm, nterm)

	// Resharding: the slot migrates, term key and all, to another primary.
	// An election while it migrates gets ASK for the term key; once it
	// moved, the subscriptions get an unasked sunsubscribe and the nodes
	// follow it.
	slot := keySlot(c.channel())
	var to *redisServer
	for _, n := range rc.nodes {
		role, err := redis.Values(redisClient(t, n.Addr).Do("ROLE"))
		if n != primary && n != replica && err == nil && string(role[0].([]byte)) == "master" {
			to = n
			break
		}
	}
	require.NotNil(t, to, "no other primary")
	from := redisClient(t, primary.Addr)
	dest := redisClient(t, to.Addr)
	fromID, err := redis.String(from.Do("CLUSTER", "MYID"))
	require.NoError(t, err)
	toID, err := redis.String(dest.Do("CLUSTER", "MYID"))
	require.NoError(t, err)
	_, err = dest.Do("CLUSTER", "SETSLOT", slot, "IMPORTING", fromID)
	require.NoError(t, err)
	_, err = from.Do("CLUSTER", "SETSLOT", slot, "MIGRATING", toID)
	require.NoError(t, err)
	keys, err := redis.Strings(from.Do("CLUSTER", "GETKEYSINSLOT", slot, 100))
	require.NoError(t, err)
	for _, k := range keys {
		_, err = from.Do("MIGRATE", "127.0.0.1", to.port, k, 0, 5000)
		require.NoError(t, err, "MIGRATE %s", k)
	}
	// With the slot half-migrated the term key is on the target: a new
	// election's EVAL gets ASK, which fails the round (no term without the
	// key) and counts as a redirect; no node may lead a new term meanwhile.
	redirects0, keyErrs0 := uint64(0), uint64(0)
	for _, nd := range nodes {
		st := nd.e.Status()
		redirects0, keyErrs0 = redirects0+st.Redirects, keyErrs0+st.TermKeyErrors
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	require.NoError(t, kldr.e.Resign(ctx))
	cancel()
	require.True(t, poll(waitLong, func() bool {
		var r, k uint64
		for _, nd := range nodes {
			st := nd.e.Status()
			r, k = r+st.Redirects, k+st.TermKeyErrors
		}
		return r > redirects0 && k > keyErrs0
	}), "no election met ASK while the slot migrated")
	for _, nd := range nodes {
		assert.False(t, nd.e.IsLeader(), "%s leads without the term key", nd.id)
	}
	for _, n := range []redis.Conn{dest, from} {
		_, err = n.Do("CLUSTER", "SETSLOT", slot, "NODE", toID)
		require.NoError(t, err)
	}
	start = time.Now()
	require.True(t, poll(20*time.Second, func() bool { return shardSubs(to.Addr, c.channel()) == len(nodes) }),
		"the nodes never all subscribed on %s after the resharding", to.Addr)
	moved = time.Since(start)
	rldr, rterm := c.waitStable(calm, nodes...)
	got, err = redis.Uint64(dest.Do("GET", c.channel()+":term"))
	require.NoError(t, err, "no term key on the slot's new primary")
	assert.GreaterOrEqual(t, got, rterm)
	t.Logf("after the resharding (%d keys moved) every node subscribed on %s within %v; %s leads term %d",
		len(keys), to.Addr, moved.Round(time.Millisecond), rldr.id, rterm)
}

// TestSimLargeGroup runs a group of -sim.large nodes (1025, say) in the
// simulator with no faults but crashes of the leader, at the default
// timings, in dynamic and strict mode, and reports what the group costs:
// the time to its first leader, messages delivered per HeartbeatInterval
// with a healthy leader, and per crash the failover and the terms it used.
// The checks of every schedule still apply (no two active leaders, one
// leader per term, terms never back).
//
//	go test -run '^TestSimLargeGroup$' -sim.large 1025 -v .
func TestSimLargeGroup(t *testing.T) {
	if *simLarge == 0 {
		t.Skip("set -sim.large N")
	}
	for _, strict := range []bool{false, true} {
		s := &sim{seed: 1, rnd: mrand.New(mrand.NewPCG(1, 0x1a6e)), leaders: map[uint64]string{}}
		s.redis = simRedis{up: true, subs: map[string][]*simConn{}}
		cfg := Config{Group: "g"}.withDefaults()
		if strict {
			cfg.ClusterSize = *simLarge
		}
		s.p = simParams{n: *simLarge, strict: strict, cfg: cfg, rateSpread: 0.005,
			latency: 500 * time.Microsecond, jitter: time.Millisecond, outBuf: 1 << 30}
		for i := range s.p.n {
			n := &simNode{s: s, slot: i, rate: 1 + s.p.rateSpread*(2*s.rnd.Float64()-1),
				origin: time.Unix(int64(1e9+s.rnd.IntN(1e6)), 0)}
			n.id = fmt.Sprintf("n%d", i)
			s.nodes = append(s.nodes, n)
			s.at(time.Duration(s.rnd.Int64N(int64(cfg.PeerTimeout))), n.start)
		}
		// run steps the schedule until done holds or limit of simulated
		// time passes, and reports whether done held.
		run := func(limit time.Duration, done func() bool) bool {
			end := s.now + limit
			looked := time.Duration(-1)
			for len(s.queue) > 0 && s.fail == "" {
				ev := s.queue.pop()
				if ev.at > end {
					s.queue.push(ev)
					s.now = end
					return false
				}
				s.now = ev.at
				ev.fn()
				// Look at most once per simulated millisecond: done looks
				// at every node, and a large group has many events a
				// millisecond.
				if done != nil && s.now-looked >= time.Millisecond {
					looked = s.now
					if done() {
						return true
					}
				}
			}
			return false
		}
		activeLeader := func() *simNode {
			for _, n := range s.nodes {
				if n.alive && n.c.st.activeAt(n.local()) {
					return n
				}
			}
			return nil
		}
		mode := modeLabel(strict)
		wall := time.Now()
		require.True(t, run(30*time.Second, func() bool { return activeLeader() != nil }), "%s: no leader within 30 s", mode)
		first := s.now
		run(time.Second, nil) // settle
		d0, t0 := s.delivered, s.now
		run(2*time.Second, nil)
		perBeat := float64(s.delivered-d0) / (float64(s.now-t0) / float64(cfg.HeartbeatInterval))
		t.Logf("%s, %d nodes: first leader at %v; %.0f messages delivered per HeartbeatInterval with a healthy leader (%.2f per node)",
			mode, s.p.n, first.Round(time.Millisecond), perBeat, perBeat/float64(s.p.n))
		for k := range 3 {
			l := activeLeader()
			require.NotNil(t, l, "%s: no leader before crash %d", mode, k+1)
			term := l.c.st.term
			l.crash()
			at := s.now
			ok := run(30*time.Second, func() bool { n := activeLeader(); return n != nil && n.c.st.term > term })
			require.True(t, ok, "%s: no new leader within 30 s of crash %d", mode, k+1)
			nl := activeLeader()
			t.Logf("%s crash %d: %s (term %d) -> %s (term %d) in %v, %d term(s)", mode, k+1, l.id, term, nl.id, nl.c.st.term,
				(s.now - at).Round(time.Millisecond), nl.c.st.term-term)
			s.at(s.now+cfg.PeerTimeout, l.start) // back, as a new incarnation
			run(2*time.Second, nil)
		}
		require.Empty(t, s.fail, "%s: a check failed", mode)
		t.Logf("%s: %v simulated in %v", mode, s.now.Round(time.Millisecond), time.Since(wall).Round(time.Millisecond))
	}
}

func modeLabel(strict bool) string {
	if strict {
		return "strict"
	}
	return "dynamic"
}

// TestFastPathWaitsNoLongerThanItMust: after a crash a winner waits out
// the old lease from the latest moment any voter heard the old leader, on
// its own clock. Its own moment it knows exactly; a voter's it bounds by
// the vote's receipt less the vote's Ago. It must not take its own Ago as
// it was when it sent the vote request and apply it when the last vote
// came, a whole round trip later: on a loaded machine that round trip was
// tens of milliseconds added to every failover.
func TestFastPathWaitsNoLongerThanItMust(t *testing.T) {
	c := offlineCore(t, Config{ID: "c", ClusterSize: 3})
	at := time.Now() // c last hears the leader L, which names c its heir
	lease, margin := c.cfg.LeaseTimeout, c.cfg.PeerTimeout/20
	c.receive(at, &message{Type: msgHeartbeat, Flags: flagLeader, Term: 1, Seq: 1, Live: 3, Inc: 1, From: "L", To: "c"})
	require.Equal(t, "L", c.st.leader)

	// L's next heartbeat does not come; Redis says L's process is gone.
	now := at
	var asked bool
	for !asked && now.Before(at.Add(lease)) {
		now = now.Add(5 * time.Millisecond)
		out, _ := c.tick(now)
		for _, o := range out {
			if o.kind == outNumSub && o.id == "L" {
				c.numSubAnswer(now, "L", o.round, 0, nil)
				asked = true
			}
		}
	}
	require.True(t, asked, "no NUMSUB of the silent leader")
	var preVote *message
	for preVote == nil && now.Before(at.Add(lease)) {
		now = now.Add(time.Millisecond)
		out, _ := c.tick(now)
		for _, o := range out {
			if o.kind == outPublish && o.msg.Type == msgPreVote {
				preVote = &o.msg
			}
		}
	}
	require.NotNil(t, preVote, "the heir did not campaign")
	var round uint64
	for _, o := range c.receive(now, &message{Type: msgPreVoteReply, Term: preVote.Term, Seq: 1, Inc: 2, From: "v", To: "c", Flags: flagGranted}) {
		if o.kind == outTermKey {
			round = o.round
		}
	}
	require.NotZero(t, round, "no term asked for after the pre-vote")
	sent := now.Add(2 * time.Millisecond) // the vote request goes out
	c.termAnswer(sent, round, 2, nil)
	require.Equal(t, uint64(2), c.st.term)
	// v heard L at the same moment as c, voted 20 ms after the request
	// was sent, and its vote took 20 ms more to reach c.
	voted, got := sent.Add(20*time.Millisecond), sent.Add(40*time.Millisecond)
	c.receive(got, &message{Type: msgVote, Term: 2, Seq: 2, Inc: 2, From: "v", To: "c", Flags: flagGranted, Ago: uint64(voted.Sub(at) / time.Microsecond)})
	require.Equal(t, Leader, c.st.role)
	// What c can know: v heard L no later than got - Ago = at + 20 ms.
	want := at.Add(20*time.Millisecond + lease + margin)
	assert.WithinDuration(t, want, c.st.notBefore, time.Millisecond, "active from %v after L's last heartbeat; the bound is %v",
		c.st.notBefore.Sub(at), want.Sub(at))
}

// TestElectorMemory: an Elector costs little memory while nothing queues
// for it. Its inbox was a channel of 1024 events, 160 KB allocated up
// front: 160 MB for a process of 1000 groups, which the garbage collector
// scanned in every cycle (on a 2-core machine one took over a second and
// stalled the process past its leases).
func TestElectorMemory(t *testing.T) {
	const groups = 200
	r := startRedis(t)
	link := &Link{Addr: r.Addr}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	els := make([]*Elector, groups)
	for g := range els {
		e, err := New(Config{Link: link, Group: fmt.Sprintf("mem%d", g), ID: "n"})
		require.NoError(t, err)
		els[g] = e
		wg.Go(func() { _ = e.Run(ctx) })
	}
	defer func() { cancel(); wg.Wait() }()
	require.True(t, poll(waitLong, func() bool {
		for _, e := range els {
			if e.Ready() != nil {
				return false
			}
		}
		return true
	}), "not every Elector became ready")
	runtime.GC()
	runtime.ReadMemStats(&ms)
	per := (int64(ms.HeapAlloc) - int64(before)) / groups
	t.Logf("%d Electors on one Link: %d bytes of heap each", groups, per)
	assert.Less(t, per, int64(48<<10), "heap per running Elector")
}

// TestPublisherBackWithTheSubscriber: once the subscriber is back after an
// outage, the publisher dials at once for the heartbeat that follows the
// subscription, whatever its own backoff says. That heartbeat's echo is
// what proves a node's link (Status().Connected), without which it
// neither votes nor stands; held back by the backoff, it was lost, and the
// node took part only after its next heartbeat, PeerTimeout/3 later (in a
// redis-restart chaos run in strict mode, 150 to 170 ms for most nodes).
// Whether the publisher is still backing off when the subscriber gets
// through is chance (3 of the 12 outages measured without the fix), so
// the test takes three.
func TestPublisherBackWithTheSubscriber(t *testing.T) {
	const groups, outages = 100, 3
	const hb, lease, peer = time.Second, 2 * time.Second, 2500 * time.Millisecond // a backoff of up to 250 ms
	r := startRedis(t)
	link := &Link{Addr: r.Addr}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	els := make([]*Elector, groups)
	for g := range els {
		e, err := New(Config{Link: link, Group: fmt.Sprintf("pub%d", g), ID: "n", ClusterSize: 1,
			HeartbeatInterval: hb, LeaseTimeout: lease, PeerTimeout: peer})
		require.NoError(t, err)
		els[g] = e
		wg.Go(func() { _ = e.Run(ctx) })
	}
	defer func() { cancel(); wg.Wait() }()
	for round := range outages {
		require.True(t, poll(waitLong+peer, func() bool {
			for _, e := range els {
				if !e.IsLeader() {
					return false
				}
			}
			return true
		}), "outage %d: not every lone Elector leads", round)
		before := els[0].Status().Reconnects
		r.stop()
		// Longer than PeerTimeout, so that no echo from before the outage
		// still proves the link; the publisher fails its dials meanwhile.
		time.Sleep(peer + 500*time.Millisecond) // the outage itself, not a wait for a condition
		r.restart()
		back := make([]time.Time, groups)
		proved := make([]time.Time, groups)
		require.True(t, poll(waitLong+peer, func() bool {
			done := true
			for g, e := range els {
				e.mu.Lock()
				subscribed := e.c.st.subscribed
				e.mu.Unlock()
				if back[g].IsZero() && subscribed && e.Status().Reconnects > before {
					back[g] = time.Now()
				}
				if !back[g].IsZero() && proved[g].IsZero() && e.Status().Connected {
					proved[g] = time.Now()
				}
				done = done && !proved[g].IsZero()
			}
			return done
		}), "outage %d: not every Elector resubscribed and proved its link", round)
		var worst time.Duration
		for g := range els {
			worst = max(worst, proved[g].Sub(back[g]))
		}
		t.Logf("outage %d: from the resubscription to a proved link: at most %v", round, worst.Round(time.Millisecond))
		assert.Less(t, worst, peer/3/2, "outage %d: a node proved its link only with a later heartbeat", round)
	}
}
