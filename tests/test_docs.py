"""The commands the staff guides in docs/ show work as shown."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.conftest import SHARED

DOCS = Path(__file__).resolve().parent.parent / "docs"
FLASK = ".venv/bin/flask --app wsgi "


def doc_commands() -> list[tuple[str, str]]:
    """(guide, command) for every `.venv/bin/flask --app wsgi …` line in a ```sh block of docs/*.md."""
    found = []
    for path in sorted(DOCS.glob("*.md")):
        for block in re.findall(r"```sh\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S):
            for line in block.splitlines():
                line = line.split("  #")[0].strip()
                if line.startswith(FLASK):
                    found.append((path.name, line[len(FLASK):]))
    return found


def test_the_guides_show_commands() -> None:
    assert ("faq-answers.md", "faq import city-faq.csv") in doc_commands()
    assert ("staff-guide-login.md", "users reset-2fa admin") in doc_commands()


@pytest.mark.parametrize(("guide", "command"), doc_commands())
def test_a_guide_command_runs(app, runner, tmp_path: Path, guide: str, command: str) -> None:
    """Each command runs against a loaded knowledge base and the first admin (user `admin`);
    a CSV it names is the real 子育て sample."""
    runner.invoke(args=["faq", "load"])
    runner.invoke(args=["users", "ensure-admin"])
    args = shlex.split(command)
    for i, arg in enumerate(args):
        if arg.endswith(".csv"):
            shutil.copy(SHARED / "samples" / "kosodate-faq.csv", tmp_path / arg)
            args[i] = str(tmp_path / arg)
    result = runner.invoke(args=args)
    assert result.exit_code == 0, f"{guide}: {command}\n{result.output}"
    if "--json" in args:
        out = json.loads(result.output.strip().splitlines()[-1])
        assert out["decision"] in ("answer", "clarify", "unknown") and 0.0 <= out["score"] <= 1.0


def bench_commands() -> list[str]:
    """Every `.venv/bin/python bench/…` line in a fenced block of docs/benchmarks.md."""
    text = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    return [line.strip() for block in re.findall(r"```\w*\n(.*?)```", text, flags=re.S)
            for line in block.splitlines() if line.strip().startswith(".venv/bin/python bench/")]


@pytest.mark.parametrize("command", bench_commands())
def test_a_benchmark_command_in_the_docs_names_a_script_and_options_it_has(command: str) -> None:
    """The benchmarks run for minutes, so not here; but each command shown must parse: the script
    exists and every option the doc passes is one it accepts."""
    import subprocess
    import sys

    root = DOCS.parent
    args = shlex.split(command)[1:]
    script = root / args[0]
    assert script.is_file(), command
    options = [a.split("=")[0] for a in args[1:] if a.startswith("--")]
    result = subprocess.run([sys.executable, str(script), "--help"], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for option in options:
        assert option in result.stdout, f"{command}: {option} is not an option of {args[0]}"
