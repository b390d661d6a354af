package recipes_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/redraft/leader"
	"github.com/redraft/leader/chaos/recipes"
)

// ExampleDialFromGoRedis configures an Elector from the URL a service
// already gives go-redis.
func ExampleDialFromGoRedis() {
	opt, err := goredis.ParseURL("redis://elector:secret@localhost:6379/3")
	if err != nil {
		log.Fatal(err)
	}
	e, err := leader.New(leader.Config{
		Dial:  recipes.DialFromGoRedis(opt),
		DB:    opt.DB, // the Elector checks that Dial's connections are on Config.DB
		Group: "billing",
		OnStartedLeading: func(ctx context.Context, term uint64) {
			// Leader-only work, until ctx ends.
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		if err := e.Run(ctx); err != nil {
			log.Print(err)
		}
	}()
}

// The ACL of the test servers: the default user needs adminPassword, and
// user elector (password electorPassword) may do anything.
const (
	adminPassword   = "adminpw"
	electorUser     = "elector"
	electorPassword = "s3cret"
)

var aclArgs = []string{"--requirepass", adminPassword,
	"--user", electorUser, "on", ">" + electorPassword, "~*", "&*", "+@all"}

// adminConn dials addr as the default user, on db, without DialFromGoRedis.
func adminConn(t *testing.T, addr string, db int) redis.Conn {
	t.Helper()
	c, err := redis.Dial("tcp", addr, redis.DialPassword(adminPassword), redis.DialDatabase(db),
		redis.DialReadTimeout(2*time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// dial calls DialFromGoRedis(opt) with a deadline, as the Elector does,
// and closes the connection when the test ends.
func dial(t *testing.T, opt *goredis.Options) (redis.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := recipes.DialFromGoRedis(opt)(ctx)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func TestDialFromGoRedis(t *testing.T) {
	// The socket's path must fit in sun_path (108 bytes); TempDir's may not.
	sockDir, err := os.MkdirTemp("", "recipes")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "redis.sock")
	addr := startRedis(t, slices.Concat(aclArgs, []string{"--unixsocket", sock, "--unixsocketperm", "700"})...)

	t.Run("user, password, DB and name", func(t *testing.T) {
		c, err := dial(t, &goredis.Options{Addr: addr, Username: electorUser, Password: electorPassword,
			DB: 3, ClientName: "recipes-test"})
		require.NoError(t, err)
		_, ok := c.(redis.ConnWithTimeout)
		require.True(t, ok, "got %T; want a redis.ConnWithTimeout, as leader.Config.Dial asks", c)

		info, err := redis.String(c.Do("CLIENT", "INFO"))
		require.NoError(t, err)
		require.Contains(t, info, " db=3 ")
		require.Contains(t, info, " user="+electorUser+" ")
		require.Contains(t, info, " name=recipes-test ")

		// What it writes lands on DB 3 and on no other.
		_, err = c.Do("SET", "recipes:dial", "on db 3")
		require.NoError(t, err)
		got, err := redis.String(adminConn(t, addr, 3).Do("GET", "recipes:dial"))
		require.NoError(t, err)
		require.Equal(t, "on db 3", got)
		n, err := redis.Int(adminConn(t, addr, 0).Do("EXISTS", "recipes:dial"))
		require.NoError(t, err)
		require.Zero(t, n, "the key is on DB 0 too")
	})

	t.Run("wrong password", func(t *testing.T) {
		_, err := dial(t, &goredis.Options{Addr: addr, Username: electorUser, Password: "wrong"})
		require.Error(t, err)
		require.Regexp(t, `WRONGPASS|invalid`, err.Error())
	})

	t.Run("credentials provider comes first", func(t *testing.T) {
		// As in go-redis, CredentialsProviderContext wins over the static
		// fields, which are wrong here; and it is asked on every dial.
		asked := 0
		opt := &goredis.Options{Addr: addr, Username: "nobody", Password: "wrong",
			CredentialsProviderContext: func(ctx context.Context) (string, string, error) {
				asked++
				return electorUser, electorPassword, nil
			}}
		for range 2 {
			c, err := dial(t, opt)
			require.NoError(t, err)
			who, err := redis.String(c.Do("ACL", "WHOAMI"))
			require.NoError(t, err)
			require.Equal(t, electorUser, who)
		}
		require.Equal(t, 2, asked, "got %d calls of the provider for 2 dials; want 2", asked)

		failing := &goredis.Options{Addr: addr, CredentialsProviderContext: func(ctx context.Context) (string, string, error) {
			return "", "", errors.New("vault sealed")
		}}
		_, err := dial(t, failing)
		require.ErrorContains(t, err, "vault sealed")
	})

	t.Run("unix socket", func(t *testing.T) {
		// No Network: an Addr that starts with "/" means a unix socket,
		// as in go-redis.
		c, err := dial(t, &goredis.Options{Addr: sock, Username: electorUser, Password: electorPassword})
		require.NoError(t, err)
		pong, err := redis.String(c.Do("PING"))
		require.NoError(t, err)
		require.Equal(t, "PONG", pong)
	})

	t.Run("read timeout only when positive", func(t *testing.T) {
		c, err := dial(t, &goredis.Options{Addr: addr, Username: electorUser, Password: electorPassword,
			ReadTimeout: 100 * time.Millisecond})
		require.NoError(t, err)
		start := time.Now()
		_, err = c.Do("BLPOP", "recipes:empty", "2")
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		require.True(t, ne.Timeout(), "got %v; want a timeout", err)
		require.Less(t, time.Since(start), time.Second)

		// go-redis's 0 (its default) and -1 (none) set no read timeout:
		// a reply 200ms away is waited for.
		for _, d := range []time.Duration{0, -1} {
			c, err := dial(t, &goredis.Options{Addr: addr, Username: electorUser, Password: electorPassword,
				ReadTimeout: d})
			require.NoError(t, err)
			v, err := c.Do("BLPOP", "recipes:empty", "0.2")
			require.NoError(t, err, "ReadTimeout %v", d)
			require.Nil(t, v)
		}
	})
}

func TestDialFromGoRedisTLS(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t)
	addr := startRedisTLS(t, certFile, keyFile, &tls.Config{RootCAs: pool})

	c, err := dial(t, &goredis.Options{Addr: addr, TLSConfig: &tls.Config{RootCAs: pool}})
	require.NoError(t, err)
	pong, err := redis.String(c.Do("PING"))
	require.NoError(t, err)
	require.Equal(t, "PONG", pong)

	// Without TLSConfig the same port does not answer: TLS above was the
	// recipe's doing. (The dial itself sends nothing to fail on.)
	c, err = dial(t, &goredis.Options{Addr: addr})
	require.NoError(t, err)
	_, err = c.(redis.ConnWithTimeout).DoWithTimeout(time.Second, "PING")
	require.Error(t, err, "a plaintext PING got an answer from the TLS port")
}

func TestDialFromGoRedisTLSHandshakeDeadline(t *testing.T) {
	// A server that accepts and never answers the handshake: the dial
	// must end at the context's deadline, not at redigo's own 10s.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	t.Cleanup(func() {
		l.Close()
		for c := range accepted {
			c.Close()
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = recipes.DialFromGoRedis(&goredis.Options{Addr: l.Addr().String(), TLSConfig: &tls.Config{}})(ctx)
	require.Error(t, err)
	require.Less(t, time.Since(start), 3*time.Second, "the dial outlasted its context (%v)", err)
}

// selfSignedCert writes a self-signed certificate for 127.0.0.1 and its key
// as PEM files, and returns them with a pool that trusts the certificate.
func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "recipes test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)

	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestElectorWithDialFromGoRedis(t *testing.T) {
	addr := startRedis(t, aclArgs...)
	opt := &goredis.Options{Addr: addr, Username: electorUser, Password: electorPassword, DB: 3}
	const group = "recipes-goredis"

	e, err := leader.New(fastTimings(leader.Config{
		Dial:   recipes.DialFromGoRedis(opt),
		DB:     opt.DB,
		Group:  group,
		Logger: testLogger(t),
	}))
	require.NoError(t, err)
	stop := runElector(t, e)
	waitLeader(t, e)

	// The term key is where the connections Dial opened are: on DB 3, and
	// nothing is on DB 0.
	term, err := redis.Uint64(adminConn(t, addr, 3).Do("GET", "leader:db3:{"+group+"}:term"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, term, uint64(1))
	n, err := redis.Int(adminConn(t, addr, 0).Do("DBSIZE"))
	require.NoError(t, err)
	require.Zero(t, n, "got %d keys on DB 0; want none", n)

	require.NoError(t, stop())
	require.False(t, e.IsLeader(), "still leader after Run returned")
}

func TestElectorWithDialFromGoRedisWrongDB(t *testing.T) {
	// A Config.DB that is not opt.DB ends Run at the first dial, which is
	// why the example and the doc say to copy it.
	addr := startRedis(t, aclArgs...)
	opt := &goredis.Options{Addr: addr, Username: electorUser, Password: electorPassword, DB: 3}
	e, err := leader.New(fastTimings(leader.Config{Dial: recipes.DialFromGoRedis(opt), Logger: testLogger(t)}))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = e.Run(ctx)
	require.ErrorContains(t, err, "Config.DB")
	require.NoError(t, ctx.Err(), "Run returned only when its context ended")
}

// testLogger sends an Elector's logs to t.Log, shown when a test fails.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
