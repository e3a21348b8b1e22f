"""Tests of the pure machine-learning core (kernal.learning)."""
