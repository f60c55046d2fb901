"""Fail when a public module, class, function or method of a package has no docstring.

``make docs`` runs this before building the API reference, and ``tests/test_docs.py``
runs it on needle, so a public name without a docstring fails both::

    python docs/check_docstrings.py            # checks the package `needle`
    python docs/check_docstrings.py mypackage

Public means: a module whose dotted name has no part starting with ``_``; in it, the
names listed in ``__all__`` (or, without ``__all__``, the names not starting with ``_``)
that are functions or classes defined in that module (a name re-exported from another
public module is checked there); in a public class, every attribute not starting with
``_`` that is a function, classmethod, staticmethod or property, defined in that class.
A method that overrides a documented method of a base class inherits its docstring
(as ``inspect.getdoc`` and the API reference do); a class must have its own.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from types import ModuleType
from typing import NamedTuple


def _public_module(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def _has_doc(obj: object) -> bool:
    doc = getattr(obj, "__doc__", None)
    return isinstance(doc, str) and bool(doc.strip())


def _member_doc(cls: type, name: str, member: object) -> bool:
    """Whether a class attribute has a docstring, its own or a base class's."""
    if isinstance(member, (classmethod, staticmethod)):
        member = member.__func__
    if _has_doc(member):
        return True
    for base in cls.__mro__[1:]:
        if name in base.__dict__:
            inherited = base.__dict__[name]
            if isinstance(inherited, (classmethod, staticmethod)):
                inherited = inherited.__func__
            if _has_doc(inherited):
                return True
    return False


def _is_member(member: object) -> bool:
    return isinstance(member, (classmethod, staticmethod, property)) or inspect.isfunction(
        member)


def modules_of(package: str) -> tuple[list[ModuleType], list[str]]:
    """The public modules of ``package`` (imported) and the ones that failed to import."""
    root = importlib.import_module(package)
    found, failed = [root], []
    for info in pkgutil.walk_packages(root.__path__, prefix=package + ".",
                                      onerror=lambda name: failed.append(name)):
        if not _public_module(info.name):
            continue
        try:
            found.append(importlib.import_module(info.name))
        except Exception as e:  # noqa: BLE001  (report every failure, keep checking)
            failed.append(f"{info.name} ({type(e).__name__}: {e})")
    return found, failed


def _public_names(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return list(names)


def _checked_here(module: ModuleType, obj: object) -> bool:
    """Check an object in the module that defines it, or here if that module is private."""
    home = getattr(obj, "__module__", None)
    if home == module.__name__:
        return True
    return (isinstance(home, str) and home.split(".")[0] == module.__name__.split(".")[0]
            and not _public_module(home) and hasattr(module, "__all__"))


class Entry(NamedTuple):
    """One public name: where it is defined, its dotted name there, kind, and docstring."""

    module: str
    qualname: str
    kind: str
    documented: bool

    def __str__(self) -> str:
        return f"{self.module}.{self.qualname}" if self.qualname else self.module


def public_api(package: str = "needle") -> tuple[list[Entry], list[str]]:
    """Every public module, class, function and method of ``package``, and the modules
    that could not be imported."""
    modules, failed = modules_of(package)
    entries: list[Entry] = []
    seen: set[int] = set()
    for module in modules:
        here = module.__name__
        entries.append(Entry(here, "", "module", _has_doc(module)))
        for name in _public_names(module):
            obj = getattr(module, name, None)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if id(obj) in seen or not _checked_here(module, obj):
                continue
            seen.add(id(obj))
            if inspect.isfunction(obj):
                entries.append(Entry(here, name, "function", _has_doc(obj)))
                continue
            # A class's __doc__ is its own: it is not inherited from the base class.
            entries.append(Entry(here, name, "class", _has_doc(obj)))
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not _is_member(member):
                    continue
                kind = "property" if isinstance(member, property) else "method"
                entries.append(Entry(here, f"{name}.{attr}", kind,
                                     _member_doc(obj, attr, member)))
    return entries, failed


def missing_docstrings(package: str = "needle") -> list[str]:
    """The public modules, classes, functions and methods with no docstring, e.g.
    ``needle.ops.ops_mathematic.add (function)``; modules that cannot be imported are
    reported as ``<name> (<error>): cannot import``."""
    entries, failed = public_api(package)
    missing = [f"{name}: cannot import" for name in failed]
    missing += [f"{entry} ({entry.kind})" for entry in entries if not entry.documented]
    return sorted(missing)


def main(argv: list[str]) -> int:
    package = argv[1] if len(argv) > 1 else "needle"
    missing = missing_docstrings(package)
    if missing:
        print(f"{len(missing)} public names of {package} have no docstring "
              "(numpy style, see docs/how-needle-works.md for the conventions):")
        for name in missing:
            print(f"  {name}")
        return 1
    print(f"every public module, class, function and method of {package} has a docstring")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
