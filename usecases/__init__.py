"""The use cases: one plain function each, called by the entry points (receiver, workers, cli).

Each loads what it needs through `adapters`, asks `domain` to decide, and writes through `adapters`;
the entry points hold no SQL and no Redis commands.
"""
