"""Every command and snippet of the README runs, so the README cannot drift from the code.

The convention (for whoever edits README.md):

* Every fenced ```` ```python ```` block is run as its own ``python`` process.
* Every non-empty, non-comment line of a ```` ```bash ````, ```` ```sh ```` or
  ```` ```console ```` block is run as a shell command (a leading ``$ `` is
  dropped) and must exit 0.
* Blocks run in document order, from the repository root, **twice**, against
  one fresh migrated test database per file (``VECTORSTORE_DATABASE_URL``):
  a reader runs them on the persistent default database, again and again, so
  each block must clean up what it creates (or use names of its own).  With
  ``VECTORSTORE_DATA_DIR`` set to a temporary folder (so ``vectorstore db
  start`` never touches the user's server; it is stopped afterwards), the
  virtualenv's ``bin`` first on ``PATH``, and the models offline.
* A block that must not run inside the test suite is marked, visibly in the
  Markdown source, by an HTML comment on the line right before its fence that
  says why::

      <!-- readme-test: skip (the set-up commands; `make test` runs this suite) -->

  Only the set-up commands (``make demo``, ``make test``, ``pip install``)
  and commands that never exit (``flask run``) deserve the marker; the test lists the skipped
  blocks so the marker cannot hide a growing part of the README.
* Other fence languages (``text``, ``toml``, ``ini``, none) are not run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import URL

import vectorstore as vs

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "tuning.md"]
SKIP_MARKER = re.compile(r"<!--\s*readme-test:\s*skip\b(?P<why>.*?)-->")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[^`]*)$")
SHELL = {"bash", "sh", "shell", "console"}
# Blocks allowed to carry the skip marker, by the first line of their body.
ALLOWED_SKIPS = ("make demo", "make test", "flask --app", "make lint", "pip install")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int
    language: str
    body: str
    skip: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of ``path``, in order, with their skip markers."""
    found = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent = len(fence["indent"])
        language = fence["info"].strip().split(" ")[0].lower()
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = SKIP_MARKER.search(previous)
        start = i + 1
        i += 1
        while i < len(lines) and not FENCE.match(lines[i]):
            i += 1
        body = "\n".join(line[indent:] for line in lines[start:i])
        found.append(Block(path, start, language, body,
                           marker["why"].strip() if marker else None))  # fmt: skip
        i += 1
    return found


def shell_lines(block: Block) -> list[str]:
    commands = []
    for raw in block.body.splitlines():
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        if line and not line.startswith("#"):
            commands.append(line)
    return commands


def test_the_convention_is_followed() -> None:
    """Each skipped block says why and is one of the allowed kinds."""
    for path in DOCUMENTS:
        if not path.exists():
            continue
        for block in blocks(path):
            if block.skip is None:
                continue
            assert block.skip, f"{block.where}: the skip marker must say why"
            first = shell_lines(block)[0] if block.language in SHELL else block.body
            assert first.startswith(ALLOWED_SKIPS), (
                f"{block.where}: only set-up commands and servers may be skipped, got {first!r}"
            )


@pytest.fixture
def sandbox(db_url: URL) -> Iterator[dict[str, str]]:
    """The environment the README's commands run in."""
    root = Path(tempfile.mkdtemp(prefix="vs-readme-", dir="/tmp"))
    root.chmod(0o755)  # as root, the embedded server's OS user must enter it
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VECTORSTORE_", "DJANGO_"))}
    env.update(
        VECTORSTORE_DATABASE_URL=db_url.render_as_string(hide_password=False),
        VECTORSTORE_DATA_DIR=str(root / "pgdata"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    try:
        yield env
    finally:
        server = vs.EmbeddedServer(root / "pgdata")
        if server.status().running:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def run_block(block: Block, env: dict[str, str]) -> None:
    if block.language == "python":
        done = subprocess.run([sys.executable, "-c", block.body], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, f"{block.where} (python) failed:\n{done.stderr[-3000:]}"
        return
    for command in shell_lines(block):
        done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, (
            f"{block.where}: `{command}` exited {done.returncode}:\n"
            f"{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
        )


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_snippet_runs(path: Path, sandbox: dict[str, str]) -> None:
    if not path.exists():
        pytest.skip(f"{path.name} is not there yet")
    runnable = [b for b in blocks(path) if b.language in SHELL | {"python"}]
    assert runnable, f"{path.name} has no code blocks"
    for _ in range(2):  # the second pass finds what the first left behind
        for block in runnable:
            if block.skip is None:
                run_block(block, sandbox)


def test_the_parser_finds_blocks_and_markers(tmp_path: Path) -> None:
    sample = tmp_path / "sample.md"
    sample.write_text(
        "intro\n\n<!-- readme-test: skip (set-up) -->\n```bash\nmake demo\n```\n\n"
        "* item:\n\n  ```python\n  print(1)\n  ```\n\n```text\nnot code\n```\n"
    )
    found = [(b.language, b.body, b.skip) for b in blocks(sample)]
    assert found == [("bash", "make demo", "(set-up)"), ("python", "print(1)", None),
                     ("text", "not code", None)]  # fmt: skip
