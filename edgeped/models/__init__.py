"""Model architectures as plain Keras (tf_keras) builders, looked up by name."""

from edgeped.models.registry import ARCHITECTURES, ModelSpec, build_model

__all__ = ["ARCHITECTURES", "ModelSpec", "build_model"]
