"""HTTP layer: wire format and thin handlers over the authority and identity layers."""
