package loader

import (
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The rate limiter's clock is jiffies, which the verifier inlines (a helper
// call for bpf_ktime_get_coarse_ns costs 10-30 ns per packet on the VMs
// measured). The data plane computes now = jiffies * tick + offset (mod
// 2^64); calibrateClock finds tick (CLOCK_MONOTONIC_COARSE's resolution, one
// scheduler tick) and offset (so that now reads CLOCK_MONOTONIC_COARSE,
// which Go's idle expiry compares bucket stamps against). Both are fixed
// for the life of the kernel, so the calibration runs once per process.

// clockCalibrationTries bounds the retries when the high word of jiffies
// changes between its two reads (once per 2^32 ticks).
const clockCalibrationTries = 3

var (
	clockOnce   sync.Once
	clockTick   uint64
	clockOffset uint64
	clockErr    error
)

// rlClock returns the tick length and offset for the config, or an error
// (the data plane then falls back to bpf_ktime_get_coarse_ns).
func rlClock() (tick, offset uint64, err error) {
	clockOnce.Do(func() { clockTick, clockOffset, clockErr = calibrateClock() })
	return clockTick, clockOffset, clockErr
}

// jiffiesProg returns bpf_jiffies64() >> shift as an XDP verdict (test runs
// return 32 bits).
func jiffiesProg(shift int32) (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{
			asm.FnJiffies64.Call(),
			asm.RSh.Imm(asm.R0, shift),
			asm.Return(),
		}})
}

func calibrateClock() (uint64, uint64, error) {
	lo, err := jiffiesProg(0)
	if err != nil {
		return 0, 0, fmt.Errorf("loader: jiffies probe: %w", err)
	}
	defer lo.Close()
	hi, err := jiffiesProg(32)
	if err != nil {
		return 0, 0, fmt.Errorf("loader: jiffies probe: %w", err)
	}
	defer hi.Close()
	frame := make([]byte, 64) // test runs need at least an Ethernet header
	word := func(p *ebpf.Program) (uint32, error) {
		ret, err := p.Run(&ebpf.RunOptions{Data: frame})
		return ret, err
	}
	tick := coarseTick()
	for range clockCalibrationTries {
		h1, err := word(hi)
		if err != nil {
			return 0, 0, fmt.Errorf("loader: jiffies probe: %w", err)
		}
		now := monotonicNow()
		l, err := word(lo)
		if err != nil {
			return 0, 0, fmt.Errorf("loader: jiffies probe: %w", err)
		}
		h2, err := word(hi)
		if err != nil {
			return 0, 0, fmt.Errorf("loader: jiffies probe: %w", err)
		}
		if h1 != h2 {
			continue
		}
		j := uint64(h1)<<32 | uint64(l)
		return tick, now - j*tick, nil
	}
	return 0, 0, fmt.Errorf("loader: jiffies kept wrapping during calibration")
}
