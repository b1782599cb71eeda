"""The machine-learning core of genderapi: decode a photo, find the faces, classify them, train the model.

Nothing in this package imports Django, so it is tested, benchmarked and reused (command line, batch job,
another server) on its own. The Django app around it is a thin adapter.
"""
