"""Old import path, kept while other branches move over: see ``deepsade.encoding.sign_pattern``."""

from deepsade.encoding.sign_pattern import (  # noqa: F401
    ABOVE,
    BELOW,
    FREE,
    SignPattern,
    assert_thresholds,
    prime_implicants,
    to_sign_pattern,
)
