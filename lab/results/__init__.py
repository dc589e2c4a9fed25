"""The run directory: the writer (``writer``) and the reader (``reader``), together
with the format history.
"""
