"""Shared fixtures and helpers: real documents (read in place), one embedder cache per session."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from ingest.embed import Embedder, counting_tokenizer, default_model_path, load_embedder
from ingest.index import VectorIndex
from ingest.pipeline import Ingestor
from ingest.settings import ChunkSettings, EmbedSettings, IndexSettings, IngestSettings
from service.llm.llama_server import LlamaServerError, llama_server
from service.llm.llama_server import free_port as free_port  # re-exported for the tests

REPO = Path(__file__).resolve().parents[1]
# The suite answers with the packaged base model (fast, completion style) unless a test names a
# model; the default instruct model has its own tests (tests/service/llm/test_qwen.py).
TEST_MODEL = "gemma-3-270m"


def base_gguf() -> Path:
    """``TEST_MODEL``'s GGUF, for tests that load llama.cpp themselves or serve it over HTTP."""
    from service.llm.presets import model_file, preset

    return model_file(preset(TEST_MODEL))


@pytest.fixture(scope="session", autouse=True)
def _base_model_unless_named() -> Iterator[None]:
    """Settings built in tests (and their subprocesses, see ``cli_env``) load ``TEST_MODEL``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAGTUNE_LLM__MODEL", TEST_MODEL)
        yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder beside the repository; missing data is a failure, not a skip."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    assert path.is_dir(), f"shared data folder not found at {path}"
    return path


@pytest.fixture(scope="session")
def embed_settings(tmp_path_factory: pytest.TempPathFactory) -> EmbedSettings:
    """One ONNX export cache for the whole session (the first export takes ~10 s)."""
    return EmbedSettings(cache_dir=tmp_path_factory.mktemp("embed-cache"))


@pytest.fixture(scope="session")
def embedder(embed_settings: EmbedSettings) -> Embedder:
    """The default (onnx-int8) encoder, loaded once."""
    return load_embedder(embed_settings)


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    """The embedding model's own tokenizer, configured for counting (no specials, no truncation)."""
    return counting_tokenizer(default_model_path())


@pytest.fixture(scope="session")
def cli_env(embed_settings: EmbedSettings, embedder: Embedder) -> dict[str, str]:
    """Environment for ``python -m eval.cli`` subprocesses: this checkout, the session cache.

    Depends on ``embedder`` so the ONNX graph is already exported before any subprocess runs.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGTUNE_")}
    env["PYTHONPATH"] = str(REPO)
    env["RAGTUNE_LLM__MODEL"] = TEST_MODEL
    env["RAGTUNE_EMBED__CACHE_DIR"] = str(embed_settings.cache_dir)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    return env


def open_store(root: Path, embedder: Embedder) -> VectorIndex:
    """The index the CLI would open under ``--home root/..`` (``root`` is the index directory)."""
    return VectorIndex.open(root, IndexSettings(), embed_model=embedder.name, dim=embedder.dim)


def make_ingestor(
    index: VectorIndex, embedder: Embedder, *, chunk: ChunkSettings | None = None, **ingest: object
) -> Ingestor:
    """An ``Ingestor`` with default chunking and one conversion worker unless told otherwise."""
    settings = IngestSettings.model_validate({"workers": 1, **ingest})
    return Ingestor(index, embedder, chunk or ChunkSettings(), settings)


def cli_command(*args: str) -> list[str]:
    """argv that runs the ragtune CLI of this checkout with the test interpreter."""
    return [sys.executable, "-m", "eval.cli", *args]


def copy_files(paths: list[Path], dest: Path) -> list[Path]:
    """Copy real documents into ``dest`` (a tmp dir), returning the copies."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        target = dest / p.name
        target.write_bytes(p.read_bytes())
        out.append(target)
    return out


def corpus_files(shared_data: Path) -> list[Path]:
    """A small mixed corpus: plain text, HTML, three Markdown files and one PDF."""
    node = shared_data / "bench" / "nodejs-api"
    return [
        shared_data / "corpus" / "llm-guide.txt",
        shared_data / "corpus" / "zlib-usage.html",
        node / "tty.md",
        node / "punycode.md",
        node / "string_decoder.md",
        shared_data / "papers" / "u-net.pdf",
    ]


def truncated_pdf(shared_data: Path, dest: Path) -> Path:
    """Real PDF bytes cut off a third of the way in: claims to be a PDF, cannot be converted."""
    data = (shared_data / "papers" / "u-net.pdf").read_bytes()
    dest.write_bytes(data[: len(data) // 3])
    return dest


def random_pdf(dest: Path, seed: int = 7) -> Path:
    """Random bytes under a ``.pdf`` name."""
    import random

    dest.write_bytes(random.Random(seed).randbytes(4096))
    return dest


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


# Any fixed 32-byte key; tests that answer with a real model over their own home write it too.
TEST_FENCE_KEY = "5f0c" * 16


def write_fence_key(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    key = home / "fence.key"
    key.write_text(TEST_FENCE_KEY + "\n", encoding="ascii")
    key.chmod(0o600)  # as service.fence_key makes it (a test checks the mode)


@pytest.fixture(scope="session")
def service_home(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path, embedder: Embedder
) -> Path:
    """A data directory with llm-guide.txt and zlib-usage.html ingested (built once).

    Its fence key is fixed: the key marks every prompt's passages, and a small model's answer
    moves with the markers, so a key made at random per session made real-model answers differ
    from run to run.
    """
    home = tmp_path_factory.mktemp("service-home")
    write_fence_key(home)
    docs = copy_files(
        [shared_data / "corpus" / "llm-guide.txt", shared_data / "corpus" / "zlib-usage.html"],
        home / "docs",
    )
    index = open_store(home / "index", embedder)
    try:
        make_ingestor(index, embedder).run(docs)
    finally:
        index.close()
    return home


@contextlib.contextmanager
def running_llama_server(model: Path, log: Path, *, n_ctx: int, threads: int = 2) -> Iterator[str]:
    """A real ``python -m llama_cpp.server`` on loopback; yields its base URL (with /v1)."""
    try:
        with llama_server(model, n_ctx=n_ctx, threads=threads, log=log, startup_s=60) as base:
            yield base
    except LlamaServerError as e:
        pytest.fail(str(e))


@contextlib.contextmanager
def ragtune_serve(
    home: Path, env: dict[str, str], log: Path, *, startup_s: float = 120
) -> Iterator[str]:
    """A real ``ragtune serve`` on 127.0.0.1 over ``home``; yields its base URL once ready.

    The server's output goes to ``log`` (a pipe nobody reads would fill up and stall it) and is
    shown when it exits early.
    """
    import httpx

    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            cli_command("serve", "--port", str(port), "--home", str(home)),
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, startup_s, "ragtune serve to be ready")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def chromium_path() -> str:
    """Debian's Chromium, which the report and console browser tests drive; a clear failure
    without it (`make browser` installs it as root)."""
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "chromium is not installed: the browser tests need Debian's package "
            "(`make browser`, or `apt-get install chromium`; .ci/run installs it)"
        )
    return path


def alive(pid: int) -> bool:
    """Whether process ``pid`` is running (a zombie has exited already)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def assert_child_dies_with(parent: subprocess.Popen[str], pid: int, what: str) -> None:
    """SIGKILL ``parent`` and assert its child ``pid`` is gone within 15 s; nothing is left
    running whatever the outcome."""
    try:
        assert alive(pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(pid), f"{what} outlived the process that started it"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
