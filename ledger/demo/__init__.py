"""``pactledger demo``: the whole mission end to end on a realistic, deterministic scenario."""
