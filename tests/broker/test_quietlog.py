"""Drops and rejections under a full quota are logged at most once a minute, with a count."""

from __future__ import annotations

import logging

import pytest

from broker._quietlog import QuietWarning


def test_a_burst_is_one_line_and_the_next_line_says_how_many_were_held(
        caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.quiet")
    quiet = QuietWarning(logger, interval_s=3600)
    with caplog.at_level(logging.WARNING, logger="test.quiet"):
        for i in range(500):
            quiet.warn("dropped %d record(s)", i)
        assert [r.getMessage() for r in caplog.records] == ["dropped 0 record(s)"]
        quiet._interval_s = 0  # the minute has passed
        quiet.warn("dropped %d record(s)", 7)
    assert caplog.records[-1].getMessage() == (
        "dropped 7 record(s) (and 499 more like it in the last minute, not logged)")
