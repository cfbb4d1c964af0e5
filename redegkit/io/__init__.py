"""Image decoding/encoding, input sources, and WebDataset shards."""
