"""Process-level cache of compiled nutpie models, keyed by the model's graph.

Compiling a PyMC model for nutpie (PyTensor graph rewrites, then Numba)
costs more than sampling it. Every model of :mod:`simengine.fitting`
takes its data through ``pm.Data`` containers, so two fits whose graphs are
the same *apart from the containers' values* (the next origin of a backtest,
the next replication of an SBC run, a warm refit) can share one compiled
model: :meth:`CompiledModelCache.get` returns the cached one with the new
values (``compiled.with_data``), which samples bitwise like a fresh
compilation of the new model with the same seed (tested).

The key is :func:`graph_signature`: a SHA-256 over the model's log density,
deterministics, variable names, dims and coords, in which every constant
enters by its bytes and every data container by its name, dtype and rank
only (never its values or shape). So anything that changes the compiled
graph (priors, cells, which levels are centred, drift periods) is a miss,
and nothing else is. The choices that vary between data sets of one shape
(the conversion drift steps' and the arrival walk's centring) are data
containers, so they are not part of the key. The cache is a small LRU (:data:`MAX_ENTRIES` entries);
its hits and misses are counted (:meth:`CompiledModelCache.info`) and logged
on the ``simengine.fitting`` logger.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from typing import Any, NamedTuple

import numpy as np
import pymc as pm
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.traversal import io_toposort

__all__ = ["CACHE", "MAX_ENTRIES", "CacheInfo", "CompiledModelCache", "graph_signature"]

MAX_ENTRIES = 6
"""Compiled models kept per process (two fits' worth of the three parts)."""

log = logging.getLogger("simengine.fitting")


class CacheInfo(NamedTuple):
    """Counters of a :class:`CompiledModelCache` (like ``functools.lru_cache``)."""

    hits: int
    misses: int
    size: int
    maxsize: int


def _root(v: Variable) -> tuple[Any, ...]:
    """Signature of a graph input: constants by value, data by name and type only."""
    if isinstance(v, Constant):
        data = v.data
        if isinstance(data, np.ndarray):
            arr = np.ascontiguousarray(data)
            digest = hashlib.sha256(arr.tobytes()).hexdigest()
            return ("const", str(arr.dtype), arr.shape, digest)
        return ("const", type(data).__name__, repr(data))
    if isinstance(v, SharedVariable):
        # values (and, for tensors, the shape) are data: not part of the key
        return ("shared", v.name, str(v.type))
    return ("input", v.name, str(v.type))


def graph_signature(model: pm.Model) -> str:
    """Return a key that two models share iff their compiled nutpie models agree.

    Parameters
    ----------
    model : pymc.Model
        A model whose data enter through ``pm.Data``.

    Returns
    -------
    str
        Hex SHA-256 of the graph of the model's log density (with Jacobians)
        and deterministics: every node's op and types, the constants' bytes,
        the data containers' names and types, plus variable names, dims and
        coords.
    """
    outputs = [model.logp(), *model.deterministics]
    ids: dict[Variable, int] = {}
    h = hashlib.sha256()

    def ref(v: Variable) -> int:
        if v not in ids:
            ids[v] = len(ids)
            if v.owner is None:
                h.update(repr(("root", ids[v], _root(v))).encode())
        return ids[v]

    for node in io_toposort([], outputs):
        ins = [ref(i) for i in node.inputs]
        outs = [ref(o) for o in node.outputs]
        h.update(repr((str(node.op), ins, outs, [str(o.type) for o in node.outputs])).encode())
    h.update(repr([ref(o) for o in outputs]).encode())
    names = (
        [v.name for v in model.free_RVs],
        [v.name for v in model.value_vars],
        [v.name for v in model.deterministics],
        [v.name for v in model.potentials],
        sorted((k, tuple(d)) for k, d in model.named_vars_to_dims.items()),
        sorted((k, tuple(map(str, c))) for k, c in model.coords.items() if c is not None),
    )
    h.update(repr(names).encode())
    return h.hexdigest()


class CompiledModelCache:
    """LRU cache of nutpie-compiled models keyed by :func:`graph_signature`.

    Parameters
    ----------
    maxsize : int
        Entries kept; the least recently used is dropped first.
    """

    def __init__(self, maxsize: int = MAX_ENTRIES) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._entries: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def get(self, model: pm.Model, *, label: str = "") -> Any:
        """Return a compiled nutpie model of ``model`` with ``model``'s data.

        Parameters
        ----------
        model : pymc.Model
            The model, with this fit's data in its ``pm.Data`` containers.
        label : str
            Name for the log line (e.g. the model part).

        Returns
        -------
        nutpie.compiled_pyfunc.CompiledPyMCModel
            The cached compilation with ``with_data`` applied on a hit, a fresh
            compilation (then cached) on a miss.
        """
        import nutpie

        key = graph_signature(model)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                self._hits += 1
        if cached is not None:
            values = {v.name: v.get_value(borrow=True) for v in model.data_vars}
            missing = set(cached.shared_data) - set(values)
            if missing:  # a shared variable that is not a pm.Data: cannot refresh it
                raise RuntimeError(f"compiled model has data {sorted(missing)} the model lacks")
            log.info("compiled model reused: %s (%s)", label or "model", key[:12])
            return cached.with_data(**{k: values[k] for k in cached.shared_data})
        compiled = nutpie.compile_pymc_model(model)
        with self._lock:
            self._misses += 1
            self._entries[key] = compiled
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        log.info("model compiled: %s (%s)", label or "model", key[:12])
        return compiled

    def info(self) -> CacheInfo:
        """Return hits, misses, current size and maximum size."""
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._entries), self.maxsize)

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        with self._lock:
            self._entries.clear()
            self._hits = 0
            self._misses = 0


CACHE = CompiledModelCache()
"""The process's cache, used by :func:`simengine.fitting.fit.sample_model`."""
