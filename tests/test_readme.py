"""README.md is true: every Python snippet runs and prints what the README shows.

The convention (stated in the README too): a ```python block followed directly by a
```text block must print exactly that text; a ```python block without one must print
nothing. ``...`` in a text block stands for any text (as in doctest's ELLIPSIS), for the
parts that depend on where the snippet runs. Each block runs on its own, in a fresh
interpreter, in a temporary directory (so checkpoints land there), with the checkout's
needle importable and the current NEEDLE_BACKEND.

The shell commands the README shows are checked too: every ``make X`` is a Makefile target,
and every ``python -m apps.X ...`` / ``python -m bench.X ...`` parses with that program's
own argument parser.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, line number) of every fenced block, in order."""
    blocks = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        match = re.match(r"^```(\w*)\s*$", lines[i])
        if match:
            start = i
            i += 1
            body = []
            while i < len(lines) and lines[i].rstrip() != "```":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise AssertionError(f"README.md:{start + 1}: unterminated code block")
            blocks.append((match.group(1), "\n".join(body) + "\n", start + 1))
        i += 1
    return blocks


def python_examples(text: str) -> list[tuple[int, str, str | None]]:
    """(line, code, expected output or None) for every ```python block."""
    blocks = fenced_blocks(text)
    lines = text.split("\n")
    examples = []
    for k, (lang, body, line) in enumerate(blocks):
        if lang != "python":
            continue
        expected = None
        if k + 1 < len(blocks) and blocks[k + 1][0] == "text":
            closing = line + body.count("\n")  # 0-based index of this block's closing fence
            between = lines[closing + 1:blocks[k + 1][2] - 1]
            if all(not s.strip() for s in between):
                expected = blocks[k + 1][1]
        examples.append((line, body, expected))
    return examples


def output_matches(expected: str, actual: str) -> bool:
    """Equality of the stripped texts, ``...`` matching any run of characters."""
    pattern = ".*?".join(re.escape(part) for part in expected.strip().split("..."))
    return re.fullmatch(pattern, actual.strip(), flags=re.S) is not None


with open(README, encoding="utf-8") as _f:
    TEXT = _f.read()
EXAMPLES = python_examples(TEXT)


def test_readme_has_its_examples():
    assert len(EXAMPLES) >= 5
    assert sum(expected is not None for _, _, expected in EXAMPLES) >= 5


def test_every_text_block_is_the_output_of_the_python_block_before_it():
    # The convention has no exceptions: an orphan ```text block would never be checked.
    outputs = {expected for _, _, expected in EXAMPLES if expected is not None}
    orphans = [line for lang, body, line in fenced_blocks(TEXT)
               if lang == "text" and body not in outputs]
    assert orphans == [], f"```text blocks not right after a ```python block: lines {orphans}"


def test_output_matching_is_strict():
    assert output_matches("a\nb\n", "a\nb")
    assert not output_matches("a\nb\n", "a\nc")
    assert output_matches("x at .../f.py:3 in g", "x at /tmp/q/f.py:3 in g")
    assert not output_matches("x at .../f.py:3 in g", "x at /tmp/q/f.py:4 in g")
    assert not output_matches("[1.]", "[1.] [2.]")


@pytest.mark.parametrize("line, code, expected", EXAMPLES,
                         ids=[f"README.md:{line}" for line, _, _ in EXAMPLES])
def test_python_block_runs_and_prints_what_the_readme_shows(tmp_path, line, code, expected):
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.join(ROOT, "python"), ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"README.md:{line} failed:\n{result.stderr}"
    if expected is None:
        assert result.stdout == "", (f"README.md:{line} prints but shows no output block:\n"
                                     f"{result.stdout}")
    else:
        assert output_matches(expected, result.stdout), (
            f"README.md:{line} printed\n{result.stdout}\nbut the README shows\n{expected}")


def _shell_text() -> str:
    """The ```bash blocks and the `inline code` of the README, where commands appear."""
    parts = [body for lang, body, _ in fenced_blocks(TEXT) if lang in ("bash", "sh")]
    parts += re.findall(r"`([^`\n]+)`", TEXT)
    return "\n".join(parts)


def make_commands() -> list[str]:
    return sorted(set(re.findall(r"(?:^|[\s(])make ([a-z][\w-]*)", _shell_text())))


def module_commands() -> list[tuple[str, list[str]]]:
    found = []
    for line in _shell_text().split("\n"):
        for match in re.finditer(r"python -m ((?:apps|bench)\.\w+)([^#`;)]*)", line):
            argv = [a for a in shlex.split(match.group(2)) if a != "..."]
            found.append((match.group(1), argv))
    return found


def test_readme_commands_were_found():
    assert {"demo", "test", "bench"} <= set(make_commands())
    modules = {m for m, _ in module_commands()}
    assert {"apps.train_mnist", "apps.train_cifar10", "apps.train_ptb",
            "apps.transformer_mnist", "bench.run", "bench.bench_fused",
            "bench.bench_conv"} <= modules


@pytest.mark.parametrize("target", make_commands())
def test_make_target_exists(target):
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
        targets = set(re.findall(r"^([\w-]+):", f.read(), flags=re.M))
    assert target in targets


@pytest.mark.parametrize("module, argv", module_commands(),
                         ids=[f"{m} {' '.join(a)}" for m, a in module_commands()])
def test_module_command_parses(module, argv):
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    program = importlib.import_module(module)
    program.parse_args(argv)  # argparse exits (SystemExit 2) on an unknown flag or bad value
