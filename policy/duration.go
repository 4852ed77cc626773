package policy

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration written as "1.5s", "200ms" in documents.
type Duration time.Duration

// D returns the standard library value.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String prints the duration the way time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes the duration the way time.Duration prints it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses "1.5s", "200ms", "2m".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (examples: 500ms, 2s, 1m)", string(b))
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON keeps JSON and YAML forms the same.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts the string form.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"2s\"")
	}
	return d.UnmarshalText([]byte(s))
}
