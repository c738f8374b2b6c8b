"""The ACME v2 server (RFC 8555): protocol logic (server.py), JWS checks (jws.py), challenge
validation (validation.py) and problem documents (problems.py). HTTP lives in api/acme.py,
storage in store/acme.py."""
