__version__ = "0.1.0"
# The random-stream format (docs/stream-format.md). A change to any value for a given key and
# index is a new format version.
STREAM_FORMAT_VERSION = 2
