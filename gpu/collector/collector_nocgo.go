//go:build !cgo

package collector

import (
	"context"
	"log/slog"
)

// Collector without cgo: go-nvml needs cgo to load libnvidia-ml, so a
// binary built with CGO_ENABLED=0 reports without GPU metrics.
type Collector struct {
	cfg Config
	err error
}

// New returns a Collector that says NVML is unavailable, logging it once.
func New(log *slog.Logger, cfg Config) *Collector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	err := &UnavailableError{Reason: "built without cgo; reporting without GPU metrics"}
	log.Warn("nvml unavailable", "reason", err.Reason)
	return &Collector{cfg: cfg.withDefaults(), err: err}
}

// Collect returns an empty snapshot and ErrUnavailable.
func (c *Collector) Collect(ctx context.Context) (Snapshot, error) {
	return Snapshot{Time: c.cfg.Now(), Status: c.err.Error(), Devices: []Device{}}, c.err
}

// Watch waits for ctx.
func (c *Collector) Watch(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// Close does nothing.
func (c *Collector) Close() error { return nil }
