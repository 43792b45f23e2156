package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
)

// wire is the JSON form of an Envelope. Field order is fixed, so encodings are
// deterministic (bodies are structs; no maps).
type wire struct {
	V        uint16          `json:"v"`
	Type     Type            `json:"type"`
	Snapshot string          `json:"snapshot,omitempty"`
	Epoch    uint64          `json:"epoch,omitempty"`
	From     Addr            `json:"from"`
	To       Addr            `json:"to"`
	Deadline *Deadline       `json:"deadline,omitempty"`
	Body     json.RawMessage `json:"body,omitempty"`
}

// Encode returns the wire form of e. A zero Version is written as Version. The body
// must be the pointer type BodyFor(e.Type) returns (or nil).
func Encode(e Envelope) ([]byte, error) {
	if e.Version == 0 {
		e.Version = Version
	}
	if !SupportsVersion(e.Version) {
		return nil, &VersionError{Got: e.Version, Min: MinVersion, Max: MaxVersion}
	}
	if !e.Type.Known() {
		return nil, &TypeError{Type: e.Type}
	}
	w := wire{V: e.Version, Type: e.Type, Snapshot: e.Snapshot, Epoch: e.Epoch, From: e.From, To: e.To}
	if !e.Deadline.IsZero() {
		d := e.Deadline
		w.Deadline = &d
	}
	if e.Body != nil {
		want := BodyFor(e.Type)
		if want == nil || reflect.TypeOf(want) != reflect.TypeOf(e.Body) {
			return nil, fmt.Errorf("protocol: %s message with body %T, want %T: %w", e.Type, e.Body, want, ErrMalformed)
		}
		b, err := json.Marshal(e.Body)
		if err != nil {
			return nil, fmt.Errorf("protocol: encode %s body: %w", e.Type, err)
		}
		w.Body = b
	}
	return json.Marshal(w)
}

// Decode parses the wire form. Unknown versions fail with *VersionError, unknown types
// with *TypeError, anything else that is not a valid envelope with ErrMalformed.
func Decode(b []byte) (Envelope, error) {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return Envelope{}, fmt.Errorf("protocol: decode envelope: %v: %w", err, ErrMalformed)
	}
	if !SupportsVersion(w.V) {
		return Envelope{}, &VersionError{Got: w.V, Min: MinVersion, Max: MaxVersion}
	}
	if !w.Type.Known() {
		return Envelope{}, &TypeError{Type: w.Type}
	}
	e := Envelope{Version: w.V, Type: w.Type, Snapshot: w.Snapshot, Epoch: w.Epoch, From: w.From, To: w.To}
	if w.Deadline != nil {
		e.Deadline = *w.Deadline
	}
	if len(w.Body) > 0 && !bytes.Equal(w.Body, []byte("null")) {
		body := BodyFor(w.Type)
		if body == nil {
			return Envelope{}, fmt.Errorf("protocol: %s message carries a body but its type has none: %w", w.Type, ErrMalformed)
		}
		if err := json.Unmarshal(w.Body, body); err != nil {
			return Envelope{}, fmt.Errorf("protocol: decode %s body: %v: %w", w.Type, err, ErrMalformed)
		}
		e.Body = body
	}
	return e, nil
}
