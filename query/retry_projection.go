package query

import (
	"context"
	"fmt"
)

// RetryProjection asks a failed projection to try the event it failed on
// again, after its cause was fixed, or a degraded one to end its backoff
// now (admin-only POST /api/admin/projections/{name}/retry -> 202; the
// status shows the outcome). An admin command that goes to the runner.
type RetryProjection struct {
	Name string
}

// RetryProjectionHandler answers RetryProjection.
type RetryProjectionHandler struct{ admin ProjectionAdmin }

func NewRetryProjectionHandler(a ProjectionAdmin) *RetryProjectionHandler {
	return &RetryProjectionHandler{a}
}

func (h *RetryProjectionHandler) Handle(ctx context.Context, q RetryProjection) error {
	if err := h.admin.Retry(ctx, q.Name); err != nil {
		return fmt.Errorf("retry projection: %w", err)
	}
	return nil
}
