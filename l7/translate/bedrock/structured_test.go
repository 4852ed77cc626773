package bedrock

import (
	"encoding/json"
	"testing"

	"github.com/infergate/infergate/l7/translate/outbound"
	"github.com/infergate/infergate/test/providers"
)

const schemaFormat = `"response_format":{"type":"json_schema","json_schema":{"name":"greeting","schema":{"type":"object","properties":{"g":{"type":"string"}},"required":["g"]}}}`

// TestStructuredOutputForcedTool: a json_schema response format reaches
// Converse as one tool with the client's schema that toolChoice forces,
// and the model's tool input comes back as the message's JSON text with
// finish_reason stop (no tool call the client never offered), whole and
// from ConverseStream; with client tools beside it the request is refused.
func TestStructuredOutputForcedTool(t *testing.T) {
	rt, s := newRT(t) // unscripted: the stand-in calls the tool it is forced to
	want := providers.ToolArguments(outbound.StructuredTool)
	st, cr := providers.Whole(t, rt, `{"model":"m","messages":[{"role":"user","content":"greet"}],`+schemaFormat+`}`)
	if st != 200 || cr.Choices[0].Message.Content == nil || *cr.Choices[0].Message.Content != want ||
		len(cr.Choices[0].Message.ToolCalls) != 0 || cr.Choices[0].FinishReason != "stop" {
		t.Fatalf("%d %+v", st, cr)
	}
	body, _, _ := s.Last()
	b, _ := json.Marshal(body["toolConfig"])
	if string(b) != `{"toolChoice":{"tool":{"name":"json_response"}},"tools":[{"toolSpec":{"description":"Answer with JSON that follows this schema.","inputSchema":{"json":{"properties":{"g":{"type":"string"}},"required":["g"],"type":"object"}},"name":"json_response"}}]}` {
		t.Fatalf("sent %s", b)
	}
	st, res := providers.Stream(t, rt, `{"model":"m","stream":true,"messages":[{"role":"user","content":"greet"}],`+schemaFormat+`}`)
	if st != 200 || res.Err != nil || res.Text != want || len(res.Calls) != 0 || res.Finish != "stop" {
		t.Fatalf("stream: %d %+v", st, res)
	}
	st, cr = providers.Whole(t, rt, `{"model":"m","messages":[{"role":"user","content":"greet"}],"tools":[{"type":"function","function":{"name":"f"}}],`+schemaFormat+`}`)
	if st != 400 || cr.Error.Type != "invalid_request_error" {
		t.Fatalf("with tools: %d %+v", st, cr.Error)
	}
}
