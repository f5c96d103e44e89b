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
# feed's anomaly scores and trend tests are pure arithmetic on small series that need
# nothing from the page but the series. In a long-running process (the app) they go to
# one warm worker process on another core while the page's threads wait for the database
# and write the stories. Started explicitly, by the app process: a one-off command
# (``analytics export``) or a test computes inline rather than pay for a process it would
# use once.

_worker: ProcessPoolExecutor | None = None
_worker_ready: Future[None] | None = None
_worker_lock = threading.Lock()
_failed_starts = 0
# A worker that dies before it is warm this many times in a row is given up: from then on
# this process computes inline (an import that fails, memory too short for a process).
MAX_FAILED_STARTS = 3


def _warm_up() -> None:
    # The imports the worker's calls need, done before the first real one.
    import pymannkendall  # noqa: F401
    import scipy.stats  # noqa: F401

    import analytics_core.insights.stories.anomaly  # noqa: F401
    import analytics_core.insights.trends  # noqa: F401


def start_worker() -> None:
    """Start the worker process (once per process; it warms up in the background)."""
    with _worker_lock:
        _start()


def _start() -> None:
    global _worker, _worker_ready
    if _worker is not None or _failed_starts >= MAX_FAILED_STARTS:
        return
    # forkserver: workers fork from a fresh, single-threaded server, never from this
    # process's threads (the app's server holds several); spawn where there is none.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    _worker = ProcessPoolExecutor(max_workers=1, mp_context=context)
    # A new process re-runs this one's __main__ by its path unless it is guarded by
    # ``if __name__ == "__main__"``; under Streamlit __main__ is the app's own script (and
    # under AppTest a temporary one). The worker needs nothing from it: while the first
    # submit starts the process (synchronously), __main__ is an empty module; put back
    # unless a script run has set its own meanwhile.
    main, empty = sys.modules.get("__main__"), types.ModuleType("__main__")
    sys.modules["__main__"] = empty
    try:
        _worker_ready = _worker.submit(_warm_up)
    finally:
        if main is not None and sys.modules.get("__main__") is empty:
            sys.modules["__main__"] = main


def stop_worker() -> None:
    """Stop the worker process, if started, and forget past failures (tests; the
    interpreter stops it at exit)."""
    global _worker, _worker_ready, _failed_starts
    with _worker_lock:
        worker, _worker, _worker_ready, _failed_starts = _worker, None, None, 0
    if worker is not None:
        worker.shutdown(wait=True)


def offload(fn: Callable[..., T], *args: object) -> Future[T]:
    """``fn(*args)`` on the worker process when it is started and warm, else at once in
    this thread (the future is then already done). ``fn`` and its arguments must pickle:
    a module-level function of plain values. A call the worker cannot answer because it
    died runs here; the dead worker is replaced."""
    global _failed_starts
    worker, ready = _worker, _worker_ready
    if worker is None or ready is None or not ready.done():
        return run_now(fn, *args)
    if ready.cancelled() or ready.exception() is not None:
        with _worker_lock:
            if _worker is worker:  # not replaced by another thread meanwhile
                _failed_starts += 1
                if _failed_starts >= MAX_FAILED_STARTS:
                    logger.warning(
                        "detector worker process did not start (%s); computing inline",
                        None if ready.cancelled() else ready.exception(),
                    )
                _replace(worker)
        return run_now(fn, *args)
    _failed_starts = 0
    try:
        return _guarded(worker.submit(fn, *args), fn, args)
    except BrokenProcessPool:  # it died since the last call
        with _worker_lock:
            if _worker is worker:
                _replace(worker)
        return run_now(fn, *args)


def _replace(dead: ProcessPoolExecutor) -> None:
    """A fresh worker for ``dead`` (the current one); the caller holds the lock."""
    global _worker, _worker_ready
    _worker, _worker_ready = None, None
    dead.shutdown(wait=False)  # a dead pool has nothing left to wait for
    _start()


def _guarded(future: Future[T], fn: Callable[..., T], args: tuple) -> Future[T]:
    """``future``, or the call made here if the worker process died under it."""
    out: Future[T] = Future()

    def settle(done: Future[T]) -> None:
        if done.cancelled() or isinstance(done.exception(), BrokenProcessPool):
            done = run_now(fn, *args)
        error = done.exception()
        if error is not None:
            out.set_exception(error)
        else:
            out.set_result(done.result())

    future.add_done_callback(settle)
    return out


def run_now(fn: Callable[..., T], *args: object) -> Future[T]:
    """``fn(*args)`` run at once, as a finished future: the in-turn counterpart of a
    pool's ``submit`` (its exception is re-raised by ``result()``, as from a thread)."""
    future: Future[T] = Future()
    try:
        future.set_result(fn(*args))
    except BaseException as exc:
        future.set_exception(exc)
    return future
