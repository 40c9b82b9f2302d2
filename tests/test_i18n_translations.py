"""Translation files of the knowledge base: what `faq load` accepts, refuses and writes.

faq/kb/FORMAT.md 「Translations」 describes the files; faq.translations reads them.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.db import get_db
from faq.kb import KB_DIR, MUNICIPALITIES, KBError, load_kb
from faq.models import FaqEntry, FaqTranslation
from faq.store import load_repo_kb
from faq.translations import load_translations, upsert_translations

ALTERNATES = """\
    alternates:
      - convenience store certificate
      - certificate at 7-Eleven
      - get resident record at konbini
      - konbini certificate
      - print certificate at a store
"""


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    """A copy of the shipped knowledge base without translations, to add files to."""
    target = tmp_path / "kb"
    shutil.copytree(KB_DIR, target)
    shutil.rmtree(target / "translations", ignore_errors=True)
    for code in MUNICIPALITIES:
        shutil.rmtree(target / "cities" / code / "translations", ignore_errors=True)
    return target


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _item(entry_id: str = "moving", answer: str = "Please come to the {section_citizen}.", **extra: str) -> str:
    fields = {"follows": "2026-11-21", "title": "Moving in or out", "question": "What do I do when I move?", **extra}
    head = f"- id: {entry_id}\n" + "".join(f"  {k}: {v}\n" for k, v in fields.items())
    return head + f"  answer: |\n    {answer}\n" + textwrap.indent(textwrap.dedent(ALTERNATES), "  ")


def _load(kb: Path, code: str = "ohtawara"):
    return load_translations(code, load_kb(code, kb), kb)


def test_a_base_translation_loads_with_its_placeholders_filled(kb: Path) -> None:
    # ohtawara keeps the base Japanese answer of `moving`: the base translation answers there.
    assert "moving" not in {i for i in _overlay_answer_ids(kb, "ohtawara")}
    _write(kb / "translations" / "en.yaml", _item())
    (t,) = _load(kb)
    assert (t.entry_id, t.language, t.title) == ("moving", "en", "Moving in or out")
    assert "{" not in t.answer and t.answer.startswith("Please come to the ")
    assert len(t.alternates) == 5 and str(t.follows) == "2026-11-21"


def _overlay_answer_ids(kb: Path, code: str) -> set[str]:
    import yaml

    ids: set[str] = set()
    for path in (kb / "cities" / code).glob("part*.yaml"):
        ids |= {i["id"] for i in yaml.safe_load(path.read_text(encoding="utf-8")) or [] if "answer" in i}
    return ids


def test_a_city_that_replaced_the_answer_needs_its_own_translation(kb: Path) -> None:
    assert "konbini-certificates" in _overlay_answer_ids(kb, "joso")
    _write(kb / "translations" / "pt.yaml",
           _item("konbini-certificates", answer="Base answer {city_name}.", title="Certidões na konbini"))
    (t,) = _load(kb, "joso")
    assert t.answer == "" and t.title == "Certidões na konbini"  # matches, does not answer
    _write(kb / "cities" / "joso" / "translations" / "pt.yaml",
           _item("konbini-certificates", answer="Resposta de Joso.", title="Certidões (Joso)",
                 alternates="[certidão joso]").replace("    alternates: [certidão joso]\n", ""))
    (t,) = _load(kb, "joso")
    assert t.answer == "Resposta de Joso." and t.title == "Certidões (Joso)"


@pytest.mark.parametrize(("write", "message"), [
    (lambda kb: _write(kb / "translations" / "en.yaml", _item("no-such-entry")), "unknown entry id"),
    (lambda kb: _write(kb / "translations" / "en.yaml", _item().replace("  follows: 2026-11-21\n", "")),
     "missing fields: follows"),
    (lambda kb: _write(kb / "translations" / "xx.yaml", _item()), "unknown language 'xx'"),
    (lambda kb: _write(kb / "translations" / "ja.yaml", _item()), "unknown language 'ja'"),
    (lambda kb: _write(kb / "translations" / "en.yaml", _item(answer="Call {no_such_var}.")),
     "placeholder {no_such_var} is not defined in city.yaml"),
    (lambda kb: _write(kb / "translations" / "en.yaml", _item(answer="Ask the {section_tax}.")),
     "placeholder {section_tax} is not in the Japanese answer"),
    (lambda kb: _write(kb / "translations" / "ja-easy.yaml", _item(title="ひっこし の ときに する こと と まどぐち")),
     "max 20 for ja-easy"),
    (lambda kb: _write(kb / "translations" / "en.yaml", _item(follows="last week")), "follows must be a date"),
    (lambda kb: _write(kb / "translations" / "en.yaml", _item(titel="x")), "unknown fields: titel"),
])
def test_bad_files_are_refused_naming_file_and_item(kb: Path, write, message: str) -> None:
    path = write(kb)
    with pytest.raises(KBError) as err:
        _load(kb)
    assert message in str(err.value) and str(path) in str(err.value)


def test_too_few_alternates_are_refused(kb: Path) -> None:
    _write(kb / "translations" / "vi.yaml", _item().rsplit("    - print", 1)[0])
    with pytest.raises(KBError, match="entry 'moving': 4 distinct alternates"):
        _load(kb)


def test_another_citys_own_entry_is_skipped_not_refused(kb: Path) -> None:
    _write(kb / "translations" / "en.yaml", _item("michinoeki-joso", answer="Michi-no-eki."))
    assert _load(kb, "ohtawara") == []
    assert [t.entry_id for t in _load(kb, "joso")] == ["michinoeki-joso"]


def test_shipped_translations_load_for_every_city() -> None:
    for code in MUNICIPALITIES:
        translations = load_translations(code, load_kb(code))
        for t in translations:
            assert t.title and t.alternates and (t.answer == "" or "{" not in t.answer), (code, t.entry_id)


def test_faq_load_writes_rows_and_keeps_staff_edits(app, kb: Path) -> None:
    _write(kb / "translations" / "en.yaml", _item())
    code = app.config["MUNICIPALITY"]
    with get_db(app).session() as session:
        load_repo_kb(session, code)
        for shipped in session.scalars(select(FaqTranslation)):  # start from none: only the file below
            session.delete(shipped)
        session.flush()
        report = upsert_translations(session, code, load_translations(code, load_kb(code, kb), kb))
        assert report.added == 1
        row = session.scalars(select(FaqTranslation).join(FaqEntry, FaqEntry.id == FaqTranslation.entry_id)
                              .where(FaqEntry.entry_id == "moving", FaqEntry.municipality == code)).one()
        row.title, row.is_staff_edited = "Edited by staff", True
    with get_db(app).session() as session:
        report = upsert_translations(session, code, load_translations(code, load_kb(code, kb), kb))
        assert report.kept_staff_edits == 1
        assert session.scalars(select(FaqTranslation.title)).all() == ["Edited by staff"]
        # A non-edited row the files no longer ship goes.
        session.scalars(select(FaqTranslation)).one().is_staff_edited = False
    with get_db(app).session() as session:
        report = upsert_translations(session, code, [])
        assert report.removed == 1 and session.scalars(select(FaqTranslation)).all() == []


def test_flask_faq_load_names_the_bad_file(app, monkeypatch: pytest.MonkeyPatch, kb: Path) -> None:
    from faq import translations

    bad = _write(kb / "translations" / "en.yaml", _item("no-such-entry"))
    real = translations.load_translations
    monkeypatch.setattr("faq.store.load_translations", lambda code, entries: real(code, entries, kb))
    result = app.test_cli_runner().invoke(args=["faq", "load"])
    assert result.exit_code != 0
    assert "知識ベースのファイルに誤りがあります" in result.output and str(bad) in result.output
    assert "no-such-entry" in result.output
