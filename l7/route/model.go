package route

// ModelPicker is a HitPicker that also steers by the model name the
// upstream is asked for. vLLM serves each LoRA adapter as a model name,
// and a request for an adapter already in use on a backend joins its
// batches without waiting for an adapter slot or loading the adapter.
type ModelPicker interface {
	HitPicker
	// PickModelHit returns the chosen backend's index (or -1) and the
	// fraction of the prompt it holds, as PickPrefixHit does.
	PickModelHit(pool, model string, backends []*Backend, prompt []byte) (int, float64)
}

// BackendModel is BackendPromptHit for a request whose upstream is asked
// for model (the route's UpstreamModel, else the client's model name); a
// picker that is not a ModelPicker, or an empty model, gets what
// BackendPromptHit gives it.
func (t *Table) BackendModel(r *Route, model string, prompt []byte) (*Backend, float64) {
	mp, ok := t.picker.(ModelPicker)
	if !ok || model == "" || r.Pool == nil {
		return t.BackendPromptHit(r, prompt)
	}
	i, hit := mp.PickModelHit(r.Pool.Name, model, r.Pool.Backends, prompt)
	return pickedHit(r.Pool.Backends, i, hit)
}
