"""mkdocs hook: pages include sections of README.md, so the manual has one source.

A page says ``<!-- readme: A five-minute tour -->`` and gets the body of the
README section with that heading (``##`` or ``###``, up to the next heading
of the same or a higher level), its sub-headings raised one level (the page's
own title is ``#``) and its links into ``docs/`` made relative to the site.
A directive naming no README heading fails the build (a ValueError), so a
renamed section cannot silently vanish from the site.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[2] / "README.md"
DIRECTIVE = re.compile(r"<!--\s*readme:\s*(?P<title>[^>]+?)\s*-->")
HEADING = re.compile(r"^(?P<level>#{2,3}) (?P<title>.+?)\s*$")
FENCE = re.compile(r"^\s*```")


def sections(text: str) -> dict[str, str]:
    """README section bodies by heading title (fenced code is never read as headings)."""
    lines = text.splitlines()
    found: dict[str, str] = {}
    heads: list[tuple[int, int, str]] = []  # (line, level, title)
    fenced = False
    for number, line in enumerate(lines):
        if FENCE.match(line):
            fenced = not fenced
        match = None if fenced else HEADING.match(line)
        if match:
            heads.append((number, len(match["level"]), match["title"]))
    for i, (number, level, title) in enumerate(heads):
        end = next((n for n, lv, _ in heads[i + 1 :] if lv <= level), len(lines))
        found[title] = "\n".join(lines[number + 1 : end]).strip("\n")
    return found


def adapt(body: str, level: int = 2) -> str:
    """Raise sub-headings so the section's ``###`` are the page's ``##``; links into docs/."""
    out = []
    fenced = False
    for line in body.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        if not fenced and line.startswith("#" * (level + 1) + " "):
            line = line[level - 1 :]
        out.append(line)
    text = "\n".join(out)
    return re.sub(r"\]\(docs/", "](", text)


REFERENCE = re.compile(r"^\[[^\]]+\]: \S+$", re.MULTILINE)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    readme = README.read_text(encoding="utf-8")
    available = sections(readme)
    # The README's link reference definitions ([pgvector]: ...) serve every page.
    references = "\n".join(REFERENCE.findall(readme))

    def include(match: re.Match[str]) -> str:
        title = match["title"]
        if title not in available:
            raise ValueError(f"{page.file.src_path}: README.md has no section {title!r}")
        level = 3 if f"### {title}" in README.read_text(encoding="utf-8") else 2
        return adapt(available[title], level)

    included = DIRECTIVE.sub(include, markdown)
    return f"{included}\n\n{references}\n" if included != markdown else included
