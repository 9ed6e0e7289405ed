"""Helpers shared by the tests: tiny models, flow/config builders, the Prefect harness."""
