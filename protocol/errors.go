package protocol

import (
	"errors"
	"fmt"
)

// Sentinel errors; match with errors.Is.
var (
	// ErrUnknownVersion: the envelope version is outside [MinVersion, MaxVersion].
	ErrUnknownVersion = errors.New("protocol: unknown envelope version")
	// ErrUnknownType: the message type is not in this build's list.
	ErrUnknownType = errors.New("protocol: unknown message type")
	// ErrMalformed: the bytes are not a valid envelope or body.
	ErrMalformed = errors.New("protocol: malformed message")
)

// VersionError reports an envelope version this build does not speak.
type VersionError struct {
	Got      uint16
	Min, Max uint16
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("protocol: envelope version %d not supported (this build speaks %d..%d); upgrade the older side", e.Got, e.Min, e.Max)
}

// Is makes errors.Is(err, ErrUnknownVersion) true.
func (e *VersionError) Is(target error) bool { return target == ErrUnknownVersion }

// TypeError reports a message type this build does not know.
type TypeError struct {
	Type Type
}

func (e *TypeError) Error() string {
	return fmt.Sprintf("protocol: message type %d unknown to this build (highest known %d); upgrade this side", uint16(e.Type), uint16(typeEnd-1))
}

// Is makes errors.Is(err, ErrUnknownType) true.
func (e *TypeError) Is(target error) bool { return target == ErrUnknownType }
