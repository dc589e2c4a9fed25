"""What a host allows: its kernel limits and facts (``limits``, ``facts``), the one
ceiling function (``ceiling``) and ``run-lab doctor``.
"""
