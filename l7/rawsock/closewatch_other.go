//go:build !linux

package rawsock

import "errors"

func newWatcher() *Watcher { return nil }

func (w *Watcher) register(int, uint64) error { return errors.ErrUnsupported }
