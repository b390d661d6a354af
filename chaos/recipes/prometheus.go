package recipes

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/redraft/leader"
)

// metric is one value read from a Status snapshot.
type metric struct {
	name, help string
	kind       prometheus.ValueType
	value      func(s *leader.Status) float64
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metrics lists what the collector exports: adding a Status field is one
// line here.
var metrics = []metric{
	{"is_leader", "1 while this node is the active leader (IsLeader).", prometheus.GaugeValue, func(s *leader.Status) float64 { return b2f(s.Active) }},
	{"connected", "1 while this node is subscribed and its own messages come back.", prometheus.GaugeValue, func(s *leader.Status) float64 { return b2f(s.Connected) }},
	{"has_leader", "1 while this node follows a leader, or leads.", prometheus.GaugeValue, func(s *leader.Status) float64 { return b2f(s.Leader != "") }},
	{"term", "The node's term; the leader's is its fencing token.", prometheus.GaugeValue, func(s *leader.Status) float64 { return float64(s.Term) }},
	{"lease_left_seconds", "Time left on the leader's lease; 0 unless leading.", prometheus.GaugeValue, func(s *leader.Status) float64 { return s.LeaseLeft.Seconds() }},
	{"nodes", "Live nodes in the group, as the leader last counted them.", prometheus.GaugeValue, func(s *leader.Status) float64 { return float64(s.Nodes) }},
	{"live_peers", "Other nodes heard within PeerTimeout.", prometheus.GaugeValue, func(s *leader.Status) float64 { return float64(len(s.LivePeers)) }},
	{"last_leaderless_seconds", "How long this node last went without a leader: a failover as it saw it.", prometheus.GaugeValue, func(s *leader.Status) float64 { return s.LastLeaderless.Seconds() }},
	{"elections_total", "Elections this node started.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.Elections) }},
	{"term_key_errors_total", "Failed writes of the term key.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.TermKeyErrors) }},
	{"leases_lost_total", "Leaderships that ended because the lease lapsed.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.LeasesLost) }},
	{"handovers_total", "Leaderships handed over (Resign, TransferTo, Priority).", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.HandOvers) }},
	{"shutdowns_total", "Leaderships ended by the end of Run.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.Shutdowns) }},
	{"superseded_total", "Leaderships ended by a higher term or another leader.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.Superseded) }},
	{"messages_in_total", "Valid messages received.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.MessagesIn) }},
	{"messages_out_total", "Messages published.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.MessagesOut) }},
	{"dropped_total", "Messages dropped as malformed, oversized or because the node was behind.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.Dropped) }},
	{"unverified_total", "Messages that could not be verified (another Secret, another group's copy, another version).", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.Unverified) }},
	{"replays_total", "Verified messages dropped as repeats or stale.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.Replays) }},
	{"reconnects_total", "Redis reconnections after the first.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.Reconnects) }},
	{"publish_errors_total", "Failed PUBLISH or commands.", prometheus.CounterValue, func(s *leader.Status) float64 { return float64(s.PublishErrors) }},
}

// Collector is a prometheus.Collector over an Elector's Status: one
// snapshot per scrape, every value labelled with the group and the node.
type Collector struct {
	e     *leader.Elector
	descs []*prometheus.Desc
	state *prometheus.Desc
}

// NewCollector returns a Collector for e, whose metrics are named
// namespace_leader_<name> (leader_<name> without a namespace) and carry
// the constant labels group and node. Register it with
// prometheus.MustRegister.
func NewCollector(e *leader.Elector, namespace, group string) *Collector {
	labels := prometheus.Labels{"group": group, "node": e.ID()}
	c := &Collector{e: e}
	for _, m := range metrics {
		c.descs = append(c.descs, prometheus.NewDesc(prometheus.BuildFQName(namespace, "leader", m.name), m.help, nil, labels))
	}
	c.state = prometheus.NewDesc(prometheus.BuildFQName(namespace, "leader", "state"),
		"1 for the node's state (follower, candidate, leader), 0 for the others.", []string{"state"}, labels)
	return c
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	ch <- c.state
}

// Collect takes one Status snapshot and sends every metric of it.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.e.Status()
	for i, m := range metrics {
		ch <- prometheus.MustNewConstMetric(c.descs[i], m.kind, m.value(&s))
	}
	for _, st := range []leader.State{leader.Follower, leader.Candidate, leader.Leader} {
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, b2f(s.State == st), st.String())
	}
}
