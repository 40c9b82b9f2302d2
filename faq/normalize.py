"""Japanese text normalisation and tokenisation for FAQ matching."""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING, Literal, NamedTuple

import neologdn

if TYPE_CHECKING:  # the Sudachi import is deferred: loading it is the expensive part
    from sudachipy import Tokenizer

# Variant kanji folded to the form residents and the knowledge base usually write.
# NFKC leaves these alone (most are ordinary unified ideographs, 﨑 is one of the
# compatibility ideographs without a decomposition), so they need a table.
_ITAIJI = {
    "髙": "高", "﨑": "崎", "嵜": "崎", "碕": "崎",
    "邊": "辺", "邉": "辺", "澤": "沢", "齋": "斎", "齊": "斎",
    "濱": "浜", "濵": "浜", "櫻": "桜", "廣": "広", "國": "国", "藏": "蔵",
    "德": "徳", "惠": "恵", "眞": "真", "龜": "亀", "嶋": "島", "嶌": "島",
    "冨": "富", "萬": "万", "實": "実", "壽": "寿", "條": "条", "瀨": "瀬",
    "𠮷": "吉", "槇": "槙", "舩": "船", "峯": "峰", "埜": "野", "曻": "昇",
    # 附票/付票, 附属/付属: both spellings are official and never contrast in municipal text.
    "附": "付",
}
_ITAIJI_TABLE = str.maketrans(_ITAIJI)

# Katakana (ァ..ヶ) -> hiragana; ヷ-ヺ have no hiragana twin and stay.
_KANA_TABLE = {code: code - 0x60 for code in range(0x30A1, 0x30F7)}

# A long-vowel mark ending a katakana word (サーバー/サーバ, コンピューター/コンピュータ)
# is dropped; inside a word it is kept. Done before kana folding, while words are visible.
_TRAILING_CHOON = re.compile(r"(?<=[ァ-ヺ])ー+(?![ァ-ヺー])")
_SPACES = re.compile(r"\s+")
# A lone katakana that looks like a kanji, typed next to kanji (窓ロ, 加エ): the kanji was meant.
_LOOKALIKE = {"ロ": "口", "エ": "工", "カ": "力", "ニ": "二", "ハ": "八", "タ": "夕", "ト": "卜"}
_LOOKALIKE_RE = re.compile(r"(?<=[\u4e00-\u9fff々])([ロエカニハタト])(?![ァ-ヺー])")
_KANJI = re.compile(r"[\u4e00-\u9fff々]")
_HIRAGANA_ONLY = re.compile(r"[ぁ-ゖー]+")
# Spaces left between Japanese characters (after punctuation was removed) carry no meaning.
_JA = r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\U00020000-\U0003ffff々〆ー]"
_JA_SPACE = re.compile(rf"(?<={_JA}) (?={_JA})")
_LATIN = r"[A-Za-z0-9\u00C0-\u024F\u1E00-\u1EFF]"
_LATIN_SPACE = re.compile(rf"(?<={_LATIN}) +(?={_LATIN})")
_KEPT_SPACE = "\ue000"  # a private-use character neologdn leaves alone


def _latin_base(ch: str) -> str:
    """The unaccented letter of an accented Latin letter (ã -> a, ệ -> e, đ -> d), else ch."""
    if ch in "đĐ":
        return "d"
    base = unicodedata.normalize("NFKD", ch)[0]
    return base if base.isascii() and base.isalpha() else ch


# Accented Latin letters -> their base letter, for matching only: residents type Portuguese and
# Vietnamese without accents as often as with them (não / nao, thẻ cư trú / the cu tru).
_LATIN_FOLD = {code: _latin_base(chr(code)) for code in [*range(0x00C0, 0x0250), *range(0x1E00, 0x1F00)]
               if _latin_base(chr(code)) != chr(code)}

# Multi-word spellings rewritten before tokenising, because Sudachi splits them into
# pieces that do not match the canonical word (マイナ + カード).
_PHRASES = (
    ("マイナカード", "マイナンバーカード"),
    ("まいなかーど", "マイナンバーカード"),
    ("まいなんばーかーど", "マイナンバーカード"),
    ("個人番号カード", "マイナンバーカード"),
    ("マイナ保険証", "マイナンバーカード 保険証"),
    ("まいなほけんしょう", "マイナンバーカード 保険証"),
    ("無線lan", "wi-fi"),
    ("ふりー wi-fi", "wi-fi"),
    ("コンビニエンスストア", "コンビニ"),
    ("こんびに", "コンビニ"),
    ("ぜいきん", "税金"),
    ("じゅうみんひょう", "住民票"),
    ("ほいくえん", "保育園"),
)

# Sudachi normalized forms (kana-folded) mapped to one canonical word, for municipal
# vocabulary whose spellings Sudachi keeps apart. Written readably; folded at import.
_SYNONYM_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("引っ越し", ("引っ越す", "引越", "転居", "引越し", "ひっこし")),
    ("印鑑", ("判子", "はんこ", "ハンコ", "印章")),
    ("マイナンバーカード", ("マイナンバー", "個人番号カード", "マイナ")),
    ("ごみ", ("ゴミ", "塵", "芥")),
    ("スマートフォン", ("スマホ", "携帯電話", "携帯", "ケータイ", "アイフォン", "iphone", "アンドロイド", "android")),
    ("オンライン", ("ネット", "インターネット", "web", "ウェブ", "ネット上")),
    ("市役所", ("役所", "役場", "市役場", "庁舎", "本庁")),
    ("wi-fi", ("ワイファイ", "wifi", "無線lan")),
    ("キャッシュレス", ("クレカ", "クレジット", "クレジットカード", "電子マネー", "paypay", "ペイペイ", "qr決済", "スマホ決済")),
    ("払う", ("支払う", "支払い", "支払", "納付", "納める", "納入", "払い込む", "払込", "振り込む", "振込")),
    ("死亡", ("亡くなる", "死ぬ", "逝去", "他界", "死去", "亡くす")),
    ("お悔やみ", ("御悔やみ", "おくやみ")),
    ("健診", ("検診", "健康診断", "人間ドック", "がん検診")),
    ("予防接種", ("ワクチン", "接種")),
    # Potential verbs are separate lexemes for Sudachi (取れる vs 取る); residents use both.
    ("取る", ("取れる", "とれる")),
    ("使う", ("使える",)),
    ("出す", ("出せる",)),
    ("借りる", ("借りれる", "借りられる")),
    ("払う", ("払える",)),
    ("受け取る", ("受け取れる", "受取る", "受取")),
    ("申し込む", ("申し込める", "申込む")),
    ("保育園", ("保育所", "保育施設", "こども園", "認定こども園")),
    ("子供", ("子ども", "こども", "児童", "キッズ")),
    ("母子手帳", ("母子健康手帳", "親子手帳")),
    ("避難所", ("避難場所", "避難先", "避難施設")),
    ("街灯", ("防犯灯", "街路灯", "外灯", "電灯")),
    ("漏水", ("水漏れ", "漏れる", "漏る")),
    ("献立", ("メニュー", "こんだて")),
    ("タブレット", ("ipad", "クロームブック", "chromebook", "学習端末", "タブレット端末")),
    ("ライン", ("line",)),
    ("ホームページ", ("hp", "ウェブサイト", "webサイト", "website")),
    ("コミュニティバス", ("市民バス", "循環バス", "巡回バス")),
    ("デマンド", ("乗合タクシー", "乗り合いタクシー", "予約型", "オンデマンド")),
    ("暗証番号", ("パスワード", "pin", "パスコード")),
    ("住民票", ("住民票の写し", "住民票写し")),
    ("外国人", ("外国籍", "海外出身")),
    ("高齢者", ("お年寄り", "年寄り", "老人", "シニア", "高齢")),
    ("障害", ("障がい", "障碍", "しょうがい")),
    ("メール", ("eメール", "e-mail", "email", "メルマガ")),
)

_STOP_POS = {"助詞", "助動詞", "補助記号", "記号", "空白", "接続詞", "感動詞", "連体詞", "代名詞"}
# Light verbs and question boilerplate: they say "this is a question", not what it is about.
_STOP_WORDS = {
    "為る", "有る", "居る", "成る", "出来る", "言う", "遣る", "下さる", "頂く", "致す", "呉れる",
    "教える", "知る", "思う", "分かる", "解る", "見る", "良い", "欲しい", "貰う", "伺う", "聞く",
    "行く", "来る", "どう", "どの", "何", "如何", "いつ", "どこ", "どれ", "方", "事", "物", "所", "時", "様",
    "御", "お", "ご", "的", "方法", "やり方", "仕方", "について", "ある", "いる", "なる",
    "ます", "です", "ちょっと", "少し", "今", "まだ", "もう", "ね", "よ", "さん", "様子",
    "こと", "もの", "ところ", "とき", "ため", "よう", "中", "場合", "感じ", "辺り", "他", "ほか",
    "大丈夫", "必要", "可能", "すみません", "お願い", "有難う", "今日は", "宜しい",
}

SplitName = Literal["A", "C", "AC"]
# "AC" = mode-C words plus their mode-A parts, so 印鑑登録証明書 also matches 印鑑 ... 証明.
# A, C and AC measured within a question or two of each other (bench/faq); see matcher.Params.
SPLIT_MODE: SplitName = "AC"


def fold_kana(text: str) -> str:
    """Katakana -> hiragana."""
    return text.translate(_KANA_TABLE)


def _is_noise(ch: str) -> bool:
    """Punctuation, symbols (emoji), controls, separators and stray combining marks."""
    if ch == "ー" or ch == "々" or ch == "〆":
        return False
    cat = unicodedata.category(ch)
    return cat[0] in "PSCZ" or cat in ("Mn", "Me")


class _NoiseTable(dict[int, str]):
    """str.translate table computed per code point on first sight (a per-character Python
    loop was the slowest step of building a large index)."""

    def __missing__(self, code: int) -> str:
        value = " " if _is_noise(chr(code)) else chr(code)
        if len(self) < 65536:  # bounded: arbitrary input must not grow it forever
            self[code] = value
        return value


_NOISE = _NoiseTable()


def _strip_noise(text: str) -> str:
    """Replace noise characters by spaces, keeping letters, digits and kana marks."""
    return text.translate(_NOISE)


def clean(text: str) -> str:
    """NFKC, neologdn, variants, trailing ー, noise removal, lower-case; keeps katakana."""
    text = unicodedata.normalize("NFKC", text)
    # neologdn drops a space between letters outside Latin-1 (Vietnamese về ngày -> vềngày): keep
    # the spaces between Latin-script words, which are word boundaries in every such language.
    text = neologdn.normalize(_LATIN_SPACE.sub(_KEPT_SPACE, text)).replace(_KEPT_SPACE, " ")
    text = text.translate(_ITAIJI_TABLE)
    text = _LOOKALIKE_RE.sub(lambda m: _LOOKALIKE[m.group(1)], text)
    text = _TRAILING_CHOON.sub("", text)
    text = _strip_noise(text).lower()
    text = _SPACES.sub(" ", text).strip()
    return _JA_SPACE.sub("", text)


def normalize(text: str) -> str:
    """Canonical comparable form: clean() plus katakana -> hiragana and accented Latin letters
    -> their base letters."""
    return fold_kana(clean(text)).translate(_LATIN_FOLD)


@lru_cache(maxsize=1)
def _synonyms() -> dict[str, str]:
    """Folded variant -> folded canonical word."""
    table: dict[str, str] = {}
    for canonical, variants in _SYNONYM_GROUPS:
        target = normalize(canonical)
        for v in variants:
            table[normalize(v)] = target
    return table


_FOLDED_STOP = frozenset(normalize(w) for w in _STOP_WORDS)

_tokenizer: Tokenizer | None = None
_tokenizer_lock = threading.Lock()


def _get_tokenizer() -> Tokenizer:
    """The Sudachi tokenizer, created once on first use (the dictionary is expensive)."""
    global _tokenizer
    if _tokenizer is None:
        with _tokenizer_lock:
            if _tokenizer is None:
                from sudachipy import Dictionary

                _tokenizer = Dictionary(dict="core").tokenizer()
    return _tokenizer


@lru_cache(maxsize=65536)
def _canonical(form: str) -> str | None:
    """Folded, synonym-mapped form of one token, or None for a stop word."""
    folded = normalize(form)
    if not folded or folded in _FOLDED_STOP:
        return None
    folded = _synonyms().get(folded, folded)
    return folded


def rewrite_phrases(text: str) -> str:
    """Apply the multi-word rewrites before tokenising."""
    for variant, canonical in _PHRASES:
        if variant in text:
            text = text.replace(variant, f" {canonical} ")
    return text


# Sudachi refuses very long input (its limit is in bytes); nothing we tokenise needs more.
MAX_TOKENIZE_CHARS = 5000


class Token(NamedTuple):
    """A content word: canonical form, whether it is a mode-A part of a compound, its POS."""

    form: str
    part: bool
    pos: str  # first Sudachi POS field: 名詞, 動詞, 形容詞, ...
    kana: bool = False  # written in hiragana only: Sudachi often mis-segments such runs
    reading: str = ""  # hiragana reading of the surface (Sudachi reading_form), for the kana lexicon


class Analysis(NamedTuple):
    """Everything one Sudachi pass tells the matcher about a text."""

    tokens: list[Token]  # content words, each followed by its mode-A parts
    reading: str  # hiragana reading, so kana-typed words meet kanji ones
    places: list[str]  # place names (固有名詞/地名), kana-folded
    prepared: str = ""  # the cleaned text with phrase rewrites, as tokenised


def analyze(text: str) -> Analysis:
    """Tokenise once (mode C) and collect content words, reading and place names."""
    from sudachipy import SplitMode  # cheap once the package is loaded

    prepared = rewrite_phrases(clean(text[:MAX_TOKENIZE_CHARS]))
    if not prepared:
        return Analysis([], "", [], "")
    tok = _get_tokenizer()
    out: list[Token] = []
    read: list[str] = []
    places: list[str] = []
    with _tokenizer_lock:  # a Sudachi tokenizer must not be used by two threads at once
        for m in tok.tokenize(prepared, SplitMode.C):
            pos = m.part_of_speech()
            if pos[0] in ("補助記号", "空白"):
                read.append(" ")
            else:
                r = m.reading_form()
                # Unknown words (latin, OOV) have no reading; keep the surface.
                read.append(r if r and pos[0] != "記号" else m.surface())
            if pos[0] in _STOP_POS:
                continue
            # Place names residents use for another town are written in kanji (東京, 宇都宮); a kana
            # word tagged 地名 is usually something else (バレー as in volleyball).
            if pos[1] == "固有名詞" and pos[2] == "地名" and _KANJI.search(m.surface()):
                places.append(normalize(m.normalized_form()))
            kana = _HIRAGANA_ONLY.fullmatch(m.surface()) is not None
            form = _canonical(m.normalized_form())
            if form is not None:
                out.append(Token(form, False, pos[0], kana, _reading_of(m)))
            parts = m.split(SplitMode.A)
            if len(parts) > 1:
                for part in parts:
                    part_pos = part.part_of_speech()[0]
                    if part_pos in _STOP_POS:
                        continue
                    sub = _canonical(part.normalized_form())
                    if sub is not None and sub != form:
                        out.append(Token(sub, True, part_pos, kana, _reading_of(part)))
    return Analysis(out, normalize("".join(read)), places, prepared)


def _reading_of(m: object) -> str:
    """Hiragana reading of one morpheme ("" when Sudachi has none, as for latin words)."""
    r = m.reading_form()  # type: ignore[attr-defined]
    return fold_kana(r) if r else ""


def token_parts(text: str) -> list[Token]:
    """Mode-C content words, each followed by its mode-A parts (marked part=True)."""
    return analyze(text).tokens


def tokens(text: str, mode: SplitName | None = None) -> list[str]:
    """Content-word tokens (Sudachi normalized forms, kana-folded, synonyms unified)."""
    mode = mode or SPLIT_MODE
    toks = token_parts(text)
    if mode == "C":
        return [t.form for t in toks if not t.part]
    if mode == "A":
        # A word's mode-A parts replace it; a word with no parts stands for itself.
        out: list[str] = []
        for i, t in enumerate(toks):
            has_parts = i + 1 < len(toks) and toks[i + 1].part
            if t.part or not has_parts:
                out.append(t.form)
        return out
    return [t.form for t in toks]


def reading(text: str) -> str:
    """Hiragana reading of the text (Sudachi reading_form), so kana-typed words meet kanji ones."""
    return analyze(text).reading


def place_names(text: str) -> list[str]:
    """Place-name tokens (Sudachi 固有名詞/地名) in the text, kana-folded."""
    return analyze(text).places


# Greetings, apologies and "please tell me" that residents wrap around a question on LINE.
# They carry no topic, yet they dilute every similarity (and embeddings love them), so they
# are cut before matching. Longest first, so 教えてください goes before 教えて.
_FILLER = tuple(sorted({
    "お世話になっております", "お世話になります", "おせわになります", "いつもお世話になっております",
    "お疲れ様です", "おつかれさまです", "お忙しいところ", "お忙しいところすみません", "恐れ入りますが", "恐れ入ります",
    "申し訳ありませんが", "申し訳ないのですが", "すみませんが", "すみません", "すいません", "済みません",
    "失礼します", "失礼いたします", "はじめまして", "初めまして", "こんにちは", "こんばんは", "おはようございます",
    "よろしくお願いします", "よろしくお願いいたします", "よろしくお願い致します", "宜しくお願いします",
    "お願いします", "お願いいたします", "ありがとうございます", "ありがとう",
    "教えてください", "教えて下さい", "おしえてください", "教えていただけますか", "教えてもらえますか",
    "教えてほしいです", "教えて欲しいです", "教えてほしい", "教えて",
    "質問です", "質問があります", "質問なんですが", "質問なのですが", "質問させてください", "ご質問です",
    "聞きたいんですけど", "聞きたいのですが", "聞きたいです", "お聞きしたいのですが", "お尋ねします",
    "お伺いしたいのですが", "伺いたいのですが", "知りたいです", "知りたいのですが", "わかりますか", "分かりますか",
}, key=len, reverse=True))
# Interjections only where they stand alone at the start of a sentence (あ is inside words).
_INTERJECTION = re.compile(r"^\s*(?:あの[ーうぉ]*|えっと|えーと|えー|ねえ|あっ?|うーん)(?:[、,，\s]+|$)")
_SENTENCE_END = re.compile(r"(?<=[。！？!?\n])|(?<=[.]\s)")


def strip_filler(text: str) -> str:
    """The question without greetings, apologies and 「教えてください」-style filler.

    Sentences left with no letters after the filler is cut are dropped; if nothing is left
    (the whole message was a greeting), the text is returned as it was."""
    kept: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        s = _INTERJECTION.sub(" ", sentence)
        for phrase in _FILLER:
            if phrase in s:
                s = s.replace(phrase, " ")
        if any(ch.isalnum() for ch in s):
            kept.append(s)
    out = _SPACES.sub(" ", "".join(kept)).strip()
    return out if any(ch.isalnum() for ch in out) else text
