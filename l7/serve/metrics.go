package serve

import "github.com/prometheus/client_golang/prometheus"

// recorder registers one gateway's collectors and remembers them, so that
// a gateway replacing it can take over the same metric names.
type recorder struct {
	reg prometheus.Registerer
	cs  []prometheus.Collector
}

var _ prometheus.Registerer = (*recorder)(nil)

func (r *recorder) Register(c prometheus.Collector) error {
	if err := r.reg.Register(c); err != nil {
		return err
	}
	r.cs = append(r.cs, c)
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recorder) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

// unregister takes every recorded collector out (nil: nothing).
func (r *recorder) unregister() {
	if r == nil {
		return
	}
	for _, c := range r.cs {
		r.reg.Unregister(c)
	}
}

// register puts them back after a failed replacement.
func (r *recorder) register() {
	if r == nil {
		return
	}
	for _, c := range r.cs {
		_ = r.reg.Register(c)
	}
}
