package h1

import (
	"errors"
	"net"
	"time"
)

// peerClosed runs on the close watcher's goroutine once the client has
// closed the connection: the request in progress, if any, is cancelled and
// its OnDisconnect function called.
func (c *conn) peerClosed() {
	c.peerGone.Store(true)
	c.wmu.Lock()
	cancel := c.cancel
	hook := c.hook
	c.hook, c.hookFired = nil, hook != nil
	c.wmu.Unlock()
	if cancel != nil {
		cancel()
	}
	if hook != nil {
		hook()
	}
}

// Disconnect watch states.
const (
	watchIdle = iota
	watchArmed
	watchRunning
)

// armWatch starts the timer after which a goroutine watches the
// connection for the client going away, where the close watcher does not
// (peerClosed). It is called once the request body has been read to its
// end (until then a read of the connection would take body bytes). A
// client that pipelines a next request cannot be watched this way, as with
// net/http.
func (c *conn) armWatch() {
	if c.watchID != 0 {
		return // the close watcher reports it (peerClosed)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wstate != watchIdle || c.br.Buffered() > 0 {
		return
	}
	c.wstate = watchArmed
	if c.wtimer == nil {
		c.wtimer = time.AfterFunc(disconnectCheckDelay, c.watch)
	} else {
		c.wtimer.Reset(disconnectCheckDelay)
	}
}

// watch waits for the connection to become readable. End of stream or an
// error means the client is gone: the request's context is cancelled. Bytes
// (a pipelined request) stay buffered for the next request.
func (c *conn) watch() {
	c.wmu.Lock()
	if c.wstate != watchArmed {
		c.wmu.Unlock()
		return
	}
	c.wstate = watchRunning
	cancel := c.cancel
	// A deadline left from the head (or set by the handler for its body)
	// must not end the watch; stopWatch's expiry comes after this, as it
	// sees the state running only once the lock is released.
	_ = c.rwc.SetReadDeadline(time.Time{})
	c.wmu.Unlock()
	_, err := c.br.Peek(1)
	if err != nil {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			c.peerGone.Store(true)
			if cancel != nil {
				cancel()
			}
			c.wmu.Lock()
			hook := c.hook
			c.hook, c.hookFired = nil, hook != nil
			c.wmu.Unlock()
			if hook != nil {
				hook()
			}
		}
	}
	c.wdone <- struct{}{}
}

// stopWatch ends the watch, if any, before the connection is read again.
func (c *conn) stopWatch() {
	c.wmu.Lock()
	st := c.wstate
	c.wstate = watchIdle
	if st == watchArmed && c.wtimer.Stop() {
		c.wmu.Unlock()
		return
	}
	c.wmu.Unlock()
	if st != watchRunning {
		// Armed and fired, but the watcher found the state idle and left.
		return
	}
	_ = c.setReadDeadline(aLongTimeAgo)
	<-c.wdone
}

var aLongTimeAgo = time.Unix(1, 0)
