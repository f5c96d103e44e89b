"""Process-level settings for a long-running process that builds pages (the app)."""

from __future__ import annotations

import gc
import logging
import multiprocessing
import sys
import threading
import types
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

T = TypeVar("T")
logger = logging.getLogger(__name__)

_frozen = False


def freeze_startup_objects() -> None:
    """Put every object alive now (what the imports and the first script run left:
    modules, classes, constants) out of the cyclic garbage collector's reach, once per
    process (a few garbage cycles of that first run stay uncollected: bounded, small).

    Its full collections otherwise walk those hundreds of thousands of objects again and
    again while a page allocates its statements and frames: measured at a third of the
    CPU time of a small page. Objects created later are collected as usual."""
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True


# --- a warm worker process for the detectors' arithmetic -------------------------------
#
# A page's Python work runs under one GIL, so its threads share one core; the insight
# feed's trend tests (Mann-Kendall and Theil-Sen over each watched metric's days) are pure
# arithmetic on small series that need nothing from the page but the series. In a long-
# running process (the app) they go to one warm worker process on another core while the
# page's own thread scores the anomalies. Started explicitly, by the app process: a one-off
# command (``analytics export``) or a test computes inline rather than pay for a process
# it would use once.

_worker: ProcessPoolExecutor | None = None
_worker_ready: Future[None] | None = None
_worker_lock = threading.Lock()
# Set when the worker could not start: this process computes inline from then on.
_FAILED: Future[None] = Future()


def _warm_up() -> None:
    # The imports a trend test needs, done before the first real task.
    import pymannkendall  # noqa: F401
    import scipy.stats  # noqa: F401

    import analytics_core.insights.trends  # noqa: F401


def start_worker() -> None:
    """Start the worker process (once per process; it warms up in the background)."""
    global _worker, _worker_ready
    with _worker_lock:
        if _worker is not None or _worker_ready is _FAILED:
            return
        # forkserver: workers fork from a fresh, single-threaded server, never from this
        # process's threads (the app's server holds several); spawn where there is none.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        _worker = ProcessPoolExecutor(max_workers=1, mp_context=context)
        # A new process re-runs this one's __main__ by its path unless it is guarded by
        # ``if __name__ == "__main__"``; under Streamlit __main__ is the app's own script
        # (and under AppTest a temporary one). The worker needs nothing from it: while
        # the first submit starts the process (synchronously), __main__ is an empty module.
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            _worker_ready = _worker.submit(_warm_up)
        finally:
            if main is not None:
                sys.modules["__main__"] = main


def stop_worker() -> None:
    """Stop the worker process, if started (tests; the interpreter does it at exit)."""
    global _worker, _worker_ready
    with _worker_lock:
        worker, _worker, _worker_ready = _worker, None, None
    if worker is not None:
        worker.shutdown(wait=True, cancel_futures=True)


def offload(fn: Callable[..., T], *args: object) -> Future[T]:
    """``fn(*args)`` on the worker process when it is started and warm, else at once in
    this thread (the future is then already done). ``fn`` and its arguments must pickle:
    a module-level function of plain values. A worker that died is replaced (the call runs
    here meanwhile); one that cannot start is given up for this process, with a warning."""
    worker, ready = _worker, _worker_ready
    if worker is None or ready is None or not ready.done():
        return _run_here(fn, *args)
    if ready.exception() is not None:
        _give_up(ready.exception())
        return _run_here(fn, *args)
    try:
        return _guarded(worker.submit(fn, *args), fn, args)
    except BrokenProcessPool:  # the worker died since the last call: a fresh one
        stop_worker()
        start_worker()
        return _run_here(fn, *args)


def _give_up(error: BaseException | None) -> None:
    global _worker, _worker_ready
    with _worker_lock:
        worker, _worker, _worker_ready = _worker, None, _FAILED
    if worker is not None:
        logger.warning("detector worker process did not start (%s); computing inline", error)
        worker.shutdown(wait=False, cancel_futures=True)


def _guarded(future: Future[T], fn: Callable[..., T], args: tuple) -> Future[T]:
    """``future``, or the call made here if the worker process died under it."""
    out: Future[T] = Future()

    def settle(done: Future[T]) -> None:
        error = done.exception()
        if isinstance(error, BrokenProcessPool):
            local = _run_here(fn, *args)
            error, value = local.exception(), None if local.exception() else local.result()
        else:
            value = None if error else done.result()
        if error is not None:
            out.set_exception(error)
        else:
            out.set_result(value)  # type: ignore[arg-type]

    future.add_done_callback(settle)
    return out


def _run_here(fn: Callable[..., T], *args: object) -> Future[T]:
    done: Future[T] = Future()
    try:
        done.set_result(fn(*args))
    except Exception as exc:  # re-raised by result(), as from the worker
        done.set_exception(exc)
    return done
