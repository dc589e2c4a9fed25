"""Where servers and load run: the interface (``base``), local processes (``local``)
and Docker (``docker/``), and the commands both start.
"""
