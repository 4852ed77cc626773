package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/infergate/infergate/test/netns"
)

// Flood bounds: every flood stops at whichever of its count and its
// duration comes first, and neither may exceed these.
const (
	MaxFloodPackets  = 200_000
	MaxFloodDuration = 10 * time.Second
	floodPayload     = 64
)

// FloodResult says what a flood sent.
type FloodResult struct {
	Sent    int
	Elapsed time.Duration
}

// AttackResult is one of Attack's floods, finished.
type AttackResult struct {
	Kind string // "SYN" or "UDP"
	FloodResult
	Err error
}

// Attack starts a SYN flood and a UDP flood from the attacker's namespace
// at VIP4's service port, each of count packets at pps for at most d, and
// returns a channel that receives both results.
func (l *Lab) Attack(count, pps int, d time.Duration) <-chan AttackResult {
	out := make(chan AttackResult, 2)
	go func() {
		r, err := SYNFlood(l.Attacker.NS, l.Attacker.V4, VIP4, ServicePort, count, pps, d)
		out <- AttackResult{"SYN", r, err}
	}()
	go func() {
		r, err := UDPFlood(l.Attacker.NS, netip.AddrPortFrom(VIP4, ServicePort), count, pps, d)
		out <- AttackResult{"UDP", r, err}
	}()
	return out
}

func checkFlood(count int, d time.Duration) error {
	if count <= 0 || count > MaxFloodPackets {
		return fmt.Errorf("flood count %d outside 1..%d", count, MaxFloodPackets)
	}
	if d <= 0 || d > MaxFloodDuration {
		return fmt.Errorf("flood duration %s outside (0, %s]", d, MaxFloodDuration)
	}
	return nil
}

// floodBatch is how many packets a paced flood sends between clock checks.
const floodBatch = 100

// pace sleeps so that sent packets since start keep to pps (0: no pacing).
func pace(start time.Time, sent, pps int) {
	if pps <= 0 || sent%floodBatch != 0 {
		return
	}
	due := start.Add(time.Duration(float64(sent) / float64(pps) * float64(time.Second)))
	if w := time.Until(due); w > 0 {
		time.Sleep(w)
	}
}

// SYNFlood sends count TCP SYNs from src to dst:port (IPv4) out of
// namespace ns through a raw socket, each from a random source port, at pps
// packets per second (0: as fast as the socket takes them), for at most d.
func SYNFlood(ns string, src, dst netip.Addr, port uint16, count, pps int, d time.Duration) (FloodResult, error) {
	if err := checkFlood(count, d); err != nil {
		return FloodResult{}, err
	}
	if !src.Is4() || !dst.Is4() {
		return FloodResult{}, errors.New("SYN flood: IPv4 only")
	}
	var res FloodResult
	err := netns.Do(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP)
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrInet4{Addr: dst.As4()}
		seg := make([]byte, 20)
		start := time.Now()
		for res.Sent < count && time.Since(start) < d {
			sport := uint16(1024 + rand.IntN(60000))
			buildSYN(seg, src, dst, sport, port, rand.Uint32())
			if err := unix.Sendto(fd, seg, 0, sa); err != nil {
				if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
					time.Sleep(time.Millisecond)
					continue
				}
				return fmt.Errorf("send SYN: %w", err)
			}
			res.Sent++
			pace(start, res.Sent, pps)
		}
		res.Elapsed = time.Since(start)
		return nil
	})
	return res, err
}

// buildSYN writes a 20-byte TCP SYN header with its checksum.
func buildSYN(b []byte, src, dst netip.Addr, sport, dport uint16, seq uint32) {
	clear(b)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
	b[12] = 5 << 4 // data offset: 5 words
	b[13] = 0x02   // SYN
	binary.BigEndian.PutUint16(b[14:], 64240)
	s, d := src.As4(), dst.As4()
	var sum uint32
	for i := 0; i < 4; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(s[i:])) + uint32(binary.BigEndian.Uint16(d[i:]))
	}
	sum += unix.IPPROTO_TCP + uint32(len(b))
	for i := 0; i < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[16:], ^uint16(sum))
}

// UDPFlood sends count small datagrams from namespace ns to dst at pps
// packets per second (0: unpaced), for at most d.
func UDPFlood(ns string, dst netip.AddrPort, count, pps int, d time.Duration) (FloodResult, error) {
	if err := checkFlood(count, d); err != nil {
		return FloodResult{}, err
	}
	var res FloodResult
	err := netns.Do(ns, func() error {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		if err != nil {
			return fmt.Errorf("udp socket: %w", err)
		}
		defer c.Close()
		payload := make([]byte, floodPayload)
		start := time.Now()
		for res.Sent < count && time.Since(start) < d {
			if _, err := c.Write(payload); err != nil {
				// ICMP errors surface on a connected socket; a flood
				// ignores them.
				var ne net.Error
				if errors.As(err, &ne) || errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOBUFS) {
					continue
				}
				return fmt.Errorf("send UDP: %w", err)
			}
			res.Sent++
			pace(start, res.Sent, pps)
		}
		res.Elapsed = time.Since(start)
		return nil
	})
	return res, err
}
