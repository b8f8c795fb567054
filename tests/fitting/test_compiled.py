"""Compiled-model reuse: the graph key, bitwise-equal refits, hits and LRU bounds."""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import replace

import numpy as np
import pytest

from simengine.fitting import conversion, deal_size
from simengine.fitting._compiled import CompiledModelCache, graph_signature
from simengine.fitting.data import build_data
from simengine.fitting.fit import compiled_cache_info, sample_model
from simengine.fitting.priors import DEFAULT_PRIORS

AS_OF = dt.date(2026, 1, 5)
SAMPLE = {"draws": 60, "tune": 60, "chains": 2, "target_accept": 0.9, "progress_bar": False}


@pytest.fixture(scope="module")
def one_cell(records_factory, spec_factory):
    """One cell, no drift: two as-of dates a week apart share the model's structure."""
    df, _ = records_factory(
        3, history_days=240, segments=("ent",), channels=("ads",), weekly_rate=8.0
    )
    spec = spec_factory(drift=False)
    return [build_data(df, spec, AS_OF - dt.timedelta(days=d)) for d in (7, 0)]


def _two_cells(d):
    """``d``'s deal statistics in two cells (a one-cell deal-size model has no cell level)."""
    return replace(
        d,
        cells=("ent/ads", "ent/web"),
        cell_segment=np.zeros(2, np.int64),
        deal_n=np.repeat(d.deal_n, 2),
        deal_sum_log=np.repeat(d.deal_sum_log, 2),
        deal_sum_log2=np.repeat(d.deal_sum_log2, 2),
    )


def test_signature_ignores_data_values_and_sees_structure(one_cell):
    a, b = one_cell
    # different statistics and a different number of open groups ...
    assert a.open_count.size != b.open_count.size
    assert not np.array_equal(a.n_converted, b.n_converted)
    # ... same graph: the same key, and the key is stable across builds
    key = graph_signature(conversion.build_model(b))
    assert graph_signature(conversion.build_model(a)) == key
    assert graph_signature(conversion.build_model(b)) == key
    # a prior, a centring decision or the cells change the graph
    wider = replace(DEFAULT_PRIORS, conversion_logit_sd=DEFAULT_PRIORS.conversion_logit_sd * 2)
    assert graph_signature(conversion.build_model(b, wider)) != key
    few = _two_cells(replace(b, deal_n=np.minimum(b.deal_n, deal_size.CENTRED_MIN_DEALS - 1)))
    many = _two_cells(replace(b, deal_n=np.maximum(b.deal_n, deal_size.CENTRED_MIN_DEALS)))
    count = deal_size.CENTRED_MIN_DEALS  # the count rule (an expert override)
    assert graph_signature(deal_size.build_model(few, centred_min_deals=count)) != graph_signature(
        deal_size.build_model(many, centred_min_deals=count)
    )
    # centred_min_deals = inf samples every cell non-centred: the graph of cells
    # that all have too few deals to be centred
    assert graph_signature(
        deal_size.build_model(many, centred_min_deals=math.inf)
    ) == graph_signature(deal_size.build_model(few, centred_min_deals=count))
    renamed = replace(b, cells=("ent/web",))
    assert graph_signature(conversion.build_model(renamed)) != key


def test_cache_hit_samples_bitwise_like_a_fresh_compile(one_cell, caplog):
    import nutpie

    a, b = one_cell
    cache = CompiledModelCache(maxsize=2)
    with caplog.at_level(logging.INFO, logger="simengine.fitting"):
        cache.get(conversion.build_model(a), label="conversion")  # compiles (miss)
        reused = cache.get(conversion.build_model(b), label="conversion")  # a's, with b's data
    assert tuple(cache.info()) == (1, 1, 1, 2)
    assert any("compiled model reused: conversion" in r.getMessage() for r in caplog.records)
    fresh = nutpie.compile_pymc_model(conversion.build_model(b))
    via_cache = nutpie.sample(reused, seed=17, **SAMPLE)["posterior"]
    direct = nutpie.sample(fresh, seed=17, **SAMPLE)["posterior"]
    for name in conversion.OUTPUT_VARS:
        np.testing.assert_array_equal(via_cache[name].values, direct[name].values)
    # the reused model really carries b's data: a's compilation alone samples otherwise
    first = cache.get(conversion.build_model(a))
    other = nutpie.sample(first, seed=17, **SAMPLE)["posterior"]
    assert not np.array_equal(other["conversion"].values, direct["conversion"].values)


def test_lru_keeps_at_most_maxsize_models(one_cell):
    _, b = one_cell
    few = _two_cells(replace(b, deal_n=np.minimum(b.deal_n, deal_size.CENTRED_MIN_DEALS - 1)))
    many = _two_cells(replace(b, deal_n=np.maximum(b.deal_n, deal_size.CENTRED_MIN_DEALS)))
    count = deal_size.CENTRED_MIN_DEALS
    cache = CompiledModelCache(maxsize=1)
    cache.get(deal_size.build_model(many, centred_min_deals=count))
    cache.get(deal_size.build_model(few, centred_min_deals=count))  # another graph: evicts
    assert tuple(cache.info()) == (0, 2, 1, 1)
    cache.get(deal_size.build_model(few, centred_min_deals=count))
    cache.get(deal_size.build_model(many, centred_min_deals=count))  # evicted: compiled again
    assert tuple(cache.info()) == (1, 3, 1, 1)
    cache.clear()
    assert tuple(cache.info()) == (0, 0, 0, 1)
    with pytest.raises(ValueError, match="maxsize"):
        CompiledModelCache(maxsize=0)


def test_sample_model_uses_the_process_cache(one_cell):
    a, b = one_cell
    assert graph_signature(deal_size.build_model(a)) == graph_signature(deal_size.build_model(b))
    before = compiled_cache_info()
    runs = [
        sample_model(
            deal_size.build_model(d), draws=30, tune=30, chains=2, target_accept=0.9, seed=3
        )["posterior"]["deal_size_mu"].values
        for d in (a, b)
    ]
    after = compiled_cache_info()
    assert after.hits >= before.hits + 1  # the second fit reused the first's compilation
    assert after.size <= after.maxsize
    assert not np.array_equal(runs[0], runs[1])  # with its own data
