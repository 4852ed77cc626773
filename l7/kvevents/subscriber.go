package kvevents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/go-zeromq/zmq4"
)

// Sink receives one engine's stream.
type Sink interface {
	// Up: the subscription is (re)established; what was missed while it
	// was down is judged by the next sequence number.
	Up(backend string)
	// Apply: one batch, in order.
	Apply(backend string, seq uint64, b *Batch)
	// Down: the connection is lost (or could not be made).
	Down(backend string)
}

// Redial bounds.
const (
	minRedial = 100 * time.Millisecond
	maxRedial = 5 * time.Second
)

// Subscriber follows one engine's KV-event publisher.
type Subscriber struct {
	// Backend names the engine to the Sink ("pool/backend").
	Backend string
	// Endpoint is the publisher's address, tcp://host:port.
	Endpoint string
	// Topic filters by prefix ("" takes every topic, vLLM's default).
	Topic string
	Sink  Sink
	Log   *slog.Logger
}

// CheckEndpoint accepts tcp://host:port, the only transport the gateway
// dials (ipc and inproc name the engine's own host or process).
func CheckEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil || u.Scheme != "tcp" || u.Host == "" || u.Port() == "" || u.Path != "" || u.User != nil || u.RawQuery != "" {
		return fmt.Errorf("kvevents: endpoint %q is not tcp://host:port", ep)
	}
	if u.Hostname() == "*" {
		return fmt.Errorf("kvevents: endpoint %q binds rather than names a host", ep)
	}
	return nil
}

// Run subscribes until ctx ends, redialling with backoff after a loss.
// Malformed messages are logged (without content) and skipped; the index
// sees the skipped sequence number as a gap.
func (s *Subscriber) Run(ctx context.Context) error {
	if err := CheckEndpoint(s.Endpoint); err != nil {
		return err
	}
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	wait := minRedial
	for ctx.Err() == nil {
		got, err := s.once(ctx, log)
		if ctx.Err() != nil {
			return nil
		}
		if got {
			wait = minRedial
		}
		log.Debug("kv events: subscription lost", "backend", s.Backend, "endpoint", s.Endpoint, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, maxRedial)
	}
	return nil
}

// once dials, receives until the connection ends, and reports whether a
// message arrived.
func (s *Subscriber) once(ctx context.Context, log *slog.Logger) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// No dial retries inside zmq4: Run's backoff redials, and it must
	// see each failure to mark the backend down.
	sub := zmq4.NewSub(sctx, zmq4.WithDialerMaxRetries(0), zmq4.WithDialerTimeout(2*time.Second))
	defer sub.Close()
	if err := sub.Dial(s.Endpoint); err != nil {
		s.Sink.Down(s.Backend)
		return false, err
	}
	if err := sub.SetOption(zmq4.OptionSubscribe, s.Topic); err != nil {
		s.Sink.Down(s.Backend)
		return false, err
	}
	s.Sink.Up(s.Backend)
	defer s.Sink.Down(s.Backend)
	go func() { <-sctx.Done(); sub.Close() }()
	got := false
	for {
		msg, err := sub.Recv()
		if err != nil {
			return got, err
		}
		got = true
		m, err := DecodeMessage(msg.Frames)
		if err != nil {
			if errors.Is(err, ErrFrames) {
				log.Warn("kv events: message without three frames", "backend", s.Backend, "frames", len(msg.Frames))
			} else {
				log.Warn("kv events: undecodable batch", "backend", s.Backend, "err", err)
			}
			continue
		}
		s.Sink.Apply(s.Backend, m.Seq, &m.Batch)
	}
}
