"""csscert: a self-hostable, wire-compatible CSS "Downloading a Security Certificate" API."""

__version__ = "0.1.0"
