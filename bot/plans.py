"""The cities' plans that answers and KPI figures cite, shown to staff in words instead of codes.

The knowledge base (faq/kb) and the KPI settings (kpi/cities.yaml) cite the plans as developers
wrote them: ``seed 000:190,494; general national fact (…)`` or
``seeds/000_350d113b5dec9d1f.txt:657-658``. Staff see 「那須烏山市 DX推進計画 190行、494行」 with
the quoted line of the plan on hover, and 「全国共通の制度・事実（…）」.

The quoted lines are shipped in plan_quotes.json (the plans themselves are not part of the app);
``python -m bot.plans ../shared/seeds`` writes it again from the plans for every line the
knowledge base and the KPI settings cite.
"""

from __future__ import annotations

import html
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from markupsafe import Markup, escape

ROOT = Path(__file__).resolve().parent.parent
QUOTES_FILE = Path(__file__).with_name("plan_quotes.json")
QUOTE_MAX = 200  # characters of a cited passage shown on hover


@dataclass(frozen=True)
class Plan:
    """One city plan: its number in the citations, its city and its name."""

    number: str
    file_stem: str
    city: str
    name: str

    @property
    def title(self) -> str:
        """「那須烏山市 DX推進計画」."""
        return f"{self.city} {self.name}"


# Names as the plans' own first lines give them (shared/seeds/<stem>.txt).
PLANS = {
    plan.number: plan
    for plan in (
        Plan("000", "000_350d113b5dec9d1f", "那須烏山市", "DX推進計画"),
        Plan("001", "001_6773aaf7f32f11f9", "那須塩原市", "DX推進戦略"),
        Plan("002", "002_b484c8d2e6ce10ed", "那須塩原市", "DX推進戦略アクションプラン"),
        Plan("003", "003_a731c75a26a36694", "常総市", "DX推進計画"),
        Plan("004", "004_a20826734360fe2b", "大田原市", "第4次地域ICT総合推進計画"),
    )
}

NATIONAL_FACT = "全国共通の制度・事実"
GENERAL = "一般的な情報"
# English notes of the citations, in Japanese.
NOTE_WORDS = {
    "no mention": "記載なし",
    "this service's settings": "このサービスの設定",
    "this service's functions": "このサービスの機能",
}

_LINES = r"\d+(?:\s*-\s*\d+)?(?:\s*,\s*\d+(?:\s*-\s*\d+)?)*"
_SEED_RE = re.compile(rf"^(?:seed\s+)?(\d{{3}}):\s*({_LINES})\s*(?:\((.*)\))?$")
_SEED_FILE_RE = re.compile(rf"^(?:\.\./shared/)?seeds/(\d{{3}})_[0-9a-f]+\.txt:\s*({_LINES})$")
_NATIONAL_RE = re.compile(r"^general national fact\s*(?:\((.*)\))?$")
_GENERAL_RE = re.compile(r"^general\s*(?:\((.*)\))?$")
# A citation anywhere in a text (the KPI settings' notes put them in brackets).
_CITATION_IN_TEXT_RE = re.compile(rf"(?:\.\./shared/)?seeds/(\d{{3}})_[0-9a-f]+\.txt:({_LINES})")
_TAG_RE = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class LineRef:
    """Lines `start`..`end` of a plan."""

    plan: str
    start: int
    end: int

    @property
    def label(self) -> str:
        """「190行」 or 「657〜658行」."""
        return f"{self.start}行" if self.start == self.end else f"{self.start}〜{self.end}行"

    def lines(self) -> range:
        return range(self.start, self.end + 1)


@dataclass(frozen=True)
class SourcePart:
    """One cited source: a plan with its lines, or words (a national fact, a note as written)."""

    text: str
    refs: tuple[LineRef, ...] = ()
    note: str = ""


def _line_refs(plan: str, spec: str) -> tuple[LineRef, ...]:
    refs = []
    for piece in spec.split(","):
        first, _, last = piece.strip().partition("-")
        start = int(first)
        end = int(last) if last.strip() else start
        refs.append(LineRef(plan, min(start, end), max(start, end)))
    return tuple(refs)


def _note(text: str | None) -> str:
    if not text:
        return ""
    text = text.strip()
    for english, japanese in NOTE_WORDS.items():
        if text == english:
            return japanese
        if text.startswith(english):
            return japanese + text[len(english):]
    return text


def parse_source(text: str) -> list[SourcePart]:
    """The citations of an answer or a KPI figure, one part per plan or fact, in their order.

    ``seed 000:190; 001:177`` (the number may be left out after the first) and
    ``seeds/000_….txt:657-658`` name a plan and lines; ``general national fact (…)`` and
    ``general (…)`` become Japanese; anything else (a city's own wording) is kept as written.
    """
    parts: list[SourcePart] = []
    for raw in re.split(r"[;；]", text or ""):
        piece = " ".join(raw.split())
        if not piece:
            continue
        match = _SEED_RE.match(piece) or _SEED_FILE_RE.match(piece)
        if match and match.group(1) in PLANS:
            number = match.group(1)
            note = _note(match.group(3)) if match.re is _SEED_RE else ""
            refs = _line_refs(number, match.group(2))
            if parts and parts[-1].refs and parts[-1].refs[0].plan == number and not parts[-1].note:
                # 「seed 003:407; seed 003:420」: one plan, one part.
                previous = parts.pop()
                refs = previous.refs + refs
            parts.append(SourcePart(PLANS[number].title, refs, note))
            continue
        match = _NATIONAL_RE.match(piece)
        if match:
            parts.append(SourcePart(NATIONAL_FACT, note=_note(match.group(1))))
            continue
        match = _GENERAL_RE.match(piece)
        if match:
            parts.append(SourcePart(GENERAL, note=_note(match.group(1))))
            continue
        parts.append(SourcePart(piece))
    return parts


def cited_lines(text: str) -> Iterator[LineRef]:
    """Every plan passage a source text cites, also inside sentences (for the quote file)."""
    for part in parse_source(text):
        yield from part.refs
    for match in _CITATION_IN_TEXT_RE.finditer(text or ""):
        yield from _line_refs(match.group(1), match.group(2))


@cache
def _quotes() -> dict[str, dict[str, str]]:
    try:
        data = json.loads(QUOTES_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def quote(ref: LineRef) -> str:
    """The cited lines of the plan as one passage (cut at QUOTE_MAX characters), "" if not shipped."""
    lines = _quotes().get(ref.plan, {})
    text = ""
    for number in ref.lines():
        line = lines.get(str(number), "")
        if line:
            text = f"{text} {line}" if text else line
        if len(text) >= QUOTE_MAX:
            return text[:QUOTE_MAX] + "…"
    return text


def quotes_of(text: str) -> str:
    """The quoted plan lines a source cites, one passage after another (for a title attribute)."""
    return " … ".join(q for q in (quote(ref) for part in parse_source(text) for ref in part.refs) if q)


def source_text(text: str) -> str:
    """The source in words, without the quotes: 「那須烏山市 DX推進計画 190行、494行／全国共通の制度・事実」."""
    out = []
    for part in parse_source(text):
        words = part.text
        if part.refs:
            words += " " + "、".join(ref.label for ref in part.refs)
        if part.note:
            words += f"（{part.note}）"
        out.append(words)
    return "／".join(out)


def source_html(text: str) -> Markup:
    """The source for a staff page: each line number carries the quoted plan line as its title."""
    out = []
    for part in parse_source(text):
        pieces = [str(escape(part.text))]
        if part.refs:
            labels = []
            for ref in part.refs:
                quoted = quote(ref)
                if quoted:
                    labels.append(f'<span class="plan-line" title="{escape(quoted)}">{escape(ref.label)}</span>')
                else:
                    labels.append(str(escape(ref.label)))
            pieces.append(" " + "、".join(labels))
        if part.note:
            pieces.append(f"（{escape(part.note)}）")
        out.append('<span class="plan-source">' + "".join(pieces) + "</span>")
    return Markup("／".join(out))


def in_text_html(text: str) -> Markup:
    """A sentence with citations in it (a KPI note): each `seeds/…txt:N` becomes 「計画名 N行」 with its quote."""

    def replace(match: re.Match[str]) -> str:
        return str(source_html(match.group(0)))

    escaped = str(escape(text or ""))
    return Markup(_CITATION_IN_TEXT_RE.sub(replace, escaped))


def in_text_plain(text: str) -> str:
    """The same as in_text_html without quotes (for CSV and the command line)."""
    return _CITATION_IN_TEXT_RE.sub(lambda m: source_text(m.group(0)), text or "")


# --- the quote file --------------------------------------------------------------------------------


def _clean(line: str) -> str:
    """A plan line as staff read it: no HTML tags, Markdown marks or runs of spaces."""
    line = html.unescape(_TAG_RE.sub(" ", line))
    line = re.sub(r"\*\*|^#+\s*|^\s*[-*]\s+|\[([^\]]*)\]\(#?\)", lambda m: m.group(1) or "", line.strip())
    return " ".join(line.split())


def cited_in_repo(root: Path = ROOT) -> set[LineRef]:
    """Every plan passage the knowledge base and the KPI settings cite."""
    refs: set[LineRef] = set()
    files = [*sorted((root / "faq" / "kb").rglob("*.yaml")), root / "kpi" / "cities.yaml"]
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith("#"):
                continue
            if stripped.startswith("source:") or stripped.startswith("plan_source:"):
                refs.update(cited_lines(stripped.split(":", 1)[1]))
            else:
                refs.update(LineRef(m.group(1), r.start, r.end) for m in _CITATION_IN_TEXT_RE.finditer(stripped)
                            for r in _line_refs(m.group(1), m.group(2)))
    return refs


def build_quotes(seeds_dir: Path, refs: Iterable[LineRef]) -> dict[str, dict[str, str]]:
    """{plan number: {line number: cleaned line}}: the lines of each passage up to QUOTE_MAX characters."""
    quotes: dict[str, dict[str, str]] = {}
    texts: dict[str, list[str]] = {}
    for ref in sorted(set(refs), key=lambda r: (r.plan, r.start, r.end)):
        plan = PLANS.get(ref.plan)
        if plan is None:
            continue
        if ref.plan not in texts:
            texts[ref.plan] = (seeds_dir / f"{plan.file_stem}.txt").read_text(encoding="utf-8").splitlines()
        lines = texts[ref.plan]
        taken = 0
        for number in ref.lines():
            if not 1 <= number <= len(lines):
                continue
            cleaned = _clean(lines[number - 1])
            if cleaned:
                quotes.setdefault(ref.plan, {})[str(number)] = cleaned
                taken += len(cleaned) + 1
            if taken >= QUOTE_MAX:
                break
    return {plan: dict(sorted(lines.items(), key=lambda item: int(item[0]))) for plan, lines in sorted(quotes.items())}


def main(argv: list[str]) -> int:
    """python -m bot.plans SEEDS_DIR: write plan_quotes.json from the plans."""
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("使い方: python -m bot.plans ../shared/seeds", file=sys.stderr)
        return 2
    quotes = build_quotes(Path(argv[0]), cited_in_repo())
    QUOTES_FILE.write_text(json.dumps(quotes, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"{QUOTES_FILE.name}: {sum(len(v) for v in quotes.values())} 行を書き出しました。")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
