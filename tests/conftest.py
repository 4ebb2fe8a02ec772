"""Shared test set-up: fixtures that start real parts live in tests/fixtures/,
one module each, so packages' tests can use them without importing each other."""

pytest_plugins = [
    "tests.fixtures.mosquitto",
    "tests.fixtures.tcp_proxy",  # before kafka, which imports it
    "tests.fixtures.kafka",
    "tests.fixtures.pty",
    "tests.fixtures.lazyfs_mount",
]


def pytest_sessionfinish(session, exitstatus):  # type: ignore[no-untyped-def]
    # CPython 3.11 before 3.11.8 keeps one AST-construction depth per interpreter
    # (gh-106905): a finalizer that formats a traceback (3.11 parses the source line to
    # place its carets) while pytest's terminal summary parses an import ends the run in
    # "SystemError: AST constructor recursion depth mismatch" after every test passed.
    # Collecting the garbage of the tests here runs those finalizers first.
    import gc

    gc.collect()
