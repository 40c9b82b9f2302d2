"""A large knowledge base's matcher index is built once per host by a low-priority process and
loaded by the workers, and matches exactly as an index built in the worker does."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path

import pytest

from bot.db import get_db
from faq import index_builder, service
from faq.kb import KBEntry
from faq.matcher import MatcherIndex
from faq.store import load_repo_kb
from tests.conftest import Chat

RESIDENT = "U" + "7" * 32

# Generated test data: made-up districts and procedures, not a city's real entries.
PLACES = ("北町", "南町", "東町", "西町", "中町")
THINGS = ("住民票", "印鑑登録", "児童手当", "粗大ごみ", "国民健康保険", "転出届")
ASPECTS = ("必要書類", "受付時間", "手数料", "窓口")


def generated_entries() -> list[KBEntry]:
    return [
        KBEntry(id=f"gen-{i}", category="counters", title=f"{p}の{t}"[:20], question=f"{p}で{t}の{a}を知りたい",
                alternates=(f"{p} {t} {a}",), keywords=(), answer=f"{p}支所の{t}の{a}のご案内（生成データ）",
                source="generated", municipality="test", reviewed_at=dt.date(2026, 12, 4))
        for i, (p, t, a) in enumerate((p, t, a) for p in PLACES for t in THINGS for a in ASPECTS)
    ]


QUESTIONS = ("南町で児童手当の手数料は？", "東町 粗大ごみ 窓口", "印鑑登録の受付時間を北町で", "天気いいね")


def test_the_builder_process_gives_the_same_decisions_as_a_build_in_the_worker(tmp_path: Path) -> None:
    entries = generated_entries()
    here = MatcherIndex.build(entries, cache_dir=tmp_path / "vectors")
    shared = index_builder.build_shared("k1", entries, index_dir=tmp_path / "indexes", cache_dir=tmp_path / "vectors")
    assert [p.name for p in (tmp_path / "indexes").glob("*.pickle")], "the index was saved for the host's other workers"
    for question in QUESTIONS:
        a, b = here.match(question), shared.match(question)
        assert (a.kind, a.entry_id, [c.entry_id for c in a.candidates]) == (b.kind, b.entry_id, [c.entry_id for c in b.candidates])
    assert shared.embedder is not None or here.embedder is None, "the loaded index uses this process's model"


def test_workers_of_one_host_share_one_build(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    entries = generated_entries()
    caplog.set_level(logging.INFO, logger="faq.index_builder")
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(index_builder.build_shared("k2", entries, index_dir=tmp_path)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 3
    built = [r for r in caplog.records if "built by a builder process" in r.getMessage()]
    loaded = [r for r in caplog.records if "loaded from the host's builder" in r.getMessage()]
    assert (len(built), len(loaded)) == (1, 3)


def test_a_builder_that_cannot_run_falls_back_to_building_here(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    entries = generated_entries()
    places = (p for p in PLACES)  # a generator cannot be handed to another process: the job cannot be written
    index = index_builder.build_shared("k3", entries, index_dir=tmp_path, place_names_known=places)
    assert "building in this process" in caplog.text
    assert not list(tmp_path.glob("*.pickle"))
    assert index.match("南町で児童手当の手数料は？").kind in ("answer", "clarify")


def test_saved_indexes_are_pruned_to_the_newest(tmp_path: Path) -> None:
    entries = generated_entries()[:20]
    for n in range(index_builder.KEEP_FILES + 3):
        index_builder.build_shared(f"prune-{n}", entries, index_dir=tmp_path, use_embeddings=False)
    assert len(list(tmp_path.glob("*.pickle"))) == index_builder.KEEP_FILES


def test_a_resident_is_answered_from_an_index_the_builder_made(make_app, fake_line, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(service, "SHARED_BUILD_ENTRIES", 10)  # the shipped base is small: use the builder anyway
    monkeypatch.setattr(index_builder, "INDEX_CACHE_DIR", tmp_path)
    monkeypatch.setattr(service, "_BY_CONTENT", {})  # not the index an earlier test built in this process
    app = make_app(MUNICIPALITY="joso")
    with get_db(app).session() as s:
        load_repo_kb(s, "joso")
    resident = Chat(app.test_client(), fake_line, RESIDENT)
    answer, _ask = resident.says("戸籍謄本をコンビニで取りたいのですが", expect=2)
    assert "コンビニ" in answer["text"]
    assert list(tmp_path.glob("*.pickle")), "the index came from the builder process"
