package gateway

import (
	"encoding/json"
	"net/http"
)

// Anthropic's SDKs list models at the same path as OpenAI's
// (GET /v1/models, /v1/models/{id}) but read another shape: objects of
// type "model" with display_name and an RFC 3339 created_at, in a page
// with has_more, first_id and last_id. A request carrying
// anthropic-version (which those SDKs always send) gets that shape, and
// its errors Anthropic's error shape; every other client keeps OpenAI's.
// The list is one page: the gateway serves a handful of models.

type anthropicModel struct {
	Type        string `json:"type"`
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	CreatedAt   string `json:"created_at"`
}

type anthropicModelPage struct {
	Data    []anthropicModel `json:"data"`
	HasMore bool             `json:"has_more"`
	FirstID *string          `json:"first_id"`
	LastID  *string          `json:"last_id"`
}

// modelsCreatedAt is created_at for every model: the gateway knows no
// creation date (OpenAI's shape says created 0, the same instant).
const modelsCreatedAt = "1970-01-01T00:00:00Z"

// wantsAnthropicShape says r comes from an Anthropic client.
func wantsAnthropicShape(r *http.Request) bool { return r.Header.Get("anthropic-version") != "" }

// modelsAPI is the API whose shape r's model listing and errors take.
func modelsAPI(r *http.Request) apiKind {
	if wantsAnthropicShape(r) {
		return apiMessages
	}
	return apiOpenAI
}

func toAnthropicModel(o modelObject) anthropicModel {
	return anthropicModel{Type: "model", ID: o.ID, DisplayName: o.ID, CreatedAt: modelsCreatedAt}
}

// anthropicModelsBody re-shapes an OpenAI model list body.
func anthropicModelsBody(openaiList []byte) []byte {
	var list modelList
	_ = json.Unmarshal(openaiList, &list)
	page := anthropicModelPage{Data: make([]anthropicModel, 0, len(list.Data))}
	for _, o := range list.Data {
		page.Data = append(page.Data, toAnthropicModel(o))
	}
	if n := len(page.Data); n > 0 {
		page.FirstID, page.LastID = &page.Data[0].ID, &page.Data[n-1].ID
	}
	b, _ := json.Marshal(page)
	return b
}

// anthropicModelBody re-shapes one OpenAI model object body.
func anthropicModelBody(openaiModel []byte) []byte {
	var o modelObject
	_ = json.Unmarshal(openaiModel, &o)
	b, _ := json.Marshal(toAnthropicModel(o))
	return b
}
