package cache

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Options.
const (
	DefaultMemoryBytes   = 64 << 20
	DefaultMaxEntryBytes = 1 << 20
	DefaultTTL           = 10 * time.Minute
	// DefaultRedisTimeout bounds one Redis call; past it the lookup is a miss.
	DefaultRedisTimeout = 250 * time.Millisecond
	// redisPrefix leads every key the cache writes.
	redisPrefix = "infergate:cache:"
	// maxRedisWrites bounds the writes to Redis in flight; past it an
	// answer is kept in memory only.
	maxRedisWrites = 64
	redisPoolSize  = 32
)

// RedisOptions name the redis-server the entries are shared through.
type RedisOptions struct {
	Addr               string
	Username, Password string
	TLS                *tls.Config
	Timeout            time.Duration // DefaultRedisTimeout
}

// Options configure a Store.
type Options struct {
	MemoryBytes   int64         // DefaultMemoryBytes
	MaxEntryBytes int64         // DefaultMaxEntryBytes
	TTL           time.Duration // DefaultTTL
	// Redis, when set, also keeps entries in Redis.
	Redis  *RedisOptions
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Store is the exact cache: memory first, then Redis when configured.
type Store struct {
	mem      *memory
	maxEntry int64
	ttl      time.Duration
	redis    *redis.Client
	timeout  time.Duration
	writes   chan struct{}
	log      *slog.Logger
	now      func() time.Time
}

// NewStore returns a store. With Redis it checks the server accepts the
// credentials: a refusal is an error, an unreachable server is not (the
// cache misses until it is back).
func NewStore(o Options) (*Store, error) {
	if o.MemoryBytes <= 0 {
		o.MemoryBytes = DefaultMemoryBytes
	}
	if o.MaxEntryBytes <= 0 {
		o.MaxEntryBytes = min(DefaultMaxEntryBytes, o.MemoryBytes)
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{mem: newMemory(o.MemoryBytes, o.TTL), maxEntry: o.MaxEntryBytes, ttl: o.TTL, log: o.Logger, now: o.Now}
	if r := o.Redis; r != nil {
		if r.Timeout <= 0 {
			r.Timeout = DefaultRedisTimeout
		}
		s.timeout = r.Timeout
		s.writes = make(chan struct{}, maxRedisWrites)
		s.redis = redis.NewClient(&redis.Options{Addr: r.Addr, Username: r.Username, Password: r.Password, TLSConfig: r.TLS,
			DialTimeout: r.Timeout, ReadTimeout: r.Timeout, WriteTimeout: r.Timeout, PoolTimeout: r.Timeout, PoolSize: redisPoolSize,
			MaxRetries: -1, DialerRetries: 1, DialerRetryTimeout: time.Millisecond, ContextTimeoutEnabled: true})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.redis.Ping(ctx).Err(); err != nil {
			var re redis.Error
			if errors.As(err, &re) {
				_ = s.redis.Close()
				return nil, fmt.Errorf("cache: redis %s refused the connection: %w", r.Addr, err)
			}
			s.log.Warn("response cache: redis not reachable; answers are kept in memory until it is", "addr", r.Addr, "err", err)
		}
	}
	return s, nil
}

// MaxEntryBytes is the largest body stored.
func (s *Store) MaxEntryBytes() int64 { return s.maxEntry }

// Get returns the entry stored under k.
func (s *Store) Get(ctx context.Context, k Key) (*Entry, bool) {
	now := s.now()
	if e, ok := s.mem.get(k, now); ok {
		return e, true
	}
	if s.redis == nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	name := redisKey(k)
	pipe := s.redis.Pipeline()
	get := pipe.Get(ctx, name)
	ttl := pipe.PTTL(ctx, name)
	if _, err := pipe.Exec(ctx); err != nil {
		if !errors.Is(err, redis.Nil) {
			s.log.Debug("response cache: redis get", "err", err)
		}
		return nil, false
	}
	b, err := get.Bytes()
	if err != nil {
		return nil, false
	}
	e, err := unmarshalEntry(b)
	if err != nil {
		s.log.Warn("response cache: dropping a malformed redis entry")
		return nil, false
	}
	var expires time.Time
	if d, err := ttl.Result(); err == nil && d > 0 {
		expires = now.Add(d) // not longer here than it lives in Redis
	}
	s.mem.put(k, e, now, expires)
	return e, true
}

// Put stores e under k (in Redis in the background). An entry over the
// size bound is not stored.
func (s *Store) Put(k Key, e *Entry) bool {
	if int64(len(e.Body)) > s.maxEntry {
		return false
	}
	s.mem.put(k, e, s.now(), time.Time{})
	if s.redis == nil {
		return true
	}
	select {
	case s.writes <- struct{}{}:
	default:
		return true // Redis is behind: memory only
	}
	v := e.marshal()
	go func() {
		defer func() { <-s.writes }()
		ctx, cancel := context.WithTimeout(context.Background(), 2*s.timeout)
		defer cancel()
		if err := s.redis.Set(ctx, redisKey(k), v, s.ttl).Err(); err != nil {
			s.log.Debug("response cache: redis set", "err", err)
		}
	}()
	return true
}

// Stats returns the entries and bytes held in memory.
func (s *Store) Stats() (entries int, bytes int64) { return s.mem.stats() }

// Close closes the Redis connections, if any.
func (s *Store) Close() error {
	if s.redis == nil {
		return nil
	}
	return s.redis.Close()
}

func redisKey(k Key) string {
	var b [len(redisPrefix) + 2*len(k)]byte
	n := copy(b[:], redisPrefix)
	hex.Encode(b[n:], k[:])
	return string(b[:])
}
