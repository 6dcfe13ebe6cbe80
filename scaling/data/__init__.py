"""Data pipeline: corpora -> documents -> cached token files -> batches, pure functions of the step."""

from scaling.data.batches import check_context_fits, eval_batches, train_batch
from scaling.data.config import DataConfig
from scaling.data.download import download
from scaling.data.token_file import DatasetInfo, TokenDataset, load_dataset
from scaling.data.tokenizer import Tokenizer, get_tokenizer

__all__ = [
    "DataConfig",
    "DatasetInfo",
    "TokenDataset",
    "Tokenizer",
    "check_context_fits",
    "download",
    "eval_batches",
    "get_tokenizer",
    "load_dataset",
    "train_batch",
]
