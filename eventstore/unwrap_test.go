package eventstore_test

import (
	"testing"

	"github.com/taskqueue/taskqueue/eventstore"
)

type (
	base      struct{ eventstore.Store }
	decorator struct{ eventstore.Store }
	special   struct{ base }
)

func (d decorator) Unwrap() eventstore.Store { return d.Store }
func (special) Special() string              { return "special" }

type specialer interface{ Special() string }

// As finds a capability through any number of decorators, and reports
// its absence.
func TestAsLooksThroughDecorators(t *testing.T) {
	inner := special{}
	wrapped := decorator{decorator{inner}}
	if s, ok := eventstore.As[specialer](wrapped); !ok || s.Special() != "special" {
		t.Fatalf("As through two decorators: %v, %v", s, ok)
	}
	if _, ok := eventstore.As[specialer](decorator{base{}}); ok {
		t.Fatal("As found a capability the store does not have")
	}
	if _, ok := eventstore.As[specialer](base{}); ok {
		t.Fatal("As found a capability on a plain store without it")
	}
}
