package relay

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/faults"
	"github.com/taskqueue/taskqueue/projections"
)

// Integration event types: the names other services subscribe to (topics
// "<prefix>.events.<type>"); docs/EVENTS.md documents their JSON.
// Renaming one breaks every consumer.
const (
	TypeTaskStarted   = "task.started"
	TypeTaskCompleted = "task.completed"
	TypeTaskFailed    = "task.failed"
	TypeQueueUpdated  = "queue.updated"
	TypePlayerOffline = "player.offline"
	// TypePlayerForgotten: an admin forgot the player (GDPR erasure):
	// consumers erase what they keep of them.
	TypePlayerForgotten = "player.forgotten"
)

// IntegrationStreamMaxlen caps each integration stream on Redis (XADD
// MAXLEN ~, docs/EVENTS.md): a consumer further behind than that many
// messages of one type re-reads them with `taskqueue relay --from N`.
const IntegrationStreamMaxlen = 1_000_000

// IntegrationEventVersion is the version of the envelope and data schemas.
const IntegrationEventVersion = 1

// Metadata keys of every integration message (besides watermill's
// correlation_id, set with middleware.SetCorrelationID).
const (
	MetaPosition = "position"
	MetaEventID  = "event_id"
	MetaType     = "type"
)

// IntegrationEvent is the JSON of every integration message.
type IntegrationEvent struct {
	Type    string `json:"type"`
	Version int    `json:"version"`
	// EventID is the ID of the domain event it came from (absent for
	// player.offline).
	EventID string `json:"eventId,omitempty"`
	// Position is the domain event's global position ("" for
	// player.offline): consumers may deduplicate and order by it.
	Position      string          `json:"position,omitempty"`
	OccurredAt    time.Time       `json:"occurredAt"`
	PlayerID      string          `json:"playerId"`
	CorrelationID string          `json:"correlationId,omitempty"`
	Data          json.RawMessage `json:"data"`
}

// TaskStartedData is task.started's data (the first repetition started).
type TaskStartedData struct {
	TaskID     string    `json:"taskId"`
	TaskType   string    `json:"taskType"`
	StartedAt  time.Time `json:"startedAt"`
	FirstDueAt time.Time `json:"firstDueAt"`
	DurationMs int64     `json:"durationMs"`
	Efficiency float64   `json:"efficiency"`
}

// Rewards are what a task granted.
type Rewards struct {
	XP    map[string]int64 `json:"xp"`
	Items map[string]int64 `json:"items"`
}

// TaskCompletedData is task.completed's data.
type TaskCompletedData struct {
	TaskID      string    `json:"taskId"`
	TaskType    string    `json:"taskType"`
	Count       int       `json:"count"`
	CompletedAt time.Time `json:"completedAt"`
	Rewards     Rewards   `json:"rewards"`
	// DurationMs is the sum of the durations of its repetitions.
	DurationMs int64 `json:"durationMs"`
	// Efficiency is base duration / actual duration over them.
	Efficiency float64 `json:"efficiency"`
}

// TaskFailedData is task.failed's data.
type TaskFailedData struct {
	TaskID   string    `json:"taskId"`
	TaskType string    `json:"taskType"`
	Done     int       `json:"done"`
	Count    int       `json:"count"`
	Reason   string    `json:"reason"`
	FailedAt time.Time `json:"failedAt"`
}

// QueueUpdatedData is queue.updated's data: which change, and the queue's
// stream version after it (a consumer re-reads the queue when it cares).
type QueueUpdatedData struct {
	Change        string `json:"change"`
	StreamVersion int64  `json:"streamVersion"`
	TaskID        string `json:"taskId,omitempty"`
	Reason        string `json:"reason,omitempty"`
}

// PlayerOfflineData is player.offline's data.
type PlayerOfflineData struct {
	// LastPosition is the last global position the player's client saw.
	LastPosition string `json:"lastPosition,omitempty"`
}

// Topic returns the topic of integration event type typ.
func Topic(prefix, typ string) string { return prefix + ".events." + typ }

// PublishPlayerOffline publishes player.offline for player (the realtime
// part calls it when a player's last connection closes).
func PublishPlayerOffline(pub message.Publisher, topicPrefix, player string, at time.Time, lastPosition eventstore.Position, correlationID string) error {
	data, err := json.Marshal(PlayerOfflineData{LastPosition: positionText(lastPosition)})
	if err != nil {
		return err
	}
	ev := IntegrationEvent{Type: TypePlayerOffline, Version: IntegrationEventVersion, OccurredAt: at.UTC(), PlayerID: player, CorrelationID: correlationID, Data: data}
	msg, err := newIntegrationMessage(uuid.NewString(), ev)
	if err != nil {
		return err
	}
	if err := pub.Publish(Topic(topicPrefix, TypePlayerOffline), msg); err != nil {
		return fmt.Errorf("publish player.offline for %s: %w", player, err)
	}
	return nil
}

// PlayerForgottenData is player.forgotten's data.
type PlayerForgottenData struct {
	// Events is how many of the player's events the log erased (0 when
	// the player was forgotten before: the event is sent again).
	Events int64 `json:"events"`
}

// PublishPlayerForgotten publishes player.forgotten for player (ops.ForgetPlayer,
// after the player's data is gone here).
func PublishPlayerForgotten(pub message.Publisher, topicPrefix, player string, at time.Time, events int64, correlationID string) error {
	data, err := json.Marshal(PlayerForgottenData{Events: events})
	if err != nil {
		return err
	}
	ev := IntegrationEvent{Type: TypePlayerForgotten, Version: IntegrationEventVersion, OccurredAt: at.UTC(), PlayerID: player, CorrelationID: correlationID, Data: data}
	msg, err := newIntegrationMessage(uuid.NewString(), ev)
	if err != nil {
		return err
	}
	if err := pub.Publish(Topic(topicPrefix, TypePlayerForgotten), msg); err != nil {
		return fmt.Errorf("publish player.forgotten for %s: %w", player, err)
	}
	return nil
}

func positionText(p eventstore.Position) string {
	if p.IsZero() {
		return ""
	}
	return p.String()
}

func newIntegrationMessage(id string, ev IntegrationEvent) (*message.Message, error) {
	payload, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", ev.Type, err)
	}
	msg := message.NewMessage(id, payload)
	msg.Metadata.Set(MetaType, ev.Type)
	if ev.Position != "" {
		msg.Metadata.Set(MetaPosition, ev.Position)
	}
	if ev.EventID != "" {
		msg.Metadata.Set(MetaEventID, ev.EventID)
	}
	middleware.SetCorrelationID(ev.CorrelationID, msg)
	return msg, nil
}

// Config configures a Relay.
type Config struct {
	// Store is the event log. Required.
	Store eventstore.Store
	// DB holds the checkpoint (processor_relay_checkpoints). Required.
	DB projections.DB
	// Publisher carries the integration messages. Required unless Outbox
	// is set.
	Publisher message.Publisher
	// Outbox, when set, is the PostgreSQL pool of the outbox (the tables
	// of NewOutboxPublisher) in the database of DB, and replaces
	// Publisher: the messages of each batch and the checkpoint after them
	// are written in ONE transaction, one commit (one WAL flush) per batch
	// instead of one per message, and a batch is in the outbox exactly
	// when the checkpoint has passed it.
	Outbox *pgxpool.Pool
	// Name keys the checkpoint: renaming it publishes everything again.
	// Default "integration".
	Name string
	// TopicPrefix starts every topic. Default "taskqueue".
	TopicPrefix string
	// RetryDelay is the wait after a permanent error (one the same events
	// would cause again, such as an event it cannot decode) before
	// starting again. Transient errors (the database or Redis away) are
	// retried with the backoff of faults.Outage, 100 ms up to 5 s.
	// Default 1 s.
	RetryDelay time.Duration
	// Observer hears of the relay's outages (component "relay <Name>").
	// May be nil.
	Observer faults.Observer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = "integration"
	}
	if c.TopicPrefix == "" {
		c.TopicPrefix = "taskqueue"
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("relay: Store is required"))
	}
	if c.DB == nil {
		errs = append(errs, errors.New("relay: DB is required"))
	}
	if c.Publisher == nil && c.Outbox == nil {
		errs = append(errs, errors.New("relay: Publisher or Outbox is required"))
	}
	return errors.Join(errs...)
}

// Relay tails the event log and publishes integration events, at least
// once, in log order: it publishes a batch, then moves its checkpoint (a
// compare-and-set, so a second relay on the same checkpoint notices and
// starts over from where the other got). A crash between the two
// publishes the batch again; consumers deduplicate by message UUID (derived
// from the domain event's ID and the integration type) or by position.
type Relay struct {
	cfg Config
	// topics are the outbox topics whose tables exist (Config.Outbox).
	topics sync.Map
	// The outages of its database (checkpoint, log) and of its publisher.
	outage, pubOutage *faults.Outage
}

// New checks cfg and returns a Relay; call Run to start it.
func New(cfg Config) (*Relay, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	outage := func(component string) *faults.Outage {
		return faults.NewOutage(faults.OutageConfig{Component: component, Logger: cfg.Logger, Observer: cfg.Observer})
	}
	return &Relay{cfg: cfg, outage: outage("relay " + cfg.Name), pubOutage: outage("relay " + cfg.Name + " publisher")}, nil
}

// publishError is a failure of the publisher (Redis), apart from the
// failures of the database.
type publishError struct{ err error }

func (e publishError) Error() string { return e.err.Error() }
func (e publishError) Unwrap() error { return e.err }

// relayFilter selects the domain events the relay turns into messages, and
// those it follows for them.
var relayFilter = eventstore.Filter{StreamPrefixes: []string{domain.StreamPrefix}, EventTypes: []string{
	string(domain.TypeRepetitionStarted), string(domain.TypeTaskCompleted), string(domain.TypeTaskFailed),
	string(domain.TypeTaskEnqueued), string(domain.TypeTaskRemoved), string(domain.TypeTasksReordered),
	string(domain.TypeQueueStopped), string(domain.TypeQueueStarted),
	// No message of its own: it feeds a task's rewards (followed).
	string(domain.TypeRepetitionCompleted),
}}

// Run publishes from the checkpoint on until ctx ends (then it returns
// nil), starting over from the checkpoint after errors, forever: a
// transient one (the database or Redis away) is retried with backoff and
// logged once per outage (faults.Outage), a permanent one is logged and
// retried after RetryDelay. Starting over from the checkpoint skips
// nothing: what was published after it is published again (at least
// once).
func (r *Relay) Run(ctx context.Context) error {
	// A relay that stops (its lease lost, the process stopping) depends on
	// nothing any more: its outages end with it, rather than showing it
	// degraded while another instance relays.
	defer r.pubOutage.Recovered()
	defer r.outage.Recovered()
	for ctx.Err() == nil {
		err := r.runOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case faults.Transient(err):
			outage := r.outage
			if errors.As(err, new(publishError)) {
				outage = r.pubOutage
			}
			outage.Wait(ctx, err)
			continue
		case errors.Is(err, errCheckpointMoved):
			// Another relay ran for a moment (a lease is no fence):
			// start over from where it got.
			r.cfg.Logger.Info("relay: another relay moved the checkpoint; starting over from it")
		default:
			r.cfg.Logger.Error("relay failed; starting over", "err", err, "wait", r.cfg.RetryDelay)
		}
		select {
		case <-ctx.Done():
		case <-time.After(r.cfg.RetryDelay):
		}
	}
	return nil
}

var errCheckpointMoved = errors.New("the relay checkpoint was moved by another relay")

func (r *Relay) runOnce(ctx context.Context) error {
	from, err := r.Checkpoint(ctx)
	if err != nil {
		return err
	}
	r.outage.Recovered()
	sub, err := r.cfg.Store.Subscribe(ctx, from, relayFilter)
	if err != nil {
		return fmt.Errorf("relay: subscribe after %s: %w", from, err)
	}
	defer sub.Close()
	f := newFollowed()
	for {
		events, err := sub.Next(ctx)
		if err != nil {
			return fmt.Errorf("relay: read after %s: %w", from, err)
		}
		to := sub.Position()
		if r.cfg.Outbox != nil {
			if _, err := r.publishOutbox(ctx, f, events, &[2]eventstore.Position{from, to}); err != nil {
				return err
			}
			from = to
			continue
		}
		if _, err := r.publish(ctx, f, events); err != nil {
			return err
		}
		r.pubOutage.Recovered()
		// A published batch gets its checkpoint even when ctx just ended.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err = r.saveCheckpoint(sctx, from, to)
		cancel()
		if err != nil {
			return err
		}
		from = to
	}
}

// Lag reports how far the relay is behind the log at now: its checkpoint,
// and how long the first event it has still to publish has been in the
// log (0 when it has published everything).
func (r *Relay) Lag(ctx context.Context, now time.Time) (eventstore.Position, time.Duration, error) {
	cp, err := r.Checkpoint(ctx)
	if err != nil {
		return eventstore.Position{}, 0, err
	}
	next, err := r.cfg.Store.ReadAll(ctx, cp, relayFilter, 1)
	if err != nil {
		return cp, 0, fmt.Errorf("relay: read after the checkpoint %s: %w", cp, err)
	}
	if len(next) == 0 {
		return cp, 0, nil
	}
	return cp, max(now.Sub(next[0].RecordedAt), 0), nil
}

// Checkpoint returns the position up to which the relay has published.
func (r *Relay) Checkpoint(ctx context.Context) (eventstore.Position, error) {
	var commit, seq int64
	err := r.cfg.DB.QueryRow(ctx, `SELECT commit_position, seq_position FROM processor_relay_checkpoints WHERE name = $1`, r.cfg.Name).Scan(&commit, &seq)
	if isNoRows(err) {
		return eventstore.Start, nil
	}
	if err != nil {
		return eventstore.Position{}, fmt.Errorf("relay: read checkpoint %s: %w", r.cfg.Name, err)
	}
	return eventstore.Position{Commit: uint64(commit), Seq: uint64(seq)}, nil
}

func (r *Relay) saveCheckpoint(ctx context.Context, old, pos eventstore.Position) error {
	return r.cfg.DB.InTx(ctx, func(tx projections.Tx) error {
		return r.moveCheckpoint(ctx, tx.Exec, old, pos)
	})
}

// moveCheckpoint moves the checkpoint from old to pos with exec (in a
// transaction), or returns errCheckpointMoved when it is not at old.
func (r *Relay) moveCheckpoint(ctx context.Context, exec func(ctx context.Context, q string, args ...any) (int64, error), old, pos eventstore.Position) error {
	n, err := exec(ctx, `UPDATE processor_relay_checkpoints SET commit_position = $1, seq_position = $2, updated_at = $3
		WHERE name = $4 AND commit_position = $5 AND seq_position = $6`,
		int64(pos.Commit), int64(pos.Seq), time.Now().UTC(), r.cfg.Name, int64(old.Commit), int64(old.Seq))
	if err != nil {
		return fmt.Errorf("relay: save checkpoint %s: %w", pos, err)
	}
	if n == 1 {
		return nil
	}
	if old.IsZero() {
		n, err = exec(ctx, `INSERT INTO processor_relay_checkpoints (name, commit_position, seq_position, updated_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING`, r.cfg.Name, int64(pos.Commit), int64(pos.Seq), time.Now().UTC())
		if err != nil {
			return fmt.Errorf("relay: save checkpoint %s: %w", pos, err)
		}
		if n == 1 {
			return nil
		}
	}
	return errCheckpointMoved
}

// Republish publishes again every integration event of the domain events
// after position after, up to the head of the log when it is called,
// without touching the checkpoint (`taskqueue relay --from N`: the seed's
// EventBridge replay). It returns the number of messages published (a
// domain event makes zero, one or two). The messages are the ones the
// relay published the first time: same UUIDs, same payloads.
func (r *Relay) Republish(ctx context.Context, after eventstore.Position) (int, error) {
	head, err := r.cfg.Store.Head(ctx)
	if err != nil {
		return 0, fmt.Errorf("relay: republish: read the head: %w", err)
	}
	n := 0
	f := newFollowed()
	for after.Less(head) {
		events, err := r.cfg.Store.ReadAll(ctx, after, relayFilter, 1000)
		if err != nil {
			return n, fmt.Errorf("relay: republish after %s: %w", after, err)
		}
		if len(events) == 0 {
			break
		}
		var batch []eventstore.RecordedEvent
		for _, e := range events {
			if head.Less(e.Position) {
				break
			}
			batch = append(batch, e)
		}
		var m int
		if r.cfg.Outbox != nil {
			m, err = r.publishOutbox(ctx, f, batch, nil)
		} else {
			m, err = r.publish(ctx, f, batch)
		}
		n += m
		if err != nil {
			return n, err
		}
		if len(batch) < len(events) {
			break
		}
		after = events[len(events)-1].Position
	}
	return n, nil
}

// Before returns the position just before p in the order of positions,
// so that reading after Before(p) starts at p itself (`relay --from N`
// includes the event at N). Before(Start) is Start.
func Before(p eventstore.Position) eventstore.Position {
	switch {
	case p.Seq > 0:
		return eventstore.Position{Commit: p.Commit, Seq: p.Seq - 1}
	case p.Commit > 0:
		// Backends store both parts as signed 64-bit integers.
		return eventstore.Position{Commit: p.Commit - 1, Seq: math.MaxInt64}
	}
	return eventstore.Start
}

// publish turns events into messages and publishes them in order; it
// returns how many it published.
func (r *Relay) publish(ctx context.Context, f *followed, events []eventstore.RecordedEvent) (int, error) {
	n := 0
	for _, e := range events {
		msgs, err := r.messages(ctx, f, e)
		if err != nil {
			return n, err
		}
		for _, m := range msgs {
			if err := r.cfg.Publisher.Publish(Topic(r.cfg.TopicPrefix, m.Metadata.Get(MetaType)), m); err != nil {
				return n, publishError{fmt.Errorf("relay: publish %s of event %s at %s: %w", m.Metadata.Get(MetaType), e.ID, e.Position, err)}
			}
			n++
		}
	}
	return n, nil
}

// integrationNamespace derives message UUIDs from event IDs.
var integrationNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:taskqueue:integration-event"))

// messages maps one domain event to its integration messages.
func (r *Relay) messages(ctx context.Context, f *followed, rec eventstore.RecordedEvent) ([]*message.Message, error) {
	player, ok := domain.PlayerFromStream(rec.Stream)
	if !ok {
		return nil, nil
	}
	e, err := domain.DecodeEvent(rec.Type, rec.SchemaVersion, rec.Data)
	if err != nil {
		return nil, fmt.Errorf("relay: decode event %s at %s: %w", rec.ID, rec.Position, err)
	}
	f.see(rec, e)
	type out struct {
		typ  string
		data any
	}
	var outs []out
	updated := func(taskID domain.TaskID, reason string) {
		outs = append(outs, out{TypeQueueUpdated, QueueUpdatedData{Change: rec.Type, StreamVersion: rec.Version, TaskID: string(taskID), Reason: reason}})
	}
	switch e := e.(type) {
	case domain.RepetitionStarted:
		if e.Number == 1 {
			outs = append(outs, out{TypeTaskStarted, TaskStartedData{TaskID: string(e.TaskID), TaskType: string(e.Type),
				StartedAt: e.StartedAt, FirstDueAt: e.DueAt, DurationMs: e.DurationMs, Efficiency: e.Efficiency}})
		}
	case domain.TaskCompleted:
		d, err := r.completed(ctx, f, rec, e)
		if err != nil {
			return nil, err
		}
		outs = append(outs, out{TypeTaskCompleted, d})
		updated(e.TaskID, "")
	case domain.TaskFailed:
		outs = append(outs, out{TypeTaskFailed, TaskFailedData{TaskID: string(e.TaskID), TaskType: string(e.Type),
			Done: e.Done, Count: e.Count, Reason: e.Reason, FailedAt: e.At}})
		updated(e.TaskID, e.Reason)
	case domain.TaskEnqueued:
		updated(e.TaskID, "")
	case domain.TaskRemoved:
		updated(e.TaskID, "")
	case domain.QueueStopped:
		updated("", e.Reason)
	case domain.TasksReordered, domain.QueueStarted:
		updated("", "")
	}
	msgs := make([]*message.Message, 0, len(outs))
	for _, o := range outs {
		data, err := json.Marshal(o.data)
		if err != nil {
			return nil, fmt.Errorf("relay: encode %s: %w", o.typ, err)
		}
		ev := IntegrationEvent{
			Type: o.typ, Version: IntegrationEventVersion, EventID: rec.ID.String(), Position: rec.Position.String(),
			OccurredAt: rec.Metadata.OccurredAt, PlayerID: string(player), CorrelationID: rec.Metadata.CorrelationID, Data: data,
		}
		msg, err := newIntegrationMessage(uuid.NewSHA1(integrationNamespace, []byte(rec.ID.String()+"/"+o.typ)).String(), ev)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

// completed sums the rewards, durations and efficiency of a completed
// task's repetitions from the stream's tail before the TaskCompleted
// event (a task of count n wrote at most about 3n events since its first
// repetition started, plus the stops and starts in between): the events
// of that window that f followed, or, when f did not see all of them (the
// task began before the relay's pass), the window read from the stream.
func (r *Relay) completed(ctx context.Context, f *followed, rec eventstore.RecordedEvent, e domain.TaskCompleted) (TaskCompletedData, error) {
	from := max(1, rec.Version-int64(4*e.Count+64))
	if events, ok := f.window(rec, e.TaskID, from); ok {
		return completedData(e, events), nil
	}
	tail, err := r.cfg.Store.ReadStream(ctx, rec.Stream, from, int(rec.Version-from+1))
	if err != nil {
		return TaskCompletedData{}, fmt.Errorf("relay: read %s for the rewards of task %s: %w", rec.Stream, e.TaskID, err)
	}
	events := make([]domain.Event, 0, len(tail))
	for _, t := range tail {
		ev, err := domain.DecodeEvent(t.Type, t.SchemaVersion, t.Data)
		if err != nil {
			return TaskCompletedData{}, fmt.Errorf("relay: decode event %s: %w", t.ID, err)
		}
		events = append(events, ev)
	}
	return completedData(e, events), nil
}

// completedData folds the repetitions of task e among events (in stream
// order) into its integration event's data.
func completedData(e domain.TaskCompleted, events []domain.Event) TaskCompletedData {
	d := TaskCompletedData{TaskID: string(e.TaskID), TaskType: string(e.Type), Count: e.Count, CompletedAt: e.At,
		Rewards: Rewards{XP: map[string]int64{}, Items: map[string]int64{}}}
	durations := map[int]domain.RepetitionStarted{}
	var base float64
	for _, ev := range events {
		switch ev := ev.(type) {
		case domain.RepetitionStarted:
			if ev.TaskID == e.TaskID {
				durations[ev.Number] = ev
			}
		case domain.RepetitionCompleted:
			if ev.TaskID != e.TaskID {
				continue
			}
			d.Rewards.XP[string(ev.Skill)] += ev.XP
			for item, n := range ev.Granted {
				d.Rewards.Items[string(item)] += n
			}
			if s, ok := durations[ev.Number]; ok {
				d.DurationMs += s.DurationMs
				base += float64(s.DurationMs) * s.Efficiency
			}
		}
	}
	if d.DurationMs > 0 {
		d.Efficiency = float64(int(base/float64(d.DurationMs)*100+0.5)) / 100
	}
	return d
}

func isNoRows(err error) bool {
	return errors.Is(err, pgx.ErrNoRows) || errors.Is(err, sql.ErrNoRows)
}
