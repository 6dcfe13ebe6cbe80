"""The model wing: shape and FLOP accounting (`config`), the NNX decoder, the sharding table, the decoding
cache and the traced-matmul census. Imports nothing from training, use, sweeps or fitting."""
