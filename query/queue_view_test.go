package query

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// snapshots answers a scripted sequence of (queue version, progress
// version) pairs, then repeats the last.
type snapshots struct {
	mu    sync.Mutex
	pairs [][2]int64
	reads int
}

func (s *snapshots) QueueSnapshot(_ context.Context, p domain.PlayerID) (QueueSnapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pr := s.pairs[min(s.reads, len(s.pairs)-1)]
	s.reads++
	return QueueSnapshot{View: domain.QueueView{PlayerID: p, Version: pr[0]}, ProgressVersion: pr[1]}, nil
}

// The tasks (queue_status) and the skills and inventory (player_progress)
// of one answer are of one version: a read between the two projections'
// commits is read again.
func TestQueueViewWaitsForTheProjectionsToAgree(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		pairs [][2]int64
		min   int64
		want  int64
		reads int
	}{
		{"progress behind", [][2]int64{{5, 4}, {5, 4}, {5, 5}}, 0, 5, 3},
		{"progress ahead", [][2]int64{{5, 6}, {6, 6}}, 0, 6, 2},
		{"with minVersion", [][2]int64{{3, 3}, {5, 4}, {6, 6}}, 5, 6, 3},
		{"agree at once", [][2]int64{{7, 7}}, 0, 7, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			rm := &snapshots{pairs: c.pairs}
			h := NewQueueViewHandler(rm, nil, 0)
			h.Poll, h.MaxWait = time.Millisecond, time.Minute
			v, err := h.Handle(ctx, QueueView{PlayerID: "p1", MinVersion: c.min})
			if err != nil || v.Version != c.want || rm.reads != c.reads {
				t.Fatalf("got version %d after %d reads, %v; want %d after %d", v.Version, rm.reads, err, c.want, c.reads)
			}
			if v.Limit != domain.DefaultQueueLimit {
				t.Fatalf("limit %d", v.Limit)
			}
		})
	}

	// They never agree within the wait: without minVersion the latest view,
	// with a reached minVersion too; with one not reached, ErrStale.
	h := NewQueueViewHandler(&snapshots{pairs: [][2]int64{{5, 4}}}, nil, 0)
	h.Poll, h.MaxWait = time.Millisecond, 20*time.Millisecond
	if v, err := h.Handle(ctx, QueueView{PlayerID: "p1"}); err != nil || v.Version != 5 {
		t.Fatalf("never agreeing, no minVersion: %d, %v", v.Version, err)
	}
	if v, err := h.Handle(ctx, QueueView{PlayerID: "p1", MinVersion: 4}); err != nil || v.Version != 5 {
		t.Fatalf("never agreeing, minVersion reached: %d, %v", v.Version, err)
	}
	if _, err := h.Handle(ctx, QueueView{PlayerID: "p1", MinVersion: 5}); !errors.Is(err, ErrStale) {
		t.Fatalf("progress never reaches minVersion: %v, want ErrStale", err)
	}
	if _, err := h.Handle(ctx, QueueView{PlayerID: "p1", MinVersion: -1}); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("negative minVersion: %v", err)
	}
}

func TestQueueStateOf(t *testing.T) {
	for _, c := range []struct {
		running bool
		tasks   int
		want    QueueState
	}{
		{true, 0, QueueIdle}, {true, 1, QueueRunning}, {false, 0, QueueStopped}, {false, 4, QueueStopped},
	} {
		if got := QueueStateOf(domain.QueueView{Running: c.running, Tasks: make([]domain.TaskView, c.tasks)}); got != c.want {
			t.Errorf("running %t with %d tasks: %q, want %q", c.running, c.tasks, got, c.want)
		}
	}
}
