"""Measures of quality shared by models, search, recommendations and the benchmarks: one ranking module, one
classification module and bootstrap intervals, each written once."""
