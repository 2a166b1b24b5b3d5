package command

import (
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/taskqueue/taskqueue/domain"
)

// MaxKeyLength bounds an idempotency key.
const MaxKeyLength = 128

// eventNamespace is the UUIDv5 namespace of derived event IDs. Changing it
// makes every retry of a request sent before the change run again.
var eventNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:taskqueue:event"))

// ValidateKey checks an idempotency key: 1-128 printable ASCII characters.
func ValidateKey(key string) error {
	if len(key) == 0 || len(key) > MaxKeyLength {
		return &domain.ValidationError{Field: "Idempotency-Key", Reason: fmt.Sprintf("must be 1-%d printable ASCII characters, got %d bytes", MaxKeyLength, len(key))}
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return &domain.ValidationError{Field: "Idempotency-Key", Reason: fmt.Sprintf("must be printable ASCII without spaces, byte %d is %#x", i, key[i])}
		}
	}
	return nil
}

// fingerprint is a canonical text of a command's content: its name and
// fields (not the time, not If-Match). Two requests with one key are the
// same request exactly when their fingerprints are equal.
func fingerprint(name string, fields ...any) string {
	var b strings.Builder
	b.WriteString(name)
	for _, f := range fields {
		b.WriteByte(0x1f)
		fmt.Fprintf(&b, "%q", fmt.Sprint(f))
	}
	return b.String()
}

// derivedID returns the UUIDv5 of (stream, key, fingerprint, part).
func derivedID(stream, key, fp, part string) uuid.UUID {
	return uuid.NewSHA1(eventNamespace, []byte(stream+"\x00"+key+"\x00"+fp+"\x00"+part))
}

// eventID returns the ID of the index-th event a command appends.
func eventID(stream, key, fp string, index int) uuid.UUID {
	return derivedID(stream, key, fp, fmt.Sprintf("event-%d", index))
}
