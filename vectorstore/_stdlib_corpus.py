"""The demo's corpus: the documentation of Python's own standard library.

It exists on every machine with Python, needs no download, and is real prose
with structure: each text has a module and a kind, which gives metadata filters
something meaningful to do, and the modules form a small relational table to
join against.

What is collected, in a deterministic order:

* ``module``: the docstring of each importable, public stdlib module (and of
  the public submodules of the packages in :data:`SUBMODULE_PACKAGES`);
* ``class`` / ``function``: the docstrings of the public classes and functions
  a module defines itself (re-exports are skipped, so each appears once);
* ``topic``: pydoc's help topics (``help('FORMATTING')``), from ``pydoc_data.topics``.

Modules with side effects on import (``antigravity`` opens a browser, ``this``
prints) and GUI or interactive ones are never imported.  Import warnings
(deprecated modules) are silenced while collecting.  Texts are cut to
their summary (the first paragraph, reST markup removed, at most
:data:`MAX_CHARS`; see :func:`_clip` for why): all-MiniLM-L6-v2 reads only its
first 256 word pieces anyway, and short texts keep the demo within a few
minutes on two CPU cores.
"""

from __future__ import annotations

import importlib
import inspect
import io
import re
import sys
import warnings
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

__all__ = [
    "MAX_CHARS",
    "SKIP_MODULES",
    "SUBMODULE_PACKAGES",
    "DocText",
    "ModuleInfo",
    "extract_corpus",
]

MAX_CHARS = 500
# pydoc's help topics live in this module (which is not imported as a module text).
TOPICS_MODULE = "pydoc_data.topics"
MIN_CHARS = 40
# Never imported: side effects on import, GUI/terminal toolkits, interpreter internals.
SKIP_MODULES = frozenset(
    {
        "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "__main__",
        "__future__", "__phello__", "pydoc_data", "test", "lib2to3", "ensurepip", "venv",
        "msilib", "winreg", "winsound", "_msi", "nt", "msvcrt", "curses", "readline",
        "xxsubtype", "xxlimited",
    }
)  # fmt: skip
# Packages whose public submodules are documented too (they are most of the package).
SUBMODULE_PACKAGES = (
    "asyncio", "collections", "concurrent.futures", "email", "http", "importlib",
    "json", "logging", "multiprocessing", "unittest", "urllib", "xml.etree", "xml.dom",
)  # fmt: skip


@dataclass(frozen=True)
class DocText:
    """One text of the corpus, with the metadata the demo stores beside it."""

    external_id: str
    text: str
    module: str
    kind: str  # "module", "class", "function" or "topic"
    name: str

    @property
    def metadata(self) -> dict[str, str]:
        return {"module": self.module, "kind": self.kind, "name": self.name}


@dataclass
class ModuleInfo:
    """A row of the demo's relational module table."""

    name: str
    top_level: str
    is_package: bool
    pure_python: bool
    source_lines: int
    public_names: int = 0
    texts: list[DocText] = field(default_factory=list)


# reST markup that carries no meaning for a sentence model: :role:`target`, ``literal``, <url>.
_ROLE = re.compile(r":[\w.]+(?::[\w.]+)?:`[~!]?([^`<]+?)(?:\s*<[^>]+>)?`")
_LITERAL = re.compile(r"``([^`]+)``")
_LINK = re.compile(r"\s*<https?://[^>]+>")


def _plain(text: str) -> str:
    """``:mod:`json``` -> ``json``, ````s```` -> ``s``, links dropped."""
    return _LINK.sub("", _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text)))


def _prose(text: str) -> str:
    """The text without its code: doctest lines and the indented literal blocks after ``::``."""
    kept: list[str] = []
    literal = False
    for line in text.splitlines():
        stripped = line.strip()
        if literal:
            if not stripped or line[:1].isspace():
                continue  # inside the literal block
            literal = False
        if stripped.startswith((">>>", "... ")) or stripped == "...":
            continue
        if stripped.endswith("::"):
            literal = True
            line = line.rstrip()[:-1]  # "Usage::" reads "Usage:"
        kept.append(line)
    return "\n".join(kept)


def _clip(doc: str | None, *, summary: bool = False) -> str | None:
    """The docstring as prose to embed: markup and code removed, at most MAX_CHARS.

    With ``summary`` (functions and classes), only the summary paragraph(s)
    until MIN_CHARS is reached: by PEP 257 the first paragraph says what a
    thing does and the rest documents its arguments.  Embedded whole, those
    details dilute the summary: ``json.loads`` ("Deserialize s ... to a Python
    object", then a paragraph each on ``object_hook``, ``parse_float``...)
    ranked below one-line docstrings that merely share words with a question.
    A module's or topic's docstring is an overview: its paragraphs are kept
    up to MAX_CHARS, without the code examples.  A text longer than MAX_CHARS
    is cut at a paragraph or sentence end.
    """
    if not doc:
        return None
    cleaned = _prose(_plain(inspect.cleandoc(doc)))
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", cleaned)]
    text = ""
    for paragraph in filter(None, paragraphs):
        text = f"{text}\n\n{paragraph}" if text else paragraph
        if (summary and len(text) >= MIN_CHARS) or len(text) > MAX_CHARS:
            break
    if len(text) > MAX_CHARS:
        cut = text[:MAX_CHARS]
        for mark in ("\n\n", ". "):
            at = cut.rfind(mark)
            if at >= MAX_CHARS // 3:
                cut = cut[: at + 1]
                break
        text = cut
    text = text.strip()
    return text if len(text) >= MIN_CHARS else None


def _import_quietly(name: str) -> ModuleType | None:
    sink = io.StringIO()
    with warnings.catch_warnings(), redirect_stdout(sink), redirect_stderr(sink):
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module(name)
        except (Exception, SystemExit):  # any failure to import means: skip the module
            return None


def _module_names() -> list[str]:
    names = sorted(
        n for n in sys.stdlib_module_names if not n.startswith("_") and n not in SKIP_MODULES
    )
    for package in SUBMODULE_PACKAGES:
        module = _import_quietly(package)
        if module is None or not hasattr(module, "__path__"):
            continue
        import pkgutil

        for info in pkgutil.iter_modules(module.__path__):
            if not info.name.startswith("_") and info.name not in ("tests", "test"):
                names.append(f"{package}.{info.name}")
    return sorted(set(names))


def _source_lines(module: ModuleType) -> int:
    path = getattr(module, "__file__", None)
    if not path or not str(path).endswith(".py"):
        return 0
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0


def _members(module: ModuleType) -> list[tuple[str, str, Any]]:
    public = getattr(module, "__all__", None)
    names = (
        [n for n in public if isinstance(n, str)]
        if isinstance(public, (list, tuple))
        else [n for n in vars(module) if not n.startswith("_")]
    )
    found = []
    for name in sorted(set(names)):
        obj = getattr(module, name, None)
        if inspect.isclass(obj):
            kind = "class"
        elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
            kind = "function"
        else:
            continue
        # Defined here, not re-exported from elsewhere (so each text appears once).
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        found.append((name, kind, obj))
    return found


def _topics() -> list[DocText]:
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return []
    texts = []
    for key in sorted(topics):
        body = _clip(topics[key])
        if body is not None:
            texts.append(DocText(f"topic:{key}", body, TOPICS_MODULE, "topic", key))
    return texts


def extract_corpus(limit: int | None = None) -> tuple[list[ModuleInfo], list[DocText]]:
    """Collect the stdlib's documentation: the module table and the texts.

    Args:
        limit: keep at most this many texts (modules first, then members, then
            topics, each in name order), for a quicker run.  None keeps all.

    Returns:
        The modules that were imported (the relational table) and the texts,
        each with a stable ``external_id`` such as ``function:json.dumps``.
    """
    modules: list[ModuleInfo] = []
    for name in _module_names():
        module = _import_quietly(name)
        if module is None:
            continue
        info = ModuleInfo(
            name=name,
            top_level=name.split(".")[0],
            is_package=hasattr(module, "__path__"),
            pure_python=str(getattr(module, "__file__", "") or "").endswith(".py"),
            source_lines=_source_lines(module),
        )
        doc = _clip(module.__doc__)
        if doc is not None:
            info.texts.append(DocText(f"module:{name}", doc, name, "module", name))
        members = _members(module)
        info.public_names = len(members)
        for member, kind, obj in members:
            body = _clip(getattr(obj, "__doc__", None), summary=True)
            if body is None:
                continue
            qualname = f"{name}.{member}"
            info.texts.append(
                DocText(f"{kind}:{qualname}", f"{qualname}: {body}", name, kind, member)
            )
        modules.append(info)
    texts = [t for m in modules for t in m.texts if t.kind == "module"]
    texts += [t for m in modules for t in m.texts if t.kind != "module"]
    topics = _topics()
    if topics:
        modules.append(ModuleInfo(TOPICS_MODULE, "pydoc_data", False, True, 0, len(topics)))
    texts += topics
    if limit is not None:
        texts = _spread(texts, limit)
    return modules, texts


def _spread(texts: list[DocText], limit: int) -> list[DocText]:
    """At most ``limit`` texts: every module text, then members and topics evenly sampled."""
    if len(texts) <= limit:
        return texts
    modules = [t for t in texts if t.kind == "module"][:limit]
    rest = [t for t in texts if t.kind != "module"]
    room = limit - len(modules)
    if room <= 0:
        return modules
    step = len(rest) / room
    return modules + [rest[int(i * step)] for i in range(room)]
