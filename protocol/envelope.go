package protocol

// Envelope is one message. In memory Body holds a pointer to the body struct of Type
// (see BodyFor), or nil for a type without a body; the codec turns it into JSON.
type Envelope struct {
	// Version is the envelope version; senders set Version (Encode fills a zero).
	Version uint16
	// Type says what the message is and what Body holds.
	Type Type
	// Snapshot is the id of the snapshot the message belongs to ("" for none).
	Snapshot string
	// Epoch is the per-stack snapshot sequence number assigned by the coordinator,
	// strictly increasing from one snapshot to the next. Receivers drop messages whose
	// epoch is lower than the highest they have seen for the stack.
	Epoch uint64
	// From and To are the sender and receiver.
	From, To Addr
	// Deadline bounds what the message asks for (how long a lock or freeze may be held).
	Deadline Deadline
	// Body is the typed payload: *SnapshotRequest, *Lock, *Result, ... or nil.
	Body any
}

// Deadline bounds how long the receiver may hold what the message asks for. Algorithms
// use Ticks only (logical time, no clocks); the I/O edge may add UnixMilli for watchdogs
// that run on wall time.
type Deadline struct {
	// Ticks is a time-to-live in the receiver's logical ticks, counted from the moment
	// the receiver first acts on the message; 0 means none.
	Ticks uint64 `json:"ticks,omitempty"`
	// UnixMilli is an absolute wall-clock deadline in Unix milliseconds; 0 means none.
	UnixMilli int64 `json:"unix_ms,omitempty"`
}

// IsZero reports whether no deadline is set.
func (d Deadline) IsZero() bool { return d.Ticks == 0 && d.UnixMilli == 0 }
