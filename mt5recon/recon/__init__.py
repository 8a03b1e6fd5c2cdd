"""Reconciliation: match broker positions to the bot's expected trades and classify divergences.

Pure Polars, no Prefect: the engine is driven by frames and returns frames.
"""
