package main

// Finding the server to write to, in a node process: the one redis-server,
// the primary the sentinels name, or the Cluster node that owns the
// group's slot (following MOVED). The fencer uses it over direct
// connections, the lock baseline through the node's proxies (-addr-map).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
)

// locator finds and dials the server that takes the writes.
type locator struct {
	addr      string            // one redis-server (no deployment)
	sentinels []string          // Sentinel: ask these for the primary of sentinelMaster
	seeds     []string          // Cluster: any of these, then follow MOVED
	addrMap   map[string]string // a data server's address -> where to dial it (its proxy); absent: itself
	timeout   time.Duration     // read and write timeout
	connect   time.Duration     // connect timeout

	moved string // Cluster: where the last MOVED pointed
	last  string // the last address dialled successfully
	next  int    // Cluster: the seed to try next
}

// mode names the deployment.
func (l *locator) mode() string {
	switch {
	case len(l.sentinels) > 0:
		return deploySentinel
	case len(l.seeds) > 0:
		return deployCluster
	}
	return ""
}

// dialData dials a data server by its real address, through its proxy
// when there is one.
func (l *locator) dialData(ctx context.Context, addr string) (redis.Conn, error) {
	to := addr
	if p, ok := l.addrMap[addr]; ok {
		to = p
	} else if len(l.addrMap) > 0 {
		// every data server has a proxy: a fault must never be bypassed
		return nil, fmt.Errorf("no proxy for %s in -addr-map", addr)
	}
	return redis.DialContext(ctx, "tcp", to, redis.DialConnectTimeout(l.connect),
		redis.DialReadTimeout(l.timeout), redis.DialWriteTimeout(l.timeout))
}

// dial returns a connection to the server that takes writes now, its real
// address and its epoch: the Sentinel config epoch + 1 of the primary, or
// the Cluster node's config epoch (both grow with every failover); 0 with
// one redis-server (the fence script reads its own).
func (l *locator) dial(ctx context.Context) (redis.Conn, string, int64, error) {
	switch l.mode() {
	case deploySentinel:
		addr, epoch, err := askSentinels(ctx, l.sentinels, l.timeout)
		if err != nil {
			return nil, "", 0, err
		}
		c, err := l.dialData(ctx, addr)
		if err != nil {
			return nil, "", 0, err
		}
		v, err := redis.Values(c.Do("ROLE"))
		if err == nil && len(v) > 0 {
			if role, _ := redis.String(v[0], nil); role != "master" {
				err = fmt.Errorf("%s, named the primary, is a %s", addr, role)
			}
		}
		if err != nil {
			c.Close()
			return nil, "", 0, err
		}
		l.last = addr
		return c, addr, epoch + 1, nil
	case deployCluster:
		addr := l.moved
		if addr == "" {
			addr = l.last
		}
		if addr == "" {
			addr = l.seeds[l.next%len(l.seeds)]
			l.next++
		}
		l.moved = ""
		c, err := l.dialData(ctx, addr)
		if err != nil {
			l.last = ""
			return nil, "", 0, err
		}
		info, err := redis.String(c.Do("CLUSTER", "INFO"))
		if err != nil {
			c.Close()
			l.last = ""
			return nil, "", 0, err
		}
		var epoch int64
		for line := range strings.SplitSeq(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "cluster_my_epoch:"); ok {
				epoch, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		l.last = addr
		return c, addr, epoch, nil
	}
	c, err := l.dialData(ctx, l.addr)
	return c, l.addr, 0, err
}

// failed tells the locator that a command on the connection to addr
// failed with err. It returns true when the connection must be dropped and
// dialled again: always on a broken connection, and on MOVED (which also
// says where to dial), READONLY (a demoted primary), CLUSTERDOWN and TRYAGAIN.
func (l *locator) failed(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		l.last = ""
		return true
	}
	msg := string(re)
	if f := strings.Fields(msg); len(f) == 3 && f[0] == "MOVED" {
		l.moved = f[2]
		return true
	}
	for _, p := range []string{"READONLY", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "LOADING"} {
		if strings.HasPrefix(msg, p) {
			l.last = ""
			return true
		}
	}
	return false
}

// askSentinels asks every sentinel at once for the primary of
// sentinelMaster and returns the answer of the highest config epoch.
func askSentinels(ctx context.Context, sentinels []string, timeout time.Duration) (string, int64, error) {
	type answer struct {
		addr  string
		epoch int64
		err   error
	}
	answers := make([]answer, len(sentinels))
	var wg sync.WaitGroup
	for i, s := range sentinels {
		wg.Go(func() {
			c, err := redis.DialContext(ctx, "tcp", s, redis.DialConnectTimeout(timeout),
				redis.DialReadTimeout(timeout), redis.DialWriteTimeout(timeout))
			if err != nil {
				answers[i].err = err
				return
			}
			defer c.Close()
			answers[i].addr, answers[i].epoch, answers[i].err = askSentinel(c)
		})
	}
	wg.Wait()
	best := -1
	var errs []error
	for i, a := range answers {
		switch {
		case a.err != nil:
			errs = append(errs, a.err)
		case best < 0 || a.epoch > answers[best].epoch:
			best = i
		}
	}
	if best < 0 {
		return "", 0, fmt.Errorf("no sentinel named a primary: %w", errors.Join(errs...))
	}
	return answers[best].addr, answers[best].epoch, nil
}

// askSentinel asks one sentinel for the primary's address and its config
// epoch.
func askSentinel(c redis.Conn) (string, int64, error) {
	m, err := redis.StringMap(c.Do("SENTINEL", "MASTER", sentinelMaster))
	if err != nil {
		return "", 0, err
	}
	epoch, _ := strconv.ParseInt(m["config-epoch"], 10, 64)
	hp, err := redis.Strings(c.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", sentinelMaster))
	if err != nil {
		return "", 0, err
	}
	if len(hp) != 2 {
		return "", 0, errors.New("no address in GET-MASTER-ADDR-BY-NAME's reply")
	}
	return net.JoinHostPort(hp[0], hp[1]), epoch, nil
}

// primaryWatch asks the sentinels for the primary every period, so that a
// fencer connected to an old primary (writable for seconds after a
// switch) moves to the new one within a period.
type primaryWatch struct {
	mu   sync.Mutex // guards addr
	addr string
}

func watchPrimary(sentinels []string, period time.Duration) *primaryWatch {
	w := &primaryWatch{}
	go func() {
		conns := make([]redis.Conn, len(sentinels)) // kept open: one round trip per sentinel per period
		for {
			best, bestEpoch := "", int64(-1)
			for i, s := range sentinels {
				if conns[i] == nil {
					c, err := redis.Dial("tcp", s, redis.DialConnectTimeout(period),
						redis.DialReadTimeout(2*period), redis.DialWriteTimeout(2*period))
					if err != nil {
						continue
					}
					conns[i] = c
				}
				addr, epoch, err := askSentinel(conns[i])
				if err != nil {
					conns[i].Close()
					conns[i] = nil
					continue
				}
				if epoch > bestEpoch {
					best, bestEpoch = addr, epoch
				}
			}
			if best != "" {
				w.mu.Lock()
				w.addr = best
				w.mu.Unlock()
			}
			time.Sleep(period)
		}
	}()
	return w
}

// moved reports whether the sentinels now name a primary other than at.
func (w *primaryWatch) moved(at string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.addr != "" && w.addr != at
}

// parseAddrMap parses -addr-map: real=proxy,real=proxy.
func parseAddrMap(s string) (map[string]string, error) {
	m := map[string]string{}
	if s == "" {
		return m, nil
	}
	for kv := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("-addr-map: %q is not real=proxy", kv)
		}
		m[k] = v
	}
	return m, nil
}
