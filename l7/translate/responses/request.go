// Package responses translates OpenAI's Responses API (POST /v1/responses)
// to and from the gateway's pivot, chat completions
// (l7/translate/chatwire): the request into a chat request, the chat
// response into a Response object, and the chat stream, chunk by chunk,
// into the Responses streaming events with their sequence numbers.
//
// Mapping. instructions become the first system message; input is a
// string (one user message) or a list of items: messages (roles user,
// assistant, system, and developer sent as system, which every
// chat-compatible server reads; content as a string or input_text,
// output_text, input_image and refusal parts), function_call items
// (consecutive ones become one assistant message's tool_calls) and
// function_call_output items (tool messages). reasoning items from an
// earlier turn are dropped, as chat has no field for them. Function tools
// become chat function tools, text.format json_schema and json_object
// become response_format, max_output_tokens becomes max_completion_tokens
// and reasoning.effort becomes reasoning_effort.
//
// The gateway is stateless: previous_response_id, conversation,
// background mode and item references need stored responses, and built-in
// tools (web and file search, code interpreter) need OpenAI's service, so
// they are refused 400 by name. store is accepted and nothing is stored.
//
// Back, a finish reason of length makes the response incomplete with
// reason max_output_tokens (content_filter: reason content_filter); usage
// maps prompt and completion tokens with their cached and reasoning
// details.
package responses

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/infergate/infergate/l7/translate/chatwire"
)

// Bounds on what a request may hold.
const (
	maxItems = 4096
	maxParts = 256
	maxTools = 512
)

// Info is what the gateway keeps of a translated request: what the
// response object echoes back.
type Info struct {
	Model  string
	Stream bool
	Echo   Echo
}

// Echo is the request's settings that a Response object repeats.
type Echo struct {
	Instructions      *string
	MaxOutputTokens   *int64
	Temperature       *float64
	TopP              *float64
	ParallelToolCalls *bool
	Tools             json.RawMessage
	ToolChoice        json.RawMessage
	Text              json.RawMessage
	Metadata          json.RawMessage
	User              string
}

type request struct {
	Model              string          `json:"model"`
	Input              json.RawMessage `json:"input"`
	Instructions       *string         `json:"instructions"`
	Tools              json.RawMessage `json:"tools"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	Text               json.RawMessage `json:"text"`
	Metadata           json.RawMessage `json:"metadata"`
	Conversation       json.RawMessage `json:"conversation"`
	Prompt             json.RawMessage `json:"prompt"`
	MaxOutputTokens    *int64          `json:"max_output_tokens"`
	Temperature        *float64        `json:"temperature"`
	TopP               *float64        `json:"top_p"`
	Stream             bool            `json:"stream"`
	ParallelToolCalls  *bool           `json:"parallel_tool_calls"`
	User               string          `json:"user"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Background         *bool           `json:"background"`
	Reasoning          *struct {
		Effort *string `json:"effort"`
	} `json:"reasoning"`
}

type textConfig struct {
	Format *struct {
		Type        string          `json:"type"`
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Schema      json.RawMessage `json:"schema"`
		Strict      *bool           `json:"strict"`
	} `json:"format"`
}

type tool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	Strict      *bool           `json:"strict"`
}

// knownKeys are the top-level keys read or knowingly ignored (hints with
// no effect on the answer: store, metadata, include, truncation,
// service_tier, prompt_cache_key, safety_identifier, stream_options).
var knownKeys = map[string]bool{
	"model": true, "input": true, "instructions": true, "tools": true, "tool_choice": true, "text": true,
	"max_output_tokens": true, "temperature": true, "top_p": true, "stream": true, "parallel_tool_calls": true,
	"user": true, "previous_response_id": true, "background": true, "reasoning": true, "store": true,
	"metadata": true, "include": true, "truncation": true, "service_tier": true, "prompt_cache_key": true,
	"safety_identifier": true, "stream_options": true, "conversation": true, "prompt": true,
}

// stateful are the keys that need stored responses.
var stateful = map[string]string{
	"conversation": "conversations need stored state",
	"prompt":       "stored prompt templates need OpenAI's service",
}

type item struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments *string         `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

type part struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Refusal  string `json:"refusal"`
	ImageURL string `json:"image_url"`
	FileID   string `json:"file_id"`
	Detail   string `json:"detail"`
}

// ToChat translates a Responses API request body into a chat-completions
// request body. A refused request's error is a *chatwire.RequestError.
func ToChat(body []byte) ([]byte, Info, error) {
	var r request
	if err := chatwire.DecodeRequest(body, &r, knownKeys, "parameter"); err != nil {
		return nil, Info{}, err
	}
	if !chatwire.IsNull(r.Conversation) {
		return nil, Info{}, chatwire.Bad("conversation", "not supported by this gateway: "+stateful["conversation"])
	}
	if !chatwire.IsNull(r.Prompt) {
		return nil, Info{}, chatwire.Bad("prompt", "not supported by this gateway: "+stateful["prompt"])
	}
	var tools []tool
	if !chatwire.IsNull(r.Tools) {
		if err := json.Unmarshal(r.Tools, &tools); err != nil {
			return nil, Info{}, chatwire.Bad("tools", "must be a list of tools: "+chatwire.JSONReason(err))
		}
	}
	var text *textConfig
	if !chatwire.IsNull(r.Text) {
		if err := json.Unmarshal(r.Text, &text); err != nil {
			return nil, Info{}, chatwire.Bad("text", "invalid: "+chatwire.JSONReason(err))
		}
	}
	if r.PreviousResponseID != nil && *r.PreviousResponseID != "" {
		return nil, Info{}, chatwire.Bad("previous_response_id", "not supported: this gateway is stateless and stores no responses; send the conversation's items in input")
	}
	if r.Background != nil && *r.Background {
		return nil, Info{}, chatwire.Bad("background", "not supported: this gateway is stateless")
	}
	if r.Model == "" {
		return nil, Info{}, chatwire.Bad("model", "Missing required parameter: 'model'.")
	}
	if r.MaxOutputTokens != nil && *r.MaxOutputTokens < 1 {
		return nil, Info{}, chatwire.Bad("max_output_tokens", "must be at least 1")
	}
	out := chatwire.Request{Model: r.Model, Stream: r.Stream, Temperature: r.Temperature, TopP: r.TopP,
		ParallelToolCalls: r.ParallelToolCalls, User: r.User, MaxCompletionTokens: r.MaxOutputTokens}
	if r.Reasoning != nil && r.Reasoning.Effort != nil {
		out.ReasoningEffort = *r.Reasoning.Effort
	}
	if r.Instructions != nil && *r.Instructions != "" {
		out.Messages = append(out.Messages, chatwire.Message{Role: "system", Content: chatwire.TextContent(*r.Instructions)})
	}
	if err := addInput(&out, r.Input); err != nil {
		return nil, Info{}, err
	}
	if err := addTools(&out, tools, r.ToolChoice); err != nil {
		return nil, Info{}, err
	}
	if err := addFormat(&out, text); err != nil {
		return nil, Info{}, err
	}
	b, err := json.Marshal(&out)
	if err != nil {
		return nil, Info{}, chatwire.Bad("", "the request could not be translated: "+err.Error())
	}
	info := Info{Model: r.Model, Stream: r.Stream, Echo: Echo{Instructions: r.Instructions, MaxOutputTokens: r.MaxOutputTokens,
		Temperature: r.Temperature, TopP: r.TopP, ParallelToolCalls: r.ParallelToolCalls, User: r.User,
		Tools: compact(r.Tools), ToolChoice: compact(r.ToolChoice), Text: compact(r.Text), Metadata: compact(r.Metadata)}}
	return b, info, nil
}

func compact(raw json.RawMessage) json.RawMessage {
	if chatwire.IsNull(raw) {
		return nil
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return nil
	}
	return b.Bytes()
}

func at(i int, rest string) string { return "input[" + strconv.Itoa(i) + "]" + rest }

func addInput(out *chatwire.Request, raw json.RawMessage) error {
	if chatwire.IsNull(raw) {
		return chatwire.Bad("input", "Missing required parameter: 'input'.")
	}
	raw = bytes.TrimSpace(raw)
	if raw[0] == '"' {
		// Passed on as the JSON text it came as (see messages.addMessage).
		out.Messages = append(out.Messages, chatwire.Message{Role: "user", Content: chatwire.RawText(raw)})
		return nil
	}
	var items []item
	if err := json.Unmarshal(raw, &items); err != nil {
		return chatwire.Bad("input", "must be a string or a list of input items: "+chatwire.JSONReason(err))
	}
	if len(items) == 0 {
		return chatwire.Bad("input", "at least one input item is required")
	}
	if len(items) > maxItems {
		return chatwire.Bad("input", "too many input items")
	}
	for i := range items {
		it := &items[i]
		switch it.Type {
		case "", "message":
			if err := addMessage(out, it, i); err != nil {
				return err
			}
		case "function_call":
			if it.CallID == "" || it.Name == "" {
				return chatwire.Bad(at(i, ""), "a function_call item needs call_id and name")
			}
			args := "{}"
			if it.Arguments != nil && *it.Arguments != "" {
				args = *it.Arguments
			}
			call := chatwire.ToolCall{ID: it.CallID, Type: "function", Function: chatwire.FunctionCall{Name: it.Name, Arguments: args}}
			// Consecutive calls are one assistant turn that called several
			// tools, as chat writes it.
			if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == "assistant" && len(out.Messages[n-1].ToolCalls) > 0 {
				out.Messages[n-1].ToolCalls = append(out.Messages[n-1].ToolCalls, call)
			} else {
				out.Messages = append(out.Messages, chatwire.Message{Role: "assistant", ToolCalls: []chatwire.ToolCall{call}})
			}
		case "function_call_output":
			if it.CallID == "" {
				return chatwire.Bad(at(i, ".call_id"), "Missing required parameter")
			}
			text, err := outputText(it.Output, at(i, ".output"))
			if err != nil {
				return err
			}
			out.Messages = append(out.Messages, chatwire.Message{Role: "tool", ToolCallID: it.CallID, Content: chatwire.TextContent(text)})
		case "reasoning":
			// An earlier turn's reasoning: no chat field carries it.
		case "item_reference":
			return chatwire.Bad(at(i, ".type"), "item references need stored responses; this gateway is stateless")
		default:
			return chatwire.Bad(at(i, ".type"), "input item type "+strconv.Quote(it.Type)+" cannot be translated")
		}
	}
	return nil
}

func addMessage(out *chatwire.Request, it *item, i int) error {
	role := it.Role
	switch role {
	case "user", "assistant", "system":
	case "developer":
		role = "system"
	default:
		return chatwire.Bad(at(i, ".role"), "must be user, assistant, system or developer")
	}
	if chatwire.IsNull(it.Content) {
		return chatwire.Bad(at(i, ".content"), "Missing required parameter")
	}
	c := bytes.TrimSpace(it.Content)
	if c[0] == '"' {
		out.Messages = append(out.Messages, chatwire.Message{Role: role, Content: chatwire.RawText(c)})
		return nil
	}
	var parts []part
	if err := json.Unmarshal(c, &parts); err != nil {
		return chatwire.Bad(at(i, ".content"), "must be a string or a list of content parts")
	}
	if len(parts) > maxParts {
		return chatwire.Bad(at(i, ".content"), "too many content parts")
	}
	var cps []chatwire.Part
	for j := range parts {
		p := &parts[j]
		where := at(i, ".content["+strconv.Itoa(j)+"]")
		switch p.Type {
		case "input_text", "output_text", "text":
			cps = append(cps, chatwire.Part{Type: "text", Text: p.Text})
		case "refusal":
			cps = append(cps, chatwire.Part{Type: "text", Text: p.Refusal})
		case "input_image":
			if role != "user" {
				return chatwire.Bad(where, "images are only allowed in user messages")
			}
			if p.ImageURL == "" {
				return chatwire.Bad(where+".image_url", "an image_url is required (file_id needs OpenAI's file store)")
			}
			d := p.Detail
			if d != "" && d != "auto" && d != "low" && d != "high" {
				return chatwire.Bad(where+".detail", "must be auto, low or high")
			}
			cps = append(cps, chatwire.Part{Type: "image_url", ImageURL: &chatwire.ImageURL{URL: p.ImageURL, Detail: d}})
		default:
			return chatwire.Bad(where+".type", "content part type "+strconv.Quote(p.Type)+" cannot be translated")
		}
	}
	if role == "user" {
		out.Messages = append(out.Messages, chatwire.Message{Role: role, Content: chatwire.PartsContent(cps)})
		return nil
	}
	// Assistant and system contents are text in every chat server.
	var sb strings.Builder
	for _, p := range cps {
		sb.WriteString(p.Text)
	}
	out.Messages = append(out.Messages, chatwire.Message{Role: role, Content: chatwire.TextContent(sb.String())})
	return nil
}

// outputText is a function_call_output's output: a string, or its text
// parts joined.
func outputText(raw json.RawMessage, where string) (string, error) {
	if chatwire.IsNull(raw) {
		return "", chatwire.Bad(where, "Missing required parameter")
	}
	raw = bytes.TrimSpace(raw)
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", chatwire.Bad(where, "invalid string")
		}
		return s, nil
	}
	var parts []part
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", chatwire.Bad(where, "must be a string or a list of text parts")
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "input_text" && p.Type != "output_text" {
			return "", chatwire.Bad(where, "only text parts can be translated in a function output")
		}
		sb.WriteString(p.Text)
	}
	return sb.String(), nil
}

func addTools(out *chatwire.Request, tools []tool, choice json.RawMessage) error {
	if len(tools) > maxTools {
		return chatwire.Bad("tools", "too many tools")
	}
	for i, t := range tools {
		p := "tools[" + strconv.Itoa(i) + "]"
		if t.Type != "function" {
			return chatwire.Bad(p+".type", "tool type "+strconv.Quote(t.Type)+" needs OpenAI's service; only function tools can be translated")
		}
		if t.Name == "" {
			return chatwire.Bad(p+".name", "Missing required parameter")
		}
		params := bytes.TrimSpace(t.Parameters)
		if len(params) > 0 && string(params) != "null" && params[0] != '{' {
			return chatwire.Bad(p+".parameters", "must be a JSON Schema object")
		}
		if string(params) == "null" {
			params = nil
		}
		out.Tools = append(out.Tools, chatwire.Tool{Type: "function", Function: chatwire.Function{
			Name: t.Name, Description: t.Description, Parameters: params, Strict: t.Strict}})
	}
	tc := bytes.TrimSpace(choice)
	if chatwire.IsNull(tc) {
		return nil
	}
	if tc[0] == '"' {
		var s string
		_ = json.Unmarshal(tc, &s)
		if s != "auto" && s != "none" && s != "required" {
			return chatwire.Bad("tool_choice", "must be auto, none, required or a function")
		}
		out.ToolChoice = tc
		return nil
	}
	var fc struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(tc, &fc); err != nil || fc.Type != "function" || fc.Name == "" {
		return chatwire.Bad("tool_choice", "must be auto, none, required or {\"type\":\"function\",\"name\":...}")
	}
	b, _ := json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": fc.Name}})
	out.ToolChoice = b
	return nil
}

func addFormat(out *chatwire.Request, t *textConfig) error {
	if t == nil || t.Format == nil {
		return nil
	}
	f := t.Format
	switch f.Type {
	case "text", "":
	case "json_object":
		out.ResponseFormat = &chatwire.ResponseFormat{Type: "json_object"}
	case "json_schema":
		s := bytes.TrimSpace(f.Schema)
		if len(s) == 0 || s[0] != '{' {
			return chatwire.Bad("text.format.schema", "must be a JSON Schema object")
		}
		if f.Name == "" {
			return chatwire.Bad("text.format.name", "Missing required parameter")
		}
		out.ResponseFormat = &chatwire.ResponseFormat{Type: "json_schema",
			JSONSchema: &chatwire.JSONSchema{Name: f.Name, Description: f.Description, Schema: s, Strict: f.Strict}}
	default:
		return chatwire.Bad("text.format.type", "must be text, json_object or json_schema")
	}
	return nil
}
