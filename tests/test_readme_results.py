"""The README quotes a measurement only with a link to the bench/RESULTS.md section that holds it.

Every ``bench/RESULTS.md#anchor`` link must name a section (an ``<a id>`` before a heading, or a
heading's GitHub slug), and every figure in the paragraph or list item around the link must appear in
the sections it links to, so a figure cannot outlive the run that produced it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
RESULTS = (ROOT / "bench" / "RESULTS.md").read_text(encoding="utf-8")

_LINK = re.compile(r"bench/RESULTS\.md#([\w-]+)")
# A number standing alone or ending a range ("62-100"), not part of a name ("AVX-512", "SmolLM2-135M").
_FIGURE = re.compile(r"(?:(?<=\d-)|(?<![\w.\-/#]))\d+(?:\.\d+)?(?:e-?\d+)?(?![\w])")
_ITEM_START = re.compile(r"^\s*(?:[-*]|\d+\.)\s")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def results_sections() -> dict[str, str]:
    """Each anchor (explicit ids and heading slugs) and the text of its section, subsections included."""
    lines = RESULTS.splitlines()
    sections: dict[str, str] = {}
    for i, line in enumerate(lines):
        heading = re.match(r"(#+) (.*)", line)
        if not heading:
            continue
        level = len(heading[1])
        end = next((j for j in range(i + 1, len(lines))
                    if (m := re.match(r"(#+) ", lines[j])) and len(m[1]) <= level), len(lines))
        text = "\n".join(lines[i:end])
        sections[_slug(heading[2])] = text
        explicit = re.fullmatch(r'<a id="([\w-]+)"></a>', lines[i - 1]) if i else None
        if explicit:
            sections[explicit[1]] = text
    return sections


def readme_items() -> list[str]:
    """The README's paragraphs and list items, fenced code left out."""
    items: list[str] = []
    current: list[str] = []
    fenced = False
    for line in [*README.splitlines(), ""]:
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if not line.strip() or _ITEM_START.match(line):
            if current:
                items.append("\n".join(current))
            current = [line] if line.strip() else []
        else:
            current.append(line)
    return items


def figures(text: str) -> set[float]:
    """The numbers a text states, outside code spans and link targets."""
    prose = re.sub(r"`[^`]*`", " ", re.sub(r"\]\([^)]*\)", "]", text))
    return {float(f) for f in _FIGURE.findall(prose)}


def test_every_results_link_in_the_readme_names_a_section() -> None:
    sections = results_sections()
    links = _LINK.findall(README)
    assert links, "the README cites no RESULTS section"
    missing = sorted(set(links) - set(sections))
    assert not missing, f"README links to bench/RESULTS.md#{missing}, which is no section there"


def test_results_links_inside_results_resolve() -> None:
    sections = results_sections()
    assert not sorted(set(re.findall(r"\]\(#([\w-]+)\)", RESULTS)) - set(sections))


def test_figures_beside_a_link_appear_in_the_linked_section() -> None:
    sections = results_sections()
    cited = [item for item in readme_items() if _LINK.search(item)]
    assert len(cited) >= 8
    for item in cited:
        source = "\n".join(sections[anchor] for anchor in _LINK.findall(item))
        absent = sorted(figures(item) - figures(source))
        assert not absent, f"README figures {absent} are not in the linked RESULTS section(s):\n{item}"


def test_figure_extraction() -> None:
    assert figures("AUROC 1.000, TPR 1.0 at 5% FPR, lr 2e-4, 0.80 -> 0.00 in 62-100 s") == {
        1.0, 5.0, 2e-4, 0.8, 0.0, 62.0, 100.0}
    assert figures("SmolLM2-135M-Instruct on AVX-512, `--eps 0.25`, [x](bench/RESULTS.md#a-1)") == set()


def test_readme_links_to_its_own_sections_resolve() -> None:
    headings = {_slug(h) for h in re.findall(r"^#+ (.*)$", README, flags=re.MULTILINE)}
    assert not sorted(set(re.findall(r"\]\(#([\w-]+)\)", README)) - headings)
