"""MovieLens-100K: loading, a world calibrated on it, and the fidelity report.

Modules, each with one job (none imports another's private names):

* ``data``: the loaders (GroupLens and RecBole layouts), strictly validated (``DataFormatError``).
* ``spec``: ``CalibrationConfig`` (how to fit) and ``CalibrationFit`` (what was fitted).
* ``fit``: the fit on the training logs: time split, logistic MF tastes, rating model, churn,
  activity refinement by simulation.
* ``world``: the calibrated world built from a fit (``Calibration``, user samplers) and the
  logging simulation.
* ``cache``: ``calibrate``, the fit cached in process and (checked before use) on disk.
* ``metrics``, ``fidelity``, ``report``: the fidelity numbers and the report's files.
* ``cli``: the ``recsim-llm fidelity`` command.

This package exports the public API; import from ``recsim_llm.movielens``.
"""

from __future__ import annotations

from recsim_llm.movielens.cache import CacheError, calibrate, clear_cache
from recsim_llm.movielens.data import (
    GENRES,
    GROUPLENS_FILES,
    RECBOLE_FILES,
    DataFormatError,
    MovieLens,
    Movies,
    Users,
    detect_layout,
    load_grouplens,
    load_movielens,
    load_recbole,
)
from recsim_llm.movielens.fidelity import (
    Population,
    check_report_data,
    compute_fidelity,
    popularity_reference,
    simulate_consumption,
)
from recsim_llm.movielens.fit import check_fit_data, fit_calibration, time_split
from recsim_llm.movielens.metrics import gini, ks_distance, top_share
from recsim_llm.movielens.report import write_report
from recsim_llm.movielens.spec import WORLD_DIM, CalibrationConfig, CalibrationFit
from recsim_llm.movielens.world import (
    TOPIC_GENRES,
    Calibration,
    MovieLensUserSampler,
    build_calibration,
    simulate_logging,
)

__all__ = [
    "GENRES",
    "GROUPLENS_FILES",
    "RECBOLE_FILES",
    "TOPIC_GENRES",
    "WORLD_DIM",
    "CacheError",
    "Calibration",
    "CalibrationConfig",
    "CalibrationFit",
    "DataFormatError",
    "MovieLens",
    "MovieLensUserSampler",
    "Movies",
    "Population",
    "Users",
    "build_calibration",
    "calibrate",
    "check_fit_data",
    "check_report_data",
    "clear_cache",
    "compute_fidelity",
    "detect_layout",
    "fit_calibration",
    "gini",
    "ks_distance",
    "load_grouplens",
    "load_movielens",
    "load_recbole",
    "popularity_reference",
    "simulate_consumption",
    "simulate_logging",
    "time_split",
    "top_share",
    "write_report",
]
