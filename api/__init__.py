"""Read side and process wiring: the FastAPI app factory, auth and error shapes, routers, the `streamfold` CLI."""
