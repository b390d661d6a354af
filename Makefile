# redraft/leader: leader election over Redis pub/sub.
#
#   make test         the tests, under the race detector, against a real redis-server
#   make lint         gofmt, go vet, and a go.mod tidiness check
#   make chaos        the failover benchmark under real faults (the main job)
#   make chaos-quick  every chaos scenario once, for CI
#   make chaos-both   every chaos scenario for the library and the Redis lock baseline, side by side
#   make sweep        scale sweep: 3 to 129 node processes on one Redis (about 4.5 min on 2 cores)
#   make sweep-groups 3 processes, each running G Electors (groups g0..) over ONE shared leader.Link, for G in SWEEP_GROUPS
#                     (1,10,100,1000): connections per process, Redis and node CPU, spurious changes, failover (about 5 min on 2 cores)
#   make crowd        one group of P x E Electors (CROWD=5x205: 5 processes of 205, one Link each): CPU, messages, failover (1 to 2 min)
#   make soak         10 minutes of 5 nodes under latency and periodic flaps: flat memory and goroutines? (SOAK=10m)
#   make bench        hot-path benchmarks of leader.go
#   make fuzz         fuzz the decoder and the state machine (FUZZTIME=5m)
#   make sim          the deterministic simulator: SIM_N random schedules of the real core (default 100000)

GO ?= go
CHAOS_FLAGS ?=

SWEEP ?= 3,5,9,17,33,65,129
SWEEP_GROUPS ?= 1,10,100,1000
CROWD ?= 5x205
SOAK ?= 10m
FUZZTIME ?= 5m
SIM_N ?= 100000

.PHONY: all test lint bench fuzz sim chaos chaos-quick chaos-both sweep sweep-groups crowd soak redis tidy-check

all: lint test

redis:
	@bash scripts/ensure-redis.sh >/dev/null

test: redis
	$(GO) test -race -count=1 ./...
	cd chaos && $(GO) test -race -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd chaos && $(GO) vet ./...
	@$(MAKE) --no-print-directory tidy-check

tidy-check:
	@cp go.mod /tmp/leader.go.mod.bak; cp go.sum /tmp/leader.go.sum.bak; \
	  $(GO) mod tidy; \
	  if ! cmp -s go.mod /tmp/leader.go.mod.bak || ! cmp -s go.sum /tmp/leader.go.sum.bak; then \
	    echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit"; \
	    cp /tmp/leader.go.mod.bak go.mod; cp /tmp/leader.go.sum.bak go.sum; exit 1; fi

bench: redis
	$(GO) test -run '^$$' -bench . -benchmem -count=1 .

# A finding lands in testdata/fuzz/FuzzMessage/ (git-ignored: the top level
# of the repository is fixed); keep it as an f.Add seed in FuzzMessage.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzMessage$$' -fuzztime $(FUZZTIME) .

# Without -race: the simulator is deterministic and single-threaded per
# schedule, and make test already runs its bounded share under -race.
# A failing seed replays with: go test -run '^TestSim$$' -sim.seed N -v .
sim:
	$(GO) test -run '^TestSim$$' -count=1 -v -sim.n $(SIM_N) -sim.time 60m .

chaos: redis
	cd chaos && $(GO) run . $(CHAOS_FLAGS)

chaos-quick: redis
	cd chaos && $(GO) run . -quick $(CHAOS_FLAGS)

chaos-both: redis
	cd chaos && $(GO) run . -algo both $(CHAOS_FLAGS)

sweep: redis
	cd chaos && $(GO) run . -sweep $(SWEEP) $(CHAOS_FLAGS)

sweep-groups: redis
	cd chaos && $(GO) run . -sweep-groups $(SWEEP_GROUPS) $(CHAOS_FLAGS)

crowd: redis
	cd chaos && $(GO) run . -crowd $(CROWD) $(CHAOS_FLAGS)

soak: redis
	cd chaos && $(GO) run . -soak $(SOAK) $(CHAOS_FLAGS)
