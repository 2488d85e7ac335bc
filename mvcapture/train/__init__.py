"""Consistency fine-tuning and pretraining of the lifter: training loop, background jobs, model store."""
