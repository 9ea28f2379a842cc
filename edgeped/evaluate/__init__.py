"""Metrics, thresholds, reports and plots. Runs .tflite with LiteRT; never imports TensorFlow."""
