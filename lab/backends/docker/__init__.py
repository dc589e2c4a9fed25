"""The Docker backend, by resource: daemons (``hosts``), the image (``images``),
the run's network (``network``), container options (``specs``), running containers
(``handles``) and their output (``container_io``); ``backend`` puts them together.
"""
