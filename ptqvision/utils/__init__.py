"""Small helpers with no knowledge of models or quantization."""
