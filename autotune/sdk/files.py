"""Files a backend makes or reads: the cache of slow-to-make artifacts (converted models,
engines), keyed by content, and the one reader of a user's file (size-checked, one-line
errors)."""

from autotune.cache import cache_root, cached_file, file_sha256, key_digest
from autotune.files import ONNX_MAX_BYTES, read_user_file

__all__ = ["cache_root", "cached_file", "file_sha256", "key_digest", "ONNX_MAX_BYTES", "read_user_file"]
