package realtime

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/internal/problem"
	"github.com/taskqueue/taskqueue/query"
)

// Message types. They are part of the protocol of docs/REALTIME.md:
// renaming one breaks every client.
const (
	// Client to server.
	TypeAuth      = "auth"
	TypeSubscribe = "subscribe"
	// Server to client.
	TypeEvent      = "event"
	TypeReset      = "reset"
	TypeSubscribed = "subscribed"
	TypeError      = "error"
)

// AllPlayers is the playerId an admin subscribes with to watch every queue.
const AllPlayers = "*"

// Close codes the server ends a connection with (docs/REALTIME.md). The
// 4xxx codes are this application's; their last three digits follow the
// HTTP status of the same meaning.
const (
	// CloseBadRequest: a message that is not JSON of the protocol, an
	// unknown type, a bad playerId or since.
	CloseBadRequest websocket.StatusCode = 4400
	// CloseUnauthorized: no token in time, a bad or expired token, a
	// revoked session, or the token expired while the socket was open
	// (reason ReasonTokenExpired).
	CloseUnauthorized websocket.StatusCode = 4401
	// CloseForbidden: a player subscribing to another player's queue, or
	// to all queues.
	CloseForbidden websocket.StatusCode = 4403
	// CloseSlowConsumer: the client did not read fast enough and its
	// buffer of messages filled up. Reconnect with since to resume.
	CloseSlowConsumer websocket.StatusCode = 4408
	// CloseGoingAway (1001): the server is shutting down. Reconnect.
	CloseGoingAway = websocket.StatusGoingAway
	// CloseTryAgainLater (1013): the server cannot serve the subscription
	// right now (the event store failed). Reconnect with since.
	CloseTryAgainLater = websocket.StatusTryAgainLater
)

// ReasonPlayerForgotten is the close reason, with CloseUnauthorized, of
// the sockets of a player an admin forgot (docs/API.md, "Forgetting a
// player").
const ReasonPlayerForgotten = "player forgotten"

// ReasonTokenExpired is the close reason, with CloseUnauthorized, of a
// socket whose token reached its expiry while it was open.
const ReasonTokenExpired = "token expired"

// clientMessage is every message a client may send.
type clientMessage struct {
	Type     string `json:"type"`
	Token    string `json:"token,omitempty"`
	PlayerID string `json:"playerId,omitempty"`
	Since    string `json:"since,omitempty"`
}

// eventJSON is a domain event as docs/API.md shows it ("Events a client
// sees").
type eventJSON struct {
	Type       string              `json:"type"`
	Version    int64               `json:"version"`
	Position   eventstore.Position `json:"position"`
	OccurredAt time.Time           `json:"occurredAt"`
	Data       json.RawMessage     `json:"data"`
}

// serverMessage is every message the server sends.
type serverMessage struct {
	Type     string               `json:"type"`
	Position *eventstore.Position `json:"position,omitempty"`
	PlayerID domain.PlayerID      `json:"playerId,omitempty"`
	Event    *eventJSON           `json:"event,omitempty"`
	Queue    json.RawMessage      `json:"queue,omitempty"`
	Problem  *problem.Details     `json:"problem,omitempty"`
}

// queueJSON marshals v as GET /api/queue/{playerId} answers it (web's
// writeQueue), with state and serverTime.
func queueJSON(v domain.QueueView, now time.Time) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("marshal queue view of %s: %w", v.PlayerID, err)
	}
	if len(b) < 2 || b[len(b)-1] != '}' {
		return nil, fmt.Errorf("marshal queue view of %s: not an object", v.PlayerID)
	}
	state, _ := json.Marshal(query.QueueStateOf(v))
	t, _ := json.Marshal(now.UTC().Format(time.RFC3339Nano))
	b = append(b[:len(b)-1], `,"state":`...)
	b = append(b, state...)
	b = append(b, `,"serverTime":`...)
	b = append(b, t...)
	return append(b, '}'), nil
}

// endsCommand reports whether evs[i] is the last event of its command in
// evs: the next event is of another stream or another command (events of one
// command share the stream and CausationID, and the log keeps them together).
// Only such an event's message carries the queue: the states between a
// command's events were never a state of the queue for anyone (GET
// /api/queue never shows them), and a client rendering them showed the head
// task vanish and come back at every repetition. The SQL stores never split
// an append across two reads of the log; where one is split (KurrentDB), the
// last event read ends it here.
func endsCommand(evs []eventstore.RecordedEvent, i int) bool {
	if i+1 >= len(evs) {
		return true
	}
	e, next := evs[i], evs[i+1]
	return e.Metadata.CausationID == "" || next.Stream != e.Stream || next.Metadata.CausationID != e.Metadata.CausationID
}

// eventMessage encodes the message of one event, with the queue after it
// (nil queue: a command's event before its last, or a view that could not
// be folded).
func eventMessage(player domain.PlayerID, e eventstore.RecordedEvent, queue json.RawMessage) ([]byte, error) {
	pos := e.Position
	m := serverMessage{
		Type: TypeEvent, Position: &pos, PlayerID: player,
		Event: &eventJSON{Type: e.Type, Version: e.Version, Position: pos, OccurredAt: e.Metadata.OccurredAt, Data: e.Data},
		Queue: queue,
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode message of event %s v%d: %w", e.Stream, e.Version, err)
	}
	return b, nil
}

func resetMessage(player domain.PlayerID, pos eventstore.Position, queue json.RawMessage) []byte {
	b, _ := json.Marshal(serverMessage{Type: TypeReset, Position: &pos, PlayerID: player, Queue: queue})
	return b
}

func subscribedMessage(player domain.PlayerID, pos eventstore.Position) []byte {
	b, _ := json.Marshal(serverMessage{Type: TypeSubscribed, Position: &pos, PlayerID: player})
	return b
}

// errorMessage is an "error" message carrying the problem document of t.
func errorMessage(t problem.Type, detail string) []byte {
	p := problem.Of(t, detail)
	b, _ := json.Marshal(serverMessage{Type: TypeError, Problem: &p})
	return b
}
