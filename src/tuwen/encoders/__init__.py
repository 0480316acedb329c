"""Frozen feature extractors (image, text, OCR) behind one small interface and a registry by name.

``get_encoder("mobilenet_v2")`` builds one, ``encoder_for(name, workspace)`` one as a workspace uses it;
``available()`` lists the names; :mod:`tuwen.encoders.defaults` names the defaults. Each
encoder module imports its heavy backend lazily, so importing this package is cheap.
"""

from tuwen.encoders.base import Encoder, FittableEncoder, register
from tuwen.encoders.registry import available, encoder_for, encoder_names, get_encoder

__all__ = ["Encoder", "FittableEncoder", "available", "encoder_for", "encoder_names", "get_encoder", "register"]
