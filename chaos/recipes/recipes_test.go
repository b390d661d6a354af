package recipes

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	redigo "github.com/gomodule/redigo/redis"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redraft/leader"
)

// startRedis starts a redis-server on a free loopback port with an ACL
// user, and stops it when the test ends.
func startRedis(t *testing.T, extra ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found: run 'bash scripts/ensure-redis.sh' at the repository root")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir()}, extra...)
	cmd := exec.Command(bin, args...)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := redigo.Dial("tcp", addr); err == nil {
			_, err = c.Do("PING")
			c.Close()
			if err == nil || strings.Contains(err.Error(), "NOAUTH") {
				return addr
			}
		}
		require.True(t, time.Now().Before(deadline), "redis-server did not answer on %s", addr)
		time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline
	}
}

// run runs e until the test ends and returns a function that waits until
// pred holds, failing after 5 s.
func run(t *testing.T, e *leader.Elector) (wait func(what string, pred func() bool)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Error("Run did not return")
		}
	})
	return func(what string, pred func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !pred() {
			require.True(t, time.Now().Before(deadline), "%s: not within 5s (status %+v)", what, e.Status())
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// fast are quick timings, so a lone node leads within a second.
func fast(cfg leader.Config) leader.Config {
	cfg.HeartbeatInterval, cfg.LeaseTimeout, cfg.PeerTimeout, cfg.ElectionJitter = 20*time.Millisecond, 80*time.Millisecond, 150*time.Millisecond, 60*time.Millisecond
	return cfg
}

// TestDialFromGoRedis: a go-redis Options with an ACL user, a password and
// DB 3 gives an Elector that authenticates, is on DB 3 (its term key is
// there) and leads; a wrong password is refused with WRONGPASS.
func TestDialFromGoRedis(t *testing.T) {
	addr := startRedis(t, "--user", "svc", "on", ">pw", "~*", "&*", "+@all")
	opt := &goredis.Options{Addr: addr, Username: "svc", Password: "pw", DB: 3, ClientName: "elector", ReadTimeout: -1}
	dial := DialFromGoRedis(opt)
	c, err := dial(context.Background())
	require.NoError(t, err)
	info, err := redigo.String(c.Do("CLIENT", "INFO"))
	require.NoError(t, err)
	c.Close()
	assert.Contains(t, info, " db=3 ")
	assert.Contains(t, info, " name=elector ")
	assert.Contains(t, info, " user=svc ")

	bad := *opt
	bad.Password = "nope"
	_, err = DialFromGoRedis(&bad)(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "WRONGPASS")

	e, err := leader.New(fast(leader.Config{Group: "goredis", DB: opt.DB, Dial: dial}))
	require.NoError(t, err)
	wait := run(t, e)
	wait("leading over a go-redis Dial", e.IsLeader)
	admin, err := DialFromGoRedis(opt)(context.Background())
	require.NoError(t, err)
	defer admin.Close()
	n, err := redigo.Int(admin.Do("EXISTS", "leader:db3:{goredis}:term"))
	require.NoError(t, err)
	assert.Equal(t, 1, n, "no term key on DB 3")
}

// TestCollector gathers the collector of a leading Elector.
func TestCollector(t *testing.T) {
	addr := startRedis(t)
	e, err := leader.New(fast(leader.Config{Addr: addr, Group: "metrics"}))
	require.NoError(t, err)
	wait := run(t, e)
	wait("leading", e.IsLeader)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(NewCollector(e, "svc", "metrics")))
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Equal(t, len(metrics)+3, n, "one series per metric, three for the state")
	want := fmt.Sprintf(`
# HELP svc_leader_is_leader 1 while this node is the active leader (IsLeader).
# TYPE svc_leader_is_leader gauge
svc_leader_is_leader{group="metrics",node=%q} 1
`, e.ID())
	assert.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "svc_leader_is_leader"))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "svc_leader_term" {
			assert.Positive(t, mf.GetMetric()[0].GetGauge().GetValue(), "term")
		}
	}
}

// Example: a Dial from the go-redis Options a service already has, and
// the Elector's metrics next to its own.
func ExampleDialFromGoRedis() {
	opt, err := goredis.ParseURL("redis://svc:pw@127.0.0.1:6379/3")
	if err != nil {
		panic(err)
	}
	e, err := leader.New(leader.Config{Group: "scheduler", DB: opt.DB, Dial: DialFromGoRedis(opt)})
	if err != nil {
		panic(err)
	}
	prometheus.MustRegister(NewCollector(e, "svc", "scheduler"))
	// go e.Run(ctx); http.Handle("/healthz", e.Handler())
}
