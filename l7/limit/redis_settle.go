package limit

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Settlements that cannot reach Redis when they are made wait here and are
// retried, oldest first, with backoff, until they land or the settle
// horizon passes. Retrying is safe because the settle script is idempotent
// by ticket: a copy that already landed changes nothing.

const (
	// drainBatch is how many queued settlements one round trip carries.
	drainBatch = 128
	// retryMin and retryMax bound the backoff between delivery attempts
	// while Redis does not answer.
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

// settleQueue is a bounded FIFO of settlements waiting for Redis.
type settleQueue struct {
	mu    sync.Mutex
	calls []settleCall
	max   int
	wake  chan struct{}
}

func (q *settleQueue) init(max int) {
	q.max = max
	q.wake = make(chan struct{}, 1)
}

func (q *settleQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.calls)
}

// take removes up to n settlements from the front.
func (q *settleQueue) take(n int) []settleCall {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.calls))
	out := make([]settleCall, n)
	copy(out, q.calls)
	q.calls = append(q.calls[:0], q.calls[n:]...)
	return out
}

// putBack returns undelivered settlements to the front, in order.
func (q *settleQueue) putBack(cs []settleCall) {
	if len(cs) == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls = append(cs[:len(cs):len(cs)], q.calls...)
}

// enqueue queues c for delivery; false when the queue is full (c is lost:
// its slot still frees within the lease TTL, its correction does not land).
func (r *Redis) enqueue(c settleCall) bool {
	c.queued = time.Now()
	q := &r.queue
	if r.closed.Load() {
		// Close has drained (or is draining) for the last time.
		r.log.Error("limit store closed; settlement dropped", "ticket", c.t.id)
		return false
	}
	q.mu.Lock()
	full := len(q.calls) >= q.max
	if !full {
		q.calls = append(q.calls, c)
	}
	q.mu.Unlock()
	if full {
		r.log.Error("limit store settlement queue full; settlement dropped", "ticket", c.t.id)
		return false
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// drainLoop delivers queued settlements in the background until Close.
func (r *Redis) drainLoop() {
	defer r.wg.Done()
	backoff := retryMin
	var next time.Time // no attempt before this
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-r.stop:
			timer.Stop()
			return
		case <-r.queue.wake:
			if time.Now().Before(next) {
				continue // the timer is set for next
			}
		case <-timer.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*r.timeout)
		err := r.drain(ctx)
		cancel()
		if err == nil {
			backoff, next = retryMin, time.Time{}
			continue
		}
		next = time.Now().Add(backoff)
		timer.Reset(backoff)
		backoff = min(2*backoff, retryMax)
	}
}

// drain delivers queued settlements until the queue is empty or a round
// trip fails (the undelivered ones go back to the front).
func (r *Redis) drain(ctx context.Context) error {
	for {
		batch := r.queue.take(drainBatch)
		if len(batch) == 0 {
			return nil
		}
		if err := r.deliver(ctx, r.expire(batch)); err != nil {
			return err
		}
	}
}

// drainBefore keeps draining, with backoff, until the queue is empty or ctx
// ends; it returns how many settlements are left (and lost).
func (r *Redis) drainBefore(ctx context.Context) int {
	backoff := retryMin
	for r.drain(ctx) != nil {
		select {
		case <-ctx.Done():
			return r.queue.len()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, retryMax)
	}
	return r.queue.len()
}

// expire drops settlements older than the settle horizon: their tickets
// may be gone from Redis, so delivering them could no longer be exact.
func (r *Redis) expire(batch []settleCall) []settleCall {
	kept := batch[:0]
	for _, c := range batch {
		if time.Since(c.queued) > settleHorizon {
			r.log.Error("limit store settlement dropped: Redis did not answer within the settle horizon",
				"ticket", c.t.id, "horizon", settleHorizon)
			continue
		}
		kept = append(kept, c)
	}
	return kept
}

// deliver runs batch's settlements in one pipeline. Those that fail for
// want of Redis go back to the queue; one the server refuses for another
// reason is dropped and logged, since retrying it would fail the same way.
func (r *Redis) deliver(ctx context.Context, batch []settleCall) error {
	if len(batch) == 0 {
		return nil
	}
	now := r.nowArg()
	run := func() ([]*redis.Cmd, error) {
		pipe := r.client.Pipeline()
		cmds := make([]*redis.Cmd, len(batch))
		for i, c := range batch {
			cmds[i] = pipe.EvalSha(ctx, r.settle.Hash(), c.t.keys, c.args(now)...)
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if lerr := r.settle.Load(ctx, r.client).Err(); lerr != nil {
			r.queue.putBack(batch)
			return lerr
		}
		cmds, err = run() // idempotent: what landed the first time is not applied again
	}
	if err == nil {
		return nil
	}
	var retry []settleCall
	var first error
	for i, cmd := range cmds {
		cerr := cmd.Err()
		switch {
		case cerr == nil:
		case isServerRefusal(cerr):
			r.log.Error("limit store refused a settlement; dropped", "ticket", batch[i].t.id, "err", cerr)
		default:
			retry = append(retry, batch[i])
			if first == nil {
				first = cerr
			}
		}
	}
	r.queue.putBack(retry)
	return first
}

// isServerRefusal reports an error reply that retrying will not cure: a
// script error. Other replies (a busy or loading server, a failover, a
// missing script, credentials refused until an operator fixes them) are
// retried like a lost connection, within the settle horizon.
func isServerRefusal(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && redis.HasErrorPrefix(err, "ERR")
}
