"""iolab orchestration: scenarios, backends, results, report, capacity, CLI.

This package never imports ``servers`` or ``loadgen``: it knows model names
and starts processes or containers that run them.
"""
