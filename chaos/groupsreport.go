package main

// The figures of the group sweep and the crowd (groups.go), their flags,
// and their outputs: a table on stdout, and <name>.md, <name>.json and
// <name>.svg in the output directory.

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// FleetPoint is the figures of one fleet: one G of the group sweep, or the
// crowd.
type FleetPoint struct {
	Label              string `json:"label"`
	Processes          int    `json:"processes"`
	Groups             int    `json:"groups"`
	ElectorsPerProcess int    `json:"electors_per_process"` // per group
	ClusterSize        int    `json:"cluster_size"`         // 0: dynamic mode

	FirstLeaderMs float64        `json:"first_leader_ms"` // start of the processes to the first OnStartedLeading
	Startup       StartupFigures `json:"startup"`
	StartupS      float64        `json:"startup_s"` // to every group led and followed by every Elector

	CalmS              float64        `json:"calm_s"`
	ConnsMax           int            `json:"connections_per_process_max"` // the library's (the fence's left out), max over processes and samples
	ConnsPerProcess    []int          `json:"connections_per_process"`     // at the last sample, by process (-1: down)
	ConnSamples        int            `json:"connection_samples"`
	RedisClientsMax    int            `json:"redis_clients_max"` // CLIENT LIST: every client, the fences' and the harness's one included
	RedisCPU           float64        `json:"redis_cpu"`         // fraction of one core
	NodeCPU            float64        `json:"node_cpu_mean"`     // per process, fraction of one core
	NodeCPUs           []float64      `json:"node_cpu_by_process"`
	NodeCPUMax         float64        `json:"node_cpu_max"`
	NodeCPUPerGroup    float64        `json:"node_cpu_per_group"` // NodeCPU / Groups
	HarnessCPU         float64        `json:"harness_cpu"`
	PublishedPerS      float64        `json:"published_per_s"` // sums over Electors of MessagesOut
	ReceivedPerS       float64        `json:"received_per_s"`  // and MessagesIn
	InPerElectorPerHB  float64        `json:"in_per_elector_per_heartbeat"`
	OutPerElectorPerHB float64        `json:"out_per_elector_per_heartbeat"`
	Spurious           int            `json:"spurious_changes"`  // groups with any start, end or new line in the calm window
	CalmChangeLines    int            `json:"calm_change_lines"` // those lines
	CalmElections      uint64         `json:"calm_elections"`    // elections started in the calm window (Status().Elections)
	MachineBusy        float64        `json:"machine_busy"`
	OtherCPU           float64        `json:"other_cpu"`        // cores other processes used (the machine's busy time less the fleet's processes and the interrupts)
	OtherCPUMax1s      float64        `json:"other_cpu_max_1s"` // the most of that in any one second
	IRQCPU             float64        `json:"irq_cpu"`          // cores in interrupts and softirqs (loopback networking among them)
	CalmChanges        []ChangeSecond `json:"calm_changes_by_second"`
	Runnable           float64        `json:"runnable"`

	Crashes      []CrashResult `json:"crashes"`
	Failover     Pcts          `json:"failover_ms"` // per group the victim led, over every crash
	P99OverLease float64       `json:"failover_p99_over_lease"`

	FenceAccepted uint64 `json:"fence_accepted"`
	FenceRejected uint64 `json:"fence_rejected"`
	FenceErrors   uint64 `json:"fence_errors"`

	Stalls         int      `json:"stalls"` // a process did not run for 120 ms or more (no fault injects that)
	MaxStallMs     float64  `json:"max_stall_ms"`
	Saturated      bool     `json:"saturated"`
	SaturationNote string   `json:"saturation_note,omitempty"`
	Violations     []string `json:"violations"`
	Failures       []string `json:"failures"`
	Notes          []string `json:"notes"`
	DurationS      float64  `json:"duration_s"`
	QuietWaitS     float64  `json:"quiet_wait_s"` // waited for a quiet machine before the start (-quiet-wait)
}

// StartupFigures are the start of a fleet until every group was stable
// (or the bound): CPU in cores, and the sums of the status counters.
type StartupFigures struct {
	Seconds   float64 `json:"s"`
	NodeCPU   float64 `json:"node_cpu"`
	RedisCPU  float64 `json:"redis_cpu"`
	OtherCPU  float64 `json:"other_cpu"`
	MsgsIn    uint64  `json:"messages_in"`
	Replays   uint64  `json:"replays"`
	Dropped   uint64  `json:"dropped"`
	Elections uint64  `json:"elections"`
}

// ChangeSecond is one second of the calm window with change lines, and
// the most CPU that other processes and the nodes used around it (in
// cores, over the 250 ms samples of that second and the one before).
type ChangeSecond struct {
	Second   int     `json:"s"`
	Lines    int     `json:"lines"`
	OtherMax float64 `json:"other_max"`
	NodesMax float64 `json:"nodes_max"`
}

// CrashResult is one SIGKILL of a fleet.
type CrashResult struct {
	Victim    string         `json:"victim"`
	Led       int            `json:"led"`       // groups it led
	Recovered int            `json:"recovered"` // of those, with a new leader in time
	Failover  Pcts           `json:"failover_ms"`
	TermsUp   float64        `json:"terms_up"`  // mean growth of the term per group (1: one election)
	RestartS  float64        `json:"restart_s"` // its restart to every group stable again
	TakenBy   map[string]int `json:"taken_by"`  // process -> of the groups it led, how many a process took over
}

// takenText says which processes took a crash's groups over: "p1 340,
// p2 2" (most first).
func takenText(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int { return m[b] - m[a] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// FleetResults is sweep-groups.json or crowd.json.
type FleetResults struct {
	Kind     string        `json:"kind"` // "sweep-groups" or "crowd"
	Link     bool          `json:"link"` // the Electors of a process share one leader.Link (false: -no-link)
	Command  string        `json:"command"`
	Config   ResultsConfig `json:"config"`
	CalmS    float64       `json:"calm_s"`
	Points   []FleetPoint  `json:"points"`
	Targets  []string      `json:"targets"`
	Started  string        `json:"started"`
	ElapsedS float64       `json:"elapsed_s"`
	Notes    []string      `json:"notes"`
}

// maxGroups bounds -sweep-groups: each group is one Elector per process.
const maxGroups = 5000

// parseGroupCounts reads -sweep-groups: group counts, comma-separated.
func parseGroupCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxGroups {
			return nil, fmt.Errorf("-sweep-groups %q: group counts from 1 to %d, comma-separated, e.g. 1,10,100,1000", s, maxGroups)
		}
		out = append(out, n)
	}
	return out, nil
}

// maxCrowd bounds P*E of -crowd: the library's peer table holds 4096.
const maxCrowd = 4096

// parseCrowd reads -crowd PxE: P processes (at least 3, so that killing
// one leaves a majority) of E Electors each.
func parseCrowd(s string) (p, e int, err error) {
	ps, es, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "x")
	bad := fmt.Errorf("-crowd %q: want PxE, P processes (3 to 64) of E Electors each (P*E at most %d), e.g. 5x205", s, maxCrowd)
	if !ok {
		return 0, 0, bad
	}
	p, err1 := strconv.Atoi(ps)
	e, err2 := strconv.Atoi(es)
	if err1 != nil || err2 != nil || p < 3 || p > 64 || e < 1 || p*e > maxCrowd {
		return 0, 0, bad
	}
	return p, e, nil
}

// p99OverLease is the failover p99 as a multiple of LeaseTimeout (0 when
// there is no failover).
func p99OverLease(p Pcts, lease time.Duration) float64 {
	if p.N == 0 || lease <= 0 {
		return 0
	}
	return round(p.P99/float64(lease.Milliseconds()), 2)
}

// Targets of the group sweep and the crowd.
const (
	targetConns        = 6   // connections per process
	targetRedisCPU     = 1.0 // of one core
	targetP99OverLease = 1.2
)

// checkTargets says, per point, which target it met and which it missed.
func checkTargets(res *FleetResults, lease time.Duration) []string {
	var out []string
	for _, p := range res.Points {
		var miss, met []string
		check := func(ok bool, what string) {
			if ok {
				met = append(met, what)
			} else {
				miss = append(miss, what)
			}
		}
		check(p.ConnSamples > 0 && p.ConnsMax <= targetConns, fmt.Sprintf("connections/process %d <= %d", p.ConnsMax, targetConns))
		check(p.CalmS > 0 && p.RedisCPU < targetRedisCPU, fmt.Sprintf("Redis CPU %.1f%% < %.0f%%", 100*p.RedisCPU, 100*targetRedisCPU))
		check(p.Failover.N > 0 && p.P99OverLease <= targetP99OverLease, fmt.Sprintf("failover p99/Lease %.2f <= %.1f (p99 %.0f ms, Lease %v)",
			p.P99OverLease, targetP99OverLease, p.Failover.P99, lease))
		check(p.CalmS > 0 && p.Spurious == 0, fmt.Sprintf("%d spurious changes", p.Spurious))
		line := p.Label + ": "
		if len(miss) > 0 {
			line += "MISSED " + strings.Join(miss, ", ")
			if len(met) > 0 {
				line += "; met "
			}
		} else {
			line += "met "
		}
		out = append(out, line+strings.Join(met, ", "))
	}
	return out
}

// fleetTable returns the header and rows of the printed and markdown table.
func fleetTable(res *FleetResults) ([]string, [][]string) {
	header := []string{"groups", "processes x electors", "connections/process (max)", "Redis CPU %", "node CPU %", "node CPU % per group",
		"failover p50 ms", "p99 ms", "max ms", "p99/Lease", "spurious changes", "calm elections", "crashes (groups ok/led)",
		"first leader ms", "startup s", "msgs in/elector/hb", "out/elector/hb", "machine busy %", "other load %", "stalls", "result"}
	var rows [][]string
	for _, p := range res.Points {
		fo := func(v float64) string {
			if p.Failover.N == 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f", v)
		}
		ratio := "-"
		if p.Failover.N > 0 {
			ratio = fmt.Sprintf("%.2f", p.P99OverLease)
		}
		conns := "-"
		if p.ConnSamples > 0 {
			conns = strconv.Itoa(p.ConnsMax)
		}
		led, ok := 0, 0
		for _, c := range p.Crashes {
			led += c.Led
			ok += c.Recovered
		}
		result := verdict(p.Violations, p.Failures)
		if p.Saturated {
			result += ", saturated"
		}
		rows = append(rows, []string{
			strconv.Itoa(p.Groups), fmt.Sprintf("%dx%d", p.Processes, p.ElectorsPerProcess), conns,
			fmt.Sprintf("%.1f", 100*p.RedisCPU), fmt.Sprintf("%.1f", 100*p.NodeCPU), fmt.Sprintf("%.4f", 100*p.NodeCPUPerGroup),
			fo(p.Failover.P50), fo(p.Failover.P99), fo(p.Failover.Max), ratio,
			strconv.Itoa(p.Spurious), strconv.FormatUint(p.CalmElections, 10), fmt.Sprintf("%d (%d/%d)", len(p.Crashes), ok, led),
			fmt.Sprintf("%.0f", p.FirstLeaderMs), fmt.Sprintf("%.2f", p.StartupS), fmt.Sprintf("%.2f", p.InPerElectorPerHB), fmt.Sprintf("%.2f", p.OutPerElectorPerHB),
			fmt.Sprintf("%.0f", 100*p.MachineBusy), fmt.Sprintf("%.0f", 100*p.OtherCPU), strconv.Itoa(p.Stalls), result,
		})
	}
	return header, rows
}

// writeTextTable prints a table with right-aligned columns.
func writeTextTable(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	tw.Flush()
}

// markdownTable renders a table in GitHub markdown, numbers right-aligned.
func markdownTable(header []string, rows [][]string) string {
	var b strings.Builder
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	b.WriteString("|")
	for _, h := range header {
		b.WriteString(" " + esc(h) + " |")
	}
	b.WriteString("\n|")
	for range header {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("|")
		for _, c := range r {
			b.WriteString(" " + esc(c) + " |")
		}
		b.WriteString("\n")
	}
	return b.String()
}

// fleetMarkdown is <name>.md: the command, the table, the crashes, the
// targets and the notes.
func fleetMarkdown(res *FleetResults, header []string, rows [][]string) string {
	var b strings.Builder
	c := res.Config
	title := map[string]string{"sweep-groups": "Group sweep: 3 processes, G groups, one Link per process",
		"crowd": "Crowd: one group, many Electors per process, one Link per process"}[res.Kind]
	if !res.Link {
		title += " (NO: -no-link, two connections per Elector)"
	}
	fmt.Fprintf(&b, "# %s\n\n", title)
	fmt.Fprintf(&b, "`%s` (started %s, %.0f s, seed %d; heartbeat %d ms, lease %d ms, peer timeout %d ms, jitter %d ms, tick %.0f ms, calm window %.0f s, %d CPUs)\n\n",
		res.Command, res.Started, res.ElapsedS, c.Seed, c.HeartbeatMs, c.LeaseMs, c.PeerTimeoutMs, c.JitterMs, c.TickMs, res.CalmS, c.CPUs)
	b.WriteString(markdownTable(header, rows))
	b.WriteString("\nCrashes (SIGKILL of the process leading the most groups; failover per group it led, from the kill to the first start or true tick of a new leader):\n\n")
	ch := []string{"point", "crash", "victim", "groups led", "with a new leader", "taken over by", "failover p50 ms", "p99 ms", "max ms", "terms up per group", "restart to stable s"}
	var cr [][]string
	for _, p := range res.Points {
		for i, x := range p.Crashes {
			cr = append(cr, []string{p.Label, strconv.Itoa(i + 1), x.Victim, strconv.Itoa(x.Led), strconv.Itoa(x.Recovered), takenText(x.TakenBy),
				fmt.Sprintf("%.0f", x.Failover.P50), fmt.Sprintf("%.0f", x.Failover.P99), fmt.Sprintf("%.0f", x.Failover.Max),
				fmt.Sprintf("%.2f", x.TermsUp), fmt.Sprintf("%.2f", x.RestartS)})
		}
	}
	b.WriteString(markdownTable(ch, cr))
	if len(res.Targets) > 0 {
		b.WriteString("\nTargets (connections/process <= 6, Redis CPU < 100%, failover p99/Lease <= 1.2, no spurious change):\n\n")
		for _, t := range res.Targets {
			fmt.Fprintf(&b, "- %s\n", t)
		}
	}
	if len(res.Notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range res.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

// svgSeries is one line of an SVG panel: a value per category (ok false:
// none).
type svgSeries struct {
	name, color string
	v           func(i int) (float64, bool)
}

// svgRef is a dashed horizontal reference line.
type svgRef struct {
	v     float64
	label string
}

// svgPanel draws one panel: categories equally spaced on x, the series as
// lines with dots, the references dashed.
func svgPanel(b *strings.Builder, y0, left, plotW, panelH float64, title, unit string, cats []string, series []svgSeries, refs []svgRef) {
	ymax := 0.0
	for _, s := range series {
		for i := range cats {
			if v, ok := s.v(i); ok {
				ymax = max(ymax, v)
			}
		}
	}
	for _, r := range refs {
		ymax = max(ymax, r.v)
	}
	if ymax <= 0 {
		ymax = 1
	}
	ymax *= 1.15
	y := func(v float64) float64 { return y0 + panelH - panelH*v/ymax }
	x := func(i int) float64 {
		if len(cats) == 1 {
			return left + plotW/2
		}
		return left + 20 + (plotW-40)*float64(i)/float64(len(cats)-1)
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-weight="bold">%s</text>`+"\n", left, y0-8, svgEsc(title))
	fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="#fafafa" stroke="#ccc"/>`+"\n", left, y0, plotW, panelH)
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		lbl := fmt.Sprintf("%.0f", v)
		if ymax < 10 {
			lbl = fmt.Sprintf("%.2g", v)
		}
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#e5e5e5"/><text x="%.0f" y="%.1f" text-anchor="end" fill="#555">%s%s</text>`+"\n",
			left, y(v), left+plotW, y(v), left-4, y(v)+4, lbl, unit)
	}
	for _, r := range refs {
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#888" stroke-dasharray="5,4"/><text x="%.0f" y="%.1f" text-anchor="end" fill="#555">%s</text>`+"\n",
			left, y(r.v), left+plotW, y(r.v), left+plotW-4, y(r.v)-3, svgEsc(r.label))
	}
	for i, c := range cats {
		fmt.Fprintf(b, `<text x="%.1f" y="%.0f" text-anchor="middle" fill="#555">%s</text>`+"\n", x(i), y0+panelH+14, svgEsc(c))
	}
	for k, s := range series {
		var pts []string
		for i := range cats {
			if v, ok := s.v(i); ok {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
				fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s %s %.4g%s</title></circle>`+"\n", x(i), y(v), s.color, svgEsc(cats[i]), svgEsc(s.name), v, unit)
			}
		}
		if len(pts) > 1 {
			fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), s.color)
		}
		fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n",
			left+10+float64(k)*170, y0+8, s.color, left+24+float64(k)*170, y0+17, svgEsc(s.name))
	}
}

func svgEsc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// writeFleetSVG plots, for the group sweep, failover, CPU and connections
// against G; for the crowd, the failover of each crash and the CPU of each
// process.
func writeFleetSVG(path string, res *FleetResults) error {
	const (
		width, panelH = 680.0, 200.0
		left, right   = 80.0, 30.0
		top, gap      = 40.0, 60.0
		plotW         = width - left - right
	)
	lease := float64(res.Config.LeaseMs)
	refs := []svgRef{{lease, fmt.Sprintf("LeaseTimeout %.0f ms", lease)}, {targetP99OverLease * lease, fmt.Sprintf("%.1f x Lease (target for p99)", targetP99OverLease)}}
	var b strings.Builder
	panels := 3
	if res.Kind == "crowd" {
		panels = 2
	}
	height := top + float64(panels)*(panelH+gap) + 10
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, height)
	pts := res.Points
	if res.Kind == "crowd" {
		fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="10" y="20" font-size="14" font-weight="bold">%s</text>`+"\n",
			svgEsc("Crowd: failover after SIGKILL of the process holding the leader, and CPU"))
		if len(pts) == 0 {
			b.WriteString("</svg>\n")
			return os.WriteFile(path, []byte(b.String()), 0o644)
		}
		p := pts[0]
		var cats []string
		for i, c := range p.Crashes {
			cats = append(cats, fmt.Sprintf("crash %d (%s)", i+1, c.Victim))
		}
		if len(cats) == 0 {
			cats = []string{"no crash"}
		}
		svgPanel(&b, top+10, left, plotW, panelH, p.Label+": failover (ms), kill to the first start or true tick of a new leader", " ms", cats,
			[]svgSeries{{"failover", "#1f77b4", func(i int) (float64, bool) {
				return pickCrash(p.Crashes, i)
			}}}, refs)
		var procs []string
		for i := range p.NodeCPUs {
			procs = append(procs, fmt.Sprintf("p%d", i+1))
		}
		if len(procs) == 0 {
			procs = []string{"-"}
		}
		svgPanel(&b, top+10+panelH+gap, left, plotW, panelH, "CPU in the calm window, % of one core: each node process, and redis-server (dashed)", "%", procs,
			[]svgSeries{{"node process", "#9467bd", func(i int) (float64, bool) {
				if i < len(p.NodeCPUs) {
					return 100 * p.NodeCPUs[i], true
				}
				return 0, false
			}}}, []svgRef{{100 * p.RedisCPU, fmt.Sprintf("redis-server %.1f%%", 100*p.RedisCPU)}})
		b.WriteString("</svg>\n")
		return os.WriteFile(path, []byte(b.String()), 0o644)
	}
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="10" y="20" font-size="14" font-weight="bold">%s</text>`+"\n",
		svgEsc(map[bool]string{true: "Group sweep: 3 processes, one Link each, G groups (x: G, equally spaced)",
			false: "Group sweep: 3 processes, NO Link (-no-link), G groups (x: G, equally spaced)"}[res.Link]))
	var cats []string
	for _, p := range pts {
		c := strconv.Itoa(p.Groups)
		if p.Saturated {
			c += "*"
		}
		cats = append(cats, c)
	}
	if len(cats) == 0 {
		b.WriteString("</svg>\n")
		return os.WriteFile(path, []byte(b.String()), 0o644)
	}
	fo := func(get func(Pcts) float64) func(int) (float64, bool) {
		return func(i int) (float64, bool) { return get(pts[i].Failover), pts[i].Failover.N > 0 }
	}
	svgPanel(&b, top+10, left, plotW, panelH, "failover (ms) per group the killed process led; * = machine saturated", " ms", cats, []svgSeries{
		{"p50", "#1f77b4", fo(func(p Pcts) float64 { return p.P50 })},
		{"p99", "#d62728", fo(func(p Pcts) float64 { return p.P99 })},
		{"max", "#ff7f0e", fo(func(p Pcts) float64 { return p.Max })},
	}, refs)
	svgPanel(&b, top+10+panelH+gap, left, plotW, panelH, "CPU in the calm window, % of one core", "%", cats, []svgSeries{
		{"redis-server", "#2ca02c", func(i int) (float64, bool) { return 100 * pts[i].RedisCPU, pts[i].CalmS > 0 }},
		{"node process (mean)", "#9467bd", func(i int) (float64, bool) { return 100 * pts[i].NodeCPU, pts[i].CalmS > 0 }},
	}, nil)
	svgPanel(&b, top+10+2*(panelH+gap), left, plotW, panelH, "Redis connections per process (max over samples)", "", cats, []svgSeries{
		{"connections", "#8c564b", func(i int) (float64, bool) { return float64(pts[i].ConnsMax), pts[i].ConnSamples > 0 }},
	}, []svgRef{{targetConns, fmt.Sprintf("target %d", targetConns)}})
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// pickCrash returns crash i's failover (its max: the crowd has one group,
// so one sample per crash).
func pickCrash(cs []CrashResult, i int) (float64, bool) {
	if i >= len(cs) || cs[i].Failover.N == 0 {
		return 0, false
	}
	return cs[i].Failover.Max, true
}
