package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/infergate/infergate/agent/api"
	"github.com/infergate/infergate/agent/bgp"
	"github.com/infergate/infergate/policy"
)

// VIP announcement: a balancer with spec.dataplane.bgp announces its VIPs
// while it is fit to steer them. It withdraws every route, keeping its
// sessions and forwarding whatever still arrives, when the operator drains
// it or its data plane is unhealthy (the last map update failed, or XDP is
// not attached to an interface the policy names). Routers then move the
// flows to the other balancer nodes, which steer them to the same backends
// (see package maglev: same policy, same table). Withdrawing first is what
// lets a node stop forwarding later without breaking a connection.

const (
	// announceCheckEvery is how often the announcement is checked against
	// the node's health, besides the kicks on every change.
	announceCheckEvery = time.Second
	// bgpApplyTimeout bounds one speaker reconfiguration.
	bgpApplyTimeout = 10 * time.Second
	// maxPasswordBytes bounds a password file.
	maxPasswordBytes = 4096
)

// bgpConfig resolves the policy's BGP section on this node: the router ID
// it leaves out, and the peers' passwords from their files.
func bgpConfig(c *policy.Compiled) (bgp.Config, error) {
	if c == nil || c.Dataplane.BGP == nil {
		return bgp.Config{}, nil
	}
	b := c.Dataplane.BGP
	cfg := bgp.Config{ASN: b.LocalASN, RouterID: b.RouterID, Listen: b.Listen, Prefixes: b.Announce}
	for _, p := range b.Peers {
		peer := bgp.Peer{Address: p.Address, ASN: p.ASN, Port: p.Port, HoldTime: p.HoldTime}
		if p.PasswordFile != "" {
			pw, err := readPassword(p.PasswordFile)
			if err != nil {
				return bgp.Config{}, fmt.Errorf("spec.dataplane.bgp peer %s: passwordFile: %w", p.Address, err)
			}
			peer.Password = pw
		}
		cfg.Peers = append(cfg.Peers, peer)
	}
	if !cfg.RouterID.IsValid() {
		id, err := routerID(b.Peers)
		if err != nil {
			return bgp.Config{}, err
		}
		cfg.RouterID = id
	}
	return cfg, nil
}

// routerID is this node's IPv4 source address towards its first IPv4 peer:
// distinct per node with one shared policy. A UDP "connection" only asks
// the kernel for the route; nothing is sent.
func routerID(peers []policy.CompiledBGPPeer) (netip.Addr, error) {
	for _, p := range peers {
		if !p.Address.Is4() {
			continue
		}
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Address, p.Port)))
		if err != nil {
			return netip.Addr{}, fmt.Errorf("spec.dataplane.bgp.routerID: no route to peer %s to take this node's address from: %w", p.Address, err)
		}
		a := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
		_ = c.Close()
		return a, nil
	}
	return netip.Addr{}, errors.New("spec.dataplane.bgp.routerID is required when no peer is IPv4 (it cannot be derived)")
}

func readPassword(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 256), maxPasswordBytes)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		return "", fmt.Errorf("%s is empty", path)
	}
	pw := strings.TrimSpace(sc.Text())
	if pw == "" || len(pw) > 80 {
		// TCP MD5 keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN).
		return "", fmt.Errorf("%s: the password must be 1-80 bytes on the first line", path)
	}
	return pw, nil
}

// applyBGP puts cfg in force on the speaker; applyMu is held.
func (a *Agent) applyBGP(cfg bgp.Config) error {
	if a.o.BGP == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), bgpApplyTimeout)
	defer cancel()
	// Decided before the routes exist, so a drained node never announces
	// them even briefly.
	if err := a.o.BGP.SetAnnounce(ctx, a.withdrawReason()); err != nil {
		a.log.Error("BGP announcement", "err", err)
	}
	if err := a.o.BGP.Apply(ctx, cfg); err != nil {
		return err
	}
	a.mu.Lock()
	a.bgpCfg = cfg
	a.mu.Unlock()
	a.kickAnnounce()
	return nil
}

// SetDrain drains the node (withdraws its routes) or undrains it. The
// state survives agent restarts: a drained node's next agent does not
// announce until undrained.
func (a *Agent) SetDrain(on bool) error {
	if a.o.DrainFile != "" {
		var err error
		if on {
			err = os.WriteFile(a.o.DrainFile, []byte("drained\n"), 0o600)
		} else if err = os.Remove(a.o.DrainFile); errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("drain state: %w", err)
		}
	}
	if a.draining.Swap(on) != on {
		a.log.Info("node drain", "draining", on)
	}
	a.kickAnnounce()
	return nil
}

// withdrawReason says why this node must not announce ("" when it may).
func (a *Agent) withdrawReason() string {
	if a.draining.Load() {
		return "node drained"
	}
	if !a.writeOK.Load() {
		a.mu.Lock()
		e := a.lastErr
		a.mu.Unlock()
		return "data plane unhealthy: the last map update failed: " + e
	}
	if a.o.Attacher != nil {
		for _, i := range a.o.Attacher.Status() {
			if !i.Attached {
				return "data plane unhealthy: XDP is not attached to " + i.Name
			}
		}
	}
	return ""
}

func (a *Agent) kickAnnounce() {
	select {
	case a.announcec <- struct{}{}:
	default:
	}
}

// announceLoop keeps the speaker's announcement in line with the node's
// health and drain state until ctx ends.
func (a *Agent) announceLoop(ctx context.Context) {
	t := time.NewTicker(announceCheckEvery)
	defer t.Stop()
	for {
		if err := a.o.BGP.SetAnnounce(ctx, a.withdrawReason()); err != nil && ctx.Err() == nil {
			a.log.Error("BGP announcement", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.announcec:
		}
	}
}

// bgpStatus is the announcement as the local API shows it; nil when this
// node runs no speaker or its policy has no BGP section.
func (a *Agent) bgpStatus() *api.BGPStatus {
	if a.o.BGP == nil {
		return nil
	}
	a.mu.Lock()
	on := a.bgpCfg.On()
	a.mu.Unlock()
	if !on && !a.draining.Load() {
		return nil
	}
	st := &api.BGPStatus{Draining: a.draining.Load(), Withdrawn: a.o.BGP.Withdrawn(), Announced: []string{}, Peers: []api.BGPPeer{}}
	for _, p := range a.o.BGP.Announced() {
		st.Announced = append(st.Announced, p.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, p := range a.o.BGP.Peers(ctx) {
		st.Peers = append(st.Peers, api.BGPPeer{Address: p.Address, ASN: p.ASN, State: p.State})
	}
	return st
}
