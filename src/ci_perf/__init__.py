"""ci-perf: load-test the SARK API in CI and judge the results."""

__version__ = "0.1.0"
