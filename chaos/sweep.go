package main

// The scale sweep (-sweep 3,5,9,...): for each node count N, N real node
// processes on one redis-server, calm, default timings. It measures, over a
// calm window, the messages per second (from the nodes' Status counters),
// the CPU of redis-server and of the nodes (from /proc/<pid>/stat), the
// nodes' RSS (/proc/<pid>/status), spurious leader changes and elections;
// then SIGKILLs the leader a few times for failover p50/p99. It writes
// chaos-results/sweep.json and sweep.svg, and says when the machine was
// saturated, because then the figures measure the machine, not the library.

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// SweepPoint is one node count's figures (sweep.json).
type SweepPoint struct {
	Nodes          int      `json:"nodes"`
	StartupS       float64  `json:"startup_s"`    // start of the processes to the first stable leader
	StartupTerm    uint64   `json:"startup_term"` // that leader's term: how many terms the first election took (a fresh redis-server per N)
	CalmS          float64  `json:"calm_s"`
	PublishedPerS  float64  `json:"published_per_s"` // sum over nodes of MessagesOut per second
	ReceivedPerS   float64  `json:"received_per_s"`  // sum over nodes of MessagesIn (valid messages delivered) per second
	RedisCPU       float64  `json:"redis_cpu"`       // redis-server utime+stime, fraction of one core
	NodeCPUMedian  float64  `json:"node_cpu_median"` // per node, fraction of one core
	NodeCPUMax     float64  `json:"node_cpu_max"`    // the busiest node (the leader, usually)
	NodeRSSMedian  float64  `json:"node_rss_mb_median"`
	NodeSysMedian  float64  `json:"node_rw_syscalls_per_s_median"` // read- and write-like system calls per second (syscr+syscw of /proc/<pid>/io), median node
	NodeRSSMax     float64  `json:"node_rss_mb_max"`
	HarnessCPU     float64  `json:"harness_cpu"`  // this process (event collection), fraction of one core
	MachineBusy    float64  `json:"machine_busy"` // all cores, 0..1, from /proc/stat
	Load1          float64  `json:"load1"`        // /proc/loadavg at the end of the calm window
	Runnable       float64  `json:"runnable"`     // mean of /proc/stat procs_running over the calm window (threads ready to run)
	Stalls         int      `json:"stalls"`       // processes that did not run for >= 100 ms (not injected)
	MaxStallMs     float64  `json:"max_stall_ms"`
	Spurious       int      `json:"spurious_changes"` // leader changes in the calm window
	CalmElections  uint64   `json:"calm_elections"`
	TermsPerCrash  float64  `json:"terms_per_crash"`     // how far the term grew per crash (1 = one election)
	ElectPerCrash  float64  `json:"elections_per_crash"` // elections started (Status().Elections, all nodes) per crash
	RecvPerCrash   float64  `json:"received_per_crash"`  // messages all nodes received in a crash trial (kill, election, restart: about 2 s)
	Crashes        int      `json:"crashes"`
	Recovered      int      `json:"recovered"`
	Failover       Pcts     `json:"failover_ms"`
	Violations     []string `json:"violations"`
	Failures       []string `json:"failures"`
	Saturated      bool     `json:"saturated"`
	SaturationNote string   `json:"saturation_note,omitempty"`
	DurationS      float64  `json:"duration_s"`
}

// SweepResults is sweep.json.
type SweepResults struct {
	Config  ResultsConfig `json:"config"`
	CalmS   float64       `json:"calm_s"`
	Points  []SweepPoint  `json:"points"`
	Started string        `json:"started"`
	Elapsed float64       `json:"elapsed_s"`
	Notes   []string      `json:"notes"`
}

// procCPU returns utime+stime of pid in clock ticks.
func procCPU(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // comm may hold spaces
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	return u + st, err1 == nil && err2 == nil
}

// procSyscalls returns the read- and write-like system calls pid has made:
// syscr + syscw of /proc/<pid>/io (reads and writes of sockets and pipes
// among them; not epoll_wait, futex or nanosleep).
func procSyscalls(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, false
	}
	var n int64
	found := 0
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "syscr" && k != "syscw") {
			continue
		}
		x, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, false
		}
		n += x
		found++
	}
	return n, found == 2
}

// procRSS returns VmRSS of pid in MB.
func procRSS(pid int) (float64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, err := strconv.ParseFloat(f[1], 64)
				return kb / 1024, err == nil
			}
		}
	}
	return 0, false
}

// machineCPU returns busy and total jiffies of all cores from /proc/stat.
func machineCPU() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, x := range f[1:] {
		v, _ := strconv.ParseInt(x, 10, 64)
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

// procsRunning reads procs_running from /proc/stat: threads running or
// ready to run now (this reader included).
func procsRunning() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "procs_running "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// clkTck is USER_HZ, the unit of /proc/<pid>/stat times; 100 on Linux.
const clkTck = 100

// sample is a snapshot of the counters the calm window differences.
type sample struct {
	t            int64
	nodeCPU      map[int]int64 // pid -> ticks
	nodeSys      map[int]int64 // pid -> read/write syscalls
	redisCPU     int64
	selfCPU      int64
	busy, total  int64
	msgOut       uint64
	msgIn        uint64
	statusMissed int // nodes without a status report yet
}

func takeSample(h *Harness) sample {
	s := sample{t: mono(), nodeCPU: map[int]int64{}, nodeSys: map[int]int64{}}
	for slot := 1; slot <= h.cfg.Nodes; slot++ {
		p := h.proc(slot)
		if p == nil {
			continue
		}
		if c, ok := procCPU(p.cmd.Process.Pid); ok {
			s.nodeCPU[p.cmd.Process.Pid] = c
		}
		if n, ok := procSyscalls(p.cmd.Process.Pid); ok {
			s.nodeSys[p.cmd.Process.Pid] = n
		}
	}
	if h.redis.cmd != nil {
		s.redisCPU, _ = procCPU(h.redis.cmd.Process.Pid)
	}
	s.selfCPU, _ = procCPU(os.Getpid())
	s.busy, s.total = machineCPU()
	h.rec.mu.Lock()
	for slot := 1; slot <= h.cfg.Nodes; slot++ {
		l := h.rec.live[slot]
		if l == nil || l.status.T == 0 {
			s.statusMissed++
			continue
		}
		s.msgOut += l.status.MsgsOut
		s.msgIn += l.status.MsgsIn
	}
	h.rec.mu.Unlock()
	return s
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	if n := len(xs); n%2 == 1 {
		return xs[n/2]
	} else {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// sweepScenario is the script run at each N: trial 1 is the calm window,
// the other trials crash the leader (as the crash scenario).
func sweepScenario(pt *SweepPoint, calm time.Duration) Scenario {
	crash := scenarios[slices.IndexFunc(scenarios, func(s Scenario) bool { return s.Name == "crash" })]
	return Scenario{Name: fmt.Sprintf("sweep-%d", pt.Nodes), Trials: 1,
		Fault:  "calm window, then SIGKILL the leader (as crash)",
		Checks: "no leader change and no election in the calm window; a new leader after each crash",
		Run: func(t *Trial) {
			if t.R.Trial > 1 {
				crash.Run(t)
				return
			}
			t.quietFrom(t.R.Start)
			t.R.SameTerm, t.R.NoElections = true, true
			a := takeSample(t.h)
			var run []float64
			for end := time.Now().Add(calm); time.Now().Before(end); {
				t.sleep(min(250*time.Millisecond, time.Until(end)))
				run = append(run, procsRunning())
			}
			b := takeSample(t.h)
			if len(run) > 0 {
				sum := 0.0
				for _, r := range run {
					sum += r
				}
				pt.Runnable = round(sum/float64(len(run)), 1)
			}
			dt := float64(b.t-a.t) / 1e9
			pt.CalmS = round(dt, 1)
			pt.PublishedPerS = round(float64(b.msgOut-min(a.msgOut, b.msgOut))/dt, 0)
			pt.ReceivedPerS = round(float64(b.msgIn-min(a.msgIn, b.msgIn))/dt, 0)
			pt.RedisCPU = round(float64(b.redisCPU-a.redisCPU)/clkTck/dt, 3)
			pt.HarnessCPU = round(float64(b.selfCPU-a.selfCPU)/clkTck/dt, 3)
			if b.total > a.total {
				pt.MachineBusy = round(float64(b.busy-a.busy)/float64(b.total-a.total), 2)
			}
			pt.Load1 = load1()
			var cpus, rss, sys []float64
			for pid, n1 := range b.nodeSys {
				if n0, ok := a.nodeSys[pid]; ok {
					sys = append(sys, float64(n1-n0)/dt)
				}
			}
			pt.NodeSysMedian = round(median(sys), 0)
			for pid, c1 := range b.nodeCPU {
				if c0, ok := a.nodeCPU[pid]; ok {
					cpus = append(cpus, float64(c1-c0)/clkTck/dt)
				}
				if r, ok := procRSS(pid); ok {
					rss = append(rss, r)
				}
			}
			pt.NodeCPUMedian = round(median(cpus), 4)
			pt.NodeRSSMedian = round(median(rss), 1)
			for _, c := range cpus {
				pt.NodeCPUMax = max(pt.NodeCPUMax, round(c, 4))
			}
			for _, r := range rss {
				pt.NodeRSSMax = max(pt.NodeRSSMax, round(r, 1))
			}
			if b.statusMissed > 0 {
				t.failf("%d nodes had not reported a status by the end of the calm window", b.statusMissed)
			}
		}}
}

// sweepMain runs the sweep and returns the exit code.
func sweepMain(ctx context.Context, cfg *Config, say func(string, ...any), out io.Writer) int {
	var ns []int
	for _, f := range strings.Split(cfg.Sweep, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 3 {
			fmt.Fprintf(os.Stderr, "chaos: -sweep %q: node counts of at least 3, comma-separated\n", cfg.Sweep)
			return 2
		}
		ns = append(ns, n)
	}
	started := time.Now()
	_ = os.RemoveAll(filepath.Join(cfg.Out, "sweep"))
	res := &SweepResults{Started: started.UTC().Format(time.RFC3339), CalmS: cfg.SweepCalm.Seconds(), Notes: []string{},
		Config: ResultsConfig{HeartbeatMs: cfg.Heartbeat.Milliseconds(), LeaseMs: cfg.Lease.Milliseconds(),
			PeerTimeoutMs: cfg.PeerTimeout.Milliseconds(), JitterMs: cfg.Jitter.Milliseconds(), Seed: cfg.Seed,
			TickMs: float64(cfg.Tick.Microseconds()) / 1000, CPUs: runtime.NumCPU(), Algos: cfg.Algos, ExitOn: cfg.ExitOn}}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	bad := false
	for _, n := range ns {
		if ctx.Err() != nil {
			break
		}
		c := *cfg
		c.Nodes, c.NoProxy, c.Trials, c.Quick = n, true, 1+cfg.SweepCrashes, false
		c.Out = filepath.Join(cfg.Out, "sweep") // logs and events apart: a chaos run clears its own
		pt := &SweepPoint{Nodes: n, Violations: []string{}, Failures: []string{}}
		h, err := NewHarness(&c)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 2
		}
		sc := sweepScenario(pt, cfg.SweepCalm)
		t0 := time.Now()
		sr := runScenario(ctx, h, &c, &sc, cfg.Algos[0], rng, say)
		h.Close()
		summarizeScenario(sr, cfg.Algos[0])
		if err := os.MkdirAll(filepath.Join(c.Out, "events"), 0o755); err == nil {
			_ = writeEvents(filepath.Join(c.Out, "events", sr.label+".jsonl"), sr)
		}
		pt.DurationS = round(time.Since(t0).Seconds(), 1)
		if len(sr.trials) > 0 {
			for _, e := range sr.rec.events {
				if e.Ev == evProcStart {
					pt.StartupS = round(float64(sr.trials[0].Start-e.T)/1e9, 1)
					pt.StartupTerm = sr.trials[0].OldTerm
					break
				}
			}
		}
		var fo []float64
		for _, tr := range sr.an.Trials {
			if tr.Trial == 1 {
				pt.Spurious = tr.Spurious
				pt.CalmElections = tr.Elections
				continue
			}
			pt.Crashes++
			pt.TermsPerCrash += float64(tr.TermsUsed)
			pt.ElectPerCrash += float64(tr.Elections)
			pt.RecvPerCrash += float64(tr.Received)
			if tr.Recovered {
				pt.Recovered++
			}
			for _, e := range tr.Episodes {
				if e.FailoverMs >= 0 && e.Name == "crash" {
					fo = append(fo, e.FailoverMs)
				}
			}
		}
		pt.Failover = summarize(fo)
		if pt.Crashes > 0 {
			pt.TermsPerCrash = round(pt.TermsPerCrash/float64(pt.Crashes), 1)
			pt.ElectPerCrash = round(pt.ElectPerCrash/float64(pt.Crashes), 1)
			pt.RecvPerCrash = round(pt.RecvPerCrash/float64(pt.Crashes), 0)
		}
		pt.Violations = append(pt.Violations, sr.res.Violations...)
		pt.Failures = append(pt.Failures, sr.res.Failures...)
		pt.Stalls, pt.MaxStallMs = sr.res.Stalls, sr.res.MaxStallMs
		var why []string
		if pt.MachineBusy >= 0.85 {
			why = append(why, fmt.Sprintf("the machine was %.0f%% busy", 100*pt.MachineBusy))
		}
		if pt.Stalls > 0 {
			why = append(why, fmt.Sprintf("%d stalls of 100 ms or more (the longest %.0f ms)", pt.Stalls, pt.MaxStallMs))
		}
		if len(why) > 0 {
			pt.Saturated = true
			pt.SaturationNote = strings.Join(why, "; ")
		}
		if len(pt.Violations) > 0 || len(pt.Failures) > 0 {
			bad = true
		}
		res.Points = append(res.Points, *pt)
		say("sweep N=%d: %.0f msgs/s published, %.0f received, redis %.1f%% of a core, node median %.2f%% / max %.1f%%, RSS median %.1f MB, failover p50 %.0f p99 %.0f ms, %d spurious%s",
			n, pt.PublishedPerS, pt.ReceivedPerS, 100*pt.RedisCPU, 100*pt.NodeCPUMedian, 100*pt.NodeCPUMax, pt.NodeRSSMedian,
			pt.Failover.P50, pt.Failover.P99, pt.Spurious, satSuffix(pt))
	}
	res.Elapsed = round(time.Since(started).Seconds(), 1)
	for _, p := range res.Points {
		if p.Saturated {
			res.Notes = append(res.Notes, fmt.Sprintf("N=%d: saturated (%s): its figures measure this machine as much as the library", p.Nodes, p.SaturationNote))
		}
	}
	fmt.Fprintln(out)
	writeSweepTable(out, res)
	if err := writeJSON(filepath.Join(cfg.Out, "sweep.json"), res); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if err := writeSweepSVG(filepath.Join(cfg.Out, "sweep.svg"), res); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	for _, n := range res.Notes {
		fmt.Fprintln(out, "note:", n)
	}
	for _, p := range res.Points {
		for _, v := range p.Violations {
			fmt.Fprintf(out, "N=%d: safety violation: %s\n", p.Nodes, v)
		}
		for _, f := range p.Failures {
			fmt.Fprintf(out, "N=%d: %s\n", p.Nodes, f)
		}
	}
	fmt.Fprintf(out, "\nsweep: %s, %s\nelapsed %.1fs, seed %d\n", filepath.Join(cfg.Out, "sweep.json"),
		filepath.Join(cfg.Out, "sweep.svg"), res.Elapsed, cfg.Seed)
	switch {
	case ctx.Err() != nil:
		return 130
	case bad:
		return 1
	}
	return 0
}

func satSuffix(p *SweepPoint) string {
	if p.Saturated {
		return " [SATURATED: " + p.SaturationNote + "]"
	}
	return ""
}

func writeSweepTable(w io.Writer, res *SweepResults) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "nodes\tpublished/s\treceived/s\tredis cpu %\tnode cpu % med\tmax\tharness %\tnode RSS MB med\tnode r/w syscalls/s med\tstartup s\tterm\tfailover p50\tp99 ms\tcrashes ok\tterms/crash\telections/crash\treceived/crash\tspurious\tcalm elections\tmachine busy %\trunnable\tstalls\tnote\t")
	for _, p := range res.Points {
		note := verdict(p.Violations, p.Failures)
		if p.Saturated {
			note += ", saturated"
		}
		fo50, fo99 := "-", "-"
		if p.Failover.N > 0 {
			fo50, fo99 = fmt.Sprintf("%.0f", p.Failover.P50), fmt.Sprintf("%.0f", p.Failover.P99)
		}
		fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.1f\t%.2f\t%.1f\t%.1f\t%.1f\t%.0f\t%.1f\t%d\t%s\t%s\t%d/%d\t%.1f\t%.1f\t%.0f\t%d\t%d\t%.0f\t%.1f\t%d\t%s\t\n",
			p.Nodes, p.PublishedPerS, p.ReceivedPerS, 100*p.RedisCPU, 100*p.NodeCPUMedian, 100*p.NodeCPUMax, 100*p.HarnessCPU, p.NodeRSSMedian,
			p.NodeSysMedian, p.StartupS, p.StartupTerm, fo50, fo99, p.Recovered, p.Crashes, p.TermsPerCrash, p.ElectPerCrash, p.RecvPerCrash, p.Spurious, p.CalmElections, 100*p.MachineBusy, p.Runnable, p.Stalls, note)
	}
	tw.Flush()
}

// writeSweepSVG plots failover p50/p99 against N (log scale), and below it
// Redis CPU and the median node CPU.
func writeSweepSVG(path string, res *SweepResults) error {
	const (
		width, panelH       = 640.0, 220.0
		left, right, top    = 80.0, 30.0, 40.0
		gap                 = 60.0
		height              = top + 2*panelH + gap + 40
		plotW               = width - left - right
		failoverColor, p99c = "#1f77b4", "#d62728"
	)
	pts := res.Points
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="10" y="20" font-size="14" font-weight="bold">Failover after SIGKILL of the leader, and CPU, against the number of nodes</text>`+"\n")
	if len(pts) == 0 {
		b.WriteString("</svg>\n")
		return os.WriteFile(path, []byte(b.String()), 0o644)
	}
	lo, hi := math.Log2(float64(pts[0].Nodes)), math.Log2(float64(pts[0].Nodes))
	for _, p := range pts {
		lo, hi = min(lo, math.Log2(float64(p.Nodes))), max(hi, math.Log2(float64(p.Nodes)))
	}
	if hi == lo {
		hi = lo + 1
	}
	x := func(n int) float64 { return left + plotW*(math.Log2(float64(n))-lo)/(hi-lo) }
	panel := func(y0 float64, title, unit string, series []struct {
		name, color string
		v           func(SweepPoint) (float64, bool)
	}) {
		ymax := 0.0
		for _, s := range series {
			for _, p := range pts {
				if v, ok := s.v(p); ok {
					ymax = max(ymax, v)
				}
			}
		}
		if ymax <= 0 {
			ymax = 1
		}
		ymax *= 1.15
		y := func(v float64) float64 { return y0 + panelH - panelH*v/ymax }
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-weight="bold">%s</text>`+"\n", left, y0-8, title)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="#fafafa" stroke="#ccc"/>`+"\n", left, y0, plotW, panelH)
		for i := 0; i <= 4; i++ {
			v := ymax * float64(i) / 4
			lbl := fmt.Sprintf("%.0f", v)
			if ymax < 10 {
				lbl = fmt.Sprintf("%.1f", v)
			}
			fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#e5e5e5"/><text x="%.0f" y="%.1f" text-anchor="end" fill="#555">%s%s</text>`+"\n",
				left, y(v), left+plotW, y(v), left-4, y(v)+4, lbl, unit)
		}
		for _, p := range pts {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle" fill="#555">%d%s</text>`+"\n", x(p.Nodes), y0+panelH+14, p.Nodes,
				map[bool]string{true: "*", false: ""}[p.Saturated])
			if p.CalmS == 0 || p.Failover.N == 0 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="end" fill="#d62728">no stable leader</text>`+"\n", x(p.Nodes), y0+panelH-6)
			}
		}
		for i, s := range series {
			var path []string
			for _, p := range pts {
				if v, ok := s.v(p); ok {
					path = append(path, fmt.Sprintf("%.1f,%.1f", x(p.Nodes), y(v)))
					fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>N=%d %s %.4g%s</title></circle>`+"\n", x(p.Nodes), y(v), s.color, p.Nodes, s.name, v, unit)
				}
			}
			if len(path) > 1 {
				fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(path, " "), s.color)
			}
			fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n",
				left+10+float64(i)*150, y0+8, s.color, left+24+float64(i)*150, y0+17, s.name)
		}
	}
	type series = struct {
		name, color string
		v           func(SweepPoint) (float64, bool)
	}
	panel(top+10, "failover (ms) after SIGKILL of the leader; nodes (log scale), * = machine saturated", " ms", []series{
		{"p50", failoverColor, func(p SweepPoint) (float64, bool) { return p.Failover.P50, p.Failover.N > 0 }},
		{"p99", p99c, func(p SweepPoint) (float64, bool) { return p.Failover.P99, p.Failover.N > 0 }},
	})
	panel(top+10+panelH+gap, "CPU, % of one core, in the calm window", "%", []series{
		{"redis-server", "#2ca02c", func(p SweepPoint) (float64, bool) { return 100 * p.RedisCPU, p.CalmS > 0 }},
		{"node (median)", "#9467bd", func(p SweepPoint) (float64, bool) { return 100 * p.NodeCPUMedian, p.CalmS > 0 }},
		{"node (max)", "#ff7f0e", func(p SweepPoint) (float64, bool) { return 100 * p.NodeCPUMax, p.CalmS > 0 }},
	})
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
