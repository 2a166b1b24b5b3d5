package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/audit"
	"github.com/taskqueue/taskqueue/ops"
)

// forget runs `taskqueue forget --player ID`: ops.ForgetPlayer on the
// operator app, replay's (its runner serves the read models' rebuild, which
// it waits for), the result as JSON on stdout, and the audit trail's entry.
// A running server drops its own in-process copies at the player's next
// command (docs/API.md, "Forgetting a player"); with Redis, the player's
// sockets close on every instance at once.
func forget(ctx context.Context, cfg app.Config, player string, stdout, stderr io.Writer) error {
	a, cleanup, err := app.NewOperatorApp(ctx, cfg, io.Discard)
	if err != nil {
		return err
	}
	defer cleanup()
	res, err := ops.ForgetPlayer(ctx, a.Forgetting, player)
	if err != nil {
		_ = recordOperator(ctx, cfg, stderr, audit.Forget, player, "failed: "+err.Error())
		return err
	}
	for name, gen := range res.Rebuilds {
		fmt.Fprintf(stderr, "rebuilding %s (generation %s) without the player's events...\n", name, gen)
		if err := a.Projections.WaitRebuilt(ctx, name, gen, time.Second, nil); err != nil {
			return fmt.Errorf("forgot %s, but the rebuild of %s did not finish: %w (it resumes when a server runs)", player, name, err)
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", b)
	return recordOperator(ctx, cfg, stderr, audit.Forget, player, fmt.Sprintf("%d events, %d read-model rows, %d sessions", res.Events, res.ReadModelRows, res.Sessions))
}
