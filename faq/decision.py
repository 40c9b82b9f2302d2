"""The calibrated decision: answer, ask 「もしかして」, or admit not knowing.

A fixed score threshold answered only questions phrased close to the knowledge base. The
matcher knows more than its top score: how far the best entry is ahead of the runner-up,
whether the word, bigram and embedding rankings agree, how much of the question's content
the entry covers, how much of it the knowledge base has never seen, and how long it is.
Two small logistic models read these signals:

- ``answer``: the probability that the best entry is right (its value is the answer's
  confidence, stored as the question log's score);
- ``offer``: the probability that the right entry is among the three offered.

They are fitted on the study half of the question sets only (``bench/fit-decision``) and
shipped as coefficients in ``faq/decision-model.json``; the thresholds are chosen there on
the same study half (precision of direct answers first). Pure functions: no I/O but the
one-time read of the coefficients.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np

MODEL_PATH = Path(__file__).resolve().parent / "decision-model.json"


@dataclass(frozen=True)
class Signals:
    """What the matcher knows about its best candidate for one question."""

    score: float  # fused score of the best entry, in [0, 1]
    margin: float  # best minus runner-up fused score
    word: float  # idf-weighted share of the question's words the best entry has
    word_margin: float  # the same, minus the best other entry's share
    char: float  # share of the question's character bigrams (readings included)
    embed: float  # rescaled embedding cosine of the best entry (0 without embeddings)
    embed_margin: float  # minus the best other entry's
    agree: float  # how many of the word and embedding rankings also put it first (0..2)
    unknown_share: float  # idf-weighted share of the question's words the KB never uses
    length: float  # log(1 + characters of the normalised question)
    terms: float  # log(1 + content words)
    exact: float  # 1 if the question is (nearly) a stored phrasing
    imported: float  # 1 if the best entry has few phrasings (an imported FAQ's one question)

    def vector(self) -> np.ndarray:
        """The signals in FEATURES order."""
        return np.array([getattr(self, f) for f in FEATURES], dtype=np.float64)


FEATURES = tuple(f.name for f in fields(Signals))


@dataclass(frozen=True)
class Logistic:
    """sigmoid(bias + weights . standardised(x))."""

    bias: float
    weights: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def from_json(cls, h: dict) -> Logistic:
        """A head as the coefficients files store it (asdict)."""
        return cls(float(h["bias"]), tuple(h["weights"]), tuple(h["mean"]), tuple(h["scale"]))

    def prob(self, x: np.ndarray) -> float:
        """Probability for one signal vector."""
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return _sigmoid(self.bias + float(np.dot(np.asarray(self.weights), z)))


@dataclass(frozen=True)
class DecisionModel:
    """Both heads and their thresholds."""

    answer: Logistic
    offer: Logistic
    answer_threshold: float
    offer_threshold: float
    # An imported FAQ's entries are single questions, often siblings (申請場所 / 申請者 / 申請方法):
    # a direct answer there needs its own, usually higher, threshold for the same precision.
    answer_threshold_imported: float | None = None
    # Below this best score nothing matched: 「お答えできません」 whatever the heads say (a linear
    # model extrapolates for long questions made of words the knowledge base never uses).
    score_floor: float = 0.0
    score_floor_imported: float = 0.0

    def decide(self, signals: Signals, p_answer: float | None = None) -> tuple[Literal["answer", "clarify", "unknown"], float]:
        """The decision and its confidence (probability the best entry is right); `p_answer`, when
        given, is another answer head's probability (the foreign questions' model) in place of ours."""
        x = signals.vector()
        if p_answer is None:
            p_answer = self.answer.prob(x)
        if signals.score < (self.score_floor_imported if signals.imported else self.score_floor):
            return "unknown", p_answer
        threshold = self.answer_threshold
        if signals.imported and self.answer_threshold_imported is not None:
            threshold = self.answer_threshold_imported
        if p_answer >= threshold:
            return "answer", p_answer
        if self.offer.prob(x) >= self.offer_threshold:
            return "clarify", p_answer
        return "unknown", p_answer


# A question in a foreign language is ranked by the translation index (faq/multilingual.py) and by the
# Japanese index too: whether the two put the same entry first, and how sure the Japanese index is.
CROSS_FEATURES = ("ja_agree", "ja_confidence")
FOREIGN_FEATURES = (*FEATURES, *CROSS_FEATURES)
FOREIGN_MODEL_PATH = Path(__file__).resolve().parent / "foreign-decision-model.json"


def foreign_vector(signals: Signals, ja_agree: bool, ja_confidence: float) -> np.ndarray:
    """The signals in FOREIGN_FEATURES order."""
    return np.concatenate([signals.vector(), np.array([float(ja_agree), float(ja_confidence)])])


@dataclass(frozen=True)
class ForeignModel:
    """The answer head for questions in foreign languages, fitted on foreign questions
    (bench/fit-foreign-decision); the offer head stays the Japanese one."""

    answer: Logistic
    answer_thresholds: dict[str, float]  # per language: how much a question's words tell differs

    def threshold(self, language: str) -> float:
        """The answer threshold of a language (the strictest one for a language not fitted)."""
        return self.answer_thresholds.get(language, max(self.answer_thresholds.values(), default=1.0))

    def prob(self, signals: Signals, ja_agree: bool, ja_confidence: float) -> float:
        """The probability that the translation index's best entry is right."""
        return self.answer.prob(foreign_vector(signals, ja_agree, ja_confidence))


@functools.lru_cache(maxsize=2)
def load_foreign_model(path: Path = FOREIGN_MODEL_PATH) -> ForeignModel | None:
    """The shipped foreign answer head; None if absent or fitted for other signals."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if tuple(data.get("features", ())) != FOREIGN_FEATURES:
        return None
    return ForeignModel(Logistic.from_json(data["answer"]),
                        {str(k): float(v) for k, v in data["answer_thresholds"].items()})


def foreign_model_json(model: ForeignModel, note: dict[str, object]) -> str:
    """The foreign answer head's coefficients file."""
    out = {"note": note, "features": list(FOREIGN_FEATURES), "answer": asdict(model.answer),
           "answer_thresholds": model.answer_thresholds}
    return json.dumps(out, ensure_ascii=False, indent=1) + "\n"


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@functools.lru_cache(maxsize=4)
def load_model(mode: str, path: Path = MODEL_PATH) -> DecisionModel | None:
    """The shipped model for "embed" or "lexical" mode; None if absent (thresholds decide)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    entry = data.get("modes", {}).get(mode)
    if not entry or tuple(entry.get("features", ())) != FEATURES:
        return None  # fitted for other signals: refuse rather than misread the weights

    imported = entry.get("answer_threshold_imported")
    return DecisionModel(Logistic.from_json(entry["answer"]), Logistic.from_json(entry["offer"]),
                         float(entry["answer_threshold"]), float(entry["offer_threshold"]),
                         float(imported) if imported is not None else None,
                         float(entry.get("score_floor", 0.0)), float(entry.get("score_floor_imported", 0.0)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 50) -> Logistic:
    """L2-regularised logistic regression by Newton's method on standardised features."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    w = np.zeros(z.shape[1])
    reg = np.eye(z.shape[1]) * l2
    reg[0, 0] = 0.0  # the bias is not shrunk
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        grad = z.T @ (p - y) + reg @ w
        hess = (z * (p * (1 - p))[:, None]).T @ z + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return Logistic(float(w[0]), tuple(float(v) for v in w[1:]), tuple(float(v) for v in mean),
                    tuple(float(v) for v in scale))


def model_json(modes: dict[str, DecisionModel], note: dict[str, object]) -> str:
    """The coefficients file: readable, diffable, with how it was made."""
    out: dict[str, object] = {"note": note, "modes": {}}
    for mode, m in modes.items():
        out["modes"][mode] = {  # type: ignore[index]
            "features": list(FEATURES),
            "answer": asdict(m.answer),
            "offer": asdict(m.offer),
            "answer_threshold": m.answer_threshold,
            "offer_threshold": m.offer_threshold,
            "answer_threshold_imported": m.answer_threshold_imported,
            "score_floor": m.score_floor,
            "score_floor_imported": m.score_floor_imported,
        }
    return json.dumps(out, ensure_ascii=False, indent=1) + "\n"


def pick_threshold(probs: Sequence[float], good: Sequence[bool], target: float, floor: float = 0.5) -> float:
    """The lowest threshold (not below floor) at which the share of `good` among the cases
    at or above it is at least `target`."""
    pairs = sorted(zip(probs, good), key=lambda t: -t[0])
    best = 1.0
    hits = 0
    for k, (p, g) in enumerate(pairs, start=1):
        hits += int(g)
        if hits / k >= target and (k == len(pairs) or pairs[k][0] < p):
            best = p
    return max(floor, best)
