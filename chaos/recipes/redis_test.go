package recipes_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/redraft/leader"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startRedis starts a redis-server of its own on a free 127.0.0.1 port,
// with no persistence, and stops it when the test ends. extra are more
// arguments for it (an ACL user, a password). It returns the address.
func startRedis(t testing.TB, extra ...string) string {
	t.Helper()
	return launchRedis(t, func(port int) []string {
		return append([]string{"--port", strconv.Itoa(port)}, extra...)
	}, func(addr string) (redis.Conn, error) {
		return redis.Dial("tcp", addr, redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(time.Second))
	})
}

// startRedisTLS starts a redis-server that speaks only TLS, with the
// certificate and key in the PEM files given and no client certificates
// asked for; cfg is the client's TLS config, to check that it is up.
func startRedisTLS(t testing.TB, certFile, keyFile string, cfg *tls.Config) string {
	t.Helper()
	return launchRedis(t, func(port int) []string {
		return []string{"--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", certFile, "--tls-key-file", keyFile,
			"--tls-ca-cert-file", certFile, "--tls-auth-clients", "no"}
	}, func(addr string) (redis.Conn, error) {
		return redis.Dial("tcp", addr, redis.DialUseTLS(true), redis.DialTLSConfig(cfg),
			redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(time.Second))
	})
}

// launchRedis runs redis-server with the arguments args gives for a free
// port, until dial reaches it and it answers PING (an error reply counts:
// a server with a password answers NOAUTH).
func launchRedis(t testing.TB, args func(port int) []string, dial func(addr string) (redis.Conn, error)) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("these tests need redis-server on PATH: %v", err)
	}
	var lastErr error
	for range 5 { // a free port can be taken between finding and using it
		port := freePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		// --dir keeps anything the server writes out of the tree.
		cmd := exec.Command(bin, append([]string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--daemonize", "no", "--loglevel", "warning", "--dir", t.TempDir()}, args(port)...)...)
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if lastErr = cmd.Start(); lastErr != nil {
			continue
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if lastErr = waitUp(addr, dial, exited, out); lastErr != nil {
			_ = cmd.Process.Kill()
			<-exited
			continue
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
		return addr
	}
	t.Fatalf("redis-server did not start: %v", lastErr)
	return ""
}

// waitUp polls addr until the server answers PING, exits, or 5s pass.
func waitUp(addr string, dial func(addr string) (redis.Conn, error), exited <-chan error, out *lockedBuffer) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := dial(addr); err == nil {
			_, err = c.Do("PING")
			c.Close()
			var answered redis.Error
			if err == nil || errors.As(err, &answered) {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited (%v): %s", err, out)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server did not answer PING within 5s: %s", out)
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects the server's output, written by exec's copying
// goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fastTimings are short election timings, so a lone node leads within a
// fraction of a second, with the margins leader.New demands.
func fastTimings(cfg leader.Config) leader.Config {
	cfg.HeartbeatInterval = 50 * time.Millisecond
	cfg.LeaseTimeout = 150 * time.Millisecond
	cfg.PeerTimeout = 250 * time.Millisecond
	cfg.ElectionJitter = 50 * time.Millisecond
	return cfg
}

// runElector runs e and returns stop, which cancels Run's context and
// returns what Run returned; stop fails the test if Run takes more than 5s
// to return. stop runs at the end of the test too, if it was not called.
func runElector(t *testing.T, e *leader.Elector) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(5 * time.Second):
				runErr = errors.New("Run did not return within 5s of its context's cancellation")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return stop
}

// waitLeader waits until e is the active leader, polling, for up to 10s.
func waitLeader(t *testing.T, e *leader.Elector) {
	t.Helper()
	if !assert.Eventually(t, e.IsLeader, 10*time.Second, 10*time.Millisecond) {
		t.Fatalf("did not become leader within 10s; status: %+v", e.Status())
	}
}
