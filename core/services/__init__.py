"""Use cases: one function each, taking a unit of work, an actor and plain values, returning plain
read models (dicts). Each write use case commits its unit of work once, at the end.
"""
