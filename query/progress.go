package query

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// PlayerProgress asks for a player's skills and inventory
// (GET /api/players/{playerId}/progress).
type PlayerProgress struct {
	PlayerID string
}

// PlayerProgressView is a player_progress row. A player without events has
// no skills, an empty inventory and version 0.
type PlayerProgressView struct {
	PlayerID   string                      `json:"playerId"`
	Skills     map[string]domain.SkillView `json:"skills"`
	Inventory  map[string]int64            `json:"inventory"`
	TotalXP    int64                       `json:"totalXp"`
	TotalLevel int                         `json:"totalLevel"`
	Version    int64                       `json:"version"`
	UpdatedAt  *time.Time                  `json:"updatedAt"`
}

// PlayerProgressReadModel reads player_progress.
type PlayerProgressReadModel interface {
	PlayerProgress(ctx context.Context, player domain.PlayerID) (PlayerProgressView, error)
}

// PlayerProgressHandler answers PlayerProgress.
type PlayerProgressHandler struct{ rm PlayerProgressReadModel }

func NewPlayerProgressHandler(rm PlayerProgressReadModel) *PlayerProgressHandler {
	return &PlayerProgressHandler{rm}
}

func (h *PlayerProgressHandler) Handle(ctx context.Context, q PlayerProgress) (PlayerProgressView, error) {
	player, err := domain.ParsePlayerID(q.PlayerID)
	if err != nil {
		return PlayerProgressView{}, err
	}
	v, err := h.rm.PlayerProgress(ctx, player)
	if err != nil {
		return PlayerProgressView{}, fmt.Errorf("read progress of %s: %w", player, err)
	}
	if v.Skills == nil {
		v.Skills = map[string]domain.SkillView{}
	}
	if v.Inventory == nil {
		v.Inventory = map[string]int64{}
	}
	v.PlayerID = string(player)
	return v, nil
}

func sortStrings(s []string) { slices.Sort(s) }
