package recipes_test

import (
	"log"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/redraft/leader"
	"github.com/redraft/leader/chaos/recipes"
)

// ExampleNewCollector exports an Elector's status with the metrics of the
// rest of the service.
func ExampleNewCollector() {
	e, err := leader.New(leader.Config{Group: "billing"})
	if err != nil {
		log.Fatal(err)
	}
	// myapp_leader_is_leader{group="billing",node="..."} and the others,
	// served by promhttp.Handler() with everything else registered.
	prometheus.MustRegister(recipes.NewCollector(e, "myapp", "billing"))
}

// gather registers c alone on a pedantic registry (which checks Collect
// against Describe) and returns the families by name.
func gather(t *testing.T, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	byName := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	return byName
}

// value returns the value of the family's metric whose labels include
// want, failing the test if there is none.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	mf, ok := mfs[name]
	require.True(t, ok, "no metric %s", name)
next:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		}
		t.Fatalf("metric %s is a %v; want a counter or a gauge", name, mf.GetType())
	}
	t.Fatalf("no metric %s with labels %v", name, want)
	return 0
}

// snake turns a Status field's name into a metric's: TermKeyErrors is
// term_key_errors.
func snake(s string) string {
	return strings.ToLower(regexp.MustCompile(`([a-z0-9])([A-Z])`).ReplaceAllString(s, "${1}_${2}"))
}

func TestCollector(t *testing.T) {
	addr := startRedis(t)
	const group = "recipes-prom"
	e, err := leader.New(fastTimings(leader.Config{Addr: addr, Group: group, Logger: testLogger(t)}))
	require.NoError(t, err)
	c := recipes.NewCollector(e, "", group)

	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	require.Empty(t, problems, "the metrics break Prometheus's naming rules")

	stop := runElector(t, e)
	waitLeader(t, e)

	// One gather is one Status, so all its values agree; gather until it
	// caught the node leading (it may have lost a lease on a loaded host).
	// The polling stays on the test goroutine, where gather may fail.
	mfs := gather(t, c)
	for deadline := time.Now().Add(10 * time.Second); value(t, mfs, "leader_is_leader") != 1; mfs = gather(t, c) {
		if time.Now().After(deadline) {
			t.Fatalf("leader_is_leader not 1 within 10s; status: %+v", e.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}

	require.Greater(t, value(t, mfs, "leader_term"), 0.0, "term")
	require.Equal(t, 1.0, value(t, mfs, "leader_state", "state", "leader"))
	require.Equal(t, 0.0, value(t, mfs, "leader_state", "state", "follower"))
	require.Equal(t, 0.0, value(t, mfs, "leader_state", "state", "candidate"))
	require.Equal(t, 1.0, value(t, mfs, "leader_connected"))
	require.Greater(t, value(t, mfs, "leader_lease_left_seconds"), 0.0, "lease left")
	require.Equal(t, 1.0, value(t, mfs, "leader_nodes"), "a lone node")
	require.Equal(t, 0.0, value(t, mfs, "leader_live_peers"), "a lone node")
	require.GreaterOrEqual(t, value(t, mfs, "leader_elections_total"), 1.0)
	require.Greater(t, value(t, mfs, "leader_messages_out_total"), 0.0)

	// Every metric carries the group and the node.
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			require.Equal(t, group, labels["group"], "%s: group label", name)
			require.Equal(t, e.ID(), labels["node"], "%s: node label", name)
		}
	}

	// Every counter of Status (its uint64 fields but Term) is exported,
	// as a counter: a field added to Status without a line in the
	// collector's table fails here.
	st := reflect.TypeFor[leader.Status]()
	for i := range st.NumField() {
		f := st.Field(i)
		if f.Type.Kind() != reflect.Uint64 || f.Name == "Term" {
			continue
		}
		name := "leader_" + snake(f.Name) + "_total"
		mf, ok := mfs[name]
		require.True(t, ok, "Status.%s has no metric %s", f.Name, name)
		require.Equal(t, dto.MetricType_COUNTER, mf.GetType(), "%s", name)
	}

	// After Run the node is no leader, and its step-down was counted, under
	// one cause (ErrShutdown, unless a lease ran out just before).
	require.NoError(t, stop())
	mfs = gather(t, c)
	require.Equal(t, 0.0, value(t, mfs, "leader_is_leader"))
	require.Equal(t, 1.0, value(t, mfs, "leader_state", "state", "follower"))
	stepDowns := value(t, mfs, "leader_step_downs_total")
	require.GreaterOrEqual(t, stepDowns, 1.0)
	var byCause float64
	for _, cause := range []string{"leases_lost", "hand_overs", "shutdowns", "superseded"} {
		byCause += value(t, mfs, "leader_"+cause+"_total")
	}
	require.Equal(t, stepDowns, byCause, "step-downs by cause do not add up to step_downs_total")
}

func TestCollectorNamespace(t *testing.T) {
	// An Elector that never ran: a follower, with nothing counted yet.
	e, err := leader.New(leader.Config{Group: "g"})
	require.NoError(t, err)
	mfs := gather(t, recipes.NewCollector(e, "myapp", "g"))
	require.Equal(t, 0.0, value(t, mfs, "myapp_leader_is_leader", "group", "g", "node", e.ID()))
	require.Equal(t, 1.0, value(t, mfs, "myapp_leader_state", "state", "follower"))
	require.Equal(t, 0.0, value(t, mfs, "myapp_leader_term"))
	require.Equal(t, 0.0, value(t, mfs, "myapp_leader_elections_total"))
	for name := range mfs {
		require.True(t, strings.HasPrefix(name, "myapp_leader_"), "metric %s lacks the namespace", name)
	}
}
