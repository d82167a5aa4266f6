"""Our demo model: its synthetic world of coloured shapes and tones (`synth`), an independent generator kept for
evaluation only (`synth_eval`), generated long documents (`synth_documents`), training (`python -m
encoders.demo.train`) and its held-out quality (`python -m encoders.demo.quality`). The spaces it backs are
configured like any other (encoders.registry); nothing outside this package and the tests imports it but the
demo data loader and the benchmarks."""
