"""The running appliance (see README)."""
