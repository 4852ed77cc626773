package gateway

import (
	"net/http"

	"github.com/infergate/infergate/l7/openai"
)

// hopsStage stops a request that has passed through too many gateways: a
// provider URL that leads back to this gateway (or a ring of gateways)
// would otherwise recurse until something times out. Every request the
// gateway sends upstream carries Infergate-Hops one higher than the one it
// received; a request arriving with maxHops or more is answered 508.
//
// Reads: the Infergate-Hops request field. Writes: x.hops.
type hopsStage struct{}

const (
	// hopsHeader counts the gateways a request has passed.
	hopsHeader = "Infergate-Hops"
	// maxHops allows gateways in front of gateways, not a loop.
	maxHops = 8
)

func newHopsStage(*Gateway, *config) (stage, error) { return hopsStage{}, nil }

func (hopsStage) serve(x *exchange) *openai.Error {
	v := x.r.Header[hopsHeader]
	if len(v) == 0 {
		return nil
	}
	n, ok := 0, len(v) == 1 && len(v[0]) > 0 && len(v[0]) <= 3
	for i := 0; ok && i < len(v[0]); i++ {
		c := v[0][i]
		ok = c >= '0' && c <= '9'
		n = n*10 + int(c-'0')
	}
	if !ok || n >= maxHops {
		return &openai.Error{Status: http.StatusLoopDetected, Type: openai.TypeInvalidRequest, Code: "loop_detected",
			Message: "the request has passed through too many gateways (" + hopsHeader + "); a provider may point back at this gateway"}
	}
	x.hops = n
	return nil
}

// hopValues are the Infergate-Hops values sent upstream, so that none is
// formatted per request.
var hopValues = func() (v [maxHops]string) {
	for i := range v {
		v[i] = string(rune('1' + i))
	}
	return v
}()
