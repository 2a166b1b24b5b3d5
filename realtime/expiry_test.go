package realtime_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/command"
	"github.com/taskqueue/taskqueue/realtime"
)

// expiringToken is a token of player that expires at exp.
func expiringToken(t *testing.T, player string, exp time.Time) string {
	t.Helper()
	c := auth.Claims{RegisteredClaims: jwt.RegisteredClaims{
		Subject: player, IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(exp),
	}, Role: auth.RolePlayer}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A socket is closed when its token expires, with 4401 and the reason
// "token expired", after an error message; a socket with a longer-lived
// token stays open and keeps receiving. Each way of giving the token
// (query, header, first message) is covered.
func TestSocketClosesWhenItsTokenExpires(t *testing.T) {
	store := openSQLite(t)
	s := startHub(t, realtime.Config{Store: store})
	other := mustDial(t, s, expiringToken(t, "alice", time.Now().Add(time.Hour)))
	other.subscribe("alice", "")
	other.mustRead() // reset
	other.mustRead() // subscribed

	for _, how := range []string{"query", "header", "message"} {
		t.Run(how, func(t *testing.T) {
			// JWT times are whole seconds: this one expires 3-4 s from now.
			exp := time.Now().Add(4 * time.Second).Truncate(time.Second)
			tok := expiringToken(t, "alice", exp)
			var c *client
			switch how {
			case "query":
				c = mustDial(t, s, tok)
			case "header":
				var err error
				c, _, err = dial(t, s, "", &websocket.DialOptions{HTTPHeader: map[string][]string{"Authorization": {"Bearer " + tok}}})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.conn.CloseNow() })
			case "message":
				c = mustDial(t, s, "")
				c.send(map[string]string{"type": realtime.TypeAuth, "token": tok})
			}
			c.subscribe("alice", "")
			if m := c.mustRead(); m.Type != realtime.TypeReset {
				t.Fatalf("first message %q, want reset", m.Type)
			}
			if m := c.mustRead(); m.Type != realtime.TypeSubscribed {
				t.Fatalf("second message %q, want subscribed", m.Type)
			}
			var problem *message
			for {
				m, err := c.read(60 * time.Second)
				if errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("socket still open 60 s after its token expired at %s", exp)
				}
				if err != nil {
					var ce websocket.CloseError
					if !errors.As(err, &ce) || ce.Code != realtime.CloseUnauthorized || ce.Reason != realtime.ReasonTokenExpired {
						t.Fatalf("socket ended with %v, want close %d %q", err, realtime.CloseUnauthorized, realtime.ReasonTokenExpired)
					}
					break
				}
				if m.Type == realtime.TypeError {
					problem = &m
				}
			}
			if now := time.Now(); now.Before(exp) {
				t.Fatalf("closed at %s, before the token's expiry %s", now, exp)
			}
			if problem == nil || problem.Problem == nil || problem.Problem.Status != 401 {
				t.Fatalf("no 401 error message before the close: %+v", problem)
			}
		})
	}

	// The long-lived socket is still open and live.
	h := newHandlers(t, store)
	if _, err := h.StopQueue.Handle(context.Background(), command.StopQueue{Request: command.Request{PlayerID: "alice", Actor: "alice"}}); err != nil {
		t.Fatal(err)
	}
	for {
		if m := other.mustRead(); m.Type == realtime.TypeEvent {
			break
		}
	}
}
