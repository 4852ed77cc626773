package route

// ModelPicker is a PrefixPicker that also steers by the model name the
// upstream is asked for. vLLM serves each LoRA adapter as a model name,
// and a request for an adapter already in use on a backend joins its
// batches without waiting for an adapter slot or loading the adapter.
type ModelPicker interface {
	PrefixPicker
	PickModel(pool, model string, backends []*Backend, prompt []byte) int
}

// BackendModel is BackendPrompt for a request whose upstream is asked for
// model (the route's UpstreamModel, else the client's model name); a
// picker that is not a ModelPicker, or an empty model, gets what
// BackendPrompt gives it.
func (t *Table) BackendModel(r *Route, model string, prompt []byte) *Backend {
	mp, ok := t.picker.(ModelPicker)
	if !ok || model == "" || r.Pool == nil {
		return t.BackendPrompt(r, prompt)
	}
	bs := r.Pool.Backends
	if i := mp.PickModel(r.Pool.Name, model, bs, prompt); i >= 0 && i < len(bs) {
		return bs[i]
	}
	return PowerOfTwo(bs)
}
