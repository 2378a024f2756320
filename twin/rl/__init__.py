"""Reinforcement learning on the twin: environment, training, policy controller."""
