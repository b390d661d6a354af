package main

// The soak (-soak 10m): N nodes (default 5) for a long time under the
// latency scenario's toxic on every link, with the flap scenario's fault on
// the leader's link every -soak-flap-every. Every -soak-sample it samples
// each node's RSS (/proc/<pid>/status) and goroutine count (from its status
// report, runtime.NumGoroutine). It prints first/last/max per node, runs the
// safety checks over the whole run, and writes chaos-results/soak.json.
// Memory or goroutines that keep growing show a leak.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// SoakSample is one sampling of every node.
type SoakSample struct {
	AtS        float64   `json:"at_s"`
	RSSMB      []float64 `json:"rss_mb"`     // per slot
	Goroutines []int     `json:"goroutines"` // per slot
	RedisRSSMB float64   `json:"redis_rss_mb"`
	Leader     string    `json:"leader"`
}

// SoakResults is soak.json.
type SoakResults struct {
	Config        ResultsConfig  `json:"config"`
	DurationS     float64        `json:"duration_s"`
	Latency       string         `json:"latency"`
	FlapEveryS    float64        `json:"flap_every_s"`
	Flaps         int            `json:"flaps"`
	LeaderChanges int            `json:"leader_changes"`
	Nodes         []SoakNodeStat `json:"nodes"`
	Samples       []SoakSample   `json:"samples"`
	Violations    []string       `json:"violations"`
	Failures      []string       `json:"failures"`
	Fencing       FenceStats     `json:"fencing"`
	Stalls        int            `json:"stalls"`
	OK            bool           `json:"ok"`
}

// SoakNodeStat is first/last/max of one node's RSS and goroutines. The
// first sample is taken once the group is stable, after warm-up.
type SoakNodeStat struct {
	ID       string  `json:"id"`
	RSSFirst float64 `json:"rss_mb_first"`
	RSSWarm  float64 `json:"rss_mb_warm"` // at min(60 s, a quarter of the soak): after the runtime's warm-up
	RSSLast  float64 `json:"rss_mb_last"`
	RSSMax   float64 `json:"rss_mb_max"`
	GorFirst int     `json:"goroutines_first"`
	GorWarm  int     `json:"goroutines_warm"`
	GorLast  int     `json:"goroutines_last"`
	GorMax   int     `json:"goroutines_max"`
}

// soakMain runs the soak and returns the exit code.
func soakMain(ctx context.Context, cfg *Config, say func(string, ...any), out io.Writer) int {
	algo := cfg.Algos[0]
	hc := *cfg
	hc.Out = filepath.Join(cfg.Out, "soak") // its logs apart: a chaos run clears its own
	_ = os.RemoveAll(hc.Out)
	h, err := NewHarness(&hc)
	if err != nil {
		fmt.Fprintln(out, "chaos:", err)
		return 2
	}
	defer h.Close()
	rec := newRecorder("soak", algo, cfg.group(algo), cfg.Tick)
	h.setRecorder(rec)
	lat, jit := latencyBelowTimeouts(cfg)
	res := &SoakResults{Latency: fmt.Sprintf("%v±%v", lat, jit), FlapEveryS: cfg.SoakFlapEvery.Seconds(),
		Violations: []string{}, Failures: []string{},
		Config: ResultsConfig{Nodes: cfg.Nodes, HeartbeatMs: cfg.Heartbeat.Milliseconds(), LeaseMs: cfg.Lease.Milliseconds(),
			PeerTimeoutMs: cfg.PeerTimeout.Milliseconds(), JitterMs: cfg.Jitter.Milliseconds(), Seed: cfg.Seed,
			TickMs: float64(cfg.Tick.Microseconds()) / 1000, Algos: cfg.Algos, ExitOn: cfg.ExitOn}}
	say("soak: %d nodes (%s) for %v: latency %v±%v on every link, the leader's link flapping (5 x PeerTimeout/3 down/up) every %v, samples every %v",
		cfg.Nodes, algo, cfg.Soak, lat, jit, cfg.SoakFlapEvery, cfg.SoakSample)
	for s := 1; s <= cfg.Nodes; s++ {
		if _, err := h.StartNode(s, 0); err != nil {
			fmt.Fprintln(out, "chaos:", err)
			return 2
		}
	}
	tr := &TrialRecord{Scenario: "soak", Trial: 1}
	t := &Trial{h: h, cfg: cfg, ctx: ctx, rec: rec, algo: algo, R: tr}
	if !prepare(t) {
		fmt.Fprintln(out, "chaos: soak: no stable leader at the start")
		return 1
	}
	for s := 1; s <= cfg.Nodes; s++ {
		if err := h.Latency(s, lat, jit); err != nil {
			fmt.Fprintln(out, "chaos:", err)
			return 2
		}
	}
	start := time.Now()
	deadline := start.Add(cfg.Soak)
	nextFlap := start.Add(cfg.SoakFlapEvery)
	nextSample := start
	sampleOne := func() {
		smp := SoakSample{AtS: round(time.Since(start).Seconds(), 1)}
		rec.mu.Lock()
		for s := 1; s <= cfg.Nodes; s++ {
			g := 0
			if l := rec.live[s]; l != nil {
				g = l.status.Goroutines
			}
			smp.Goroutines = append(smp.Goroutines, g)
		}
		rec.mu.Unlock()
		for s := 1; s <= cfg.Nodes; s++ {
			r := 0.0
			if p := h.proc(s); p != nil {
				r, _ = procRSS(p.cmd.Process.Pid)
			}
			smp.RSSMB = append(smp.RSSMB, round(r, 2))
		}
		if h.redis.cmd != nil {
			r, _ := procRSS(h.redis.cmd.Process.Pid)
			smp.RedisRSSMB = round(r, 2)
		}
		if _, id, _, _, ok := rec.stableLeader(mono(), nil, 0, 0); ok {
			smp.Leader = id
		}
		res.Samples = append(res.Samples, smp)
	}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if !time.Now().Before(nextSample) {
			sampleOne()
			nextSample = nextSample.Add(cfg.SoakSample)
			if n := len(res.Samples); n%max(1, int(time.Minute/cfg.SoakSample)) == 1 || n == 1 {
				say("soak %4.0fs: RSS %v MB, goroutines %v", res.Samples[n-1].AtS, res.Samples[n-1].RSSMB, res.Samples[n-1].Goroutines)
			}
		}
		if !time.Now().Before(nextFlap) {
			nextFlap = nextFlap.Add(cfg.SoakFlapEvery)
			if slot, _, _, _, ok := rec.stableLeader(mono(), nil, 0, 0); ok {
				res.Flaps++
				func() {
					defer func() { _ = recover() }() // t.sleep aborts on Ctrl-C
					for range 5 {
						fi := rec.addFault(Fault{Trial: 1, Kind: "cut", Slots: []int{slot}, Start: mono()})
						t.cut(slot, "both")
						cw := t.cutWindow(slot)
						t.sleep(cfg.PeerTimeout / 3)
						t.closeCut(cw)
						h.Uncut(slot)
						rec.endFault(fi, mono())
						t.sleep(cfg.PeerTimeout / 3)
					}
				}()
			}
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	sampleOne()
	tr.Start, tr.End = mono()-int64(time.Since(start)), mono()
	res.DurationS = round(time.Since(start).Seconds(), 1)
	h.KillAll()
	h.HealAll()
	evs, faults := rec.snapshot()
	an := Analyze(evs, faults, []*TrialRecord{tr}, cfg.params(algo))
	for _, v := range an.Violations {
		res.Violations = append(res.Violations, v.Kind+": "+v.Msg)
	}
	res.Fencing = an.Fence
	res.Stalls = len(an.Stalls)
	for _, s := range an.Segments {
		if s.FirstT0 > tr.Start && !s.Cont {
			res.LeaderChanges++
		}
	}
	// first/last/max; the first sample is after warm-up (the group was
	// already stable), so growth from it to the last is what counts
	warmAt := min(60, res.DurationS/4)
	for s := 1; s <= cfg.Nodes; s++ {
		st := SoakNodeStat{ID: fmt.Sprintf("n%d", s)}
		warm := false
		for i, smp := range res.Samples {
			r, g := smp.RSSMB[s-1], smp.Goroutines[s-1]
			if i == 0 {
				st.RSSFirst, st.GorFirst = r, g
			}
			if !warm && smp.AtS >= warmAt {
				st.RSSWarm, st.GorWarm, warm = r, g, true
			}
			st.RSSLast, st.GorLast = r, g
			st.RSSMax, st.GorMax = max(st.RSSMax, r), max(st.GorMax, g)
		}
		res.Nodes = append(res.Nodes, st)
		// a leak: memory or goroutines at the end well above where they
		// were once the runtime had warmed up
		if st.RSSLast > 1.5*st.RSSWarm+5 {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: RSS grew from %.1f MB (at %.0f s) to %.1f MB", st.ID, st.RSSWarm, warmAt, st.RSSLast))
		}
		if st.GorLast > st.GorWarm+20 {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: goroutines grew from %d (at %.0f s) to %d", st.ID, st.GorWarm, warmAt, st.GorLast))
		}
	}
	res.OK = len(res.Violations) == 0 && len(res.Failures) == 0 && ctx.Err() == nil
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(out)
	fmt.Fprintf(tw, "node\tRSS MB first\tat %.0fs\tlast\tmax\tgoroutines first\tat %.0fs\tlast\tmax\t\n", warmAt, warmAt)
	for _, st := range res.Nodes {
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t%d\t\n", st.ID, st.RSSFirst, st.RSSWarm, st.RSSLast, st.RSSMax,
			st.GorFirst, st.GorWarm, st.GorLast, st.GorMax)
	}
	tw.Flush()
	fmt.Fprintf(out, "\nsoak: %.0f s, %d samples, %d flaps, %d leader changes, fence %d accepted / %d rejected, %d stalls, %d violations\n",
		res.DurationS, len(res.Samples), res.Flaps, res.LeaderChanges, res.Fencing.Accepted, res.Fencing.Rejected, res.Stalls, len(res.Violations))
	for _, v := range res.Violations {
		fmt.Fprintln(out, "  violation:", v)
	}
	for _, f := range res.Failures {
		fmt.Fprintln(out, "  not flat:", f)
	}
	path := filepath.Join(cfg.Out, "soak.json")
	if err := writeJSON(path, res); err != nil {
		fmt.Fprintln(out, "chaos:", err)
		return 2
	}
	fmt.Fprintf(out, "soak: %s\n", path)
	switch {
	case ctx.Err() != nil:
		return 130
	case !res.OK:
		return 1
	}
	fmt.Fprintln(out, "soak: "+strings.Join([]string{"flat", "no violations"}, ", "))
	return 0
}
