"""The touchpoints projection and the attribution API's reads: which marketing source brought each session
(`classify`), visitors' touchpoint chains and conversions (`chains`), the eight attribution models (`models`)
and attribution pages (`read`).

What other packages use is imported here; the rest is the package's own.
"""

from .chains import apply_touchpoints, load_state
from .classify import AD_FIELDS, SOURCES, classify
from .models import MODELS, WINDOWS_DAYS, attribute
from .read import AttributionQuery, ChainResolver, Row, read_attribution_rows

__all__ = [
    "AD_FIELDS",
    "MODELS",
    "SOURCES",
    "WINDOWS_DAYS",
    "AttributionQuery",
    "ChainResolver",
    "Row",
    "apply_touchpoints",
    "attribute",
    "classify",
    "load_state",
    "read_attribution_rows",
]
