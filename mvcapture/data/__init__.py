"""Datasets: motion capture → synthetic uncalibrated multi-view clips, and windows of clips for training."""
