package query

import (
	"context"
	"fmt"
)

// RebuildProjection asks for a blue-green rebuild of a projection
// (admin-only POST /api/admin/projections/{name}/rebuild -> 202 with the
// generation; progress in the status). Not a query: an admin command that
// goes to the runner, kept here beside the status it shows in.
type RebuildProjection struct {
	Name string
}

// RebuildStarted answers RebuildProjection.
type RebuildStarted struct {
	Name       string `json:"name"`
	Generation string `json:"generation"`
}

// RebuildProjectionHandler answers RebuildProjection.
type RebuildProjectionHandler struct{ admin ProjectionAdmin }

func NewRebuildProjectionHandler(a ProjectionAdmin) *RebuildProjectionHandler {
	return &RebuildProjectionHandler{a}
}

func (h *RebuildProjectionHandler) Handle(ctx context.Context, q RebuildProjection) (RebuildStarted, error) {
	gen, err := h.admin.Rebuild(ctx, q.Name)
	if err != nil {
		return RebuildStarted{}, fmt.Errorf("rebuild projection: %w", err)
	}
	return RebuildStarted{Name: q.Name, Generation: gen}, nil
}
