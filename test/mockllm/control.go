package mockllm

import (
	"encoding/json"
	"math"
	"net/http"
	"time"
)

// Speed is the current speed factor.
func (s *Server) Speed() float64 {
	if b := s.ext.speed.Load(); b != 0 {
		return math.Float64frombits(b)
	}
	return 1
}

// scaled is d at the current speed.
func (s *Server) scaled(d time.Duration) time.Duration {
	if f := s.Speed(); f != 1 {
		return time.Duration(float64(d) / f)
	}
	return d
}

// maxSpeed bounds the control endpoint's factor.
const maxSpeed = 10

// EnableControl serves POST /control/speed {"factor": 0.6} and GET
// /control/speed on the mock's handler, for tests that change a GPU's
// speed mid-run from outside its process, and POST /control/kv/reset,
// which empties the prefix cache (publishing AllBlocksCleared) when
// EnableKVEvents turned it on.
func (s *Server) EnableControl() {
	s.mux.HandleFunc("POST /control/kv/reset", func(w http.ResponseWriter, _ *http.Request) {
		c := s.ext.kv.Load()
		if c == nil {
			writeError(w, http.StatusNotFound, "invalid_request_error", "no prefix cache")
			return
		}
		c.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.HandleFunc("GET /control/speed", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]float64{"factor": s.Speed()})
	})
	s.mux.HandleFunc("POST /control/speed", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Factor float64 `json:"factor"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024)).Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "want {\"factor\": number}")
			return
		}
		if !(body.Factor > 0 && body.Factor <= maxSpeed) {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "factor must be in (0, 10]")
			return
		}
		if err := s.SetSpeed(body.Factor); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
