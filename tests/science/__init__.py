"""Tests for science."""
