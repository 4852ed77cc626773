package chatwire

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/infergate/infergate/internal/jsonstr"
)

// Content is a message's content: null (the zero value: an assistant
// message that only calls tools), a string, or an array of parts.
//
// It is written by its pointer method, so a message is written as part of
// a request marshalled through its pointer (json.Marshal(&r)); that way a
// string content costs no boxing and a RawText none at all.
type Content struct {
	// Text is the content when it is a string (a RawText's is not
	// decoded: only Texts and JoinedText read it).
	Text string
	// Parts is the content when it is an array (IsParts).
	Parts []Part
	// IsParts is set when the content is an array.
	IsParts bool

	// str says the content is a string even when Text is empty.
	str bool
	// raw is a string content as its JSON text, written as it came.
	raw json.RawMessage
}

// Part is one content part: text or image_url.
type Part struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`
}

// ImageURL is an image part's location: a data: URL or an http(s) URL.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// TextContent is a string content.
func TextContent(s string) Content { return Content{Text: s, str: true} }

// RawText is a string content given as its JSON text (a string the client
// sent), written as it came so that a long prompt is not decoded and
// encoded again.
func RawText(raw json.RawMessage) Content { return Content{raw: raw, str: true} }

// PartsContent is an array content.
func PartsContent(parts []Part) Content { return Content{Parts: parts, IsParts: true} }

// UnmarshalJSON takes a string, null, or an array of parts.
func (c *Content) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*c = Content{}
		return nil
	case b[0] == '"':
		*c = Content{str: true}
		return json.Unmarshal(b, &c.Text)
	case b[0] == '[':
		*c = Content{IsParts: true}
		return json.Unmarshal(b, &c.Parts)
	}
	return errors.New("content must be a string, an array of parts or null")
}

// MarshalJSON writes what was read or made: null, a string or an array.
func (c *Content) MarshalJSON() ([]byte, error) {
	switch {
	case c.IsParts:
		return json.Marshal(c.Parts)
	case c.raw != nil:
		return c.raw, nil
	case c.str || c.Text != "":
		// Sized for the common case of nothing to escape: one allocation.
		return jsonstr.Append(make([]byte, 0, len(c.Text)+2), c.Text, true), nil
	}
	return []byte("null"), nil
}

// Texts calls f with each text of the content, in order.
func (c *Content) Texts(f func(string)) {
	if !c.IsParts {
		if s := c.string(); s != "" {
			f(s)
		}
		return
	}
	for _, p := range c.Parts {
		if p.Type == "text" && p.Text != "" {
			f(p.Text)
		}
	}
}

// JoinedText is the content's texts joined by newlines.
func (c *Content) JoinedText() string {
	if !c.IsParts {
		return c.string()
	}
	var b []byte
	c.Texts(func(s string) {
		if len(b) > 0 {
			b = append(b, '\n')
		}
		b = append(b, s...)
	})
	return string(b)
}

// string is a string content's text, a RawText's decoded.
func (c *Content) string() string {
	if c.raw == nil {
		return c.Text
	}
	var s string
	_ = json.Unmarshal(c.raw, &s)
	return s
}
