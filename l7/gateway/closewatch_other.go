//go:build !linux

package gateway

import "errors"

func newCloseWatch() *closeWatch { return nil }

func (w *closeWatch) register(int, uint64) error { return errors.ErrUnsupported }
