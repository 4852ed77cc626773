//go:build !cgo

package collector

import (
	"context"
	"errors"
	"testing"
)

func TestNoCgoReportsUnavailable(t *testing.T) {
	c := New(nil, Config{})
	snap, err := c.Collect(context.Background())
	if !errors.Is(err, ErrUnavailable) || snap.Available || snap.Devices == nil || !snap.Healthy() {
		t.Fatalf("without cgo: %+v %v", snap, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Watch(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch: %v", err)
	}
}
