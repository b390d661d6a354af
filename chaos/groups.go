package main

// Many Electors per process, sharing one leader.Link:
//
//   - the group sweep (-sweep-groups 1,10,100,1000): for each G, 3 node
//     processes ("gnode", gnode.go), each running one Elector in every one
//     of G groups (strict mode, ClusterSize 3), on a fresh redis-server;
//   - the crowd (-crowd 5x205): P processes, each running E Electors of ONE
//     group with distinct IDs (P*E Electors in all).
//
// Both run the same script on a fleet: start every process at once, wait
// until every group has a leader that every Elector follows, a calm window
// (-sweep-calm: connections per process, CPU of redis-server and of the
// nodes, messages, spurious changes), then -sweep-crashes SIGKILLs of the
// process that leads the most groups (the crowd: the one holding the
// leader), each measured per group it led from the kill to the first
// evidence of a new active leader in another process (its OnStartedLeading,
// or its first true tick), and restarted before the next. The nodes talk to
// Redis directly (no toxiproxy). Every wait is bounded; every process and
// the redis-server are killed at the end, on an error and on Ctrl-C.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"
)

// fleetSpec says what a fleet runs.
type fleetSpec struct {
	label       string // "G=1000", "crowd 5x205"
	procs       int    // node processes
	groups      int    // groups g0..g{groups-1}, in every process
	electors    int    // Electors per group per process
	clusterSize int    // 0: dynamic mode
	dir         string // logs
}

// gproc is one node process of a fleet.
type gproc struct {
	slot, inc int
	cmd       *exec.Cmd
	stdin     io.Closer
	started   int64         // mono at the start
	done      chan struct{} // closed when reaped
}

func (p *gproc) kill() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
}

func (p *gproc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *gproc) waitExit(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// lship is one leadership as the harness saw it: one call of
// OnStartedLeading in one process incarnation.
type lship struct {
	slot, inc    int
	id           string
	term         uint64
	start        int64 // the start line
	first0       int64 // the first true tick (0: none seen)
	first1       int64
	last0, last1 int64 // the last true tick, from the end line (0: none)
	end          int64 // the end line, or the kill of its process (0: open)
	killed       bool
}

// followed is what an Elector follows, from its OnNewLeader.
type followed struct {
	leader string
	term   uint64
}

// crashWatch is one SIGKILL being measured: the groups the victim led and
// the first evidence of a new active leader in each.
type crashWatch struct {
	victim   int
	at       int64          // mono just before the kill
	evidence map[int]int64  // group -> first start or true tick in another process after at (0: none yet)
	oldTerm  map[int]uint64 // group -> the victim's term
	newTerm  map[int]uint64 // group -> the new leader's term
	newBy    map[int]string // group -> the new leader
	newSlot  map[int]int    // group -> its process
}

// fleet owns the processes and the redis-server of one point of the
// group sweep, or of the crowd, and what their lines say.
type fleet struct {
	cfg   *Config
	spec  fleetSpec
	bin   string
	redis *redisServer

	mu         sync.Mutex // guards everything below
	cur        []*gproc   // index slot-1; nil while down
	all        []*gproc   // every process started, for close
	inc        []int      // incarnations per slot
	ready      []bool     // the current incarnation said ready
	leads      [][]*lship // per group, in order of their start lines
	active     []*lship   // per group: the open leadership of a live process, nil when none
	follows    []map[string]followed
	lastChange int64             // mono when the last start, end or new line arrived, or a process was killed
	watchFrom  int64             // the calm window: lines stamped from here on are changes (0: not watching)
	changed    map[int]int       // group -> change lines in the calm window
	changeSec  map[int]int       // second of the calm window -> change lines stamped in it
	calmFirst  map[int]gEvent    // slot -> the first status line stamped in the calm window (its counters are the window's start)
	crash      *crashWatch       // the kill being measured, or nil
	status     map[[2]int]gEvent // (slot, inc) -> its last status line
	stalls     []Stall
	violations []string
	anomalies  []string
	fenceBad   []string // fence-rejected lines, as text
	firstStart int64    // the first start line of the fleet
}

func newFleet(cfg *Config, spec fleetSpec) (*fleet, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding own executable: %w", err)
	}
	if err := os.MkdirAll(spec.dir, 0o755); err != nil {
		return nil, err
	}
	f := &fleet{cfg: cfg, spec: spec, bin: bin,
		cur: make([]*gproc, spec.procs), inc: make([]int, spec.procs), ready: make([]bool, spec.procs),
		leads: make([][]*lship, spec.groups), active: make([]*lship, spec.groups),
		follows: make([]map[string]followed, spec.groups), status: map[[2]int]gEvent{}}
	for g := range f.follows {
		f.follows[g] = map[string]followed{}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	f.redis = newRedisServer(port, filepath.Join(spec.dir, "redis-server.log"))
	if err := f.redis.start(); err != nil {
		return nil, err
	}
	return f, nil
}

// close kills every process and the redis-server. Safe to call twice.
func (f *fleet) close() {
	f.mu.Lock()
	all := slices.Clone(f.all)
	for i := range f.cur {
		f.cur[i] = nil
	}
	f.mu.Unlock()
	for _, p := range all {
		p.kill()
	}
	for _, p := range all {
		p.waitExit(3 * time.Second)
	}
	if f.redis != nil {
		f.redis.stop()
	}
}

// ids returns the Elector IDs of slot's process (the same in every group
// and every incarnation).
func (f *fleet) ids(slot int) []string {
	if f.spec.electors == 1 {
		return []string{fmt.Sprintf("p%d", slot)}
	}
	out := make([]string, f.spec.electors)
	for e := range out {
		out[e] = fmt.Sprintf("p%d.e%d", slot, e)
	}
	return out
}

func (f *fleet) idOf(slot, e int) string {
	if f.spec.electors == 1 {
		return fmt.Sprintf("p%d", slot)
	}
	return fmt.Sprintf("p%d.e%d", slot, e)
}

// start starts a new incarnation of slot (1-based).
func (f *fleet) start(slot int) error {
	c := f.cfg
	args := []string{"gnode",
		"-id", fmt.Sprintf("p%d", slot),
		"-redis", f.redis.addr(),
		"-groups", strconv.Itoa(f.spec.groups),
		"-electors", strconv.Itoa(f.spec.electors),
		"-cluster-size", strconv.Itoa(f.spec.clusterSize),
		"-heartbeat", c.Heartbeat.String(),
		"-lease", c.Lease.String(),
		"-peer-timeout", c.PeerTimeout.String(),
		"-jitter", c.Jitter.String(),
		"-tick", c.Tick.String(),
		"-status", c.StatusEvery.String(),
		"-log-level", c.NodeLogLevel,
		"-stall-every", c.StallEvery.String(),
		"-fence-every", c.FenceEvery.String(),
		"-link=" + strconv.FormatBool(!c.NoLink),
	}
	cmd := exec.Command(f.bin, args...)
	if c.NodeNice > 0 {
		cmd = exec.Command("nice", append([]string{"-n", strconv.Itoa(c.NodeNice), f.bin}, args...)...)
	}
	cmd.SysProcAttr = procAttr()
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	logf, err := os.OpenFile(filepath.Join(f.spec.dir, fmt.Sprintf("p%d.log", slot)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.inc[slot-1]++
	inc := f.inc[slot-1]
	f.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting p%d: %w", slot, err)
	}
	p := &gproc{slot: slot, inc: inc, cmd: cmd, stdin: stdin, started: mono(), done: make(chan struct{})}
	f.mu.Lock()
	f.cur[slot-1] = p
	f.ready[slot-1] = false
	f.all = append(f.all, p)
	f.mu.Unlock()
	// every line goes to events/p<slot>.<inc>.jsonl too, for digging
	var dump *bufio.Writer
	var dumpf *os.File
	if err := os.MkdirAll(filepath.Join(f.spec.dir, "events"), 0o755); err == nil {
		if dumpf, err = os.Create(filepath.Join(f.spec.dir, "events", fmt.Sprintf("p%d.%d.jsonl", slot, inc))); err == nil {
			dump = bufio.NewWriterSize(dumpf, 256*1024)
		}
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		if dump != nil {
			defer func() { _ = dump.Flush(); dumpf.Close() }()
		}
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			if dump != nil {
				_, _ = dump.Write(sc.Bytes())
				_ = dump.WriteByte('\n')
			}
			var ev gEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				f.mu.Lock()
				f.anomalies = append(f.anomalies, fmt.Sprintf("p%d: unparsable line %q", slot, sc.Text()))
				f.mu.Unlock()
				continue
			}
			f.handle(slot, inc, ev)
		}
	}()
	go func() {
		<-readDone
		_ = cmd.Wait()
		close(p.done)
	}()
	return nil
}

// handle folds one line of slot's incarnation inc into the fleet's state.
func (f *fleet) handle(slot, inc int, ev gEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.cur[slot-1]
	current := p != nil && p.inc == inc
	g := ev.G
	if g < 0 || g >= f.spec.groups || ev.E < 0 || ev.E >= f.spec.electors {
		f.anomalies = append(f.anomalies, fmt.Sprintf("p%d: line for group %d elector %d: out of range", slot, g, ev.E))
		return
	}
	id := f.idOf(slot, ev.E)
	switch ev.Ev {
	case evStart:
		l := &lship{slot: slot, inc: inc, id: id, term: ev.Term, start: ev.T}
		for _, o := range f.leads[g] {
			if o.term == l.term && (o.slot != slot || o.inc != inc || o.id != id) {
				f.violations = append(f.violations, fmt.Sprintf("group g%d: two leaders of term %d: %s (p%d incarnation %d) and %s (p%d incarnation %d)",
					g, l.term, o.id, o.slot, o.inc, id, slot, inc))
			}
		}
		f.leads[g] = append(f.leads[g], l)
		if current {
			f.active[g] = l
		}
		if f.firstStart == 0 || ev.T < f.firstStart {
			f.firstStart = ev.T
		}
		f.changeLocked(g, ev.T)
		f.evidenceLocked(g, slot, ev.T, ev.Term, id)
	case evLead:
		if l := f.findLocked(g, slot, inc, id, ev.Term); l != nil && l.first0 == 0 {
			l.first0, l.first1 = ev.T, ev.T1
		}
		f.evidenceLocked(g, slot, ev.T1, ev.Term, id)
	case evEnd:
		if l := f.findLocked(g, slot, inc, id, ev.Term); l != nil {
			if ev.FirstT0 != 0 {
				l.first0, l.first1 = ev.FirstT0, ev.FirstT1
			}
			l.last0, l.last1, l.end = ev.LastT0, ev.LastT1, ev.T
			if f.active[g] == l {
				f.active[g] = nil
			}
		}
		f.changeLocked(g, ev.T)
	case evNew:
		if current {
			f.follows[g][id] = followed{ev.Leader, ev.Term}
		}
		f.changeLocked(g, ev.T)
	case evStatus:
		f.status[[2]int{slot, inc}] = ev
		if _, ok := f.calmFirst[slot]; current && f.calmFirst != nil && !ok && ev.T >= f.watchFrom {
			f.calmFirst[slot] = ev
		}
	case evStall:
		f.stalls = append(f.stalls, Stall{ID: fmt.Sprintf("p%d", slot), Slot: slot, From: ev.T, To: ev.T1})
	case evFenceRejected:
		f.fenceBad = append(f.fenceBad, fmt.Sprintf("group g%d: the fence refused term %d of %s (stored %d)", g, ev.Term, id, ev.Stored))
	case evAnomaly:
		f.anomalies = append(f.anomalies, fmt.Sprintf("p%d: %s", slot, ev.Msg))
	case evReady:
		if current {
			f.ready[slot-1] = true
		}
	case evExit:
		if ev.Msg != "ok" && ev.Msg != "" {
			f.anomalies = append(f.anomalies, fmt.Sprintf("p%d exited: %s", slot, ev.Msg))
		}
	}
}

func (f *fleet) changeLocked(g int, t int64) {
	f.lastChange = mono()
	if f.watchFrom != 0 && t >= f.watchFrom {
		f.changed[g]++
		f.changeSec[int((t-f.watchFrom)/int64(time.Second))]++
	}
}

// evidenceLocked notes a sign of an active leader of group g at t in
// slot's process, for the crash being measured.
func (f *fleet) evidenceLocked(g, slot int, t int64, term uint64, id string) {
	cw := f.crash
	if cw == nil || slot == cw.victim || t < cw.at {
		return
	}
	if v, ok := cw.evidence[g]; ok && (v == 0 || t < v) {
		cw.evidence[g], cw.newTerm[g], cw.newBy[g], cw.newSlot[g] = t, term, id, slot
	}
}

func (f *fleet) findLocked(g, slot, inc int, id string, term uint64) *lship {
	for i := len(f.leads[g]) - 1; i >= 0; i-- {
		if l := f.leads[g][i]; l.slot == slot && l.inc == inc && l.id == id && l.term == term {
			return l
		}
	}
	return nil
}

// stableLocked says whether every live process is ready, every group has
// an open leadership in a live process, every Elector of every live
// process follows that leader at its term, and the last status line of
// each live process says all its Electors are Ready() (a restarted one has
// listened its PeerTimeout: before that it neither votes nor acks, and a
// crash then would measure the restart, not the failover); else why not.
func (f *fleet) stableLocked(needAll bool) (bool, string) {
	up := 0
	for s, p := range f.cur {
		switch {
		case p == nil && needAll:
			return false, fmt.Sprintf("p%d is down", s+1)
		case p != nil && !f.ready[s]:
			return false, fmt.Sprintf("p%d is not ready", s+1)
		case p != nil:
			up++
		}
	}
	if up == 0 {
		return false, "no process is up"
	}
	noLeader, notFollowed := 0, 0
	for g := range f.spec.groups {
		l := f.active[g]
		if l == nil {
			noLeader++
			continue
		}
		for s, p := range f.cur {
			if p == nil {
				continue
			}
			for _, id := range f.ids(s + 1) {
				if fo := f.follows[g][id]; fo.leader != l.id || fo.term != l.term {
					notFollowed++
				}
			}
		}
	}
	notReady := 0
	for s, p := range f.cur {
		if p == nil {
			continue
		}
		st, ok := f.status[[2]int{s + 1, p.inc}]
		if !ok {
			return false, fmt.Sprintf("p%d has not reported a status yet", s+1)
		}
		notReady += st.NotReady
	}
	if noLeader > 0 || notFollowed > 0 || notReady > 0 {
		return false, fmt.Sprintf("%d of %d groups without a leader, %d Electors not following theirs, %d not Ready()", noLeader, f.spec.groups, notFollowed, notReady)
	}
	return true, ""
}

// waitStable waits until stableLocked holds and no start, end or new line
// arrived for quiet; it returns false with the reason at the timeout.
func (f *fleet) waitStable(ctx context.Context, needAll bool, quiet, timeout time.Duration) (bool, string) {
	deadline := time.Now().Add(timeout)
	why := ""
	for time.Now().Before(deadline) {
		f.mu.Lock()
		ok, w := f.stableLocked(needAll)
		lc := f.lastChange
		f.mu.Unlock()
		why = w
		if ok && mono()-lc >= int64(quiet) {
			return true, ""
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return false, "interrupted"
		}
	}
	if why == "" {
		why = "leaders kept changing"
	}
	return false, why
}

// waitStatus waits until every live process has reported a status line,
// or the timeout.
func (f *fleet) waitStatus(ctx context.Context, timeout time.Duration) {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline) && ctx.Err() == nil; {
		f.mu.Lock()
		missing := 0
		for s, p := range f.cur {
			if p == nil {
				continue
			}
			if _, ok := f.status[[2]int{s + 1, p.inc}]; !ok {
				missing++
			}
		}
		f.mu.Unlock()
		if missing == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ledBy counts the groups each slot leads now (index slot-1).
func (f *fleet) ledBy() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := make([]int, f.spec.procs)
	for _, l := range f.active {
		if l != nil {
			n[l.slot-1]++
		}
	}
	return n
}

// killForCrash SIGKILLs slot's process with a crash watch on every group
// it leads, and returns how many that is.
func (f *fleet) killForCrash(slot int) int {
	f.mu.Lock()
	p := f.cur[slot-1]
	if p == nil {
		f.mu.Unlock()
		return 0
	}
	cw := &crashWatch{victim: slot, evidence: map[int]int64{}, oldTerm: map[int]uint64{}, newTerm: map[int]uint64{},
		newBy: map[int]string{}, newSlot: map[int]int{}}
	for g, l := range f.active {
		if l != nil && l.slot == slot {
			cw.evidence[g], cw.oldTerm[g] = 0, l.term
		}
	}
	f.crash = cw
	f.cur[slot-1] = nil // its later lines are an old incarnation's
	f.ready[slot-1] = false
	cw.at = mono()
	p.kill()
	for g, l := range f.active {
		if l != nil && l.slot == slot {
			l.end, l.killed = cw.at, true
			f.active[g] = nil
		}
		for _, id := range f.ids(slot) {
			delete(f.follows[g], id)
		}
	}
	f.lastChange = mono()
	f.mu.Unlock()
	p.waitExit(3 * time.Second)
	return len(cw.evidence)
}

// waitFailover waits until every group of the crash watch has evidence of
// a new leader, or the timeout; it returns the failovers in ms (one per
// group that had one) and the groups that had none.
func (f *fleet) waitFailover(ctx context.Context, timeout time.Duration) (ms []float64, missing int, termsUp float64, takenBy map[string]int) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		f.mu.Lock()
		left := 0
		for _, v := range f.crash.evidence {
			if v == 0 {
				left++
			}
		}
		f.mu.Unlock()
		if left == 0 {
			break
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cw := f.crash
	f.crash = nil
	n := 0
	takenBy = map[string]int{}
	for _, slot := range cw.newSlot {
		takenBy[fmt.Sprintf("p%d", slot)]++
	}
	for g, v := range cw.evidence {
		if v == 0 {
			missing++
			continue
		}
		ms = append(ms, float64(v-cw.at)/1e6)
		termsUp += float64(cw.newTerm[g] - cw.oldTerm[g])
		n++
	}
	if n > 0 {
		termsUp /= float64(n)
	}
	slices.Sort(ms)
	return ms, missing, termsUp, takenBy
}

// fleetSample is a snapshot of the counters a calm window differences.
type fleetSample struct {
	t           int64
	cpu         map[int]int64 // slot -> ticks
	redisCPU    int64
	selfCPU     int64
	busy, total int64
	status      map[int]gEvent // slot -> the current incarnation's last status
}

func (f *fleet) sample() fleetSample {
	s := fleetSample{t: mono(), cpu: map[int]int64{}, status: map[int]gEvent{}}
	f.mu.Lock()
	procs := slices.Clone(f.cur)
	for slot, p := range procs {
		if p != nil {
			if st, ok := f.status[[2]int{slot + 1, p.inc}]; ok {
				s.status[slot+1] = st
			}
		}
	}
	f.mu.Unlock()
	for slot, p := range procs {
		if p != nil {
			if c, ok := procCPU(p.cmd.Process.Pid); ok {
				s.cpu[slot+1] = c
			}
		}
	}
	if f.redis.cmd != nil {
		s.redisCPU, _ = procCPU(f.redis.cmd.Process.Pid)
	}
	s.selfCPU, _ = procCPU(os.Getpid())
	s.busy, s.total = machineCPU()
	return s
}

// connSample counts, for each live process, its TCP connections to
// redis-server, and the clients redis-server has.
//
// How: the kernel, not Redis, says which process owns a socket. Each fd of
// /proc/<pid>/fd that is a socket links to "socket:[inode]"; /proc/net/tcp
// (and tcp6) list every TCP socket with its inode, local and remote
// address and state. A process's connections to Redis are its socket
// inodes whose line is ESTABLISHED with Redis's port as the remote port.
// (Mapping CLIENT LIST's client ports to pids would need the same tables;
// Redis's own view is used only to leave out the fence's connection,
// which names itself gFenceName, and to report its client count.) A
// connection being redialled in that instant may be missed or counted
// twice; samples are taken several times and the maximum reported.
func (f *fleet) connSample() (perSlot []int, redisClients int, err error) {
	port := f.redis.port
	list, err := redis.String(do(f.redis.addr(), "CLIENT", "LIST"))
	if err != nil {
		return nil, 0, fmt.Errorf("CLIENT LIST: %w", err)
	}
	clients := parseClientList(list)
	fencePorts := map[int]bool{}
	for _, c := range clients {
		if c.name == gFenceName {
			fencePorts[c.port] = true
		}
	}
	tcp := map[uint64]int{}
	for _, path := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for ino, lport := range parseProcNetTCP(string(b), port) {
			tcp[ino] = lport
		}
	}
	f.mu.Lock()
	procs := slices.Clone(f.cur)
	f.mu.Unlock()
	perSlot = make([]int, len(procs))
	for i, p := range procs {
		if p == nil {
			perSlot[i] = -1
			continue
		}
		for _, ino := range socketInodes(p.cmd.Process.Pid) {
			if lport, ok := tcp[ino]; ok && !fencePorts[lport] {
				perSlot[i]++
			}
		}
	}
	return perSlot, len(clients), nil
}

// socketInodes returns the inodes of pid's sockets, from /proc/<pid>/fd.
func socketInodes(pid int) []uint64 {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []uint64
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if s, ok := strings.CutPrefix(link, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
				out = append(out, ino)
			}
		}
	}
	return out
}

// parseProcNetTCP reads a /proc/net/tcp or tcp6 table and returns, for
// every ESTABLISHED socket whose remote port is port, its inode and local
// port.
func parseProcNetTCP(table string, port int) map[uint64]int {
	out := map[uint64]int{}
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		if len(f) < 10 || f[3] != "01" {
			continue
		}
		_, rp, ok1 := strings.Cut(f[2], ":")
		_, lp, ok2 := strings.Cut(f[1], ":")
		if !ok1 || !ok2 {
			continue
		}
		r, err1 := strconv.ParseUint(rp, 16, 16)
		l, err2 := strconv.ParseUint(lp, 16, 16)
		ino, err3 := strconv.ParseUint(f[9], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || int(r) != port || ino == 0 {
			continue
		}
		out[ino] = int(l)
	}
	return out
}

// clientInfo is one line of CLIENT LIST: the client's port and name.
type clientInfo struct {
	port int
	name string
}

// parseClientList reads CLIENT LIST's answer.
func parseClientList(list string) []clientInfo {
	var out []clientInfo
	for _, line := range strings.Split(list, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var c clientInfo
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "addr":
				if i := strings.LastIndexByte(v, ':'); i >= 0 {
					c.port, _ = strconv.Atoi(v[i+1:])
				}
			case "name":
				c.name = v
			}
		}
		out = append(out, c)
	}
	return out
}

// runFleet runs the script on one fleet and returns its figures. It
// always stops every process and the redis-server before it returns.
func runFleet(ctx context.Context, cfg *Config, spec fleetSpec, rng *rand.Rand, say func(string, ...any)) *FleetPoint {
	t0 := time.Now()
	pt := &FleetPoint{Label: spec.label, Processes: spec.procs, Groups: spec.groups, ElectorsPerProcess: spec.electors,
		ClusterSize: spec.clusterSize, Violations: []string{}, Failures: []string{}, Notes: []string{}, Crashes: []CrashResult{}}
	defer func() { pt.DurationS = round(time.Since(t0).Seconds(), 1) }()
	fail := func(format string, args ...any) {
		pt.Failures = append(pt.Failures, fmt.Sprintf(format, args...))
	}
	f, err := newFleet(cfg, spec)
	if err != nil {
		fail("setup: %v", err)
		return pt
	}
	defer f.close()
	mon := startMonitor(f, filepath.Join(spec.dir, "machine.jsonl"))
	defer mon.stop()
	quiet := cfg.stableFor()
	// startup: every process at once; electing G groups takes longer
	// with more groups on 2 cores, so the bound grows with them
	startBound := max(cfg.Recovery, 30*time.Second+time.Duration(spec.groups*spec.electors)*20*time.Millisecond)
	begin := mono()
	for s := 1; s <= spec.procs; s++ {
		if err := f.start(s); err != nil {
			fail("setup: %v", err)
			return pt
		}
	}
	ok, why := f.waitStable(ctx, true, quiet, startBound)
	f.startupFigures(pt, mon)
	f.sampleConns(pt)
	if !ok {
		fail("no stable leader in every group within %v of the start: %s", startBound, why)
		pt.Notes = append(pt.Notes, fmt.Sprintf("in the %.0f s of the start, the nodes used %.2f cores and redis-server %.2f; the Electors received %d valid messages, dropped %d as replays (late or repeated) and %d otherwise, and started %d elections",
			pt.Startup.Seconds, pt.Startup.NodeCPU, pt.Startup.RedisCPU, pt.Startup.MsgsIn, pt.Startup.Replays, pt.Startup.Dropped, pt.Startup.Elections))
		f.finish(pt)
		return pt
	}
	f.mu.Lock()
	pt.FirstLeaderMs = round(float64(f.firstStart-begin)/1e6, 1)
	f.mu.Unlock()
	pt.StartupS = round(float64(mono()-begin)/1e9-quiet.Seconds(), 2)
	say("%s: every group led and followed %.2fs after the start (first leader after %.0f ms)", spec.label, pt.StartupS, pt.FirstLeaderMs)

	// the calm window, once every process has reported a status (the
	// message counts are differences of status lines)
	f.waitStatus(ctx, 3*cfg.StatusEvery+time.Second)
	f.mu.Lock()
	f.watchFrom, f.changed, f.calmFirst, f.changeSec = mono(), map[int]int{}, map[int]gEvent{}, map[int]int{}
	calmFrom := f.watchFrom
	f.mu.Unlock()
	mon.setOrigin(calmFrom)
	a := f.sample()
	var run []float64
	every := max(cfg.SweepCalm/6, time.Second)
	nextConn := time.Now().Add(min(every, cfg.SweepCalm/2))
	for end := time.Now().Add(cfg.SweepCalm); time.Now().Before(end) && ctx.Err() == nil; {
		select {
		case <-time.After(min(250*time.Millisecond, time.Until(end))):
		case <-ctx.Done():
		}
		run = append(run, procsRunning())
		if time.Now().After(nextConn) {
			f.sampleConns(pt)
			nextConn = time.Now().Add(every)
		}
	}
	b := f.sample()
	f.sampleConns(pt)
	f.mu.Lock()
	pt.Spurious = len(f.changed)
	for _, n := range f.changed {
		pt.CalmChangeLines += n
	}
	// the status counters (messages, elections) count from each
	// process's first status line inside the window, not from the last
	// one before it: that one may hold a second of the startup's elections
	a.status = f.calmFirst
	changeSec := f.changeSec
	f.watchFrom, f.changed, f.calmFirst, f.changeSec = 0, nil, nil, nil
	f.mu.Unlock()
	calmFigures(pt, a, b, run, cfg.Heartbeat, spec)
	machineFigures(pt, mon.window(0, float64(b.t-a.t)/1e9), changeSec)
	if ctx.Err() != nil {
		f.finish(pt)
		return pt
	}
	say("%s: calm %.0fs: %d connections per process (max), redis %.1f%% of a core, nodes %.1f%% each (%.4f%% per group), %d spurious changes",
		spec.label, pt.CalmS, pt.ConnsMax, 100*pt.RedisCPU, 100*pt.NodeCPU, 100*pt.NodeCPUPerGroup, pt.Spurious)

	// the crashes
	var all []float64
	for k := 1; k <= cfg.SweepCrashes && ctx.Err() == nil; k++ {
		// a random phase, so kills do not lock onto the heartbeat period
		select {
		case <-time.After(time.Duration(rng.Int64N(int64(cfg.Heartbeat)))):
		case <-ctx.Done():
		}
		led := f.ledBy()
		victim := 1
		for s := range led {
			if led[s] > led[victim-1] {
				victim = s + 1
			}
		}
		cr := CrashResult{Victim: fmt.Sprintf("p%d", victim)}
		cr.Led = f.killForCrash(victim)
		ms, missing, up, taken := f.waitFailover(ctx, cfg.recoveryTimeout())
		cr.TakenBy = taken
		cr.Recovered = len(ms)
		cr.Failover = summarize(ms)
		cr.TermsUp = round(up, 2)
		all = append(all, ms...)
		if missing > 0 && ctx.Err() == nil {
			fail("crash %d: %d of the %d groups %s led had no new leader within %v", k, missing, cr.Led, cr.Victim, cfg.recoveryTimeout())
		}
		tr := time.Now()
		if err := f.start(victim); err != nil {
			fail("crash %d: restarting %s: %v", k, cr.Victim, err)
			pt.Crashes = append(pt.Crashes, cr)
			break
		}
		ok, why := f.waitStable(ctx, true, quiet, max(cfg.recoveryTimeout(), startBound))
		cr.RestartS = round(time.Since(tr).Seconds()-quiet.Seconds(), 2)
		pt.Crashes = append(pt.Crashes, cr)
		say("%s: crash %d/%d of %s (led %d groups): failover p50 %.0f p99 %.0f max %.0f ms over %d groups, %.2f terms each, taken over by %s; all stable %.2fs after its restart",
			spec.label, k, cfg.SweepCrashes, cr.Victim, cr.Led, cr.Failover.P50, cr.Failover.P99, cr.Failover.Max, cr.Recovered, cr.TermsUp, takenText(cr.TakenBy), cr.RestartS)
		if !ok {
			if ctx.Err() == nil {
				fail("crash %d: not every group stable after %s restarted: %s; the remaining crashes are skipped", k, cr.Victim, why)
			}
			break
		}
		f.sampleConns(pt)
	}
	pt.Failover = summarize(all)
	pt.P99OverLease = p99OverLease(pt.Failover, cfg.Lease)
	f.finish(pt)
	return pt
}

// sampleConns adds one connection sample to pt.
func (f *fleet) sampleConns(pt *FleetPoint) {
	per, clients, err := f.connSample()
	if err != nil {
		pt.Notes = append(pt.Notes, "connection sample failed: "+err.Error())
		return
	}
	pt.ConnsPerProcess = per
	for _, n := range per {
		pt.ConnsMax = max(pt.ConnsMax, n)
	}
	pt.RedisClientsMax = max(pt.RedisClientsMax, clients)
	pt.ConnSamples++
}

// calmFigures fills pt's calm-window figures from two samples.
func calmFigures(pt *FleetPoint, a, b fleetSample, run []float64, hb time.Duration, spec fleetSpec) {
	dt := float64(b.t-a.t) / 1e9
	if dt <= 0 {
		return
	}
	pt.CalmS = round(dt, 1)
	pt.RedisCPU = round(float64(b.redisCPU-a.redisCPU)/clkTck/dt, 3)
	pt.HarnessCPU = round(float64(b.selfCPU-a.selfCPU)/clkTck/dt, 3)
	if b.total > a.total {
		pt.MachineBusy = round(float64(b.busy-a.busy)/float64(b.total-a.total), 2)
	}
	if len(run) > 0 {
		sum := 0.0
		for _, r := range run {
			sum += r
		}
		pt.Runnable = round(sum/float64(len(run)), 1)
	}
	var cpus []float64
	for slot := 1; slot <= spec.procs; slot++ {
		c0, ok0 := a.cpu[slot]
		c1, ok1 := b.cpu[slot]
		if ok0 && ok1 {
			c := float64(c1-c0) / clkTck / dt
			cpus = append(cpus, c)
			pt.NodeCPUs = append(pt.NodeCPUs, round(c, 4))
		}
	}
	if len(cpus) > 0 {
		sum := 0.0
		for _, c := range cpus {
			sum += c
			pt.NodeCPUMax = max(pt.NodeCPUMax, round(c, 4))
		}
		pt.NodeCPU = round(sum/float64(len(cpus)), 4)
		pt.NodeCPUPerGroup = round(sum/float64(len(cpus))/float64(spec.groups), 6)
	}
	// messages: per process, from its own status lines' stamps
	var in, outp float64
	for slot, sb := range b.status {
		sa, ok := a.status[slot]
		if !ok || sb.T <= sa.T {
			continue
		}
		d := float64(sb.T-sa.T) / 1e9
		in += float64(sb.MsgsIn-min(sa.MsgsIn, sb.MsgsIn)) / d
		outp += float64(sb.MsgsOut-min(sa.MsgsOut, sb.MsgsOut)) / d
		pt.CalmElections += sb.Elections - min(sa.Elections, sb.Elections)
	}
	pt.ReceivedPerS, pt.PublishedPerS = round(in, 0), round(outp, 0)
	if n := spec.procs * spec.groups * spec.electors; n > 0 && hb > 0 {
		beats := hb.Seconds()
		pt.InPerElectorPerHB = round(in*beats/float64(n), 2)
		pt.OutPerElectorPerHB = round(outp*beats/float64(n), 2)
	}
}

// finish adds what the fleet's lines said (violations, stalls, fence,
// anomalies) to pt and marks it saturated when it was.
func (f *fleet) finish(pt *FleetPoint) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pt.Violations = append(pt.Violations, f.violations...)
	pt.Violations = append(pt.Violations, overlapViolations(f.leads)...)
	for _, s := range f.stalls {
		pt.Stalls++
		pt.MaxStallMs = max(pt.MaxStallMs, round(float64(s.To-s.From)/1e6, 0))
	}
	// the fence's counters: the last status of every incarnation
	for _, st := range f.status {
		pt.FenceAccepted += st.FenceOK
		pt.FenceRejected += st.FenceBad
		pt.FenceErrors += st.FenceErr
	}
	if len(f.fenceBad) > 0 {
		pt.Notes = append(pt.Notes, fmt.Sprintf("the shared fence refused %d stale terms (a zombie's writes a downstream would refuse), the first: %s",
			len(f.fenceBad), f.fenceBad[0]))
	}
	if len(pt.CalmChanges) > 0 {
		cs := slices.Clone(pt.CalmChanges)
		slices.SortStableFunc(cs, func(a, b ChangeSecond) int { return b.Lines - a.Lines })
		var parts []string
		for _, c := range cs[:min(5, len(cs))] {
			parts = append(parts, fmt.Sprintf("second %d: %d lines (other processes up to %.0f%% of a core, the nodes up to %.0f%%)",
				c.Second, c.Lines, 100*c.OtherMax, 100*c.NodesMax))
		}
		pt.Notes = append(pt.Notes, fmt.Sprintf("%d groups changed in the calm window, in %d seconds of it; the busiest: %s",
			pt.Spurious, len(cs), strings.Join(parts, "; ")))
	}
	if n := len(f.anomalies); n > 0 {
		pt.Notes = append(pt.Notes, fmt.Sprintf("%d anomalies, the first: %s", n, f.anomalies[0]))
	}
	var why []string
	if pt.MachineBusy >= 0.85 {
		why = append(why, fmt.Sprintf("the machine was %.0f%% busy", 100*pt.MachineBusy))
	}
	if pt.Stalls > 0 {
		why = append(why, fmt.Sprintf("%d stalls of 120 ms or more (the longest %.0f ms)", pt.Stalls, pt.MaxStallMs))
	}
	if pt.OtherCPU >= 0.2 || pt.OtherCPUMax1s >= 0.5 {
		why = append(why, fmt.Sprintf("other processes used %.0f%% of a core in the calm window (up to %.0f%% in one second)", 100*pt.OtherCPU, 100*pt.OtherCPUMax1s))
	}
	if len(why) > 0 {
		pt.Saturated = true
		pt.SaturationNote = strings.Join(why, "; ")
	}
}

// overlapViolations finds two leaderships of one group, in different
// processes or Electors, that were surely active at one instant: a true
// tick of one inside the span of the other, from its first true tick's end
// to its last true tick's start (a leadership is one lease: active
// throughout that span).
func overlapViolations(leads [][]*lship) []string {
	var out []string
	for g, ls := range leads {
		for i, a := range ls {
			for _, b := range ls[i+1:] {
				if a.slot == b.slot && a.inc == b.inc && a.id == b.id {
					continue
				}
				for _, pair := range [][2]*lship{{a, b}, {b, a}} {
					x, y := pair[0], pair[1]
					if t, ok := tickInside(x, y); ok {
						out = append(out, fmt.Sprintf("group g%d: %s (term %d) was active at a tick at %d while %s (term %d) was active throughout [%d, %d]",
							g, x.id, x.term, t, y.id, y.term, y.first1, y.last0))
					}
				}
			}
		}
	}
	return out
}

// tickInside reports whether a true tick of x lies inside y's span.
func tickInside(x, y *lship) (int64, bool) {
	if y.first1 == 0 || y.last0 == 0 || y.last0 <= y.first1 {
		return 0, false
	}
	for _, c := range [][2]int64{{x.first0, x.first1}, {x.last0, x.last1}} {
		if c[0] != 0 && c[0] >= y.first1 && c[1] <= y.last0 {
			return c[0], true
		}
	}
	return 0, false
}

// newFleetResults starts the results of a fleet run of kind, and empties
// its directory under cfg.Out, which it returns.
func newFleetResults(cfg *Config, kind string) (*FleetResults, string) {
	base := filepath.Join(cfg.Out, kind)
	_ = os.RemoveAll(base)
	return &FleetResults{Kind: kind, Started: time.Now().UTC().Format(time.RFC3339), CalmS: cfg.SweepCalm.Seconds(),
		Config: fleetConfig(cfg), Notes: []string{}, Command: "go run . " + strings.Join(os.Args[1:], " "), Link: !cfg.NoLink}, base
}

// groupsMain runs the group sweep and returns the exit code.
func groupsMain(ctx context.Context, cfg *Config, say func(string, ...any), out io.Writer) int {
	res, base := newFleetResults(cfg, "sweep-groups")
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6770))
	for _, g := range cfg.Groups {
		if ctx.Err() != nil {
			break
		}
		spec := fleetSpec{label: fmt.Sprintf("G=%d", g), procs: 3, groups: g, electors: 1, clusterSize: 3,
			dir: filepath.Join(base, fmt.Sprintf("G%d", g))}
		waited, quiet := waitQuiet(ctx, cfg.QuietWait)
		pt := runFleet(ctx, cfg, spec, rng, say)
		quietNote(pt, cfg, waited, quiet, say)
		res.Points = append(res.Points, *pt)
		say("%s done in %.1fs: %s", spec.label, pt.DurationS, verdict(pt.Violations, pt.Failures))
	}
	return finishFleetResults(ctx, cfg, res, "sweep-groups", out)
}

// crowdMain runs the crowd and returns the exit code.
func crowdMain(ctx context.Context, cfg *Config, say func(string, ...any), out io.Writer) int {
	res, base := newFleetResults(cfg, "crowd")
	size := cfg.CrowdP * cfg.CrowdE
	if cfg.CrowdDynamic {
		size = 0
	}
	spec := fleetSpec{label: fmt.Sprintf("crowd %dx%d", cfg.CrowdP, cfg.CrowdE), procs: cfg.CrowdP, groups: 1,
		electors: cfg.CrowdE, clusterSize: size, dir: base}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6372))
	waited, quiet := waitQuiet(ctx, cfg.QuietWait)
	pt := runFleet(ctx, cfg, spec, rng, say)
	quietNote(pt, cfg, waited, quiet, say)
	res.Points = append(res.Points, *pt)
	return finishFleetResults(ctx, cfg, res, "crowd", out)
}

func fleetConfig(cfg *Config) ResultsConfig {
	return ResultsConfig{HeartbeatMs: cfg.Heartbeat.Milliseconds(), LeaseMs: cfg.Lease.Milliseconds(),
		PeerTimeoutMs: cfg.PeerTimeout.Milliseconds(), JitterMs: cfg.Jitter.Milliseconds(), Seed: cfg.Seed,
		TickMs: float64(cfg.Tick.Microseconds()) / 1000, CPUs: runtime.NumCPU(), Algos: cfg.Algos, ExitOn: cfg.ExitOn,
		Strict: cfg.Crowd == "" || !cfg.CrowdDynamic}
}

// finishFleetResults prints the table and writes name.{md,json,svg}; it
// returns the exit code.
func finishFleetResults(ctx context.Context, cfg *Config, res *FleetResults, name string, out io.Writer) int {
	t, err := time.Parse(time.RFC3339, res.Started)
	if err == nil {
		res.ElapsedS = round(time.Since(t).Seconds(), 1)
	}
	bad := false
	for _, p := range res.Points {
		if p.Saturated {
			res.Notes = append(res.Notes, fmt.Sprintf("%s: saturated (%s): its figures measure this machine as much as the library", p.Label, p.SaturationNote))
		}
		for _, n := range p.Notes {
			res.Notes = append(res.Notes, p.Label+": "+n)
		}
		for _, v := range p.Violations {
			res.Notes = append(res.Notes, p.Label+": safety violation: "+v)
		}
		for _, fl := range p.Failures {
			res.Notes = append(res.Notes, p.Label+": "+fl)
		}
		if len(p.Violations) > 0 || len(p.Failures) > 0 {
			bad = true
		}
	}
	res.Targets = checkTargets(res, cfg.Lease)
	header, rows := fleetTable(res)
	fmt.Fprintln(out)
	writeTextTable(out, header, rows)
	for _, n := range res.Notes {
		fmt.Fprintln(out, "note:", n)
	}
	for _, n := range res.Targets {
		fmt.Fprintln(out, "target:", n)
	}
	paths := []string{filepath.Join(cfg.Out, name+".md"), filepath.Join(cfg.Out, name+".json"), filepath.Join(cfg.Out, name+".svg")}
	if err := os.WriteFile(paths[0], []byte(fleetMarkdown(res, header, rows)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if err := writeJSON(paths[1], res); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if err := writeFleetSVG(paths[2], res); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	fmt.Fprintf(out, "\n%s: %s\nelapsed %.1fs, seed %d\n", name, strings.Join(paths, ", "), res.ElapsedS, cfg.Seed)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "chaos: interrupted; every process it started is stopped; partial results written")
		return 130
	case bad:
		return 1
	}
	return 0
}

// fleetDefaults checks the flags of -sweep-groups and -crowd and sets
// their defaults (each only when its flag was not given): node logs at
// warn, status every second, nodes at nice 10 (redis-server and the
// harness stand for other machines), a 50 ms tick of every led group, a
// 60 s calm window.
func (c *Config) fleetDefaults(set map[string]bool) error {
	var err error
	if c.SweepGroups != "" {
		if c.Groups, err = parseGroupCounts(c.SweepGroups); err != nil {
			return err
		}
	}
	if c.Crowd != "" {
		if c.CrowdP, c.CrowdE, err = parseCrowd(c.Crowd); err != nil {
			return err
		}
	}
	if len(c.Algos) != 1 || c.Algos[0] != algoQuasiRaft {
		return fmt.Errorf("-sweep-groups and -crowd run the library only: -algo quasi-raft")
	}
	if c.Load > 0 {
		return fmt.Errorf("-load is not supported with -sweep-groups and -crowd")
	}
	if c.SweepCrashes < 0 || c.SweepCrashes > 20 {
		return fmt.Errorf("-sweep-crashes %d: want 0 to 20", c.SweepCrashes)
	}
	if c.FenceEvery < 0 {
		return fmt.Errorf("-fence-every %v: want 0 (none) or a period", c.FenceEvery)
	}
	if !set["node-log-level"] {
		c.NodeLogLevel = "warn"
	}
	if !set["tick"] {
		c.Tick = 50 * time.Millisecond
	}
	if !set["status"] {
		c.StatusEvery = time.Second
	}
	if !set["node-nice"] {
		c.NodeNice = 10
	}
	if !set["sweep-calm"] {
		c.SweepCalm = 60 * time.Second
	}
	if c.SweepCalm < time.Second {
		return fmt.Errorf("-sweep-calm %v: want at least 1s", c.SweepCalm)
	}
	if c.QuietWait < 0 {
		return fmt.Errorf("-quiet-wait %v: want 0 (none) or a bound", c.QuietWait)
	}
	c.StallEvery = 40 * time.Millisecond
	c.Recovery = max(30*time.Second, 20*c.PeerTimeout)
	return nil
}

// machineSample is one look, every 250 ms, at where the machine's CPU
// went: the fleet's processes, the kernel's interrupts and softirqs
// (loopback networking among them), and everything else (other
// processes: on a shared machine, another engineer's tests). In cores.
type machineSample struct {
	T     float64 `json:"t"` // seconds since the calm window began (negative: before it)
	Other float64 `json:"other"`
	IRQ   float64 `json:"irq"`
	Redis float64 `json:"redis"`
	Nodes float64 `json:"nodes"`
	Self  float64 `json:"self"`
}

// monitor takes machine samples until stopped and writes them to a file.
type monitor struct {
	f    *fleet
	path string
	quit chan struct{}
	done chan struct{}

	mu      sync.Mutex // guards samples and origin
	samples []machineSample
	origin  int64 // mono of the calm window's start (0: not yet)
	raw     []int64
}

func startMonitor(f *fleet, path string) *monitor {
	m := &monitor{f: f, path: path, quit: make(chan struct{}), done: make(chan struct{})}
	go m.loop()
	return m
}

func (m *monitor) setOrigin(t int64) {
	m.mu.Lock()
	m.origin = t
	m.mu.Unlock()
}

// stop ends the sampling and writes the samples (times relative to the
// calm window's start) as JSON lines.
func (m *monitor) stop() {
	close(m.quit)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	out, err := os.Create(m.path)
	if err != nil {
		return
	}
	defer out.Close()
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	for i, s := range m.samples {
		if m.origin != 0 {
			s.T = round(float64(m.raw[i]-m.origin)/1e9, 2)
		}
		_ = enc.Encode(s)
	}
	_ = w.Flush()
}

// all returns every sample so far.
func (m *monitor) all() []machineSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.samples)
}

// window returns the samples whose end lies in [from, to] seconds of the
// calm window.
func (m *monitor) window(from, to float64) []machineSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []machineSample
	for i, s := range m.samples {
		if m.origin == 0 {
			break
		}
		s.T = float64(m.raw[i]-m.origin) / 1e9
		if s.T > from && s.T <= to+0.01 {
			out = append(out, s)
		}
	}
	return out
}

func (m *monitor) loop() {
	defer close(m.done)
	type snap struct {
		t           int64
		busy, irq   int64
		redis, self int64
		nodes       map[int]int64 // pid -> ticks
	}
	take := func() snap {
		s := snap{t: mono(), nodes: map[int]int64{}}
		s.busy, s.irq, _ = machineCPUSplit()
		m.f.mu.Lock()
		procs := slices.Clone(m.f.cur)
		m.f.mu.Unlock()
		for _, p := range procs {
			if p != nil {
				if c, ok := procCPU(p.cmd.Process.Pid); ok {
					s.nodes[p.cmd.Process.Pid] = c
				}
			}
		}
		if m.f.redis.cmd != nil {
			s.redis, _ = procCPU(m.f.redis.cmd.Process.Pid)
		}
		s.self, _ = procCPU(os.Getpid())
		return s
	}
	prev := take()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-m.quit:
			return
		case <-t.C:
		}
		cur := take()
		dt := float64(cur.t-prev.t) / 1e9
		if dt <= 0 {
			continue
		}
		cores := func(ticks int64) float64 { return float64(ticks) / clkTck / dt }
		var nodes int64
		for pid, c := range cur.nodes {
			nodes += c - prev.nodes[pid] // a new process: all of its CPU so far
		}
		s := machineSample{IRQ: cores(cur.irq - prev.irq), Redis: cores(cur.redis - prev.redis),
			Nodes: cores(nodes), Self: cores(cur.self - prev.self)}
		s.Other = max(0, cores(cur.busy-prev.busy)-s.IRQ-s.Redis-s.Nodes-s.Self)
		for _, p := range []*float64{&s.Other, &s.IRQ, &s.Redis, &s.Nodes, &s.Self} {
			*p = round(*p, 3)
		}
		m.mu.Lock()
		m.samples = append(m.samples, s)
		m.raw = append(m.raw, cur.t)
		m.mu.Unlock()
		prev = cur
	}
}

// machineCPUSplit returns the busy jiffies of all cores, those of them in
// interrupts and softirqs, and the total, from /proc/stat.
func machineCPUSplit() (busy, irq, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseCPULine(line)
}

// parseCPULine reads the "cpu" line of /proc/stat: user nice system idle
// iowait irq softirq steal guest guest_nice (guest time is already in
// user and nice).
func parseCPULine(line string) (busy, irq, total int64) {
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, 0
	}
	for i, x := range f[1:] {
		if i >= 8 {
			break
		}
		v, _ := strconv.ParseInt(x, 10, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
		if i == 5 || i == 6 {
			irq += v
		}
	}
	return busy, irq, total
}

// machineFigures fills pt's figures of the machine in the calm window, and
// ties each second that had change lines to what other processes used in
// it and the second before.
func machineFigures(pt *FleetPoint, ws []machineSample, changeSec map[int]int) {
	if len(ws) == 0 {
		return
	}
	var other, irq float64
	for i, s := range ws {
		other += s.Other
		irq += s.IRQ
		if i+4 <= len(ws) { // one second: four samples
			sum := 0.0
			for _, x := range ws[i : i+4] {
				sum += x.Other
			}
			pt.OtherCPUMax1s = max(pt.OtherCPUMax1s, round(sum/4, 2))
		}
	}
	pt.OtherCPU = round(other/float64(len(ws)), 2)
	pt.IRQCPU = round(irq/float64(len(ws)), 2)
	secs := slices.Sorted(maps.Keys(changeSec))
	for _, sec := range secs {
		c := ChangeSecond{Second: sec, Lines: changeSec[sec]}
		for _, s := range ws {
			if s.T > float64(sec-1) && s.T <= float64(sec+1) {
				c.OtherMax = max(c.OtherMax, s.Other)
				c.NodesMax = max(c.NodesMax, s.Nodes)
			}
		}
		pt.CalmChanges = append(pt.CalmChanges, c)
	}
}

// waitQuiet waits, at most max, until the rest of the machine (everything
// but this process) has used less than 15% of a core in each of 3
// consecutive seconds: on a shared machine, another engineer's tests
// would otherwise share the cores with the fleet, and at nice 10 the
// nodes lose to them. It returns how long it waited and whether the
// machine was quiet then.
func waitQuiet(ctx context.Context, limit time.Duration) (time.Duration, bool) {
	if limit <= 0 {
		return 0, true
	}
	start := time.Now()
	quiet := 0
	busy0, irq0, _ := machineCPUSplit()
	self0, _ := procCPU(os.Getpid())
	t0 := mono()
	for time.Since(start) < limit && ctx.Err() == nil {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return time.Since(start), false
		}
		busy1, irq1, _ := machineCPUSplit()
		self1, _ := procCPU(os.Getpid())
		t1 := mono()
		dt := float64(t1-t0) / 1e9
		other := float64((busy1-busy0)-(irq1-irq0)-(self1-self0)) / clkTck / dt
		if other < 0.15 {
			quiet++
		} else {
			quiet = 0
		}
		if quiet >= 3 {
			return time.Since(start), true
		}
		busy0, irq0, self0, t0 = busy1, irq1, self1, t1
	}
	return time.Since(start), false
}

// quietNote records how long the point waited for a quiet machine.
func quietNote(pt *FleetPoint, cfg *Config, waited time.Duration, quiet bool, say func(string, ...any)) {
	pt.QuietWaitS = round(waited.Seconds(), 1)
	if cfg.QuietWait > 0 && !quiet {
		pt.Notes = append(pt.Notes, fmt.Sprintf("the machine was not quiet after waiting %v (-quiet-wait): other processes used 15%% of a core or more", cfg.QuietWait))
		say("%s: started although the machine was busy after %v", pt.Label, cfg.QuietWait)
	}
}

// startupFigures fills pt.Startup: the machine samples and the status
// lines of the processes from their start until now.
func (f *fleet) startupFigures(pt *FleetPoint, mon *monitor) {
	ws := mon.all()
	if n := len(ws); n > 0 {
		for _, s := range ws {
			pt.Startup.NodeCPU += s.Nodes
			pt.Startup.RedisCPU += s.Redis
			pt.Startup.OtherCPU += s.Other
		}
		pt.Startup.Seconds = round(float64(n)/4, 1)
		pt.Startup.NodeCPU = round(pt.Startup.NodeCPU/float64(n), 2)
		pt.Startup.RedisCPU = round(pt.Startup.RedisCPU/float64(n), 2)
		pt.Startup.OtherCPU = round(pt.Startup.OtherCPU/float64(n), 2)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, st := range f.status {
		pt.Startup.MsgsIn += st.MsgsIn
		pt.Startup.Replays += st.Replays
		pt.Startup.Dropped += st.Dropped
		pt.Startup.Elections += st.Elections
	}
}
