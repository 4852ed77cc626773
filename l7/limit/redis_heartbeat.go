package limit

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tickets in flight are renewed by heartbeat: every LeaseTTL/3 one
// pipelined round trip pushes each one's slots to now + LeaseTTL (never
// past its admission + Lease) and keeps its ticket key. A gateway that dies
// stops renewing, and its slots free within LeaseTTL, not Lease.

const liveShards = 16

// liveSet holds the tickets admitted and not yet settled.
type liveSet struct {
	shards [liveShards]struct {
		mu sync.Mutex
		m  map[*redisTicket]struct{}
	}
}

func (s *liveSet) init() {
	for i := range s.shards {
		s.shards[i].m = make(map[*redisTicket]struct{})
	}
}

func (s *liveSet) add(t *redisTicket) {
	sh := &s.shards[t.seq%liveShards]
	sh.mu.Lock()
	sh.m[t] = struct{}{}
	sh.mu.Unlock()
}

func (s *liveSet) remove(t *redisTicket) {
	sh := &s.shards[t.seq%liveShards]
	sh.mu.Lock()
	delete(sh.m, t)
	sh.mu.Unlock()
}

func (s *liveSet) snapshot(dst []*redisTicket) []*redisTicket {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for t := range sh.m {
			dst = append(dst, t)
		}
		sh.mu.Unlock()
	}
	return dst
}

// heartbeatLoop renews the tickets in flight until Close.
func (r *Redis) heartbeatLoop() {
	defer r.wg.Done()
	tick := time.NewTicker(r.beat)
	defer tick.Stop()
	var buf []*redisTicket
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
		buf = r.live.snapshot(buf[:0])
		ctx, cancel := context.WithTimeout(context.Background(), r.beat)
		if err := r.heartbeat(ctx, buf); err != nil {
			// The next beat tries again; two lost beats still leave a third
			// of the TTL.
			r.log.Warn("limit store heartbeat failed", "tickets", len(buf), "err", err)
		}
		cancel()
		clear(buf)
	}
}

// heartbeat renews tickets, drainBatch per round trip.
func (r *Redis) heartbeat(ctx context.Context, tickets []*redisTicket) error {
	for len(tickets) > 0 {
		n := min(len(tickets), drainBatch)
		if err := r.renewBatch(ctx, tickets[:n]); err != nil {
			return err
		}
		tickets = tickets[n:]
	}
	return nil
}

func (r *Redis) renewBatch(ctx context.Context, tickets []*redisTicket) error {
	now := r.nowArg()
	run := func() error {
		pipe := r.client.Pipeline()
		for _, t := range tickets {
			pipe.EvalSha(ctx, r.renew.Hash(), []string{t.keys[4], t.keys[1], t.keys[3]},
				now, t.id, r.ttl, r.maxLease, r.ticketTTL)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	err := run()
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err := r.renew.Load(ctx, r.client).Err(); err != nil {
			return err
		}
		err = run()
	}
	return err
}
