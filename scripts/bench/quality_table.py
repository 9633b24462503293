#!/usr/bin/env python3
"""Quality of models on every labelled set of ../shared/data, Rust next to each model's Python reference
(onad 0.3.0 for onad's models, aberrant 1.3.0 or river 0.26.1 for the others; `Model.library`), and next
to the same model in a further library that has it (river 0.26.1, pysad 0.7.0; one MODELS entry per
library, at onad's parameters).

Usage (from the workspace root; build the Rust side first with
`cargo build --release -p onad-models --example scores`):
    /tmp/pyref/bin/python scripts/bench/quality_table.py [--rust BIN] [--data DIR] [--work DIR]
        [--models a,b] [--sets a,b] [--budget-seconds S] [--max-rows N] [--seeds 1,2,3] [--resume]

For every (model, data set) pair both libraries run prequentially (score then learn every row, in file
order) with the same parameters (the registry's defaults, which are onad's; see MODELS) and the same seeds,
on the same rows; both sides' scores go through quality.py's metrics (ROC-AUC with ties counted half,
average precision), and each side's rows/s is reported with their ratio.

Rows and seeds. The Python side runs seed 1 first, stopping when the pair's budget (--budget-seconds, loop
time) runs out: the rows it got through are the prefix both sides are compared on. It runs the next seeds
while they fit in what is left of the budget. The Rust side always runs every seed on that prefix, and
also on all the rows when the prefix is shorter (a model's `max_rows` caps both sides, e.g. for memory).
--max-rows N caps every pair to its first N rows. A model without a seed runs once per side.

Data sets (DIR = ../shared/data by default; reference-only files are read there and never copied into the
repository): the prepared CSVs (numeric features, the label last) go to --work (/tmp/onad-quality).
  shuttle_odds, shuttle_full_statlog (`class` dropped), glass_odds, breastw_odds, spambase, ts_mitdb_ecg
  (`value`; `t` dropped), creditcard_ulb_sample, kdd99_http, kdd99_smtp, skab (8 sensors; experiment,
  datetime, changepoint dropped), nab_known_cause (one run per `series` on `value`; the table adds their
  mean), smd_machine-2-1 (38 features; train then test in order, metrics on the test rows only).
  edges_synthetic: an edge stream (`src,dst,t` then the label), written by the Rust example `edge_stream`
  (onad_models::graph::generator: a Zipf background over 1,000 nodes, 200 edges per time bucket, injected
  bursts, dense subgraphs and new-edge storms, about 1.5 % of the edges), 100,000 edges for each of the
  generator seeds 1, 2, 3 (one part per seed; the table adds their mean). Only edge models (`Model.edges`)
  run on it, and edge models run on nothing else.

Output: target/bench/quality.json (every run, per seed) and target/bench/quality.md (one table per model),
rewritten after each pair; with --resume, pairs already in quality.json are kept and not run again.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core for faiss and numpy: the machine is shared
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import quality  # noqa: E402  (stubs torch)
from quality import log  # noqa: E402

import numpy as np  # noqa: E402

ROOT = HERE.parent.parent


# --------------------------------------------------------------------------- models
def _knn(seed, d):
    from onad.model.distance.knn import KNN
    from onad.utils.similar.faiss_engine import FaissSimilaritySearchEngine

    return KNN(k=55, similarity_engine=FaissSimilaritySearchEngine(window_size=250, warm_up=55))


def _asd(seed, d):
    from onad.model.iforest.asd import ASDIsolationForest

    return ASDIsolationForest(seed=seed)


def _online(seed, d):
    from onad.model.iforest.online import OnlineIsolationForest

    np.random.seed(seed)  # onad's OnlineIsolationForest has no seed; it draws from numpy's global generator
    return OnlineIsolationForest()


def _rand_hist(seed, d):
    from onad.model.iforest.rand_hist import StreamRandomHistogramForest

    return StreamRandomHistogramForest(seed=seed)


def _mondrian(seed, d):
    from onad.model.iforest.mondrian import MondrianForest

    return MondrianForest(seed=seed)


def _gadget(seed, d):
    from onad.model.svm.gadget import GADGETSVM

    return GADGETSVM()


def _adaptive_svm(seed, d):
    from onad.model.svm.adaptive import IncrementalOneClassSVMAdaptiveKernel

    return IncrementalOneClassSVMAdaptiveKernel(seed=seed)


def _autoencoder(seed, d):
    import torch

    if str(getattr(torch, "__version__", "")).endswith("stub"):
        raise Unavailable("onad's Autoencoder needs torch; this environment has the stub only")
    from onad.model.deep.autoencoder import Autoencoder
    from onad.utils.deep.architecture import VanillaAutoencoder

    arch = VanillaAutoencoder(input_size=d, seed=seed)
    return Autoencoder(model=arch, optimizer=torch.optim.Adam(arch.parameters()), criterion=torch.nn.MSELoss())


def _mstream(seed, d):
    from aberrant.model.sketch.mstream import MStream

    return MStream(seed=seed)


def _random_cut(seed, d):
    from aberrant.model.iforest.random_cut import RandomCutForest

    return RandomCutForest(n_trees=40, sample_size=256, shingle_size=1, warmup_samples=None,
                           normalize_score=False, score_scale=8.0, seed=seed)


def _half_space(seed, d):
    from aberrant.model.iforest import HalfSpaceTrees
    from aberrant.transform.preprocessing import MinMaxScaler

    # aberrant's HalfSpaceTrees draws its work space from [0, 1]; its own documented use puts its online
    # MinMaxScaler in front (the Rust side runs on the raw rows and learns the work space itself).
    return _ScoreZeroFirst(MinMaxScaler() | HalfSpaceTrees(seed=seed))


class _ScoreZeroFirst:
    """Scores 0.0 before the first learned row (aberrant's scaler refuses a row before it learned one)."""

    def __init__(self, model):
        self.model, self.learned = model, False

    def score_one(self, x):
        return self.model.score_one(x) if self.learned else 0.0

    def learn_one(self, x):
        self.model.learn_one(x)
        self.learned = True


def _rs_hash(seed, d):
    from aberrant.model.sketch import StreamingRSHash

    return StreamingRSHash(seed=seed)


def _loda(seed, d):
    from aberrant.model.sketch.loda import StreamingLODA

    return StreamingLODA(seed=seed)


class _PySAD:
    """A pysad model behind score_one / learn_one on dict rows (pysad's fit_partial / score_partial take one
    numpy row); 0.0 before its first learned row when it cannot score yet, as onad scores an empty model."""

    def __init__(self, model):
        self.model, self.learned = model, False

    def score_one(self, x):
        row = np.fromiter(x.values(), dtype=float, count=len(x))
        if self.learned:
            return float(self.model.score_partial(row))
        try:
            return float(self.model.score_partial(row))
        except Exception:  # noqa: BLE001  (most pysad models fail before their first fit)
            return 0.0

    def learn_one(self, x):
        self.model.fit_partial(np.fromiter(x.values(), dtype=float, count=len(x)))
        self.learned = True


def _river_half_space(seed, d):
    from river import anomaly, preprocessing

    # river's HalfSpaceTrees assumes features in [0, 1] without `limits`; its documented use puts its
    # MinMaxScaler in front (as aberrant's).
    return _ScoreZeroFirst(preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(n_trees=10, height=8,
                                                                                 window_size=250, seed=seed))


def _river_loda(seed, d):
    from river import anomaly

    # onad's (aberrant's) defaults: 100 projections, 32 bins.
    return anomaly.LODA(n_bins=32, n_random_cuts=100, seed=seed)


def _pysad_xstream(seed, d):
    from pysad.models import xStream

    return _PySAD(xStream(num_components=100, n_chains=100, depth=15, window_size=256, random_state=seed))


def _pysad_kitnet(seed, d):
    from pysad.models import KitNet

    # onad's (aberrant's) defaults: at most 10 inputs per autoencoder, 5,000 rows of feature mapping, then
    # 50,000 of training.
    return _PySAD(KitNet(max_size_ae=10, grace_feature_mapping=5000, grace_anomaly_detector=50000,
                         learning_rate=0.1, hidden_ratio=0.75, random_state=seed))


def _pysad_asd(seed, d):
    from pysad.models import IForestASD

    # onad's ASDIsolationForest: 100 trees of 256 samples, refit on each window of 256 rows.
    return _PySAD(IForestASD(window_size=256, n_estimators=100, max_samples=256, random_state=seed))


def _pysad_null(seed, d):
    from pysad.models import NullModel

    return _PySAD(NullModel())


def _pysad_random(seed, d):
    from pysad.models import RandomModel

    return _PySAD(RandomModel(random_state=seed))


def _xstream(seed, d):
    from aberrant.model.iforest.xstream import XStream

    return XStream(seed=seed)


def _lof(seed, d):
    from aberrant.model.distance.lof import LocalOutlierFactor

    return LocalOutlierFactor(k=10, window_size=1000, distance="euclidean")


def _stream_rhf(seed, d):
    from aberrant.model.iforest.rand_hist import StreamRandomHistogramForest

    return StreamRandomHistogramForest(seed=seed)


def _sdo_stream(seed, d):
    from aberrant.model.distance.sdostream import SDOStream

    return SDOStream(seed=seed)


def _kitnet(seed, d):
    from aberrant.model.deep.kitnet import OnlineAutoencoderEnsemble

    return OnlineAutoencoderEnsemble(seed=seed)


def _nets(seed, d):
    from aberrant.model.distance.nets import CellNeighborhoodDetector

    return CellNeighborhoodDetector()


def _midas(seed, d):
    from aberrant.model.graph.midas import MIDAS

    return MIDAS(seed=seed)


def _isconna(seed, d):
    from aberrant.model.graph.isconna import ISCONNA

    return ISCONNA(seed=seed)


def _anoedge_l(seed, d):
    from aberrant.model.graph.anoedge import AnoEdgeL

    return AnoEdgeL(seed=seed)


def _stream_spot(seed, d):
    from aberrant.model.graph.streamspot import SignedGraphSketchDetector

    return SignedGraphSketchDetector(graph_key="t", time_key=None, seed=seed)


def _stare(seed, d):
    from aberrant.model.distance.stare import StationaryRegionNeighborDetector

    return StationaryRegionNeighborDetector()


def _damp(seed, d, **params):
    from aberrant.model.timeseries.damp import XLagDAMP

    return XLagDAMP(**params)


def _rolling_mp(seed, d, **params):
    from aberrant.model.timeseries.rolling_matrix_profile import RollingMatrixProfile

    return RollingMatrixProfile(**params)


def _multi_mp(seed, d, **params):
    from aberrant.model.timeseries.multivariate_rolling_matrix_profile import MultivariateRollingMatrixProfile

    return MultivariateRollingMatrixProfile(**params)


# The subsequence length of the discord detectors, by a rule fixed before any run (never tuned to a score):
# one period of the data at its cadence. ECG: one beat, 0.8 s (75 bpm) at MIT-BIH's 360 Hz = 288 values;
# NAB: one day (5-minute series 288, hourly 24, the 30-minute taxi series 48); SMD (1-minute cadence, no
# known period): one hour, 60.
_DAY = {"ambient_temperature_system_failure": 24, "nyc_taxi": 48}


def _period(part_label):
    if part_label.startswith("ts_mitdb_ecg"):
        return {"subsequence_length": 288}
    if part_label.startswith("nab_known_cause/"):
        return {"subsequence_length": _DAY.get(part_label.split("/", 1)[1], 288)}
    return {"subsequence_length": 60}


def _seasonal_residual(seed, d, season_length):
    from aberrant.model.timeseries.seasonal_residual import SeasonalResidualDetector

    return SeasonalResidualDetector(season_length=season_length)


class _Shingled:
    """pysad's ShingleTransformer in front of a dict-row model: the shingle of a row is scored, and learned,
    as pysad builds it (the rows before, then the row)."""

    def __init__(self, size, model):
        from pysad.transform.preprocessing import ShingleTransformer

        self.shingle, self.model = ShingleTransformer(size), model

    @staticmethod
    def _row(v):
        return {f"s{i}": float(x) for i, x in enumerate(v)}

    def score_one(self, x):
        return self.model.score_one(self._row(self.shingle.transform_partial(np.fromiter(x.values(), float))))

    def learn_one(self, x):
        self.model.learn_one(self._row(self.shingle.fit_transform_partial(np.fromiter(x.values(), float))))


SHINGLE_SIZE = 32  # fixed in advance for every set (a common RCF shingle length), not tuned


def _shingle_half_space(seed, d):
    return _Shingled(SHINGLE_SIZE, _half_space(seed, d * SHINGLE_SIZE))


# season_length: one day at the series' sampling step (NAB: the median step between timestamps, 5 minutes
# -> 288, hourly -> 24, 30 minutes -> 48); the ECG (MIT-BIH, 360 Hz): one beat at a nominal 75 beats a
# minute, 288 samples. Fixed before any run, never tuned to a score.
SEASONS = {"ts_mitdb_ecg": 288, "nab_known_cause/machine_temperature_system_failure": 288,
           "nab_known_cause/ambient_temperature_system_failure": 24,
           "nab_known_cause/cpu_utilization_asg_misconfiguration": 288,
           "nab_known_cause/ec2_request_latency_system_failure": 288, "nab_known_cause/nyc_taxi": 48}


class Unavailable(Exception):
    """The Python side of a model cannot run here (the pair is reported with the reason)."""


@dataclass
class Model:
    name: str  # the registry's name, the key of the Rust spec; `t1|t2|detector`: transformers (defaults) in front
    python: Callable  # (seed, n_features) -> the reference library's model (dict rows, score_one / learn_one)
    python_class: str
    seeded: bool = True  # False: one run per side, no seed passed
    params: dict = field(default_factory=dict)  # {} is the registry's defaults (onad's)
    max_rows: int | None = None  # a cap on both sides
    note: str = ""
    library: str = "onad 0.3.0"  # the Python reference the model is compared with
    edges: bool = False  # an edge detector (columns src, dst, t): runs on the edge sets only
    # (part label) -> parameters of that part, passed to both sides (python gets them as keywords)
    part_params: Callable | None = None

    transformer_params: dict = field(default_factory=dict)  # transformer name -> its parameters
    set_params: dict = field(default_factory=dict)  # set -> parameters for that set (both sides); only these sets
    univariate: bool = False  # the Rust side needs a single column (the probe gets one)

    def _extra(self, part):
        """The parameters for this part (by `part_params` of its label, or `set_params` by its label, else by its
        set); None when the model does not run on it."""
        label = part.label if part is not None else None
        if self.part_params:
            return self.part_params(label if label is not None else self.name)
        if not self.set_params:
            return {}
        if part is None:
            return next(iter(self.set_params.values()), {})
        return self.set_params.get(part.label, self.set_params.get(part.set))

    def runs_on(self, part) -> bool:
        return self.edges == part.edges and (not self.set_params or self._extra(part) is not None)

    def spec(self, seed, part=None):
        *transformers, detector = self.name.split("|")
        extra = self._extra(part) or {}
        spec = {detector: {**self.params, **extra, **({"seed": seed} if self.seeded else {})}}
        if not transformers:
            return spec
        return {"transformers": [{t: self.transformer_params.get(t, {})} for t in transformers], "detector": spec}

    def make_python(self, seed, d, part):
        if self.set_params or self.part_params:
            return self.python(seed, d, **(self._extra(part) or {}))
        return self.python(seed, d)


# Adding a model is one entry here.
MODELS = [
    Model("knn", _knn, "KNN(k=55, FaissSimilaritySearchEngine(window_size=250, warm_up=55))", seeded=False,
          params={"k": 55, "window_size": 250, "warm_up": 55},
          note="onad has no defaults for k, window_size and warm_up; the registry's example (onad's example) is used"),
    Model("asd_isolation_forest", _asd, "ASDIsolationForest(seed=s)"),
    Model("online_isolation_forest", _online, "np.random.seed(s); OnlineIsolationForest()"),
    Model("stream_random_histogram_forest", _rand_hist, "StreamRandomHistogramForest(seed=s)"),
    Model("mondrian_forest", _mondrian, "MondrianForest(seed=s)", max_rows=10_000,
          note="no window (onad's default): Rust keeps every row in 100 trees, so both sides stop at 10,000 rows"),
    Model("gadget_svm", _gadget, "GADGETSVM()", seeded=False),
    Model("incremental_one_class_svm_adaptive_kernel", _adaptive_svm, "IncrementalOneClassSVMAdaptiveKernel(seed=s)"),
    Model("random_cut_forest", _random_cut,
          "RandomCutForest(n_trees=40, sample_size=256, shingle_size=1, warmup_samples=None, "
          "normalize_score=False, score_scale=8.0, seed=s)", library="aberrant 1.3.0",
          params={"n_trees": 40, "sample_size": 256, "shingle_size": 1, "warmup_samples": None,
                  "normalize_score": False, "score_scale": 8.0},
          note="aberrant shares one FIFO window of points among all trees, Rust keeps a time-decayed reservoir "
               "per tree (the paper, AWS)"),
    Model("autoencoder", _autoencoder, "Autoencoder(VanillaAutoencoder(d, seed=s), Adam, MSELoss)"),
    Model("mstream", _mstream, "MStream(seed=s)", library="aberrant 1.3.0",
          note="aberrant refuses numeric values <= -1 (its log10(1 + x)): such sets have no Python column"),
    Model("half_space_trees", _half_space, "MinMaxScaler() | HalfSpaceTrees(seed=s)", library="aberrant 1.3.0",
          note="aberrant expects inputs in [0, 1] and gets its own online MinMaxScaler in front; Rust gets the raw "
               "rows"),
    Model("min_max_scaler|half_space_trees", _half_space, "MinMaxScaler() | HalfSpaceTrees(seed=s)",
          library="aberrant 1.3.0",
          note="like for like: both sides behind their online MinMaxScaler (defaults: [0, 1], no clipping)"),
    Model("rs_hash", _rs_hash, "StreamingRSHash(seed=s)", library="aberrant 1.3.0"),
    Model("loda", _loda, "StreamingLODA(seed=s)", library="aberrant 1.3.0"),
    Model("local_outlier_factor", _lof, 'LocalOutlierFactor(k=10, window_size=1000, distance="euclidean")',
          library="aberrant 1.3.0", seeded=False,
          note="deterministic: one run per side; aberrant recomputes every neighbourhood per score"),
    Model("stream_rhf", _stream_rhf, "StreamRandomHistogramForest(seed=s) (STREamRHF)", library="aberrant 1.3.0"),
    Model("xstream", _xstream, "XStream(seed=s)", library="aberrant 1.3.0"),
    Model("sdo_stream", _sdo_stream, "SDOStream(seed=s)", library="aberrant 1.3.0",
          note="both sides on the raw rows (aberrant feeds raw values); seeded draws differ (PCG64 vs numpy)"),
    Model("kitnet", _kitnet, "OnlineAutoencoderEnsemble(seed=s)", library="aberrant 1.3.0",
          params={"score_while_training": False},
          note="at aberrant's convention (Rust score_while_training=false): scores are 0 for the first 55,000 rows "
               "(feature_map_grace 5,000 + ad_grace 50,000), so shorter sets, and Python prefixes shorter than "
               "that, are all ties (ROC 0.5); both sides get raw rows, Rust min-max normalises inside each "
               "autoencoder as KitNET-py does, aberrant does not"),
    Model("nets", _nets, "CellNeighborhoodDetector()", library="aberrant 1.3.0", seeded=False,
          note="raw rows, radius in data units on both sides; seed is compatibility-only, so one run"),
    Model("stare", _stare, "StationaryRegionNeighborDetector()", library="aberrant 1.3.0", seeded=False,
          note="raw rows, radius in data units on both sides"),
    Model("midas", _midas, "MIDAS(seed=s)", library="aberrant 1.3.0", edges=True,
          note="MIDAS-R (use_relational=True, the default) on both sides; the sketches hash differently "
               "(aberrant: keyed blake2b; Rust: (a*k+b) mod 2^61-1), so seeds do not give the same cells"),
    Model("isconna", _isconna, "ISCONNA(seed=s)", library="aberrant 1.3.0", edges=True,
          note="edge and endpoint sketches (include_endpoints=True, the default) on both sides; the hashes "
               "differ (aberrant: the authors' ((a + 347 b) p + q) mod cols; Rust: (a*k+b) mod 2^61-1)"),
    Model("damp", _damp, "XLagDAMP(subsequence_length=m)", library="aberrant 1.3.0", seeded=False,
          part_params=_period,
          note="one series (ts_mitdb_ecg, nab_known_cause); m = one period by a fixed rule (one ECG beat 288, one "
               "day of NAB), other parameters the defaults; deterministic, one run per side"),
    Model("rolling_matrix_profile", _rolling_mp, "RollingMatrixProfile(subsequence_length=m)",
          library="aberrant 1.3.0", seeded=False, part_params=_period,
          note="one series; m by the same rule as damp; deterministic, one run per side"),
    Model("multivariate_rolling_matrix_profile", _multi_mp, "MultivariateRollingMatrixProfile(subsequence_length=m)",
          library="aberrant 1.3.0", seeded=False, part_params=_period,
          note="every column (38 on SMD, one on the others); m by the same rule (SMD: 60, one hour)"),
    Model("seasonal_residual", _seasonal_residual, "SeasonalResidualDetector(season_length=m)",
          library="aberrant 1.3.0", seeded=False, univariate=True,
          set_params={k: {"season_length": v} for k, v in SEASONS.items()},
          note="deterministic, one run per side; season_length m fixed in advance from each series' cadence: one "
               "day at its sampling step for NAB (288 at 5 minutes, 24 hourly, 48 at 30 minutes), one beat "
               "(360 Hz at 75 a minute: 288) for the ECG"),
    Model("shingle|half_space_trees", _shingle_half_space,
          "pysad ShingleTransformer(32) then MinMaxScaler() | HalfSpaceTrees(seed=s)",
          library="pysad 0.7.0 + aberrant 1.3.0", transformer_params={"shingle": {"shingle_size": SHINGLE_SIZE}},
          set_params={k: {} for k in ("ts_mitdb_ecg", "nab_known_cause")},
          note="shingles of 32 rows (fixed in advance); Rust HST on the raw shingles, aberrant's behind its "
               "MinMaxScaler"),
    Model("anoedge_l", _anoedge_l, "AnoEdgeL(seed=s)", library="aberrant 1.3.0", edges=True,
          note="defaults on both sides (no decay: time_decay_factor=1.0); the hashes differ (aberrant: "
               "(a*v+b) mod max(rows, cols) on the id; Rust: (a*k+b) mod 2^61-1 on the id's bits)"),
    # Further peers: the same model in river or pysad, at onad's parameters (a model may have several
    # entries, one per library; pairs are keyed by (model, library, part)).
    Model("half_space_trees", _river_half_space, "MinMaxScaler() | HalfSpaceTrees(n_trees=10, height=8, "
          "window_size=250, seed=s)", library="river 0.26.1"),
    Model("loda", _river_loda, "LODA(n_bins=32, n_random_cuts=100, seed=s)", library="river 0.26.1",
          note="river's LODA has no warm-up before it scores, onad's (aberrant's) learns 256 rows first"),
    Model("xstream", _pysad_xstream, "xStream(num_components=100, n_chains=100, depth=15, window_size=256, "
          "random_state=s)", library="pysad 0.7.0",
          note="pysad counts bins exactly in dicts, onad (aberrant) in count-min sketches of width 1024"),
    Model("kitnet", _pysad_kitnet, "KitNet(max_size_ae=10, grace_feature_mapping=5000, "
          "grace_anomaly_detector=50000, random_state=s)", library="pysad 0.7.0",
          note="both score the training rows with the autoencoders as trained so far (onad's default "
               "score_while_training=true); pysad also scores the 5,000 feature-map rows, with temporary "
               "autoencoders rebuilt at powers of two, where onad scores 0"),
    Model("asd_isolation_forest", _pysad_asd, "IForestASD(window_size=256, n_estimators=100, max_samples=256, "
          "random_state=s)", library="pysad 0.7.0"),
    Model("null_model", _pysad_null, "NullModel()", library="pysad 0.7.0", seeded=False),
    Model("random_model", _pysad_random, "RandomModel(random_state=s)", library="pysad 0.7.0"),
    Model("stream_spot", _stream_spot, "SignedGraphSketchDetector(graph_key='t', time_key=None, seed=s)",
          library="aberrant 1.3.0", edges=True, params={"graph_key": "t", "time_key": None},
          note="the generator has no graph column: each time bucket (200 edges) is one graph; shingles hash "
               "differently (aberrant: keyed blake2b; Rust: a 64-bit mix)"),
]


# --------------------------------------------------------------------------- data sets
@dataclass
class Part:
    """One prequential run: a prepared CSV (features, label last) and the rows the metrics cover."""

    set: str
    label: str  # the name in the table (the set, or set/series)
    path: str
    rows: int
    eval_mask: list | None = None  # None: every row
    note: str = ""
    edges: bool = False  # an edge stream (src, dst, t): for edge models only


def _read(path):
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, [r for r in reader if r]


def _plain(data, work, name, rel, drop=(), note=""):
    header, recs = _read(os.path.join(data, rel))
    li = header.index("label")
    keep = [i for i, h in enumerate(header) if h not in drop and i != li]
    out = os.path.join(work, f"{name}.csv")
    quality.write_csv(out, [header[i] for i in keep], ([float(r[i]) for i in keep] for r in recs),
                      (int(float(r[li])) for r in recs))
    return [Part(name, name, out, len(recs), note=note)]


def _nab(data, work):
    header, recs = _read(os.path.join(data, "reference-only/nab_known_cause.csv"))
    si, vi, li = header.index("series"), header.index("value"), header.index("label")
    series = {}
    for r in recs:
        series.setdefault(r[si], []).append((float(r[vi]), int(float(r[li]))))
    parts = []
    for s, vals in series.items():
        out = os.path.join(work, f"nab_known_cause-{s}.csv")
        quality.write_csv(out, ["value"], ([v] for v, _ in vals), (y for _, y in vals))
        parts.append(Part("nab_known_cause", f"nab_known_cause/{s}", out, len(vals)))
    return parts


def _smd(data, work):
    header, recs = _read(os.path.join(data, "reference-only/smd_machine-2-1.csv"))
    si, li = header.index("split"), header.index("label")
    feats = [i for i, h in enumerate(header) if h.startswith("m")]
    out = os.path.join(work, "smd_machine-2-1.csv")
    quality.write_csv(out, [header[i] for i in feats], ([float(r[i]) for i in feats] for r in recs),
                      (int(float(r[li])) for r in recs))
    mask = [r[si] == "test" for r in recs]
    return [Part("smd_machine-2-1", "smd_machine-2-1", out, len(recs), eval_mask=mask,
                 note="train then test; metrics on the test rows")]


EDGE_SEEDS = (1, 2, 3)


def _edges(data, work, rows=100_000):
    """The generated edge streams, written by the Rust example (built by cargo if needed)."""
    import subprocess

    parts = []
    for g in EDGE_SEEDS:
        out = os.path.join(work, f"edges_synthetic-seed{g}.csv")
        if not os.path.exists(out):
            subprocess.run(["cargo", "run", "--release", "-q", "-p", "onad-models", "--example", "edge_stream", "--",
                            out, str(rows), str(g)], cwd=ROOT, check=True)
        parts.append(Part("edges_synthetic", f"edges_synthetic/seed{g}", out, rows, edges=True,
                          note=f"generator seed {g}"))
    return parts


SETS = {
    "shuttle_odds": lambda d, w: _plain(d, w, "shuttle_odds", "shippable/shuttle_odds.csv"),
    "shuttle_full_statlog": lambda d, w: _plain(d, w, "shuttle_full_statlog", "shippable/shuttle_full_statlog.csv",
                                                drop=("class",)),
    "glass_odds": lambda d, w: _plain(d, w, "glass_odds", "shippable/glass_odds.csv"),
    "breastw_odds": lambda d, w: _plain(d, w, "breastw_odds", "shippable/breastw_odds.csv"),
    "spambase": lambda d, w: _plain(d, w, "spambase", "shippable/spambase.csv"),
    "ts_mitdb_ecg": lambda d, w: _plain(d, w, "ts_mitdb_ecg", "shippable/ts_mitdb_ecg.csv", drop=("t",)),
    "creditcard_ulb_sample": lambda d, w: _plain(d, w, "creditcard_ulb_sample", "reference-only/creditcard_ulb_sample.csv"),
    "kdd99_http": lambda d, w: _plain(d, w, "kdd99_http", "reference-only/kdd99_http.csv"),
    "kdd99_smtp": lambda d, w: _plain(d, w, "kdd99_smtp", "reference-only/kdd99_smtp.csv"),
    "skab": lambda d, w: _plain(d, w, "skab", "reference-only/skab.csv", drop=("experiment", "datetime", "changepoint")),
    "nab_known_cause": _nab,
    "smd_machine-2-1": _smd,
    "edges_synthetic": _edges,
    # The scoreboard's seeded synthetic stream (cargo xtask bench writes it and names it here).
    "synthetic": lambda d, w: _synthetic(w),
}


def _synthetic(work):
    """`cargo xtask bench`'s synthetic stream (100k x 10, drift, 1 % anomalies, seed 42), named by
    $ONAD_BENCH_SYNTHETIC; none without it."""
    path = os.environ.get("ONAD_BENCH_SYNTHETIC")
    if not path:
        return []
    with open(path) as fh:
        rows = sum(1 for line in fh if line.strip()) - 1
    return [Part("synthetic", "synthetic", path, rows)]


# --------------------------------------------------------------------------- one pair
def _mean(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None and not math.isnan(r[key])]
    return float(np.mean(vals)) if vals else float("nan")


def run_pair(model: Model, part: Part, args, seeds) -> dict:
    cap = min(x for x in (part.rows, model.max_rows, args.max_rows) if x is not None)
    rows, labels = quality.load(part.path)
    d = len(rows[0]) if rows else 0
    rows, labels = rows[:cap], labels[:cap]
    entry = {"model": model.name, "library": model.library, "set": part.set, "part": part.label, "file_rows": part.rows,
             "note": part.note, "python": {"runs": []}, "rust": {"runs": []}}
    model_seeds = seeds if model.seeded else [None]

    # Python first: its budget decides the prefix.
    budget, spent, prefix = args.budget_seconds, 0.0, None
    try:
        for i, seed in enumerate(model_seeds):
            if i > 0 and spent + spent / i > budget:
                break  # the next seed would not fit
            m = model.make_python(seed, d, part)
            scores, dt = quality.score_rows(m, rows if prefix is None else rows[:prefix],
                                            seconds=(budget if i == 0 else None))
            spent += dt
            if prefix is None:
                prefix = len(scores)
            r = quality.metrics(scores, labels, part.eval_mask)
            r.update(seed=seed, seconds=dt, rows_per_sec=len(scores) / dt)
            entry["python"]["runs"].append(r)
            log(f"  python seed {seed}: {len(scores)} rows in {dt:.1f} s, ROC {r['roc_auc']:.4f} PR {r['pr_auc']:.4f}")
    except Unavailable as e:
        entry["python"]["skipped"] = str(e)
        log(f"  python skipped: {e}")
    except Exception as e:  # noqa: BLE001  (a model failing on a set is a result)
        entry["python"]["error"] = f"{type(e).__name__}: {e}"
        log(f"  python error: {entry['python']['error']}")
    if prefix is None:
        prefix = cap
    entry["rows_used"] = prefix
    entry["python_seeds"] = [r["seed"] for r in entry["python"]["runs"]]

    path = part.path
    if prefix < part.rows:
        path = quality.write_prefix(part.path, prefix, os.path.join(args.work, f"prefix-{prefix}-{Path(part.path).name}"))
    for seed in model_seeds:
        try:
            scores, dt, loop = quality.rust_prequential_run(args.rust, path, model.spec(seed, part))
        except Exception as e:  # noqa: BLE001  (e.g. a one-series model on a multivariate set: a result too)
            entry["rust"]["error"] = f"{type(e).__name__}: {getattr(e, 'stderr', '') or e}"[-300:]
            log(f"  rust error: {entry['rust']['error']}")
            break
        assert len(scores) == prefix, (len(scores), prefix)
        r = quality.metrics(scores, labels, part.eval_mask)
        r.update(seed=seed, seconds=dt, rows_per_sec=prefix / dt)
        if loop:
            r["loop_rows_per_sec"] = prefix / loop  # the library's loop alone, as the scoreboard times it
        entry["rust"]["runs"].append(r)
    log(f"  rust {len(model_seeds)} run(s) on {prefix} rows: ROC {_mean(entry['rust']['runs'], 'roc_auc'):.4f} "
        f"PR {_mean(entry['rust']['runs'], 'pr_auc'):.4f}")
    if "error" in entry["rust"]:
        if path != part.path:
            os.unlink(path)
        return entry
    if prefix < part.rows and model.max_rows is None and args.max_rows is None:
        full_labels = [int(float(r[-1])) for r in _read(part.path)[1]]
        entry["rust_all_rows"] = {"runs": []}
        for seed in model_seeds:
            scores, dt = quality.rust_prequential_scores(args.rust, part.path, model.spec(seed, part))
            r = quality.metrics(scores, full_labels, part.eval_mask)
            r.update(seed=seed, seconds=dt, rows_per_sec=len(scores) / dt)
            entry["rust_all_rows"]["runs"].append(r)
    if path != part.path:
        os.unlink(path)
    for side in ("python", "rust", "rust_all_rows"):
        if side in entry and entry[side]["runs"]:
            runs = entry[side]["runs"]
            entry[side].update({k: _mean(runs, k) for k in ("roc_auc", "pr_auc", "rows_per_sec")})
            entry[side]["roc_auc_range"] = [min(r["roc_auc"] for r in runs), max(r["roc_auc"] for r in runs)]
            entry[side]["constant"] = all(r["rows"] > 0 and r["distinct_scores"] <= 1 for r in runs)
            entry[side]["evaluated_rows"] = runs[0]["rows"]
            entry[side]["evaluated_anomalies"] = runs[0]["anomalies"]
    return entry


# --------------------------------------------------------------------------- report
def _f(x, nd=3):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _rate(x):
    if x is None or math.isnan(x):
        return ""
    return f"{x / 1e6:.2f}M" if x >= 1e6 else (f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}")


def markdown(report) -> str:
    out = [f"Generated by `{report['command']}` on {report['date']} (Python libraries: {report.get('libraries') or 'onad ' + report.get('onad', '?')}; seeds "
           f"{report['seeds']}, Python budget {report['budget_seconds']} s per pair). ROC and PR are ROC-AUC and "
           "PR-AUC (average precision), means over the seeds each side ran; rows/s: Python's score-then-learn "
           "loop, Rust's whole `scores` process (start and CSV read included), so the ratio is in parentheses "
           "when that process took under 50 ms.", ""]
    for cmd in report.get("replaced_by", []):  # pairs rerun with a larger budget and merged into quality.json
        out += [f"Pairs added or replaced by the run of `{cmd}`.", ""]
    for m in MODELS:
        entries = [e for e in report["pairs"] if (e["model"], _library(e, report)) == (m.name, m.library)]
        skipped = report["skipped_models"].get(m.name)
        out.append(f"### {m.name} (Python: {m.library} `{m.python_class}`)")
        out.append("")
        if m.note:
            out += [m.note + ".", ""]
        if skipped:
            out += [f"Skipped: {skipped}", ""]
            continue
        if not entries:
            out += ["Not run.", ""]
            continue
        out.append("| set | rows used (of) | seeds Rust / Python | Rust ROC | Rust PR | Python ROC | Python PR "
                   "| Rust rows/s | Python rows/s | ratio | Rust all rows ROC / PR | notes |")
        out.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for e in entries:
            out.append(_row(e))
        for set_name in dict.fromkeys(e["set"] for e in entries):
            nab = [e for e in entries if e["set"] == set_name]
            if len(nab) < 2:
                continue

            def mean_of(side, key, src=nab):
                vals = [e[side][key] for e in src if side in e and not math.isnan(e[side].get(key, float("nan")))]
                return float(np.mean(vals)) if vals else float("nan")
            full = [e for e in nab if "rust_all_rows" in e]
            all_rows = ""
            if full and len(full) == len(nab):
                all_rows = f"{_f(mean_of('rust_all_rows', 'roc_auc'))} / {_f(mean_of('rust_all_rows', 'pr_auc'))}"
            out.append(f"| {set_name}, mean of {len(nab)} parts | | | {_f(mean_of('rust', 'roc_auc'))} | "
                       f"{_f(mean_of('rust', 'pr_auc'))} | {_f(mean_of('python', 'roc_auc'))} | "
                       f"{_f(mean_of('python', 'pr_auc'))} | | | | {all_rows} | over the series where it is defined |")
        out.append("")
    return "\n".join(out) + "\n"


def _library(e, report) -> str:
    """The Python library of a pair (reports written before pairs named it: the model's one library)."""
    return e.get("library") or report.get("model_libraries", {}).get(e["model"], "onad 0.3.0")


def _row(e) -> str:
    py, rs = e["python"], e["rust"]
    notes = []
    if e.get("note"):
        notes.append(e["note"])
    for side, name in (("rust", "Rust"), ("python", "Python")):
        if e[side].get("constant"):
            notes.append(f"{name} scores constant")
        if any(r.get("nonfinite") for r in e[side].get("runs", [])):
            notes.append(f"{name} non-finite scores")
    if "error" in py:
        notes.append(f"Python error: {py['error'][:80]}")
    if "skipped" in py:
        notes.append(f"Python skipped: {py['skipped']}")
    if rs.get("evaluated_rows") == 0:
        notes.append("no evaluated (test) row in the rows used")
    elif rs.get("evaluated_anomalies") == 0:
        notes.append("no anomaly in the rows used")
    spread = [f"{name} {_f(e[side]['roc_auc_range'][0])}-{_f(e[side]['roc_auc_range'][1])}"
              for side, name in (("rust", "Rust"), ("python", "Python"))
              if len(e[side].get("runs", [])) > 1 and not math.isnan(e[side]["roc_auc"])]
    if spread:
        notes.append("ROC over seeds: " + ", ".join(spread))
    used = e["rows_used"]
    rows = f"{used:,}" + ("" if used == e["file_rows"] else f" ({e['file_rows']:,})")
    seeds = f"{len(rs.get('runs', []))} / {len(e['python_seeds'])}"
    ratio = ""
    if py.get("rows_per_sec") and rs.get("rows_per_sec"):
        ratio = f"{rs['rows_per_sec'] / py['rows_per_sec']:.0f}x"
        if np.mean([r["seconds"] for r in rs["runs"]]) < 0.05:
            ratio = f"({ratio})"  # the Rust process is mostly its start and the CSV read
    full = ""
    if "rust_all_rows" in e:
        full = f"{_f(e['rust_all_rows']['roc_auc'])} / {_f(e['rust_all_rows']['pr_auc'])}"
    return (f"| {e['part']} | {rows} | {seeds} | {_f(rs.get('roc_auc'))} | {_f(rs.get('pr_auc'))} | "
            f"{_f(py.get('roc_auc'))} | {_f(py.get('pr_auc'))} | {_rate(rs.get('rows_per_sec'))} | "
            f"{_rate(py.get('rows_per_sec'))} | {ratio} | {full} | {'; '.join(notes)} |")


def _versions() -> str:
    from importlib import metadata

    found = []
    for lib in ("onad", "aberrant", "river", "pysad", "rcf3"):
        try:
            found.append(f"{lib} {metadata.version(lib)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


# --------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rust", default=str(ROOT / "target/release/examples/scores"))
    ap.add_argument("--data", default=os.environ.get("ONAD_DATA_DIR", str(ROOT.parent / "shared/data")))
    ap.add_argument("--work", default="/tmp/onad-quality", help="where the prepared CSVs go (outside the repo)")
    ap.add_argument("--out", default=str(ROOT / "target/bench"))
    ap.add_argument("--models", default=",".join(m.name for m in MODELS))
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--budget-seconds", type=float, default=45.0, help="Python loop time per pair")
    ap.add_argument("--max-rows", type=int, default=None, help="every pair uses at most its first N rows")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--report-only", action="store_true", help="rewrite quality.md from quality.json, run nothing")
    args = ap.parse_args()
    if args.report_only:
        path = os.path.join(args.out, "quality.json")
        with open(os.path.join(args.out, "quality.md"), "w") as fh:
            fh.write(markdown(json.load(open(path))))
        return

    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    if Path(args.work).resolve().is_relative_to(ROOT):
        sys.exit("--work must be outside the repository (the reference-only data may not be copied into it)")
    seeds = [int(s) for s in args.seeds.split(",")]
    models = [m for m in MODELS if m.name in args.models.split(",")]
    json_path, md_path = os.path.join(args.out, "quality.json"), os.path.join(args.out, "quality.md")
    report = {"command": "/tmp/pyref/bin/python scripts/bench/quality_table.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "libraries": _versions(), "seeds": seeds,
              "budget_seconds": args.budget_seconds, "max_rows": args.max_rows, "pairs": [], "skipped_models": {},
              "model_libraries": {m.name: m.library for m in reversed(MODELS)}}  # a model's first library
    if args.resume and os.path.exists(json_path):
        old = json.load(open(json_path))
        report["pairs"] = old["pairs"]

    probe = os.path.join(args.work, "probe.csv")
    quality.write_csv(probe, ["a", "b"], [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], [0, 1, 0])
    edge_probe = os.path.join(args.work, "probe-edges.csv")
    quality.write_csv(edge_probe, ["src", "dst", "t"], [[0.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 1.0, 1.0]], [0, 1, 0])
    runnable = []
    probe1 = os.path.join(args.work, "probe1.csv")
    quality.write_csv(probe1, ["value"], [[float(i % 3)] for i in range(20)], [0] * 19 + [1])
    for m in models:
        probe_for = edge_probe if m.edges else (probe1 if (m.univariate or m.part_params) else probe)
        err = quality.rust_knows(args.rust, m.spec(seeds[0]), probe_for)
        if err is not None:
            why = ("the Rust registry does not know this name yet" if "unknown variant" in err
                   else f"the Rust scores example refused the spec {json.dumps(m.spec(seeds[0]))}: {err[:200]}")
            report["skipped_models"][m.name] = why
            log(f"{m.name}: skipped ({why})")
        else:
            runnable.append(m)

    parts = []
    for s in args.sets.split(","):
        parts += SETS[s](args.data, args.work)
    done = {(e["model"], _library(e, report), e["part"]) for e in report["pairs"]}

    def save():
        order = {(m.name, m.library): i for i, m in enumerate(MODELS)}
        porder = {p.label: i for i, p in enumerate(parts)}
        report["pairs"].sort(key=lambda e: (order.get((e["model"], _library(e, report)), 99), porder.get(e["part"], 99)))
        with open(json_path, "w") as fh:
            json.dump(report, fh, indent=1)
        with open(md_path, "w") as fh:
            fh.write(markdown(report))

    for m in runnable:
        for p in parts:
            if (m.name, m.library, p.label) in done or not m.runs_on(p):
                continue
            log(f"{m.name} ({m.library}) on {p.label} ({p.rows} rows)")
            t0 = time.time()
            report["pairs"].append(run_pair(m, p, args, seeds))
            log(f"  {time.time() - t0:.0f} s")
            save()
    save()
    log(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
