// Package recipes holds small, tested adapters for users of package leader
// who already run other Redis or monitoring libraries: DialFromGoRedis
// reuses a go-redis client's connection settings for leader.Config.Dial,
// and NewCollector exports an Elector's Status to Prometheus.
//
// It lives in the chaos module, not next to leader.go, so that the library
// itself keeps redigo as its one non-test dependency: copy a recipe into
// your own code, or import this package, and go-redis and the Prometheus
// client come with it, not with leader.
package recipes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"
)

// DialFromGoRedis returns a function for leader.Config.Dial that opens
// redigo connections with the settings of opt, the options of a go-redis
// client (from goredis.ParseURL, say, or client.Options()), so that a
// service configures Redis once for both libraries. opt must not be nil.
//
// Set Config.DB to opt.DB: pub/sub ignores the DB, so the Elector checks
// that every connection Dial returns is on Config.DB, and Run fails if not.
//
// The fields it carries over, read once when DialFromGoRedis is called:
//
//   - Network and Addr, with go-redis's defaults: "localhost:6379", and
//     "unix" for an Addr that starts with "/".
//   - Dialer, when set, opens the network connection, and TLSConfig is then
//     left to it, as go-redis does; otherwise TLSConfig, when set, makes the
//     connection TLS (its ServerName defaults to Addr's host).
//   - Username and Password, or CredentialsProviderContext or
//     CredentialsProvider, in go-redis's order of precedence; a provider is
//     asked again on every dial, so an Elector that redials gets rotated
//     credentials. StreamingCredentialsProvider is not supported: every
//     dial then fails with an error that says so, rather than
//     unauthenticated.
//   - DB and ClientName.
//   - DialTimeout, when positive, bounds the TCP connect (by redigo's
//     dialer; a Dialer of your own bounds itself) and the TLS handshake.
//     Whatever it is, the deadline of the context the Elector passes (the
//     larger of PeerTimeout and 1s) bounds the connect, the handshake, and
//     the AUTH, CLIENT SETNAME and SELECT that follow.
//   - ReadTimeout and WriteTimeout only when positive. go-redis reads 0 as
//     its default (5s in go-redis v9.23, 3s in older v9 releases) and -1
//     or -2 as none; here all of those leave redigo's per-connection
//     timeout unset, on purpose. The Elector gives every read its own
//     timeout, PeerTimeout, through redis.ConnWithTimeout, which overrides
//     the connection's, so a read timeout copied from go-redis would change
//     nothing but the fallback for plain Do and Receive. Writes have no
//     bound of their own then: one that blocks (a send buffer full of
//     requests to a server that stopped answering) waits until the read of
//     an earlier reply times out, which makes redigo close the connection
//     and so ends the write. For a tighter bound set WriteTimeout, to
//     PeerTimeout say, which is what the Elector uses when it dials Addr.
//
// Everything else is ignored: Protocol (redigo speaks RESP2), OnConnect
// (it takes a go-redis connection), the pool, retry and buffer settings
// (the Elector keeps two connections and redials them itself), and
// go-redis's CLIENT SETINFO identity.
//
// The connections are redigo's own, so they support redis.ConnWithTimeout
// as leader.Config.Dial asks.
func DialFromGoRedis(opt *goredis.Options) func(ctx context.Context) (redis.Conn, error) {
	network, addr := opt.Network, opt.Addr
	if addr == "" {
		addr = "localhost:6379"
	}
	if network == "" {
		network = "tcp"
		if strings.HasPrefix(addr, "/") {
			network = "unix"
		}
	}
	streaming := opt.StreamingCredentialsProvider != nil
	credsCtx, creds := opt.CredentialsProviderContext, opt.CredentialsProvider
	username, password := opt.Username, opt.Password

	// Options that do not depend on the dial are built once.
	var base []redis.DialOption
	base = append(base, redis.DialDatabase(opt.DB))
	if opt.ClientName != "" {
		base = append(base, redis.DialClientName(opt.ClientName))
	}
	if opt.Dialer != nil {
		// redigo's DialContextFunc has go-redis's Dialer signature. A
		// custom Dialer does its own TLS in go-redis, so it does here.
		base = append(base, redis.DialContextFunc(opt.Dialer))
	} else if opt.TLSConfig != nil {
		// redigo clones the config before it fills in ServerName, so a
		// config shared with a go-redis client is not modified.
		base = append(base, redis.DialUseTLS(true), redis.DialTLSConfig(opt.TLSConfig))
	}
	tlsOwn := opt.Dialer == nil && opt.TLSConfig != nil // redigo does the handshake
	dialTimeout := opt.DialTimeout
	if dialTimeout > 0 {
		base = append(base, redis.DialConnectTimeout(dialTimeout), redis.DialTLSHandshakeTimeout(dialTimeout))
	}
	if d := opt.ReadTimeout; d > 0 {
		base = append(base, redis.DialReadTimeout(d))
	}
	if d := opt.WriteTimeout; d > 0 {
		base = append(base, redis.DialWriteTimeout(d))
	}

	return func(ctx context.Context) (redis.Conn, error) {
		if streaming {
			return nil, errors.New("recipes: go-redis StreamingCredentialsProvider is not supported: set CredentialsProviderContext, or Username and Password")
		}
		user, pass := username, password
		switch {
		case credsCtx != nil:
			var err error
			if user, pass, err = credsCtx(ctx); err != nil {
				return nil, fmt.Errorf("recipes: go-redis CredentialsProviderContext: %w", err)
			}
		case creds != nil:
			user, pass = creds()
		}
		dialOpts := append([]redis.DialOption(nil), base...)
		// redigo's TLS handshake ignores the context (it has a timeout of
		// its own, 10s by default), so the context's deadline is passed on
		// as that timeout: a dial must not outlast the Elector's deadline.
		if dl, ok := ctx.Deadline(); ok && tlsOwn {
			d := time.Until(dl)
			if d <= 0 {
				return nil, context.DeadlineExceeded
			}
			if dialTimeout > 0 {
				d = min(d, dialTimeout)
			}
			dialOpts = append(dialOpts, redis.DialTLSHandshakeTimeout(d))
		}
		// redigo sends AUTH only with a password, as go-redis does.
		dialOpts = append(dialOpts, redis.DialUsername(user), redis.DialPassword(pass))
		return redis.DialContext(ctx, network, addr, dialOpts...)
	}
}
