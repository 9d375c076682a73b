"""The fold: log entries → read projections in Redis, committed atomically with the checkpoint.

One subpackage per projection, each owning its keys (`keys.py`), its fold step (`apply_*`) and its reads
(`read_*`): `events` (indices, text index, list query), `counters` (cube and stats), `identity` (contacts and
companies), `touchpoints` (chains, conversions, attribution). `fold` holds the machinery: appliers, the batch
fold and its commit, rebuild, progress. Beneath them all: `keyspace`, `located` (events with their log
position), `updates` (a batch's key changes) and `scripts` (the Lua loader).
"""
