"""The docs: the guide's snippets run, and every public name has a docstring.

``make docs`` builds the HTML reference with pdoc; these tests need no pdoc: they run
the docstring checker that the build runs first, and execute the guide's code blocks.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _checker():
    spec = importlib.util.spec_from_file_location("check_docstrings", DOCS / "check_docstrings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python_blocks(path: Path) -> list[str]:
    """The ```python fenced blocks of a markdown file, in order."""
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def test_every_public_name_of_needle_has_a_docstring():
    missing = _checker().missing_docstrings("needle")
    assert not missing, (
        f"{len(missing)} public names have no docstring (add a short numpy-style one):\n  "
        + "\n  ".join(missing))


def test_the_checker_finds_what_is_missing(tmp_path, monkeypatch):
    package = tmp_path / "fakepkg"
    (package / "_private").mkdir(parents=True)
    (package / "__init__.py").write_text('"""A package."""\nfrom .mod import Good\n')
    (package / "_private" / "__init__.py").write_text("def hidden():\n    pass\n")
    (package / "bare.py").write_text("X = 1\n")
    (package / "mod.py").write_text(textwrap.dedent('''
        """A module."""
        from os.path import join   # imported, checked where it lives

        __all__ = ["Good", "Bad", "undocumented", "documented", "join"]


        class Good:
            """Documented."""

            def method(self):
                """Documented."""

            def _private(self):
                pass

            @property
            def prop(self):
                return 1


        class Bad(Good):
            def method(self):   # inherits Good.method's docstring
                pass

            @staticmethod
            def helper():
                pass


        def undocumented():
            pass


        def documented():
            """Yes."""


        def not_exported():
            pass
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        missing = _checker().missing_docstrings("fakepkg")
    finally:
        for name in [m for m in sys.modules if m.startswith("fakepkg")]:
            del sys.modules[name]
    assert missing == [
        "fakepkg.bare (module)",
        "fakepkg.mod.Bad (class)",
        "fakepkg.mod.Bad.helper (method)",
        "fakepkg.mod.Good.prop (property)",
        "fakepkg.mod.undocumented (function)",
    ]


def test_the_checker_reports_modules_that_do_not_import(tmp_path, monkeypatch):
    package = tmp_path / "brokenpkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""A package."""\n')
    (package / "broken.py").write_text('"""Needs a missing package."""\nimport no_such_module\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        missing = _checker().missing_docstrings("brokenpkg")
    finally:
        for name in [m for m in sys.modules if m.startswith("brokenpkg")]:
            del sys.modules[name]
    assert len(missing) == 1 and missing[0].startswith("brokenpkg.broken (ModuleNotFoundError")


def test_the_guide_snippets_run(tmp_path, monkeypatch):
    blocks = python_blocks(DOCS / "how-needle-works.md")
    assert len(blocks) >= 8
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "guide"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"how-needle-works.md block {i + 1}", "exec"), namespace)
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"block {i + 1} of docs/how-needle-works.md failed: "
                        f"{type(e).__name__}: {e}\n{block}")
