"""Key custody: the registry of sealed columns, master-key rotation, backup and restore.

* :mod:`.registry`: every column that holds a secret sealed under the master key (one list, used
  by rotation, by backup's manifest and by the tests that search the database for secrets);
* :mod:`.masterkey`: which master key is current, the start-up recovery of an interrupted
  rotation, and ``master-key rotate`` itself (docs/architecture.md, "Master-key rotation");
* :mod:`.backup`: ``csscert backup`` / ``csscert restore`` (a portable, checksummed, authenticated
  stream of every table).
"""
