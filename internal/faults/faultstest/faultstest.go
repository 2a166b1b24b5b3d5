// Package faultstest has what tests of components that wait through
// outages share: an Observer that keeps what it heard. For tests only.
package faultstest

import (
	"sync"

	"github.com/taskqueue/taskqueue/internal/faults"
)

// Recorder is a faults.Observer that keeps what it heard, per component.
type Recorder struct {
	mu       sync.Mutex
	errs     map[string]int
	degraded map[string][]bool
}

var _ faults.Observer = (*Recorder)(nil)

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{errs: map[string]int{}, degraded: map[string][]bool{}}
}

// TransientError counts one transient failure of component.
func (r *Recorder) TransientError(component string, _ faults.Kind) {
	r.mu.Lock()
	r.errs[component]++
	r.mu.Unlock()
}

// Degraded records that component entered (true) or left an outage.
func (r *Recorder) Degraded(component string, d bool) {
	r.mu.Lock()
	r.degraded[component] = append(r.degraded[component], d)
	r.mu.Unlock()
}

// Errors returns how many transient failures of component it heard.
func (r *Recorder) Errors(component string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errs[component]
}

// Transitions returns component's outage transitions in order.
func (r *Recorder) Transitions(component string) []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.degraded[component]...)
}
