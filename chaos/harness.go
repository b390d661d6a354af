package main

// The harness: one redis-server, one in-process toxiproxy with a proxy per
// node slot, the node processes, and the recorder that collects their
// events. Every process it starts is in its own process group, gets SIGKILL
// if the harness dies (Pdeathsig), and is killed by Close.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/gomodule/redigo/redis"
	"github.com/rs/zerolog"
)

// Harness owns every process and port of a run.
type Harness struct {
	cfg    *Config
	bin    string // this executable, re-run as "node"
	logDir string

	redis   *redisServer
	tp      *toxiproxy.ApiServer
	proxies []*toxiproxy.Proxy // index = slot-1

	mu      sync.Mutex       // guards procs, all, cut
	procs   []*nodeProc      // current process per slot (index slot-1), nil when none
	all     []*nodeProc      // every process ever started, for Close
	cut     []bool           // slot has a partition toxic on its link
	rec     *Recorder        // the current scenario's recorder
	inc     map[int]int      // processes started per slot, for unique IDs
	extra   map[int][]string // node flags of one slot, after the scenario's (the last of a flag wins)
	burners []burner         // -load

	stallRec atomic.Pointer[Recorder] // where the harness's own stalls go

	// A deployment (Sentinel or Cluster) for the scenarios that use one:
	// started when the first of them runs, stopped when a scenario needs
	// another or none, or at Close.
	dep      string               // "", deploySentinel or deployCluster
	sentinel *sentinelDeployment  // when dep is deploySentinel
	cluster  *clusterDeployment   // when dep is deployCluster
	depLinks [][]*toxiproxy.Proxy // per slot (index slot-1): a proxy to each data server, in the deployment's order
	depAddrs []string             // the deployment's data servers
}

// NewHarness starts redis-server and the proxies. Close undoes it.
func NewHarness(cfg *Config) (*Harness, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding own executable: %w", err)
	}
	h := &Harness{cfg: cfg, bin: bin, logDir: filepath.Join(cfg.Out, "logs"), inc: map[int]int{}}
	if err := os.MkdirAll(h.logDir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	h.redis = newRedisServer(port, filepath.Join(h.logDir, "redis-server.log"))
	if err := h.redis.start(); err != nil {
		return nil, err
	}
	h.tp = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	for i := 1; i <= cfg.Nodes && !cfg.NoProxy; i++ {
		p := toxiproxy.NewProxy(h.tp, fmt.Sprintf("n%d", i), "127.0.0.1:0", h.redis.addr())
		if err := p.Start(); err != nil {
			h.Close()
			return nil, fmt.Errorf("starting proxy for n%d: %w", i, err)
		}
		h.proxies = append(h.proxies, p)
	}
	h.procs = make([]*nodeProc, cfg.Nodes)
	h.cut = make([]bool, cfg.Nodes)
	// The harness's own stalls (slot 0), for the lifetime of the process.
	go stallLoop(func(ev Event) {
		if r := h.stallRec.Load(); r != nil {
			ev.ID = "harness"
			r.add(ev)
		}
	}, 10*time.Millisecond)
	return h, nil
}

// setRecorder makes rec the recorder of the scenario that runs next.
func (h *Harness) setRecorder(rec *Recorder) {
	h.rec = rec
	h.stallRec.Store(rec)
	h.mu.Lock()
	h.extra = nil
	h.mu.Unlock()
}

// SetSlotArgs gives the next processes of slot extra node flags (a key
// rotation restarts each node with new keys), until the next scenario.
func (h *Harness) SetSlotArgs(slot int, args ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.extra == nil {
		h.extra = map[int][]string{}
	}
	h.extra[slot] = args
}

// StartLoad starts n processes that burn CPU until the harness ends: a
// loaded host, where the nodes compete for the cores. Close kills them.
func (h *Harness) StartLoad(n int) error {
	for range n {
		cmd := exec.Command(h.bin, "burn")
		cmd.SysProcAttr = procAttr()
		stdin, err := cmd.StdinPipe() // EOF ends it, should the harness die
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting a CPU burner: %w", err)
		}
		h.mu.Lock()
		h.burners = append(h.burners, burner{cmd, stdin})
		h.mu.Unlock()
	}
	return nil
}

// burner is one CPU-burning process.
type burner struct {
	cmd   *exec.Cmd
	stdin io.Closer
}

// RedisAddr is the address of redis-server itself, past every proxy.
func (h *Harness) RedisAddr() string { return h.redis.addr() }

// Close kills every process the harness started and stops the proxies.
// It is safe to call more than once.
func (h *Harness) Close() {
	h.mu.Lock()
	all := slices.Clone(h.all)
	burners := h.burners
	h.burners = nil
	h.mu.Unlock()
	for _, b := range burners {
		_ = b.cmd.Process.Kill()
		b.stdin.Close()
		_ = b.cmd.Wait()
	}
	for _, p := range all {
		p.kill()
	}
	for _, p := range all {
		p.waitExit(2 * time.Second)
	}
	for _, p := range h.proxies {
		p.Stop()
	}
	h.proxies = nil
	h.stopDeployment()
	if h.redis != nil {
		h.redis.stop()
	}
}

// freePort asks the kernel for a free loopback TCP port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// procAttr puts a child in its own process group (a terminal's Ctrl-C goes
// to the harness, which cleans up) and kills it if the harness dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// ---- redis-server ----

// redisServer is the single redis-server of the scenarios without a
// deployment. Every start writes a new epoch to the fence's epoch key.
type redisServer struct {
	serverProc
	epoch int64 // incremented at every start; written to the epoch key
}

func newRedisServer(port int, logPath string) *redisServer {
	r := &redisServer{serverProc: serverProc{name: "redis-server", port: port, logPath: logPath}}
	r.args = func() []string {
		return []string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--protected-mode", "yes"}
	}
	r.ready = func() error {
		c, err := redis.Dial("tcp", r.addr(), redis.DialConnectTimeout(100*time.Millisecond),
			redis.DialReadTimeout(time.Second))
		if err != nil {
			return err
		}
		defer c.Close()
		_, _, kEpoch := fenceKeys("", false)
		if _, err := c.Do("SET", kEpoch, r.epoch+1); err != nil {
			return err
		}
		r.epoch++
		return nil
	}
	return r
}

// stop SIGKILLs the server: its data is gone, as in a crash.
func (r *redisServer) stop() { r.kill() }

// ---- node processes ----

type nodeProc struct {
	slot  int
	id    string
	cmd   *exec.Cmd
	stdin interface{ Close() error }
	done  chan struct{} // closed when reaped
	mu    sync.Mutex    // guards state
	state string        // "running", "stopped" (SIGSTOP), "exited"
}

func (p *nodeProc) signal(sig syscall.Signal) error {
	return syscall.Kill(p.cmd.Process.Pid, sig)
}

func (p *nodeProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
}

func (p *nodeProc) waitExit(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

func (p *nodeProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// StartNode starts a new incarnation of slot (1-based) in the recorder's
// group, with ClusterSize clusterSize.
func (h *Harness) StartNode(slot, clusterSize int) (*nodeProc, error) {
	h.mu.Lock()
	h.inc[slot]++
	id := fmt.Sprintf("n%d.%d", slot, h.inc[slot])
	h.mu.Unlock()
	return h.StartNodeID(slot, clusterSize, id)
}

// StartNodeID starts a process for slot with the given ID: a restart with
// the same ID is a process that forgot everything but its configuration
// (the amnesia scenario).
func (h *Harness) StartNodeID(slot, clusterSize int, id string) (*nodeProc, error) {
	rec := h.rec
	c := h.cfg
	addr := h.redis.addr()
	if !c.NoProxy {
		addr = h.proxies[slot-1].Listen
	}
	status := c.StatusEvery
	if status <= 0 {
		status = 100 * time.Millisecond
	}
	args := []string{"node",
		"-id", id,
		"-addr", addr,
		"-redis", h.redis.addr(),
		"-group", rec.group,
		"-heartbeat", c.Heartbeat.String(),
		"-lease", c.Lease.String(),
		"-peer-timeout", c.PeerTimeout.String(),
		"-jitter", c.Jitter.String(),
		"-cluster-size", strconv.Itoa(clusterSize),
		"-tick", c.Tick.String(),
		"-log-level", c.NodeLogLevel,
		"-algo", rec.algo,
		"-status", status.String(),
	}
	if c.StallEvery > 0 {
		args = append(args, "-stall-every", c.StallEvery.String())
	}
	args = append(args, h.deploymentArgs(slot)...)
	args = append(args, rec.nodeArgs...)
	h.mu.Lock()
	args = append(args, h.extra[slot]...)
	h.mu.Unlock()
	cmd := exec.Command(h.bin, args...)
	if c.NodeNice > 0 {
		// nice(1) execs the node: the same pid, every thread at that niceness.
		cmd = exec.Command("nice", append([]string{"-n", strconv.Itoa(c.NodeNice), h.bin}, args...)...)
	}
	cmd.SysProcAttr = procAttr()
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	dir := filepath.Join(h.logDir, rec.scenario)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// append: a restart with the same ID (amnesia) keeps the earlier log
	logf, err := os.OpenFile(filepath.Join(dir, id+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting node %s: %w", id, err)
	}
	logf.Close() // the child has its own descriptor
	p := &nodeProc{slot: slot, id: id, cmd: cmd, stdin: stdin, done: make(chan struct{}), state: "running"}
	rec.add(Event{T: mono(), Ev: evProcStart, ID: id, Slot: slot})
	h.mu.Lock()
	h.procs[slot-1] = p
	h.all = append(h.all, p)
	h.mu.Unlock()

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			var ev Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				rec.add(Event{T: mono(), Ev: evAnomaly, ID: id, Slot: slot, Msg: "unparsable line: " + sc.Text()})
				continue
			}
			ev.Slot = slot
			if ev.ID == "" {
				ev.ID = id
			}
			rec.add(ev)
		}
	}()
	go func() {
		<-readDone
		err := cmd.Wait()
		msg := "exit 0"
		if err != nil {
			msg = err.Error()
		}
		rec.add(Event{T: mono(), Ev: evProcExit, ID: id, Slot: slot, Msg: msg})
		p.mu.Lock()
		p.state = "exited"
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// proc returns the current process of slot.
func (h *Harness) proc(slot int) *nodeProc {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.procs[slot-1]
}

// Signal sends sig to the current process of slot and keeps track of
// SIGSTOP/SIGCONT.
func (h *Harness) Signal(slot int, sig syscall.Signal) error {
	p := h.proc(slot)
	if p == nil {
		return fmt.Errorf("slot %d has no process", slot)
	}
	p.mu.Lock()
	switch sig {
	case syscall.SIGSTOP:
		p.state = "stopped"
	case syscall.SIGCONT:
		if p.state == "stopped" {
			p.state = "running"
		}
	}
	p.mu.Unlock()
	return p.signal(sig)
}

// KillAll SIGKILLs every node process and waits until they are reaped.
func (h *Harness) KillAll() {
	h.mu.Lock()
	procs := slices.Clone(h.procs)
	for i := range h.procs {
		h.procs[i] = nil
	}
	h.mu.Unlock()
	for _, p := range procs {
		if p != nil {
			p.kill()
		}
	}
	for _, p := range procs {
		if p != nil {
			p.waitExit(3 * time.Second)
		}
	}
	h.mu.Lock()
	h.all = slices.DeleteFunc(h.all, func(p *nodeProc) bool { return p.exited() })
	h.mu.Unlock()
}

// Reachable lists the slots whose process runs, is not stopped and whose
// link is not cut: the nodes that should follow the leader.
func (h *Harness) Reachable() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int
	for i, p := range h.procs {
		if p == nil || h.cut[i] {
			continue
		}
		p.mu.Lock()
		ok := p.state == "running"
		p.mu.Unlock()
		if ok {
			out = append(out, i+1)
		}
	}
	return out
}

// ---- network faults (toxiproxy) ----

// Cut blackholes slot's link to Redis: "both", "in" (downstream: the node
// is deaf) or "out" (upstream: the node is mute). It is a timeout toxic
// with timeout 0: data is dropped and connections stay open.
func (h *Harness) Cut(slot int, dir string) error {
	streams := map[string][]string{"both": {"upstream", "downstream"}, "in": {"downstream"}, "out": {"upstream"}}[dir]
	if streams == nil {
		return fmt.Errorf("bad cut direction %q", dir)
	}
	for _, p := range h.slotProxies(slot) {
		for _, s := range streams {
			js := fmt.Sprintf(`{"name":"cut-%s","type":"timeout","stream":%q,"toxicity":1,"attributes":{"timeout":0}}`, s, s)
			if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
				return fmt.Errorf("cutting n%d %s: %w", slot, s, err)
			}
		}
	}
	h.mu.Lock()
	h.cut[slot-1] = true
	h.mu.Unlock()
	return nil
}

// Latency adds latency±jitter to both directions of slot's link.
func (h *Harness) Latency(slot int, latency, jitter time.Duration) error {
	for _, p := range h.slotProxies(slot) {
		for _, s := range []string{"upstream", "downstream"} {
			js := fmt.Sprintf(`{"name":"lat-%s","type":"latency","stream":%q,"toxicity":1,"attributes":{"latency":%d,"jitter":%d}}`,
				s, s, latency.Milliseconds(), jitter.Milliseconds())
			if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
				return fmt.Errorf("latency on n%d %s: %w", slot, s, err)
			}
		}
	}
	return nil
}

// Heal removes every toxic from slot's link. Removing a timeout toxic
// closes the proxy's connections: a heal after a cut is also a reconnect.
func (h *Harness) Heal(slot int) {
	for _, p := range h.slotProxies(slot) {
		p.Toxics.ResetToxics(context.Background())
	}
	h.mu.Lock()
	h.cut[slot-1] = false
	h.mu.Unlock()
}

// Uncut removes only the cut toxics of slot's link (other toxics, e.g.
// latency, stay). Like Heal, it closes the proxy's connections.
func (h *Harness) Uncut(slot int) {
	for _, p := range h.slotProxies(slot) {
		for _, s := range []string{"upstream", "downstream"} {
			_ = p.Toxics.RemoveToxic(context.Background(), "cut-"+s)
		}
	}
	h.mu.Lock()
	h.cut[slot-1] = false
	h.mu.Unlock()
}

// Drop closes every connection of slot's links at once (new ones are
// accepted right after): a timeout toxic added and removed again, whose
// removal closes the proxy's connections.
func (h *Harness) Drop(slot int) error {
	for _, p := range h.slotProxies(slot) {
		js := `{"name":"drop","type":"timeout","stream":"downstream","toxicity":1,"attributes":{"timeout":0}}`
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			return fmt.Errorf("dropping n%d's connections: %w", slot, err)
		}
		if err := p.Toxics.RemoveToxic(context.Background(), "drop"); err != nil {
			return fmt.Errorf("dropping n%d's connections: %w", slot, err)
		}
	}
	return nil
}

// slotProxies are slot's links: its proxy to the one redis-server, and in
// a deployment its proxy to each data server.
func (h *Harness) slotProxies(slot int) []*toxiproxy.Proxy {
	var out []*toxiproxy.Proxy
	if slot-1 < len(h.proxies) {
		out = append(out, h.proxies[slot-1])
	}
	if slot-1 < len(h.depLinks) {
		out = append(out, h.depLinks[slot-1]...)
	}
	return out
}

// HealAll removes every toxic from every link.
func (h *Harness) HealAll() {
	for i := range max(len(h.proxies), len(h.depLinks)) {
		h.Heal(i + 1)
	}
}

// RedisDown kills redis-server (SIGKILL: no goodbye to clients).
func (h *Harness) RedisDown() { h.redis.stop() }

// RedisUp starts redis-server again on the same port.
func (h *Harness) RedisUp() error { return h.redis.start() }

// Flood publishes n junk messages of 16 to 79 random bytes on channel over
// its own connection straight to redis-server (no proxy), pipelined 1000 at
// a time: as fast as one client can. It returns how long that took.
func (h *Harness) Flood(ctx context.Context, channel string, n int, rng *rand.Rand) (time.Duration, error) {
	c, err := redis.Dial("tcp", h.redis.addr(), redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(5*time.Second), redis.DialWriteTimeout(5*time.Second))
	if err != nil {
		return 0, fmt.Errorf("flood: %w", err)
	}
	defer c.Close()
	junk := make([][]byte, 64)
	for i := range junk {
		junk[i] = make([]byte, 16+i)
		for k := range junk[i] {
			junk[i][k] = byte(rng.UintN(256))
		}
	}
	const batch = 1000
	start := time.Now()
	for sent := 0; sent < n; {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		k := min(batch, n-sent)
		for i := range k {
			if err := c.Send("PUBLISH", channel, junk[(sent+i)%len(junk)]); err != nil {
				return 0, fmt.Errorf("flood: %w", err)
			}
		}
		if err := c.Flush(); err != nil {
			return 0, fmt.Errorf("flood: %w", err)
		}
		for range k {
			if _, err := c.Receive(); err != nil {
				return 0, fmt.Errorf("flood: %w", err)
			}
		}
		sent += k
	}
	return time.Since(start), nil
}

// ---- the recorder ----

// slotLive is what the harness knows now about one slot, kept up to date as
// events arrive, so a scenario can wait for a stable leader.
type slotLive struct {
	id         string // current incarnation
	follow     string // leader it follows ("" none)
	followTerm uint64
	followT    int64 // stamp of the event that set follow
	tickID     string
	tickTerm   uint64
	lastTick   int64 // t of its last tick
	runStart   int64 // t of the first tick of its current unbroken run
	term       uint64
	status     Event // the last status report
	pid        int
}

// Recorder collects the events of one scenario.
type Recorder struct {
	scenario string // label: the scenario's name, with ".lock" for the lock baseline
	algo     string
	nodeArgs []string // extra node flags of the scenario
	group    string
	tickGap  int64 // a gap longer than this breaks a tick run

	mu     sync.Mutex // guards events, live, faults
	events []Event
	live   map[int]*slotLive
	faults []Fault
}

// Fault is one injected fault, stamped on CLOCK_MONOTONIC.
type Fault struct {
	Trial int    `json:"trial"`
	Kind  string `json:"kind"`
	Slots []int  `json:"slots,omitempty"` // empty: every link or Redis itself
	Start int64  `json:"start"`
	End   int64  `json:"end"` // 0 while active
}

func newRecorder(scenario, algo, group string, tick time.Duration) *Recorder {
	return &Recorder{scenario: scenario, algo: algo, group: group, tickGap: int64(8 * tick), live: map[int]*slotLive{}}
}

func (r *Recorder) add(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	if ev.Slot == 0 {
		return
	}
	l := r.live[ev.Slot]
	if l == nil || ev.Ev == evProcStart {
		l = &slotLive{id: ev.ID}
		r.live[ev.Slot] = l
	}
	if ev.ID != l.id {
		return // a late line from an earlier incarnation
	}
	switch ev.Ev {
	case evNew:
		if ev.T >= l.followT {
			l.follow, l.followTerm, l.followT = ev.Leader, ev.LTerm, ev.T
		}
	case evStatus:
		if ev.T >= l.followT {
			l.follow, l.followTerm, l.followT = ev.Leader, ev.LTerm, ev.T
		}
		l.term = max(l.term, ev.Term)
		l.status = ev
	case evTick:
		if ev.Term != l.tickTerm || ev.T-l.lastTick > r.tickGap {
			l.runStart = ev.T
		}
		l.tickID, l.tickTerm, l.lastTick = ev.ID, ev.Term, ev.T
	case evProcExit:
		l.follow, l.followTerm = "", 0
	}
}

// addFault records a fault and returns its index for endFault.
func (r *Recorder) addFault(f Fault) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, f)
	return len(r.faults) - 1
}

func (r *Recorder) endFault(i int, t int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults[i].End = t
}

// snapshot returns a copy of the events and faults so far.
func (r *Recorder) snapshot() ([]Event, []Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events), slices.Clone(r.faults)
}

// leastLease returns the least lease left (Event.LeaseLeft) that a status
// report stamped in [from, to] shows, and false if none showed one.
func (r *Recorder) leastLease(from, to int64) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	least := int64(-1)
	for _, ev := range r.events {
		if ev.Ev == evStatus && ev.LeaseLeft > 0 && ev.T >= from && ev.T <= to && (least < 0 || ev.LeaseLeft < least) {
			least = ev.LeaseLeft
		}
	}
	return time.Duration(least) * time.Microsecond, least >= 0
}

// termOf returns the ID of slot's current process and the highest term its
// status reports showed.
func (r *Recorder) termOf(slot int) (string, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.live[slot]; l != nil {
		return l.id, l.term
	}
	return "", 0
}

// heirOf returns the slot whose current process slot's last status names
// as heir, or 0.
func (r *Recorder) heirOf(slot int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.live[slot]
	if l == nil || l.status.Heir == "" {
		return 0
	}
	for s, o := range r.live {
		if o.id == l.status.Heir {
			return s
		}
	}
	return 0
}

// stableLeader reports the leader if the group is stable at now: one node
// of expect (any node when expect is nil) has ticked without a break since
// from = max(its run start, since), for at least minRun, no other node has
// ticked in that time, and every slot in expect follows it at its term.
func (r *Recorder) stableLeader(now int64, expect []int, minRun time.Duration, since int64) (slot int, id string, term uint64, from int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var best *slotLive
	for s, l := range r.live {
		if expect != nil && !slices.Contains(expect, s) {
			continue
		}
		if l.lastTick > 0 && (best == nil || l.lastTick > best.lastTick) {
			best, slot = l, s
		}
	}
	if best == nil {
		return 0, "", 0, 0, false
	}
	from = max(best.runStart, since)
	if now-best.lastTick > 60*int64(time.Millisecond) || best.lastTick < from || now-from < int64(minRun) {
		return 0, "", 0, 0, false
	}
	for s, l := range r.live {
		if s != slot && l.lastTick >= from {
			return 0, "", 0, 0, false
		}
	}
	for _, s := range expect {
		l := r.live[s]
		if l == nil || l.follow != best.tickID || l.followTerm != best.tickTerm {
			return 0, "", 0, 0, false
		}
	}
	return slot, best.tickID, best.tickTerm, from, true
}
