"""Per-machine profiles: the store and the fingerprint that tells whether a profile is still
this machine's."""
