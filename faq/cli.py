"""`flask faq ...`: load, import, export, ask and evaluate the knowledge base; review unanswered questions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.admin import jst
from bot.auth import CLI_ACTOR
from bot.db import get_db
from faq import importer, multilingual, review, service
from faq.evaluation import evaluate, parse_eval_tsv
from faq.kb import KBError
from faq.models import FaqEntry
from faq.retention import purge_log_command
from faq.store import ImportError_, LoadReport, export_csv, load_repo_kb

faq_cli = AppGroup("faq", help="FAQ knowledge base (MUNICIPALITY chooses the city).")


def _municipality() -> str:
    return str(current_app.config["MUNICIPALITY"])


@faq_cli.command("load")
def load() -> None:
    """Load the knowledge base shipped in faq/kb for MUNICIPALITY (idempotent)."""
    with get_db().session() as session:
        report = _load_repo(session)
    click.echo(f"{_municipality()}: 知識ベースを読み込みました（{report.summary()}）")
    with get_db().session() as session:
        # Embeds the translations' phrasings into the on-disk cache now (about a minute the first
        # time), so that the service's first foreign question does not wait for it.
        index = multilingual.TRANSLATION_INDEXES.get(session, _municipality())
    if index is not None:
        outside = sum(1 for i in index.ids if multilingual.is_out_of_scope(i))
        click.echo(f"{_municipality()}: 外国語の質問の索引を準備しました（項目 {len(index.ids) - outside} 件、"
                   f"市で扱わない事柄 {outside} 件）")


def _load_repo(session: Session) -> LoadReport:
    """load_repo_kb for MUNICIPALITY; a broken knowledge-base file is a CLI error (nothing written)."""
    try:
        return load_repo_kb(session, _municipality())
    except KBError as exc:
        raise click.ClickException(f"知識ベースのファイルに誤りがあります: {exc}") from None


def _progress() -> importer.Progress:
    """Prints how far a large import is, every tenth of it (stderr)."""
    shown: dict[str, int] = {}

    def show(phase: str, done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if total >= 10_000 and tenth > shown.get(phase, 0):
            shown[phase] = tenth
            click.echo(f"{'書き込み' if phase == 'stage' else '反映'} {done:,} / {total:,} 行", err=True)
    return show


@faq_cli.command("import")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--resume", is_flag=True, help="only finish an import that was interrupted (no FILE)")
def import_(file: Path | None, resume: bool) -> None:
    """Import FILE (the project's CSV, or the 子育てオープンデータ協議会 columns); all or nothing.

    The whole file is checked first (errors by line, nothing written); then it is written in short
    transactions, so residents keep being answered (faq.importer). An import interrupted by a
    crash is finished by the next one, or by --resume.
    """
    limits = importer.ImportLimits.from_config(current_app.config)
    if resume or file is None:
        if file is not None:
            raise click.UsageError("--resume takes no FILE")
        if not resume:
            raise click.UsageError("FILE is missing")
        try:
            done = importer.recover(get_db(), _municipality(), limits, _progress())
        except ImportError_ as exc:
            raise click.ClickException(exc.errors[0][1]) from None
        for result in done:
            click.echo(f"{result.filename}: 途中で止まっていた取り込みを最後まで反映しました（{result.summary()}）")
        if not done:
            click.echo("途中で止まっている取り込みはありません。")
        return
    try:
        result = importer.run_import(get_db(), importer.CsvSource(path=file), _municipality(), limits,
                                     filename=file.name, username=CLI_ACTOR, on_progress=_progress())
    except ImportError_ as exc:
        for line, message in exc.errors:
            click.echo(f"{file}:{line}: {message}", err=True)
        raise click.ClickException(f"取り込みを中止しました（{len(exc.errors)} 件の誤り）。データは変更していません。") from None
    click.echo(f"{file}: 取り込みました（{result.summary()}）")


@faq_cli.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--format", "kind", type=click.Choice(["project", "kosodate"]), default="project", show_default=True)
def export(file: Path, kind: str) -> None:
    """Write the city's entries to FILE as CSV."""
    with get_db().session() as session:
        file.write_text(export_csv(session, _municipality(), kind), encoding="utf-8")
    click.echo(f"{file}: 書き出しました")


def _ensure_knowledge_base() -> None:
    """Load the repo's knowledge base for MUNICIPALITY when the database has no entry of the city yet.

    So `MUNICIPALITY=joso flask faq ask ...` answers on a database set up for another city; a city
    that imported its own FAQ (or whose staff edited entries) has entries and is left alone.
    """
    municipality = _municipality()
    with get_db().session() as session:
        if session.scalar(select(func.count()).select_from(FaqEntry).where(FaqEntry.municipality == municipality)):
            return
        report = _load_repo(session)
    click.echo(f"{municipality}: データベースにこの市の知識ベースがなかったため、リポジトリの知識ベースを読み込みました"
               f"（{report.summary()}）", err=True)


def _decide(question: str) -> dict[str, object]:
    with get_db().session() as session:
        if service._smalltalk(question) is not None:
            return {"question": question, "decision": "unknown", "topic": None, "score": 0.0, "candidates": []}
        d = service.decide(session, _municipality(), question, current_app.config)
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
    _ensure_knowledge_base()
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
    _ensure_knowledge_base()
    with get_db().session() as session:
        result = evaluate(cases, lambda q: service.decide(session, _municipality(), q, current_app.config))
    click.echo(f"municipality: {_municipality()}")
    for line in result.lines():
        click.echo(line)
    if misses:
        for question, expected, got in result.misses:
            click.echo(f"miss\t{question}\texpected={expected}\tgot={got}")


@faq_cli.command("review")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000), help="how many clusters to list")
@click.option("--days", default=review.DEFAULT_DAYS, show_default=True, type=click.IntRange(1, 3650),
              help="questions of the last DAYS days")
@click.option("--sort", type=click.Choice(["size", "recent"]), default="size", show_default=True,
              help="biggest or newest clusters first")
@click.option("--examples", default=3, show_default=True, type=click.IntRange(0, 50), help="phrasings shown per cluster")
@click.option("--suggest/--no-suggest", default=True, show_default=True, help="also rank the likely entries")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per cluster and line")
def review_(limit: int, days: int, sort: str, examples: int, suggest: bool, as_json: bool) -> None:
    """List the top clusters of unanswered questions (not known, 「役に立たなかった」, 「どれでもない」)."""
    municipality = _municipality()
    with get_db().session() as session:
        queue = review.review_queue(session, municipality, days=days, sort=sort)
        clusters = queue.clusters[:limit]
        suggestions = {c.key: review.suggest_entries(session, municipality, c, limit=3) if suggest else [] for c in clusters}
    if not as_json:
        click.echo(f"{municipality}: 未対応の質問 {queue.questions} 件 → {len(queue.clusters)} のまとまり（過去{days}日、"
                   f"{'新しい順' if sort == 'recent' else '件数の多い順'}）")
    for rank, cluster in enumerate(clusters, 1):
        reasons = {k: cluster.reasons[k] for k in review.REASON_LABELS if cluster.reasons[k]}
        if as_json:
            click.echo(json.dumps({
                "key": cluster.key, "count": cluster.count, "representative": cluster.representative.text,
                "first_seen": cluster.first_seen.isoformat(), "last_seen": cluster.last_seen.isoformat(),
                "reasons": reasons,
                "examples": [{"text": p.text, "count": p.count} for p in cluster.examples(max(examples, 1))],
                "suggestions": [{"entry_id": s.entry_id, "title": s.title, "score": s.score} for s in suggestions[cluster.key]],
            }, ensure_ascii=False))
            continue
        why = "、".join(f"{review.REASON_LABELS[k]} {n}" for k, n in reasons.items())
        click.echo(f"{rank}. {cluster.count}件「{cluster.representative.text}」"
                   f"  最初 {jst(cluster.first_seen)} / 最新 {jst(cluster.last_seen)}  [{why}]  key={cluster.key}")
        others = [p for p in cluster.examples(examples + 1) if p.norm != cluster.representative.norm]
        for p in others[:examples]:
            click.echo(f"     - {p.text}" + (f" (×{p.count})" if p.count > 1 else ""))
        if suggestions[cluster.key]:
            click.echo("     候補: " + "、".join(f"{s.title}（{s.entry_id} {s.score:.2f}）" for s in suggestions[cluster.key]))
    if not clusters and not as_json:
        click.echo("未対応の質問はありません。")


faq_cli.add_command(purge_log_command)
