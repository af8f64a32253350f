"""Key material: watermark keys with ids, key rings, derived sub-keys.

There is no built-in default key anywhere in dojang: every key comes from :func:`generate_key`
or a key file. A key prints as its id only; the secret never reaches a repr, log line, error
message or JSON document.
"""

from dojang.keys._keys import Key, KeyRing, generate_key, load_key, parse_key, save_key

__all__ = ["Key", "KeyRing", "generate_key", "load_key", "parse_key", "save_key"]
