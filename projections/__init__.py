"""The fold: log entries → read projections in Redis, committed atomically with the checkpoint.

One module per projection (`apply_*` builds key updates, `read_*` answers queries); `applier` consumes the
log through FastStream; `rebuild` replays the log into a fresh key namespace and compares digests.
"""
