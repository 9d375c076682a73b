"""Browser tests' harness and test site (the npm bundles live in node_modules, installed from the lock)."""
