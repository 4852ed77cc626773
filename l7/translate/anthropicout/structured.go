package anthropicout

import (
	"github.com/infergate/infergate/l7/translate/chatwire"
	"github.com/infergate/infergate/l7/translate/outbound"
)

// StructuredTool is the tool that carries a response format (see
// outbound.StructuredSchema).
const StructuredTool = outbound.StructuredTool

// isStructured says r's answer comes back through StructuredTool.
func isStructured(r *chatwire.Request) bool { return outbound.Structured(r) }

// applyStructured adds the forced schema tool to ar when r asks for JSON.
func applyStructured(ar *request, r *chatwire.Request) error {
	schema, ok, err := outbound.StructuredSchema(r)
	if err != nil || !ok {
		return err
	}
	if len(ar.Tools) > 0 {
		return outbound.StructuredWithTools(r, "anthropic")
	}
	ar.Tools = []tool{{Name: StructuredTool, Description: "Answer with JSON that follows this schema.", InputSchema: schema}}
	ar.ToolChoice = &toolChoice{Type: "tool", Name: StructuredTool}
	return nil
}
