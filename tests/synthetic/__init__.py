"""Tests for synthetic."""
