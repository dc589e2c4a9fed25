"""The scenario: typed values (``types``) and the YAML loader that validates them once.
"""
