package netns

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// AttachPass attaches a two-instruction XDP_PASS program to ifname in ns.
//
// A veth drops frames that its peer sends with XDP_TX unless the receiving
// end runs an XDP program too (see shared/machine-notes.md), so every switch
// port that faces a balancer needs one. The attachment is a plain netlink
// one, not a bpf_link: it lasts as long as the interface, which is exactly as
// long as the namespace.
func (t *Topology) AttachPass(ns, ifname string) error {
	return Do(ns, func() error {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name: "xdp_pass",
			Type: ebpf.XDP,
			Instructions: asm.Instructions{
				asm.Mov.Imm(asm.R0, 2), // XDP_PASS
				asm.Return(),
			},
			License: "GPL",
		})
		if err != nil {
			return fmt.Errorf("load xdp_pass: %w", err)
		}
		defer prog.Close()
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("%s in %s: %w", ifname, ns, err)
		}
		if err := netlink.LinkSetXdpFdWithFlags(link, prog.FD(), unix.XDP_FLAGS_DRV_MODE); err != nil {
			return fmt.Errorf("attach xdp_pass to %s in %s: %w", ifname, ns, err)
		}
		return nil
	})
}
