package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/infergate/infergate/test/netns"
)

// MaxSpoofedEncap bounds SpoofEncap's packets.
const MaxSpoofedEncap = 1000

// SpoofEncap sends count encapsulated TCP SYNs from namespace ns straight to
// a GPU host (outerDst), bypassing the balancer: IPIP when outerDst is IPv4,
// IPv6-in-IPv6 when it is IPv6. The outer header is the kernel's, so its
// source is the sender's own address; the inner SYN goes from innerSrc to
// innerDst:port (the same family as outerDst). It is what an attacker who
// can reach a GPU host sends to skip the balancer's firewall and limits.
func SpoofEncap(ns string, outerDst, innerSrc, innerDst netip.Addr, port uint16, count int) (int, error) {
	if count <= 0 || count > MaxSpoofedEncap {
		return 0, fmt.Errorf("spoofed encapsulated packets: count %d outside 1..%d", count, MaxSpoofedEncap)
	}
	if outerDst.Is4() != innerDst.Is4() || innerSrc.Is4() != innerDst.Is4() {
		return 0, errors.New("spoofed encapsulated packets: mixed address families")
	}
	sent := 0
	err := netns.Do(ns, func() error {
		var fd int
		var err error
		var sa unix.Sockaddr
		if outerDst.Is4() {
			fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_IPIP)
			sa = &unix.SockaddrInet4{Addr: outerDst.As4()}
		} else {
			fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_IPV6)
			sa = &unix.SockaddrInet6{Addr: outerDst.As16()}
		}
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		defer unix.Close(fd)
		for sent < count {
			pkt := innerSYN(innerSrc, innerDst, uint16(1024+rand.IntN(60000)), port, rand.Uint32())
			if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
				return fmt.Errorf("send encapsulated SYN: %w", err)
			}
			sent++
		}
		return nil
	})
	return sent, err
}

// innerSYN builds an IPv4 or IPv6 header and a TCP SYN with its checksum.
func innerSYN(src, dst netip.Addr, sport, dport uint16, seq uint32) []byte {
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], sport)
	binary.BigEndian.PutUint16(seg[2:], dport)
	binary.BigEndian.PutUint32(seg[4:], seq)
	seg[12] = 5 << 4
	seg[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(seg[14:], 64240)
	s, d := src.AsSlice(), dst.AsSlice()
	var sum uint32
	for i := 0; i < len(s); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(s[i:])) + uint32(binary.BigEndian.Uint16(d[i:]))
	}
	sum += unix.IPPROTO_TCP + uint32(len(seg))
	for i := 0; i < len(seg); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(seg[i:]))
	}
	binary.BigEndian.PutUint16(seg[16:], ^fold(sum))
	if src.Is4() {
		h := make([]byte, 20, 40)
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], 40)
		h[8] = 64
		h[9] = unix.IPPROTO_TCP
		copy(h[12:], s)
		copy(h[16:], d)
		var hs uint32
		for i := 0; i < 20; i += 2 {
			hs += uint32(binary.BigEndian.Uint16(h[i:]))
		}
		binary.BigEndian.PutUint16(h[10:], ^fold(hs))
		return append(h, seg...)
	}
	h := make([]byte, 40, 60)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], 20)
	h[6] = unix.IPPROTO_TCP
	h[7] = 64
	copy(h[8:], s)
	copy(h[24:], d)
	return append(h, seg...)
}

func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
