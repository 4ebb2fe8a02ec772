"""README.md and docs/*.md: every relative link resolves, and the README stays a README.

A link that names a file in this repository (optionally with a ``#heading``) must
point at a file that exists, and the heading must be one of that page's own, spelled
as GitHub makes its anchors. Links to the web are not fetched: the tests run offline.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
PAGES = [TOP / "README.md", *sorted((TOP / "docs").glob("*.md"))]
README_MAX_LINES = 200  # STYLE.md: the README stays a README; the rest goes to docs/

# [text](target) and [text](target "title"), not images' data or code spans' brackets.
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def _prose(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks: a link in a code sample is not a link."""
    lines, fenced = [], False
    for lineno, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append((lineno, line))
    return lines


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, no punctuation but '-' and '_', '-' for spaces."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in _prose(page.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if m:
            a = _anchor(m.group(1))
            n = seen.get(a, 0)
            seen[a] = n + 1
            out.add(a if n == 0 else f"{a}-{n}")  # GitHub numbers repeated headings
    return out


def _links(page: Path) -> list[tuple[int, str]]:
    found = []
    for lineno, line in _prose(page.read_text(encoding="utf-8")):
        line = re.sub(r"`[^`]*`", "", line)  # code spans
        found += [(lineno, m.group(1)) for m in LINK.finditer(line)]
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(TOP)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for lineno, target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"line {lineno}: {target}: no such file")
            continue
        if anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"line {lineno}: {target}: {dest.name} has no heading #{anchor}")
    assert not broken, f"{page.relative_to(TOP)}:\n" + "\n".join(broken)


def test_readme_stays_short() -> None:
    n = len((TOP / "README.md").read_text(encoding="utf-8").splitlines())
    assert n < README_MAX_LINES, f"README.md has {n} lines; keep it under {README_MAX_LINES} (move the rest to docs/)"


def test_the_checks_see_links_and_anchors() -> None:
    # The checks above pass vacuously if the patterns stop matching: hold them to a sample.
    assert _anchor("Uplink to Kafka (1 broker) beside a plain aiokafka producer") == (
        "uplink-to-kafka-1-broker-beside-a-plain-aiokafka-producer")
    assert _anchor("A minute's tour") == "a-minutes-tour"
    assert _anchor("Stream processing: edge.streams beside a hand-written loop") == (
        "stream-processing-edgestreams-beside-a-hand-written-loop")
    readme = [t for _, t in _links(TOP / "README.md")]
    assert "docs/results.md" in readme and "docs/design.md" in readme


def test_readme_headline_numbers_are_results_md() -> None:
    # A number is stated in one place: the README's headline table copies figures of
    # docs/results.md (which bench/run_all.py writes), so each must be on that page as
    # it stands. After a new benchmark run, copy the new figures into the table.
    readme = (TOP / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Measured\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) > 3, "the README's headline table is gone"
    results = (TOP / "docs" / "results.md").read_text(encoding="utf-8")
    on_page = set(re.findall(r"(?<![\d.,])\d[\d,]*(?:\.\d+)?x?(?![\d,])", results))
    missing = sorted({n for row in rows[1:]
                      for n in re.findall(r"(?<![\d.,])\d[\d,]*(?:\.\d+)?x?(?![\d,])", row)} - on_page)
    assert not missing, f"README's headline figures not on docs/results.md: {missing}"
