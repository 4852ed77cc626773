package gpumodel

import (
	"sync"
	"time"
)

// Live runs one Engine in real time: steps take the wall-clock time the
// model gives them, so a server in front of it (the mock inference
// server) answers with the model's timing. It is safe for concurrent use.
type Live struct {
	mu     sync.Mutex
	e      *Engine[*Ticket]
	start  time.Time
	nextID int
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	batch  []*Request[*Ticket] // the step's requests, reused
}

// Job is what a caller asks of the GPU.
type Job struct {
	Prompt, Output int
	// Prefix and PrefixLen name a shared leading part of the prompt (-1:
	// none), for prefix caching.
	Prefix, PrefixLen int
	Adapter           int
}

// Ticket follows one submitted job.
type Ticket struct {
	r      *Request[*Ticket]
	notify chan struct{}
}

// C is signalled (coalesced) whenever the job made progress: a token, its
// end, or its loss to a failure.
func (t *Ticket) C() <-chan struct{} { return t.notify }

// NewLive starts a GPU of spec; Close stops it.
func NewLive(spec Spec, prefixCaching bool) *Live {
	l := &Live{
		e: NewEngine[*Ticket](spec, 0, prefixCaching), start: time.Now(),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go l.run()
	return l
}

// Close stops the GPU; jobs in it never finish.
func (l *Live) Close() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
}

func (l *Live) now() float64 { return time.Since(l.start).Seconds() }

// Submit queues a job.
func (l *Live) Submit(j Job) *Ticket {
	t := &Ticket{notify: make(chan struct{}, 1)}
	l.mu.Lock()
	l.nextID++
	t.r = &Request[*Ticket]{ID: l.nextID, Conn: t, Arrive: l.now(), Prompt: max(j.Prompt, 1), Output: max(j.Output, 1),
		Prefix: j.Prefix, PrefixLen: min(j.PrefixLen, j.Prompt), Adapter: j.Adapter, Backend: 0, FirstToken: -1, Done: -1}
	if j.PrefixLen <= 0 {
		t.r.Prefix, t.r.PrefixLen = -1, 0
	}
	l.e.Enqueue(t.r)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return t
}

// Progress is how many tokens t's job has produced and whether it is
// complete.
func (l *Live) Progress(t *Ticket) (generated int, done bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return t.r.generated, t.r.Done >= 0
}

// Abort drops t's job (its client went away).
func (l *Live) Abort(t *Ticket) {
	l.mu.Lock()
	l.e.Abort(t.r)
	l.mu.Unlock()
}

// Load is what an inference server exports: sequences running and
// waiting, and the KV cache's usage.
func (l *Live) Load() (running, waiting int, kvUsage float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.e.Running(), l.e.Waiting(), l.e.KVUsage()
}

// Adapters are the adapters of the running and of the waiting requests
// (what vLLM's lora_requests_info shows).
func (l *Live) Adapters() (running, waiting []int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.e.RunningAdapters(), l.e.WaitingAdapters()
}

// SetSpeed sets the fraction of nominal speed the GPU runs at from its
// next step (Engine.SetSpeed).
func (l *Live) SetSpeed(f float64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.e.SetSpeed(f)
}

// Hooks sets the engine's KV-cache event hooks; they run with the GPU's
// lock held and must not call back into l.
func (l *Live) Hooks(stored, removed func(BlockKey)) {
	l.mu.Lock()
	l.e.OnStored, l.e.OnRemoved = stored, removed
	l.mu.Unlock()
}

func (l *Live) run() {
	defer close(l.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		l.mu.Lock()
		dur, ok := l.e.Start(l.now())
		l.mu.Unlock()
		if !ok {
			select {
			case <-l.wake:
				continue
			case <-l.stop:
				return
			}
		}
		if dur > 0 {
			timer.Reset(time.Duration(dur * float64(time.Second)))
			select {
			case <-timer.C:
			case <-l.stop:
				return
			}
		}
		l.mu.Lock()
		l.batch = append(l.batch[:0], l.e.running...)
		_, done := l.e.Finish(l.now())
		l.mu.Unlock()
		for _, r := range l.batch {
			signal(r.Conn)
		}
		for _, r := range done {
			signal(r.Conn)
		}
	}
}

func signal(t *Ticket) {
	select {
	case t.notify <- struct{}{}:
	default:
	}
}
