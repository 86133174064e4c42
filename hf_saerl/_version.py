"""The library's version, in one place: setuptools reads it for the wheel, and every module imports it from here."""

__version__ = "0.1.0"
