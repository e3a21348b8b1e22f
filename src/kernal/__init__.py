"""kernal: a hub where AI trainers meet, authenticate, share what they learn and collaborate."""

__version__ = "0.1.0"
