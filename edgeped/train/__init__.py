"""Training: configs, losses, the fit loop and quantization-aware training."""
