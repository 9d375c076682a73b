"""Read side and process wiring: the FastAPI app factory, auth and error shapes, routers, the `streamfold` CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("streamfold")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
