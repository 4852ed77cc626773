package mockllm

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// adapterOf is model's adapter number in the simulated GPU (1 + its index
// in Config.LoRAs), 0 for the base model.
func (s *Server) adapterOf(model string) int {
	return slices.Index(s.cfg.LoRAs, model) + 1
}

// writeLoRAInfo writes vLLM's lora_requests_info gauge when the server has
// adapters: running_lora_adapters and waiting_lora_adapters name the
// adapters of the running and waiting requests, comma-separated, max_lora
// is --max-loras, and the value the time it was set. (vLLM also keeps the
// series of earlier label sets, with their older times; a reader takes the
// latest, so the current one alone reads the same.)
func (s *Server) writeLoRAInfo(w io.Writer) {
	if len(s.cfg.LoRAs) == 0 {
		return
	}
	running, waiting := s.gpu.Adapters()
	names := func(as []int) string {
		out := make([]string, 0, len(as))
		for _, a := range as {
			out = append(out, s.cfg.LoRAs[a-1])
		}
		return strings.Join(out, ",")
	}
	fmt.Fprintf(w, "# HELP vllm:lora_requests_info Running stats on lora requests.\n# TYPE vllm:lora_requests_info gauge\n"+
		"vllm:lora_requests_info{max_lora=%q,running_lora_adapters=%s,waiting_lora_adapters=%s} %s\n",
		strconv.Itoa(s.cfg.MaxLoRAs), strconv.Quote(names(running)), strconv.Quote(names(waiting)),
		strconv.FormatFloat(float64(time.Now().UnixNano())/1e9, 'e', -1, 64))
}
