package domain_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/taskqueue/taskqueue/domain"
)

// FuzzQueue drives random command sequences against a queue on the default
// catalog and checks the invariants after every decision: the inventory
// never goes negative, XP never decreases, the queue never exceeds its
// limit, a running queue with tasks always has a repetition, decisions only
// fail with the documented conditions, a snapshot (through JSON) restores
// the same state, and replaying every produced event
// (through JSON) onto a new queue rebuilds the same state.
func FuzzQueue(f *testing.F) {
	f.Add([]byte{0, 0, 3, 0, 1, 5, 5, 200, 0, 2, 1, 6, 1, 4, 0, 5, 255, 3, 0, 2})
	f.Add([]byte{0, 9, 2, 1, 0, 2, 2, 2, 1, 3, 6, 100, 0, 0, 5, 9, 2, 0, 4, 1, 5, 250, 5, 250})
	f.Add([]byte{0, 5, 1, 0, 0, 1, 1, 0, 6, 255, 3, 1, 0, 14, 4, 3})
	f.Fuzz(func(t *testing.T, script []byte) {
		rules := domain.Rules{Catalog: domain.DefaultCatalog(), QueueLimit: 4}
		types := rules.Catalog.Tasks()
		q := domain.NewQueue("fuzz", rules)
		var log []domain.Event
		now := t0
		next := func() int {
			if len(script) == 0 {
				return 0
			}
			b := script[0]
			script = script[1:]
			return int(b)
		}
		taskAt := func(i int) domain.TaskID {
			v := q.View()
			if len(v.Tasks) == 0 {
				return "none"
			}
			return v.Tasks[i%len(v.Tasks)].TaskID
		}
		for n := 0; len(script) > 0 && n < 64; n++ {
			now = now.Add(time.Duration(next()) * 37 * time.Millisecond)
			xpBefore := map[domain.SkillID]int64{}
			for _, s := range rules.Catalog.Skills() {
				xpBefore[s.ID] = q.XP(s.ID)
			}
			var (
				events []domain.Event
				err    error
			)
			switch op := next() % 8; op {
			case 0:
				typ := types[next()%len(types)].ID
				var pos *int
				if p := next(); p%3 == 0 {
					pos = &p
				}
				events, err = q.Enqueue(domain.TaskID(fmt.Sprintf("t%d", n)), typ, 1+next()%4, pos, now)
			case 1:
				events, err = q.Remove(taskAt(next()), now)
			case 2:
				v := q.View()
				ids := []domain.TaskID{}
				for _, tk := range v.Tasks {
					ids = append(ids, tk.TaskID)
				}
				if v.Repetition != nil && len(ids) > 0 {
					ids = ids[1:]
				}
				// Rotate, sometimes break the permutation.
				if len(ids) > 1 {
					k := next() % len(ids)
					ids = append(ids[k:], ids[:k]...)
					if next()%5 == 0 {
						ids[0] = ids[len(ids)-1]
					}
				}
				events, err = q.Reorder(ids, now)
			case 3:
				events, err = q.Stop("", now)
			case 4:
				events, err = q.Start(now)
			case 5:
				if r, ok := q.Repetition(); ok {
					if next()%4 != 0 {
						now = r.DueAt.Add(time.Duration(next()) * time.Millisecond)
					}
					events, err = q.CompleteRepetition(r.TaskID, r.Number-next()%2, now)
				}
			case 6:
				events, err = q.Fail(taskAt(next()), "fuzz", now)
			case 7:
				now = now.Add(time.Duration(next()) * time.Second)
				events, err = q.Advance(now)
			}
			if err != nil {
				if !expectedError(err) {
					t.Fatalf("step %d: unexpected error %v", n, err)
				}
				if len(events) != 0 {
					t.Fatalf("step %d: events with an error", n)
				}
			}
			log = append(log, events...)
			v := q.View()
			for item, c := range q.Inventory() {
				if c < 0 {
					t.Fatalf("step %d: %d of %s", n, c, item)
				}
			}
			for s, before := range xpBefore {
				if q.XP(s) < before {
					t.Fatalf("step %d: %s XP went from %d to %d", n, s, before, q.XP(s))
				}
			}
			if len(v.Tasks) > q.Limit() {
				t.Fatalf("step %d: %d tasks, limit %d", n, len(v.Tasks), q.Limit())
			}
			if v.Running && len(v.Tasks) > 0 && v.Repetition == nil {
				t.Fatalf("step %d: running with tasks but no repetition: %+v", n, v)
			}
			if v.Repetition != nil && v.Repetition.TaskID != v.Tasks[0].TaskID {
				t.Fatalf("step %d: the repetition is not the head's", n)
			}
			if q.Version() != int64(len(log)) {
				t.Fatalf("step %d: version %d after %d events", n, q.Version(), len(log))
			}
			if restored := restoreThroughJSON(t, q.Snapshot(), rules); !restored.Equal(q) {
				t.Fatalf("step %d: the queue restored from its snapshot differs:\nrestored %+v\n     was %+v", n, restored.View(), q.View())
			}
		}
		replayed := domain.NewQueue("fuzz", rules)
		for i, e := range log {
			typ, version, data, err := domain.EncodeEvent(e)
			if err != nil {
				t.Fatal(err)
			}
			back, err := domain.DecodeEvent(string(typ), version, data)
			if err != nil {
				t.Fatalf("decode event %d: %v", i, err)
			}
			if err := replayed.Apply(back); err != nil {
				t.Fatalf("replay event %d: %v", i, err)
			}
		}
		if !replayed.Equal(q) {
			t.Fatalf("replay differs:\nreplayed %+v\n decided %+v", replayed.View(), q.View())
		}
	})
}

func expectedError(err error) bool {
	for _, target := range []error{domain.ErrInvalid, domain.ErrQueueFull, domain.ErrRequirementNotMet, domain.ErrTaskNotFound, domain.ErrRepetitionNotDue} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
