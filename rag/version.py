"""The package version, in a module of its own: modules inside ``rag`` read it from here,
since importing the ``rag`` facade from below would make an import cycle."""

__version__ = "0.1.0"
