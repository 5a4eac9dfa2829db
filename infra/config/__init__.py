"""Stack configuration: read once, at the edge, into typed frozen objects, validated before any resource exists.

- `stackfiles`: a stack's config as the Pulumi CLI would hand it over, from the YAML files alone;
- `keys`: every config key, declared once (type, default, range, choices, secret, description);
- `settings`: the typed result, frozen dataclasses that components and renderers read;
- `values` (one key at a time), `key_checks` (the keys themselves), `gcp_rules` (Google's naming rules) and
  `sections/` (one reader per section): the validation;
- `stack`: the entry points (`parse_stack_config`, `config_from_map`, `load_stack_config`); `errors`: ConfigError;
- `reference`: writes docs/configuration.md and Pulumi.yaml's `config:` block from the key tables.

Import from the modules: this package's `__init__` stays empty so that the local runner can read stack files
without Pulumi installed (only `errors` and `stack`, which raises ConfigError, import Pulumi).
"""
