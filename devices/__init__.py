"""Device transports, codecs and the simulator (see README)."""
