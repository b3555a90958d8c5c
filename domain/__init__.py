"""The pure core: recovery flow, session reports, decision rules, signatures and the audit chain.

Standard library only; no I/O and no clock (callers pass the time in).
"""
