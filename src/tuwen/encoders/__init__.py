"""Frozen feature extractors (image, text, OCR) behind one small interface and a registry by name.

``get_encoder("mobilenet_v2")`` builds one; ``available()`` lists the names. Each
encoder module imports its heavy backend lazily, so importing this package is cheap.
"""

from tuwen.encoders.base import Encoder, FittableEncoder, available, encoder_names, get_encoder, register

__all__ = ["Encoder", "FittableEncoder", "available", "encoder_names", "get_encoder", "register"]
