"""Benchmarks behind `mvcapture bench ...`: side-by-side ratios measured in one run, hardware named."""
