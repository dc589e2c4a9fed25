"""The scenario: typed values (``types``) and the YAML loader that validates them once.

``loader`` is the entry (``parse_scenario``, ``load_scenario``,
``select_servers``, ``scenario_to_dict``); the format is declared once, one
field per key, in ``schema`` and drives checking, defaults and the dump.
"""
