package coord

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/swarmckpt/swarmckpt/protocol"
)

// filled returns a value of type T with every exported field set to a non-zero value
// (strings, unsigned and signed integers, bools, string slices), so that an encoder
// that forgets a field, e.g. one added to the protocol later, differs from
// json.Marshal.
func filled[T any](t *testing.T) T {
	var v T
	rv := reflect.ValueOf(&v).Elem()
	for i := range rv.NumField() {
		f := rv.Field(i)
		if !rv.Type().Field(i).IsExported() {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString("v<" + rv.Type().Field(i).Name + ">")
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(uint64(i + 1))
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice:
			if f.Type().Elem().Kind() != reflect.String {
				t.Fatalf("%s.%s: a slice of %s: teach filled (and the encoder) about it", rv.Type(), rv.Type().Field(i).Name, f.Type().Elem())
			}
			f.Set(reflect.ValueOf([]string{"p1", "p2"}))
		default:
			t.Fatalf("%s.%s is a %s: teach filled (and the encoder) about it", rv.Type(), rv.Type().Field(i).Name, f.Kind())
		}
	}
	return v
}

// TestEncodersCoverEveryField: the hand-written encoders of the coordinators' records
// write every field of the protocol types they encode, as json.Marshal does (a field
// added to protocol.ConnCounter was once dropped from minimal's bases, so every idle
// container was dumped again).
func TestEncodersCoverEveryField(t *testing.T) {
	cc := []protocol.ConnCounter{filled[protocol.ConnCounter](t), {Peer: "only-peer"}}
	want, _ := json.Marshal(cc)
	if got := AppendConnCounters(nil, cc); !bytes.Equal(got, want) {
		t.Errorf("AppendConnCounters:\n got %s\nwant %s", got, want)
	}
	cs := []protocol.Container{filled[protocol.Container](t), {ID: "a", Node: "n"}}
	want, _ = json.Marshal(cs)
	if got := appendContainers(nil, cs); !bytes.Equal(got, want) {
		t.Errorf("appendContainers:\n got %s\nwant %s", got, want)
	}
}
