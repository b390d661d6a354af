// Command chaos is the failover benchmark of github.com/redraft/leader under
// real faults: real node processes, a real redis-server, and network faults
// from an in-process Shopify toxiproxy. It runs each scenario (see
// scenarios.go and README.md) several times, checks safety (never two
// leaders at once, no zombie leader, fencing order), measures failover,
// convergence and leaderless time, prints a table and writes
// chaos-results/results.json and chaos-results/timeline.svg.
//
//	cd chaos && go run .                 # every scenario, default trials
//	go run . -quick                      # every scenario once (CI)
//	go run . -scenarios crash,pause -trials 10 -seed 42
//
// It exits 1 naming the scenario and trial on a safety violation, a trial
// that never recovered, or an expectation of the scenario that failed, and
// 2 when the harness itself could not run.
package main

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/redraft/leader"
)

// errRunTimeout ends a run that takes longer than -timeout.
var errRunTimeout = errors.New("the run took longer than -timeout")

// algoQuasiRaft names the algorithm under test: the library's quasi-Raft
// Elector. Other algorithms (a lock baseline) can be added as node roles.
const algoQuasiRaft = "quasi-raft"

// Config is the harness's configuration, from the flags.
type Config struct {
	Nodes         int
	Trials        int // 0: each scenario's default
	Scenarios     string
	Seed          uint64
	Strict        bool
	Quick         bool
	Out           string
	Heartbeat     time.Duration
	Lease         time.Duration
	PeerTimeout   time.Duration
	Jitter        time.Duration
	Tick          time.Duration
	Timeout       time.Duration // the whole run; 0: none
	NodeLogLevel  string
	Algo          string   // the -algo flag as given
	Algos         []string // the algorithms to run, in order
	ExitOn        []string // the algorithms whose violations and failures set the exit status
	NoProxy       bool     // nodes talk to Redis directly (the sweep: no faults on links)
	StatusEvery   time.Duration
	StallEvery    time.Duration // the nodes' stall watch period (0: theirs)
	Recovery      time.Duration // overrides recoveryTimeout when set (the sweep)
	Sweep         string        // -sweep: node counts
	SweepCalm     time.Duration // -sweep-calm
	NodeNice      int           // -node-nice: niceness of the node processes
	SweepCrashes  int           // -sweep-crashes
	Soak          time.Duration // -soak
	SoakFlapEvery time.Duration
	SoakSample    time.Duration
	SweepGroups   string        // -sweep-groups: group counts
	Groups        []int         // parsed from SweepGroups
	Crowd         string        // -crowd PxE
	CrowdP        int           // processes of the crowd
	CrowdE        int           // Electors per process of the crowd
	CrowdDynamic  bool          // -crowd-dynamic: ClusterSize 0 instead of P*E
	FenceEvery    time.Duration // -fence-every: the group nodes' shared fencing check
	QuietWait     time.Duration // -quiet-wait: before each fleet, wait at most this for a quiet machine
	NoLink        bool          // -no-link: the group nodes' Electors open their own connections (a comparison)
	Load          int           // -load: CPU-burning processes for the whole run
	Scale         float64       // -scale: multiplies the four timings (Config.Scale's effect)
}

// recoveryTimeout bounds every wait for a stable leader.
func (c *Config) recoveryTimeout() time.Duration {
	if c.Recovery > 0 {
		return c.Recovery
	}
	return max(6*time.Second, 20*c.PeerTimeout)
}

// stableFor is how long one leader must tick without a break, with every
// reachable node following it, to count as stable.
func (c *Config) stableFor() time.Duration { return max(200*time.Millisecond, 2*c.Heartbeat) }

// observe is how long a trial watches after recovery, for late zombies and
// disruptions.
func (c *Config) observe() time.Duration { return 2 * c.PeerTimeout }

// params are the timings the analysis checks against. For the lock
// baseline the "lease" a cut-off holder may still use is its ttl
// (PeerTimeout), not LeaseTimeout.
func (c *Config) params(algo string) Params {
	p := Params{Lease: c.Lease, PeerTimeout: c.PeerTimeout, Jitter: c.Jitter}
	if algo == algoLock {
		p.Lease = c.PeerTimeout
	}
	return p
}

// group is the election group of an algorithm in this run: one per
// algorithm, so the lock's keys and the elector's channels never mix.
func (c *Config) group(algo string) string {
	if algo == algoQuasiRaft {
		return fmt.Sprintf("chaos-%d", c.Seed)
	}
	return fmt.Sprintf("chaos-%d-%s", c.Seed, algo)
}

// label names a scenario run: the scenario, with ".lock" for the baseline.
func label(name, algo string) string {
	if algo == algoQuasiRaft {
		return name
	}
	return name + "." + algo
}

func (c *Config) trialsFor(sc *Scenario) int {
	switch {
	case c.Trials > 0:
		return c.Trials
	case c.Quick:
		return 1
	}
	return sc.Trials
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "node" {
		os.Exit(nodeMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "gnode" {
		os.Exit(gnodeMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "burn" {
		burnMain()
	}
	os.Exit(harnessMain(os.Args[1:]))
}

func parseFlags(args []string) (*Config, error) {
	c := &Config{Algo: algoQuasiRaft}
	var exitOn string
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.IntVar(&c.Nodes, "nodes", 5, "number of node processes (at least 3)")
	fs.IntVar(&c.Trials, "trials", 0, "trials per scenario (0: each scenario's default, 3 or 5; 1 with -quick)")
	fs.StringVar(&c.Scenarios, "scenarios", "all", "comma-separated scenarios to run, or all")
	fs.Uint64Var(&c.Seed, "seed", 0, "seed for the harness's random choices (0: a fresh one, printed)")
	fs.BoolVar(&c.Strict, "strict", false, "strict mode in every scenario: ClusterSize = -nodes (minority always is)")
	fs.BoolVar(&c.Quick, "quick", false, "every scenario once (for CI)")
	fs.StringVar(&c.Out, "out", "", "output directory (default: chaos-results/ at the repository root)")
	fs.DurationVar(&c.Heartbeat, "heartbeat", 100*time.Millisecond, "Config.HeartbeatInterval")
	fs.DurationVar(&c.Lease, "lease", 300*time.Millisecond, "Config.LeaseTimeout")
	fs.DurationVar(&c.PeerTimeout, "peer-timeout", 500*time.Millisecond, "Config.PeerTimeout")
	fs.DurationVar(&c.Jitter, "jitter", 150*time.Millisecond, "Config.ElectionJitter")
	fs.DurationVar(&c.Tick, "tick", 5*time.Millisecond, "period of the singleton job's ticks")
	fs.DurationVar(&c.Timeout, "timeout", 15*time.Minute, "give up (exit 1, partial results) when the run takes longer; 0: never")
	fs.StringVar(&c.NodeLogLevel, "node-log-level", "debug", "level of the library's logs in chaos-results/logs: debug, info, warn")
	fs.StringVar(&c.Algo, "algo", algoQuasiRaft, "election algorithm(s): quasi-raft, lock (the Redis lock baseline), or both (= quasi-raft,lock: side by side)")
	fs.StringVar(&exitOn, "exit-on", "", "algorithms whose violations and failures make the exit status 1 (default: quasi-raft when it runs, else every algorithm run)")
	fs.StringVar(&c.Sweep, "sweep", "", "scale sweep instead of the scenarios: comma-separated node counts, e.g. 3,5,9,17,33,65,129")
	fs.DurationVar(&c.SweepCalm, "sweep-calm", 30*time.Second, "sweep: calm window per node count (messages, CPU, RSS, spurious changes)")
	fs.IntVar(&c.SweepCrashes, "sweep-crashes", 3, "sweep: SIGKILLs of the leader per node count (failover)")
	fs.StringVar(&c.SweepGroups, "sweep-groups", "", "group sweep instead of the scenarios: comma-separated group counts G, e.g. 1,10,100,1000; for each, 3 processes with one Elector in each of G groups, sharing one leader.Link per process")
	fs.StringVar(&c.Crowd, "crowd", "", "crowd instead of the scenarios: PxE, P processes of E Electors of ONE group, sharing one leader.Link per process, e.g. 5x205")
	fs.BoolVar(&c.CrowdDynamic, "crowd-dynamic", false, "crowd: dynamic mode (ClusterSize 0) instead of strict mode with ClusterSize P*E")
	fs.DurationVar(&c.FenceEvery, "fence-every", time.Second, "sweep-groups and crowd: period of each process's shared fencing check (one EVAL for all its led groups; 0: none)")
	fs.DurationVar(&c.QuietWait, "quiet-wait", 30*time.Second, "sweep-groups and crowd: before each point, wait at most this until other processes use under 15% of a core for 3 s (a shared machine; 0: do not wait)")
	fs.BoolVar(&c.NoLink, "no-link", false, "sweep-groups and crowd: every Elector opens its own two connections instead of sharing the process's leader.Link (a comparison)")
	fs.DurationVar(&c.Soak, "soak", 0, "soak instead of the scenarios: run this long with latency on every link and a periodic flap of the leader's link, sampling RSS and goroutines")
	fs.DurationVar(&c.SoakFlapEvery, "soak-flap-every", 20*time.Second, "soak: flap the leader's link this often")
	fs.DurationVar(&c.SoakSample, "soak-sample", 5*time.Second, "soak: sample RSS and goroutines this often")
	fs.DurationVar(&c.StatusEvery, "status", 100*time.Millisecond, "period of the nodes' status reports")
	fs.IntVar(&c.Load, "load", 0, "run this many CPU-burning processes beside the nodes for the whole run (a loaded host)")
	fs.Float64Var(&c.Scale, "scale", 1, "multiply -heartbeat, -lease, -peer-timeout and -jitter by this (what Config.Scale does): e.g. 5 for a loaded host")
	fs.IntVar(&c.NodeNice, "node-nice", 0, "niceness (0-19) of the node processes, so that redis-server and the harness, which stand for other machines, run first (default 10 with -sweep)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run . [flags]\n\nScenarios:\n")
		width := 20
		for _, s := range scenarios {
			width = max(width, len(s.Name))
		}
		for _, s := range scenarios {
			opt := ""
			if s.Optional {
				opt = " (opt-in: not in all)"
			}
			fmt.Fprintf(fs.Output(), "  %-*s %s%s\n", width, s.Name, s.Fault, opt)
		}
		fmt.Fprintf(fs.Output(), "\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.Nodes < 3 {
		return nil, fmt.Errorf("-nodes %d: need at least 3", c.Nodes)
	}
	algos := c.Algo
	if algos == "both" {
		algos = algoQuasiRaft + "," + algoLock
	}
	for _, a := range strings.Split(algos, ",") {
		a = strings.TrimSpace(a)
		if a != algoQuasiRaft && a != algoLock {
			return nil, fmt.Errorf("-algo %q: known are quasi-raft, lock, both", a)
		}
		if !slices.Contains(c.Algos, a) {
			c.Algos = append(c.Algos, a)
		}
	}
	switch {
	case exitOn != "":
		for _, a := range strings.Split(exitOn, ",") {
			c.ExitOn = append(c.ExitOn, strings.TrimSpace(a))
		}
	case slices.Contains(c.Algos, algoQuasiRaft):
		c.ExitOn = []string{algoQuasiRaft}
	default:
		c.ExitOn = c.Algos
	}
	modes := 0
	for _, on := range []bool{c.Sweep != "", c.Soak > 0, c.SweepGroups != "", c.Crowd != ""} {
		if on {
			modes++
		}
	}
	if modes > 1 {
		return nil, fmt.Errorf("-sweep, -soak, -sweep-groups and -crowd: one at a time")
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.SweepGroups != "" || c.Crowd != "" {
		if err := c.fleetDefaults(set); err != nil {
			return nil, err
		}
	}
	if c.Scale <= 0 || c.Scale > 100 {
		return nil, fmt.Errorf("-scale %v: want a factor in (0, 100]", c.Scale)
	}
	if c.Scale != 1 {
		for _, d := range []*time.Duration{&c.Heartbeat, &c.Lease, &c.PeerTimeout, &c.Jitter} {
			*d = time.Duration(float64(*d) * c.Scale)
		}
	}
	if c.Load < 0 || c.Load > 64 {
		return nil, fmt.Errorf("-load %d: want 0 to 64 processes", c.Load)
	}
	if (c.Sweep != "" || c.Soak > 0) && len(c.Algos) > 1 {
		return nil, fmt.Errorf("-sweep and -soak run one algorithm: -algo quasi-raft or -algo lock")
	}
	if c.Sweep != "" {
		// 129 processes must not each write debug logs and poll at 5 ms:
		// that would measure the harness, not the library
		if !set["node-log-level"] {
			c.NodeLogLevel = "warn"
		}
		if !set["tick"] {
			c.Tick = 20 * time.Millisecond
		}
		if !set["status"] {
			c.StatusEvery = time.Second
		}
		if !set["node-nice"] {
			c.NodeNice = 10
		}
		c.StallEvery = 40 * time.Millisecond
		c.Recovery = max(30*time.Second, 20*c.PeerTimeout)
	}
	if c.Soak > 0 && !set["node-log-level"] {
		c.NodeLogLevel = "info"
	}
	if c.Soak > 0 && c.Timeout > 0 && c.Timeout < c.Soak+2*time.Minute {
		c.Timeout = c.Soak + 2*time.Minute
	}
	if c.Tick <= 0 {
		return nil, fmt.Errorf("-tick must be positive")
	}
	if c.NodeNice < 0 || c.NodeNice > 19 {
		return nil, fmt.Errorf("-node-nice %d: want 0 to 19", c.NodeNice)
	}
	// Let the library judge the timings, with its own messages.
	if _, err := leader.New(leader.Config{Addr: "127.0.0.1:1", HeartbeatInterval: c.Heartbeat,
		LeaseTimeout: c.Lease, PeerTimeout: c.PeerTimeout, ElectionJitter: c.Jitter, ClusterSize: c.Nodes}); err != nil {
		return nil, err
	}
	if c.Seed == 0 {
		var b [8]byte
		_, _ = crand.Read(b[:])
		c.Seed = binary.LittleEndian.Uint64(b[:])%1_000_000 + 1
	}
	if c.Out == "" {
		c.Out = filepath.Join(repoRoot(), "chaos-results")
	}
	return c, nil
}

// repoRoot finds the library's module root above the working directory
// (where chaos-results/ belongs), or returns ".".
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if strings.TrimSpace(first) == "module github.com/redraft/leader" {
				return d
			}
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

func selectScenarios(spec string) ([]*Scenario, error) {
	if spec == "" || spec == "all" {
		var out []*Scenario
		for i := range scenarios {
			if !scenarios[i].Optional {
				out = append(out, &scenarios[i])
			}
		}
		return out, nil
	}
	var out []*Scenario
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(scenarios, func(s Scenario) bool { return s.Name == name })
		if i < 0 {
			var names []string
			for _, s := range scenarios {
				names = append(names, s.Name)
			}
			return nil, fmt.Errorf("unknown scenario %q; known: %s", name, strings.Join(names, ", "))
		}
		out = append(out, &scenarios[i])
	}
	return out, nil
}

func harnessMain(args []string) int {
	cfg, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	list, err := selectScenarios(cfg.Scenarios)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if cfg.Sweep == "" && cfg.Soak == 0 && cfg.SweepGroups == "" && cfg.Crowd == "" {
		for _, d := range []string{"logs", "events"} { // ours: stale files would mislead
			_ = os.RemoveAll(filepath.Join(cfg.Out, d))
		}
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, cfg.Timeout, errRunTimeout)
		defer cancel()
	}

	started := time.Now()
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "[%6.1fs] ", time.Since(started).Seconds())
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	what := fmt.Sprintf("%d nodes", cfg.Nodes)
	if cfg.Sweep != "" {
		what = fmt.Sprintf("sweep over %s nodes (calm %v, %d crashes each, tick %v, status every %v, node logs at %s)",
			cfg.Sweep, cfg.SweepCalm, cfg.SweepCrashes, cfg.Tick, cfg.StatusEvery, cfg.NodeLogLevel)
	}
	links := "one Link each"
	if cfg.NoLink {
		links = "NO Link: two connections per Elector"
	}
	switch {
	case cfg.SweepGroups != "":
		what = fmt.Sprintf("group sweep over %s groups (3 processes, %s, strict ClusterSize 3; calm %v, %d crashes each, tick %v, fence every %v, node logs at %s)",
			cfg.SweepGroups, links, cfg.SweepCalm, cfg.SweepCrashes, cfg.Tick, cfg.FenceEvery, cfg.NodeLogLevel)
	case cfg.Crowd != "":
		size := fmt.Sprintf("strict ClusterSize %d", cfg.CrowdP*cfg.CrowdE)
		if cfg.CrowdDynamic {
			size = "dynamic mode"
		}
		what = fmt.Sprintf("crowd of %d processes x %d Electors in one group (%s, %s; calm %v, %d crashes, tick %v, fence every %v, node logs at %s)",
			cfg.CrowdP, cfg.CrowdE, links, size, cfg.SweepCalm, cfg.SweepCrashes, cfg.Tick, cfg.FenceEvery, cfg.NodeLogLevel)
	}
	if cfg.NodeNice > 0 {
		what += fmt.Sprintf(", nodes at nice %d", cfg.NodeNice)
	}
	mode := modeName(cfg.Strict) + " mode"
	if cfg.SweepGroups != "" || cfg.Crowd != "" {
		mode = "mode as above"
	}
	say("chaos: %s, algo %s, heartbeat %v, lease %v, peer-timeout %v, jitter %v, %s, seed %d (repeat with -seed %d)",
		what, strings.Join(cfg.Algos, ","), cfg.Heartbeat, cfg.Lease, cfg.PeerTimeout, cfg.Jitter, mode, cfg.Seed, cfg.Seed)

	if cfg.Sweep != "" || cfg.Soak > 0 || cfg.SweepGroups != "" || cfg.Crowd != "" {
		var code int
		switch {
		case cfg.Sweep != "":
			code = sweepMain(ctx, cfg, say, out)
		case cfg.SweepGroups != "":
			code = groupsMain(ctx, cfg, say, out)
		case cfg.Crowd != "":
			code = crowdMain(ctx, cfg, say, out)
		default:
			code = soakMain(ctx, cfg, say, out)
		}
		out.Flush()
		return code
	}
	h, err := NewHarness(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	defer h.Close()
	say("redis-server on %s, %d proxies, output in %s", h.redis.addr(), len(h.proxies), cfg.Out)
	if cfg.Load > 0 {
		if err := h.StartLoad(cfg.Load); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		say("%d CPU-burning processes run beside the nodes", cfg.Load)
	}

	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	var runs []*scenarioRun
	prevTerm := map[string]uint64{} // per algorithm: the highest term of the scenarios so far, while Redis kept its data
	deployed := ""                  // the deployment of the scenarios so far
	for _, sc := range list {
		if sc.Deploy != deployed {
			// another Redis, which never had the group's term key
			for a := range prevTerm {
				prevTerm[a] = 0
			}
			deployed = sc.Deploy
		}
		for _, algo := range cfg.Algos {
			if ctx.Err() != nil {
				break
			}
			if len(sc.Algos) > 0 && !slices.Contains(sc.Algos, algo) {
				say("%s: skipped for %s (%s)", sc.Name, algo, sc.SkipWhy)
				continue
			}
			epoch := h.redis.epoch
			sr := runScenario(ctx, h, cfg, sc, algo, rng, say)
			runs = append(runs, sr)
			checkTermsGrow(sr, prevTerm[algo])
			summarizeScenario(sr, algo)
			if h.redis.epoch != epoch {
				// redis-server lost the term key: the library promises growing
				// terms only while Redis keeps its data
				for a := range prevTerm {
					prevTerm[a] = 0
				}
				continue
			}
			for _, sg := range sr.an.Segments {
				prevTerm[algo] = max(prevTerm[algo], sg.Term)
			}
		}
	}
	interrupted := ctx.Err() != nil
	h.Close()

	res := &Results{Started: started.UTC().Format(time.RFC3339), ElapsedS: time.Since(started).Seconds(), OK: true,
		Config: ResultsConfig{Nodes: cfg.Nodes, HeartbeatMs: cfg.Heartbeat.Milliseconds(), LeaseMs: cfg.Lease.Milliseconds(),
			PeerTimeoutMs: cfg.PeerTimeout.Milliseconds(), JitterMs: cfg.Jitter.Milliseconds(), Strict: cfg.Strict,
			Seed: cfg.Seed, TickMs: float64(cfg.Tick.Microseconds()) / 1000, Quick: cfg.Quick, CPUs: runtime.NumCPU(),
			Algos: cfg.Algos, ExitOn: cfg.ExitOn}}
	var bad, ignored []string
	for _, sr := range runs {
		sr.res.FloorMs = floorMs(sr.res.Name, cfg)
		res.Scenarios = append(res.Scenarios, sr.res)
		var mine []string
		for _, v := range sr.res.Violations {
			mine = append(mine, fmt.Sprintf("%s %s (safety violation)", sr.label, v))
		}
		for _, f := range sr.res.Failures {
			mine = append(mine, fmt.Sprintf("%s %s", sr.label, f))
		}
		if slices.Contains(cfg.ExitOn, sr.algo) {
			bad = append(bad, mine...)
		} else {
			ignored = append(ignored, mine...)
		}
	}
	res.OK = len(bad) == 0 && !interrupted
	fmt.Fprintln(out)
	writeTable(out, res.Scenarios, len(cfg.Algos) > 1)
	if len(cfg.Algos) > 1 {
		fmt.Fprintln(out)
		writeSideBySide(out, res.Scenarios, cfg.Algos)
	}
	out.Flush()
	if err := writeOutputs(cfg.Out, res, runs, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: writing results:", err)
		return 2
	}
	for _, sr := range runs {
		for _, n := range sr.res.Notes {
			fmt.Fprintf(out, "note: %s: %s\n", sr.label, n)
		}
	}
	if len(ignored) > 0 {
		fmt.Fprintf(out, "\nnot counted in the exit status (-exit-on %s):\n", strings.Join(cfg.ExitOn, ","))
		for _, b := range ignored {
			fmt.Fprintln(out, "  scenario", b)
		}
	}
	stalls, worst := 0, 0.0
	for _, sr := range runs {
		stalls += sr.res.Stalls
		worst = max(worst, sr.res.MaxStallMs)
	}
	if stalls > 0 {
		fmt.Fprintf(out, "\nnote: %d times a process did not run for 100 ms or more (the longest %.0f ms) without an injected SIGSTOP:\n"+
			"the machine was short of CPU; timings are less reliable, and a leader change after such a stall is what the library does under starvation\n",
			stalls, worst)
	}
	fmt.Fprintf(out, "\nresults: %s\ntimeline: %s\nlogs: %s\nelapsed %.1fs, seed %d\n",
		filepath.Join(cfg.Out, "results.json"), filepath.Join(cfg.Out, "timeline.svg"),
		filepath.Join(cfg.Out, "logs"), time.Since(started).Seconds(), cfg.Seed)
	out.Flush()
	switch {
	case interrupted && errors.Is(context.Cause(ctx), errRunTimeout):
		fmt.Fprintf(os.Stderr, "chaos: the run took longer than -timeout %v; every process it started is stopped; partial results written\n", cfg.Timeout)
		return 1
	case interrupted:
		fmt.Fprintln(os.Stderr, "chaos: interrupted; every process it started is stopped; partial results written")
		return 130
	case len(bad) > 0:
		fmt.Fprintln(os.Stderr, "\nchaos: FAILED:")
		for _, b := range bad {
			fmt.Fprintln(os.Stderr, "  scenario", b)
		}
		return 1
	}
	fmt.Fprintln(out, "chaos: all scenarios passed")
	out.Flush()
	return 0
}

func modeName(strict bool) string {
	if strict {
		return "strict"
	}
	return "dynamic"
}

// runScenario starts a fresh group of nodes, runs the scenario's trials,
// stops the nodes and analyses what happened.
func runScenario(ctx context.Context, h *Harness, cfg *Config, sc *Scenario, algo string, rng *rand.Rand,
	say func(string, ...any)) *scenarioRun {
	strict := (cfg.Strict || sc.Strict) && algo == algoQuasiRaft
	clusterSize := 0
	if strict {
		clusterSize = cfg.Nodes
	}
	// One election group for the whole run: every scenario starts all nodes
	// afresh while Redis keeps the group's term key, so terms must go on
	// growing from one scenario to the next (rule 11).
	lb := label(sc.Name, algo)
	rec := newRecorder(lb, algo, cfg.group(algo), cfg.Tick)
	rec.nodeArgs = sc.NodeArgs
	h.setRecorder(rec)
	sr := &scenarioRun{sc: sc, label: lb, algo: algo, strict: strict, rec: rec, start: mono()}
	if took, err := h.UseDeployment(sc.Deploy); err != nil {
		sr.setupErr = fmt.Sprintf("starting the %s deployment: %v", sc.Deploy, err)
	} else if took > 0 {
		say("%s deployment up in %.1fs: data servers %s", sc.Deploy, took.Seconds(), strings.Join(h.depAddrs, " "))
	}
	if sc.Setup != nil {
		sc.Setup(h, cfg)
	}
	n := cfg.trialsFor(sc)
	mode := modeName(strict)
	if algo != algoQuasiRaft {
		mode = algo
	}
	say("%s: %s (%s, %d trials)", lb, sc.Fault, mode, n)
	for s := 1; s <= cfg.Nodes && sr.setupErr == ""; s++ {
		if _, err := h.StartNode(s, clusterSize); err != nil {
			sr.setupErr = err.Error()
		}
	}
	for k := 1; k <= n && sr.setupErr == "" && ctx.Err() == nil; k++ {
		tr := &TrialRecord{Scenario: sc.Name, Trial: k}
		sr.trials = append(sr.trials, tr)
		t := &Trial{h: h, cfg: cfg, ctx: ctx, rng: rng, rec: rec, clusterSize: clusterSize, algo: algo, R: tr}
		if !prepare(t) {
			tr.Start = mono()
			tr.End = tr.Start
			if ctx.Err() == nil {
				tr.Failures = append(tr.Failures, fmt.Sprintf("no stable leader within %v before the fault; the remaining trials are skipped", cfg.recoveryTimeout()))
				tr.Aborted = true
				say("%-20s trial %d/%d: no stable leader; giving up on this scenario", lb, k, n)
			}
			break
		}
		// a random phase, so faults do not lock onto the heartbeat period;
		// no leader change may happen meanwhile
		select {
		case <-time.After(time.Duration(rng.Int64N(int64(cfg.Heartbeat)))):
		case <-ctx.Done():
		}
		tr.Quiet = append(tr.Quiet, Window{From: tr.Start, To: mono()})
		if slot, id, term, _, ok := rec.stableLeader(mono(), h.Reachable(), 0, 0); ok {
			tr.OldSlot, tr.OldID, tr.OldTerm = slot, id, term
		}
		if ctx.Err() == nil {
			t.runScript(sc)
		}
		if !tr.Aborted {
			select {
			case <-time.After(cfg.observe()):
			case <-ctx.Done():
			}
		}
		tr.End = mono()
		evs, faults := rec.snapshot()
		an := Analyze(evs, faults, sr.trials, cfg.params(algo))
		say("%s", progressLine(lb, k, n, an.Trials[len(an.Trials)-1]))
	}
	sr.end = mono()
	h.KillAll()
	h.HealAll()
	evs, faults := rec.snapshot()
	sr.an = Analyze(evs, faults, sr.trials, cfg.params(algo))
	return sr
}

// checkTermsGrow adds a violation when the first leader of a scenario has a
// term not above every term of the scenarios before it: all nodes restarted,
// but Redis kept the group's term key, so a term would be used twice and a
// fencing token would go back (rule 11).
func checkTermsGrow(sr *scenarioRun, prev uint64) {
	if prev == 0 || len(sr.an.Segments) == 0 {
		return
	}
	first := sr.an.Segments[0]
	if first.Term > prev {
		return
	}
	v := Violation{Trial: trialAt(sr.trials, first.FirstT0), Kind: "term-reuse", T: first.FirstT0,
		Msg: fmt.Sprintf("after every node restarted (Redis kept running), %s led in term %d, not above term %d of the scenarios before",
			first.ID, first.Term, prev)}
	sr.an.Violations = append(sr.an.Violations, v)
	for i := range sr.an.Trials {
		if sr.an.Trials[i].Trial == v.Trial {
			sr.an.Trials[i].Violations = append(sr.an.Trials[i].Violations, v)
		}
	}
}

// prepare waits for a stable leader with every node up, repairing the group
// first if an earlier trial left it damaged (a node down, stopped or cut).
func prepare(t *Trial) bool {
	h, cfg := t.h, t.cfg
	if h.dep != "" {
		if err := h.restoreDeployment(t.rec.group, deploymentTimeout); err != nil {
			t.R.Failures = append(t.R.Failures, fmt.Sprintf("the %s deployment did not recover: %v", h.dep, err))
			return false
		}
	}
	for attempt := 0; attempt < 2; attempt++ {
		if attempt > 0 || len(h.Reachable()) < cfg.Nodes {
			h.HealAll()
			for s := 1; s <= cfg.Nodes; s++ {
				p := h.proc(s)
				switch {
				case p == nil || p.exited():
					if _, err := h.StartNode(s, t.clusterSize); err != nil {
						return false
					}
				default:
					_ = h.Signal(s, syscall.SIGCONT)
				}
			}
		}
		deadline := time.Now().Add(cfg.recoveryTimeout())
		for time.Now().Before(deadline) {
			if slot, id, term, _, ok := t.rec.stableLeader(mono(), h.Reachable(), cfg.stableFor(), 0); ok && len(h.Reachable()) == cfg.Nodes {
				t.R.OldSlot, t.R.OldID, t.R.OldTerm = slot, id, term
				t.R.Start = mono()
				return true
			}
			select {
			case <-time.After(10 * time.Millisecond):
			case <-t.ctx.Done():
				return false
			}
		}
	}
	return false
}

func progressLine(name string, k, n int, tr TrialResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-20s trial %d/%d", name, k, n)
	for _, e := range tr.Episodes {
		if len(tr.Episodes) > 1 {
			fmt.Fprintf(&b, "  [%s]", e.Name)
		}
		if e.FailoverMs >= 0 {
			fmt.Fprintf(&b, "  failover %.0f ms (%s t%d -> %s t%d)", e.FailoverMs, e.OldLeader, e.OldTerm, e.NewLeader, e.NewTerm)
		} else {
			fmt.Fprintf(&b, "  no leader change")
		}
		if e.ConvergenceMs >= 0 {
			fmt.Fprintf(&b, ", conv %.0f ms", e.ConvergenceMs)
		}
		if e.RecoveryMs >= 0 {
			fmt.Fprintf(&b, ", stable after %.0f ms", e.RecoveryMs)
		}
	}
	switch {
	case len(tr.Violations) > 0:
		fmt.Fprintf(&b, "  VIOLATION")
		for _, v := range tr.Violations {
			fmt.Fprintf(&b, "\n           ! %s: %s", v.Kind, v.Msg)
		}
	case len(tr.Failures) > 0:
		fmt.Fprintf(&b, "  FAIL")
	default:
		fmt.Fprintf(&b, "  ok")
	}
	for _, f := range tr.Failures {
		fmt.Fprintf(&b, "\n           - %s", f)
	}
	return b.String()
}
