"""The run directory: its columns (``columns``, each declared once), the writer
(``writer``, with the format history) and the reader (``reader``).
"""
