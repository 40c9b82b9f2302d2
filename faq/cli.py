"""`flask faq ...`: load, import, export, ask and evaluate the knowledge base."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from bot.db import get_db
from faq import service
from faq.evaluation import evaluate, parse_eval_tsv
from faq.kb import KBError
from faq.store import ImportError_, export_csv, import_csv, load_repo_kb, read_text

faq_cli = AppGroup("faq", help="FAQ knowledge base (MUNICIPALITY chooses the city).")


def _municipality() -> str:
    return str(current_app.config["MUNICIPALITY"])


@faq_cli.command("load")
def load() -> None:
    """Load the knowledge base shipped in faq/kb for MUNICIPALITY (idempotent)."""
    try:
        with get_db().session() as session:
            report = load_repo_kb(session, _municipality())
    except KBError as exc:
        raise click.ClickException(f"知識ベースのファイルに誤りがあります: {exc}") from None
    click.echo(f"{_municipality()}: 知識ベースを読み込みました（{report.summary()}）")


@faq_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_(file: Path) -> None:
    """Import FILE (the project's CSV, or the 子育てオープンデータ協議会 columns); all or nothing."""
    try:
        with get_db().session() as session:
            report = import_csv(session, _municipality(), read_text(file))
    except ImportError_ as exc:
        for line, message in exc.errors:
            click.echo(f"{file}:{line}: {message}", err=True)
        raise click.ClickException(f"取り込みを中止しました（{len(exc.errors)} 件の誤り）。データは変更していません。") from None
    click.echo(f"{file}: 取り込みました（{report.summary()}）")


@faq_cli.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--format", "kind", type=click.Choice(["project", "kosodate"]), default="project", show_default=True)
def export(file: Path, kind: str) -> None:
    """Write the city's entries to FILE as CSV."""
    with get_db().session() as session:
        file.write_text(export_csv(session, _municipality(), kind), encoding="utf-8")
    click.echo(f"{file}: 書き出しました")


def _decide(question: str) -> dict[str, object]:
    with get_db().session() as session:
        if service._smalltalk(question) is not None:
            return {"question": question, "decision": "unknown", "topic": None, "score": 0.0, "candidates": []}
        d = service.decide(session, _municipality(), question, service.thresholds_from(current_app.config))
    return {
        "question": question,
        "decision": d.kind,
        "topic": d.entry_id if d.kind == "answer" else (d.candidates[0].entry_id if d.candidates else None),
        "score": round(float(d.score), 4),
        "candidates": [{"topic": c.entry_id, "score": round(float(c.score), 4)} for c in d.candidates],
    }


@faq_cli.command("ask")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.argument("question", required=False)
def ask(as_json: bool, question: str | None) -> None:
    """Ask QUESTION (or one question per line on stdin) and print the decision."""
    questions = [question] if question is not None else (line.rstrip("\n") for line in sys.stdin)
    for q in questions:
        if not q.strip():
            continue
        result = _decide(q)
        if as_json:
            click.echo(json.dumps(result, ensure_ascii=False))
        else:
            cands = ", ".join(f"{c['topic']} {c['score']:.2f}" for c in result["candidates"])  # type: ignore[union-attr]
            click.echo(f"{q}\t{result['decision']}\t{result['topic'] or '-'}\t{result['score']:.2f}\t[{cands}]")


@faq_cli.command("eval")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--misses", is_flag=True, help="also list the in-scope questions whose top-1 was wrong")
def eval_(file: Path, misses: bool) -> None:
    """Evaluate on FILE.tsv (columns question, expected; expected may be a|b, or - for off-topic)."""
    try:
        cases = parse_eval_tsv(file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    thresholds = service.thresholds_from(current_app.config)
    with get_db().session() as session:
        result = evaluate(cases, lambda q: service.decide(session, _municipality(), q, thresholds))
    click.echo(f"municipality: {_municipality()}")
    for line in result.lines():
        click.echo(line)
    if misses:
        for question, expected, got in result.misses:
            click.echo(f"miss\t{question}\texpected={expected}\tgot={got}")
