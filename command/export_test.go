package command

// WaitSnapshots waits for the snapshots h is saving in the background.
func WaitSnapshots(h *Handlers) { h.Queues.snaps.wait() }

// SnapshotSchema is the schema of the snapshots Queues writes.
const SnapshotSchema = snapshotSchema
