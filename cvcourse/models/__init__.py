"""Models the chapters build and train."""

from cvcourse.models.classifier import SmallCNN

__all__ = ["SmallCNN"]
