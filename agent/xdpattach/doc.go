// Package xdpattach keeps XDP programs attached across agent restarts: it
// mounts the BPF filesystem the pins live on (EnsureBPFFS), attaches a
// program to a set of interfaces through bpf_links pinned there (Attacher),
// adopts a previous agent's pinned links by swapping the program in rather
// than detaching, and removes everything on Uninstall.
//
// Pin directory layout: one pinned link per interface, named
// LinkPinPrefix+<ifname>; other pins (maps) belong to the loader and are
// only removed by Uninstall.
package xdpattach
