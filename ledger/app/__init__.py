"""Use cases over the log port: append, checkpoint, prove, verify. Framework-free; the CLI, the
API and the workers call these and never the store directly for writes."""
