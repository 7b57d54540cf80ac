"""The application layer, between ops and cli: what a command needs whatever its interface.

`environment.Environment` is the world a command runs in (streams, terminal, variables, root
options), passed in; `service.Service` is the one way to look at the host (or at a saved
snapshot). The CLI parses and renders; the live page (tracer/output/web/feed.py) is handed the
service's look as a function, since output is below this layer.
"""
