"""TFLite conversion, representative-dataset calibration, model inspection, model cards."""
