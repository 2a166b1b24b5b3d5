// Package audit owns the audit trail: who did what that matters to
// security (sign-in, refresh, logout, every admin and operator action,
// every refusal of authentication or authorization), as one structured log
// line each (component=audit) and as a row of the table audit_log in the
// service's database (SQLite or PostgreSQL, beside the read models), which
// `taskqueue audit` and GET /api/admin/audit query.
//
// Contracts:
//   - Record never blocks the request that records: the log line is written
//     at once, the row by one writer goroutine in batches. When the writer
//     falls behind (a flood of refused requests, a database outage) rows
//     are dropped, never requests; each drop is counted (Dropped) and
//     logged, and the log line still says what happened.
//   - audit_log is append-only for the service: triggers refuse UPDATE, and
//     DELETE of a row younger than a day (the retention sweep deletes older
//     ones). On PostgreSQL the analyst role may not read it at all: its
//     rows name principals and network addresses, personal data that
//     analytics do not need (migrations 0071 and 0072).
//   - Action names are part of the operator's interface (queries, alerts):
//     renaming one breaks saved queries; add a new one instead.
//
// The package never decides who may do what: web and the commands record
// what they decided. Where to look: web (what records), app (wiring, the
// retention sweep), cmd/taskqueue (`taskqueue audit`).
package audit

import (
	"fmt"
	"strings"
	"time"
)

// Action is what an entry records. The set is closed (Actions).
type Action string

const (
	// SignIn: a token was issued to a principal (dev token, or the OIDC
	// sign-in of package auth).
	SignIn Action = "auth.sign-in"
	// Refresh: a session's token was renewed.
	Refresh Action = "auth.refresh"
	// Logout: a session was revoked.
	Logout Action = "auth.logout"
	// Refused: a request was refused authentication (401) or
	// authorization (403).
	Refused Action = "auth.refused"
	// Rebuild: an admin started a projection's blue-green rebuild.
	Rebuild Action = "admin.rebuild"
	// Skip: an admin skipped a failed projection's event.
	Skip Action = "admin.skip"
	// Retry: an admin retried a failed projection.
	Retry Action = "admin.retry"
	// DeadLetterRetry: an admin retried a dead-lettered message.
	DeadLetterRetry Action = "admin.deadletter-retry"
	// DeadLetterRead: an admin listed the dead letters.
	DeadLetterRead Action = "admin.deadletter-read"
	// ProjectionRead: an admin read the projections' status.
	ProjectionRead Action = "admin.projection-read"
	// EventRead: an admin (or an operator's `taskqueue events`) read a
	// player's events.
	EventRead Action = "admin.event-read"
	// TimeTravel: an admin (or `taskqueue queue --at`) read a player's
	// queue as it was at a moment.
	TimeTravel Action = "admin.time-travel"
	// AuditRead: an admin (or `taskqueue audit`) read the audit trail.
	AuditRead Action = "admin.audit-read"
	// Forget: a player was forgotten (erasure).
	Forget Action = "admin.forget"
	// Export: an operator exported the event log.
	Export Action = "ops.export"
	// Import: an operator imported an export.
	Import Action = "ops.import"
	// Replay: an operator rebuilt read models with `taskqueue replay`.
	Replay Action = "ops.replay"
	// Backup: an operator copied the data directory.
	Backup Action = "ops.backup"
)

// Actions is every Action.
var Actions = []Action{SignIn, Refresh, Logout, Refused, Rebuild, Skip, Retry, DeadLetterRetry, DeadLetterRead,
	ProjectionRead, EventRead, TimeTravel, AuditRead, Forget, Export, Import, Replay, Backup}

// Valid reports whether a is one of Actions.
func (a Action) Valid() bool {
	for _, b := range Actions {
		if a == b {
			return true
		}
	}
	return false
}

// ParseAction returns the action named s, or an error naming the valid ones.
func ParseAction(s string) (Action, error) {
	a := Action(s)
	if !a.Valid() {
		names := make([]string, len(Actions))
		for i, b := range Actions {
			names[i] = string(b)
		}
		return "", fmt.Errorf("action %q is not one of %s", s, strings.Join(names, ", "))
	}
	return a, nil
}

// Entry is one recorded action.
type Entry struct {
	// ID orders entries; set when stored.
	ID int64 `json:"id"`
	// At is when it happened (set by Record when zero).
	At time.Time `json:"at"`
	// Action is what happened.
	Action Action `json:"action"`
	// Principal is who acted: a token's subject, "operator" for a command
	// run on the server's host, "" when unknown (a request without a valid
	// token).
	Principal string `json:"principal"`
	// Role is the principal's role, "" when unknown.
	Role string `json:"role"`
	// Remote is the client's address (after trusted proxies), "" for a
	// command run on the host.
	Remote string `json:"remote"`
	// Target is what the action was on: a player, a projection, a dead
	// letter, a route; "" when none.
	Target string `json:"target"`
	// Status is the HTTP status answered (0 for a command).
	Status int `json:"status"`
	// Detail says more: a refusal's reason, a command's arguments.
	Detail string `json:"detail"`
	// RequestID is the request's X-Request-Id, "" for a command.
	RequestID string `json:"requestId"`
}

// Filter selects entries.
type Filter struct {
	// Since keeps entries at or after it (zero: all).
	Since time.Time
	// Player keeps entries whose principal or target is this player.
	Player string
	// Action keeps entries of this action ("" : all).
	Action Action
	// Limit is the most entries returned, newest last (default and
	// maximum 10,000).
	Limit int
}

// MaxLimit bounds Filter.Limit.
const MaxLimit = 10000
