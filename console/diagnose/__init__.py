"""Signatures of known Nydus failures and the offline diagnosis built on them.

The catalogue is assets/signatures.toml. Its users:

- the live log view calls `match_record` for each parsed record, or keeps a
  `SignatureMatcher` of its own;
- the runbook runner matches command output with `match_text` and finds the
  signatures of a runbook with `load_catalogue().for_runbook(...)`;
- `doctor` and the node screen add `node_findings` to a node's checks;
- `nydus-console diagnose` runs `diagnose_texts` over collected files.
"""

from nydus_console.diagnose.catalogue import (
    RUNBOOK_IDS,
    Catalogue,
    CatalogueError,
    Signature,
    load_catalogue,
)
from nydus_console.diagnose.engine import (
    Diagnosis,
    diagnose_texts,
    fold_findings,
    node_findings,
)
from nydus_console.diagnose.matcher import (
    SignatureMatch,
    SignatureMatcher,
    default_matcher,
    match_record,
    match_text,
)

__all__ = [
    "RUNBOOK_IDS",
    "Catalogue",
    "CatalogueError",
    "Diagnosis",
    "Signature",
    "SignatureMatch",
    "SignatureMatcher",
    "default_matcher",
    "diagnose_texts",
    "fold_findings",
    "load_catalogue",
    "match_record",
    "match_text",
    "node_findings",
]
