"""F2N-ESRGAN: ``train-sr`` (training on (LQ, HQ) shards) and ``upscale`` (tiled inference).

Public entry points: :func:`redegkit.sr.train.train_sr`, :func:`redegkit.sr.upscale.load_sr_model`,
:func:`redegkit.sr.upscale.upscale_image`, :func:`redegkit.sr.upscale.upscale_files`.
"""
