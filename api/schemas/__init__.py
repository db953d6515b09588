"""Wire models of the HTTP API: what clients send and receive. They are not the domain
events (``ledger.events``) nor the hashed entry form, so the wire can evolve on its own."""
