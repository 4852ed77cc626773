package bedrock

import (
	"encoding/json"

	"github.com/infergate/infergate/l7/translate/chatwire"
	"github.com/infergate/infergate/l7/translate/outbound"
)

// applyStructured adds the forced schema tool to cr when r asks for JSON
// (Converse has no response format; see outbound.StructuredSchema).
func applyStructured(cr *converseRequest, r *chatwire.Request) error {
	schema, ok, err := outbound.StructuredSchema(r)
	if err != nil || !ok {
		return err
	}
	if len(r.Tools) > 0 {
		return outbound.StructuredWithTools(r, "bedrock")
	}
	ts := toolSpec{Name: outbound.StructuredTool, Description: "Answer with JSON that follows this schema."}
	ts.InputSchema.JSON = schema
	cr.ToolConfig = &toolConfig{Tools: []toolEntry{{ToolSpec: ts}},
		ToolChoice: json.RawMessage(`{"tool":{"name":"` + outbound.StructuredTool + `"}}`)}
	return nil
}
