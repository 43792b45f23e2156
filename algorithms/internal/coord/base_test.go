package coord

import (
	"errors"
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/protocol"
)

func TestValidate(t *testing.T) {
	c := func(id string, peers ...string) protocol.Container {
		return protocol.Container{ID: id, Node: "n", Peers: peers}
	}
	bad := map[string][]protocol.Container{
		"empty":      nil,
		"no id":      {c("")},
		"duplicate":  {c("a"), c("a")},
		"unknown":    {c("a", "x")},
		"self":       {c("a", "a")},
		"asymmetric": {c("a", "b"), c("b")},
	}
	for name, cs := range bad {
		if _, err := Validate(cs); !errors.Is(err, algorithms.ErrBadRequest) {
			t.Errorf("%s: err = %v, want ErrBadRequest", name, err)
		}
	}
	if idx, err := Validate([]protocol.Container{c("a", "b"), c("b", "a"), c("z")}); err != nil || idx["z"] != 2 {
		t.Errorf("valid set: %v %v", idx, err)
	}
}

func TestRecoverRejectsBadRecords(t *testing.T) {
	var b Base
	b.Init("blocking", algorithms.Config{})
	for name, rec := range map[string]string{
		"not json":        `{`,
		"other algorithm": `{"algorithm":"minimal","epoch":1,"snapshot":"s","phase":"active","containers":[{"id":"a","node":"n"}]}`,
		"bad phase":       `{"algorithm":"blocking","epoch":1,"snapshot":"s","phase":"weird","containers":[{"id":"a","node":"n"}]}`,
	} {
		if _, err := b.Recover([]byte(rec)); !errors.Is(err, algorithms.ErrBadRecord) {
			t.Errorf("%s: err = %v, want ErrBadRecord", name, err)
		}
	}
}
