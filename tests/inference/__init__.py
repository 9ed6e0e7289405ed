"""Tests for inference."""
