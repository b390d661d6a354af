package recipes

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/redraft/leader"
)

// statusMetric is one metric read from a leader.Status.
type statusMetric struct {
	name  string // after the "<namespace>_leader_" prefix; counters end in _total
	help  string
	kind  prometheus.ValueType
	value func(s *leader.Status) float64
}

// statusMetrics lists every metric NewCollector exports but the state
// gauge (which has a label). A new Status field is one line here; the
// tests fail for a uint64 counter of Status that has no line.
var statusMetrics = []statusMetric{
	{"is_leader", "1 if this node is the active leader (elected and inside its lease), else 0.", prometheus.GaugeValue, func(s *leader.Status) float64 { return boolValue(s.Active) }},
	{"term", "The term this node is in; the leader's term is its fencing token.", prometheus.GaugeValue, func(s *leader.Status) float64 { return float64(s.Term) }},
	{"connected", "1 if subscribed to Redis and this node's own messages echo back, else 0.", prometheus.GaugeValue, func(s *leader.Status) float64 { return boolValue(s.Connected) }},
	{"lease_left_seconds", "Time left on the leader's lease; 0 unless the active leader.", prometheus.GaugeValue, func(s *leader.Status) float64 { return s.LeaseLeft.Seconds() }},
	{"nodes", "Live nodes in the group, this one included, as the leader last reported; 0 when unknown.", prometheus.GaugeValue, func(s *leader.Status) float64 { return float64(s.Nodes) }},
	{"live_peers", "Other nodes heard within PeerTimeout; a healthy follower hears only the leader.", prometheus.GaugeValue, func(s *leader.Status) float64 { return float64(len(s.LivePeers)) }},
	{"last_leaderless_seconds", "How long this node last went without a leader: the last failover as this node saw it.", prometheus.GaugeValue, func(s *leader.Status) float64 { return s.LastLeaderless.Seconds() }},
	{"last_election_seconds", "How long this node's last won election took, from the start of its winning round.", prometheus.GaugeValue, func(s *leader.Status) float64 { return s.LastElection.Seconds() }},

	{"elections_total", "Elections this node started (after a pre-vote).", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.Elections) }},
	{"term_key_errors_total", "Failed writes of the term key; each ended an election round unelected.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.TermKeyErrors) }},
	{"step_downs_total", "Times this node stopped being the active leader, for any cause.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.StepDowns) }},
	{"leases_lost_total", "Step-downs because no quorum acked a heartbeat in time (ErrLeaseLost).", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.LeasesLost) }},
	{"hand_overs_total", "Step-downs by Resign, TransferTo or Priority (ErrHandedOver).", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.HandOvers) }},
	{"shutdowns_total", "Step-downs because Run ended (ErrShutdown).", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.Shutdowns) }},
	{"superseded_total", "Step-downs because another leader was seen (ErrSuperseded).", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.Superseded) }},
	{"messages_in_total", "Valid messages received.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.MessagesIn) }},
	{"messages_out_total", "Messages published.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.MessagesOut) }},
	{"dropped_total", "Messages dropped as malformed, oversized, from a duplicate ID, or because the node was behind.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.Dropped) }},
	{"unverified_total", "Messages dropped because they could not be verified (Secret, channel or wire version).", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.Unverified) }},
	{"replays_total", "Verified messages dropped as repeats or as delivered too late.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.Replays) }},
	{"reconnects_total", "Redis (re)connections after the first.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.Reconnects) }},
	{"publish_errors_total", "Failed PUBLISH or other Redis commands.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.PublishErrors) }},
	{"redirects_total", "Redis Cluster: MOVED, ASK and CLUSTERDOWN replies and unasked sunsubscribes, each followed by a redial.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.Redirects) }},
}

// states are the values of the state gauge's label, all of them exported
// every time (1 for the current one) so that a query never sees a gap.
var states = []leader.State{leader.Follower, leader.Candidate, leader.Leader}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// collector is the prometheus.Collector NewCollector returns.
type collector struct {
	e     *leader.Elector
	descs []*prometheus.Desc // statusMetrics' descriptions, in order
	state *prometheus.Desc
}

// NewCollector returns a prometheus.Collector that reads e.Status() once
// per scrape and exports it as metrics named
// <namespace>_leader_<name> (leader_<name> when namespace is ""): the
// gauges is_leader (0 or 1), state (1 for the current state, with a label
// state of "follower", "candidate" or "leader", 0 for the others), term,
// connected, lease_left_seconds, nodes, live_peers and
// last_leaderless_seconds, and a counter <field>_total for every counter
// of leader.Status (elections_total, step_downs_total, messages_in_total,
// and so on).
//
// Every metric has two constant labels: group, which should be the
// Config.Group of e (an Elector does not report its group), and node, e's
// ID. Constant labels, rather than a Registerer wrapper, because one
// process may run Electors of several groups, and each then registers a
// collector of its own; for labels of your own (a region, say) register
// through prometheus.WrapRegistererWith.
//
// The collector may be registered before or after Run starts, and reads
// nothing while not scraped.
func NewCollector(e *leader.Elector, namespace, group string) prometheus.Collector {
	labels := prometheus.Labels{"group": group, "node": e.ID()}
	c := &collector{e: e}
	for _, m := range statusMetrics {
		c.descs = append(c.descs, prometheus.NewDesc(
			prometheus.BuildFQName(namespace, "leader", m.name), m.help, nil, labels))
	}
	c.state = prometheus.NewDesc(prometheus.BuildFQName(namespace, "leader", "state"),
		"1 for the state this node is in (follower, candidate or leader), 0 for the others.",
		[]string{"state"}, labels)
	return c
}

// Describe sends the descriptions of every metric; the set is fixed, so
// the registry can check that names do not collide.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	ch <- c.state
}

// Collect sends the metrics of one Status, so that they agree with each
// other (is_leader 1 and lease_left_seconds 0 cannot come from two reads).
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.Status()
	for i, m := range statusMetrics {
		ch <- prometheus.MustNewConstMetric(c.descs[i], m.kind, m.value(&s))
	}
	for _, st := range states {
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, boolValue(s.State == st), st.String())
	}
}
