package main

import (
	"encoding/xml"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseGroupCounts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"1,10,100,1000", []int{1, 10, 100, 1000}},
		{" 3 , 7", []int{3, 7}},
		{"5000", []int{5000}},
	} {
		got, err := parseGroupCounts(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	for _, in := range []string{"", "0", "1,,2", "-1", "x", "5001", "1.5"} {
		_, err := parseGroupCounts(in)
		assert.Error(t, err, "parseGroupCounts(%q)", in)
	}
}

func TestParseCrowd(t *testing.T) {
	for _, tc := range []struct {
		in   string
		p, e int
	}{
		{"5x205", 5, 205},
		{"3X1", 3, 1},
		{" 64x64 ", 64, 64},
	} {
		p, e, err := parseCrowd(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, [2]int{tc.p, tc.e}, [2]int{p, e}, tc.in)
	}
	for _, in := range []string{"", "5", "2x100", "5x0", "x5", "5x", "65x1", "5x820", "axb", "5x2x3"} {
		_, _, err := parseCrowd(in)
		assert.Error(t, err, "parseCrowd(%q)", in)
	}
}

func TestFleetFlags(t *testing.T) {
	c, err := parseFlags([]string{"-sweep-groups", "1,10", "-out", t.TempDir()})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 10}, c.Groups)
	assert.Equal(t, 60*time.Second, c.SweepCalm, "the group sweep's calm window defaults to 60s")
	assert.Equal(t, 50*time.Millisecond, c.Tick)
	assert.Equal(t, time.Second, c.StatusEvery)
	assert.Equal(t, 10, c.NodeNice)
	assert.Equal(t, "warn", c.NodeLogLevel)
	assert.Equal(t, time.Second, c.FenceEvery)
	assert.Equal(t, 30*time.Second, c.QuietWait)

	c, err = parseFlags([]string{"-crowd", "5x205", "-sweep-calm", "10s", "-tick", "20ms", "-node-nice", "0", "-fence-every", "0", "-out", t.TempDir()})
	require.NoError(t, err)
	assert.Equal(t, [2]int{5, 205}, [2]int{c.CrowdP, c.CrowdE})
	assert.Equal(t, 10*time.Second, c.SweepCalm, "a -sweep-calm given is kept")
	assert.Equal(t, 20*time.Millisecond, c.Tick)
	assert.Equal(t, 0, c.NodeNice)
	assert.Equal(t, time.Duration(0), c.FenceEvery)
	assert.False(t, c.CrowdDynamic)

	for _, args := range [][]string{
		{"-sweep-groups", "1", "-crowd", "5x205"},
		{"-sweep", "3", "-sweep-groups", "1"},
		{"-soak", "1m", "-crowd", "3x3"},
		{"-crowd", "2x3"},
		{"-sweep-groups", "0"},
		{"-sweep-groups", "1", "-algo", "lock"},
		{"-sweep-groups", "1", "-sweep-calm", "10ms"},
		{"-crowd", "3x3", "-fence-every", "-1s"},
		{"-crowd", "3x3", "-quiet-wait", "-1s"},
	} {
		_, err := parseFlags(append(args, "-out", t.TempDir()))
		assert.Error(t, err, "parseFlags(%q)", args)
	}
}

func TestP99OverLease(t *testing.T) {
	p := summarize([]float64{300, 310, 320, 330, 400})
	assert.Equal(t, 320.0, p.P50)
	assert.Equal(t, 400.0, p.P99, "nearest rank: with 5 samples p99 is the max")
	assert.Equal(t, 1.33, p99OverLease(p, 300*time.Millisecond))
	assert.Equal(t, 0.0, p99OverLease(Pcts{}, 300*time.Millisecond), "no failover: no ratio")
	assert.Equal(t, 0.0, p99OverLease(p, 0))
}

func samplePoints() *FleetResults {
	ok := FleetPoint{Label: "G=1000", Processes: 3, Groups: 1000, ElectorsPerProcess: 1, CalmS: 60, ConnsMax: 2, ConnSamples: 7,
		RedisCPU: 0.42, NodeCPU: 0.3, NodeCPUPerGroup: 0.0003, Failover: Pcts{P50: 290, P99: 330, Max: 345, N: 1000},
		P99OverLease: 1.1, Crashes: []CrashResult{{Victim: "p1", Led: 340, Recovered: 340}, {Victim: "p2", Led: 335, Recovered: 334, TakenBy: map[string]int{"p3": 34, "p1": 300}}},
		StartupS: 2.5, FirstLeaderMs: 640}
	bad := FleetPoint{Label: "G=10", Processes: 3, Groups: 10, ElectorsPerProcess: 1, CalmS: 60, ConnsMax: 20, ConnSamples: 7,
		RedisCPU: 1.2, Spurious: 2, Failures: []string{"crash 1: 1 of the 5 groups p1 led had no new leader"}, Saturated: true}
	return &FleetResults{Kind: "sweep-groups", Link: true, Command: "go run . -sweep-groups 10,1000", Config: ResultsConfig{LeaseMs: 300, Seed: 7},
		Points: []FleetPoint{ok, bad}}
}

func TestFleetTable(t *testing.T) {
	res := samplePoints()
	header, rows := fleetTable(res)
	require.Len(t, rows, 2)
	for _, r := range rows {
		require.Len(t, r, len(header))
	}
	col := func(name string) int {
		for i, h := range header {
			if h == name {
				return i
			}
		}
		t.Fatalf("no column %q in %q", name, header)
		return -1
	}
	r := rows[0]
	assert.Equal(t, "1000", r[col("groups")])
	assert.Equal(t, "3x1", r[col("processes x electors")])
	assert.Equal(t, "2", r[col("connections/process (max)")])
	assert.Equal(t, "42.0", r[col("Redis CPU %")])
	assert.Equal(t, "0.0300", r[col("node CPU % per group")])
	assert.Equal(t, "290", r[col("failover p50 ms")])
	assert.Equal(t, "330", r[col("p99 ms")])
	assert.Equal(t, "345", r[col("max ms")])
	assert.Equal(t, "1.10", r[col("p99/Lease")])
	assert.Equal(t, "2 (674/675)", r[col("crashes (groups ok/led)")])
	assert.Equal(t, "ok", r[col("result")])
	r = rows[1]
	assert.Equal(t, "-", r[col("failover p50 ms")], "no failover measured")
	assert.Equal(t, "-", r[col("p99/Lease")])
	assert.Equal(t, "FAIL, saturated", r[col("result")])

	var b strings.Builder
	writeTextTable(&b, header, rows)
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	assert.Len(t, lines, 3)
	assert.Contains(t, lines[0], "connections/process (max)")

	md := markdownTable(header, rows)
	mdLines := strings.Split(strings.TrimRight(md, "\n"), "\n")
	require.Len(t, mdLines, 4, "header, separator, two rows")
	for _, l := range mdLines {
		assert.Equal(t, len(header)+1, strings.Count(l, "|"), l)
	}
	assert.Contains(t, markdownTable([]string{"a|b"}, nil), `a\|b`, "a pipe in a cell is escaped")
}

func TestCheckTargets(t *testing.T) {
	res := samplePoints()
	got := checkTargets(res, 300*time.Millisecond)
	require.Len(t, got, 2)
	assert.True(t, strings.HasPrefix(got[0], "G=1000: met "), got[0])
	assert.NotContains(t, got[0], "MISSED")
	assert.Contains(t, got[1], "MISSED connections/process 20 <= 6")
	assert.Contains(t, got[1], "Redis CPU 120.0% < 100%")
	assert.Contains(t, got[1], "2 spurious changes")
	assert.Contains(t, got[1], "failover p99/Lease", "no failover is a missed target")
}

func TestFleetOutputs(t *testing.T) {
	dir := t.TempDir()
	res := samplePoints()
	res.Targets = checkTargets(res, 300*time.Millisecond)
	header, rows := fleetTable(res)
	md := fleetMarkdown(res, header, rows)
	assert.Contains(t, md, "# Group sweep")
	assert.Contains(t, md, "`go run . -sweep-groups 10,1000`")
	assert.Contains(t, md, "| G=1000 | 2 | p2 | 335 | 334 | p1 300, p3 34 |")
	assert.Contains(t, md, "- G=10: MISSED")
	for _, kind := range []string{"sweep-groups", "crowd"} {
		res.Kind = kind
		if kind == "crowd" {
			res.Points = res.Points[:1]
			res.Points[0].NodeCPUs = []float64{0.1, 0.2, 0.3}
		}
		path := filepath.Join(dir, kind+".svg")
		require.NoError(t, writeFleetSVG(path, res))
		f, err := os.Open(path)
		require.NoError(t, err)
		d := xml.NewDecoder(f)
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, "%s is well-formed XML", kind)
		}
		f.Close()
	}
	res.Points = nil
	require.NoError(t, writeFleetSVG(filepath.Join(dir, "empty.svg"), res), "no points: an empty plot")
}

func TestParseProcNetTCP(t *testing.T) {
	// /proc/net/tcp: Redis on port 6379 (0x18EB); two established
	// connections to it, one listening socket, one in TIME_WAIT, one to
	// another port
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0
   1: 0100007F:D431 0100007F:18EB 01 00000000:00000000 00:00000000 00000000     0        0 2002 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D432 0100007F:18EB 01 00000000:00000000 00:00000000 00000000     0        0 2003 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:D433 0100007F:18EB 06 00000000:00000000 03:00001000 00000000     0        0 0 3 0000000000000000
   4: 0100007F:D434 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2005 1 0000000000000000 20 4 30 10 -1
`
	got := parseProcNetTCP(table, 6379)
	assert.Equal(t, map[uint64]int{2002: 0xD431, 2003: 0xD432}, got)
	assert.Empty(t, parseProcNetTCP(table, 1))
	assert.Empty(t, parseProcNetTCP("garbage\n\n", 6379))
}

func TestParseClientList(t *testing.T) {
	list := "id=3 addr=127.0.0.1:50412 laddr=127.0.0.1:6379 fd=8 name= age=1 sub=1000 cmd=ssubscribe\n" +
		"id=4 addr=127.0.0.1:50413 laddr=127.0.0.1:6379 fd=9 name=chaos-fence age=1 cmd=evalsha\n" +
		"id=5 addr=[::1]:50414 laddr=[::1]:6379 fd=10 name=x cmd=client|list\n"
	got := parseClientList(list)
	assert.Equal(t, []clientInfo{{50412, ""}, {50413, gFenceName}, {50414, "x"}}, got)
	assert.Empty(t, parseClientList(""))
}

func TestSocketInodes(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc")
	}
	before := len(socketInodes(os.Getpid()))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	assert.Equal(t, before+1, len(socketInodes(os.Getpid())), "a new listening socket is one more socket inode")
}

func TestOverlapViolations(t *testing.T) {
	ms := int64(time.Millisecond)
	a := &lship{slot: 1, inc: 1, id: "p1", term: 3, first0: 100 * ms, first1: 101 * ms, last0: 500 * ms, last1: 501 * ms, end: 510 * ms}
	// b starts after a's last tick: no overlap
	b := &lship{slot: 2, inc: 1, id: "p2", term: 4, first0: 900 * ms, first1: 901 * ms, last0: 2000 * ms, last1: 2001 * ms}
	assert.Empty(t, overlapViolations([][]*lship{{a, b}}))
	// c's first tick lies inside a's span: two active leaders
	c := &lship{slot: 3, inc: 1, id: "p3", term: 5, first0: 300 * ms, first1: 301 * ms}
	got := overlapViolations([][]*lship{{a, b, c}})
	require.Len(t, got, 1)
	assert.Contains(t, got[0], "group g0: p3 (term 5)")
	// one Elector's own two leaderships are never compared
	d := &lship{slot: 1, inc: 1, id: "p1", term: 6, first0: 200 * ms, first1: 201 * ms}
	assert.Empty(t, overlapViolations([][]*lship{{a, d}}))
	// a killed leadership (no end line) has no span: only its first tick counts
	k := &lship{slot: 2, inc: 2, id: "p2", term: 7, first0: 3000 * ms, first1: 3001 * ms, killed: true, end: 4000 * ms}
	late := &lship{slot: 3, inc: 1, id: "p3", term: 8, first0: 3500 * ms, first1: 3501 * ms}
	assert.Empty(t, overlapViolations([][]*lship{{k, late}}))
}

// testFleet is a fleet with fake processes, for the line handling.
func testFleet(procs, groups, electors int) *fleet {
	f := &fleet{spec: fleetSpec{procs: procs, groups: groups, electors: electors},
		cur: make([]*gproc, procs), inc: make([]int, procs), ready: make([]bool, procs),
		leads: make([][]*lship, groups), active: make([]*lship, groups),
		follows: make([]map[string]followed, groups), status: map[[2]int]gEvent{}}
	for g := range f.follows {
		f.follows[g] = map[string]followed{}
	}
	for s := range procs {
		f.cur[s] = &gproc{slot: s + 1, inc: 1, done: make(chan struct{})}
		f.inc[s] = 1
	}
	return f
}

func TestFleetLines(t *testing.T) {
	f := testFleet(3, 2, 1)
	for s := 1; s <= 3; s++ {
		f.handle(s, 1, gEvent{T: 1, Ev: evReady})
	}
	ok, why := f.stableLocked(true)
	assert.False(t, ok)
	assert.Contains(t, why, "p1 has not reported a status yet")
	for s := 1; s <= 3; s++ {
		f.handle(s, 1, gEvent{T: 2, Ev: evStatus, NotReady: 2})
	}
	ok, why = f.stableLocked(true)
	assert.False(t, ok)
	assert.Contains(t, why, "2 of 2 groups without a leader")
	assert.Contains(t, why, "6 not Ready()")
	for s := 1; s <= 3; s++ {
		f.handle(s, 1, gEvent{T: 3, Ev: evStatus})
	}

	// p1 leads g0, p2 leads g1; everyone follows
	f.handle(1, 1, gEvent{T: 10, Ev: evStart, G: 0, Term: 2})
	f.handle(2, 1, gEvent{T: 11, Ev: evStart, G: 1, Term: 4})
	for s := 1; s <= 3; s++ {
		f.handle(s, 1, gEvent{T: 12, Ev: evNew, G: 0, Leader: "p1", Term: 2})
		f.handle(s, 1, gEvent{T: 12, Ev: evNew, G: 1, Leader: "p2", Term: 3}) // an older term
	}
	ok, why = f.stableLocked(true)
	assert.False(t, ok, "following term 3 when the leader leads term 4 is not stable")
	assert.Contains(t, why, "3 Electors not following")
	for s := 1; s <= 3; s++ {
		f.handle(s, 1, gEvent{T: 13, Ev: evNew, G: 1, Leader: "p2", Term: 4})
	}
	ok, _ = f.stableLocked(true)
	assert.True(t, ok)
	assert.Equal(t, []int{1, 1, 0}, f.ledBy())
	assert.Equal(t, int64(10), f.firstStart)

	// a crash of p1, measured: p3 starts leading g0 at 1000, first tick at 1005
	f.crash = &crashWatch{victim: 1, at: 500, evidence: map[int]int64{0: 0}, oldTerm: map[int]uint64{0: 2},
		newTerm: map[int]uint64{}, newBy: map[int]string{}, newSlot: map[int]int{}}
	f.cur[0] = nil
	f.active[0] = nil
	f.handle(1, 1, gEvent{T: 600, Ev: evStart, G: 0, Term: 9}) // a late line of the dead incarnation: no evidence
	f.handle(3, 1, gEvent{T: 1000, Ev: evStart, G: 0, Term: 3})
	f.handle(3, 1, gEvent{T: 1005, T1: 1006, Ev: evLead, G: 0, Term: 3})
	ms, missing, up, taken := f.waitFailover(t.Context(), time.Second)
	assert.Equal(t, map[string]int{"p3": 1}, taken)
	assert.Equal(t, []float64{500.0 / 1e6}, ms)
	assert.Equal(t, 0, missing)
	assert.Equal(t, 1.0, up)
	assert.Nil(t, f.crash)
	assert.Same(t, f.active[0], f.leads[0][len(f.leads[0])-1])
	assert.Equal(t, int64(1005), f.active[0].first0)

	// the end of a leadership clears it; two leaders of one term are a violation
	f.handle(3, 1, gEvent{T: 2000, Ev: evEnd, G: 0, Term: 3, FirstT0: 1005, FirstT1: 1006, LastT0: 1900, LastT1: 1901})
	assert.Nil(t, f.active[0])
	f.handle(2, 1, gEvent{T: 2100, Ev: evStart, G: 0, Term: 3})
	require.Len(t, f.violations, 1)
	assert.Contains(t, f.violations[0], "two leaders of term 3")

	// out-of-range lines are anomalies, not panics
	f.handle(2, 1, gEvent{Ev: evStart, G: 7})
	f.handle(2, 1, gEvent{Ev: evStart, E: 3})
	assert.Len(t, f.anomalies, 2)

	// the calm window counts groups with a change, by their stamps
	f.watchFrom, f.changed, f.changeSec = 5000, map[int]int{}, map[int]int{}
	f.handle(2, 1, gEvent{T: 4999, Ev: evNew, G: 1, Leader: "", Term: 4})
	f.handle(2, 1, gEvent{T: 5001, Ev: evNew, G: 1, Leader: "p2", Term: 4})
	f.handle(3, 1, gEvent{T: 5002, Ev: evNew, G: 1, Leader: "p2", Term: 4})
	assert.Equal(t, map[int]int{1: 2}, f.changed)
	assert.Equal(t, map[int]int{0: 2}, f.changeSec)

	// the window's counters start at each process's first status line in it
	f.calmFirst = map[int]gEvent{}
	f.handle(2, 1, gEvent{T: 4000, Ev: evStatus, Elections: 7})
	f.handle(2, 1, gEvent{T: 6000, Ev: evStatus, Elections: 8})
	f.handle(2, 1, gEvent{T: 7000, Ev: evStatus, Elections: 9})
	assert.Equal(t, map[int]gEvent{2: {T: 6000, Ev: evStatus, Elections: 8}}, f.calmFirst)
}

func TestCalmFigures(t *testing.T) {
	spec := fleetSpec{procs: 2, groups: 10, electors: 1}
	s := int64(time.Second)
	a := fleetSample{t: 0, cpu: map[int]int64{1: 100, 2: 200}, redisCPU: 1000, busy: 0, total: 0,
		status: map[int]gEvent{1: {T: 0, MsgsIn: 0, MsgsOut: 0, Elections: 5}, 2: {T: 0}}}
	b := fleetSample{t: 10 * s, cpu: map[int]int64{1: 150, 2: 300}, redisCPU: 1500,
		status: map[int]gEvent{1: {T: 10 * s, MsgsIn: 1650, MsgsOut: 1000, Elections: 6}, 2: {T: 10 * s, MsgsIn: 1650, MsgsOut: 1000}}}
	pt := &FleetPoint{}
	calmFigures(pt, a, b, []float64{1, 3}, 100*time.Millisecond, spec)
	assert.Equal(t, 10.0, pt.CalmS)
	assert.Equal(t, 0.5, pt.RedisCPU, "500 ticks in 10 s: half a core")
	assert.Equal(t, []float64{0.05, 0.1}, pt.NodeCPUs)
	assert.Equal(t, 0.075, pt.NodeCPU)
	assert.Equal(t, 0.0075, pt.NodeCPUPerGroup)
	assert.Equal(t, 0.1, pt.NodeCPUMax)
	assert.Equal(t, 330.0, pt.ReceivedPerS)
	assert.Equal(t, 200.0, pt.PublishedPerS)
	assert.Equal(t, 1.65, pt.InPerElectorPerHB, "330/s over 20 Electors at 10 heartbeats/s")
	assert.Equal(t, 1.0, pt.OutPerElectorPerHB)
	assert.Equal(t, uint64(1), pt.CalmElections)
	assert.Equal(t, 2.0, pt.Runnable)
}

func TestMachineFigures(t *testing.T) {
	busy, irq, total := parseCPULine("cpu  100 5 50 1000 10 7 3 0 0 0")
	assert.Equal(t, [3]int64{165, 10, 1175}, [3]int64{busy, irq, total})
	busy, _, total = parseCPULine("intr 1 2 3")
	assert.Zero(t, busy+total)

	var ws []machineSample
	for i := range 12 { // 3 s; other processes use a core in the second second
		s := machineSample{T: 0.25 * float64(i+1), Nodes: 1.2, IRQ: 0.1}
		if i >= 4 && i < 8 {
			s.Other = 1
		}
		ws = append(ws, s)
	}
	pt := &FleetPoint{}
	machineFigures(pt, ws, map[int]int{1: 40, 2: 3})
	assert.Equal(t, 0.33, pt.OtherCPU)
	assert.Equal(t, 1.0, pt.OtherCPUMax1s)
	assert.Equal(t, 0.1, pt.IRQCPU)
	assert.Equal(t, []ChangeSecond{{Second: 1, Lines: 40, OtherMax: 1, NodesMax: 1.2}, {Second: 2, Lines: 3, OtherMax: 1, NodesMax: 1.2}}, pt.CalmChanges)
}

func TestTakenText(t *testing.T) {
	assert.Equal(t, "none", takenText(nil))
	assert.Equal(t, "p2 7, p1 3, p3 3", takenText(map[string]int{"p3": 3, "p1": 3, "p2": 7}))
}

// TestMonoIsTheSharedClock: mono, read without a system call, stays on
// CLOCK_MONOTONIC, which the harness compares across processes.
func TestMonoIsTheSharedClock(t *testing.T) {
	for range 100 {
		a := monoSyscall()
		m := mono()
		b := monoSyscall()
		require.LessOrEqual(t, a-int64(time.Millisecond), m)
		require.LessOrEqual(t, m, b+int64(time.Millisecond))
	}
}
