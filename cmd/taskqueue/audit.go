package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/audit"
	"github.com/taskqueue/taskqueue/auth"
)

// auditFlags are the flags of `taskqueue audit` beside the configuration's.
type auditFlags struct {
	since  time.Duration
	player string
	action string
	limit  int
}

func auditFlagSet() (*flag.FlagSet, *auditFlags) {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	af := &auditFlags{}
	fs.DurationVar(&af.since, "since", 24*time.Hour, "entries of this last while (e.g. 1h, 30m, 168h)")
	fs.StringVar(&af.player, "player", "", "entries whose principal or target is this player")
	fs.StringVar(&af.action, "action", "", "entries of this action (auth.sign-in, auth.refused, admin.rebuild, ...)")
	fs.IntVar(&af.limit, "limit", 1000, fmt.Sprintf("most entries to print, the newest (at most %d)", audit.MaxLimit))
	return fs, af
}

// auditCmd prints the audit trail's entries as JSON lines, oldest first.
// Reading it is itself recorded (admin.audit-read, principal "operator").
func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs, af := auditFlagSet()
	cfg, err := parseCommandLine(fs, usageOf("audit"), args, stderr, getenv)
	if err != nil {
		return err
	}
	if cfg, err = validated(cfg, false); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{fmt.Sprintf("audit takes no arguments, got %q", fs.Args())}
	}
	f := audit.Filter{Player: af.player, Limit: af.limit}
	if af.since <= 0 {
		return &usageError{fmt.Sprintf("--since %s is not positive", af.since)}
	}
	f.Since = time.Now().Add(-af.since)
	if af.player != "" && !auth.ValidPlayerID(af.player) {
		return &usageError{fmt.Sprintf("--player %q is not 1-64 characters of [A-Za-z0-9_-]", af.player)}
	}
	if af.action != "" {
		if f.Action, err = audit.ParseAction(af.action); err != nil {
			return &usageError{"--action: " + err.Error()}
		}
	}
	if af.limit < 1 || af.limit > audit.MaxLimit {
		return &usageError{fmt.Sprintf("--limit %d is not between 1 and %d", af.limit, audit.MaxLimit)}
	}
	store, closeStore, err := app.OpenAuditStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	entries, err := store.Query(ctx, f)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return store.Append(ctx, []audit.Entry{{At: time.Now().UTC(), Action: audit.AuditRead, Principal: "operator",
		Detail: fmt.Sprintf("since=%s player=%s action=%s: %d entries", af.since, af.player, af.action, len(entries))}})
}

// recordOperator adds an operator command run on the host (export, import,
// replay, backup, events, queue) to the audit trail. The command has done
// its work; a trail that cannot be written is said on stderr, and the
// command fails so that a script notices.
func recordOperator(ctx context.Context, cfg app.Config, stderr io.Writer, action audit.Action, target, detail string) error {
	store, closeStore, err := app.OpenAuditStore(ctx, cfg)
	if err == nil {
		defer closeStore()
		err = store.Append(ctx, []audit.Entry{{At: time.Now().UTC(), Action: action, Principal: "operator", Target: target, Detail: detail}})
	}
	if err != nil {
		fmt.Fprintf(stderr, "taskqueue: the audit trail could not record %s: %v\n", action, err)
		return fmt.Errorf("record %s in the audit trail: %w", action, err)
	}
	return nil
}
