"""``VERIFY.md``: how to check a bundle by hand, shipped inside every bundle."""

from __future__ import annotations

VERIFY_MD = r"""# Verifying this bundle by hand

`pactledger verify-bundle BUNDLE.zip --trusted-key VKEY` does every check below. Without
pactledger, unzip the bundle and follow these steps; each needs only standard tools.

## 1. The key you trust

Get the ledger's verifier key from its operator through a channel other than this bundle
(`pactledger key show` on their side). It has the C2SP vkey form
`<name>+<hex key id>+<base64(0x01 || Ed25519 public key)>`. `verifier.vkey` in the bundle is
the key the ledger says it used: compare it with yours; a bundle can claim any key.

## 2. The signed statement over the manifest

`statement.dsse.json` is a DSSE envelope (https://github.com/secure-systems-lab/dsse) whose
payload is an in-toto Statement v1 (`_type` https://in-toto.io/Statement/v1, `predicateType`
https://pactledger.dev/bundle/v1). The Ed25519 signature (base64 `sig`) is over the DSSE
pre-authentication encoding

    PAE = "DSSEv1" SP LEN(payloadType) SP payloadType SP LEN(payload) SP payload

where LEN is the decimal byte length and payload is the base64-decoded `payload`. The
statement's `subject` names `manifest.json` with its sha256: check that
`sha256sum manifest.json` prints that digest.

## 3. Every file against the manifest

`manifest.json` lists every other file with its SHA-256 (`files`). Check each with
`sha256sum`, and that the zip holds exactly those files plus `manifest.json` and
`statement.dsse.json`.

## 4. The checkpoints

`checkpoint.txt` (the tree the proofs are against) and `checkpoint-newest.txt` are C2SP signed
notes (https://c2sp.org/signed-note, https://c2sp.org/tlog-checkpoint): body lines origin, tree
size and base64 root, a blank line, then `— <key name> base64(4-byte key id || signature)`.
The Ed25519 signature is over the body (everything before the blank line, with its final
newline). `consistency.json` is the RFC 9162 §2.1.4 consistency proof from the first to the
second (verify with any RFC 9162 library, or `pactledger verify-bundle`).

## 5. The entries and their inclusion

`entries.jsonl` holds the exact stored bytes of each entry (RFC 8785 canonical JSON), one per
line, in `seq` order. Each leaf hash is `SHA-256(0x00 || entry bytes)` (the line without its
newline). `proofs/inclusion.jsonl` starts with `{"root_hash", "tree_size"}` and then lists the
hashes of the complete subtrees `(level, index)` that cover every leaf *not* in the bundle.
Together with the exported leaves they tile `[0, tree_size)`; recompute the root like this and
compare it with the root in `checkpoint.txt`:

```python
import hashlib, json

def node(l, r): return hashlib.sha256(b"\x01" + l + r).digest()

entries = [line.rstrip(b"\n") for line in open("entries.jsonl", "rb")]
items = [(json.loads(e)["seq"], 0, hashlib.sha256(b"\x00" + e).digest()) for e in entries]
lines = open("proofs/inclusion.jsonl").read().splitlines()
head = json.loads(lines[0])
for line in lines[1:]:
    n = json.loads(line)
    items.append((n["index"] << n["level"], n["level"], bytes.fromhex(n["hash"])))
stack, position = [], 0
for start, level, digest in sorted(items):
    assert start == position, f"gap or overlap at leaf {position}"
    position += 1 << level
    while stack and stack[-1][0] == level:    # equal neighbours are siblings
        digest, level = node(stack.pop()[1], digest), level + 1
    stack.append((level, digest))
assert position == head["tree_size"]
root = stack.pop()[1]
while stack:                                  # fold the right edge (RFC 9162 tree shape)
    root = node(stack.pop()[1], root)
assert root.hex() == head["root_hash"], "root does not match"
```

`pactledger verify-bundle BUNDLE.zip --entry SEQ` prints the standard RFC 9162 inclusion
proof (`leaf_index`, `tree_size`, `leaf_hash`, `root_hash`, `audit_path`) of one entry, derived
from this multiproof, for any RFC 9162 verifier.

## 6. What the bundle proves, and what it does not

It proves that every entry in it is in the ledger's signed log at its `seq`, unchanged, and
that the log that holds them is consistent with the newest checkpoint. It does not prove that
the ledger exported *every* entry of the scope: the statement is the ledger's signed claim
that it did. `policies/` holds the policy texts in force over the scope's period and
`reports/` the compliance, chargeback (FinOps FOCUS 1.2) and tranche reports computed by the
ledger's views; they are covered by the manifest and the signature, not derived by you.
"""
