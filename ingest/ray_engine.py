"""Ingestion on Ray (``ragtune ingest --engine ray``): the local pipeline's stages spread out.

What runs where:
- the driver (this process) plans the run exactly as the local engine does (``Ingestor.plan``:
  new, changed and deleted files) and is the store's only writer: it stages every document
  through the same ``Batcher`` and ``StagedChanges`` and commits every ``ingest.commit_every``
  documents, so a killed run loses at most the uncommitted ones and a rerun skips the rest;
- Ray Data reads the files (``read_binary_files``), so they must be readable at the same path
  on every node that runs a read task;
- conversion and chunking run as Ray tasks (``ingest.ray_tasks``). Each task converts in a
  child process of its own (``ingest.pool.ConversionPool``), so the memory, time and size
  limits and the quarantine reasons are the local engine's;
- the encoder runs in an actor pool (``ingest.ray_encoders`` actors, ``ingest.ray_num_gpus``
  GPUs reserved each, used with embed.device = "cuda"), fed the encoder batches a local
  run would form; Ray restarts a killed actor and retries its batch.

Results reach the driver in scan order and are embedded in the local engine's batches, so chunk
ids and vectors are those of a local run with one conversion worker. Record collections (JSONL)
stay on the driver's local path: they are read line by line against the store, and their
encoder batches run in the driver.

``ray`` is an optional extra, imported only when this engine runs.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import ingest
from ingest.batch import EMBED_BATCH_CHUNKS, Batcher, Item, Pending
from ingest.embed import Embedder
from ingest.faults import FAULT_ENV, SIGNAL_ENV
from ingest.index import VectorIndex
from ingest.pipeline import Ingestor
from ingest.pool import Failed, file_too_large
from ingest.ray_tasks import Encoder, PrepSpec, convert_and_chunk
from ingest.scan import FileEntry
from ingest.settings import ChunkSettings, EmbedSettings, IngestSettings

MISSING = "the Ray engine needs the ray extra: pip install 'ragtune[ray]' (ray[data]==2.60.0)"


class RayUnavailable(RuntimeError):
    """The ray extra is not installed, or the cluster cannot run the engine as configured."""


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or a one-line ``RayUnavailable``."""
    try:
        import ray
        import ray.data  # the extra installs Ray Data beside Ray core
    except ImportError:
        raise RayUnavailable(MISSING) from None
    return ray


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` (``auto``, ``ray://head:10001``), or start a local one.

    A local cluster's workers import this checkout of ragtune (``PYTHONPATH``); a real
    cluster's nodes must have ragtune and the extra installed. Returns whether this call
    connected (and so should shut down); a process already connected is reused as it is.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": True}
    if address:
        try:
            ray.init(address=address, **quiet)
        except ConnectionError as e:
            raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {e}") from None
    else:
        code = str(Path(ingest.__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (code, os.environ.get("PYTHONPATH")) if p)
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            runtime_env={"env_vars": {"PYTHONPATH": path}},
            **quiet,
        )
    return True


@contextlib.contextmanager
def cluster(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """``connect`` for the duration of a block; shuts down only what it connected."""
    started = connect(address, num_cpus)
    try:
        yield
    finally:
        if started:
            import_ray().shutdown()


class RayIngestor(Ingestor):
    """An ``Ingestor`` whose files are converted, chunked and embedded on a Ray cluster.

    Everything else (planning, record collections, sync, commits, merges) is the local
    engine's. The cluster is the one this process is connected to (``connect``/``cluster``),
    else ``ingest.ray_address``, else a local one for the run.
    """

    def __init__(
        self,
        index: VectorIndex,
        embedder: Embedder,
        chunking: ChunkSettings,
        settings: IngestSettings,
        embed: EmbedSettings,
        **kwargs: Any,
    ) -> None:
        super().__init__(index, embedder, chunking, settings, **kwargs)
        self.spec = PrepSpec(embed, chunking, settings, embedder.max_tokens)

    def _ingest_files(self, files: dict[Path, FileEntry], batcher: Batcher) -> None:
        with cluster(self.settings.ray_address):
            encoders = EncoderPool(self.spec, self.settings)
            try:
                batcher.consume(encoders.embedded(self._converted(files)))
            finally:
                encoders.close()

    def _converted(self, files: dict[Path, FileEntry]) -> Iterator[Item]:
        """Converted and chunked ``files`` (not yet embedded), in scan order.

        Ray Data keeps the order (``preserve_order``); the re-sequencing here only makes sure
        of it, and turns a file that vanished before it was read into the local engine's
        failure.
        """
        max_bytes = int(self.settings.max_file_mb * 1e6)
        entries = list(files.values())
        readable = {os.path.abspath(e.path): e for e in entries if e.size <= max_bytes}
        rows = self._dataset(list(readable)) if readable else iter(())
        arrived: dict[str, Any] = {}
        for entry in entries:
            key = os.path.abspath(entry.path)
            if key not in readable:  # quarantined unread, as convert_path does
                yield entry, Failed(entry.path, None, file_too_large(entry.size))
                continue
            while key not in arrived:
                row = next(rows, None)
                if row is None:  # gone between planning and reading
                    arrived[key] = Failed(
                        entry.path, None, "cannot read: No such file or directory"
                    )
                    break
                arrived[str(row["path"])] = pickle.loads(row["item"])
            outcome = arrived.pop(key)
            if isinstance(outcome, Failed):
                yield entry, outcome
            else:
                converted, chunks = outcome
                replaces = self.index.document(entry.source) is not None
                yield Pending(entry, converted, chunks, replaces)

    def _dataset(self, paths: list[str]) -> Iterator[dict[str, Any]]:
        """Ray Data reads ``paths`` and converts and chunks each file in a task."""
        ray = import_ray()
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.execution_options.preserve_order = True
        ds = ray.data.read_binary_files(
            paths,
            include_paths=True,
            ignore_missing_paths=True,
            override_num_blocks=len(paths),  # one file per block: documents stream one by one
        )
        ds = ds.map_batches(
            convert_and_chunk,
            batch_size=1,
            fn_kwargs={"spec": self.spec},
            # What the task's conversion child may take (its address-space limit), reserved
            # with the scheduler so a node never runs more conversions than it can hold.
            memory=self.settings.memory_mb * 2**20,
            **_fault_env(),
        )
        return iter(ds.iter_rows())


def _fault_env() -> dict[str, Any]:
    """Fault points reach the workers too (a test parks an encoder actor and kills it)."""
    faults = {k: os.environ[k] for k in (FAULT_ENV, SIGNAL_ENV) if k in os.environ}
    return {"runtime_env": {"env_vars": faults}} if faults else {}


class EncoderPool:
    """``ingest.ray_encoders`` encoder actors fed the local engine's encoder batches.

    Documents are grouped as the local ``Batcher`` groups them (until a group holds
    ``EMBED_BATCH_CHUNKS`` chunks), so every encoder call reads what a local run's would, and
    the vectors are the local run's. Up to two groups per actor are in flight while the driver
    writes earlier ones, in order. An actor that dies is restarted by Ray and its call retried.
    """

    def __init__(self, spec: PrepSpec, settings: IngestSettings) -> None:
        ray = import_ray()
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < settings.ray_encoders + 1:
            # Each actor holds a CPU for the whole run; conversion tasks would wait forever.
            raise RayUnavailable(
                f"the cluster has {cpus:g} CPUs: {settings.ray_encoders} encoder actors "
                "(ingest.ray_encoders) and the conversion tasks need at least one more"
            )
        remote = ray.remote(
            num_cpus=1,
            num_gpus=settings.ray_num_gpus,
            max_restarts=-1,
            max_task_retries=-1,
        )(Encoder)
        self._ray = ray
        self._actors = [
            remote.options(**_fault_env()).remote(spec) for _ in range(settings.ray_encoders)
        ]
        self._next = 0
        self._inflight: deque[tuple[list[Pending], Any]] = deque()

    def embedded(self, items: Iterable[Item]) -> Iterator[Item]:
        """``items`` with each ``Pending`` embedded; failures pass straight through."""
        group: list[Pending] = []
        for item in items:
            if isinstance(item, tuple):
                yield item
                continue
            group.append(item)
            if sum(len(p.chunks) for p in group) >= EMBED_BATCH_CHUNKS:
                yield from self._submit(group)
                group = []
        if group:
            yield from self._submit(group)
        while self._inflight:
            yield from self._collect()

    def _submit(self, group: list[Pending]) -> Iterator[Pending]:
        actor = self._actors[self._next % len(self._actors)]
        self._next += 1
        docs = [(p.converted.document.title, p.chunks) for p in group]
        self._inflight.append((group, actor.embed.remote(docs)))
        if len(self._inflight) > 2 * len(self._actors):
            yield from self._collect()

    def _collect(self) -> Iterator[Pending]:
        group, ref = self._inflight.popleft()
        texts, vectors = self._ray.get(ref)
        offset = 0
        for p, doc_texts in zip(group, texts, strict=True):
            n = len(p.chunks)
            yield replace(p, embedded=(doc_texts, vectors[offset : offset + n]))
            offset += n

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
