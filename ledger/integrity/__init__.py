"""The pure integrity core: canonical bytes, the hash chain, the RFC 6962 Merkle tree and C2SP
signed notes and checkpoints. No I/O, no framework imports; everything here is deterministic."""
