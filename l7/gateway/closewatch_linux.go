package gateway

import (
	"log/slog"
	"sync/atomic"
	"syscall"
)

// closeWatchEvents bounds the events taken per wait.
const closeWatchEvents = 64

func newCloseWatch() *closeWatch {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		slog.Warn("gateway: no epoll set for pooled connections; each reuse peeks", "err", err)
		return nil
	}
	w := &closeWatch{epfd: epfd, conns: map[uint64]*atomic.Bool{}}
	go w.run()
	return w
}

func (w *closeWatch) register(fd int, id uint64) error {
	// Edge-triggered EPOLLRDHUP: one event when the peer's FIN arrives
	// (EPOLLERR and EPOLLHUP are always reported), none for data.
	ev := syscall.EpollEvent{Events: syscall.EPOLLRDHUP | epollET, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
	return syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
}

// epollET is EPOLLET as the unsigned field wants it.
const epollET = 1 << 31

func (w *closeWatch) run() {
	var evs [closeWatchEvents]syscall.EpollEvent
	var ids [closeWatchEvents]uint64
	for {
		n, err := syscall.EpollWait(w.epfd, evs[:], -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			w.broken.Store(true)
			slog.Error("gateway: waiting on the pooled connections' epoll set failed; each reuse peeks from now on", "err", err)
			return
		}
		for i := range evs[:n] {
			ids[i] = uint64(uint32(evs[i].Fd)) | uint64(uint32(evs[i].Pad))<<32
		}
		w.mark(ids[:n])
	}
}
