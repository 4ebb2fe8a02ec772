"""The embedded partitioned log (see README)."""
