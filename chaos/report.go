package main

// The report: per-scenario figures, the aligned table, results.json and
// timeline.svg.

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Pcts summarises a distribution in milliseconds; N is the sample count
// (0: nothing was measured, and the other fields are 0).
type Pcts struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	N   int     `json:"n"`
}

func summarize(xs []float64) Pcts {
	if len(xs) == 0 {
		return Pcts{}
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	r := func(v float64) float64 { return math.Round(v*10) / 10 }
	return Pcts{P50: r(percentile(xs, 50)), P90: r(percentile(xs, 90)), P99: r(percentile(xs, 99)),
		Max: r(xs[len(xs)-1]), N: len(xs)}
}

// ScenarioResult is one entry of results.json's "scenarios".
type ScenarioResult struct {
	Name            string        `json:"name"`
	Algo            string        `json:"algo"`
	Strict          bool          `json:"strict"`
	Trials          int           `json:"trials"`
	Recovered       int           `json:"recovered"`
	Failover        Pcts          `json:"failover_ms"`
	Convergence     Pcts          `json:"convergence_ms"`
	Recovery        Pcts          `json:"recovery_ms"`
	AfterHeal       Pcts          `json:"after_heal_ms"` // end of the fault to the new leader, where it came after (e.g. redis-server back up)
	LeaderlessMs    float64       `json:"leaderless_ms"` // mean per measured fault
	LeaderlessMaxMs float64       `json:"leaderless_max_ms"`
	OverlapMs       float64       `json:"overlap_ms"`
	FloorMs         float64       `json:"floor_ms,omitempty"` // the failover no safe timeout detector can beat; 0: none given
	Terms           uint64        `json:"terms"`              // terms used by all trials together
	Elections       uint64        `json:"elections"`
	LeaderChanges   int           `json:"leader_changes"`
	SpuriousChanges int           `json:"spurious_changes"`
	ZombieTicks     int           `json:"zombie_ticks"`
	StepDownMaxMs   float64       `json:"stepdown_max_ms"` // cut leader's last tick after its cut; -1: n/a
	Fencing         FenceStats    `json:"fencing"`
	Stalls          int           `json:"stalls"`       // processes that did not run for >= 100 ms, not injected
	MaxStallMs      float64       `json:"max_stall_ms"` // the longest of those
	Violations      []string      `json:"violations"`
	Failures        []string      `json:"failures"`
	Notes           []string      `json:"notes"` // worth knowing, not a failure
	DurationS       float64       `json:"duration_s"`
	TrialDetails    []TrialResult `json:"trial_details"`
}

// Results is results.json.
type Results struct {
	Config    ResultsConfig    `json:"config"`
	Scenarios []ScenarioResult `json:"scenarios"`
	Started   string           `json:"started"`
	ElapsedS  float64          `json:"elapsed_s"`
	OK        bool             `json:"ok"`
}

// ResultsConfig is results.json's "config".
type ResultsConfig struct {
	Nodes         int      `json:"nodes"`
	HeartbeatMs   int64    `json:"heartbeat_ms"`
	LeaseMs       int64    `json:"lease_ms"`
	PeerTimeoutMs int64    `json:"peer_timeout_ms"`
	JitterMs      int64    `json:"jitter_ms"`
	Strict        bool     `json:"strict"`
	Seed          uint64   `json:"seed"`
	TickMs        float64  `json:"tick_ms"`
	Quick         bool     `json:"quick"`
	CPUs          int      `json:"cpus"`
	Algos         []string `json:"algos"`
	ExitOn        []string `json:"exit_on"` // the algorithms whose results set the exit status
}

// scenarioRun is everything kept about one scenario's run.
type scenarioRun struct {
	sc       *Scenario
	label    string // sc.Name, with ".lock" for the lock baseline
	algo     string
	strict   bool
	rec      *Recorder
	trials   []*TrialRecord
	an       *Analysis
	start    int64
	end      int64
	res      ScenarioResult
	setupErr string
}

// summarizeScenario fills sr.res from its analysis.
func summarizeScenario(sr *scenarioRun, algo string) {
	an := sr.an
	r := ScenarioResult{Name: sr.sc.Name, Algo: algo, Strict: sr.strict, Trials: len(sr.trials),
		OverlapMs: ms(an.OverlapNs), ZombieTicks: an.Zombies, Fencing: an.Fence, StepDownMaxMs: -1,
		Violations: []string{}, Failures: []string{}, Notes: []string{}, TrialDetails: an.Trials,
		DurationS: math.Round(float64(sr.end-sr.start)/1e8) / 10}
	for _, tr := range sr.trials {
		r.Notes = append(r.Notes, tr.Notes...)
	}
	for _, tr := range an.Trials {
		if tr.PerMinute > 0 || sr.sc.Name == "load-calm" {
			r.Notes = append(r.Notes, fmt.Sprintf("trial %d: %.1f leader changes (job restarts) per minute", tr.Trial, tr.PerMinute))
		}
	}
	r.Stalls = len(an.Stalls)
	for _, st := range an.Stalls {
		r.MaxStallMs = max(r.MaxStallMs, ms(st.To-st.From))
	}
	var fo, conv, rec, heal, ll []float64
	for _, t := range an.Trials {
		if t.Recovered {
			r.Recovered++
		}
		r.Terms += t.TermsUsed
		r.Elections += t.Elections
		r.LeaderChanges += t.Changes
		r.SpuriousChanges += t.Spurious
		for _, e := range t.Episodes {
			if e.FailoverMs >= 0 {
				fo = append(fo, e.FailoverMs)
			}
			if e.ConvergenceMs >= 0 {
				conv = append(conv, e.ConvergenceMs)
			}
			if e.RecoveryMs >= 0 {
				rec = append(rec, e.RecoveryMs)
			}
			if e.AfterHealMs >= 0 {
				heal = append(heal, e.AfterHealMs)
			}
			ll = append(ll, e.LeaderlessMs)
			if e.StepDownMs >= 0 {
				r.StepDownMaxMs = max(r.StepDownMaxMs, e.StepDownMs)
			}
		}
		for _, f := range t.Failures {
			r.Failures = append(r.Failures, fmt.Sprintf("trial %d: %s", t.Trial, f))
		}
	}
	if sr.setupErr != "" {
		r.Failures = append(r.Failures, sr.setupErr)
	}
	for _, v := range an.Violations {
		r.Violations = append(r.Violations, fmt.Sprintf("trial %d: %s: %s", v.Trial, v.Kind, v.Msg))
	}
	if an.Fence.Accepted == 0 && an.Fence.Rejected > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("the fence rejected all %d writes: the leaders' terms were below one stored earlier in the run (terms went back, e.g. after redis-server lost the term key)", an.Fence.Rejected))
	} else if an.Fence.Rejected > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("the fence rejected %d writes of a leader whose term had been superseded", an.Fence.Rejected))
	}
	r.Failover, r.Convergence, r.Recovery, r.AfterHeal = summarize(fo), summarize(conv), summarize(rec), summarize(heal)
	if r.AfterHeal.N > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d new leaders began after their fault ended: p50 %.0f ms, max %.0f ms after it (after_heal_ms)",
			r.AfterHeal.N, r.AfterHeal.P50, r.AfterHeal.Max))
	}
	if len(ll) > 0 {
		sum := 0.0
		for _, x := range ll {
			sum += x
			r.LeaderlessMaxMs = max(r.LeaderlessMaxMs, x)
		}
		r.LeaderlessMs = math.Round(sum/float64(len(ll))*10) / 10
		r.LeaderlessMaxMs = math.Round(r.LeaderlessMaxMs*10) / 10
	}
	r.MaxStallMs = math.Round(r.MaxStallMs*10) / 10
	r.StepDownMaxMs = math.Round(r.StepDownMaxMs*10) / 10
	sr.res = r
}

// writeTable prints the aligned results table.
func writeTable(w io.Writer, rs []ScenarioResult, withAlgo bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if withAlgo {
		fmt.Fprint(tw, "algo\t")
	}
	fmt.Fprintln(tw, "scenario\ttrials\trecovered\tfailover p50\tp90\tp99\tmax ms\tconv p50\tp99 ms\tleaderless ms\toverlap ms\tterms\tspurious\tfence ok/rejected\tresult\t")
	num := func(p Pcts, v float64) string {
		if p.N == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f", v)
	}
	for _, r := range rs {
		result := verdict(r.Violations, r.Failures)
		if withAlgo {
			fmt.Fprintf(tw, "%s\t", r.Algo)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.1f\t%d\t%d\t%d/%d\t%s\t\n",
			r.Name, r.Trials, r.Recovered,
			num(r.Failover, r.Failover.P50), num(r.Failover, r.Failover.P90), num(r.Failover, r.Failover.P99), num(r.Failover, r.Failover.Max),
			num(r.Convergence, r.Convergence.P50), num(r.Convergence, r.Convergence.P99),
			r.LeaderlessMs, r.OverlapMs, r.Terms, r.SpuriousChanges, r.Fencing.Accepted, r.Fencing.Rejected, result)
	}
	tw.Flush()
}

// floorMs is the failover, from the fault, that no safe lease-based elector
// can beat in a scenario, at the run's timings (0: none stated):
// neither a crash nor a pause nor a partition can be acted on before the old
// lease ends, a deaf leader not before its lease and the two heartbeats it
// waits for acks; a handover needs a tick of the job.
func floorMs(name string, cfg *Config) float64 {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	switch name {
	case "crash", "crash-heir", "amnesia", "pause", "partition", "partition-out":
		return ms(cfg.Lease)
	case "partition-in":
		return ms(cfg.Lease + 2*cfg.Heartbeat)
	case "resign":
		return ms(cfg.Tick)
	}
	return 0
}

// verdict is a row's result column: a violation outranks a failure.
func verdict(violations, failures []string) string {
	switch {
	case len(violations) > 0:
		return "VIOLATION"
	case len(failures) > 0:
		return "FAIL"
	}
	return "ok"
}

// writeSideBySide prints one row per scenario with its floor, then each
// algorithm's failover percentiles, p99 against the floor, overlap and
// result next to each other, and, for two algorithms, the first's p99 over
// the second's (below 1: the first fails over faster).
func writeSideBySide(w io.Writer, rs []ScenarioResult, algos []string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "scenario\tfloor ms\t")
	for _, a := range algos {
		fmt.Fprintf(tw, "%s p50\tp99 ms\tp99/floor\toverlap ms\tviolations\tresult\t", a)
	}
	if len(algos) == 2 {
		fmt.Fprintf(tw, "p99 %s/%s\t", algos[0], algos[1])
	}
	fmt.Fprintln(tw)
	var names []string
	by := map[string]ScenarioResult{}
	for _, r := range rs {
		if !slices.Contains(names, r.Name) {
			names = append(names, r.Name)
		}
		by[r.Name+"/"+r.Algo] = r
	}
	for _, n := range names {
		floor := 0.0
		for _, a := range algos {
			if r, ok := by[n+"/"+a]; ok && r.FloorMs > 0 {
				floor = r.FloorMs
			}
		}
		if floor > 0 {
			fmt.Fprintf(tw, "%s\t%.0f\t", n, floor)
		} else {
			fmt.Fprintf(tw, "%s\t-\t", n)
		}
		for _, a := range algos {
			r, ok := by[n+"/"+a]
			if !ok {
				fmt.Fprint(tw, "skipped\t\t\t\t\t\t")
				continue
			}
			p50, p99, ratio := "-", "-", "-"
			if r.Failover.N > 0 {
				p50, p99 = fmt.Sprintf("%.0f", r.Failover.P50), fmt.Sprintf("%.0f", r.Failover.P99)
				if floor > 0 {
					ratio = fmt.Sprintf("%.2f", r.Failover.P99/floor)
				}
			}
			result := verdict(r.Violations, r.Failures)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%d\t%s\t", p50, p99, ratio, r.OverlapMs, len(r.Violations), result)
		}
		if len(algos) == 2 {
			a, aok := by[n+"/"+algos[0]]
			b, bok := by[n+"/"+algos[1]]
			if aok && bok && a.Failover.N > 0 && b.Failover.N > 0 && b.Failover.P99 > 0 {
				fmt.Fprintf(tw, "%.2f\t", a.Failover.P99/b.Failover.P99)
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeEvents writes every event of a scenario as JSON lines, for other
// tools and for digging into a failure.
func writeEvents(path string, sr *scenarioRun) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	evs, faults := sr.rec.snapshot()
	enc := json.NewEncoder(f)
	for _, fl := range faults {
		if err := enc.Encode(struct {
			Ev string `json:"ev"`
			Fault
		}{"fault", fl}); err != nil {
			return err
		}
	}
	for _, e := range evs {
		e.Scenario = sr.label
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return nil
}

// ---- timeline.svg ----

// termColor gives each term its own colour, stable across the picture.
func termColor(term uint64) string {
	hue := (term * 137) % 360
	return fmt.Sprintf("hsl(%d,70%%,45%%)", hue)
}

// writeSVG draws one panel per scenario: a lane per node slot, leader
// intervals (from ticks) coloured by term and labelled with it, faults
// shaded on the lanes they hit (all lanes for Redis-wide faults), the
// times a node's process was down hatched, and trial boundaries.
func writeSVG(path string, runs []*scenarioRun, nodes int, tick time.Duration) error {
	const (
		width  = 1400.0
		left   = 150.0
		right  = 20.0
		laneH  = 16.0
		top    = 30.0
		header = 34.0
	)
	var b strings.Builder
	panelH := header + float64(nodes)*laneH + 26
	height := top + float64(len(runs))*panelH + 40
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, height)
	b.WriteString(`<defs><pattern id="down" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#eee"/><line x1="0" y1="0" x2="0" y2="6" stroke="#bbb" stroke-width="3"/></pattern></defs>` + "\n")
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="10" y="18" font-size="14" font-weight="bold">Leader per node over time, coloured by term; red: fault on that node's link or process, hatched: process down, dashed: trial start, red triangle: safety violation</text>`+"\n")
	y0 := top
	for _, sr := range runs {
		evs, faults := sr.rec.snapshot()
		t0, t1 := sr.start, sr.end
		if t1 <= t0 {
			t1 = t0 + 1
		}
		span := float64(t1 - t0)
		x := func(t int64) float64 {
			return left + (width-left-right)*float64(min(max(t, t0), t1)-t0)/span
		}
		laneY := func(slot int) float64 { return y0 + header + float64(slot-1)*laneH }
		status := "ok"
		switch {
		case len(sr.res.Violations) > 0:
			status = "VIOLATION"
		case len(sr.res.Failures) > 0:
			status = "FAIL"
		}
		fmt.Fprintf(&b, `<text x="10" y="%.0f" font-size="13" font-weight="bold">%s</text><text x="%.0f" y="%.0f" fill="#555">%s — %.1f s, %d trials, %s</text>`+"\n",
			y0+16, html.EscapeString(sr.label), left, y0+16, html.EscapeString(sr.sc.Fault), float64(t1-t0)/1e9, len(sr.trials), status)
		for s := 1; s <= nodes; s++ {
			fmt.Fprintf(&b, `<text x="110" y="%.0f">n%d</text><rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="#f7f7f7"/>`+"\n",
				laneY(s)+laneH-4, s, left, laneY(s)+1, width-left-right, laneH-2)
		}
		// process down: from an exit to the next start of the slot
		downFrom := map[int]int64{}
		for _, e := range evs {
			switch e.Ev {
			case evProcExit:
				downFrom[e.Slot] = e.T
			case evProcStart:
				if f, ok := downFrom[e.Slot]; ok {
					fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="url(#down)"/>`+"\n",
						x(f), laneY(e.Slot)+1, max(x(e.T)-x(f), 1), laneH-2)
					delete(downFrom, e.Slot)
				}
			}
		}
		for slot, f := range downFrom {
			if f < t1 {
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="url(#down)"/>`+"\n",
					x(f), laneY(slot)+1, max(x(t1)-x(f), 1), laneH-2)
			}
		}
		// faults
		for _, f := range faults {
			end := f.End
			if end == 0 {
				end = t1
			}
			slots := f.Slots
			if len(slots) == 0 {
				for s := 1; s <= nodes; s++ {
					slots = append(slots, s)
				}
			}
			for _, s := range slots {
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="red" fill-opacity="0.22"><title>%s</title></rect>`+"\n",
					x(f.Start), laneY(s), max(x(end)-x(f.Start), 1.5), laneH, html.EscapeString(f.Kind))
			}
		}
		// leader intervals: runs of ticks of one (node, term) without a long gap
		gap := int64(8 * tick)
		for _, sg := range sr.an.Segments {
			if sg.LastT0 < t0 {
				continue
			}
			from := sg.Ticks[0]
			prev := from
			flush := func(a, z int64) {
				w := max(x(z+int64(tick))-x(a), 1)
				fmt.Fprintf(&b, `<rect x="%.2f" y="%.0f" width="%.2f" height="%.0f" fill="%s"><title>%s term %d</title></rect>`+"\n",
					x(a), laneY(sg.Slot)+3, w, laneH-6, termColor(sg.Term), html.EscapeString(sg.ID), sg.Term)
				if w > 18 {
					fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" fill="white" font-size="9">%d</text>`+"\n", x(a)+2, laneY(sg.Slot)+laneH-5, sg.Term)
				}
			}
			for _, t := range sg.Ticks[1:] {
				if t-prev > gap {
					flush(from, prev)
					from = t
				}
				prev = t
			}
			flush(from, prev)
		}
		// trials
		for _, tr := range sr.trials {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#333" stroke-dasharray="3,3"/><text x="%.1f" y="%.0f" fill="#333">%d</text>`+"\n",
				x(tr.Start), y0+header-4, x(tr.Start), laneY(nodes)+laneH, x(tr.Start)+2, y0+header-6, tr.Trial)
		}
		// safety violations: a red marker at the top of the panel
		for _, v := range sr.an.Violations {
			vx := x(v.T)
			fmt.Fprintf(&b, `<path d="M%.1f %.0f l-5 -9 h10 z" fill="red"><title>%s</title></path>`+"\n",
				vx, y0+header, html.EscapeString(v.Kind+": "+v.Msg))
		}
		// time axis: a tick mark per second
		for s := int64(0); s <= (t1-t0)/1e9; s++ {
			tx := x(t0 + s*1e9)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#999"/>`, tx, laneY(nodes)+laneH, tx, laneY(nodes)+laneH+4)
			if s%5 == 0 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" fill="#777" font-size="9">%ds</text>`, tx-4, laneY(nodes)+laneH+14, s)
			}
		}
		b.WriteString("\n")
		y0 += panelH
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// writeOutputs writes results.json, timeline.svg and the event logs.
func writeOutputs(out string, res *Results, runs []*scenarioRun, cfg *Config) error {
	evDir := filepath.Join(out, "events")
	if err := os.MkdirAll(evDir, 0o755); err != nil {
		return err
	}
	for _, sr := range runs {
		if err := writeEvents(filepath.Join(evDir, sr.label+".jsonl"), sr); err != nil {
			return err
		}
	}
	if err := writeJSON(filepath.Join(out, "results.json"), res); err != nil {
		return err
	}
	return writeSVG(filepath.Join(out, "timeline.svg"), runs, cfg.Nodes, cfg.Tick)
}
