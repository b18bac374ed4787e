"""Trainer and evaluator for the continual baselines (grows with the training issues)."""
