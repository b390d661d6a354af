package main

import (
	"context"
	"errors"
	"testing"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/require"
)

func TestParseAddrMap(t *testing.T) {
	m, err := parseAddrMap("127.0.0.1:7000=127.0.0.1:41000,127.0.0.1:7001=127.0.0.1:41001")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"127.0.0.1:7000": "127.0.0.1:41000", "127.0.0.1:7001": "127.0.0.1:41001"}, m)
	m, err = parseAddrMap("")
	require.NoError(t, err)
	require.Empty(t, m)
	for _, bad := range []string{"127.0.0.1:7000", "=x", "a=", "a=b,"} {
		_, err := parseAddrMap(bad)
		require.Error(t, err, "%q", bad)
	}
}

// TestLocatorFailed: which replies drop the connection, and MOVED says
// where to dial next.
func TestLocatorFailed(t *testing.T) {
	l := &locator{seeds: []string{"127.0.0.1:1"}, last: "127.0.0.1:1"}
	require.True(t, l.failed(redis.Error("MOVED 1234 127.0.0.1:7002")))
	require.Equal(t, "127.0.0.1:7002", l.moved)
	for _, msg := range []string{"READONLY You can't write against a read only replica.", "CLUSTERDOWN The cluster is down", "TRYAGAIN"} {
		require.True(t, l.failed(redis.Error(msg)), msg)
	}
	require.False(t, l.failed(redis.Error("ERR unknown command")))
	require.True(t, l.failed(errors.New("read: connection reset by peer")))
	require.Empty(t, l.last, "a broken connection forgets the server")
}

// TestLocatorNeverBypassesTheProxies: with -addr-map, an address it does
// not name is refused, not dialled directly.
func TestLocatorNeverBypassesTheProxies(t *testing.T) {
	l := &locator{addrMap: map[string]string{"127.0.0.1:7000": "127.0.0.1:41000"}}
	_, err := l.dialData(context.Background(), "127.0.0.1:7001")
	require.ErrorContains(t, err, "no proxy for 127.0.0.1:7001")
}
