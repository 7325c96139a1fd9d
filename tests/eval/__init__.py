"""Tests for mmrl.eval."""
