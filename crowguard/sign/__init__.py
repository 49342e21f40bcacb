"""The sign stage: EC key pairs, and OpenSSF model signing (OMS) of a model folder with its report inside.

``generate_keypair(NAME)`` -> ``KeyPair``; ``sign_folder(DIR, PRIVATE_KEY)`` -> ``SignResult``;
``verify_folder(DIR, PUBLIC_KEY)`` -> ``VerifyResult`` or an IntegrityError naming what differs.
``load_private_key`` checks a signing key up front, before any long work that ends in signing.
Files present but not covered by the signature are listed; one a loader could read is refused
(``UnsignedFiles``, exit 4) unless the caller allows it.
"""

from crowguard.sign.coverage import UnsignedFiles
from crowguard.sign.keys import KeyPair, generate_keypair, load_private_key, load_public_key
from crowguard.sign.signing import (
    SIGNATURE_NAME,
    SignatureMismatch,
    SignResult,
    VerifyResult,
    sign_folder,
    verify_folder,
)

__all__ = [
    "SIGNATURE_NAME",
    "KeyPair",
    "SignResult",
    "SignatureMismatch",
    "UnsignedFiles",
    "VerifyResult",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "sign_folder",
    "verify_folder",
]
