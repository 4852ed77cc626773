package route

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Passive failure marking (outlier ejection, as Envoy's outlier detection
// does it): a backend whose upstream attempts fail Consecutive times in a
// row (connection refused or reset, a 5xx, a stream that broke off) is
// taken out of the pool's choice for a back-off period, so that a GPU host
// that dies is left alone from its first failures rather than from the
// health check's verdict seconds later. While marked it gets no new
// requests from the picker nor from power of two choices; it returns when
// the back-off ends (doubling with each marking in a row, up to
// MaxEjection) or when Reinstate is called (a health check that passes).
// Timeouts and 429s say nothing of the host's health (a busy engine is
// slow, not broken) and neither mark nor clear it. At most MaxFraction of
// a pool (at least one backend) is marked at once, so a fault shared by
// every backend (a bad deploy, the gateway's own network) never empties a
// pool.

// Defaults for OutlierConfig's zero fields.
const (
	// DefaultConsecutiveFailures is Envoy's consecutive_5xx default.
	DefaultConsecutiveFailures = 5
	// DefaultBaseEjection and DefaultMaxEjection are Envoy's
	// base_ejection_time and max_ejection_time defaults.
	DefaultBaseEjection = 30 * time.Second
	DefaultMaxEjection  = 300 * time.Second
	// DefaultMaxEjectedFraction: at most half a pool is marked out at
	// once (Envoy's 10% would mark none of a pool of four).
	DefaultMaxEjectedFraction = 0.5
)

// OutlierConfig tunes passive failure marking; zero fields take the
// defaults.
type OutlierConfig struct {
	// Disabled turns marking off: every backend stays eligible.
	Disabled bool
	// Consecutive failed attempts that mark a backend out.
	Consecutive int
	// BaseEjection is the first back-off; each further marking without a
	// success between doubles it, up to MaxEjection.
	BaseEjection, MaxEjection time.Duration
	// MaxFraction of a pool's backends marked out at once (at least one).
	MaxFraction float64
	// Now is the clock (default time.Now; the scheduling simulation's
	// runs on simulated time).
	Now func() time.Time
}

// Outliers holds the marking state of every backend, by address, so that
// a policy change keeps a backend that is down marked out (as InFlight
// keeps its count). The zero value is unusable: use NewOutliers.
type Outliers struct {
	cfg OutlierConfig
	m   sync.Map // netip.AddrPort -> *outlier
	mu  sync.Mutex
	// Ejections counts markings, for metrics and tests.
	ejections atomic.Uint64
}

// outlier is one backend address's state.
type outlier struct {
	// failures in a row since the last success or marking.
	failures atomic.Int32
	// until is when the marking ends (Unix ns); 0 while not marked, so
	// the hot path reads no clock for a healthy backend.
	until atomic.Int64
	// streak is how many markings in a row, for the back-off.
	streak atomic.Int32
}

// NewOutliers checks cfg and fills in its defaults.
func NewOutliers(cfg OutlierConfig) (*Outliers, error) {
	if cfg.Consecutive == 0 {
		cfg.Consecutive = DefaultConsecutiveFailures
	}
	if cfg.BaseEjection == 0 {
		cfg.BaseEjection = DefaultBaseEjection
	}
	if cfg.MaxEjection == 0 {
		cfg.MaxEjection = max(DefaultMaxEjection, cfg.BaseEjection)
	}
	if cfg.MaxFraction == 0 {
		cfg.MaxFraction = DefaultMaxEjectedFraction
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.Consecutive < 1 || cfg.Consecutive > 1000:
		return nil, fmt.Errorf("route: outlier consecutive failures %d outside 1..1000", cfg.Consecutive)
	case cfg.BaseEjection < 0 || cfg.MaxEjection < cfg.BaseEjection || cfg.MaxEjection > 24*time.Hour:
		return nil, fmt.Errorf("route: outlier ejection %v..%v out of range", cfg.BaseEjection, cfg.MaxEjection)
	case !(cfg.MaxFraction > 0 && cfg.MaxFraction <= 1):
		return nil, fmt.Errorf("route: outlier max fraction %v outside (0, 1]", cfg.MaxFraction)
	}
	return &Outliers{cfg: cfg}, nil
}

// Ejections is how many times a backend has been marked out.
func (o *Outliers) Ejections() uint64 { return o.ejections.Load() }

func (o *Outliers) state(a netip.AddrPort) *outlier {
	if v, ok := o.m.Load(a); ok {
		return v.(*outlier)
	}
	v, _ := o.m.LoadOrStore(a, new(outlier))
	return v.(*outlier)
}

// Reinstate ends a's marking (an active health check passed).
func (o *Outliers) Reinstate(a netip.AddrPort) {
	s := o.state(a)
	s.until.Store(0)
	s.failures.Store(0)
}

// Outcome is what one upstream attempt says of the backend's health.
type Outcome uint8

const (
	// OutcomeNeutral: nothing (a timeout, a 429, the client left).
	OutcomeNeutral Outcome = iota
	// OutcomeSuccess: the backend answered (any status below 500).
	OutcomeSuccess
	// OutcomeFailure: connection refused or reset, a 5xx, a broken stream.
	OutcomeFailure
)

// Ejected reports whether the backend is marked out now.
func (b *Backend) Ejected() bool {
	if b.outlier == nil {
		return false
	}
	u := b.outlier.until.Load()
	if u == 0 {
		return false
	}
	if b.outliers.cfg.Now().UnixNano() < u {
		return true
	}
	// The back-off is over: the backend takes requests again; its next
	// failures in a row mark it out for longer.
	b.outlier.until.CompareAndSwap(u, 0)
	return false
}

// Observe records the outcome of an attempt on the backend.
func (b *Backend) Observe(o Outcome) {
	s := b.outlier
	if s == nil {
		return
	}
	switch o {
	case OutcomeSuccess:
		// Loads before stores: a healthy backend's hot path writes no
		// shared cache line.
		if s.failures.Load() != 0 {
			s.failures.Store(0)
		}
		if s.streak.Load() != 0 && s.until.Load() == 0 {
			s.streak.Store(0)
		}
	case OutcomeFailure:
		if s.failures.Add(1) >= int32(b.outliers.cfg.Consecutive) {
			b.outliers.eject(b)
		}
	}
}

// eject marks b out unless it already is or the pool's cap is reached.
func (o *Outliers) eject(b *Backend) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := b.outlier
	now := o.cfg.Now().UnixNano()
	if u := s.until.Load(); u != 0 && now < u {
		return
	}
	if b.pool != nil {
		marked := 0
		for _, x := range b.pool.Backends {
			if x != b && x.Ejected() {
				marked++
			}
		}
		limit := max(1, int(o.cfg.MaxFraction*float64(len(b.pool.Backends))))
		if marked+1 > limit {
			return // failures keep counting; a later one retries the mark
		}
	}
	d := o.cfg.BaseEjection << min(s.streak.Load(), 16)
	if d > o.cfg.MaxEjection || d <= 0 {
		d = o.cfg.MaxEjection
	}
	s.streak.Add(1)
	s.failures.Store(0)
	s.until.Store(now + int64(d))
	o.ejections.Add(1)
}
