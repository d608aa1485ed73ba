"""Live delivery of the event log: one LISTEN connection per process, fanned out in memory."""
