"""Tests for jobs."""
