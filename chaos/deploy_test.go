package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSentinelDeployment starts the Sentinel deployment, fails it over
// with SENTINEL FAILOVER and waits until it is healthy again on the new
// primary: the restore between the scenarios' trials.
func TestSentinelDeployment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six redis-server processes")
	}
	d, err := startSentinelDeployment(t.TempDir())
	require.NoError(t, err)
	defer d.stop()
	old, err := d.primary()
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, d.failover())
	now, err := d.waitNamed(old, true, 10*time.Second)
	require.NoError(t, err)
	t.Logf("the sentinels named %s instead of %s after %v", now, old, time.Since(start))
	require.NoError(t, d.restore(30*time.Second))
	t.Logf("healthy again after %v", time.Since(start))
}

// TestClusterDeployment starts the six-node Cluster, fails the shard of a
// key over with CLUSTER FAILOVER on its replica and waits until the
// Cluster is healthy with the replica as the owner.
func TestClusterDeployment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six redis-server processes")
	}
	start := time.Now()
	d, err := startClusterDeployment(t.TempDir())
	require.NoError(t, err)
	defer d.stop()
	t.Logf("cluster up after %v", time.Since(start))
	slot, err := d.keySlot("leader:{g}")
	require.NoError(t, err)
	sh, err := d.shard(slot)
	require.NoError(t, err)
	start = time.Now()
	_, err = do(sh.replicas[0], "CLUSTER", "FAILOVER")
	require.NoError(t, err)
	owner, err := d.waitOwner(slot, sh.owner, true, 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, sh.replicas[0], owner)
	require.NoError(t, d.waitHealthy([]int{slot}, 20*time.Second))
	t.Logf("slot %d moved from %s to %s, healthy after %v", slot, sh.owner, owner, time.Since(start))
}
