package ops

import (
	"io"
	"log/slog"
)

// discardLogger silences the runner of a ReplayTo: its progress is drawn
// on the caller's writer instead.
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
