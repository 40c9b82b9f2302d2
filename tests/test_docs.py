"""The documents tell the truth (README.md and docs/*.md).

- Every command in a ```sh block runs: `bin/flask …` against a temporary instance (the first admin,
  the city's knowledge base, residents who accept notices), in the order the document shows them;
  `make TARGET` as `make -n TARGET`; servers, the dispatcher and benchmarks are checked against the
  options their program has (they run for minutes); `bin/flask backup create` writes under a
  temporary folder, the restores are run by tests/test_backup.py. A command this file has no check
  for fails, so a new kind of command needs one here.
- No document runs the venv's path or a bare `flask`: one way, `bin/flask` and `bin/python`.
- A command named in the text (`bin/flask …`, `bin/python …`) exists with the options shown.
- Every setting of bot/config.py, and every environment variable the devserver, gunicorn, the fake
  platform, the tests and the Makefile read, is in docs/operations.md with its default.
- Every pinned package is in docs/dependencies.md; every link leads to a file and heading that exist.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from flask import Flask

from bot.cli import upgrade_database
from bot.config import SETTINGS
from segments.vocab import interests_to_mask
from tests.conftest import SHARED
from tests.test_broadcast import add_residents

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DOC_FILES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
PASSWORD = "docs-test-password-1234"
CITY_AREAS = {"joso": ("水海道地区", "石下地区")}

FENCE = re.compile(r"^```([\w-]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
ENV_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]*=")
# A line that runs something (used to find commands outside ```sh blocks).
COMMAND = re.compile(
    r"^\s*(?:[A-Z][A-Z0-9_]*=\S*\s+)*(?:bin/(?:flask|python)\b|\.venv/|make\s|flask\s|python3?\s|gunicorn\s"
    r"|sqlite3\s|pg_dump\s|pg_restore\s|curl\s|git\s|cp\s|rm\s|mkdir\s)"
)
# The ways of running project code that bin/ replaces.
NOT_THE_ONE_WAY = re.compile(
    r"^(?:[A-Z][A-Z0-9_]*=\S*\s+)*(?:\.venv/bin/|flask\s|python3?\s+(?:bench/|-m\s+(?:bot|faq|handlers|broadcast|kpi|segments|gunicorn|flask|pytest)\b))"
)
# Commands that run until stopped, or need a browser and rewrite a file of the repo: their options
# are checked, they are not run.
# `line check` asks the city's real LINE channel (tests/test_line_check.py runs it against the fake).
NOT_RUN = (("broadcast", "run-scheduler"), ("line", "draw-richmenu-image"), ("line", "check"))
# Commands shown for a state these tests build elsewhere, and the test that runs them as shown.
CHECKED_ELSEWHERE = {
    re.compile(r"^bin/flask broadcast (?:show|release) 12\b"): (
        "tests/test_broadcast_floor.py", "test_the_guide_shows_the_commands_that_release_a_held_occurrence",
        "staff-guide-notices.md"),
    # A restore needs an empty database, and what it restores must be checked: run as shown there.
    re.compile(r"^DATABASE_URL=sqlite:///instance/restore-test\.sqlite3 bin/flask |^bin/flask backup restore "): (
        "tests/test_backup.py", "test_the_operations_guide_backup_commands_work", "operations.md"),
}
# Blocks that are scripts of shell tools: run by their own tests below.
SCRIPT_TOOLS = ("sqlite3", "pg_dump", "pg_restore", "rm", "cp", "mkdir")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@dataclass(frozen=True)
class Block:
    path: Path
    lang: str
    line: int  # line number of the block's first line in its file
    body: str

    def commands(self) -> list[tuple[int, str]]:
        """(line number, command) of a shell block: comments dropped, continued lines joined."""
        found: list[tuple[int, str]] = []
        pending, start = "", 0
        for n, raw in enumerate(self.body.splitlines()):
            text = raw.rstrip()
            if not pending:
                start = self.line + n
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            text = (pending + text).strip()
            pending = ""
            words = shlex.split(text, comments=True)
            if words:
                found.append((start, shlex.join(words)))
        return found

    def is_script(self) -> bool:
        return any(cmd.split()[0] in SCRIPT_TOOLS for _, cmd in self.commands())


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [Block(path, m.group(1), text.count("\n", 0, m.start(2)) + 1, m.group(2)) for m in FENCE.finditer(text)]


def sh_blocks(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.lang == "sh"]


def split_env(command: str) -> tuple[dict[str, str], list[str]]:
    words = shlex.split(command)
    env = {}
    while words and ENV_PREFIX.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words


def prose(path: Path) -> str:
    """The document without its fenced blocks."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


# --- the shape of the documents ------------------------------------------------------------------


def test_the_documents_show_commands() -> None:
    shown = {(rel(b.path), cmd) for p in DOC_FILES for b in sh_blocks(p) for _, cmd in b.commands()}
    assert ("README.md", "make run") in shown and ("README.md", "make test") in shown
    assert ("docs/faq-answers.md", "bin/flask faq import city-faq.csv") in shown
    assert ("docs/staff-guide-login.md", "bin/flask users reset-2fa admin") in shown
    assert ("docs/operations.md", "bin/flask backup create backup/linebot-20261204.backup") in shown


def test_every_command_is_in_a_sh_block() -> None:
    """Commands outside ```sh blocks would not be run by this file: mark their block ```sh."""
    hidden = [f"{rel(b.path)}:{b.line}: ```{b.lang} {line.strip()}" for p in DOC_FILES for b in blocks(p)
              if b.lang != "sh" for line in b.body.splitlines() if COMMAND.match(line)]
    assert not hidden, "\n".join(hidden)


def test_no_document_runs_the_venv_path_or_a_bare_flask() -> None:
    wrong = []
    for path in DOC_FILES:
        shown = [cmd for b in sh_blocks(path) for _, cmd in b.commands()] + CODE_SPAN.findall(prose(path))
        wrong += [f"{rel(path)}: {cmd}" for cmd in shown if NOT_THE_ONE_WAY.match(cmd.strip())]
        wrong += [f"{rel(path)}: {line.strip()}" for line in path.read_text(encoding="utf-8").splitlines()
                  if ".venv/bin/" in line]
    assert not wrong, "use bin/flask … or bin/python …:\n" + "\n".join(wrong)


# --- running what the documents show -------------------------------------------------------------


def _setting(name: str, value: str) -> Any:
    kind = SETTINGS[name][0]
    return value.strip().lower() in {"1", "true", "yes", "on"} if kind is bool else kind(value)


@dataclass
class World:
    """A temporary instance the documents' commands run against, in the order they are shown."""

    make_app: Callable[..., Flask]
    tmp: Path
    apps: dict[tuple[tuple[str, str], ...], Flask] = field(default_factory=dict)
    last_notice: int | None = None

    def app(self, env: dict[str, str]) -> Flask:
        key = tuple(sorted(env.items()))
        if key not in self.apps:
            unknown = sorted(set(env) - set(SETTINGS))
            assert not unknown, f"{unknown} are no settings of bot/config.py"
            first = not self.apps
            app = self.make_app(empty=first, **{k: _setting(k, v) for k, v in env.items()})
            self.apps[key] = app
            if first:
                self._fill(app)
        return self.apps[key]

    def _fill(self, app: Flask) -> None:
        """The first admin, the default city's knowledge base, and 28 residents who accept notices."""
        runner = app.test_cli_runner()
        for args in (["faq", "load"], ["users", "ensure-admin"]):
            result = runner.invoke(args=args)
            assert result.exit_code == 0, result.output
        areas = CITY_AREAS["joso"]
        add_residents(app, 14, age_band="30代", gender="女性", area=areas[0], interests_mask=interests_to_mask(["子育て"]))
        add_residents(app, 14, start=100, age_band="40代", gender="男性", area=areas[1],
                      interests_mask=interests_to_mask(["子育て", "防災"]))

    def flask(self, env: dict[str, str], args: list[str]) -> str:
        args = list(args)
        for i, arg in enumerate(args):
            if re.search(r"\.(csv|html|tsv|backup)$", arg) and not (ROOT / arg).exists():
                if args[:2] == ["faq", "import"]:
                    shutil.copy(SHARED / "samples" / "kosodate-faq.csv", self.tmp / arg)
                args[i] = str(self.tmp / arg)
        if args[:1] == ["broadcast"] and len(args) > 2 and args[2].isdigit():
            assert self.last_notice is not None, "a notice id before any `bin/flask broadcast create` in this document"
            args[2] = str(self.last_notice)
        app = self.app(env)
        with app.app_context():  # as the flask CLI runs every command (plain click groups such as `db` too)
            result = app.test_cli_runner().invoke(args=args, input=f"{PASSWORD}\n{PASSWORD}\n")
        assert result.exit_code == 0, result.output
        if args[:2] == ["broadcast", "create"]:
            self.last_notice = int(result.stdout.strip().splitlines()[-1])
        if args[:2] == ["faq", "ask"] and "--json" in args:
            out = json.loads(result.stdout.strip().splitlines()[-1])
            assert out["decision"] in ("answer", "clarify", "unknown") and 0.0 <= out["score"] <= 1.0
        return result.output


def _cli_command(app: Flask, args: list[str]) -> tuple[click.Command, list[str]]:
    """The click command `bin/flask ARGS` names, and the words after it."""
    command: click.Command = app.cli
    rest = list(args)
    while rest and isinstance(command, click.Group) and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


def _options(words: list[str]) -> list[str]:
    return [w.split("=")[0] for w in words if re.match(r"^--?[a-z]", w)]


def check_cli_options(app: Flask, args: list[str], shown: str) -> None:
    command, rest = _cli_command(app, args)
    assert command is not app.cli or not args or args[0].startswith("-"), f"{shown}: no such command"
    known = {opt for param in command.params for opt in getattr(param, "opts", []) + getattr(param, "secondary_opts", [])}
    known.add("--help")
    unknown = [o for o in _options(rest) if o not in known]
    assert not unknown, f"{shown}: {unknown} are not options of `{command.name}`"


def check_program_options(argv: list[str], options: list[str], shown: str) -> None:
    """`argv --help` succeeds and mentions every option shown."""
    result = subprocess.run([*argv, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{shown}\n{result.stderr}"
    missing = [o for o in options if o not in result.stdout]
    assert not missing, f"{shown}: {missing} are not options of {argv[-1]}"


def check_command(world: World, shown: str) -> None:
    """Run or check one command a document shows."""
    for pattern, (test_file, test_name, guide) in CHECKED_ELSEWHERE.items():
        if pattern.match(shown):
            source = (ROOT / test_file).read_text(encoding="utf-8")
            assert f"def {test_name}(" in source and guide in source and "bin/flask" in source, shown
            return
    env, words = split_env(shown)
    program, args = words[0], words[1:]
    if program == "bin/flask":
        app = world.app(env)
        if tuple(args[:2]) in NOT_RUN and "--once" not in args:
            check_cli_options(app, args, shown)
        else:
            world.flask(env, args)
    elif program == "make":
        result = subprocess.run(["make", "-n", *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, f"{shown}\n{result.stderr}"
    elif program == "bin/python" and args[:1] == ["-m"]:
        module = args[1]
        assert importlib.util.find_spec(module) is not None, f"{shown}: no module {module}"
        if module == "gunicorn":  # -c FILE MODULE:APP
            assert (ROOT / args[args.index("-c") + 1]).is_file(), shown
            assert (ROOT / (args[-1].split(":")[0] + ".py")).is_file(), shown
        check_program_options([sys.executable, "-m", module], _options(args[2:]), shown)
    elif program == "bin/python" and args and args[0].startswith("bench/"):
        assert (ROOT / args[0]).is_file(), f"{shown}: no script {args[0]}"
        check_program_options([sys.executable, str(ROOT / args[0])], _options(args[1:]), shown)
    elif program == "python3" and args[:1] == ["-c"]:
        result = subprocess.run([program, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{shown}\n{result.stderr}"
    else:
        pytest.fail(f"{shown}: tests/test_docs.py has no check for this command: add one")


@pytest.fixture
def world(make_app: Callable[..., Flask], fake_line: Any, tmp_path: Path) -> Iterator[World]:
    yield World(make_app, tmp_path)


@pytest.mark.parametrize("doc", [rel(p) for p in DOC_FILES if sh_blocks(p)])
def test_the_commands_a_document_shows_work(doc: str, world: World) -> None:
    """Top to bottom, as a reader would type them."""
    for block in sh_blocks(ROOT / doc):
        if block.is_script():
            assert doc == "docs/operations.md", f"{doc}:{block.line}: a shell script no test below runs"
            continue
        for line, command in block.commands():
            try:
                check_command(world, command)
            except AssertionError as exc:
                raise AssertionError(f"{doc}:{line}: {exc}") from None


def test_the_service_units_start_what_exists(app: Flask) -> None:
    """docs/operations.md's systemd units: each ExecStart is a bin/ command with options it has."""
    starts = [(b.line, line) for b in blocks(DOCS / "operations.md") if b.lang == "ini"
              for line in b.body.splitlines() if line.startswith("ExecStart=")]
    assert len(starts) == 2
    for line, start in starts:
        command = re.sub(r"^ExecStart=/\S*?/(bin/)", r"\1", start)
        assert command.startswith("bin/"), f"operations.md:{line}: {start}"
        env, words = split_env(command)
        if words[0] == "bin/flask":
            check_cli_options(app, words[1:], command)
        else:
            check_command(World(lambda **kw: app, Path()), command)


def test_the_commands_named_in_the_text_exist(app: Flask) -> None:
    """`bin/flask …` and `bin/python …` written in a sentence name a command and options it has."""
    wrong = []
    for path in DOC_FILES:
        for span in CODE_SPAN.findall(prose(path)):
            if not re.match(r"^(?:[A-Z][A-Z0-9_]*=\S*\s+)*bin/(?:flask|python) ", span):
                continue
            env, words = split_env(span.replace("[", " ").replace("]", " ").replace("|", " "))
            if words[1] == "…":  # the program only, as in `bin/flask …`
                continue
            try:
                if words[0] == "bin/flask":
                    check_cli_options(app, words[1:], span)
                elif words[1:2] == ["-m"]:
                    assert importlib.util.find_spec(words[2]) is not None, f"{span}: no module {words[2]}"
                else:
                    assert (ROOT / words[1]).is_file(), f"{span}: no script {words[1]}"
                    check_program_options([sys.executable, str(ROOT / words[1])], _options(words[2:]), span)
            except AssertionError as exc:
                wrong.append(f"{rel(path)}: {exc}")
    assert not wrong, "\n".join(wrong)


def test_bin_flask_and_bin_python_work_from_any_directory(tmp_path: Path) -> None:
    """The wrappers the documents use: the venv's flask with the app, and the venv's Python."""
    database = f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}"
    upgrade_database(database)
    env = {**os.environ, "APP_ENV": "testing", "DATABASE_URL": database}
    flask = subprocess.run([str(ROOT / "bin" / "flask"), "users", "list"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert flask.returncode == 0, flask.stderr
    assert "ユーザーはまだいません" in flask.stdout
    python = subprocess.run([str(ROOT / "bin" / "python"), "-c", "import bot, sys; print(bot.__file__, sys.prefix)"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert python.returncode == 0, python.stderr
    module, prefix = python.stdout.split()
    assert Path(module) == ROOT / "bot" / "__init__.py" and Path(prefix) == ROOT / ".venv"


# --- settings, environment variables, dependencies, links ----------------------------------------


def _documented(path: Path) -> dict[str, str]:
    """`NAME` -> the default column of the tables of a document whose rows start with `NAME`."""
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| ([^|]*) \|", path.read_text(encoding="utf-8"), flags=re.M)
    return {name: default.strip() for name, default in rows}


def _same_default(shown: str, default: Any, kind: type) -> bool:
    if default is None:
        return shown == "—"
    match = re.fullmatch(r"`([^`]*)`", shown)
    if match is None:
        return False
    if kind in (int, float):
        return float(match.group(1)) == float(default)
    return match.group(1) == str(default)


def test_every_setting_is_in_the_operations_guide_with_its_default() -> None:
    documented = _documented(DOCS / "operations.md")
    missing = [name for name in SETTINGS if name not in documented]
    assert not missing, f"settings of bot/config.py missing in docs/operations.md: {missing}"
    wrong = [f"{name}: doc {documented[name]}, bot/config.py {default!r}" for name, (kind, default, _) in SETTINGS.items()
             if not _same_default(documented[name], default, kind)]
    assert not wrong, "\n".join(wrong)


def _environment_variables() -> dict[str, str | None]:
    """Variables the devserver, gunicorn, the fake platform, the tests and the Makefile read, with their
    default where it is a literal."""
    found: dict[str, str | None] = {}
    for source in ("bot/devserver.py", "gunicorn.conf.py", "bot/sandbox/fake_line.py", "tests/conftest.py"):
        text = (ROOT / source).read_text(encoding="utf-8")
        for name, default in re.findall(r'os\.environ\.get\("([A-Z][A-Z0-9_]*)"(?:,\s*"([^"]*)")?', text):
            found.setdefault(name, default or None)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]*)\s*:?=", makefile, flags=re.M))
    for name, default in re.findall(r"^([A-Z][A-Z0-9_]*)\s*\?=\s*(\S+)", makefile, flags=re.M):
        found[name] = default
    for name in re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", makefile):
        if name not in assigned:
            found.setdefault(name, None)
    return found


def test_every_environment_variable_and_port_is_in_the_operations_guide() -> None:
    documented = _documented(DOCS / "operations.md")
    variables = _environment_variables()
    assert {"PORT", "FAKE_LINE_PORT", "HOST", "GUNICORN_BIND", "TEST_DATABASE_URL", "PYTEST_ARGS"} <= set(variables)
    missing = [name for name in variables if name not in documented]
    assert not missing, f"environment variables missing in docs/operations.md: {missing}"
    wrong = [f"{name}: doc {documented[name]}, source {default!r}" for name, default in variables.items()
             if default is not None and name not in SETTINGS and documented[name] != f"`{default}`"]
    assert not wrong, "\n".join(wrong)


def test_every_pinned_package_says_why_in_dependencies_md() -> None:
    text = (DOCS / "dependencies.md").read_text(encoding="utf-8")
    named = {word.lower() for cell in re.findall(r"^\| ([^|]+) \|", text, flags=re.M)
             for word in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", cell)}
    pinned = [re.split(r"[\[=<>~ ]", line, maxsplit=1)[0].lower()
              for name in ("requirements.txt", "requirements-dev.txt")
              for line in (ROOT / name).read_text(encoding="utf-8").splitlines()
              if line.strip() and not line.startswith(("#", "-"))]
    assert pinned and not [p for p in pinned if p not in named], [p for p in pinned if p not in named]


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation and symbols dropped, spaces to hyphens."""
    kept = "".join(c for c in heading.strip().lower()
                   if c in "-_ " or not unicodedata.category(c).startswith(("P", "S")))
    return kept.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_every_link_leads_to_a_file_and_heading_that_exist() -> None:
    broken = []
    for path in DOC_FILES:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(path)):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            if not linked.exists():
                broken.append(f"{rel(path)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{rel(path)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
