"""moto server whose KMS keys are derived from a seed (local gateway persistence only).

moto keeps everything in memory and makes random key material, so after a restart no stored data
key could be unwrapped again. With SR_LOCAL_KMS_SEED set, the n-th key created gets an id and key
material derived from the seed, so the local gateway recreates the very same root key. Never use
this against anything but the local emulator.
"""
import hashlib
import hmac
import itertools
import os
import runpy
import sys
import uuid

import moto.kms.models as kms_models

SEED = bytes.fromhex(os.environ["SR_LOCAL_KMS_SEED"])
if len(SEED) < 32:
    raise SystemExit("SR_LOCAL_KMS_SEED must be at least 32 bytes of hex")
_counter = itertools.count()


def _derive(label: bytes) -> bytes:
    return hmac.new(SEED, label, hashlib.sha256).digest()


def _key_id(multi_region: bool = False) -> str:
    key_id = str(uuid.UUID(bytes=_derive(b"key-id:%d" % next(_counter))[:16], version=4))
    return ("mrk-" + key_id) if multi_region else key_id


_original_init = kms_models.Key.__init__


def _init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    _original_init(self, *args, **kwargs)
    self.key_material = _derive(b"key-material:" + self.id.encode())


kms_models.generate_key_id = _key_id
kms_models.Key.__init__ = _init

runpy.run_path(os.environ["SR_MOTO_SERVER"], run_name="__main__")
