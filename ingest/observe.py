"""What the write path reports as it answers: how many events of a request were accepted (appended to the log)
and the codes of the ones it rejected, by source (`sdk`, `beacon`, `crm`, `email`).

The default observer reports nowhere; the app gives its `Receiver` one that counts for Prometheus
(`api.metrics`), so this package never imports a metrics library's registry or the web layer.
"""

from __future__ import annotations

from collections.abc import Sequence

SOURCES = ("sdk", "beacon", "crm", "email")


class IngestObserver:
    """Called once per request that got as far as judging its messages; must be cheap (the fast path calls it)."""

    def received(self, source: str, accepted: int, rejected_codes: Sequence[str] = ()) -> None:
        """`accepted` events were appended to the log; one code per rejected message (`invalid_event`, …)."""
