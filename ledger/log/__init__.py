"""The log's pure model: what a client submits, what is sealed into an entry, and the port a
store implements. No I/O and no framework imports."""
