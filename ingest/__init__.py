"""Write side of Streamfold: wire schemas, validation, normalization and appending to the log.

Nothing in this package imports `projections` or `api`.
"""
