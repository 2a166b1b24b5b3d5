package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/taskqueue/taskqueue/eventstore"
	"github.com/taskqueue/taskqueue/ops"
	"github.com/taskqueue/taskqueue/projections"
)

// OperatorApp is what an operator command that serves no request needs
// (`taskqueue replay`, `taskqueue forget`): the event store, the read
// side's projections runner, the Redis roles, and what forgetting a player
// erases. It runs no HTTP server, no WebSocket hub, no command side and no
// processor, and needs no token secret.
type OperatorApp struct {
	// Config is the configuration it was built from, defaults set.
	Config Config
	// Store is the event log.
	Store eventstore.Store
	// Projections runs the read models (their rebuilds, for replay and
	// forget).
	Projections *projections.Runner
	// Forgetting is what forgetting a player erases from here.
	Forgetting ops.Forgetting
	// Logger is its logger.
	Logger *slog.Logger
}

// NewOperatorApp opens the event store (its migrations applied), the Redis
// roles and the read side of cfg, which must keep its read models in SQL
// (SQLite or PostgreSQL). The returned cleanup stops and closes them; on
// error everything is closed already. logOut receives the log (os.Stderr
// when nil).
func NewOperatorApp(ctx context.Context, cfg Config, logOut io.Writer) (_ *OperatorApp, _ func(), err error) {
	var cl closers
	defer func() {
		if err != nil {
			cl.closeAll()
		}
	}()
	b, err := openBase(ctx, "build operator app", cfg, logOut, Config.ValidateWithoutTokens, &cl)
	if err != nil {
		return nil, nil, err
	}
	cfg, st := b.cfg, b.st
	if st.readModels == nil {
		return nil, nil, fmt.Errorf("build operator app: the read models are not in a SQL database")
	}
	a := &OperatorApp{Config: cfg, Store: b.store, Logger: b.log}
	rr, err := openRedis(cfg, a.Logger, &cl, st.readModels)
	if err != nil {
		return nil, nil, err
	}
	if err := b.instrumentRedis(rr.client); err != nil {
		return nil, nil, err
	}
	rs, err := startReadSide(a.Store, st.readModels, nil, cfg, a.Logger, b.metrics, nil)
	if err != nil {
		return nil, nil, err
	}
	cl.add(rs.stop)
	a.Projections = rs.runner
	if a.Forgetting, err = forgetting(keepers{store: a.Store, log: a.Logger, projections: a.Projections}, rr, st.readModels, st.pool, cfg, &cl); err != nil {
		return nil, nil, fmt.Errorf("build operator app: %w", err)
	}
	return a, cl.closeAll, nil
}
