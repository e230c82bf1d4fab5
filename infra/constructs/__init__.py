"""One construct per concern: data, layer, functions, api, auth (HTTP API authorizers), jobs (the
work state machine), streaming, realtime, observability.

(The package shares its name with the `constructs` library; `infra/app.py` keeps `infra/` itself
off `sys.path` so `import constructs` always means the library.)
"""
