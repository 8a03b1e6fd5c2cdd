"""The analysts' store: a DuckLake the pipeline appends to while analysts query it."""
