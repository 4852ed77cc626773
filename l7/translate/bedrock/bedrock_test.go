package bedrock

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infergate/infergate/l7/translate/chatwire"
	"github.com/infergate/infergate/l7/translate/outbound"
	"github.com/infergate/infergate/test/providers"
)

const (
	akid   = "AKIDEXAMPLE"
	secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

func newRT(t *testing.T) (*outbound.Transport, *providers.Bedrock) {
	s := providers.NewBedrock(akid, secret, "us-east-1")
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return &outbound.Transport{T: &Translator{BaseURL: ts.URL, Region: "us-east-1", Credentials: StaticCredentials{AccessKeyID: akid, SecretAccessKey: secret}},
		Base: http.DefaultTransport}, s
}

// TestSuite: chat completions through Converse / ConverseStream (SigV4
// verified by the stand-in, event-stream framed answers) and back.
func TestSuite(t *testing.T) {
	rt, s := newRT(t)
	providers.RunSuite(t, rt, s, providers.Kind{LengthStop: "max_tokens", FilterStop: "guardrail_intervened"})
}

// TestSignatureVerified: a request signed with another secret, or with a
// clock five minutes off, is refused by the stand-in (so the suite's
// passing means the signature really verified), and the refusal is a 403
// the gateway treats as its own credential's failure.
func TestSignatureVerified(t *testing.T) {
	rt, s := newRT(t)
	s.Always(providers.Reply{Text: "ok"})
	rt.T.(*Translator).Credentials = StaticCredentials{AccessKeyID: akid, SecretAccessKey: secret + "x"}
	if st, cr := providers.Whole(t, rt, `{"model":"anthropic.claude-3-haiku-20240307-v1:0","messages":[{"role":"user","content":"hi"}]}`); st != 403 || cr.Error.Type != "authentication_error" {
		t.Fatalf("%d %+v", st, cr.Error)
	}
	rt.T.(*Translator).Credentials = StaticCredentials{AccessKeyID: akid, SecretAccessKey: secret}
	rt.T.(*Translator).Now = func() time.Time { return time.Now().Add(-6 * time.Minute) }
	if st, _ := providers.Whole(t, rt, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`); st != 403 {
		t.Fatal(st)
	}
	rt.T.(*Translator).Now = nil
	if st, _ := providers.Whole(t, rt, `{"model":"anthropic.claude-3-haiku-20240307-v1:0","messages":[{"role":"user","content":"hi"}]}`); st != 200 {
		t.Fatal(st)
	}
	if _, _, path := s.Last(); path != "/model/anthropic.claude-3-haiku-20240307-v1:0/converse" && path != "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse" {
		t.Fatal(path)
	}
}

// TestCredentialsFileReloaded: a rotated credentials file is used without
// a restart.
func TestCredentialsFileReloaded(t *testing.T) {
	rt, s := newRT(t)
	s.Always(providers.Reply{Text: "ok"})
	file := filepath.Join(t.TempDir(), "credentials")
	write := func(k string) {
		if err := os.WriteFile(file, []byte("[default]\naws_access_key_id = "+akid+"\naws_secret_access_key = "+k+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("stale-secret")
	sec, err := outbound.NewFileSecret(file)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sec.Now = func() time.Time { return now }
	rt.T.(*Translator).Credentials = &FileCredentials{File: sec}
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	if st, _ := providers.Whole(t, rt, body); st != 403 {
		t.Fatal(st)
	}
	write(secret)
	now = now.Add(2 * time.Second)
	if st, _ := providers.Whole(t, rt, body); st != 200 {
		t.Fatal(st)
	}
}

// TestEventStreamCRC: a flipped bit in the prelude or the message is an
// error, never a misread event.
func TestEventStreamCRC(t *testing.T) {
	msg := providers.EncodeEvent([][2]string{{":event-type", "messageStop"}, {":message-type", "event"}}, []byte(`{"stopReason":"end_turn"}`))
	m, err := NewDecoder(bytes.NewReader(msg)).Read()
	if err != nil || m.Get(":event-type") != "messageStop" || string(m.Payload) != `{"stopReason":"end_turn"}` {
		t.Fatalf("%v %+v", err, m)
	}
	for i, want := range map[int]error{9: ErrPreludeCRC, 20: ErrMessageCRC, len(msg) - 6: ErrMessageCRC} {
		bad := bytes.Clone(msg)
		bad[i] ^= 0x10
		if _, err := NewDecoder(bytes.NewReader(bad)).Read(); !errors.Is(err, want) {
			t.Errorf("byte %d flipped: %v, want %v", i, err, want)
		}
	}
	if _, err := NewDecoder(bytes.NewReader(msg[:len(msg)-3])).Read(); err != io.ErrUnexpectedEOF {
		t.Errorf("cut message: %v", err)
	}
}

// TestStreamException: an exception message mid-stream breaks the stream.
func TestStreamException(t *testing.T) {
	var in bytes.Buffer
	in.Write(providers.EncodeEvent([][2]string{{":event-type", "messageStart"}, {":message-type", "event"}}, []byte(`{"role":"assistant"}`)))
	in.Write(providers.EncodeEvent([][2]string{{":exception-type", "throttlingException"}, {":message-type", "exception"}}, []byte(`{"message":"slow"}`)))
	d := (&Translator{}).Stream(&in, &chatwire.Request{})
	n := 0
	emit := func(*chatwire.Chunk) { n++ }
	if err := d.Next(emit); err != nil || n != 1 {
		t.Fatal(err, n)
	}
	if err := d.Next(emit); !errors.Is(err, ErrException) || !strings.Contains(err.Error(), "throttling") {
		t.Fatal(err)
	}
}

// FuzzBody: any chat request translates to a valid Converse body with
// alternating turns, or is refused; never a panic.
func FuzzBody(f *testing.F) {
	f.Add(`{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}],"max_tokens":5}`)
	f.Add(`{"model":"m","messages":[{"role":"user","content":"w?"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"a","content":"1"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required"}`)
	f.Fuzz(func(t *testing.T, in string) {
		var r chatwire.Request
		if json.Unmarshal([]byte(in), &r) != nil {
			return
		}
		b, err := Body(&r)
		if err != nil {
			return
		}
		var out converseRequest
		if err := json.Unmarshal(b, &out); err != nil || len(out.Messages) == 0 {
			t.Fatalf("invalid %s: %v", b, err)
		}
		for i := 1; i < len(out.Messages); i++ {
			if out.Messages[i].Role == out.Messages[i-1].Role {
				t.Fatalf("turns do not alternate: %s", b)
			}
		}
	})
}

// FuzzStream: any bytes decode as event-stream messages or fail; never a
// panic or an endless loop.
func FuzzStream(f *testing.F) {
	f.Add(providers.EncodeEvent([][2]string{{":event-type", "contentBlockDelta"}, {":message-type", "event"}}, []byte(`{"contentBlockIndex":0,"delta":{"text":"hi"}}`)))
	f.Add(append(providers.EncodeEvent([][2]string{{":event-type", "messageStop"}, {":message-type", "event"}}, []byte(`{"stopReason":"tool_use"}`)),
		providers.EncodeEvent([][2]string{{":event-type", "metadata"}, {":message-type", "event"}}, []byte(`{"usage":{"inputTokens":1}}`))...))
	f.Fuzz(func(t *testing.T, in []byte) {
		d := (&Translator{}).Stream(bytes.NewReader(in), &chatwire.Request{})
		for i := 0; i < len(in)+2; i++ {
			if err := d.Next(func(c *chatwire.Chunk) {
				if _, err := json.Marshal(c); err != nil {
					t.Fatal(err)
				}
			}); err != nil {
				return
			}
		}
		t.Fatal("decoder did not end")
	})
}

// TestToolChoiceNoneWithToolHistory: Converse refuses tool blocks without
// a toolConfig, so tool_choice "none" keeps the tools when the history
// holds tool calls.
func TestToolChoiceNoneWithToolHistory(t *testing.T) {
	rt, s := newRT(t)
	s.Always(providers.Reply{Text: "21 degrees."})
	body := `{"model":"m","tool_choice":"none","tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],"messages":[{"role":"user","content":"Paris?"},{"role":"assistant","tool_calls":[{"id":"t1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"t1","content":"21"}]}`
	if st, cr := providers.Whole(t, rt, body); st != 200 {
		t.Fatalf("%d %+v", st, cr.Error)
	}
}
