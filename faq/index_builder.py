"""Build a large matcher index once per host, in a low-priority process of its own.

Building the index of a large knowledge base (an import of thousands of rows) takes seconds to
minutes of CPU. Done in a thread of each web worker it held the interpreter lock the residents'
answering threads need (replies waited seconds), and every worker built the same index at once.
Instead the first worker that needs it starts `python -m faq.index_builder` at a lower CPU
priority (nice); that process builds the index and saves it (pickled, written then renamed) in
the index cache; the other workers of the host wait for the same file under a file lock and load
it, which takes milliseconds. Small knowledge bases are still built in the worker: faster than
starting a process.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.config import ROOT

log = logging.getLogger(__name__)

INDEX_CACHE_DIR = ROOT / "instance" / "cache" / "indexes"
NICE = 10  # the builder yields the CPU to the web workers answering residents
KEEP_FILES = 4  # newest saved indexes kept (each can be tens of MB)
TIMEOUT_SECONDS = 3600.0


def _path(cache_dir: Path, key: str) -> Path:
    return cache_dir / f"{key}.pickle"


@functools.cache
def code_fingerprint() -> str:
    """What else an index depends on: the code that builds it and the embedding package's version
    (an upgrade must not load an index saved by the old code)."""
    from faq.embed import package_version

    digest = hashlib.sha256((package_version() or "none").encode())
    for name in ("matcher.py", "normalize.py", "embed.py", "index_builder.py"):
        digest.update((ROOT / "faq" / name).read_bytes())
    return digest.hexdigest()[:16]


def build_shared(key: str, entries: Sequence[Any], *, index_dir: Path | None = None, **build_args: Any) -> Any:
    """The MatcherIndex of entries (MatcherIndex.build(entries, **build_args)), built by one process of the host.

    `key` names the content (the same key gives the same index). Falls back to building here if
    the builder process fails, so residents are answered in any case."""
    from faq.matcher import MatcherIndex

    cache_dir = Path(index_dir or INDEX_CACHE_DIR)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{key}/{code_fingerprint()}".encode()).hexdigest()[:32]
    target = _path(cache_dir, key)
    with (cache_dir / f"{key}.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a neighbour building the same index: wait for its file
        if not target.exists():
            try:
                _run_builder(target, entries, build_args)
            except Exception as exc:  # noqa: BLE001 - build here instead: slower for residents, never wrong
                log.warning("index builder process failed (%s); building in this process", exc)
                return MatcherIndex.build(entries, **build_args)
        started = time.monotonic()
        index = _load(target)
    log.info("FAQ index loaded from the host's builder: entries=%d load=%.2fs", len(entries), time.monotonic() - started)
    _prune(cache_dir, keep=target)
    return index


def _run_builder(target: Path, entries: Sequence[Any], build_args: dict[str, Any]) -> None:
    """Run the builder process on a pickled job and wait for it (it writes `target`)."""
    job = tempfile.NamedTemporaryFile(dir=target.parent, prefix=".job-", suffix=".pickle", delete=False)
    try:
        with job:
            pickle.dump({"entries": list(entries), "build_args": build_args, "target": str(target)}, job, protocol=5)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "faq.index_builder", job.name], cwd=ROOT, timeout=TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        if proc.returncode != 0 or not target.exists():
            tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"exit {proc.returncode}: {tail[0][:300]}")
        log.info("FAQ index built by a builder process: entries=%d took=%.1fs", len(entries), time.monotonic() - started)
    finally:
        Path(job.name).unlink(missing_ok=True)


def _load(target: Path) -> Any:
    """Unpickle a saved index and give it this process's embedding model."""
    with target.open("rb") as f:
        index = pickle.load(f)  # noqa: S301 - our own file, written by our builder under instance/
    if index.embeddings is not None:
        from faq.embed import embedder_for

        index.embedder = embedder_for(index.params.embed_model)
    return index


def _prune(cache_dir: Path, keep: Path) -> None:
    """Delete all but the newest saved indexes (and their locks)."""
    saved = sorted(cache_dir.glob("*.pickle"), key=lambda p: p.stat().st_mtime if p.exists() else 0, reverse=True)
    for old in [p for p in saved if p != keep and not p.name.startswith(".")][KEEP_FILES - 1:]:
        with old.with_suffix(".lock").open("a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a neighbour is loading it
            old.unlink(missing_ok=True)
            old.with_suffix(".lock").unlink(missing_ok=True)


def main(job_path: str) -> int:
    """The builder process: read the job, build at low priority, save the index atomically."""
    os.nice(NICE)
    from faq.matcher import MatcherIndex

    with open(job_path, "rb") as f:
        job = pickle.load(f)  # noqa: S301 - written by our own worker just now
    index = MatcherIndex.build(job["entries"], **job["build_args"])
    index.embedder = None  # the model is loaded by each process that uses the index
    target = Path(job["target"])
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".part-", delete=False) as out:
        pickle.dump(index, out, protocol=5)
    os.replace(out.name, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
