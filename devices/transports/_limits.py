"""Limits a config reads without loading its transport's client library (paho)."""

DEFAULT_MAX_PAYLOAD = 1024 * 1024  # bytes; a reading is ~150, Mosquitto's own limit 256 MB
