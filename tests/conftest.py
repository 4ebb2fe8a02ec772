"""Shared test set-up: fixtures that start real parts live in tests/fixtures/,
one module each, so packages' tests can use them without importing each other."""

pytest_plugins = [
    "tests.fixtures.mosquitto",
    "tests.fixtures.tcp_proxy",  # before kafka, which imports it
    "tests.fixtures.kafka",
    "tests.fixtures.pty",
]
