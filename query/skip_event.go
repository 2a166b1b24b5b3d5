package query

import (
	"context"
	"fmt"
)

// SkipEvent asks to move a failed projection past the event it failed on
// (admin-only POST /api/admin/projections/{name}/skip {"position":"..."}).
// An admin command that goes to the runner; By (the admin's ID) is recorded.
type SkipEvent struct {
	Name     string
	Position string
	By       string
}

// SkipEventHandler answers SkipEvent.
type SkipEventHandler struct{ admin ProjectionAdmin }

func NewSkipEventHandler(a ProjectionAdmin) *SkipEventHandler { return &SkipEventHandler{a} }

func (h *SkipEventHandler) Handle(ctx context.Context, q SkipEvent) error {
	if q.Position == "" {
		return invalid("position", "is required: the position of the event the projection failed on")
	}
	if q.By == "" {
		return invalid("by", "is required")
	}
	if err := h.admin.Skip(ctx, q.Name, q.Position, q.By); err != nil {
		return fmt.Errorf("skip event: %w", err)
	}
	return nil
}
