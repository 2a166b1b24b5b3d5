package command

// WaitSnapshots waits for the snapshots h is saving in the background.
func WaitSnapshots(h *Handlers) { h.Queues.snaps.wait() }
