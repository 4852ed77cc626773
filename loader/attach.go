package loader

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// XDPMode selects how a program attaches.
type XDPMode int

const (
	XDPAuto    XDPMode = iota // native, falling back to generic
	XDPNative                 // driver mode
	XDPGeneric                // skb mode
)

// AttachXDP attaches prog to the interface; closing the link detaches it.
func AttachXDP(prog *ebpf.Program, ifindex int, mode XDPMode) (link.Link, error) {
	try := func(f link.XDPAttachFlags) (link.Link, error) {
		return link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: f})
	}
	switch mode {
	case XDPNative:
		l, err := try(link.XDPDriverMode)
		if err != nil {
			return nil, fmt.Errorf("loader: attach XDP (native) to ifindex %d: %w", ifindex, err)
		}
		return l, nil
	case XDPGeneric:
		l, err := try(link.XDPGenericMode)
		if err != nil {
			return nil, fmt.Errorf("loader: attach XDP (generic) to ifindex %d: %w", ifindex, err)
		}
		return l, nil
	}
	l, err := try(link.XDPDriverMode)
	if err == nil {
		return l, nil
	}
	l, err2 := try(link.XDPGenericMode)
	if err2 != nil {
		return nil, fmt.Errorf("loader: attach XDP to ifindex %d: native: %v; generic: %w", ifindex, err, err2)
	}
	return l, nil
}
