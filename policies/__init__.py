"""The policy documents shipped with pactledger (YAML data, carried in the wheel).

Load them with :func:`ledger.policy.load_policy_set`; the format is in ``README.md``.
"""
