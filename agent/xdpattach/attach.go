package xdpattach

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/loader"
	"github.com/infergate/infergate/policy"
)

// xdpAttachedSKB is IFLA_XDP_ATTACHED's value for generic (skb) mode
// (XDP_ATTACHED_SKB in linux/if_link.h).
const xdpAttachedSKB = 2

// LinkPinPrefix names pinned XDP links in the pin directory: link_<ifname>.
const LinkPinPrefix = "link_"

// Attacher keeps one XDP program attached to a set of interfaces through
// bpf_links pinned in the pin directory: the links outlive the agent, so
// forwarding carries on while it restarts, and a new agent takes each link
// over by swapping its own program in (link.Update) instead of detaching.
type Attacher struct {
	prog         *ebpf.Program
	program      string // balancer | decap
	pinDir       string
	allowGeneric bool
	log          *slog.Logger
	resolve      func(name string) (int, error)

	mu    sync.Mutex
	links map[string]*attachment
	want  []string
	mode  string
}

type attachment struct {
	link    link.Link
	ifindex int
	mode    string // native | generic, as requested or found
	adopted bool
}

// NewAttacher attaches prog (named program in status) with links pinned
// in pinDir ("" pins nothing). allowGeneric lets native fall back to
// generic (skb) mode, which is slower and logged as such.
func NewAttacher(prog *ebpf.Program, program, pinDir string, allowGeneric bool, log *slog.Logger) *Attacher {
	return &Attacher{prog: prog, program: program, pinDir: pinDir, allowGeneric: allowGeneric, log: log,
		resolve: LinkIndex, links: map[string]*attachment{}}
}

// LinkIndex returns the index of a named link.
func LinkIndex(name string) (int, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("link %q: %w", name, err)
	}
	return l.Attrs().Index, nil
}

func (x *Attacher) pinPath(name string) string {
	return filepath.Join(x.pinDir, LinkPinPrefix+name)
}

// Attach makes the program attached to exactly names.
func (x *Attacher) Attach(names []string, mode string) (func(), error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var added []string
	rollback := func() {
		for _, n := range added {
			x.detach(n)
		}
	}
	for _, n := range names {
		if a, ok := x.links[n]; ok && (a.mode == mode || mode == policy.XDPModeAuto || mode == "") {
			continue
		} else if ok {
			// Mode changed: re-attach in the new one.
			x.detach(n)
		}
		if err := x.attach(n, mode); err != nil {
			rollback()
			return nil, err
		}
		// An adopted link was attached before this change: undoing the
		// change must not detach it.
		if !x.links[n].adopted {
			added = append(added, n)
		}
	}
	var removed []string
	for n := range x.links {
		if !slices.Contains(names, n) {
			removed = append(removed, n)
		}
	}
	for _, n := range removed {
		x.detach(n)
	}
	prevWant, prevMode := x.want, x.mode
	x.want, x.mode = slices.Clone(names), mode
	return func() {
		x.mu.Lock()
		defer x.mu.Unlock()
		rollback()
		for _, n := range removed {
			if err := x.attach(n, prevMode); err != nil {
				x.log.Error("re-attaching after a failed apply", "interface", n, "err", err)
			}
		}
		x.want, x.mode = prevWant, prevMode
	}, nil
}

// attach attaches to one interface, adopting a pinned link when there is
// one for this interface; x.mu is held.
func (x *Attacher) attach(name, mode string) error {
	ifindex, err := x.resolve(name)
	if err != nil {
		return fmt.Errorf("interface %s: %w", name, err)
	}
	if x.pinDir != "" {
		if l, err := link.LoadPinnedLink(x.pinPath(name), nil); err == nil {
			info, ierr := l.Info()
			if ierr == nil && info.XDP() != nil && int(info.XDP().Ifindex) == ifindex {
				if err := l.Update(x.prog); err != nil {
					l.Close()
					return fmt.Errorf("interface %s: replace the program on the pinned link: %w", name, err)
				}
				a := &attachment{link: l, ifindex: ifindex, mode: AttachedMode(ifindex), adopted: true}
				x.links[name] = a
				x.log.Info("adopted pinned XDP link; program replaced without detaching", "interface", name, "program", x.program, "mode", a.mode)
				return nil
			}
			// The interface went away and came back: the old link is
			// defunct. Drop its pin and attach afresh.
			_ = l.Unpin()
			l.Close()
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("interface %s: load pinned link: %w", name, err)
		}
	}
	var l link.Link
	got := policy.XDPModeNative
	switch {
	case mode == policy.XDPModeGeneric:
		got = policy.XDPModeGeneric
		l, err = loader.AttachXDP(x.prog, ifindex, loader.XDPGeneric)
	default:
		l, err = loader.AttachXDP(x.prog, ifindex, loader.XDPNative)
		if err != nil && (mode == policy.XDPModeAuto || x.allowGeneric) {
			nerr := err
			l, err = loader.AttachXDP(x.prog, ifindex, loader.XDPGeneric)
			if err == nil {
				got = policy.XDPModeGeneric
				x.log.Warn("NATIVE XDP ATTACH FAILED: FELL BACK TO GENERIC (SKB) MODE, MUCH SLOWER",
					"interface", name, "program", x.program, "native_error", nerr)
			}
		}
	}
	if err != nil {
		hint := ""
		if mode != policy.XDPModeGeneric && !x.allowGeneric && mode != policy.XDPModeAuto {
			hint = " (generic mode is not allowed: pass --allow-generic or set xdpMode: auto)"
		}
		return fmt.Errorf("interface %s: %w%s", name, err, hint)
	}
	if x.pinDir != "" {
		if err := l.Pin(x.pinPath(name)); err != nil {
			l.Close()
			return fmt.Errorf("interface %s: pin link: %w", name, err)
		}
	}
	x.links[name] = &attachment{link: l, ifindex: ifindex, mode: got}
	x.log.Info("XDP attached", "interface", name, "program", x.program, "mode", got)
	return nil
}

// detach unpins and closes a link, which detaches the program; x.mu held.
func (x *Attacher) detach(name string) {
	a, ok := x.links[name]
	if !ok {
		return
	}
	delete(x.links, name)
	if x.pinDir != "" {
		_ = a.link.Unpin()
	}
	_ = a.link.Close()
	x.log.Info("XDP detached", "interface", name, "program", x.program)
}

// Relink re-attaches an interface that came back (new ifindex).
func (x *Attacher) Relink(name string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !slices.Contains(x.want, name) {
		return nil
	}
	ifindex, err := x.resolve(name)
	if err != nil {
		return err
	}
	if a, ok := x.links[name]; ok && a.ifindex == ifindex {
		return nil
	}
	x.detach(name)
	return x.attach(name, x.mode)
}

// Forget marks an interface that went away as detached (its link is
// defunct; the kernel dropped the program with the device).
func (x *Attacher) Forget(name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.detach(name)
}

// Status lists wanted interfaces and whether the program is on them, with
// the mode the kernel reports.
func (x *Attacher) Status() []api.Interface {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := []api.Interface{}
	for _, n := range x.want {
		st := api.Interface{Name: n, Program: x.program}
		if a, ok := x.links[n]; ok {
			st.Mode = a.mode
			if m := AttachedMode(a.ifindex); m != "" {
				st.Attached, st.Mode = true, m
			}
		}
		out = append(out, st)
	}
	return out
}

// Close releases the link handles without detaching: pinned links stay.
func (x *Attacher) Close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for n, a := range x.links {
		_ = a.link.Close()
		delete(x.links, n)
	}
}

// AttachedMode asks the kernel how XDP is attached to ifindex: native,
// generic, or "" when nothing is.
func AttachedMode(ifindex int) string {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil || l.Attrs().Xdp == nil || !l.Attrs().Xdp.Attached {
		return ""
	}
	if l.Attrs().Xdp.AttachMode == xdpAttachedSKB {
		return policy.XDPModeGeneric
	}
	return policy.XDPModeNative
}

// Uninstall detaches every pinned XDP link in pinDir and removes every pin
// and then the directory: forwarding, conntrack and rate-limit state go.
func Uninstall(pinDir string, log *slog.Logger) error {
	entries, err := os.ReadDir(pinDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read pin dir: %w", err)
	}
	var errs []error
	for _, e := range entries {
		p := filepath.Join(pinDir, e.Name())
		if strings.HasPrefix(e.Name(), LinkPinPrefix) {
			l, err := link.LoadPinnedLink(p, nil)
			if err == nil {
				_ = l.Unpin()
				l.Close()
				log.Info("detached XDP", "interface", strings.TrimPrefix(e.Name(), LinkPinPrefix))
				continue
			}
			log.Warn("pinned link unreadable; removing the pin", "path", p, "err", err)
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(pinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
