"""Tests for deployments."""
