package protocol

// Envelope versions this build speaks. A sender always writes Version; a receiver accepts
// any version in [MinVersion, MaxVersion].
const (
	// Version is the envelope version written by this build.
	Version uint16 = 1
	// MinVersion is the oldest envelope version this build accepts.
	MinVersion uint16 = 1
	// MaxVersion is the newest envelope version this build accepts.
	MaxVersion uint16 = 1
)

// SupportsVersion reports whether v is in [MinVersion, MaxVersion].
func SupportsVersion(v uint16) bool { return v >= MinVersion && v <= MaxVersion }
