"""The Starlette app: webhook receiver, recovery API, audit API, health and metrics."""
