"""Using trained models: sampling, generation with a key/value cache, GPT-1 style fine-tuning and its
tasks, and their CLI. Imports the model and training wings."""
