package main

// Deployments: a Redis Sentinel deployment (a primary, two replicas, three
// sentinels) and a Redis Cluster (three primaries, three replicas), started
// by the harness once per run for the scenarios that need them, on free
// loopback ports, and stopped at the end. Each node process reaches every
// data server through a toxiproxy proxy of its own (one per node and
// server), so the usual link faults still hit one node; it reaches the
// sentinels directly.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/gomodule/redigo/redis"
)

// Deployment kinds (Scenario.Deploy).
const (
	deploySentinel = "sentinel"
	deployCluster  = "cluster"
)

// sentinelMaster is the name the sentinels monitor the primary by.
const sentinelMaster = "chaos"

// serverProc is one redis-server process (a data server or a sentinel)
// that can be killed, paused and started again on its port.
type serverProc struct {
	name    string
	port    int
	args    func() []string // the command line of the next start
	ready   func() error    // if set, run once it answers PING; an error retries the start
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

func (s *serverProc) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// start runs redis-server with s.args() and waits until it answers PING.
func (s *serverProc) start() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("redis-server not found on PATH: run scripts/ensure-redis.sh (make chaos does)")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	var lastErr error
	giveUp := time.Now().Add(10 * time.Second)
	for attempt := 0; attempt < 20 && time.Now().Before(giveUp); attempt++ { // the port may linger after a kill
		cmd := exec.Command(bin, s.args()...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = procAttr()
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", s.name, err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		deadline := time.Now().Add(3 * time.Second)
		if deadline.After(giveUp) {
			deadline = giveUp
		}
		exited := false
		for !exited && time.Now().Before(deadline) {
			select {
			case <-done:
				lastErr = fmt.Errorf("%s exited at start (see %s)", s.name, s.logPath)
				exited = true
				continue
			default:
			}
			if lastErr = pingAddr(s.addr()); lastErr == nil && s.ready != nil {
				lastErr = s.ready()
			}
			if lastErr == nil {
				s.cmd, s.done = cmd, done
				return nil
			}
			time.Sleep(5 * time.Millisecond)
		}
		_ = cmd.Process.Kill()
		<-done
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s on port %d did not answer PING: %v", s.name, s.port, lastErr)
}

// kill SIGKILLs the process and waits until it is reaped.
func (s *serverProc) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies too, but be sure it is reaped
	_ = s.cmd.Process.Kill()
	select {
	case <-s.done:
	case <-time.After(3 * time.Second):
	}
	s.cmd = nil
}

func (s *serverProc) signal(sig syscall.Signal) error {
	if s.cmd == nil {
		return fmt.Errorf("%s is not running", s.name)
	}
	return s.cmd.Process.Signal(sig)
}

func pingAddr(addr string) error {
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(100*time.Millisecond),
		redis.DialReadTimeout(time.Second), redis.DialWriteTimeout(time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Do("PING")
	return err
}

// do runs one command on a fresh connection to addr with short timeouts.
func do(addr string, cmd string, args ...any) (any, error) {
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(200*time.Millisecond),
		redis.DialReadTimeout(time.Second), redis.DialWriteTimeout(time.Second))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Do(cmd, args...)
}

// waitFor polls cond every 20 ms until it returns nil or d has passed, and
// returns its last error.
func waitFor(d time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v: %w", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dataServerArgs is the command line of a data server on port in dir.
func dataServerArgs(port int, dir string, extra ...string) []string {
	return append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "yes"}, extra...)
}

// ---- Sentinel ----

// sentinelDeployment is a primary, two replicas (--replicaof) and three
// sentinels (quorum 2, down-after 2 s).
type sentinelDeployment struct {
	dir       string
	servers   []*serverProc
	sentinels []*serverProc
}

// Sentinel timings: how long a primary must be silent to be down, and the
// failover timeout (small, so that a failover that stalls is retried soon).
const (
	sentinelDownAfter       = 2 * time.Second
	sentinelFailoverTimeout = 4 * time.Second
)

func startSentinelDeployment(logDir string) (*sentinelDeployment, error) {
	dir, err := os.MkdirTemp("", "chaos-sentinel-")
	if err != nil {
		return nil, err
	}
	d := &sentinelDeployment{dir: dir}
	ports, err := freePorts(6)
	if err != nil {
		d.stop()
		return nil, err
	}
	for i := range 3 {
		s := &serverProc{name: fmt.Sprintf("redis-%d", i), port: ports[i],
			logPath: filepath.Join(logDir, fmt.Sprintf("sentinel-redis-%d.log", i))}
		sdir := filepath.Join(dir, s.name)
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			d.stop()
			return nil, err
		}
		primary := ports[0]
		if i == 0 {
			s.args = func() []string { return dataServerArgs(s.port, sdir) }
		} else {
			s.args = func() []string {
				return dataServerArgs(s.port, sdir, "--replicaof", "127.0.0.1", strconv.Itoa(primary))
			}
		}
		d.servers = append(d.servers, s)
		if err := s.start(); err != nil {
			d.stop()
			return nil, err
		}
	}
	for i := range 3 {
		s := &serverProc{name: fmt.Sprintf("sentinel-%d", i), port: ports[3+i],
			logPath: filepath.Join(logDir, fmt.Sprintf("sentinel-%d.log", i))}
		conf := filepath.Join(dir, s.name+".conf")
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s %d\n",
			s.port, dir, sentinelMaster, ports[0], sentinelMaster, sentinelDownAfter.Milliseconds(),
			sentinelMaster, sentinelFailoverTimeout.Milliseconds())
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			d.stop()
			return nil, err
		}
		s.args = func() []string { return []string{conf, "--sentinel"} }
		d.sentinels = append(d.sentinels, s)
		if err := s.start(); err != nil {
			d.stop()
			return nil, err
		}
	}
	if err := d.waitHealthy(30 * time.Second); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

func (d *sentinelDeployment) stop() {
	for _, s := range append(slices.Clone(d.sentinels), d.servers...) {
		s.kill()
	}
	if d.dir != "" {
		_ = os.RemoveAll(d.dir)
	}
}

func (d *sentinelDeployment) sentinelAddrs() []string {
	var out []string
	for _, s := range d.sentinels {
		out = append(out, s.addr())
	}
	return out
}

func (d *sentinelDeployment) serverAddrs() []string {
	var out []string
	for _, s := range d.servers {
		out = append(out, s.addr())
	}
	return out
}

// server returns the data server at addr.
func (d *sentinelDeployment) server(addr string) *serverProc {
	for _, s := range d.servers {
		if s.addr() == addr {
			return s
		}
	}
	return nil
}

// named returns the primary each sentinel names (GET-MASTER-ADDR-BY-NAME),
// "" where one did not answer.
func (d *sentinelDeployment) named() []string {
	out := make([]string, len(d.sentinels))
	for i, s := range d.sentinels {
		hp, err := redis.Strings(do(s.addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", sentinelMaster))
		if err == nil && len(hp) == 2 {
			out[i] = net.JoinHostPort(hp[0], hp[1])
		}
	}
	return out
}

// primary is the primary the sentinels agree on, or an error.
func (d *sentinelDeployment) primary() (string, error) {
	n := d.named()
	for _, a := range n {
		if a == "" || a != n[0] {
			return "", fmt.Errorf("the sentinels name %q", n)
		}
	}
	return n[0], nil
}

// waitHealthy waits until every sentinel names one primary, sees it up
// with no failover in progress, both replicas (not down) and both other
// sentinels; the primary says master with two connected replicas, and both
// replicas say they replicate it with the link up. Only then can a
// scenario's failover find a good replica.
func (d *sentinelDeployment) waitHealthy(timeout time.Duration) error {
	return waitFor(timeout, "the Sentinel deployment healthy", func() error {
		p, err := d.primary()
		if err != nil {
			return err
		}
		for _, s := range d.sentinels {
			m, err := redis.StringMap(do(s.addr(), "SENTINEL", "MASTER", sentinelMaster))
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			if m["flags"] != "master" || m["num-slaves"] != "2" || m["num-other-sentinels"] != "2" {
				return fmt.Errorf("%s: flags %q, %s replicas, %s other sentinels", s.name, m["flags"], m["num-slaves"], m["num-other-sentinels"])
			}
			vs, err := redis.Values(do(s.addr(), "SENTINEL", "REPLICAS", sentinelMaster))
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			for _, v := range vs {
				r, err := redis.StringMap(v, nil)
				if err != nil {
					return err
				}
				// Its view of a replica's link comes from an INFO it sends every
				// 10 s, so lags; the replicas' own ROLE below is the truth.
				if r["flags"] != "slave" {
					return fmt.Errorf("%s sees replica %s:%s with flags %q", s.name, r["ip"], r["port"], r["flags"])
				}
			}
		}
		for _, s := range d.servers {
			v, err := redis.Values(do(s.addr(), "ROLE"))
			if err != nil || len(v) < 3 {
				return fmt.Errorf("ROLE on %s: %v", s.addr(), err)
			}
			role, _ := redis.String(v[0], nil)
			switch {
			case s.addr() == p:
				rs, _ := redis.Values(v[2], nil)
				if role != "master" || len(rs) != 2 {
					return fmt.Errorf("%s: role %s with %d replicas", s.addr(), role, len(rs))
				}
			default:
				host, _ := redis.String(v[1], nil)
				port, _ := redis.Int(v[2], nil)
				state := ""
				if len(v) > 3 {
					state, _ = redis.String(v[3], nil)
				}
				if role != "slave" || net.JoinHostPort(host, strconv.Itoa(port)) != p || state != "connected" {
					return fmt.Errorf("%s: role %s of %s:%d, %s", s.addr(), role, host, port, state)
				}
			}
		}
		return nil
	})
}

// failover asks a sentinel for SENTINEL FAILOVER.
func (d *sentinelDeployment) failover() error {
	var err error
	for _, s := range d.sentinels {
		if _, err = do(s.addr(), "SENTINEL", "FAILOVER", sentinelMaster); err == nil {
			return nil
		}
	}
	return fmt.Errorf("SENTINEL FAILOVER: %w", err)
}

// waitNamed waits until any (all false) or every (all true) sentinel names
// a primary other than old, and returns it.
func (d *sentinelDeployment) waitNamed(old string, all bool, timeout time.Duration) (string, error) {
	var got string
	err := waitFor(timeout, "the sentinels to name a new primary", func() error {
		n := d.named()
		moved := 0
		for _, a := range n {
			if a != "" && a != old {
				moved++
				got = a
			}
		}
		if moved == len(n) || (!all && moved > 0) {
			return nil
		}
		return fmt.Errorf("they name %q", n)
	})
	return got, err
}

// failingOver reports whether any sentinel has begun to fail old over:
// it sees old objectively down, a failover in progress, or names another
// primary. No replica is promoted before that, so until then every node
// is surely cut off from a writable primary.
func (d *sentinelDeployment) failingOver(old string) bool {
	for _, s := range d.sentinels {
		m, err := redis.StringMap(do(s.addr(), "SENTINEL", "MASTER", sentinelMaster))
		if err != nil {
			continue
		}
		if strings.Contains(m["flags"], "o_down") || strings.Contains(m["flags"], "failover_in_progress") ||
			net.JoinHostPort(m["ip"], m["port"]) != old {
			return true
		}
	}
	return slices.ContainsFunc(d.named(), func(a string) bool { return a != "" && a != old })
}

// restore brings the deployment back to health after a trial: a killed
// data server starts again as a replica of the primary the sentinels
// name, and an old primary that still says master is demoted as Sentinel
// would do some 10 s later (REPLICAOF, then its clients closed).
func (d *sentinelDeployment) restore(timeout time.Duration) error {
	var p string
	err := waitFor(timeout, "the sentinels to agree on a primary", func() error {
		var err error
		if p, err = d.primary(); err != nil {
			return err
		}
		m, err := redis.StringMap(do(d.sentinels[0].addr(), "SENTINEL", "MASTER", sentinelMaster))
		if err != nil {
			return err
		}
		if strings.Contains(m["flags"], "failover_in_progress") {
			return errors.New("a failover is in progress")
		}
		return nil
	})
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(p)
	for _, s := range d.servers {
		if s.cmd == nil {
			if err := d.restartReplica(s, p); err != nil {
				return err
			}
			continue
		}
		if s.addr() == p {
			continue
		}
		if v, err := redis.Values(do(s.addr(), "ROLE")); err == nil && len(v) > 0 {
			if role, _ := redis.String(v[0], nil); role == "master" {
				if _, err := do(s.addr(), "REPLICAOF", host, port); err != nil {
					return fmt.Errorf("demoting %s: %w", s.addr(), err)
				}
				_, _ = do(s.addr(), "CLIENT", "KILL", "TYPE", "normal")
				_, _ = do(s.addr(), "CLIENT", "KILL", "TYPE", "pubsub")
			}
		}
	}
	return d.waitHealthy(timeout)
}

// restartReplica starts a killed data server again as a replica of the
// current primary (rather than as the primary it was, for Sentinel to
// demote).
func (d *sentinelDeployment) restartReplica(s *serverProc, primary string) error {
	host, port, _ := net.SplitHostPort(primary)
	sdir := filepath.Join(d.dir, s.name)
	s.args = func() []string { return dataServerArgs(s.port, sdir, "--replicaof", host, port) }
	return s.start()
}

// ---- Cluster ----

// clusterDeployment is six cluster-enabled servers, three primaries with
// a replica each (redis-cli --cluster create --cluster-replicas 1).
type clusterDeployment struct {
	dir     string
	servers []*serverProc
	// lastFailover is when a scenario last failed a shard over: the
	// primaries refuse to vote on a failover of the same shard again
	// within 2*cluster-node-timeout, so restore waits that out.
	lastFailover time.Time
}

// clusterNodeTimeout is cluster-node-timeout: how long a primary must be
// unreachable before its replica takes over.
const clusterNodeTimeout = 2 * time.Second

func startClusterDeployment(logDir string) (*clusterDeployment, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, errors.New("redis-cli not found on PATH: run scripts/ensure-redis.sh (make chaos does)")
	}
	dir, err := os.MkdirTemp("", "chaos-cluster-")
	if err != nil {
		return nil, err
	}
	d := &clusterDeployment{dir: dir}
	ports, err := freeClusterPorts(6)
	if err != nil {
		d.stop()
		return nil, err
	}
	for i := range 6 {
		s := &serverProc{name: fmt.Sprintf("cluster-%d", i), port: ports[i],
			logPath: filepath.Join(logDir, fmt.Sprintf("cluster-%d.log", i))}
		sdir := filepath.Join(dir, s.name)
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			d.stop()
			return nil, err
		}
		s.args = func() []string {
			return dataServerArgs(s.port, sdir, "--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(sdir, "nodes.conf"),
				"--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout.Milliseconds())))
		}
		d.servers = append(d.servers, s)
		if err := s.start(); err != nil {
			d.stop()
			return nil, err
		}
	}
	args := []string{"--cluster", "create"}
	args = append(args, d.addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	_ = os.WriteFile(filepath.Join(logDir, "cluster-create.log"), out, 0o644)
	if err != nil {
		d.stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %w (see %s)", err, filepath.Join(logDir, "cluster-create.log"))
	}
	if err := d.waitHealthy([]int{0, 8192, 16383}, 30*time.Second); err != nil { // one slot of each primary
		d.stop()
		return nil, err
	}
	return d, nil
}

func (d *clusterDeployment) stop() {
	for _, s := range d.servers {
		s.kill()
	}
	if d.dir != "" {
		_ = os.RemoveAll(d.dir)
	}
}

func (d *clusterDeployment) addrs() []string {
	var out []string
	for _, s := range d.servers {
		out = append(out, s.addr())
	}
	return out
}

func (d *clusterDeployment) server(addr string) *serverProc {
	for _, s := range d.servers {
		if s.addr() == addr {
			return s
		}
	}
	return nil
}

// shard is the owner of a slot and its replicas, as one node sees them.
type shard struct {
	owner    string
	replicas []string
}

// shardOf asks the server at addr (CLUSTER SLOTS) who serves slot.
func shardOf(addr string, slot int) (shard, error) {
	vs, err := redis.Values(do(addr, "CLUSTER", "SLOTS"))
	if err != nil {
		return shard{}, err
	}
	for _, v := range vs {
		r, err := redis.Values(v, nil)
		if err != nil || len(r) < 3 {
			continue
		}
		lo, _ := redis.Int(r[0], nil)
		hi, _ := redis.Int(r[1], nil)
		if slot < lo || slot > hi {
			continue
		}
		var sh shard
		for i, n := range r[2:] {
			f, err := redis.Values(n, nil)
			if err != nil || len(f) < 2 {
				continue
			}
			host, _ := redis.String(f[0], nil)
			port, _ := redis.Int(f[1], nil)
			a := net.JoinHostPort(host, strconv.Itoa(port))
			if i == 0 {
				sh.owner = a
			} else {
				sh.replicas = append(sh.replicas, a)
			}
		}
		slices.Sort(sh.replicas)
		return sh, nil
	}
	return shard{}, fmt.Errorf("%s serves no node for slot %d", addr, slot)
}

// keySlot asks the cluster for a key's slot.
func (d *clusterDeployment) keySlot(key string) (int, error) {
	var err error
	for _, s := range d.servers {
		var n int
		if n, err = redis.Int(do(s.addr(), "CLUSTER", "KEYSLOT", key)); err == nil {
			return n, nil
		}
	}
	return 0, err
}

// waitHealthy waits until every running server says cluster_state:ok with
// all 16384 slots served and six known nodes, every one agrees on who owns
// each slot in slots and on its one replica, and that replica's link to it
// is up: a failover of the shard can then happen at once.
func (d *clusterDeployment) waitHealthy(slots []int, timeout time.Duration) error {
	return waitFor(timeout, "the Cluster healthy", func() error {
		for _, s := range d.servers {
			info, err := redis.String(do(s.addr(), "CLUSTER", "INFO"))
			if err != nil {
				return fmt.Errorf("%s: %w", s.addr(), err)
			}
			for _, want := range []string{"cluster_state:ok", "cluster_slots_ok:16384", "cluster_known_nodes:6", "cluster_size:3"} {
				if !strings.Contains(info, want+"\r\n") {
					return fmt.Errorf("%s: no %s", s.addr(), want)
				}
			}
		}
		for _, slot := range slots {
			var first shard
			for i, s := range d.servers {
				sh, err := shardOf(s.addr(), slot)
				if err != nil {
					return err
				}
				if len(sh.replicas) != 1 {
					return fmt.Errorf("%s: slot %d has replicas %q", s.addr(), slot, sh.replicas)
				}
				if i == 0 {
					first = sh
				} else if sh.owner != first.owner || !slices.Equal(sh.replicas, first.replicas) {
					return fmt.Errorf("the nodes disagree on slot %d's owner: %v and %v", slot, first, sh)
				}
			}
			info, err := redis.String(do(first.replicas[0], "INFO", "replication"))
			if err != nil {
				return err
			}
			if !strings.Contains(info, "master_link_status:up") {
				return fmt.Errorf("replica %s of slot %d: link down", first.replicas[0], slot)
			}
		}
		return nil
	})
}

// shard returns slot's owner and replicas as every server agrees.
func (d *clusterDeployment) shard(slot int) (shard, error) {
	var first shard
	for i, s := range d.servers {
		if s.cmd == nil {
			continue
		}
		sh, err := shardOf(s.addr(), slot)
		if err != nil {
			return shard{}, err
		}
		if i == 0 || first.owner == "" {
			first = sh
		} else if sh.owner != first.owner {
			return shard{}, fmt.Errorf("the nodes disagree on slot %d's owner", slot)
		}
	}
	return first, nil
}

// waitOwner waits until any (all false) or every (all true) running
// server names an owner of slot other than old, and returns it.
func (d *clusterDeployment) waitOwner(slot int, old string, all bool, timeout time.Duration) (string, error) {
	var got string
	err := waitFor(timeout, "a new owner of the slot", func() error {
		got = ""
		var names []string
		for _, s := range d.servers {
			if s.cmd == nil {
				continue
			}
			sh, err := shardOf(s.addr(), slot)
			if err != nil {
				if all {
					return err
				}
				continue
			}
			names = append(names, sh.owner)
			if sh.owner != old {
				if !all {
					got = sh.owner
					return nil
				}
				if got != "" && sh.owner != got {
					return fmt.Errorf("the servers name %q", names)
				}
				got = sh.owner
			} else if all {
				return fmt.Errorf("%s still names %s", s.addr(), old)
			}
		}
		if got == "" {
			return fmt.Errorf("the servers name %q", names)
		}
		return nil
	})
	return got, err
}

// ownerFailed reports whether any running server flags old as failed
// (FAIL, not just PFAIL) or names another owner of slot: its replica
// starts an election only after that, so until then every node is surely
// cut off from the slot.
func (d *clusterDeployment) ownerFailed(slot int, old string) bool {
	for _, s := range d.servers {
		if s.cmd == nil {
			continue
		}
		if sh, err := shardOf(s.addr(), slot); err == nil && sh.owner != old {
			return true
		}
		nodes, err := redis.String(do(s.addr(), "CLUSTER", "NODES"))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(nodes, "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || !strings.HasPrefix(f[1], old+"@") {
				continue
			}
			if slices.Contains(strings.Split(f[2], ","), "fail") {
				return true
			}
		}
	}
	return false
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var out []int
	for range 10 * n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
		if len(out) == n {
			return out, nil
		}
	}
	return nil, fmt.Errorf("no %d distinct free ports", n)
}

// freeClusterPorts returns n distinct loopback ports that are free, and
// whose cluster bus ports (+10000) are free too: from 20000 to 29999, so
// that the bus port stays below 65536 and outside the ephemeral range.
func freeClusterPorts(n int) ([]int, error) {
	var out []int
	for range 50 * n {
		p := 20000 + int(time.Now().UnixNano()%10000)
		if slices.Contains(out, p) || !portFree(p) || !portFree(p+10000) {
			continue
		}
		if out = append(out, p); len(out) == n {
			return out, nil
		}
	}
	return nil, fmt.Errorf("no %d free port pairs (p, p+10000) in 20000-29999", n)
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// ---- the harness's side ----

// UseDeployment makes kind ("" for none) the deployment that runs: it
// stops another one, starts kind with a proxy per node slot and data
// server, and returns how long the start took (0 when kind already ran).
func (h *Harness) UseDeployment(kind string) (time.Duration, error) {
	if kind == h.dep {
		return 0, nil
	}
	h.stopDeployment()
	if kind == "" {
		return 0, nil
	}
	start := time.Now()
	switch kind {
	case deploySentinel:
		d, err := startSentinelDeployment(h.logDir)
		if err != nil {
			return 0, err
		}
		h.sentinel, h.depAddrs = d, d.serverAddrs()
	case deployCluster:
		d, err := startClusterDeployment(h.logDir)
		if err != nil {
			return 0, err
		}
		h.cluster, h.depAddrs = d, d.addrs()
	default:
		return 0, fmt.Errorf("unknown deployment %q", kind)
	}
	h.dep = kind
	// The fence refuses writes until its epoch key is set (after a
	// redis-server restart the harness sets it first). In a deployment the
	// fencer reports the epoch of the server it writes to itself; the key
	// only has to exist, on the primary or the slot's owner, replicated.
	for _, algo := range h.cfg.Algos {
		if err := h.setDeploymentEpochKey(h.cfg.group(algo)); err != nil {
			h.stopDeployment()
			return 0, err
		}
	}
	for slot := 1; slot <= h.cfg.Nodes; slot++ {
		var links []*toxiproxy.Proxy
		for i, a := range h.depAddrs {
			p := toxiproxy.NewProxy(h.tp, fmt.Sprintf("n%d-%s-%d", slot, kind, i), "127.0.0.1:0", a)
			if err := p.Start(); err != nil {
				h.stopDeployment()
				return 0, fmt.Errorf("starting a proxy for n%d to %s: %w", slot, a, err)
			}
			links = append(links, p)
		}
		h.depLinks = append(h.depLinks, links)
	}
	return time.Since(start), nil
}

// setDeploymentEpochKey sets group's fence epoch key on the server that
// owns it and waits until its replicas have it.
func (h *Harness) setDeploymentEpochKey(group string) error {
	_, _, key := fenceKeys(group, true)
	var at string
	replicas := 2
	switch h.dep {
	case deploySentinel:
		p, err := h.sentinel.primary()
		if err != nil {
			return err
		}
		at = p
	case deployCluster:
		slot, err := h.cluster.keySlot(key)
		if err != nil {
			return err
		}
		sh, err := h.cluster.shard(slot)
		if err != nil {
			return err
		}
		at, replicas = sh.owner, len(sh.replicas)
	}
	c, err := redis.Dial("tcp", at, redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(3*time.Second), redis.DialWriteTimeout(time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Do("SET", key, 1); err != nil {
		return fmt.Errorf("setting %s on %s: %w", key, at, err)
	}
	n, err := redis.Int(c.Do("WAIT", replicas, 2000)) // on the connection that wrote
	if err != nil || n < replicas {
		return fmt.Errorf("%s on %s reached %d of %d replicas: %v", key, at, n, replicas, err)
	}
	return nil
}

// stopDeployment stops the deployment's proxies and processes.
func (h *Harness) stopDeployment() {
	for _, links := range h.depLinks {
		for _, p := range links {
			p.Stop()
		}
	}
	h.depLinks, h.depAddrs = nil, nil
	if h.sentinel != nil {
		h.sentinel.stop()
		h.sentinel = nil
	}
	if h.cluster != nil {
		h.cluster.stop()
		h.cluster = nil
	}
	h.dep = ""
}

// deploymentArgs are the node flags that point slot's process at the
// deployment: the sentinels or the seed nodes, and its proxies.
func (h *Harness) deploymentArgs(slot int) []string {
	if h.dep == "" || slot-1 >= len(h.depLinks) {
		return nil
	}
	var m []string
	for i, p := range h.depLinks[slot-1] {
		m = append(m, h.depAddrs[i]+"="+p.Listen)
	}
	args := []string{"-addr-map", strings.Join(m, ",")}
	switch h.dep {
	case deploySentinel:
		args = append(args, "-sentinels", strings.Join(h.sentinel.sentinelAddrs(), ","))
	case deployCluster:
		args = append(args, "-cluster", strings.Join(h.depAddrs, ","))
	}
	return args
}

// serverLinks takes down (or brings back up) every node's proxy to the
// data server at addr. A killed server's host refuses connections; a
// proxy would accept them and close them at once (it cannot reach the
// server), which a client takes for a server that is not Redis at all.
// Down, the proxies refuse connections too, and close those they had.
func (h *Harness) serverLinks(addr string, up bool) error {
	for _, links := range h.depLinks {
		for i, p := range links {
			if h.depAddrs[i] != addr {
				continue
			}
			if !up {
				p.Stop()
				continue
			}
			if err := p.Start(); err != nil && !errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
				return fmt.Errorf("restarting the proxy %s to %s: %w", p.Name, addr, err)
			}
		}
	}
	return nil
}

// restoreDeployment brings the deployment back to health between trials
// (a killed server restarted as a replica, an old primary demoted, a
// stopped one continued) and waits until it is; group's slot is the one
// a Cluster must have a healthy owner and replica for.
func (h *Harness) restoreDeployment(group string, timeout time.Duration) error {
	switch h.dep {
	case deploySentinel:
		for _, s := range h.sentinel.servers {
			if s.cmd != nil {
				_ = s.signal(syscall.SIGCONT)
			}
		}
		if err := h.sentinel.restore(timeout); err != nil {
			return err
		}
		for _, a := range h.depAddrs {
			if err := h.serverLinks(a, true); err != nil {
				return err
			}
		}
		return nil
	case deployCluster:
		slot, err := h.cluster.keySlot("leader:{" + group + "}")
		if err != nil {
			return err
		}
		for _, s := range h.cluster.servers {
			if s.cmd == nil {
				if err := s.start(); err != nil { // it rejoins as a replica, from its nodes.conf
					return err
				}
			} else {
				_ = s.signal(syscall.SIGCONT)
			}
			if err := h.serverLinks(s.addr(), true); err != nil {
				return err
			}
		}
		if err := h.cluster.waitHealthy([]int{slot}, timeout); err != nil {
			return err
		}
		if wait := time.Until(h.cluster.lastFailover.Add(2*clusterNodeTimeout + time.Second)); wait > 0 {
			time.Sleep(min(wait, 2*clusterNodeTimeout+time.Second))
		}
		return nil
	}
	return nil
}
