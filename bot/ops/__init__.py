"""One module per operation; importing this package registers them all."""
