"""Tests for model."""
