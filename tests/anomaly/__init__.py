"""Tests for anomaly."""
