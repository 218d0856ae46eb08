"""Where the runs of a sweep execute: any ``concurrent.futures.Executor``.

- ``None`` / ``"local"``: a ``ProcessPoolExecutor`` sized to the machine (``workers`` overrides);
  its processes start from a fork server that has tradekit imported already.
- ``"dask://HOST:PORT"``: a ``distributed.Client`` to that scheduler, through its
  ``get_executor()`` (the ``dask`` extra).
- ``"ray"`` (a local Ray, or the cluster in ``RAY_ADDRESS``) or ``"ray://HOST:PORT"`` (Ray
  Client): :class:`RayExecutor`, a ``concurrent.futures`` face of Ray tasks (the ``ray`` extra).
- an ``Executor`` object (or a ``distributed.Client``): used as it is and left open.

dask and ray are imported only when asked for.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import multiprocessing
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from ..errors import ConfigError

__all__ = ["ExecutorHandle", "RayExecutor", "cpu_count", "resolve_executor"]

T = TypeVar("T")

_ALLOWED = "local, dask://HOST:PORT, ray, ray://HOST:PORT or a concurrent.futures.Executor"


def cpu_count() -> int:
    """CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class ExecutorHandle:
    """An executor and how to treat it: ``label`` for people; ``close()`` releases what the
    sweep created (nothing for an executor given by the caller), waiting for running tasks when
    its argument is true; ``renew()`` (local pools only)
    replaces a pool broken by a dead worker process; ``inflight``: at most this many runs
    submitted at a time (None: all at once)."""

    executor: cf.Executor
    label: str
    close: Callable[[bool], None]
    renew: Callable[[], cf.Executor] | None = None
    owned: bool = False
    inflight: int | None = None


def _need(module: str, extra: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(
            f'the {what} executor needs {module} ({e}): pip install "tradekit[{extra}]"',
            key="executor",
        ) from None


def _mp_context() -> Any:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["tradekit.sweep.worker", "tradekit.feeds"])
        return ctx
    return multiprocessing.get_context("spawn")  # pragma: no cover - not POSIX


def local_pool(workers: int) -> cf.ProcessPoolExecutor:
    """A process pool of ``workers`` processes."""
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context())


class RayExecutor(cf.Executor):
    """``concurrent.futures.Executor`` over Ray tasks: ``submit(fn, *args)`` runs
    ``ray.remote(fn)`` (one CPU a task; Ray retries tasks of dead workers ``max_retries``
    times) and returns the ``concurrent.futures.Future`` of its ``ObjectRef``.
    ``shutdown(cancel_futures=True)`` cancels the tasks not finished. Ray itself must be
    initialised (``ray.init``) by the caller."""

    def __init__(self, ray: Any = None, *, num_cpus: float = 1, max_retries: int = 3) -> None:
        self._ray = ray if ray is not None else importlib.import_module("ray")
        self._options = {"num_cpus": num_cpus, "max_retries": max_retries}
        self._remote: dict[Any, Any] = {}
        self._pending: dict[cf.Future[Any], Any] = {}
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> cf.Future[T]:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            remote = self._remote.get(fn)
            if remote is None:
                remote = self._remote[fn] = self._ray.remote(**self._options)(fn)
        ref = remote.remote(*args, **kwargs)
        fut: cf.Future[T] = ref.future()
        with self._lock:
            self._pending[fut] = ref
        fut.add_done_callback(self._forget)
        return fut

    def _forget(self, fut: cf.Future[Any]) -> None:
        with self._lock:
            self._pending.pop(fut, None)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            pending = dict(self._pending)
        if cancel_futures:
            for fut, ref in pending.items():
                fut.cancel()
                try:
                    self._ray.cancel(ref)
                except Exception:  # already finished or gone
                    pass
        if wait:
            cf.wait([f for f in pending if not f.cancelled()])


def _dask(address: str) -> ExecutorHandle:
    distributed = _need("distributed", "dask", "dask")
    client = distributed.Client(address, set_as_default=False)
    executor = client.get_executor(pure=False)

    def close(wait: bool) -> None:
        # ClientExecutor.shutdown has no cancel_futures; closing the client releases every task
        executor.shutdown(wait=False)
        client.close()

    return ExecutorHandle(executor, f"dask {address}", close, owned=True)


def _ray(address: str | None, workers: int | None) -> ExecutorHandle:
    ray = _need("ray", "ray", "ray")
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"ignore_reinit_error": True}
        if address:
            kw["address"] = address
        elif workers and not os.environ.get("RAY_ADDRESS"):
            kw["num_cpus"] = workers
        ray.init(**kw)
        started = True
    executor = RayExecutor(ray)

    def close(wait: bool) -> None:
        executor.shutdown(wait=False, cancel_futures=True)
        if started:
            ray.shutdown()

    return ExecutorHandle(executor, f"ray {address or 'local'}", close, owned=True)


def resolve_executor(spec: Any, workers: int | None, n_tasks: int) -> ExecutorHandle:
    """The executor named by ``spec`` (see the module's docstring)."""
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise ConfigError(f"workers must be a whole number >= 1, not {workers!r}", key="workers")
    if isinstance(spec, cf.Executor):
        return ExecutorHandle(spec, type(spec).__name__, lambda wait: None)
    if not isinstance(spec, str | None) and callable(getattr(spec, "get_executor", None)):
        executor = spec.get_executor(pure=False)  # a distributed.Client
        return ExecutorHandle(executor, f"dask {getattr(spec, 'scheduler', '')}", lambda wait: None)
    if spec is None or spec == "local":
        n = max(1, min(workers or cpu_count(), max(n_tasks, 1)))
        state = {"pool": local_pool(n)}

        def renew() -> cf.Executor:
            state["pool"].shutdown(wait=False, cancel_futures=True)
            state["pool"] = local_pool(n)
            return state["pool"]

        def close(wait: bool) -> None:
            pool = state["pool"]
            if wait:
                pool.shutdown(wait=True, cancel_futures=True)
                return
            # interrupted: stop the runs in progress and the ones queued to the processes too
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
            for proc in procs:
                proc.join(timeout=2)

        label = f"local ({n} worker{'s' if n != 1 else ''})"
        return ExecutorHandle(state["pool"], label, close, renew, owned=True, inflight=2 * n)
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("dask://"):
            rest = text[len("dask://") :].strip("/")
            if not rest:
                raise ConfigError(f"{spec!r}: give dask://HOST:PORT", key="executor")
            return _dask(f"tcp://{rest}")
        if text.startswith(("tcp://", "tls://")):
            return _dask(text)
        if text == "ray":
            return _ray(None, workers)
        if text.startswith("ray://"):
            return _ray(text, workers)
    raise ConfigError(f"unknown executor {spec!r}; allowed: {_ALLOWED}", key="executor")
