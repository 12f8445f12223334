"""Fitting and smoothing a tag table: the library steps under crbm-fit and crbm-smooth.

  from crbm_jax import fitting
  metrics = fitting.fit_tag_table("tags.tsv", "run1")           # what crbm-fit does
  fitting.smooth_tag_table("run1", "tags.tsv", "smoothed.tsv")   # what crbm-smooth does

Modules:
  inputs   reading and checking the tag table, the auxiliary groups, seeds and outputs
           (``prepare_fit_data``: observations and the 60/20/20 split); ``InputError``
  fit      ``fit_tag_table``: checks, data, the validation search (criterion pluggable
           through ``make_evaluate``), the test comparison, one run folder
  report   metrics.json, search.csv, history.csv, learning_curve.png, the logged summary
  smooth   ``smooth_tag_table``: affinities of every clip under a fitted run

It sits above ``data``, ``learn``, ``model`` and ``util`` and below ``crbm_jax.cli``;
JAX is imported only when a fit or a smoothing runs, so importing this package is cheap.
"""
from crbm_jax.fitting.fit import SEARCH_DEFAULTS, fit_tag_table
from crbm_jax.fitting.inputs import FitData, InputError, load_tags, prepare_fit_data
from crbm_jax.fitting.smooth import smooth_tag_table

__all__ = ["SEARCH_DEFAULTS", "FitData", "InputError", "fit_tag_table", "load_tags",
           "prepare_fit_data", "smooth_tag_table"]
