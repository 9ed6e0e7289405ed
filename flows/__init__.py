"""Prefect flows: thin orchestration over plain functions of ``plumenet`` and ``storage``."""
