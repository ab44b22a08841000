"""Measurement decides: the timing protocol, the measurer, what measurements cost, accuracy,
the batch search, ``autotune verify`` and ``autotune bench``, and the decisions measurement makes."""
