"""The run loop (``loop``) and the terminal view (``live``).
"""
