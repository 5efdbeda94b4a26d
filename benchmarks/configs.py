"""The small and medium configurations shared by the benchmark scripts.

Small: vocabulary 13, length 10, d_model 64, 4 heads, 2+2 layers, d_ff 256, batch 64
(the model the command line trains). Medium: vocabulary 1000, length 32, d_model 256,
8 heads, 3+3 layers, d_ff 1024, batch 32.
"""

from nptransformer import TransformerConfig

CONFIGS = {
    "small": dict(
        vocab=13, length=10, d_model=64, heads=4, layers=2, d_ff=256, batch=64
    ),
    "medium": dict(
        vocab=1000, length=32, d_model=256, heads=8, layers=3, d_ff=1024, batch=32
    ),
}


def model_config(name, dropout=0.0, dtype="float32", max_len=None):
    """Build the TransformerConfig of configuration `name` ("small" or "medium").

    max_len defaults to the configuration's length plus 2 (room for BOS or EOS).
    """
    spec = CONFIGS[name]
    return TransformerConfig(
        src_vocab_size=spec["vocab"],
        tgt_vocab_size=spec["vocab"],
        d_model=spec["d_model"],
        num_heads=spec["heads"],
        num_encoder_layers=spec["layers"],
        num_decoder_layers=spec["layers"],
        d_ff=spec["d_ff"],
        dropout=dropout,
        max_len=spec["length"] + 2 if max_len is None else max_len,
        dtype=dtype,
    )
