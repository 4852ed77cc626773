package rawsock

import (
	"log/slog"
	"syscall"
)

// watchEvents bounds the events taken per wait.
const watchEvents = 64

// epollET is EPOLLET as the unsigned event field wants it.
const epollET = 1 << 31

func newWatcher() *Watcher {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		slog.Warn("rawsock: no epoll set to watch connections for their peer's close", "err", err)
		return nil
	}
	w := &Watcher{epfd: epfd, fns: map[uint64]func(){}}
	go w.run()
	return w
}

func (w *Watcher) register(fd int, id uint64) error {
	// Edge-triggered EPOLLRDHUP: one event when the peer's FIN arrives
	// (EPOLLERR and EPOLLHUP are always reported), none for data.
	ev := syscall.EpollEvent{Events: syscall.EPOLLRDHUP | epollET, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
	return syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
}

func (w *Watcher) run() {
	var evs [watchEvents]syscall.EpollEvent
	var ids [watchEvents]uint64
	var fns []func()
	for {
		n, err := syscall.EpollWait(w.epfd, evs[:], -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			w.broken.Store(true)
			slog.Error("rawsock: waiting on the close watcher's epoll set failed; closes go unreported from now on", "err", err)
			return
		}
		for i := range evs[:n] {
			ids[i] = uint64(uint32(evs[i].Fd)) | uint64(uint32(evs[i].Pad))<<32
		}
		fns = w.fire(ids[:n], fns)
	}
}
