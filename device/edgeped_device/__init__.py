"""The code that runs on the board, shipped with runner.py and agent.py as one folder.

Python 3.9+, the standard library, numpy and LiteRT (ai-edge-litert or tflite-runtime)
only: never TensorFlow, never the host's edgeped package. numpy is imported inside the
functions that need it, so a board without it answers with a clean JSON error.
"""
