"""What the stack config (`infra/config`) and the model spec (`serve_app/spec`) share: one key type, one way to
quote a value in a problem line, one did-you-mean, and one way to write a key table into the reference.

Standard library only, and below every other package, so that both sides import it: `serve_app` (whose
deploy-time modules run where only Pulumi is installed, and whose cluster files import none of this) and `infra`.
"""

from configkit.keys import ConfigKey, KeyType, Range
from configkit.messages import MAX_SHOWN, closest, did_you_mean, shown
from configkit.reference import markdown_table

__all__ = ["MAX_SHOWN", "ConfigKey", "KeyType", "Range", "closest", "did_you_mean", "markdown_table", "shown"]
