"""The slot agent: store, A/B slots, atomic switch, health check and rollback on the board.

``agent.py`` beside the package is its entry point; ``cli.main`` is what it runs.
"""
