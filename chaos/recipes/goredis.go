// Package recipes holds small, tested pieces that services using the
// leader package tend to write themselves: a Dial built from go-redis's
// Options, and a Prometheus collector over Status. They live in the chaos
// module so that leader.go keeps its one dependency; copy what you need.
package recipes

import (
	"context"

	redigo "github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"
)

// DialFromGoRedis returns a leader.Config.Dial that opens connections the
// way a go-redis client built from opt would: the same address and
// network, user, password, DB, TLS and client name. A service that already
// configures go-redis so needs no second configuration for the Elector.
//
// Timeouts: go-redis takes 0 for its defaults (5s to dial, 3s to read and
// write) and -1 for none. The Elector sets its own deadline on every read
// it waits for (redigo's ConnWithTimeout, which these connections support),
// so only positive read and write timeouts are passed on, and the dial
// timeout when positive; the Elector's context bounds the dial either way.
// Pass DB in both places: set leader.Config.DB to opt.DB, so that the
// Elector's channels carry it and its check of the connections agrees.
func DialFromGoRedis(opt *goredis.Options) func(ctx context.Context) (redigo.Conn, error) {
	network := opt.Network
	if network == "" {
		network = "tcp"
	}
	var dopts []redigo.DialOption
	if opt.Username != "" {
		dopts = append(dopts, redigo.DialUsername(opt.Username))
	}
	if opt.Password != "" {
		dopts = append(dopts, redigo.DialPassword(opt.Password))
	}
	if opt.DB != 0 {
		dopts = append(dopts, redigo.DialDatabase(opt.DB))
	}
	if opt.ClientName != "" {
		dopts = append(dopts, redigo.DialClientName(opt.ClientName))
	}
	if opt.TLSConfig != nil {
		dopts = append(dopts, redigo.DialUseTLS(true), redigo.DialTLSConfig(opt.TLSConfig))
	}
	if opt.DialTimeout > 0 {
		dopts = append(dopts, redigo.DialConnectTimeout(opt.DialTimeout))
	}
	if opt.ReadTimeout > 0 {
		dopts = append(dopts, redigo.DialReadTimeout(opt.ReadTimeout))
	}
	if opt.WriteTimeout > 0 {
		dopts = append(dopts, redigo.DialWriteTimeout(opt.WriteTimeout))
	}
	addr := opt.Addr
	if addr == "" {
		addr = "localhost:6379" // go-redis's default
	}
	return func(ctx context.Context) (redigo.Conn, error) {
		if opt.DialTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, opt.DialTimeout)
			defer cancel()
		}
		return redigo.DialContext(ctx, network, addr, dopts...)
	}
}
