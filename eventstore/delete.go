package eventstore

import "strings"

// DeletedType is the event type of a tombstone: the row left at the
// position of an event of a deleted stream (see "Deleted streams" in the
// package doc). No reader of the global log is handed one.
const DeletedType = "$deleted"

// DeletedStreamPrefix starts the name of the stream that holds the
// tombstones of one deletion ("$deleted-<uuid>"). ValidateStreamID accepts
// no name with it, so nothing can append there.
const DeletedStreamPrefix = "$deleted-"

// DeleteResult reports a DeleteStream.
type DeleteResult struct {
	// Events is the number of events erased (the stream's version before).
	Events int64
	// Last is the position of the last event erased (Start when none): a
	// reader that has passed it can no longer be handed any of them.
	Last Position
}

// IsDeletedStream reports whether stream holds tombstones.
func IsDeletedStream(stream string) bool { return strings.HasPrefix(stream, DeletedStreamPrefix) }
