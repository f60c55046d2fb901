"""Build the HTML API reference into docs/_build (``make docs``).

1. ``check_docstrings``: any public module, class, function or method without a
   docstring fails the build, listed by dotted name.
2. pdoc renders every public module (numpy-style docstrings) and the guide
   ``how-needle-works.md`` (through ``how_needle_works.py``, whose docstring includes it).
3. Every public name is looked up in the pages: the build fails if one is absent.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import check_docstrings  # noqa: E402

OUT = HERE / "_build"


def page_of(module: str) -> Path:
    """The HTML file pdoc writes for a module."""
    return OUT.joinpath(*module.split(".")).with_suffix(".html")


def main() -> int:
    entries, failed = check_docstrings.public_api("needle")
    missing = [f"{name}: cannot import" for name in failed]
    missing += [f"{e} ({e.kind})" for e in entries if not e.documented]
    if missing:
        print(f"docs: {len(missing)} public names have no docstring:", file=sys.stderr)
        for name in sorted(missing):
            print(f"  {name}", file=sys.stderr)
        return 1

    import pdoc
    import pdoc.extract
    import pdoc.render

    # needle.autograd's TENSOR_COUNTER and LAZY_MODE are properties of the module's class
    # (live values the course reads), which pdoc looks for in the module's namespace only;
    # the module docstring documents them.
    warnings.filterwarnings("ignore", r"Found '(TENSOR_COUNTER|LAZY_MODE)' in needle\.autograd")

    # pdoc walks a package's submodules but hides those a package's __all__ leaves out
    # (needle.ops re-exports its ops): name those modules too, each once.
    specs = ["needle"]
    included = set(pdoc.extract.walk_specs(specs))
    for module in sorted(e.module for e in entries if e.kind == "module"):
        if module not in included:
            specs.append(module)
            included.update(pdoc.extract.walk_specs([module]))
    specs += [str(HERE / "how_needle_works.py"), r"!.*\._"]   # no private modules
    shutil.rmtree(OUT, ignore_errors=True)
    pdoc.render.configure(docformat="numpy", footer_text="needle API reference",
                          show_source=True)
    pdoc.pdoc(*specs, output_directory=OUT)

    absent = []
    pages: dict[str, str] = {}
    for e in entries:
        page = page_of(e.module)
        if e.module not in pages:
            pages[e.module] = page.read_text() if page.exists() else ""
        if not pages[e.module]:
            absent.append(f"{e.module}: no page {page.relative_to(HERE)}")
        elif e.qualname and f'id="{e.qualname}"' not in pages[e.module]:
            absent.append(f"{e}: not on {page.relative_to(HERE)}")
    if not (OUT / "how_needle_works.html").exists():
        absent.append("the guide how_needle_works.html was not written")
    if absent:
        print(f"docs: {len(absent)} public names are missing from the pages:", file=sys.stderr)
        for line in sorted(set(absent)):
            print(f"  {line}", file=sys.stderr)
        return 1
    n = {kind: sum(e.kind == kind for e in entries) for kind in
         ("module", "class", "function", "method", "property")}
    print(f"docs: {n['module']} modules, {n['class']} classes, {n['function']} functions, "
          f"{n['method'] + n['property']} methods and properties, and the guide: "
          f"{OUT.relative_to(HERE.parent)}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
