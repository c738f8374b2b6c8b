"""Helpers shared by the test areas: the real server process, accounts, signing, Keystone, HTTP, TLS.

Nothing here imports csscert: the helpers drive the real ``csscert`` command and the real HTTP
API, and sign with the official SDK's signer, so the server is never checked against itself.
"""
