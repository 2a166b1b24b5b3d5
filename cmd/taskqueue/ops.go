package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/taskqueue/taskqueue/app"
	"github.com/taskqueue/taskqueue/audit"
	"github.com/taskqueue/taskqueue/auth"
	"github.com/taskqueue/taskqueue/domain"
	"github.com/taskqueue/taskqueue/ops"
)

// opsFlags are the flags of the operator commands (events, queue, export,
// import, replay, backup, forget) beside the configuration's.
type opsFlags struct {
	player     string
	from       string
	to         string
	at         string
	types      string
	limit      int
	projection string
	toPosition string
	toTime     string
	into       string
}

func opsFlagSet(cmd string) (*flag.FlagSet, *opsFlags) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	of := &opsFlags{}
	switch cmd {
	case "events":
		fs.StringVar(&of.player, "player", "", "player whose events to print (required)")
		fs.StringVar(&of.from, "from", "", "first moment: an RFC 3339 time or a global position")
		fs.StringVar(&of.types, "type", "", "comma-separated event types to keep")
		fs.IntVar(&of.limit, "limit", 0, "most events to print (0: all)")
	case "queue":
		fs.StringVar(&of.player, "player", "", "player whose queue to show (required)")
		fs.StringVar(&of.at, "at", "", "moment: an RFC 3339 time or a global position (default: now)")
	case "export":
		fs.StringVar(&of.from, "from", "", "events that occurred at or after this time")
		fs.StringVar(&of.to, "to", "", "events that occurred before this time")
	case "import":
	case "forget":
		fs.StringVar(&of.player, "player", "", "player to forget: erase their events, read models, sessions and cached data (required)")
	case "backup":
		fs.StringVar(&of.into, "to", "", "directory to write the copy into; must not exist or be empty (required)")
	case "replay":
		fs.StringVar(&of.projection, "projection", "", "projection to rebuild, or all (required)")
		fs.StringVar(&of.toPosition, "to-position", "", "build the read models as they were at this global position, into a new SQLite file")
		fs.StringVar(&of.toTime, "to-time", "", "build the read models as they were at this time, into a new SQLite file")
		fs.StringVar(&of.into, "into", "", "the new SQLite file of --to-position/--to-time (default ./replay-<time>.db)")
	default:
		return nil, nil
	}
	return fs, of
}

// opsCommand runs one of the operator commands.
func opsCommand(ctx context.Context, cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	fs, of := opsFlagSet(cmd)
	cfg, err := parseCommandLine(fs, usageOf(cmd), args, stderr, getenv)
	if err != nil {
		return err
	}
	if cfg, err = validated(cfg, false); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) > 0 && !(cmd == "import" && len(rest) == 1) {
		return &usageError{fmt.Sprintf("%s takes no arguments, got %q", cmd, rest)}
	}
	switch cmd {
	case "events", "queue", "forget":
		if of.player == "" {
			return &usageError{cmd + " needs --player"}
		}
		if _, err := domain.ParsePlayerID(of.player); err != nil {
			return &usageError{"--player: " + err.Error()}
		}
	case "backup":
		if of.into == "" {
			return &usageError{"backup needs --to DIR"}
		}
		if cfg.DatabaseURL != "" || cfg.KurrentDBURL != "" {
			return fmt.Errorf("backup copies the embedded SQLite data directory; on PostgreSQL use pg_basebackup with WAL archiving (docs/OPERATIONS.md, \"Backup and restore\")")
		}
		res, err := ops.Backup(ctx, ops.BackupOptions{DataDir: cfg.DataDir, File: app.SQLiteFileName, To: of.into, Secret: auth.SecretFileName})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "backed up %d events (up to position %s), %d bytes, into %s\n", res.Events, res.Head, res.Bytes, res.Path)
		return recordOperator(ctx, cfg, stderr, audit.Backup, res.Path, fmt.Sprintf("%d events up to %s", res.Events, res.Head))
	case "replay":
		if of.projection == "" {
			return &usageError{"replay needs --projection NAME or --projection all"}
		}
		if of.toPosition != "" && of.toTime != "" {
			return &usageError{"replay takes --to-position or --to-time, not both"}
		}
	}

	if cmd == "forget" {
		return forget(ctx, cfg, of.player, stdout, stderr)
	}
	if cmd == "replay" && of.toPosition == "" && of.toTime == "" {
		// A blue-green rebuild of the serving read models, by a runner of
		// this process (a running server's runner follows the switch). No
		// processor runs here: replaying must not complete the repetitions
		// that fell due (that appends events).
		a, cleanup, err := app.NewOperatorApp(ctx, cfg, io.Discard)
		if err != nil {
			return err
		}
		defer cleanup()
		if err := ops.Replay(ctx, a.Projections, stdout, ops.ReplayOptions{Projection: of.projection, TTY: isTerminal(stdout)}); err != nil {
			return err
		}
		return recordOperator(ctx, cfg, stderr, audit.Replay, of.projection, "blue-green rebuild")
	}

	store, closeStore, err := app.OpenEventStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	switch cmd {
	case "events":
		from, err := ops.ParseMoment(of.from)
		if err != nil {
			return &usageError{"--from: " + err.Error()}
		}
		var types []string
		for _, t := range strings.Split(of.types, ",") {
			if t = strings.TrimSpace(t); t != "" {
				types = append(types, t)
			}
		}
		if _, err = ops.ListEvents(ctx, store, stdout, ops.EventsQuery{Player: domain.PlayerID(of.player), From: from, Types: types, Limit: of.limit}); err != nil {
			return err
		}
		return recordOperator(ctx, cfg, stderr, audit.EventRead, of.player, fmt.Sprintf("from=%s type=%s limit=%d", of.from, of.types, of.limit))
	case "queue":
		at, err := ops.ParseMoment(of.at)
		if err != nil {
			return &usageError{"--at: " + err.Error()}
		}
		rules, err := app.Rules(cfg)
		if err != nil {
			return err
		}
		if err := ops.PrintQueueAt(ctx, store, stdout, domain.PlayerID(of.player), at, rules); err != nil {
			return err
		}
		return recordOperator(ctx, cfg, stderr, audit.TimeTravel, of.player, "at="+of.at)
	case "export":
		r, err := ops.ParseRange(of.from, of.to)
		if err != nil {
			return &usageError{err.Error()}
		}
		res, err := ops.Export(ctx, store, stdout, r)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "exported %d events up to position %s\n", res.Events, res.Head)
		return recordOperator(ctx, cfg, stderr, audit.Export, "", fmt.Sprintf("from=%s to=%s: %d events up to %s", of.from, of.to, res.Events, res.Head))
	case "import":
		in := stdin
		if len(rest) == 1 && rest[0] != "-" {
			f, err := os.Open(rest[0])
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		res, err := ops.Import(ctx, store, in)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "imported %d events of %d streams; last position %s\n", res.Events, res.Streams, res.Last)
		return recordOperator(ctx, cfg, stderr, audit.Import, "", fmt.Sprintf("%d events of %d streams, last %s", res.Events, res.Streams, res.Last))
	default: // replay to a bound
		moment := of.toPosition
		if moment == "" {
			moment = of.toTime
		}
		to, err := ops.ParseMoment(moment)
		if err != nil {
			return &usageError{err.Error()}
		}
		into := of.into
		if into == "" {
			into = fmt.Sprintf("replay-%s.db", time.Now().UTC().Format("20060102T150405"))
		}
		res, err := ops.ReplayTo(ctx, store, stdout, ops.ReplayToOptions{
			ReplayOptions: ops.ReplayOptions{Projection: of.projection, TTY: isTerminal(stdout)}, To: to, Into: into,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d events replayed into %s\n", res.Events, res.Path)
		return recordOperator(ctx, cfg, stderr, audit.Replay, of.projection, fmt.Sprintf("to %s into %s: %d events", moment, res.Path, res.Events))
	}
}

// isTerminal reports whether w is a terminal (progress bars redraw in place).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && ops.IsTerminal(f)
}
